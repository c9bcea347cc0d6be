//! EC2 tiers (D3, D4). STUB: being written.

use super::{Ec2Outcome, RunCtx};
use crate::ReconcileError;

/// Brings the tiers up one after another.
///
/// # Errors
/// Cancelled, store failures.
pub async fn restore_tiers(ctx: &RunCtx) -> Result<Ec2Outcome, ReconcileError> {
    let _ = ctx;
    Ok(Ec2Outcome::default())
}

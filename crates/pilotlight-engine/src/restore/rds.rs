//! RDS restores (D5). STUB: being written.

use super::{RdsOutcome, RunCtx};
use crate::ReconcileError;

/// Restores every DB instance of the plan and waits until each is available.
///
/// # Errors
/// Cancelled, store failures.
pub async fn restore(ctx: &RunCtx) -> Result<RdsOutcome, ReconcileError> {
    let _ = ctx;
    Ok(RdsOutcome::default())
}

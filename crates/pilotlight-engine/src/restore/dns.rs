//! DNS cutover (D7). STUB: being written.

use super::{Ec2Outcome, LbOutcome, RdsOutcome, RunCtx};
use crate::ReconcileError;

/// Points every planned record at the DR resources, zone by zone.
///
/// # Errors
/// Cancelled, store failures.
pub async fn cutover(
    ctx: &RunCtx,
    ec2: &Ec2Outcome,
    lbs: &LbOutcome,
    dbs: &RdsOutcome,
) -> Result<(), ReconcileError> {
    let _ = (ctx, ec2, lbs, dbs);
    Ok(())
}

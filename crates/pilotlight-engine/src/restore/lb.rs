//! Load balancers (D6). STUB: being written.

use super::{Ec2Outcome, LbOutcome, RunCtx};
use crate::ReconcileError;

/// Recreates every load balancer of the plan with its target groups and listeners.
///
/// # Errors
/// Cancelled, store failures.
pub async fn create(ctx: &RunCtx) -> Result<LbOutcome, ReconcileError> {
    let _ = ctx;
    Ok(LbOutcome::default())
}

/// Registers the restored instances and waits for the load balancers to be active.
///
/// # Errors
/// Cancelled, store failures.
pub async fn register(
    ctx: &RunCtx,
    lbs: &LbOutcome,
    ec2: &Ec2Outcome,
) -> Result<(), ReconcileError> {
    let _ = (ctx, lbs, ec2);
    Ok(())
}

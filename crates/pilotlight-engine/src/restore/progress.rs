//! Progress and the RTO report (D11). STUB: being written.

use super::RunCtx;

/// Restore gauges.
#[derive(Debug, Clone, Default)]
pub struct RestoreMetrics {}

/// Publishes the run's progress to the gauges until aborted.
pub async fn publish(ctx: RunCtx, metrics: RestoreMetrics) {
    let _ = (ctx, metrics);
    std::future::pending::<()>().await;
}

/// Publishes the run's progress once.
pub async fn publish_once(ctx: &RunCtx, metrics: &RestoreMetrics) {
    let _ = (ctx, metrics);
}

/// Saves the run's call tally to the journal.
pub async fn save_tally(ctx: &RunCtx) {
    let _ = ctx;
}

//! pilotlight's reconcilers and the scheduler that runs them.
//!
//! The [`scheduler`] runs [`Reconciler`]s in the kube-rs style: `reconcile(key)` returns an
//! [`Action`] saying when to run again (AWS has no watch stream, so success requeues after the
//! cycle period), a per-reconciler `error_policy` picks the delay after a failure, one key never
//! runs twice at once, and at most `concurrency` reconciles run together. Reconcilers are
//! idempotent: running one twice in a row changes nothing the second time.
//!
//! Reconcilers today: [`network`] (R1, the VPC/subnet/security-group mirror).

pub mod copy;
pub mod drill;
pub mod error;
pub mod estate;
pub mod leader;
pub mod metrics;
pub mod network;
pub mod restore;
pub mod scheduler;
pub mod status;

pub use async_trait::async_trait;
pub use error::ReconcileError;
pub use scheduler::{Action, Reconciler, Scheduler, SchedulerHandle};
pub use status::{ReconcilerStatus, StatusBoard};

/// Milliseconds since the Unix epoch, the store's time unit.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

//! The error a reconcile can end with.

use pilotlight_aws::{AwsError, ErrorKind};
use pilotlight_store::StoreError;

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Boxed: an AWS error carries its ids and cause, and reconciles return errors often.
    #[error("AWS call failed")]
    Aws(#[source] Box<AwsError>),
    #[error("state store failed")]
    Store(#[from] StoreError),
    /// AWS answered with something pilotlight cannot use.
    #[error("unexpected AWS answer from {operation}: {detail}")]
    Unexpected {
        operation: &'static str,
        detail: String,
    },
    /// Shutdown was requested; the work done so far is recorded.
    #[error("cancelled by shutdown")]
    Cancelled,
    /// A restore hook the run waits for (`on_failure = "fail"`) failed or timed out: the run
    /// starts no later stage and fails (SPEC D13).
    #[error("restore hook `{hook}` after {stage} failed: {reason}")]
    HookFailed {
        hook: String,
        stage: String,
        reason: String,
    },
}

impl From<AwsError> for ReconcileError {
    fn from(e: AwsError) -> ReconcileError {
        ReconcileError::Aws(Box::new(e))
    }
}

impl ReconcileError {
    /// The closed label for metrics and status.
    pub fn kind(&self) -> &'static str {
        match self {
            ReconcileError::Aws(e) => e.kind.as_str(),
            ReconcileError::Store(_) => "store",
            ReconcileError::Unexpected { .. } => "unexpected",
            ReconcileError::Cancelled => "cancelled",
            ReconcileError::HookFailed { .. } => "hook",
        }
    }

    /// Whether the failure is AWS pushing back (throttling or limits), which calls for a longer
    /// backoff than a transient fault.
    pub fn is_backpressure(&self) -> bool {
        matches!(self, ReconcileError::Aws(e) if matches!(e.kind, ErrorKind::Throttled | ErrorKind::LimitExceeded))
    }
}

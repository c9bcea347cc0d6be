//! What each reconciler did last, and whether the daemon is in restore mode: the data behind
//! `/v1/status`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::restore::RestoreMode;

/// One reconciler's latest state.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ReconcilerStatus {
    pub name: String,
    /// `idle`, `running`, or `paused` (it reads the primary region and the daemon is in restore
    /// mode: it does not run until the mode ends).
    pub state: &'static str,
    pub runs: u64,
    pub last_started_ms: Option<i64>,
    pub last_finished_ms: Option<i64>,
    /// `success`, `error` or `cancelled`.
    pub last_outcome: Option<&'static str>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub last_success_ms: Option<i64>,
    pub next_run_ms: Option<i64>,
    /// The reconciler's own summary of its last successful run.
    pub last_report: serde_json::Value,
}

/// Shared, cheaply cloned board of every reconciler's status.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard {
    inner: Arc<RwLock<BTreeMap<String, ReconcilerStatus>>>,
    mode: Arc<RwLock<Option<RestoreMode>>>,
}

impl StatusBoard {
    /// Shows `mode` on the board from now on ([`crate::Scheduler::with_restore_mode`] does it).
    pub fn attach_restore_mode(&self, mode: RestoreMode) {
        *self
            .mode
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(mode);
    }

    /// Whether the daemon is in restore mode (a disaster run is active); `false` until a
    /// [`RestoreMode`] is attached.
    pub fn restore_mode(&self) -> bool {
        self.mode
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_some_and(RestoreMode::is_active)
    }

    /// Changes (or creates) the status of the reconciler `name`.
    pub fn update(&self, name: &str, f: impl FnOnce(&mut ReconcilerStatus)) {
        let mut map = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = map
            .entry(name.to_owned())
            .or_insert_with(|| ReconcilerStatus {
                name: name.to_owned(),
                state: "idle",
                last_report: serde_json::Value::Null,
                ..ReconcilerStatus::default()
            });
        f(entry);
    }

    /// Every reconciler's status, by name.
    pub fn snapshot(&self) -> Vec<ReconcilerStatus> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// The status of the reconciler `name`.
    pub fn get(&self, name: &str) -> Option<ReconcilerStatus> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }
}

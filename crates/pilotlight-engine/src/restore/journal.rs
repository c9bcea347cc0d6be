//! The executor's side of the journal (D10): items written before and after each mutation,
//! steps with their start and end.
//!
//! Item keys are deterministic (`launch/<group>/<k>`, `volume/<primary volume>`,
//! `lb/<primary>`, `db/<primary>`, `dns/<zone>/<batch>`, …), so executing a run again finds the
//! items of the first execution.

use pilotlight_store::{ItemState, RestoreItem, RestoreStep, StepState, Store};
use serde_json::Value;

use crate::ReconcileError;
use crate::now_ms;

/// One run's journal.
#[derive(Debug, Clone)]
pub struct Journal {
    store: Store,
    run_id: String,
}

/// What an item is about, for [`Journal::request`].
#[derive(Debug, Clone, Copy)]
pub struct ItemRef<'a> {
    /// Unique within the run.
    pub key: &'a str,
    /// The step it belongs to.
    pub step_id: &'a str,
    /// `instance_launch`, `volume`, `attachment`, `load_balancer`, `db_instance`, `dns_batch`, …
    pub kind: &'a str,
    /// The primary resource restored.
    pub primary_id: &'a str,
}

impl Journal {
    pub fn new(store: Store, run_id: String) -> Journal {
        Journal { store, run_id }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The item under `key`, if any was written.
    ///
    /// # Errors
    /// The store's error.
    pub async fn item(&self, key: &str) -> Result<Option<RestoreItem>, ReconcileError> {
        Ok(self.store.get_item(&self.run_id, key).await?)
    }

    /// Every item of the run.
    ///
    /// # Errors
    /// The store's error.
    pub async fn items(&self) -> Result<Vec<RestoreItem>, ReconcileError> {
        Ok(self.store.list_items(&self.run_id, None).await?)
    }

    /// Writes the item `requested` with `token` and `detail` (one more attempt) *before* the
    /// mutation is sent, and returns it.
    ///
    /// # Errors
    /// The store's error: then nothing may be sent.
    pub async fn request(
        &self,
        item: ItemRef<'_>,
        token: Option<&str>,
        detail: &Value,
    ) -> Result<RestoreItem, ReconcileError> {
        let attempts = self
            .item(item.key)
            .await?
            .map_or(0, |existing| existing.attempts);
        let row = RestoreItem {
            run_id: self.run_id.clone(),
            item_key: item.key.to_owned(),
            step_id: item.step_id.to_owned(),
            kind: item.kind.to_owned(),
            primary_id: item.primary_id.to_owned(),
            dr_id: None,
            state: ItemState::Requested,
            client_token: token.map(str::to_owned),
            attempts: attempts + 1,
            detail_json: detail.to_string(),
            last_error: None,
            updated_at_ms: now_ms(),
        };
        self.store.upsert_item(&row).await?;
        Ok(row)
    }

    /// Marks `item` done with the DR id and final detail.
    ///
    /// # Errors
    /// The store's error.
    pub async fn done(
        &self,
        item: &RestoreItem,
        dr_id: &str,
        detail: &Value,
    ) -> Result<RestoreItem, ReconcileError> {
        let row = RestoreItem {
            dr_id: Some(dr_id.to_owned()),
            state: ItemState::Done,
            detail_json: detail.to_string(),
            last_error: None,
            updated_at_ms: now_ms(),
            ..item.clone()
        };
        self.store.upsert_item(&row).await?;
        Ok(row)
    }

    /// Records an error on `item` without ending it (it will be retried).
    ///
    /// # Errors
    /// The store's error.
    pub async fn note_error(&self, item: &RestoreItem, error: &str) -> Result<(), ReconcileError> {
        let row = RestoreItem {
            last_error: Some(error.to_owned()),
            updated_at_ms: now_ms(),
            ..item.clone()
        };
        self.store.upsert_item(&row).await?;
        Ok(())
    }

    /// Marks an item failed for good (it counts against the run).
    ///
    /// # Errors
    /// The store's error.
    pub async fn fail(
        &self,
        item: ItemRef<'_>,
        error: &str,
        detail: &Value,
    ) -> Result<(), ReconcileError> {
        let previous = self.item(item.key).await?;
        let row = RestoreItem {
            run_id: self.run_id.clone(),
            item_key: item.key.to_owned(),
            step_id: item.step_id.to_owned(),
            kind: item.kind.to_owned(),
            primary_id: item.primary_id.to_owned(),
            dr_id: previous.as_ref().and_then(|p| p.dr_id.clone()),
            state: ItemState::Failed,
            client_token: previous.as_ref().and_then(|p| p.client_token.clone()),
            attempts: previous.as_ref().map_or(0, |p| p.attempts),
            detail_json: detail.to_string(),
            last_error: Some(error.to_owned()),
            updated_at_ms: now_ms(),
        };
        self.store.upsert_item(&row).await?;
        Ok(())
    }

    /// Writes a step's state; the start time is kept from an earlier write.
    ///
    /// # Errors
    /// The store's error.
    pub async fn step(
        &self,
        step_id: &str,
        tier: u8,
        kind: &str,
        state: StepState,
        detail: &Value,
    ) -> Result<(), ReconcileError> {
        let existing = self
            .store
            .list_steps(&self.run_id)
            .await?
            .into_iter()
            .find(|s| s.step_id == step_id);
        let now = now_ms();
        let started = existing
            .as_ref()
            .and_then(|s| s.started_at_ms)
            .or(Some(now));
        let finished = matches!(
            state,
            StepState::Done | StepState::Failed | StepState::Skipped
        )
        .then_some(now);
        self.store
            .upsert_step(&RestoreStep {
                run_id: self.run_id.clone(),
                step_id: step_id.to_owned(),
                tier: i32::from(tier),
                kind: kind.to_owned(),
                state,
                started_at_ms: started,
                finished_at_ms: finished,
                detail_json: detail.to_string(),
            })
            .await?;
        Ok(())
    }

    /// Whether the step is already done (a resumed run skips it).
    ///
    /// # Errors
    /// The store's error.
    pub async fn step_done(&self, step_id: &str) -> Result<Option<RestoreStep>, ReconcileError> {
        Ok(self
            .store
            .list_steps(&self.run_id)
            .await?
            .into_iter()
            .find(|s| s.step_id == step_id && s.state == StepState::Done))
    }
}

/// The parsed detail of an item (`{}` when it is not valid JSON).
pub fn detail(item: &RestoreItem) -> Value {
    serde_json::from_str(&item.detail_json).unwrap_or_else(|_| Value::Object(Default::default()))
}

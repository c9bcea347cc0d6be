//! The crash-resumable restore journal (D1, D10, D11): runs, their steps, and the items inside
//! steps. The executor writes an item `requested` with its client token *before* each AWS
//! mutation and `done` with the DR id after it, so a restarted daemon can tell what was sent
//! and finish the run without duplicates. Run creation honours the `Idempotency-Key` of
//! `POST /v1/restores`.

use crate::fence::FencedSql;
use crate::{ItemState, RunMode, RunState, StepState, Store, StoreError};

/// A run to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    /// Run id (also the `pilotlight:run` tag value).
    pub id: String,
    /// Disaster or drill.
    pub mode: RunMode,
    /// Initial state: `awaiting_approval` under the two-person rule, else `pending`.
    pub state: RunState,
    /// Plan only, touch nothing.
    pub dry_run: bool,
    /// Requested tiers (JSON array).
    pub tiers_json: String,
    /// The restore plan (JSON).
    pub plan_json: String,
    /// Principal that declared the run.
    pub requested_by: String,
    /// Client's `Idempotency-Key`, if sent.
    pub idempotency_key: Option<String>,
    /// Declaration time (unix ms).
    pub created_at_ms: i64,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct RestoreRun {
    /// Run id.
    pub id: String,
    /// Disaster or drill.
    pub mode: RunMode,
    /// Current state.
    pub state: RunState,
    /// Plan only.
    pub dry_run: bool,
    /// Requested tiers (JSON array).
    pub tiers_json: String,
    /// The plan (JSON).
    pub plan_json: String,
    /// Declaring principal.
    pub requested_by: String,
    /// Approving principal, once approved.
    pub approved_by: Option<String>,
    /// Client's idempotency key.
    pub idempotency_key: Option<String>,
    /// Declaration time (unix ms).
    pub created_at_ms: i64,
    /// When execution started (unix ms).
    pub started_at_ms: Option<i64>,
    /// When it finished (unix ms).
    pub finished_at_ms: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// The mutable part of a run; [`Store::update_run`] writes every field as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunUpdate {
    /// New state.
    pub state: RunState,
    /// Approving principal.
    pub approved_by: Option<String>,
    /// Start time (unix ms).
    pub started_at_ms: Option<i64>,
    /// Finish time (unix ms).
    pub finished_at_ms: Option<i64>,
    /// Failure reason, or `None`.
    pub error: Option<String>,
}

impl From<&RestoreRun> for RunUpdate {
    /// The current values, to modify and write back.
    fn from(run: &RestoreRun) -> Self {
        RunUpdate {
            state: run.state,
            approved_by: run.approved_by.clone(),
            started_at_ms: run.started_at_ms,
            finished_at_ms: run.finished_at_ms,
            error: run.error.clone(),
        }
    }
}

/// A step of a run; written whole by [`Store::upsert_step`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct RestoreStep {
    /// Owning run.
    pub run_id: String,
    /// Step id, unique within the run (e.g. `"t1/ec2/launch-group-7"`).
    pub step_id: String,
    /// Tier the step belongs to.
    pub tier: i32,
    /// What the step does (e.g. `"ec2_launch"`, `"elb"`, `"dns"`).
    pub kind: String,
    /// Current state.
    pub state: StepState,
    /// Start time (unix ms).
    pub started_at_ms: Option<i64>,
    /// Finish time (unix ms).
    pub finished_at_ms: Option<i64>,
    /// Step details (JSON object).
    pub detail_json: String,
}

/// One journalled AWS mutation of a step; written whole by [`Store::upsert_item`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct RestoreItem {
    /// Owning run.
    pub run_id: String,
    /// Item key, unique within the run (e.g. `"instance/i-0abc"`).
    pub item_key: String,
    /// Step the item belongs to.
    pub step_id: String,
    /// Resource kind created (e.g. `"instance"`, `"load_balancer"`).
    pub kind: String,
    /// Id of the primary resource being restored.
    pub primary_id: String,
    /// Id of the DR resource, once created.
    pub dr_id: Option<String>,
    /// Current state.
    pub state: ItemState,
    /// Idempotency token sent with the mutation (`ClientToken`, `CallerReference`).
    pub client_token: Option<String>,
    /// Number of attempts.
    pub attempts: i32,
    /// Item details (JSON object), e.g. plan-B substitutions.
    pub detail_json: String,
    /// Last error seen.
    pub last_error: Option<String>,
    /// Last write time (unix ms).
    pub updated_at_ms: i64,
}

/// Number of a run's items in one state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct ItemStateCount {
    /// State.
    pub state: ItemState,
    /// Number of items.
    pub count: i64,
}

impl Store {
    /// Creates a run. Returns it with `true`, or — when a run with the same idempotency key
    /// exists — that run with `false` and nothing changed.
    ///
    /// # Errors
    ///
    /// [`StoreError::ActiveDisaster`] when `run` is an active, non-dry-run disaster and another
    /// such run is active (a partial unique index keeps it to one across replicas),
    /// [`StoreError::RunIdConflict`] when the id is taken by a run with another (or no)
    /// idempotency key (or a blocking run finished as this one was refused: try again),
    /// [`StoreError::Query`] when the database fails.
    pub async fn create_run(&self, run: &NewRun) -> Result<(RestoreRun, bool), StoreError> {
        let created = on_pool!(self, |pool| {
            sqlx::query_as::<_, RestoreRun>(
                "INSERT INTO restore_runs (id, mode, state, dry_run, tiers_json, plan_json, \
                 requested_by, idempotency_key, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT DO NOTHING RETURNING *",
            )
            .bind(&run.id)
            .bind(run.mode)
            .bind(run.state)
            .bind(run.dry_run)
            .bind(&run.tiers_json)
            .bind(&run.plan_json)
            .bind(&run.requested_by)
            .bind(run.idempotency_key.as_deref())
            .bind(run.created_at_ms)
            .fetch_optional(pool)
            .await
        })
        .map_err(StoreError::query("create_run"))?;
        if let Some(created) = created {
            return Ok((created, true));
        }
        if let Some(key) = &run.idempotency_key {
            let existing = on_pool!(self, |pool| {
                sqlx::query_as::<_, RestoreRun>(
                    "SELECT * FROM restore_runs WHERE idempotency_key = $1",
                )
                .bind(key)
                .fetch_optional(pool)
                .await
            })
            .map_err(StoreError::query("create_run"))?;
            if let Some(existing) = existing {
                return Ok((existing, false));
            }
        }
        // Not the key: the id, or the one-active-disaster index (migration 0003).
        let taken = self.get_run(&run.id).await?.is_some();
        if !taken && run.mode == RunMode::Disaster && !run.dry_run && run.state.is_active() {
            let active = self.active_runs().await?;
            if let Some(blocking) = active
                .into_iter()
                .find(|r| r.mode == RunMode::Disaster && !r.dry_run)
            {
                return Err(StoreError::ActiveDisaster {
                    run_id: blocking.id,
                });
            }
        }
        // The id is taken, or the blocking run finished meanwhile: the caller tries again.
        Err(StoreError::RunIdConflict {
            run_id: run.id.clone(),
        })
    }

    /// The run with this id, if any.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn get_run(&self, id: &str) -> Result<Option<RestoreRun>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, RestoreRun>("SELECT * FROM restore_runs WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::query("get_run"))
    }

    /// The `limit` most recently declared runs, newest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn list_runs(&self, limit: u32) -> Result<Vec<RestoreRun>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, RestoreRun>(
                "SELECT * FROM restore_runs ORDER BY created_at_ms DESC, id DESC LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::query("list_runs"))
    }

    /// Overwrites the mutable fields of a run and returns the stored row.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when there is no such run, [`StoreError::Query`] when the
    /// database fails.
    /// [`StoreError::Fenced`] on a [fenced](Store::fenced) handle whose tenure is over.
    pub async fn update_run(&self, id: &str, update: &RunUpdate) -> Result<RestoreRun, StoreError> {
        const SQL: FencedSql = fenced_sql!(
            "UPDATE restore_runs SET state = $6, approved_by = $7, started_at_ms = $8, \
             finished_at_ms = $9, error = $10 WHERE id = $5 AND ",
            " RETURNING *"
        );
        let args = self.fence_args("update_run")?;
        let sql = self.pick(&SQL);
        let updated = on_pool!(self, |pool| {
            bind_fence!(sqlx::query_as::<_, RestoreRun>(sql), args)
                .bind(id)
                .bind(update.state)
                .bind(update.approved_by.as_deref())
                .bind(update.started_at_ms)
                .bind(update.finished_at_ms)
                .bind(update.error.as_deref())
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::query("update_run"))?;
        if let Some(run) = updated {
            return Ok(run);
        }
        self.check_fence(&args, "update_run").await?;
        Err(StoreError::NotFound {
            entity: "restore run",
            id: id.to_owned(),
        })
    }

    /// Like [`Store::update_run`], but only while the run is still in `expected` (the state
    /// the caller read): answers the stored row, or `None` when the run has moved on meanwhile
    /// (an operator's cancel and the executor's finish cannot overwrite each other).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    /// [`StoreError::Fenced`] on a [fenced](Store::fenced) handle whose tenure is over.
    pub async fn update_run_if(
        &self,
        id: &str,
        expected: RunState,
        update: &RunUpdate,
    ) -> Result<Option<RestoreRun>, StoreError> {
        const SQL: FencedSql = fenced_sql!(
            "UPDATE restore_runs SET state = $7, approved_by = $8, started_at_ms = $9, \
             finished_at_ms = $10, error = $11 WHERE id = $5 AND state = $6 AND ",
            " RETURNING *"
        );
        let args = self.fence_args("update_run_if")?;
        let sql = self.pick(&SQL);
        let updated = on_pool!(self, |pool| {
            bind_fence!(sqlx::query_as::<_, RestoreRun>(sql), args)
                .bind(id)
                .bind(expected)
                .bind(update.state)
                .bind(update.approved_by.as_deref())
                .bind(update.started_at_ms)
                .bind(update.finished_at_ms)
                .bind(update.error.as_deref())
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::query("update_run_if"))?;
        if updated.is_none() {
            self.check_fence(&args, "update_run_if").await?;
        }
        Ok(updated)
    }

    /// Runs that are not finished (awaiting approval, pending, running or tearing down), oldest
    /// first: what a (new) leader resumes.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn active_runs(&self) -> Result<Vec<RestoreRun>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, RestoreRun>(
                "SELECT * FROM restore_runs WHERE state IN ($1, $2, $3, $4) \
                 ORDER BY created_at_ms, id",
            )
            .bind(RunState::AwaitingApproval)
            .bind(RunState::Pending)
            .bind(RunState::Running)
            .bind(RunState::TearingDown)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::query("active_runs"))
    }

    /// Inserts the step or overwrites every field of the existing (`run_id`, `step_id`).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the run does not exist, [`StoreError::Query`] when the
    /// database fails.
    /// [`StoreError::Fenced`] on a [fenced](Store::fenced) handle whose tenure is over.
    pub async fn upsert_step(&self, step: &RestoreStep) -> Result<(), StoreError> {
        const SQL: FencedSql = fenced_sql!(
            "INSERT INTO restore_steps (run_id, step_id, tier, kind, state, started_at_ms, \
             finished_at_ms, detail_json) SELECT $5, $6, $7, $8, $9, $10, $11, $12 WHERE ",
            " ON CONFLICT (run_id, step_id) DO UPDATE SET tier = excluded.tier, \
             kind = excluded.kind, state = excluded.state, \
             started_at_ms = excluded.started_at_ms, \
             finished_at_ms = excluded.finished_at_ms, detail_json = excluded.detail_json"
        );
        let args = self.fence_args("upsert_step")?;
        let sql = self.pick(&SQL);
        let written = on_pool!(self, |pool| {
            bind_fence!(sqlx::query(sql), args)
                .bind(&step.run_id)
                .bind(&step.step_id)
                .bind(step.tier)
                .bind(&step.kind)
                .bind(step.state)
                .bind(step.started_at_ms)
                .bind(step.finished_at_ms)
                .bind(&step.detail_json)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(StoreError::query_or_missing_parent(
            "upsert_step",
            "restore run",
            &step.run_id,
        ))?;
        if written == 0 {
            self.check_fence(&args, "upsert_step").await?;
        }
        Ok(())
    }

    /// The steps of a run, by tier then step id.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn list_steps(&self, run_id: &str) -> Result<Vec<RestoreStep>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, RestoreStep>(
                "SELECT * FROM restore_steps WHERE run_id = $1 ORDER BY tier, step_id",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::query("list_steps"))
    }

    /// Inserts the item or overwrites every field of the existing (`run_id`, `item_key`).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the run does not exist, [`StoreError::Query`] when the
    /// database fails.
    /// [`StoreError::Fenced`] on a [fenced](Store::fenced) handle whose tenure is over.
    pub async fn upsert_item(&self, item: &RestoreItem) -> Result<(), StoreError> {
        const SQL: FencedSql = fenced_sql!(
            "INSERT INTO restore_items (run_id, item_key, step_id, kind, primary_id, dr_id, \
             state, client_token, attempts, detail_json, last_error, updated_at_ms) \
             SELECT $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16 WHERE ",
            " ON CONFLICT (run_id, item_key) DO UPDATE SET step_id = excluded.step_id, \
             kind = excluded.kind, primary_id = excluded.primary_id, \
             dr_id = excluded.dr_id, state = excluded.state, \
             client_token = excluded.client_token, attempts = excluded.attempts, \
             detail_json = excluded.detail_json, last_error = excluded.last_error, \
             updated_at_ms = excluded.updated_at_ms"
        );
        let args = self.fence_args("upsert_item")?;
        let sql = self.pick(&SQL);
        let written = on_pool!(self, |pool| {
            bind_fence!(sqlx::query(sql), args)
                .bind(&item.run_id)
                .bind(&item.item_key)
                .bind(&item.step_id)
                .bind(&item.kind)
                .bind(&item.primary_id)
                .bind(item.dr_id.as_deref())
                .bind(item.state)
                .bind(item.client_token.as_deref())
                .bind(item.attempts)
                .bind(&item.detail_json)
                .bind(item.last_error.as_deref())
                .bind(item.updated_at_ms)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(StoreError::query_or_missing_parent(
            "upsert_item",
            "restore run",
            &item.run_id,
        ))?;
        if written == 0 {
            self.check_fence(&args, "upsert_item").await?;
        }
        Ok(())
    }

    /// The item `item_key` of a run, if any.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn get_item(
        &self,
        run_id: &str,
        item_key: &str,
    ) -> Result<Option<RestoreItem>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, RestoreItem>(
                "SELECT * FROM restore_items WHERE run_id = $1 AND item_key = $2",
            )
            .bind(run_id)
            .bind(item_key)
            .fetch_optional(pool)
            .await
        })
        .map_err(StoreError::query("get_item"))
    }

    /// The items of a run ordered by key, optionally only those in `state`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn list_items(
        &self,
        run_id: &str,
        state: Option<ItemState>,
    ) -> Result<Vec<RestoreItem>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, RestoreItem>(
                "SELECT * FROM restore_items WHERE run_id = $1 AND ($2 IS NULL OR state = $2) \
                 ORDER BY item_key",
            )
            .bind(run_id)
            .bind(state)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::query("list_items"))
    }

    /// Number of a run's items per state (progress report, D11), ordered by state text.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn item_state_counts(&self, run_id: &str) -> Result<Vec<ItemStateCount>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, ItemStateCount>(
                "SELECT state, COUNT(*) AS count FROM restore_items WHERE run_id = $1 \
                 GROUP BY state ORDER BY state",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::query("item_state_counts"))
    }
}

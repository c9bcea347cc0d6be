//! The copy ledger of R2–R4: one row per (kind, source snapshot/AMI, destination region), with
//! its state, progress, attempts and the DR id once AWS assigned one. Insertion is idempotent
//! on that key, so a reconcile cycle can offer every candidate again without duplicates.

use crate::fence::FencedSql;
use crate::{CopyKind, CopyState, Store, StoreError};

/// A copy to record as `queued`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCopy {
    /// What is copied.
    pub kind: CopyKind,
    /// Snapshot/AMI id in the source region.
    pub source_id: String,
    /// Source region name.
    pub source_region: String,
    /// Volume, DB instance/cluster or instance the source belongs to.
    pub resource_id: String,
    /// Tier of that resource (1 is the most important).
    pub tier: i32,
    /// Destination (DR) region name.
    pub dest_region: String,
    /// Size used to estimate the copy duration.
    pub size_gib: i64,
    /// When the source snapshot/AMI was created (unix ms); the RPO is measured from it.
    pub source_created_at_ms: i64,
}

/// A stored copy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct CopyRecord {
    /// Store-assigned id.
    pub id: i64,
    /// What is copied.
    pub kind: CopyKind,
    /// Source snapshot/AMI id.
    pub source_id: String,
    /// Source region.
    pub source_region: String,
    /// Resource the source belongs to.
    pub resource_id: String,
    /// Tier of that resource.
    pub tier: i32,
    /// Destination region.
    pub dest_region: String,
    /// Id of the copy in the destination region, once known.
    pub dest_id: Option<String>,
    /// Current state.
    pub state: CopyState,
    /// Progress reported by AWS, 0–100.
    pub progress_pct: i32,
    /// Size in GiB.
    pub size_gib: i64,
    /// Creation time of the source (unix ms).
    pub source_created_at_ms: i64,
    /// When the copy was last requested from AWS (unix ms).
    pub requested_at_ms: Option<i64>,
    /// When it completed (unix ms).
    pub completed_at_ms: Option<i64>,
    /// How many times it was requested.
    pub attempts: i32,
    /// Last error seen, if any.
    pub last_error: Option<String>,
}

/// The mutable part of a copy; [`Store::update_copy`] writes every field as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyUpdate {
    /// New state.
    pub state: CopyState,
    /// Progress, 0–100.
    pub progress_pct: i32,
    /// DR id, once known.
    pub dest_id: Option<String>,
    /// Last error, or `None` to clear it.
    pub last_error: Option<String>,
    /// When the copy was requested (unix ms).
    pub requested_at_ms: Option<i64>,
    /// When it completed (unix ms).
    pub completed_at_ms: Option<i64>,
    /// Number of requests so far.
    pub attempts: i32,
}

impl From<&CopyRecord> for CopyUpdate {
    /// The current values, to modify and write back.
    fn from(copy: &CopyRecord) -> Self {
        CopyUpdate {
            state: copy.state,
            progress_pct: copy.progress_pct,
            dest_id: copy.dest_id.clone(),
            last_error: copy.last_error.clone(),
            requested_at_ms: copy.requested_at_ms,
            completed_at_ms: copy.completed_at_ms,
            attempts: copy.attempts,
        }
    }
}

/// The newest completed copy of one resource: what its RPO lag is measured from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct CopyWatermark {
    /// Resource the sources belong to.
    pub resource_id: String,
    /// Tier recorded with its newest completed copy.
    pub tier: i32,
    /// Creation time of the source behind the newest completed copy (unix ms).
    pub source_created_at_ms: i64,
}

/// Number of copies of one kind in one state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct CopyStateCount {
    /// What is copied.
    pub kind: CopyKind,
    /// State.
    pub state: CopyState,
    /// Number of rows.
    pub count: i64,
}

const _: () = assert!(
    CopyState::ALL.len() == 6,
    "list_copies has one state placeholder per CopyState"
);

impl Store {
    /// Records a `queued` copy with zero progress and attempts and returns its id; if a copy
    /// with the same (`kind`, `source_id`, `dest_region`) exists, returns its id and changes
    /// nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    /// [`StoreError::Fenced`] on a [fenced](Store::fenced) handle whose tenure is over.
    pub async fn insert_copy(&self, copy: &NewCopy) -> Result<i64, StoreError> {
        const SQL: FencedSql = fenced_sql!(
            "INSERT INTO copies (kind, source_id, source_region, resource_id, tier, \
             dest_region, state, progress_pct, size_gib, source_created_at_ms, attempts) \
             SELECT $5, $6, $7, $8, $9, $10, $11, 0, $12, $13, 0 WHERE ",
            " ON CONFLICT (kind, source_id, dest_region) DO NOTHING RETURNING id"
        );
        let args = self.fence_args("insert_copy")?;
        let sql = self.pick(&SQL);
        let inserted = on_pool!(self, |pool| {
            bind_fence!(sqlx::query_scalar::<_, i64>(sql), args)
                .bind(copy.kind)
                .bind(&copy.source_id)
                .bind(&copy.source_region)
                .bind(&copy.resource_id)
                .bind(copy.tier)
                .bind(&copy.dest_region)
                .bind(CopyState::Queued)
                .bind(copy.size_gib)
                .bind(copy.source_created_at_ms)
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::query("insert_copy"))?;
        if let Some(id) = inserted {
            return Ok(id);
        }
        self.check_fence(&args, "insert_copy").await?;
        on_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>(
                "SELECT id FROM copies WHERE kind = $1 AND source_id = $2 AND dest_region = $3",
            )
            .bind(copy.kind)
            .bind(&copy.source_id)
            .bind(&copy.dest_region)
            .fetch_one(pool)
            .await
        })
        .map_err(StoreError::query("insert_copy"))
    }

    /// The copy with this id, if any.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn get_copy(&self, id: i64) -> Result<Option<CopyRecord>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, CopyRecord>("SELECT * FROM copies WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::query("get_copy"))
    }

    /// Overwrites the mutable fields of a copy and returns the stored row.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when there is no such copy, [`StoreError::Query`] when the
    /// database fails (including a progress outside 0–100).
    /// [`StoreError::Fenced`] on a [fenced](Store::fenced) handle whose tenure is over.
    pub async fn update_copy(
        &self,
        id: i64,
        update: &CopyUpdate,
    ) -> Result<CopyRecord, StoreError> {
        const SQL: FencedSql = fenced_sql!(
            "UPDATE copies SET state = $6, progress_pct = $7, dest_id = $8, \
             last_error = $9, requested_at_ms = $10, completed_at_ms = $11, attempts = $12 \
             WHERE id = $5 AND ",
            " RETURNING *"
        );
        let args = self.fence_args("update_copy")?;
        let sql = self.pick(&SQL);
        let updated = on_pool!(self, |pool| {
            bind_fence!(sqlx::query_as::<_, CopyRecord>(sql), args)
                .bind(id)
                .bind(update.state)
                .bind(update.progress_pct)
                .bind(update.dest_id.as_deref())
                .bind(update.last_error.as_deref())
                .bind(update.requested_at_ms)
                .bind(update.completed_at_ms)
                .bind(update.attempts)
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::query("update_copy"))?;
        if let Some(copy) = updated {
            return Ok(copy);
        }
        self.check_fence(&args, "update_copy").await?;
        Err(StoreError::NotFound {
            entity: "copy",
            id: id.to_string(),
        })
    }

    /// Up to `limit` copies ordered by id, optionally of one kind, and in one of `states`
    /// (an empty slice means any state).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn list_copies(
        &self,
        kind: Option<CopyKind>,
        states: &[CopyState],
        limit: u32,
    ) -> Result<Vec<CopyRecord>, StoreError> {
        let any_state = states.is_empty();
        // The state filter has one placeholder per possible state, so the SQL stays static:
        // unused slots repeat a wanted state, which does not change the IN list's meaning.
        let wanted: Vec<CopyState> = CopyState::ALL
            .iter()
            .map(|slot| {
                if states.contains(slot) {
                    *slot
                } else {
                    states.first().copied().unwrap_or(*slot)
                }
            })
            .collect();
        on_pool!(self, |pool| {
            let mut query = sqlx::query_as::<_, CopyRecord>(
                "SELECT * FROM copies WHERE ($1 IS NULL OR kind = $1) \
                 AND ($2 OR state IN ($3, $4, $5, $6, $7, $8)) ORDER BY id LIMIT $9",
            )
            .bind(kind)
            .bind(any_state);
            for state in &wanted {
                query = query.bind(*state);
            }
            query.bind(i64::from(limit)).fetch_all(pool).await
        })
        .map_err(StoreError::query("list_copies"))
    }

    /// The copies of `kind` into `dest_region` still in play (`queued` or `in_flight`): what a
    /// reconcile cycle tracks, bounded by the number of protected resources rather than by
    /// history.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn active_copies(
        &self,
        kind: CopyKind,
        dest_region: &str,
    ) -> Result<Vec<CopyRecord>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, CopyRecord>(
                "SELECT * FROM copies WHERE kind = $1 AND dest_region = $2                  AND state IN ($3, $4) ORDER BY id",
            )
            .bind(kind)
            .bind(dest_region)
            .bind(CopyState::Queued)
            .bind(CopyState::InFlight)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::query("active_copies"))
    }

    /// Per resource, the newest completed copy of `kind` into `dest_region` (one row per
    /// resource, however long the history).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn copy_watermarks(
        &self,
        kind: CopyKind,
        dest_region: &str,
    ) -> Result<Vec<CopyWatermark>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, CopyWatermark>(
                "SELECT c.resource_id, MAX(c.tier) AS tier,                  MAX(c.source_created_at_ms) AS source_created_at_ms                  FROM copies c WHERE c.kind = $1 AND c.dest_region = $2 AND c.state = $3                  GROUP BY c.resource_id ORDER BY c.resource_id",
            )
            .bind(kind)
            .bind(dest_region)
            .bind(CopyState::Completed)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::query("copy_watermarks"))
    }

    /// Per resource, the newest completed copy of `kind` into `dest_region` that has a DR id:
    /// what a restore would use (one row per resource; ties on the source time go to the
    /// higher id).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn newest_completed_copies(
        &self,
        kind: CopyKind,
        dest_region: &str,
    ) -> Result<Vec<CopyRecord>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, CopyRecord>(
                "SELECT c.* FROM copies c WHERE c.kind = $1 AND c.dest_region = $2 \
                 AND c.state = $3 AND c.dest_id IS NOT NULL AND NOT EXISTS ( \
                 SELECT 1 FROM copies d WHERE d.kind = c.kind AND d.dest_region = c.dest_region \
                 AND d.resource_id = c.resource_id AND d.state = $3 AND d.dest_id IS NOT NULL \
                 AND (d.source_created_at_ms > c.source_created_at_ms \
                 OR (d.source_created_at_ms = c.source_created_at_ms AND d.id > c.id))) \
                 ORDER BY c.resource_id",
            )
            .bind(kind)
            .bind(dest_region)
            .bind(CopyState::Completed)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::query("newest_completed_copies"))
    }

    /// The copy of `source_id` into `dest_region`, if any (the ledger's unique key).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn copy_by_source(
        &self,
        kind: CopyKind,
        source_id: &str,
        dest_region: &str,
    ) -> Result<Option<CopyRecord>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, CopyRecord>(
                "SELECT * FROM copies WHERE kind = $1 AND source_id = $2 AND dest_region = $3",
            )
            .bind(kind)
            .bind(source_id)
            .bind(dest_region)
            .fetch_optional(pool)
            .await
        })
        .map_err(StoreError::query("copy_by_source"))
    }

    /// Every copy of one resource's sources of `kind` into `dest_region`, newest source
    /// first: what retention (keep the newest N) and the RPO maths look at.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn list_copies_for_resource(
        &self,
        kind: CopyKind,
        resource_id: &str,
        dest_region: &str,
    ) -> Result<Vec<CopyRecord>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, CopyRecord>(
                "SELECT * FROM copies WHERE kind = $1 AND resource_id = $2 \
                 AND dest_region = $3 ORDER BY source_created_at_ms DESC, id DESC",
            )
            .bind(kind)
            .bind(resource_id)
            .bind(dest_region)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::query("list_copies_for_resource"))
    }

    /// Number of copies per (`kind`, `state`), ordered by kind then state text.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn copy_state_counts(&self) -> Result<Vec<CopyStateCount>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, CopyStateCount>(
                "SELECT kind, state, COUNT(*) AS count FROM copies \
                 GROUP BY kind, state ORDER BY kind, state",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::query("copy_state_counts"))
    }
}

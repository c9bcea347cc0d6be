//! The primary → DR resource map of the network mirror (R1): one row per mirrored primary
//! resource (VPC, subnet, security group, route table, gateway, …) with its DR id, the
//! fingerprint of the primary spec last applied, and whether the primary still exists.

use crate::fence::FencedSql;
use crate::{MappingStatus, Store, StoreError};

/// A mapping to insert or overwrite; the key is (`kind`, `primary_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMapping {
    /// Resource kind, e.g. `"vpc"`, `"subnet"`, `"security_group"`.
    pub kind: String,
    /// Id in the primary region.
    pub primary_id: String,
    /// Id of the counterpart in the DR region.
    pub dr_id: String,
    /// Primary region name.
    pub primary_region: String,
    /// DR region name.
    pub dr_region: String,
    /// Hash of the primary spec last applied to the DR counterpart.
    pub fingerprint: String,
    /// Whether the primary resource still exists.
    pub status: MappingStatus,
}

/// A stored mapping.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Mapping {
    /// Resource kind.
    pub kind: String,
    /// Id in the primary region.
    pub primary_id: String,
    /// Id in the DR region.
    pub dr_id: String,
    /// Primary region name.
    pub primary_region: String,
    /// DR region name.
    pub dr_region: String,
    /// Hash of the primary spec last applied.
    pub fingerprint: String,
    /// Whether the primary resource still exists.
    pub status: MappingStatus,
    /// When the mapping was first written (unix ms).
    pub created_at_ms: i64,
    /// When it was last written (unix ms).
    pub updated_at_ms: i64,
}

/// Number of mappings of one kind in one status.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct MappingCount {
    /// Resource kind.
    pub kind: String,
    /// Status.
    pub status: MappingStatus,
    /// Number of rows.
    pub count: i64,
}

impl Store {
    /// Inserts the mapping, or overwrites every field of the existing one except
    /// `created_at_ms`; `updated_at_ms` becomes `now_ms`. Returns the stored row.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    /// [`StoreError::Fenced`] on a [fenced](Store::fenced) handle whose tenure is over.
    pub async fn upsert_mapping(
        &self,
        mapping: &NewMapping,
        now_ms: i64,
    ) -> Result<Mapping, StoreError> {
        const SQL: FencedSql = fenced_sql!(
            "INSERT INTO resource_mappings (kind, primary_id, dr_id, primary_region, \
             dr_region, fingerprint, status, created_at_ms, updated_at_ms) \
             SELECT $5, $6, $7, $8, $9, $10, $11, $12, $12 WHERE ",
            " ON CONFLICT (kind, primary_id) DO UPDATE SET \
             dr_id = excluded.dr_id, primary_region = excluded.primary_region, \
             dr_region = excluded.dr_region, fingerprint = excluded.fingerprint, \
             status = excluded.status, updated_at_ms = excluded.updated_at_ms \
             RETURNING *"
        );
        let args = self.fence_args("upsert_mapping")?;
        let sql = self.pick(&SQL);
        let stored = on_pool!(self, |pool| {
            bind_fence!(sqlx::query_as::<_, Mapping>(sql), args)
                .bind(&mapping.kind)
                .bind(&mapping.primary_id)
                .bind(&mapping.dr_id)
                .bind(&mapping.primary_region)
                .bind(&mapping.dr_region)
                .bind(&mapping.fingerprint)
                .bind(mapping.status)
                .bind(now_ms)
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::query("upsert_mapping"))?;
        if let Some(stored) = stored {
            return Ok(stored);
        }
        self.check_fence(&args, "upsert_mapping").await?;
        Err(self.fenced_out(&args, "upsert_mapping"))
    }

    /// The mapping of (`kind`, `primary_id`), if any.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn get_mapping(
        &self,
        kind: &str,
        primary_id: &str,
    ) -> Result<Option<Mapping>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Mapping>(
                "SELECT * FROM resource_mappings WHERE kind = $1 AND primary_id = $2",
            )
            .bind(kind)
            .bind(primary_id)
            .fetch_optional(pool)
            .await
        })
        .map_err(StoreError::query("get_mapping"))
    }

    /// One page of mappings ordered by (`kind`, `primary_id`), optionally of one kind only.
    /// Keyset paging: pass the (`kind`, `primary_id`) of the last row of the previous page as
    /// `after`; an empty or short page means the end.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn list_mappings(
        &self,
        kind: Option<&str>,
        after: Option<(String, String)>,
        limit: u32,
    ) -> Result<Vec<Mapping>, StoreError> {
        let (after_kind, after_id) = after.unzip();
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Mapping>(
                "SELECT * FROM resource_mappings \
                 WHERE ($1 IS NULL OR kind = $1) \
                 AND ($2 IS NULL OR kind > $2 OR (kind = $2 AND primary_id > $3)) \
                 ORDER BY kind, primary_id LIMIT $4",
            )
            .bind(kind)
            .bind(after_kind.as_deref())
            .bind(after_id.as_deref())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::query("list_mappings"))
    }

    /// Number of mappings per (`kind`, `status`), ordered by kind then status.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn mapping_counts(&self) -> Result<Vec<MappingCount>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, MappingCount>(
                "SELECT kind, status, COUNT(*) AS count FROM resource_mappings \
                 GROUP BY kind, status ORDER BY kind, status",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::query("mapping_counts"))
    }

    /// Sets the status of one mapping (e.g. `orphaned` when the primary resource disappeared)
    /// and its `updated_at_ms`.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when there is no such mapping, [`StoreError::Query`] when the
    /// database fails.
    /// [`StoreError::Fenced`] on a [fenced](Store::fenced) handle whose tenure is over.
    pub async fn set_mapping_status(
        &self,
        kind: &str,
        primary_id: &str,
        status: MappingStatus,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const SQL: FencedSql = fenced_sql!(
            "UPDATE resource_mappings SET status = $7, updated_at_ms = $8 \
             WHERE kind = $5 AND primary_id = $6 AND ",
            ""
        );
        let args = self.fence_args("set_mapping_status")?;
        let sql = self.pick(&SQL);
        let result = on_pool!(self, |pool| {
            bind_fence!(sqlx::query(sql), args)
                .bind(kind)
                .bind(primary_id)
                .bind(status)
                .bind(now_ms)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(StoreError::query("set_mapping_status"))?;
        if result == 0 {
            self.check_fence(&args, "set_mapping_status").await?;
            return Err(StoreError::NotFound {
                entity: "resource mapping",
                id: format!("{kind}/{primary_id}"),
            });
        }
        Ok(())
    }

    /// Deletes one mapping; returns whether it existed.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    /// [`StoreError::Fenced`] on a [fenced](Store::fenced) handle whose tenure is over.
    pub async fn delete_mapping(&self, kind: &str, primary_id: &str) -> Result<bool, StoreError> {
        const SQL: FencedSql = fenced_sql!(
            "DELETE FROM resource_mappings WHERE kind = $5 AND primary_id = $6 AND ",
            ""
        );
        let args = self.fence_args("delete_mapping")?;
        let sql = self.pick(&SQL);
        let deleted = on_pool!(self, |pool| {
            bind_fence!(sqlx::query(sql), args)
                .bind(kind)
                .bind(primary_id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(StoreError::query("delete_mapping"))?;
        if deleted == 0 {
            self.check_fence(&args, "delete_mapping").await?;
        }
        Ok(deleted > 0)
    }
}

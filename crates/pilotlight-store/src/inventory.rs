//! The pointer to the S3 inventory documents (R5): one row per document written to the DR
//! bucket, numbered by an increasing `version`; the restore reads the highest one.

use crate::fence::FencedSql;
use crate::{Store, StoreError};

/// An inventory document that was written to S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInventoryVersion {
    /// Version of the document's JSON schema.
    pub schema_version: i32,
    /// DR-region bucket holding the document.
    pub bucket: String,
    /// Object key of the gzip JSON document.
    pub object_key: String,
    /// Hex SHA-256 of the object's bytes.
    pub sha256: String,
    /// Object size in bytes.
    pub size_bytes: i64,
    /// When the primary estate was captured (unix ms).
    pub captured_at_ms: i64,
    /// Resource counts by class, as a JSON object.
    pub counts_json: String,
    /// Hex SHA-256 of the document without its capture time (equal for equal estates).
    pub digest: String,
}

/// A recorded inventory document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct InventoryVersion {
    /// Store-assigned, increasing version.
    pub version: i64,
    /// Version of the document's JSON schema.
    pub schema_version: i32,
    /// Bucket.
    pub bucket: String,
    /// Object key.
    pub object_key: String,
    /// Hex SHA-256 of the object.
    pub sha256: String,
    /// Object size in bytes.
    pub size_bytes: i64,
    /// Capture time (unix ms).
    pub captured_at_ms: i64,
    /// Resource counts by class (JSON object).
    pub counts_json: String,
    /// Hex SHA-256 of the document without its capture time.
    pub digest: String,
}

impl Store {
    /// Records a new inventory document and returns its version, higher than every earlier one.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    /// [`StoreError::Fenced`] on a [fenced](Store::fenced) handle whose tenure is over.
    pub async fn record_inventory_version(
        &self,
        inventory: &NewInventoryVersion,
    ) -> Result<i64, StoreError> {
        const SQL: FencedSql = fenced_sql!(
            "INSERT INTO inventory_versions (schema_version, bucket, object_key, sha256, \
             size_bytes, captured_at_ms, counts_json, digest) \
             SELECT $5, $6, $7, $8, $9, $10, $11, $12 WHERE ",
            " RETURNING version"
        );
        let args = self.fence_args("record_inventory_version")?;
        let sql = self.pick(&SQL);
        let version = on_pool!(self, |pool| {
            bind_fence!(sqlx::query_scalar::<_, i64>(sql), args)
                .bind(inventory.schema_version)
                .bind(&inventory.bucket)
                .bind(&inventory.object_key)
                .bind(&inventory.sha256)
                .bind(inventory.size_bytes)
                .bind(inventory.captured_at_ms)
                .bind(&inventory.counts_json)
                .bind(&inventory.digest)
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::query("record_inventory_version"))?;
        if let Some(version) = version {
            return Ok(version);
        }
        self.check_fence(&args, "record_inventory_version").await?;
        Err(self.fenced_out(&args, "record_inventory_version"))
    }

    /// The inventory document with the highest version, if any was recorded.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn latest_inventory(&self) -> Result<Option<InventoryVersion>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, InventoryVersion>(
                "SELECT version, schema_version, bucket, object_key, sha256, size_bytes, \
                 captured_at_ms, counts_json, digest FROM inventory_versions ORDER BY version DESC LIMIT 1",
            )
            .fetch_optional(pool)
            .await
        })
        .map_err(StoreError::query("latest_inventory"))
    }
}

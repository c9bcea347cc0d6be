//! Tenants managed through the admin API (SPEC R8): a tenant names the clusters it needs
//! restored. Tenants written in the config file are not stored here; the engine merges both
//! and refuses API writes to a name the config owns.

use crate::{Store, StoreError};

/// A stored tenant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tenant {
    /// Unique name.
    pub name: String,
    /// Cluster tag values, sorted and de-duplicated.
    pub clusters: Vec<String>,
    /// Principal that last wrote it.
    pub updated_by: String,
    /// When it was last written (unix ms).
    pub updated_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct TenantRow {
    name: String,
    clusters_json: String,
    updated_by: String,
    updated_at_ms: i64,
}

impl TenantRow {
    fn into_tenant(self) -> Result<Tenant, StoreError> {
        let clusters =
            serde_json::from_str(&self.clusters_json).map_err(|source| StoreError::Corrupt {
                what: format!("tenants.clusters_json of {}", self.name),
                source,
            })?;
        Ok(Tenant {
            name: self.name,
            clusters,
            updated_by: self.updated_by,
            updated_at_ms: self.updated_at_ms,
        })
    }
}

impl Store {
    /// Creates or replaces tenant `name`; returns whether it was new.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn upsert_tenant(
        &self,
        name: &str,
        clusters: &[String],
        updated_by: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut clusters = clusters.to_vec();
        clusters.sort();
        clusters.dedup();
        let json = serde_json::to_string(&clusters).unwrap_or_else(|_| "[]".to_owned());
        let existed = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM tenants WHERE name = $1")
                .bind(name)
                .fetch_one(pool)
                .await
        })
        .map_err(StoreError::query("upsert_tenant"))?
            > 0;
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO tenants (name, clusters_json, updated_by, updated_at_ms) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET \
                 clusters_json = excluded.clusters_json, updated_by = excluded.updated_by, \
                 updated_at_ms = excluded.updated_at_ms",
            )
            .bind(name)
            .bind(&json)
            .bind(updated_by)
            .bind(now_ms)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(StoreError::query("upsert_tenant"))?;
        Ok(!existed)
    }

    /// Deletes tenant `name`; returns whether it existed.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn delete_tenant(&self, name: &str) -> Result<bool, StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM tenants WHERE name = $1")
                .bind(name)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(StoreError::query("delete_tenant"))?;
        Ok(done > 0)
    }

    /// Every stored tenant, by name.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails; [`StoreError::Corrupt`] when a row's
    /// clusters are not a JSON list.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows = on_pool!(self, |pool| {
            sqlx::query_as::<_, TenantRow>(
                "SELECT name, clusters_json, updated_by, updated_at_ms FROM tenants ORDER BY name",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::query("list_tenants"))?;
        rows.into_iter().map(TenantRow::into_tenant).collect()
    }
}

//! The append-only audit log of admin actions (D1). The store offers no way to change or
//! remove an entry, and a trigger in each engine rejects `UPDATE` and `DELETE` on the table, so
//! not even raw SQL through another client can rewrite history.

use crate::{Store, StoreError};

/// An admin action to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// When it happened (unix ms).
    pub at_ms: i64,
    /// Who did it (token subject).
    pub principal: String,
    /// The role the principal acted in (`viewer`, `operator`, `approver`).
    pub role: String,
    /// What was done, e.g. `"restore.declare"`.
    pub action: String,
    /// What it was done to, e.g. a run id.
    pub target: String,
    /// Further details as a JSON object.
    pub detail_json: String,
}

/// A recorded audit entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    /// Store-assigned, increasing id.
    pub id: i64,
    /// When it happened (unix ms).
    pub at_ms: i64,
    /// Who did it.
    pub principal: String,
    /// In which role.
    pub role: String,
    /// What was done.
    pub action: String,
    /// To what.
    pub target: String,
    /// Details (JSON object).
    pub detail_json: String,
}

impl Store {
    /// Appends an entry and returns its id, higher than every earlier one.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn append_audit(&self, entry: &NewAuditEntry) -> Result<i64, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO audit_log (at_ms, principal, role, action, target, detail_json) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(entry.at_ms)
            .bind(&entry.principal)
            .bind(&entry.role)
            .bind(&entry.action)
            .bind(&entry.target)
            .bind(&entry.detail_json)
            .fetch_one(pool)
            .await
        })
        .map_err(StoreError::query("append_audit"))
    }

    /// Up to `limit` entries in id order, starting after `after_id` (keyset paging: pass the
    /// last id of the previous page).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn list_audit(
        &self,
        after_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, AuditEntry>(
                "SELECT * FROM audit_log WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2",
            )
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::query("list_audit"))
    }
}

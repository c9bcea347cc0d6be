//! The one error type of the store's public boundary, [`StoreError`]: ids and the failing
//! operation live in fields, the driver's error is the `#[source]` and is never repeated in the
//! message.

use std::path::PathBuf;

use crate::Backend;

/// Everything a [`Store`](crate::Store) call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL's scheme names no supported back-end.
    #[error(
        "unsupported state store URL scheme {scheme:?}: use sqlite://PATH, sqlite::memory:, \
         postgres:// or postgresql://"
    )]
    UnsupportedScheme {
        /// The scheme found in the URL (text before the first `:`).
        scheme: String,
    },
    /// The driver rejected the URL (bad port, unknown parameter value, …).
    #[error("invalid {backend} state store URL")]
    InvalidUrl {
        /// The back-end the scheme selected.
        backend: Backend,
        /// The driver's parse error.
        #[source]
        source: sqlx::Error,
    },
    /// The directory that should hold the SQLite file could not be created.
    #[error("cannot create the state store directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The first connection to the database failed.
    #[error("cannot connect to the {backend} state store")]
    Connect {
        /// The back-end.
        backend: Backend,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the embedded migrations failed.
    #[error("cannot migrate the {backend} state store")]
    Migrate {
        /// The back-end.
        backend: Backend,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed (connection lost, constraint violated, lock timeout, …).
    #[error("state store operation {operation} failed")]
    Query {
        /// The [`Store`](crate::Store) method that failed, e.g. `"upsert_mapping"`.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The row an update or a child row refers to does not exist.
    /// A stored JSON value does not parse: the row was written by something else.
    #[error("corrupt value in the state store: {what}")]
    Corrupt {
        /// Table, column and row.
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{entity} {id} not found in the state store")]
    NotFound {
        /// What was looked for, e.g. `"copy"` or `"restore run"`.
        entity: &'static str,
        /// Its key as text.
        id: String,
    },
    /// A fenced write (see [`Store::fenced`](crate::Store::fenced)) was refused: this handle's
    /// tenure no longer holds the lease (taken over, expired, or never started). Nothing was
    /// written; the holder must stop its leader-only work.
    #[error("state store write {operation} refused: not the leader (fencing token {token:?})")]
    Fenced {
        /// The [`Store`](crate::Store) method refused.
        operation: &'static str,
        /// The token of the tenure refused; `None` when there was no tenure.
        token: Option<i64>,
    },
    /// A disaster run is already active: only one may be (enforced by the store across
    /// replicas).
    #[error("disaster run {run_id} is already active")]
    ActiveDisaster {
        /// The active disaster run.
        run_id: String,
    },
    /// A run with this id exists but was not created with the same idempotency key.
    #[error("restore run {run_id} already exists")]
    RunIdConflict {
        /// The run id asked for.
        run_id: String,
    },
}

impl StoreError {
    /// Adapter for `map_err`: wraps a driver error as [`StoreError::Query`] for `operation`.
    pub(crate) fn query(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Query { operation, source }
    }

    /// Like [`StoreError::query`], but a foreign-key violation becomes
    /// [`StoreError::NotFound`] for the parent row (`entity`, `id`).
    pub(crate) fn query_or_missing_parent(
        operation: &'static str,
        entity: &'static str,
        id: &str,
    ) -> impl FnOnce(sqlx::Error) -> StoreError {
        let id = id.to_owned();
        move |source| match &source {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::NotFound { entity, id }
            }
            _ => StoreError::Query { operation, source },
        }
    }
}

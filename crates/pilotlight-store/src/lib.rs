//! pilotlight's state store (SPEC P1): one [`Store`] type over two sqlx back-ends, PostgreSQL
//! for production and SQLite as the embedded default, with the same schema, the same queries
//! and the same test suite for both.
//!
//! It owns everything pilotlight must remember between cycles and across crashes: the primary →
//! DR resource map (R1), the snapshot/AMI copy ledger (R2–R4), the pointer to the latest S3
//! inventory (R5), the crash-resumable restore journal of runs, steps and items (D10), the
//! append-only audit log (D1) and the leader lease with a fencing token (P2), which the
//! leader's writes are checked against ([`Store::fenced`], [`FenceSlot`]).
//!
//! Conventions shared by every table: timestamps are `BIGINT` unix **milliseconds** passed in by
//! the caller (`now_ms`), so tests control time; JSON documents are `TEXT` columns whose Rust
//! field names end in `_json`; closed sets of states are Rust enums stored as their snake_case
//! text (see [`types`]). Every query is written once, in SQL that both engines accept, and
//! expanded for each pool by the private `on_pool!` macro.
//!
//! Bounds: a query waits at most [`ACQUIRE_TIMEOUT`] for a pooled connection and a SQLite
//! writer at most [`SQLITE_BUSY_TIMEOUT`] for the database lock; past either the call fails with
//! [`StoreError::Query`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// Expands `$body` once per back-end, with `$pool` bound to the `PgPool` or the `SqlitePool`,
/// so that every query is written once and type-checked against both drivers.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::Pool::Postgres($pool) => $body,
            $crate::Pool::Sqlite($pool) => $body,
        }
    };
}

#[macro_use]
mod fence;
mod audit;
mod copies;
mod error;
mod inventory;
mod journal;
mod lease;
mod mappings;
mod tenants;
pub mod types;

pub use audit::{AuditEntry, NewAuditEntry};
pub use copies::{CopyRecord, CopyStateCount, CopyUpdate, CopyWatermark, NewCopy};
pub use error::StoreError;
pub use fence::{Fence, FenceSlot};
pub use inventory::{InventoryVersion, NewInventoryVersion};
pub use journal::{ItemStateCount, NewRun, RestoreItem, RestoreRun, RestoreStep, RunUpdate};
pub use lease::Lease;
pub use mappings::{Mapping, MappingCount, NewMapping};
pub use tenants::Tenant;
pub use types::{
    CopyKind, CopyState, ItemState, MappingStatus, RunMode, RunState, StepState, UnknownValue,
};

/// How long a query waits for a free pooled connection before failing.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a SQLite statement waits for another connection's write lock before failing.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Which database engine a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// PostgreSQL (`postgres://` or `postgresql://`), for production and high availability.
    Postgres,
    /// SQLite (`sqlite://PATH` or `sqlite::memory:`), the embedded default.
    Sqlite,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        })
    }
}

/// Connection-pool settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Upper bound on open connections (0 counts as 1). An in-memory SQLite store always uses exactly one
    /// connection, because each connection would otherwise see its own empty database.
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
        }
    }
}

#[derive(Debug, Clone)]
enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Handle to the state store; cheap to clone (clones share one connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// Set on the leader's handle (see [`Store::fenced`]).
    fence: Option<FenceSlot>,
}

impl Store {
    /// Opens a connection pool for `url`:
    ///
    /// - `sqlite://PATH` (or `sqlite:PATH`): the file and its parent directory are created if
    ///   missing; WAL journal, `synchronous = NORMAL`, foreign keys on, [`SQLITE_BUSY_TIMEOUT`].
    /// - `sqlite::memory:`: a private in-memory database held by a single connection (tests).
    /// - `postgres://…` or `postgresql://…`: any URL sqlx accepts, including
    ///   `?host=/socket/dir` for a unix socket.
    ///
    /// The schema is not touched; call [`Store::migrate`] next.
    ///
    /// # Errors
    ///
    /// [`StoreError::UnsupportedScheme`] for any other scheme, [`StoreError::InvalidUrl`] when
    /// the driver rejects the URL, [`StoreError::CreateDir`] when the SQLite parent directory
    /// cannot be created and [`StoreError::Connect`] when the first connection fails.
    pub async fn connect(url: &str, opts: &StoreOptions) -> Result<Store, StoreError> {
        let max_connections = opts.max_connections.max(1);
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options =
                PgConnectOptions::from_str(url).map_err(|source| StoreError::InvalidUrl {
                    backend: Backend::Postgres,
                    source,
                })?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(|source| StoreError::Connect {
                    backend: Backend::Postgres,
                    source,
                })?;
            tracing::debug!(backend = %Backend::Postgres, "state store connected");
            return Ok(Store {
                pool: Pool::Postgres(pool),
                fence: None,
            });
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let pool = connect_sqlite(url, rest, max_connections).await?;
            tracing::debug!(backend = %Backend::Sqlite, "state store connected");
            return Ok(Store {
                pool: Pool::Sqlite(pool),
                fence: None,
            });
        }
        let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
        Err(StoreError::UnsupportedScheme {
            scheme: scheme.to_owned(),
        })
    }

    /// Applies the embedded migrations of this back-end (`migrations/postgres` or
    /// `migrations/sqlite`) that have not run yet. Safe to call on every start and from several
    /// replicas at once (PostgreSQL serialises them with an advisory lock).
    ///
    /// # Errors
    ///
    /// [`StoreError::Migrate`] when a migration fails or the database holds a migration this
    /// build does not know (a newer pilotlight ran against it).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let result = match &self.pool {
            Pool::Postgres(pool) => POSTGRES_MIGRATOR.run(pool).await,
            Pool::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await,
        };
        result.map_err(|source| StoreError::Migrate {
            backend: self.backend(),
            source,
        })?;
        tracing::info!(backend = %self.backend(), "state store schema is up to date");
        Ok(())
    }

    /// The engine behind this store.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Postgres(_) => Backend::Postgres,
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Runs a trivial query to prove the database answers (used by `/readyz`).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when no connection can be obtained or the query fails.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(StoreError::query("ping"))?;
        Ok(())
    }

    /// Closes the pool: new queries fail, and this waits until every connection is returned
    /// and closed. SQLite checkpoints its WAL as its last connection closes.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await);
    }
}

async fn connect_sqlite(
    url: &str,
    rest: &str,
    max_connections: u32,
) -> Result<SqlitePool, StoreError> {
    let invalid = |source| StoreError::InvalidUrl {
        backend: Backend::Sqlite,
        source,
    };
    let connect_error = |source| StoreError::Connect {
        backend: Backend::Sqlite,
        source,
    };
    let database = rest.trim_start_matches("//");
    let (path, params) = database.split_once('?').unwrap_or((database, ""));
    let in_memory = path == ":memory:" || params.split('&').any(|p| p == "mode=memory");
    let options = SqliteConnectOptions::from_str(url)
        .map_err(invalid)?
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);

    if in_memory {
        // One connection that never expires: the database lives exactly as long as it does.
        return SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(connect_error);
    }

    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    if let Some(parent) = options.get_filename().parent()
        && !parent.as_os_str().is_empty()
    {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|source| StoreError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
    }
    // Switching to WAL takes an exclusive lock that the busy timeout does not cover, so do it on
    // one connection before the pool opens several at once.
    let first = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.clone())
        .await
        .map_err(connect_error)?;
    first.close().await;
    SqlitePoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(connect_error)
}

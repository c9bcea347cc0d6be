//! Fenced writes (P2): the leader's background work writes through a [`Store`] that carries a
//! [`FenceSlot`], and every such write is refused once the lease it was granted under is gone.
//!
//! The slot holds the current tenure's [`Fence`] (lease name, holder, fencing token), set by the
//! daemon's leadership loop when it starts the reconcilers and the restore executor and cleared
//! when it stops them. A fenced write is **one statement** whose `WHERE` includes the lease
//! check, so the check and the write are atomic:
//!
//! - PostgreSQL: `EXISTS (SELECT 1 FROM leader_lease WHERE name = $1 AND holder = $2 AND
//!   fencing_token = $3 AND expires_at_ms > $4 FOR SHARE)` — the row lock makes a concurrent
//!   take-over (an `UPDATE` of that row) wait until the write has committed, and a write that
//!   runs after a take-over committed re-reads the row and finds another holder. The statement
//!   never waits on the client, so a paused process cannot hold the lock.
//! - SQLite: the same without `FOR SHARE`; a write statement holds the database's write lock
//!   from start to end, which serialises it with the take-over.
//!
//! A write that changes no row is then told apart: if the fence no longer holds it fails with
//! [`StoreError::Fenced`], the slot is emptied (later writes fail without a query) and the
//! tenure is published as deposed ([`FenceSlot::deposed`]), which the leader election watches
//! to step down at once. A store
//! without a slot (the API's, on every replica) writes unconditionally: `$1` is `NULL`.
//!
//! The lease's expiry is judged by this process's clock, like the election itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use crate::{Store, StoreError};

/// One tenure of a lease: what a fenced write proves it still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// Lease name (the `leader_lease.name` row).
    pub lease: String,
    /// This replica's holder id.
    pub holder: String,
    /// The fencing token the tenure was granted.
    pub token: i64,
}

/// The fence a [`Store`] handle's writes are checked against; shared by its clones.
///
/// Empty (no tenure) means every fenced write is refused without touching the database.
#[derive(Debug, Clone)]
pub struct FenceSlot(Arc<SlotInner>);

#[derive(Debug)]
struct SlotInner {
    current: RwLock<Option<Fence>>,
    /// Writes refused so far (with or without a tenure).
    refused: AtomicU64,
    /// The last tenure the database showed deposed.
    deposed: watch::Sender<Option<Fence>>,
}

impl Default for FenceSlot {
    fn default() -> Self {
        FenceSlot(Arc::new(SlotInner {
            current: RwLock::new(None),
            refused: AtomicU64::new(0),
            deposed: watch::Sender::new(None),
        }))
    }
}

impl FenceSlot {
    /// An empty slot: fenced writes are refused until [`FenceSlot::set`] gives it a tenure.
    pub fn new() -> FenceSlot {
        FenceSlot::default()
    }

    /// Starts (`Some`) or ends (`None`) a tenure.
    pub fn set(&self, fence: Option<Fence>) {
        *self
            .0
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fence;
    }

    /// The current tenure, if any.
    pub fn current(&self) -> Option<Fence> {
        self.0
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Follows the last tenure a fenced write found deposed (its lease taken over or lapsed):
    /// the leader election steps down when that is its current tenure.
    pub fn deposed(&self) -> watch::Receiver<Option<Fence>> {
        self.0.deposed.subscribe()
    }

    /// How many fenced writes have been refused so far.
    pub fn refused(&self) -> u64 {
        self.0.refused.load(Ordering::Relaxed)
    }

    /// Records a refusal of `operation` under `fence` (`None`: there was no tenure). A tenure
    /// the database refused ends (if it is still the current one) and is published as deposed.
    fn refuse(&self, fence: Option<&Fence>, operation: &'static str) {
        self.0.refused.fetch_add(1, Ordering::Relaxed);
        let Some(fence) = fence else {
            tracing::debug!(operation, "fenced write refused: not leading");
            return;
        };
        let ended = {
            let mut current = self
                .0
                .current
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let ended = current.as_ref() == Some(fence);
            if ended {
                *current = None;
            }
            ended
        };
        if ended {
            tracing::error!(
                lease = %fence.lease,
                holder = %fence.holder,
                fencing_token = fence.token,
                operation,
                "fenced write refused: this replica no longer holds the leader lease; \
                 stepping down"
            );
        }
        self.0.deposed.send_replace(Some(fence.clone()));
    }
}

/// The lease condition of a fenced statement, with `$1`–`$4` = lease name (NULL when
/// unfenced), holder, token, now (unix ms).
macro_rules! fence_condition {
    (postgres) => {
        "($1 IS NULL OR EXISTS (SELECT 1 FROM leader_lease WHERE name = $1 AND holder = $2 \
         AND fencing_token = $3 AND expires_at_ms > $4 FOR SHARE))"
    };
    (sqlite) => {
        "($1 IS NULL OR EXISTS (SELECT 1 FROM leader_lease WHERE name = $1 AND holder = $2 \
         AND fencing_token = $3 AND expires_at_ms > $4))"
    };
}

/// A fenced statement for both back-ends: `$before` + the lease condition + `$after`. The
/// statement's own parameters start at `$5`.
macro_rules! fenced_sql {
    ($before:literal, $after:literal) => {
        $crate::fence::FencedSql {
            postgres: concat!($before, fence_condition!(postgres), $after),
            sqlite: concat!($before, fence_condition!(sqlite), $after),
        }
    };
}

/// The two spellings of one fenced statement (see [`fenced_sql!`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FencedSql {
    pub(crate) postgres: &'static str,
    pub(crate) sqlite: &'static str,
}

/// The values of `$1`–`$4` of a fenced statement.
#[derive(Debug, Clone)]
pub(crate) struct FenceArgs {
    pub(crate) fence: Option<Fence>,
    pub(crate) now_ms: i64,
}

impl FenceArgs {
    pub(crate) fn lease(&self) -> Option<&str> {
        self.fence.as_ref().map(|f| f.lease.as_str())
    }
    pub(crate) fn holder(&self) -> Option<&str> {
        self.fence.as_ref().map(|f| f.holder.as_str())
    }
    pub(crate) fn token(&self) -> Option<i64> {
        self.fence.as_ref().map(|f| f.token)
    }
}

/// Binds `$1`–`$4` of a fenced statement (see [`fenced_sql!`]).
macro_rules! bind_fence {
    ($query:expr, $args:expr) => {
        $query
            .bind($args.lease())
            .bind($args.holder())
            .bind($args.token())
            .bind($args.now_ms)
    };
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

impl Store {
    /// A handle on the same pool whose leader-only writes (the restore journal's run updates,
    /// steps and items; the copy ledger; resource mappings; inventory versions) are fenced by
    /// `slot`. Other writes and every read behave as on `self`.
    pub fn fenced(&self, slot: &FenceSlot) -> Store {
        Store {
            pool: self.pool.clone(),
            fence: Some(slot.clone()),
        }
    }

    /// The slot this handle's writes are fenced by, if any.
    pub fn fence_slot(&self) -> Option<&FenceSlot> {
        self.fence.as_ref()
    }

    /// The SQL of `sql` for this back-end.
    pub(crate) fn pick(&self, sql: &FencedSql) -> &'static str {
        match self.pool {
            crate::Pool::Postgres(_) => sql.postgres,
            crate::Pool::Sqlite(_) => sql.sqlite,
        }
    }

    /// The fence arguments of a write of `operation`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Fenced`] when this handle is fenced and its slot holds no tenure.
    pub(crate) fn fence_args(&self, operation: &'static str) -> Result<FenceArgs, StoreError> {
        let now_ms = wall_clock_ms();
        let Some(slot) = &self.fence else {
            return Ok(FenceArgs {
                fence: None,
                now_ms,
            });
        };
        match slot.current() {
            Some(fence) => Ok(FenceArgs {
                fence: Some(fence),
                now_ms,
            }),
            None => {
                slot.refuse(None, operation);
                Err(StoreError::Fenced {
                    operation,
                    token: None,
                })
            }
        }
    }

    /// After a fenced write of `operation` changed no row: whether that was the fence.
    ///
    /// # Errors
    ///
    /// [`StoreError::Fenced`] when the tenure in `args` no longer holds the lease (the slot is
    /// emptied and its refusal counter moves); [`StoreError::Query`] when the check fails.
    pub(crate) async fn check_fence(
        &self,
        args: &FenceArgs,
        operation: &'static str,
    ) -> Result<(), StoreError> {
        let (Some(slot), Some(fence)) = (&self.fence, &args.fence) else {
            return Ok(());
        };
        if self
            .holds_lease(&fence.lease, &fence.holder, fence.token, wall_clock_ms())
            .await?
        {
            return Ok(());
        }
        slot.refuse(Some(fence), operation);
        Err(StoreError::Fenced {
            operation,
            token: Some(fence.token),
        })
    }

    /// The answer of a fenced write that must return a row and returned none although
    /// [`Store::check_fence`] passed: only the fence filters those statements, so the lease
    /// was not held when it ran; the write is reported as refused.
    pub(crate) fn fenced_out(&self, args: &FenceArgs, operation: &'static str) -> StoreError {
        StoreError::Fenced {
            operation,
            token: args.token(),
        }
    }
}

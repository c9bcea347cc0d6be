//! The leader lease of P2: one row per lease name with its holder, expiry and a fencing token
//! that grows by one every time the lease changes hands (or lapses and is taken again), so work
//! stamped with an older token can be recognised as coming from a deposed leader.
//!
//! Acquisition is a single `INSERT … ON CONFLICT DO UPDATE … WHERE` statement whose outcome
//! is read from `RETURNING`, so concurrent candidates on any number of replicas cannot both
//! win. Expiry is judged by the callers' `now_ms`: replicas' clocks must agree to well within
//! the TTL.

use crate::{Store, StoreError};

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Lease {
    /// Lease name, e.g. `"leader"`.
    pub name: String,
    /// Holder identity (unique per process, e.g. host + pid + random suffix).
    pub holder: String,
    /// Increases by one on every change of hands; never reused.
    pub fencing_token: i64,
    /// When the current holder's tenure began (unix ms); kept across renewals.
    pub acquired_at_ms: i64,
    /// When the lease lapses unless renewed (unix ms); 0 after a release.
    pub expires_at_ms: i64,
}

impl Lease {
    /// Whether the lease is held at `now_ms`.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.expires_at_ms > now_ms
    }
}

impl Store {
    /// Acquires or renews the lease `name` for `holder` until `now_ms + ttl_ms`.
    ///
    /// - No row yet: created with fencing token 1.
    /// - Held by `holder` and live: renewed; token and `acquired_at_ms` unchanged.
    /// - Expired or released (whoever held it): taken; token + 1, `acquired_at_ms = now_ms`.
    /// - Live and held by someone else: `None`, nothing changes.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<Option<Lease>, StoreError> {
        let expires_at_ms = now_ms.saturating_add(ttl_ms);
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Lease>(
                "INSERT INTO leader_lease (name, holder, fencing_token, acquired_at_ms, \
                 expires_at_ms) VALUES ($1, $2, 1, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET \
                 fencing_token = CASE \
                   WHEN leader_lease.holder = excluded.holder \
                    AND leader_lease.expires_at_ms > $3 \
                   THEN leader_lease.fencing_token ELSE leader_lease.fencing_token + 1 END, \
                 acquired_at_ms = CASE \
                   WHEN leader_lease.holder = excluded.holder \
                    AND leader_lease.expires_at_ms > $3 \
                   THEN leader_lease.acquired_at_ms ELSE excluded.acquired_at_ms END, \
                 holder = excluded.holder, \
                 expires_at_ms = excluded.expires_at_ms \
                 WHERE leader_lease.holder = excluded.holder \
                    OR leader_lease.expires_at_ms <= $3 \
                 RETURNING name, holder, fencing_token, acquired_at_ms, expires_at_ms",
            )
            .bind(name)
            .bind(holder)
            .bind(now_ms)
            .bind(expires_at_ms)
            .fetch_optional(pool)
            .await
        })
        .map_err(StoreError::query("try_acquire_lease"))
    }

    /// Gives the lease up if `holder` holds it, so another candidate can take it at once (with
    /// the next fencing token). Returns whether `holder` was the holder.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<bool, StoreError> {
        let released = on_pool!(self, |pool| {
            sqlx::query("UPDATE leader_lease SET expires_at_ms = 0 WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(StoreError::query("release_lease"))?;
        Ok(released > 0)
    }

    /// The stored lease row, live or not (see [`Lease::is_live`]); `None` if never acquired.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn current_lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Lease>("SELECT * FROM leader_lease WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::query("current_lease"))
    }

    /// The fencing check: whether `holder` still holds `name` with `fencing_token` at `now_ms`.
    /// A leader calls it before a mutation it must not make once deposed.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn holds_lease(
        &self,
        name: &str,
        holder: &str,
        fencing_token: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let held = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM leader_lease WHERE name = $1 AND holder = $2 \
                 AND fencing_token = $3 AND expires_at_ms > $4",
            )
            .bind(name)
            .bind(holder)
            .bind(fencing_token)
            .bind(now_ms)
            .fetch_one(pool)
            .await
        })
        .map_err(StoreError::query("holds_lease"))?;
        Ok(held > 0)
    }
}

//! Leader election over the store's lease row (P2): exactly one replica runs the reconcilers.
//!
//! [`LeaderElector::run`] renews the lease every third of its TTL. It reports changes on a
//! `watch` channel: `Some(fence)` = this replica leads with that tenure (lease, holder, fencing
//! token), `None` = it follows; the daemon starts the scheduler and the restore executor for a
//! tenure, with their store handle fenced by it, and stops them when the value changes. A
//! replica that cannot reach the store for a whole TTL steps down, so two replicas never both
//! believe they lead for longer than the clock skew between them. A replica whose fenced write
//! the store refused (a paused process whose lease was taken over, see
//! [`pilotlight_store::FenceSlot`]) steps down at once, without waiting for its next renewal,
//! and then checks the lease again. With SQLite the same row serialises processes sharing the
//! file.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use pilotlight_store::{Fence, FenceSlot, Store};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What this replica knows about the lease.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct LeaderInfo {
    /// This replica's holder id.
    pub holder_id: String,
    pub is_leader: bool,
    /// The current holder, if any live lease exists.
    pub leader: Option<String>,
    pub fencing_token: Option<i64>,
    pub expires_at_ms: Option<i64>,
    /// Whether the last lease check reached the store.
    pub store_reachable: bool,
    /// Whether at least one check has completed.
    pub checked: bool,
}

/// Shared view of [`LeaderInfo`].
#[derive(Debug, Clone, Default)]
pub struct LeaderState(Arc<RwLock<LeaderInfo>>);

impl LeaderState {
    pub fn get(&self) -> LeaderInfo {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set(&self, info: LeaderInfo) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = info;
    }
}

/// Runs the lease loop.
#[derive(Debug)]
pub struct LeaderElector {
    pub store: Store,
    pub lease_name: String,
    pub holder_id: String,
    pub ttl: Duration,
    pub state: LeaderState,
    /// The slot the leader's store handle is fenced by: a tenure it reports deposed ends here.
    pub fence: FenceSlot,
}

impl LeaderElector {
    /// Keeps trying to take and renew the lease until `cancel`; then releases it.
    ///
    /// # Cancellation
    /// On cancel the lease is released (best effort) so a successor need not wait for expiry.
    pub async fn run(self, leading: watch::Sender<Option<Fence>>, cancel: CancellationToken) {
        let ttl_ms = self.ttl.as_millis() as i64;
        let period = self.ttl / 3;
        let mut last_ok_ms = crate::now_ms();
        let mut deposed = self.fence.deposed();
        deposed.mark_unchanged();
        loop {
            let now = crate::now_ms();
            let mut info = LeaderInfo {
                holder_id: self.holder_id.clone(),
                checked: true,
                ..LeaderInfo::default()
            };
            match self
                .store
                .try_acquire_lease(&self.lease_name, &self.holder_id, ttl_ms, now)
                .await
            {
                Ok(Some(lease)) => {
                    last_ok_ms = now;
                    info.is_leader = true;
                    info.store_reachable = true;
                    info.leader = Some(lease.holder);
                    info.fencing_token = Some(lease.fencing_token);
                    info.expires_at_ms = Some(lease.expires_at_ms);
                }
                Ok(None) => {
                    last_ok_ms = now;
                    info.store_reachable = true;
                    if let Ok(Some(l)) = self.store.current_lease(&self.lease_name).await {
                        info.leader = Some(l.holder);
                        info.fencing_token = Some(l.fencing_token);
                        info.expires_at_ms = Some(l.expires_at_ms);
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %crate::scheduler::error_chain(&err), "lease check failed");
                    // Keep leading only while the lease we hold cannot have expired.
                    let previous = self.state.get();
                    info.is_leader = previous.is_leader && now - last_ok_ms < ttl_ms;
                    info.leader = previous.leader;
                    info.fencing_token = previous.fencing_token;
                    info.expires_at_ms = previous.expires_at_ms;
                }
            }
            let tenure = self.tenure(&info);
            self.state.set(info);
            leading.send_if_modified(|v| {
                let changed = *v != tenure;
                v.clone_from(&tenure);
                changed
            });
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(period) => {}
                changed = deposed.changed() => {
                    let gone = deposed.borrow_and_update().clone();
                    if changed.is_ok() && gone.is_some() && gone == *leading.borrow() {
                        tracing::error!(
                            fencing_token = gone.as_ref().map(|f| f.token),
                            "the store refused this leader's write: its lease was taken over \
                             or lapsed; stepping down and checking the lease again"
                        );
                        let mut info = self.state.get();
                        info.is_leader = false;
                        self.state.set(info);
                        leading.send_replace(None);
                    }
                }
            }
        }
        if self.state.get().is_leader {
            let _ = self
                .store
                .release_lease(&self.lease_name, &self.holder_id)
                .await;
        }
        leading.send_replace(None);
    }

    /// The tenure `info` describes, if this replica leads.
    fn tenure(&self, info: &LeaderInfo) -> Option<Fence> {
        (info.is_leader)
            .then_some(info.fencing_token)
            .flatten()
            .map(|token| Fence {
                lease: self.lease_name.clone(),
                holder: self.holder_id.clone(),
                token,
            })
    }
}

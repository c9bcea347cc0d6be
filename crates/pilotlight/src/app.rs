//! The daemon: wires the store, AWS handles, reconcilers, leader election and the API together.
//!
//! Task tree (all under one [`CancellationToken`]):
//!
//! ```text
//! run
//! ├── admin API server           (stops last, after the scheduler has drained)
//! ├── metrics server
//! ├── leader elector             (renews the lease; reports leading / following)
//! └── leadership loop            (while leading: a Scheduler and the restore Executor, their
//!     │                           writes fenced by the tenure's token; both cancelled when
//!     │                           the lease is lost or a fenced write is refused)
//!     ├── scheduler → reconcilers (network, ebs_snapshot, …; those reading the primary pause
//!     │                           in restore mode)
//!     └── restore executor        (executes pending and running restore runs, one at a time)
//! ```
//!
//! The admin API declares, approves and cancels restore runs on any replica through the
//! [`RestoreService`]; only the leader executes them. A declaration wakes the leader's executor
//! at once when it is this replica; another replica's executor finds the run within a second.
//!
//! Shutdown has two phases: when `shutdown` fires the scheduler stops starting work and the
//! running reconciles stop at their next recorded point; `run` waits for that up to
//! `daemon.shutdown_grace_secs`, then stops the servers, releases the lease and returns. The
//! binary turns a second signal into an immediate exit.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use pilotlight_api::auth_table;
use pilotlight_api::{ApiLimits, ApiState, DaemonInfo};
use pilotlight_aws::acm::DrAcm;
use pilotlight_aws::cache::CacheMetrics;
use pilotlight_aws::capture::PrimaryHandles;
use pilotlight_aws::cloudwatch::PrimaryCloudWatch;
use pilotlight_aws::ec2::{DrEc2, PrimaryEc2};
use pilotlight_aws::metrics::AwsMetrics;
use pilotlight_aws::s3::{DrS3, PrimaryS3};
use pilotlight_aws::throttle::{Throttle, ThrottleSettings};
use pilotlight_aws::{AwsCtx, AwsSettings, Credentials, RetryMode};
use pilotlight_core::aws_limits::Bucket;
use pilotlight_core::config::{self, Config};
use pilotlight_core::copy::{CopyKind, Limits};
use pilotlight_core::cron::Cron;
use pilotlight_core::network::MirrorScope;
use pilotlight_engine::copy::{CopyReconciler, CopySettings, EbsCopies, EbsSelection, RpoBoard};
use pilotlight_engine::drill::{DrillMetrics, DrillSchedule};
use pilotlight_engine::estate::{
    EstateMetrics, InventoryBoard, InventoryReconciler, Planner, ReadinessBoard,
    ReadinessReconciler, S3Board, S3WatchReconciler,
};
use pilotlight_engine::leader::{LeaderElector, LeaderState};
use pilotlight_engine::metrics::EngineMetrics;
use pilotlight_engine::network::{NetworkReconciler, NetworkSettings};
use pilotlight_engine::restore::progress::RestoreMetrics;
use pilotlight_engine::restore::{Executor, ExecutorDeps, RestoreMode, RestoreService};
use pilotlight_engine::{Reconciler, Scheduler, SchedulerHandle, StatusBoard};
use pilotlight_store::{FenceSlot, Store, StoreOptions};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::secrets::Secrets;

/// The name of the leader lease row.
pub const LEASE_NAME: &str = "pilotlight-leader";

/// The two listening sockets, bound before `run` so tests can use port 0.
#[derive(Debug)]
pub struct Listeners {
    pub api: TcpListener,
    pub metrics: TcpListener,
}

impl Listeners {
    /// Binds the configured addresses.
    ///
    /// # Errors
    /// When an address cannot be bound.
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let api = TcpListener::bind(config.api.listen)
            .await
            .with_context(|| format!("binding the admin API on {}", config.api.listen))?;
        let metrics = TcpListener::bind(config.api.metrics_listen)
            .await
            .with_context(|| format!("binding /metrics on {}", config.api.metrics_listen))?;
        Ok(Listeners { api, metrics })
    }

    pub fn addrs(&self) -> (SocketAddr, SocketAddr) {
        (
            self.api
                .local_addr()
                .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into()),
            self.metrics
                .local_addr()
                .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into()),
        )
    }
}

/// A validated config with its secrets read.
#[derive(Debug)]
pub struct Daemon {
    pub config: Config,
    pub secrets: Secrets,
}

/// The store URL: the secret file's when configured, else the config's (SQLite by default).
pub fn store_url(daemon: &Daemon) -> String {
    daemon
        .secrets
        .store_url
        .as_ref()
        .map(|s| s.expose().to_owned())
        .unwrap_or_else(|| daemon.config.store_url())
}

/// Opens the store and applies migrations.
///
/// # Errors
/// Connection or migration failure.
pub async fn open_store(daemon: &Daemon) -> anyhow::Result<Store> {
    let store = Store::connect(
        &store_url(daemon),
        &StoreOptions {
            max_connections: daemon.config.store.max_connections,
        },
    )
    .await
    .context("connecting to the state store")?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

fn aws_settings(daemon: &Daemon) -> AwsSettings {
    let c = &daemon.config.aws;
    AwsSettings {
        endpoint_url: c.endpoint_url.clone(),
        s3_force_path_style: c.s3_force_path_style,
        credentials: match &daemon.secrets.aws_keys {
            Some((a, s)) => Credentials::Static {
                access_key_id: a.expose().to_owned(),
                secret_access_key: s.expose().to_owned(),
            },
            None => Credentials::DefaultChain,
        },
        retry_mode: match c.retry_mode {
            config::RetryMode::Standard => RetryMode::Standard,
            config::RetryMode::Adaptive => RetryMode::Adaptive,
        },
        max_attempts: c.max_attempts,
        connect_timeout: Duration::from_secs(c.connect_timeout_secs),
        operation_timeout: Duration::from_secs(c.operation_timeout_secs),
    }
}

fn throttle_settings(config: &Config) -> ThrottleSettings {
    ThrottleSettings {
        time_scale: config.throttle.time_scale,
        overrides: config
            .throttle
            .overrides
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    Bucket {
                        capacity: f64::from(v.burst),
                        refill_per_sec: v.refill_per_sec,
                    },
                )
            })
            .collect::<HashMap<_, _>>(),
    }
}

fn kms_keys(config: &Config) -> pilotlight_engine::copy::KmsKeys {
    pilotlight_engine::copy::KmsKeys {
        map: config.copy.kms_key_map.clone(),
        default: config.copy.dr_default_kms_key.clone(),
    }
}

fn copy_settings(config: &Config) -> CopySettings {
    let c = &config.copy;
    CopySettings {
        primary_region: config.regions.primary.clone(),
        dr_region: config.regions.dr.clone(),
        limits: Limits::from_config(c),
        keep: BTreeMap::from([
            (CopyKind::EbsSnapshot, c.keep_per_volume),
            (CopyKind::RdsSnapshot, c.keep_per_db),
            (CopyKind::RdsClusterSnapshot, c.keep_per_db),
            (CopyKind::Ami, c.keep_per_image),
        ]),
        rpo_secs: config.tiers.rpo_secs.clone(),
        default_tier: config.tiers.default_tier,
        cycle: Duration::from_secs(c.cycle_secs),
        max_backoff: Duration::from_secs(config.reconcile.max_backoff_secs),
        copy_timeout: Duration::from_secs(c.copy_timeout_secs),
    }
}

fn holder_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "pilotlight".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{host}-{}-{nanos:08x}", std::process::id())
}

/// The handles of every metric the daemon records.
#[derive(Debug)]
pub struct DaemonMetrics {
    pub aws: AwsMetrics,
    pub engine: EngineMetrics,
    pub estate: EstateMetrics,
    pub cache: CacheMetrics,
    pub restore: RestoreMetrics,
    pub drill: DrillMetrics,
    /// `pilotlight_leader`.
    pub leader: Gauge<i64>,
}

/// The daemon's registry (prefix `pilotlight`) with every metric family registered, as
/// `/metrics` serves it; `docs/metrics.md` lists each (checked by `metrics_doc.rs`).
pub fn metrics_registry() -> (Registry, DaemonMetrics) {
    let mut registry = Registry::with_prefix("pilotlight");
    let aws = AwsMetrics::register(&mut registry);
    let engine = EngineMetrics::register(&mut registry);
    let estate = EstateMetrics::register(&mut registry);
    let cache = CacheMetrics::register(&mut registry);
    let restore = RestoreMetrics::register(&mut registry);
    let drill = DrillMetrics::register(&mut registry);
    let leader = Gauge::<i64>::default();
    registry.register(
        "leader",
        "1 while this replica holds the leader lease",
        leader.clone(),
    );
    let build_info =
        prometheus_client::metrics::family::Family::<Vec<(String, String)>, Gauge>::default();
    build_info
        .get_or_create(&vec![(
            "version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        )])
        .set(1);
    registry.register("build_info", "pilotlight's version", build_info);
    let metrics = DaemonMetrics {
        aws,
        engine,
        estate,
        cache,
        restore,
        drill,
        leader,
    };
    (registry, metrics)
}

/// Runs the daemon until `shutdown` fires, then shuts down in two phases.
///
/// # Errors
/// Start-up failures (store, listeners); after start-up, failures are logged and retried.
pub async fn run(
    daemon: Daemon,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = &daemon.config;
    let store = open_store(&daemon).await?;
    // The leader's background work (reconcilers, restore executor) writes through a handle
    // fenced by the current tenure (P2): once this replica's lease is gone, its writes are
    // refused. The API writes through `store`, unfenced, on every replica.
    let fence = FenceSlot::new();
    let leader_store = store.fenced(&fence);

    let (registry, metrics) = metrics_registry();
    let DaemonMetrics {
        aws: aws_metrics,
        engine: engine_metrics,
        estate: estate_metrics,
        cache: cache_metrics,
        restore: restore_metrics,
        drill: drill_metrics,
        leader: leader_gauge,
    } = metrics;
    let registry = Arc::new(registry);

    let settings = aws_settings(&daemon);
    let ctx = AwsCtx::new(
        Arc::new(Throttle::new(throttle_settings(config))),
        aws_metrics,
    );
    let primary_sdk = pilotlight_aws::sdk::sdk_config(&settings, &config.regions.primary).await;
    let dr_sdk = pilotlight_aws::sdk::sdk_config(&settings, &config.regions.dr).await;
    let primary_ec2 = PrimaryEc2::new(&primary_sdk, ctx.clone());
    let dr_ec2 = DrEc2::new(&dr_sdk, ctx.clone());

    let network = Arc::new(NetworkReconciler::new(
        primary_ec2.clone(),
        dr_ec2.clone(),
        leader_store.clone(),
        NetworkSettings {
            az_map: config.regions.az_map.clone(),
            scope: MirrorScope {
                include_default_vpc: config.network.include_default_vpc,
                vpc_tag: config
                    .network
                    .vpc_tag_filter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned())),
            },
            prune: config.network.prune,
            cycle: Duration::from_secs(config.reconcile.cycle_secs),
            max_backoff: Duration::from_secs(config.reconcile.max_backoff_secs),
        },
        engine_metrics.clone(),
    ));
    let mut reconcilers: Vec<Arc<dyn Reconciler>> = vec![network];
    let rpo_board = RpoBoard::default();
    if config.copy.enabled && config.copy.ebs {
        let ebs = EbsCopies {
            primary: primary_ec2.clone(),
            dr: dr_ec2.clone(),
            selection: EbsSelection {
                tags: config.copy.selector_tags.clone(),
                volume_ids: config.copy.volume_ids.clone(),
                tier_tag: config.tiers.tag_key.clone(),
                default_tier: config.tiers.default_tier,
                kms: kms_keys(config),
            },
        };
        reconcilers.push(Arc::new(CopyReconciler::new(
            Arc::new(ebs),
            leader_store.clone(),
            copy_settings(config),
            engine_metrics.clone(),
            rpo_board.clone(),
        )));
    }
    if config.copy.enabled && (config.copy.rds || config.copy.rds_clusters) {
        let primary_rds = pilotlight_aws::rds::PrimaryRds::new(&primary_sdk, ctx.clone());
        let dr_rds = pilotlight_aws::rds::DrRds::new(&dr_sdk, ctx.clone());
        let selection = pilotlight_engine::copy::RdsSelection {
            tags: config.copy.selector_tags.clone(),
            db_instance_ids: config.copy.db_instance_ids.clone(),
            db_cluster_ids: config.copy.db_cluster_ids.clone(),
            tier_tag: config.tiers.tag_key.clone(),
            default_tier: config.tiers.default_tier,
            kms: kms_keys(config),
            manual_snapshot_quota: config.copy.rds_manual_snapshot_quota,
        };
        let mut kinds: Vec<Arc<dyn pilotlight_engine::copy::CopyOps>> = Vec::new();
        if config.copy.rds {
            kinds.push(Arc::new(pilotlight_engine::copy::RdsCopies::new(
                primary_rds.clone(),
                dr_rds.clone(),
                selection.clone(),
            )));
        }
        if config.copy.rds_clusters {
            kinds.push(Arc::new(pilotlight_engine::copy::RdsClusterCopies::new(
                primary_rds,
                dr_rds,
                selection,
            )));
        }
        for ops in kinds {
            reconcilers.push(Arc::new(CopyReconciler::new(
                ops,
                leader_store.clone(),
                copy_settings(config),
                engine_metrics.clone(),
                rpo_board.clone(),
            )));
        }
    }
    if config.copy.enabled && config.copy.amis {
        let amis = pilotlight_engine::copy::AmiCopies::new(
            primary_ec2.clone(),
            dr_ec2.clone(),
            pilotlight_engine::copy::AmiSelection {
                tags: config.copy.selector_tags.clone(),
                tier_tag: config.tiers.tag_key.clone(),
                default_tier: config.tiers.default_tier,
                kms: kms_keys(config),
            },
        );
        reconcilers.push(Arc::new(CopyReconciler::new(
            Arc::new(amis),
            leader_store.clone(),
            copy_settings(config),
            engine_metrics.clone(),
            rpo_board.clone(),
        )));
    }

    // What a restore would need and do (R5, R6, R8-R10, D2): read from the DR side only.
    let shared_config = Arc::new(config.clone());
    let dr_s3 = DrS3::with_path_style(&dr_sdk, ctx.clone(), config.aws.s3_force_path_style);
    let inventory_board = InventoryBoard::default();
    let readiness_board = ReadinessBoard::default();
    let s3_board = S3Board::default();
    let planner = Planner::new(
        store.clone(),
        dr_s3.clone(),
        inventory_board.clone(),
        readiness_board.clone(),
        shared_config.clone(),
    );
    if config.inventory.enabled {
        reconcilers.push(Arc::new(InventoryReconciler::new(
            PrimaryHandles::new(&primary_sdk, ctx.clone()),
            PrimaryCloudWatch::new(&primary_sdk, ctx.clone()),
            dr_s3.clone(),
            leader_store.clone(),
            inventory_board,
            shared_config.clone(),
            estate_metrics.clone(),
        )));
    }
    if !config.s3.buckets.is_empty() {
        reconcilers.push(Arc::new(S3WatchReconciler::new(
            PrimaryS3::with_path_style(&primary_sdk, ctx.clone(), config.aws.s3_force_path_style),
            PrimaryCloudWatch::new(&primary_sdk, ctx.clone()),
            dr_s3.clone(),
            config.s3.clone(),
            Duration::from_secs(config.reconcile.max_backoff_secs),
            s3_board.clone(),
            estate_metrics.clone(),
        )));
    }
    reconcilers.push(Arc::new(ReadinessReconciler::new(
        planner.clone(),
        DrAcm::new(&dr_sdk, ctx.clone()),
        dr_ec2.clone(),
        readiness_board.clone(),
        estate_metrics,
    )));

    // Restore mode (D1, D3-D11): declared through the API on any replica, executed by the
    // leader's executor. `wake` tells the executor a run became pending or was cancelled.
    let restore_mode = RestoreMode::default();
    let restore_settings = Arc::new(config.restore.clone());
    let wake = Arc::new(Notify::new());
    let restores = RestoreService::new(
        store.clone(),
        planner.clone(),
        restore_settings.clone(),
        restore_mode.clone(),
        wake.clone(),
    );
    let executor_deps = ExecutorDeps {
        store: leader_store.clone(),
        planner: planner.clone(),
        dr: dr_sdk.clone(),
        aws: ctx.clone(),
        settings: restore_settings,
        hooks: Arc::new(pilotlight_engine::restore::hooks::Hooks::new(
            &config.restore.hooks,
            &daemon.secrets.hook_secrets,
        )),
        drill: Arc::new(config.drill.clone()),
        mode: restore_mode.clone(),
        cache_metrics,
        metrics: restore_metrics,
        drill_metrics: drill_metrics.clone(),
    };
    // Drills (D12): declared by the schedule on the leader; their gauges kept on every replica.
    let drill_schedule = (!config.drill.schedule.trim().is_empty())
        .then(|| Cron::parse(&config.drill.schedule))
        .transpose()
        .context("drill.schedule")?
        .map(|cron| DrillSchedule {
            cron,
            tiers: config.drill.tiers.clone(),
            tenants: config.drill.tenants.clone(),
            service: restores.clone(),
            metrics: drill_metrics.clone(),
        });

    let leader_state = LeaderState::default();
    let status = StatusBoard::default();
    let scheduler_slot: Arc<RwLock<Option<SchedulerHandle>>> = Arc::new(RwLock::new(None));
    let state = ApiState {
        store: store.clone(),
        tokens: Arc::new(auth_table(
            daemon
                .secrets
                .tokens
                .iter()
                .map(|t| (t.name.clone(), t.role, t.token.clone())),
        )),
        leader: leader_state.clone(),
        status: status.clone(),
        scheduler: scheduler_slot.clone(),
        rpo: rpo_board,
        planner,
        readiness: readiness_board,
        s3: s3_board,
        restores,
        info: DaemonInfo {
            version: env!("CARGO_PKG_VERSION"),
            primary_region: config.regions.primary.clone(),
            dr_region: config.regions.dr.clone(),
            store_backend: match store.backend() {
                pilotlight_store::Backend::Postgres => "postgres",
                pilotlight_store::Backend::Sqlite => "sqlite",
            },
            drill_schedule: drill_schedule.as_ref().map(|s| s.cron.to_string()),
        },
    };
    let limits = ApiLimits {
        max_body_bytes: usize::try_from(config.api.max_body_bytes).unwrap_or(usize::MAX),
        request_timeout: Duration::from_secs(config.api.request_timeout_secs),
    };
    let (api_addr, metrics_addr) = listeners.addrs();
    tracing::info!(%api_addr, %metrics_addr, primary = %config.regions.primary, dr = %config.regions.dr, "pilotlight starting");

    let tracker = TaskTracker::new();
    let servers = CancellationToken::new();
    tracker.spawn(pilotlight_engine::drill::refresh_metrics(
        store.clone(),
        drill_metrics,
        servers.clone(),
    ));
    tracker.spawn(serve_logged(
        "admin API",
        pilotlight_api::serve(
            listeners.api,
            pilotlight_api::router(state, limits),
            servers.clone(),
        ),
    ));
    tracker.spawn(serve_logged(
        "metrics",
        pilotlight_api::serve(
            listeners.metrics,
            pilotlight_api::metrics_router(registry),
            servers.clone(),
        ),
    ));

    let (leading_tx, mut leading_rx) = watch::channel(None);
    let elector_stop = CancellationToken::new();
    let elector = tokio::spawn(
        LeaderElector {
            store: store.clone(),
            lease_name: LEASE_NAME.to_owned(),
            holder_id: holder_id(),
            ttl: Duration::from_secs(config.daemon.lease_ttl_secs),
            state: leader_state,
            fence: fence.clone(),
        }
        .run(leading_tx, elector_stop.clone()),
    );

    // Leadership loop: run a scheduler while leading.
    let grace = Duration::from_secs(config.daemon.shutdown_grace_secs);
    let concurrency = config.reconcile.concurrency;
    loop {
        let leading = leading_rx.borrow_and_update().clone();
        if let Some(tenure) = leading {
            fence.set(Some(tenure.clone()));
            leader_gauge.set(1);
            tracing::info!(
                fencing_token = tenure.token,
                "leading: starting reconcilers and the restore executor"
            );
            let (scheduler, handle) = Scheduler::new(
                reconcilers.clone(),
                concurrency,
                engine_metrics.clone(),
                status.clone(),
            );
            let scheduler = scheduler.with_restore_mode(restore_mode.clone());
            set_slot(&scheduler_slot, Some(handle));
            let stop = CancellationToken::new();
            let mut task = tokio::spawn(scheduler.run(stop.clone()));
            // A run left `running` by a previous leader (or a killed daemon) resumes here: the
            // executor picks up pending and running runs and executes them against the journal.
            let mut executor = spawn_executor(
                Executor::new(executor_deps.clone(), wake.clone()),
                stop.clone(),
            );
            if let Some(schedule) = &drill_schedule {
                tokio::spawn(schedule.clone().run(stop.clone()));
            }
            let lost = tokio::select! {
                () = shutdown.cancelled() => false,
                // Lost, or a new tenure (the lease lapsed and was taken again): this one ends.
                changed = leading_rx.wait_for(|l| l.as_ref() != Some(&tenure)) => changed.is_ok(),
                _ = &mut task => false,
                ended = &mut executor => {
                    // It only returns when stopped: this is a panic. Stop leading so a restart
                    // (or another replica) resumes the run from its journal.
                    tracing::error!(
                        error = ?ended.err(),
                        "the restore executor stopped unexpectedly; shutting down"
                    );
                    false
                }
            };
            if lost {
                // A deposed tenure writes nothing more, not even while its work drains.
                fence.set(None);
            }
            set_slot(&scheduler_slot, None);
            stop.cancel();
            // A handle the select above already awaited must not be awaited again.
            let drained = tokio::time::timeout(grace, async {
                if !task.is_finished() {
                    let _ = (&mut task).await;
                }
                if !executor.is_finished() {
                    let _ = (&mut executor).await;
                }
            })
            .await;
            if drained.is_err() {
                tracing::warn!(
                    grace_secs = grace.as_secs(),
                    "reconcilers or the restore executor did not stop within the grace period; abandoning them (a restore resumes from its journal)"
                );
                task.abort();
                executor.abort();
            }
            fence.set(None);
            leader_gauge.set(0);
            if !lost {
                break;
            }
            tracing::warn!("lost the leader lease: reconcilers and the restore executor stopped");
        } else {
            tokio::select! {
                () = shutdown.cancelled() => break,
                changed = leading_rx.changed() => if changed.is_err() { break },
            }
        }
    }

    tracing::info!("shutting down");
    elector_stop.cancel();
    let _ = elector.await;
    servers.cancel();
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!("servers did not finish in-flight requests within the grace period");
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Runs the restore executor until `stop` fires (or it is aborted) as a task of the runtime.
fn spawn_executor(executor: Executor, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(executor.run(stop))
}

fn set_slot(slot: &RwLock<Option<SchedulerHandle>>, value: Option<SchedulerHandle>) {
    *slot
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = value;
}

async fn serve_logged(name: &'static str, fut: impl Future<Output = std::io::Result<()>>) {
    if let Err(e) = fut.await {
        tracing::error!(server = name, error = %e, "server failed");
    }
}

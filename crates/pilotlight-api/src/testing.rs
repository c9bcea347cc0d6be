//! The handler tests' fixture: an [`ApiState`] over a store, with no AWS behind it (the DR
//! bucket is a closed port, so estate routes answer errors) and the given tokens.

use std::sync::{Arc, RwLock};

use pilotlight_core::config::{Config, Role};
use pilotlight_core::secret::Secret;
use pilotlight_engine::StatusBoard;
use pilotlight_engine::estate::{InventoryBoard, Planner, ReadinessBoard};
use pilotlight_engine::leader::LeaderState;
use pilotlight_engine::restore::RestoreService;
use pilotlight_store::Store;

use crate::{ApiState, DaemonInfo, auth_table};

/// The state of a test router: `tokens` as `(principal, role, token)`, the restore service
/// made by `restores` from the store and the planner.
pub(crate) async fn state(
    store: Store,
    tokens: &[(&str, Role, &str)],
    restores: impl FnOnce(Store, Planner) -> RestoreService,
) -> ApiState {
    let sdk = pilotlight_aws::sdk::static_sdk_config("http://127.0.0.1:9", "us-west-2").await;
    let ctx = pilotlight_aws::AwsCtx::new(
        Arc::new(pilotlight_aws::throttle::Throttle::new(
            pilotlight_aws::throttle::ThrottleSettings::default(),
        )),
        pilotlight_aws::metrics::AwsMetrics::unregistered(),
    );
    let readiness = ReadinessBoard::default();
    let planner = Planner::new(
        store.clone(),
        pilotlight_aws::s3::DrS3::with_path_style(&sdk, ctx, true),
        InventoryBoard::default(),
        readiness.clone(),
        Arc::new(Config::default()),
    );
    ApiState {
        store: store.clone(),
        tokens: Arc::new(auth_table(tokens.iter().map(|(name, role, token)| {
            ((*name).to_owned(), *role, Secret::new(*token))
        }))),
        leader: LeaderState::default(),
        status: StatusBoard::default(),
        scheduler: Arc::new(RwLock::new(None)),
        rpo: pilotlight_engine::copy::RpoBoard::default(),
        restores: restores(store, planner.clone()),
        planner,
        readiness,
        s3: pilotlight_engine::estate::S3Board::default(),
        info: DaemonInfo {
            version: "test",
            primary_region: "us-east-1".into(),
            dr_region: "us-west-2".into(),
            store_backend: "sqlite",
            drill_schedule: None,
        },
    }
}

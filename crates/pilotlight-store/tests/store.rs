//! The state store's test suite (SPEC P1: both back-ends pass the same suite). Every
//! `check_*` body is written once and run twice by `both_backends!`: on SQLite (a file in a
//! temp dir) and on PostgreSQL (a fresh `pl_test_<random>` database per test, dropped after).
//!
//! PostgreSQL is the server named by `PILOTLIGHT_TEST_DATABASE_URL` if set; otherwise this
//! process starts a throwaway cluster once and stops it when the process exits (see
//! `pg_server/mod.rs`, which the end-to-end tests share). With neither, the PostgreSQL tests
//! fail and say what to install.

mod pg_server;

use std::future::Future;
use std::time::SystemTime;

use pg_server::with_database;
use pilotlight_store::{
    Backend, CopyKind, CopyState, CopyUpdate, Fence, FenceSlot, ItemState, MappingStatus,
    NewAuditEntry, NewCopy, NewInventoryVersion, NewMapping, NewRun, RestoreItem, RestoreStep,
    RunMode, RunState, RunUpdate, StepState, Store, StoreError, StoreOptions,
};
use sqlx::Connection;

/// What a check body gets: a migrated store and the URL it was opened with.
struct TestDb {
    store: Store,
    url: String,
}

macro_rules! both_backends {
    ($($check:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    super::on_sqlite(super::$check).await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    super::on_postgres(super::$check).await;
                }
            )+
        }
    };
}

both_backends!(
    check_mappings,
    check_copies,
    check_copy_watermarks,
    check_inventory,
    check_tenants,
    check_runs,
    check_steps_and_items,
    check_audit,
    check_lease,
    check_lease_race,
    check_fenced_writes,
    check_fenced_write_races_a_take_over,
    check_one_active_disaster,
    check_reopen,
);

// ---------------------------------------------------------------------------------------------
// Back-end harness
// ---------------------------------------------------------------------------------------------

fn test_options() -> StoreOptions {
    StoreOptions { max_connections: 8 }
}

async fn on_sqlite<F, Fut>(check: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    // A parent directory that does not exist yet: connect must create it.
    let url = format!(
        "sqlite://{}/nested/state/pilotlight.db",
        dir.path().display()
    );
    let store = Store::connect(&url, &test_options()).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store.migrate().await.unwrap();
    check(TestDb {
        store: store.clone(),
        url,
    })
    .await;
    store.close().await;
}

async fn on_postgres<F, Fut>(check: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    // Starting the throwaway cluster blocks; a missing server panics with what to install.
    let database = pg_server::fresh_database().await;
    let url = database.url.clone();
    let store = Store::connect(&url, &test_options()).await.unwrap();
    assert_eq!(store.backend(), Backend::Postgres);
    store.migrate().await.unwrap();
    // Run the body in its own task so a failed assertion still lets us drop the database.
    let outcome = tokio::spawn(check(TestDb {
        store: store.clone(),
        url,
    }))
    .await;
    store.close().await;
    database.drop_now().await;
    if let Err(join_error) = outcome {
        std::panic::resume_unwind(join_error.into_panic());
    }
}

/// Opens a second, raw connection to the test database, bypassing [`Store`], and runs `sql`.
async fn raw_execute(db: &TestDb, sql: &'static str) -> Result<u64, sqlx::Error> {
    match db.store.backend() {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await?;
            let done = sqlx::query(sql).execute(&mut conn).await?;
            Ok(done.rows_affected())
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await?;
            let done = sqlx::query(sql).execute(&mut conn).await?;
            Ok(done.rows_affected())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn new_mapping(kind: &str, primary_id: &str) -> NewMapping {
    NewMapping {
        kind: kind.to_owned(),
        primary_id: primary_id.to_owned(),
        dr_id: format!("dr-{primary_id}"),
        primary_region: "us-east-1".to_owned(),
        dr_region: "us-west-2".to_owned(),
        fingerprint: format!("fp-{primary_id}-1"),
        status: MappingStatus::Active,
    }
}

fn new_copy(kind: CopyKind, source_id: &str, resource_id: &str, created_ms: i64) -> NewCopy {
    NewCopy {
        kind,
        source_id: source_id.to_owned(),
        source_region: "us-east-1".to_owned(),
        resource_id: resource_id.to_owned(),
        tier: 1,
        dest_region: "us-west-2".to_owned(),
        size_gib: 100,
        source_created_at_ms: created_ms,
    }
}

fn new_run(id: &str, key: Option<&str>, state: RunState, created_ms: i64) -> NewRun {
    NewRun {
        id: id.to_owned(),
        mode: RunMode::Disaster,
        state,
        dry_run: false,
        tiers_json: "[1,2,3]".to_owned(),
        plan_json: r#"{"tiers":3}"#.to_owned(),
        requested_by: "alice".to_owned(),
        idempotency_key: key.map(str::to_owned),
        created_at_ms: created_ms,
    }
}

/// A drill (not a dry run) without an idempotency key.
fn new_drill(id: &str, state: RunState, created_ms: i64) -> NewRun {
    NewRun {
        mode: RunMode::Drill,
        ..new_run(id, None, state, created_ms)
    }
}

fn step(run_id: &str, step_id: &str, tier: i32, state: StepState) -> RestoreStep {
    RestoreStep {
        run_id: run_id.to_owned(),
        step_id: step_id.to_owned(),
        tier,
        kind: "ec2_launch".to_owned(),
        state,
        started_at_ms: None,
        finished_at_ms: None,
        detail_json: "{}".to_owned(),
    }
}

fn item(run_id: &str, key: &str, state: ItemState) -> RestoreItem {
    RestoreItem {
        run_id: run_id.to_owned(),
        item_key: key.to_owned(),
        step_id: "t1/ec2".to_owned(),
        kind: "instance".to_owned(),
        primary_id: format!("i-{key}"),
        dr_id: None,
        state,
        client_token: None,
        attempts: 0,
        detail_json: "{}".to_owned(),
        last_error: None,
        updated_at_ms: 10,
    }
}

fn audit(action: &str, at_ms: i64) -> NewAuditEntry {
    NewAuditEntry {
        at_ms,
        principal: "alice".to_owned(),
        role: "operator".to_owned(),
        action: action.to_owned(),
        target: "run-1".to_owned(),
        detail_json: r#"{"tiers":[1]}"#.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Checks, run on both back-ends
// ---------------------------------------------------------------------------------------------

async fn check_mappings(db: TestDb) {
    let store = &db.store;
    store.ping().await.unwrap();
    assert_eq!(store.get_mapping("subnet", "subnet-a").await.unwrap(), None);

    let first = store
        .upsert_mapping(&new_mapping("subnet", "subnet-a"), 1_000)
        .await
        .unwrap();
    assert_eq!(first.dr_id, "dr-subnet-a");
    assert_eq!(first.status, MappingStatus::Active);
    assert_eq!((first.created_at_ms, first.updated_at_ms), (1_000, 1_000));
    for (kind, id) in [
        ("subnet", "subnet-c"),
        ("subnet", "subnet-b"),
        ("vpc", "vpc-2"),
        ("vpc", "vpc-1"),
        ("security_group", "sg-1"),
    ] {
        store
            .upsert_mapping(&new_mapping(kind, id), 1_000)
            .await
            .unwrap();
    }

    // Upsert overwrites everything but created_at_ms.
    let mut changed = new_mapping("subnet", "subnet-a");
    changed.dr_id = "subnet-dr-new".to_owned();
    changed.fingerprint = "fp-2".to_owned();
    let updated = store.upsert_mapping(&changed, 2_000).await.unwrap();
    assert_eq!(updated.dr_id, "subnet-dr-new");
    assert_eq!(updated.fingerprint, "fp-2");
    assert_eq!(
        (updated.created_at_ms, updated.updated_at_ms),
        (1_000, 2_000)
    );
    assert_eq!(
        store.get_mapping("subnet", "subnet-a").await.unwrap(),
        Some(updated.clone())
    );

    // Full listing is ordered by (kind, primary_id).
    let all = store.list_mappings(None, None, 100).await.unwrap();
    let keys: Vec<(&str, &str)> = all
        .iter()
        .map(|m| (m.kind.as_str(), m.primary_id.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("security_group", "sg-1"),
            ("subnet", "subnet-a"),
            ("subnet", "subnet-b"),
            ("subnet", "subnet-c"),
            ("vpc", "vpc-1"),
            ("vpc", "vpc-2"),
        ]
    );

    // Keyset paging across kinds returns every row exactly once, in order.
    let mut paged = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store.list_mappings(None, after.clone(), 4).await.unwrap();
        pages += 1;
        let short = page.len() < 4;
        if let Some(last) = page.last() {
            after = Some((last.kind.clone(), last.primary_id.clone()));
        }
        paged.extend(page);
        if short {
            break;
        }
    }
    assert_eq!(paged, all);
    assert_eq!(pages, 2);

    // Paging within one kind.
    let page1 = store.list_mappings(Some("subnet"), None, 2).await.unwrap();
    let ids: Vec<&str> = page1.iter().map(|m| m.primary_id.as_str()).collect();
    assert_eq!(ids, ["subnet-a", "subnet-b"]);
    let page2 = store
        .list_mappings(
            Some("subnet"),
            Some(("subnet".to_owned(), "subnet-b".to_owned())),
            2,
        )
        .await
        .unwrap();
    let ids: Vec<&str> = page2.iter().map(|m| m.primary_id.as_str()).collect();
    assert_eq!(ids, ["subnet-c"]);
    assert!(
        store
            .list_mappings(Some("nat_gateway"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Status changes and counts.
    store
        .set_mapping_status("subnet", "subnet-c", MappingStatus::Orphaned, 3_000)
        .await
        .unwrap();
    let orphan = store
        .get_mapping("subnet", "subnet-c")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(orphan.status, MappingStatus::Orphaned);
    assert_eq!(orphan.updated_at_ms, 3_000);
    let counts: Vec<(String, MappingStatus, i64)> = store
        .mapping_counts()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.kind, c.status, c.count))
        .collect();
    assert_eq!(
        counts,
        [
            ("security_group".to_owned(), MappingStatus::Active, 1),
            ("subnet".to_owned(), MappingStatus::Active, 2),
            ("subnet".to_owned(), MappingStatus::Orphaned, 1),
            ("vpc".to_owned(), MappingStatus::Active, 2),
        ]
    );
    let missing = store
        .set_mapping_status("subnet", "subnet-zzz", MappingStatus::Orphaned, 3_000)
        .await
        .unwrap_err();
    assert!(
        matches!(missing, StoreError::NotFound { entity: "resource mapping", ref id } if id == "subnet/subnet-zzz"),
        "{missing:?}"
    );

    // Delete.
    assert!(store.delete_mapping("subnet", "subnet-c").await.unwrap());
    assert!(!store.delete_mapping("subnet", "subnet-c").await.unwrap());
    assert_eq!(store.get_mapping("subnet", "subnet-c").await.unwrap(), None);
    assert_eq!(store.list_mappings(None, None, 100).await.unwrap().len(), 5);
}

async fn check_copies(db: TestDb) {
    let store = &db.store;
    let a = new_copy(CopyKind::EbsSnapshot, "snap-a", "vol-1", 1_000);
    let id_a = store.insert_copy(&a).await.unwrap();

    // Idempotent on (kind, source_id, dest_region): same id, nothing overwritten.
    let mut again = a.clone();
    again.size_gib = 999;
    again.tier = 3;
    assert_eq!(store.insert_copy(&again).await.unwrap(), id_a);
    let stored = store.get_copy(id_a).await.unwrap().unwrap();
    assert_eq!(stored.kind, CopyKind::EbsSnapshot);
    assert_eq!(stored.source_id, "snap-a");
    assert_eq!(stored.resource_id, "vol-1");
    assert_eq!((stored.size_gib, stored.tier), (100, 1));
    assert_eq!(stored.state, CopyState::Queued);
    assert_eq!((stored.progress_pct, stored.attempts), (0, 0));
    assert_eq!(stored.dest_id, None);
    assert_eq!(stored.requested_at_ms, None);

    // Same source to another region, and the same source id under another kind, are new copies.
    let mut other_region = a.clone();
    other_region.dest_region = "eu-west-1".to_owned();
    let id_region = store.insert_copy(&other_region).await.unwrap();
    let id_newer = store
        .insert_copy(&new_copy(CopyKind::EbsSnapshot, "snap-b", "vol-1", 5_000))
        .await
        .unwrap();
    let id_ami = store
        .insert_copy(&new_copy(CopyKind::Ami, "snap-a", "i-1", 2_000))
        .await
        .unwrap();
    let id_rds = store
        .insert_copy(&new_copy(CopyKind::RdsSnapshot, "rds:db1-1", "db1", 3_000))
        .await
        .unwrap();
    let ids = [id_a, id_region, id_newer, id_ami, id_rds];
    let mut distinct = ids.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 5);
    assert!(store.get_copy(i64::MAX).await.unwrap().is_none());

    // Updates write every mutable field.
    let mut update = CopyUpdate::from(&stored);
    update.state = CopyState::InFlight;
    update.dest_id = Some("snap-dr-a".to_owned());
    update.requested_at_ms = Some(10_000);
    update.attempts = 1;
    update.progress_pct = 40;
    update.last_error = Some("throttled once".to_owned());
    let in_flight = store.update_copy(id_a, &update).await.unwrap();
    assert_eq!(in_flight.state, CopyState::InFlight);
    assert_eq!(in_flight.dest_id.as_deref(), Some("snap-dr-a"));
    assert_eq!(
        (
            in_flight.progress_pct,
            in_flight.attempts,
            in_flight.requested_at_ms
        ),
        (40, 1, Some(10_000))
    );
    assert_eq!(in_flight.last_error.as_deref(), Some("throttled once"));
    assert_eq!(store.get_copy(id_a).await.unwrap(), Some(in_flight.clone()));

    let mut done = CopyUpdate::from(&in_flight);
    done.state = CopyState::Completed;
    done.progress_pct = 100;
    done.completed_at_ms = Some(20_000);
    done.last_error = None;
    let completed = store.update_copy(id_a, &done).await.unwrap();
    assert_eq!(completed.state, CopyState::Completed);
    assert_eq!(completed.completed_at_ms, Some(20_000));
    assert_eq!(completed.last_error, None);
    assert_eq!(completed.source_created_at_ms, 1_000);

    // The schema rejects an impossible progress; a missing id is NotFound.
    let mut bad = done.clone();
    bad.progress_pct = 150;
    let err = store.update_copy(id_a, &bad).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Query {
                operation: "update_copy",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.get_copy(id_a).await.unwrap(), Some(completed.clone()));
    let err = store.update_copy(i64::MAX, &done).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { entity: "copy", .. }),
        "{err:?}"
    );

    let mut failed = CopyUpdate::from(&store.get_copy(id_rds).await.unwrap().unwrap());
    failed.state = CopyState::Failed;
    failed.last_error = Some("KMSKeyNotAccessibleFault".to_owned());
    store.update_copy(id_rds, &failed).await.unwrap();

    // Listing with kind and state filters.
    let listed = |copies: Vec<pilotlight_store::CopyRecord>| -> Vec<i64> {
        copies.into_iter().map(|c| c.id).collect()
    };
    let mut sorted_ids = ids.to_vec();
    sorted_ids.sort_unstable();
    assert_eq!(
        listed(store.list_copies(None, &[], 100).await.unwrap()),
        sorted_ids
    );
    assert_eq!(
        listed(store.list_copies(None, &[], 2).await.unwrap()),
        sorted_ids[..2]
    );
    assert_eq!(
        listed(
            store
                .list_copies(Some(CopyKind::Ami), &[], 100)
                .await
                .unwrap()
        ),
        [id_ami]
    );
    let mut queued = vec![id_region, id_newer, id_ami];
    queued.sort_unstable();
    assert_eq!(
        listed(
            store
                .list_copies(None, &[CopyState::Queued], 100)
                .await
                .unwrap()
        ),
        queued
    );
    let mut open_or_failed = vec![id_region, id_newer, id_ami, id_rds];
    open_or_failed.sort_unstable();
    assert_eq!(
        listed(
            store
                .list_copies(
                    None,
                    &[CopyState::Failed, CopyState::Queued, CopyState::InFlight],
                    100
                )
                .await
                .unwrap()
        ),
        open_or_failed
    );
    assert_eq!(
        listed(
            store
                .list_copies(Some(CopyKind::EbsSnapshot), &[CopyState::Completed], 100)
                .await
                .unwrap()
        ),
        [id_a]
    );
    assert!(
        store
            .list_copies(Some(CopyKind::RdsClusterSnapshot), &[], 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_copies(None, &[CopyState::Deleted, CopyState::Superseded], 100)
            .await
            .unwrap()
            .is_empty()
    );

    // Per-resource history, newest source first.
    let history = store
        .list_copies_for_resource(CopyKind::EbsSnapshot, "vol-1", "us-west-2")
        .await
        .unwrap();
    assert_eq!(listed(history), [id_newer, id_a]);

    let counts: Vec<(CopyKind, CopyState, i64)> = store
        .copy_state_counts()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.kind, c.state, c.count))
        .collect();
    assert_eq!(
        counts,
        [
            (CopyKind::Ami, CopyState::Queued, 1),
            (CopyKind::EbsSnapshot, CopyState::Completed, 1),
            (CopyKind::EbsSnapshot, CopyState::Queued, 2),
            (CopyKind::RdsSnapshot, CopyState::Failed, 1),
        ]
    );
}

async fn check_copy_watermarks(db: TestDb) {
    let store = &db.store;
    let mut ids = Vec::new();
    for (source, resource, created) in [
        ("snap-a1", "vol-a", 1_000),
        ("snap-a2", "vol-a", 2_000),
        ("snap-a3", "vol-a", 3_000),
        ("snap-b1", "vol-b", 1_500),
    ] {
        ids.push(
            store
                .insert_copy(&new_copy(CopyKind::EbsSnapshot, source, resource, created))
                .await
                .unwrap(),
        );
    }
    // a1, a2 and b1 complete; a3 is in flight.
    for id in [ids[0], ids[1], ids[3]] {
        let row = store.get_copy(id).await.unwrap().unwrap();
        let mut u = CopyUpdate::from(&row);
        u.state = CopyState::Completed;
        u.progress_pct = 100;
        u.dest_id = Some(format!("dr-{}", row.source_id));
        store.update_copy(id, &u).await.unwrap();
    }
    let row = store.get_copy(ids[2]).await.unwrap().unwrap();
    let mut u = CopyUpdate::from(&row);
    u.state = CopyState::InFlight;
    store.update_copy(ids[2], &u).await.unwrap();

    let marks = store
        .copy_watermarks(CopyKind::EbsSnapshot, "us-west-2")
        .await
        .unwrap();
    let marks: Vec<(String, i64)> = marks
        .into_iter()
        .map(|m| (m.resource_id, m.source_created_at_ms))
        .collect();
    assert_eq!(
        marks,
        vec![("vol-a".to_owned(), 2_000), ("vol-b".to_owned(), 1_500)],
        "the newest *completed* source per resource"
    );
    assert!(
        store
            .copy_watermarks(CopyKind::EbsSnapshot, "eu-west-1")
            .await
            .unwrap()
            .is_empty()
    );

    let newest: Vec<(String, String, Option<String>)> = store
        .newest_completed_copies(CopyKind::EbsSnapshot, "us-west-2")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.resource_id, c.source_id, c.dest_id))
        .collect();
    assert_eq!(
        newest,
        vec![
            (
                "vol-a".to_owned(),
                "snap-a2".to_owned(),
                Some("dr-snap-a2".to_owned())
            ),
            (
                "vol-b".to_owned(),
                "snap-b1".to_owned(),
                Some("dr-snap-b1".to_owned())
            ),
        ],
        "the newest completed copy per resource, with its DR id"
    );

    let active = store
        .active_copies(CopyKind::EbsSnapshot, "us-west-2")
        .await
        .unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].source_id, "snap-a3");

    let by_source = store
        .copy_by_source(CopyKind::EbsSnapshot, "snap-b1", "us-west-2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_source.id, ids[3]);
    assert!(
        store
            .copy_by_source(CopyKind::Ami, "snap-b1", "us-west-2")
            .await
            .unwrap()
            .is_none()
    );
}

async fn check_inventory(db: TestDb) {
    let store = &db.store;
    assert_eq!(store.latest_inventory().await.unwrap(), None);
    let first = NewInventoryVersion {
        schema_version: 1,
        bucket: "pl-dr-inventory".to_owned(),
        object_key: "inventory/000001.json.gz".to_owned(),
        sha256: "aa".repeat(32),
        size_bytes: 12_345,
        captured_at_ms: 1_000,
        counts_json: r#"{"instances":10}"#.to_owned(),
        digest: "d1".repeat(32),
    };
    let v1 = store.record_inventory_version(&first).await.unwrap();
    let second = NewInventoryVersion {
        object_key: "inventory/000002.json.gz".to_owned(),
        sha256: "bb".repeat(32),
        size_bytes: 23_456,
        captured_at_ms: 2_000,
        counts_json: r#"{"instances":11}"#.to_owned(),
        digest: "d2".repeat(32),
        ..first.clone()
    };
    let v2 = store.record_inventory_version(&second).await.unwrap();
    assert!(v2 > v1, "versions must increase: {v1} then {v2}");
    let latest = store.latest_inventory().await.unwrap().unwrap();
    assert_eq!(latest.version, v2);
    assert_eq!(latest.schema_version, 1);
    assert_eq!(latest.bucket, second.bucket);
    assert_eq!(latest.object_key, second.object_key);
    assert_eq!(latest.sha256, second.sha256);
    assert_eq!(latest.size_bytes, 23_456);
    assert_eq!(latest.captured_at_ms, 2_000);
    assert_eq!(latest.counts_json, second.counts_json);
    assert_eq!(latest.digest, second.digest);
}

async fn check_tenants(db: TestDb) {
    let store = &db.store;
    assert!(store.list_tenants().await.unwrap().is_empty());
    let clusters = vec!["web".to_owned(), "search".to_owned(), "web".to_owned()];
    assert!(
        store
            .upsert_tenant("acme", &clusters, "oncall", 1_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .upsert_tenant("acme", &["db".to_owned()], "lead", 2_000)
            .await
            .unwrap(),
        "a second write replaces, it does not create"
    );
    assert!(
        store
            .upsert_tenant("globex", &clusters, "oncall", 3_000)
            .await
            .unwrap()
    );
    let all = store.list_tenants().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].name, "acme");
    assert_eq!(all[0].clusters, vec!["db".to_owned()]);
    assert_eq!(all[0].updated_by, "lead");
    assert_eq!(all[0].updated_at_ms, 2_000);
    assert_eq!(
        all[1].clusters,
        vec!["search".to_owned(), "web".to_owned()],
        "sorted and de-duplicated"
    );
    assert!(store.delete_tenant("acme").await.unwrap());
    assert!(!store.delete_tenant("acme").await.unwrap());
    assert_eq!(store.list_tenants().await.unwrap().len(), 1);
}

async fn check_runs(db: TestDb) {
    let store = &db.store;
    let declared = new_run("run-1", Some("key-1"), RunState::AwaitingApproval, 1_000);
    let (run, created) = store.create_run(&declared).await.unwrap();
    assert!(created);
    assert_eq!(run.id, "run-1");
    assert_eq!(run.mode, RunMode::Disaster);
    assert_eq!(run.state, RunState::AwaitingApproval);
    assert!(!run.dry_run);
    assert_eq!(run.tiers_json, "[1,2,3]");
    assert_eq!(run.idempotency_key.as_deref(), Some("key-1"));
    assert_eq!(
        (
            run.approved_by.as_deref(),
            run.started_at_ms,
            run.finished_at_ms,
            run.error.as_deref()
        ),
        (None, None, None, None)
    );

    // A retried POST with the same Idempotency-Key gets the original run back.
    let retry = new_run("run-1-retry", Some("key-1"), RunState::Pending, 1_500);
    let (existing, created) = store.create_run(&retry).await.unwrap();
    assert!(!created);
    assert_eq!(existing, run);
    assert_eq!(store.get_run("run-1-retry").await.unwrap(), None);

    // Reusing an id without its key is a conflict, with or without a key.
    let err = store
        .create_run(&new_run("run-1", None, RunState::Pending, 1_600))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::RunIdConflict { ref run_id } if run_id == "run-1"),
        "{err:?}"
    );
    let err = store
        .create_run(&new_run(
            "run-1",
            Some("key-other"),
            RunState::Pending,
            1_600,
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::RunIdConflict { .. }), "{err:?}");

    // Runs without keys, a drill with dry_run.
    // Only one disaster may be active (see check_one_active_disaster): the other active runs
    // here are drills.
    let (_, created) = store
        .create_run(&new_drill("run-2", RunState::Running, 2_000))
        .await
        .unwrap();
    assert!(created);
    let mut drill = new_run("run-3", None, RunState::Succeeded, 3_000);
    drill.mode = RunMode::Drill;
    drill.dry_run = true;
    let (drill_run, _) = store.create_run(&drill).await.unwrap();
    assert_eq!(drill_run.mode, RunMode::Drill);
    assert!(drill_run.dry_run);
    for (id, state, at) in [
        ("run-4", RunState::Pending, 4_000),
        ("run-5", RunState::TearingDown, 5_000),
        ("run-6", RunState::Failed, 6_000),
        ("run-7", RunState::Cancelled, 7_000),
    ] {
        store.create_run(&new_drill(id, state, at)).await.unwrap();
    }

    let newest: Vec<String> = store
        .list_runs(3)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(newest, ["run-7", "run-6", "run-5"]);
    assert_eq!(store.list_runs(100).await.unwrap().len(), 7);

    let active: Vec<(String, RunState)> = store
        .active_runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.state))
        .collect();
    assert_eq!(
        active,
        [
            ("run-1".to_owned(), RunState::AwaitingApproval),
            ("run-2".to_owned(), RunState::Running),
            ("run-4".to_owned(), RunState::Pending),
            ("run-5".to_owned(), RunState::TearingDown),
        ]
    );

    // A compare-and-set update applies only from the state its caller read: run-2 is
    // running, so a write expecting it pending changes nothing, and one expecting running does.
    let running = store.get_run("run-2").await.unwrap().unwrap();
    let mut cancel = RunUpdate::from(&running);
    cancel.state = RunState::Cancelled;
    cancel.error = Some("cancelled by otto".to_owned());
    assert_eq!(
        store
            .update_run_if("run-2", RunState::Pending, &cancel)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.get_run("run-2").await.unwrap().unwrap().state,
        RunState::Running
    );
    let cancelled = store
        .update_run_if("run-2", RunState::Running, &cancel)
        .await
        .unwrap()
        .expect("run-2 was running");
    assert_eq!(cancelled.state, RunState::Cancelled);
    // The executor's late finish, still expecting `running`, loses: the cancel stays.
    let mut finish = RunUpdate::from(&running);
    finish.state = RunState::Succeeded;
    assert_eq!(
        store
            .update_run_if("run-2", RunState::Running, &finish)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.get_run("run-2").await.unwrap().unwrap().state,
        RunState::Cancelled
    );
    assert_eq!(
        store
            .update_run_if("run-missing", RunState::Running, &finish)
            .await
            .unwrap(),
        None
    );

    // Approve, start, finish.
    let mut update = RunUpdate::from(&run);
    update.state = RunState::Pending;
    update.approved_by = Some("bob".to_owned());
    let approved = store.update_run("run-1", &update).await.unwrap();
    assert_eq!(approved.state, RunState::Pending);
    assert_eq!(approved.approved_by.as_deref(), Some("bob"));
    update.state = RunState::Failed;
    update.started_at_ms = Some(10_000);
    update.finished_at_ms = Some(20_000);
    update.error = Some("tier 2 failed".to_owned());
    let finished = store.update_run("run-1", &update).await.unwrap();
    assert_eq!(
        store.get_run("run-1").await.unwrap(),
        Some(finished.clone())
    );
    assert_eq!(
        (
            finished.started_at_ms,
            finished.finished_at_ms,
            finished.error.as_deref()
        ),
        (Some(10_000), Some(20_000), Some("tier 2 failed"))
    );
    assert_eq!(finished.plan_json, declared.plan_json);
    assert_eq!(finished.created_at_ms, 1_000);
    assert!(
        store
            .active_runs()
            .await
            .unwrap()
            .iter()
            .all(|r| r.id != "run-1"),
        "a failed run is not active"
    );
    let err = store.update_run("run-missing", &update).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                entity: "restore run",
                ..
            }
        ),
        "{err:?}"
    );
}

async fn check_steps_and_items(db: TestDb) {
    let store = &db.store;
    store
        .create_run(&new_run("run-a", None, RunState::Running, 1))
        .await
        .unwrap();
    store
        .create_run(&new_drill("run-b", RunState::Running, 2))
        .await
        .unwrap();

    // Steps: upsert inserts, then overwrites; listed by tier then id.
    store
        .upsert_step(&step("run-a", "t2/elb", 2, StepState::Pending))
        .await
        .unwrap();
    store
        .upsert_step(&step("run-a", "t1/ec2", 1, StepState::Running))
        .await
        .unwrap();
    store
        .upsert_step(&step("run-b", "t1/ec2", 1, StepState::Pending))
        .await
        .unwrap();
    let mut finished = step("run-a", "t1/ec2", 1, StepState::Done);
    finished.started_at_ms = Some(100);
    finished.finished_at_ms = Some(200);
    finished.detail_json = r#"{"instances":3}"#.to_owned();
    store.upsert_step(&finished).await.unwrap();
    let steps = store.list_steps("run-a").await.unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0], finished);
    assert_eq!(steps[1].step_id, "t2/elb");
    assert_eq!(steps[1].state, StepState::Pending);
    assert_eq!(store.list_steps("run-b").await.unwrap().len(), 1);
    let err = store
        .upsert_step(&step("run-zzz", "t1/ec2", 1, StepState::Pending))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { entity: "restore run", ref id } if id == "run-zzz"),
        "{err:?}"
    );

    // Items: the journal written around each AWS mutation.
    store
        .upsert_item(&item("run-a", "instance/c", ItemState::Pending))
        .await
        .unwrap();
    let mut requested = item("run-a", "instance/a", ItemState::Requested);
    requested.client_token = Some("run-a:group-1".to_owned());
    requested.attempts = 1;
    store.upsert_item(&requested).await.unwrap();
    let mut done = item("run-a", "instance/b", ItemState::Done);
    done.dr_id = Some("i-dr-b".to_owned());
    store.upsert_item(&done).await.unwrap();
    store
        .upsert_item(&item("run-b", "instance/a", ItemState::Requested))
        .await
        .unwrap();

    let keys = |items: Vec<RestoreItem>| -> Vec<String> {
        items.into_iter().map(|i| i.item_key).collect()
    };
    assert_eq!(
        keys(store.list_items("run-a", None).await.unwrap()),
        ["instance/a", "instance/b", "instance/c"]
    );
    assert_eq!(
        keys(
            store
                .list_items("run-a", Some(ItemState::Requested))
                .await
                .unwrap()
        ),
        ["instance/a"]
    );
    assert_eq!(
        store.get_item("run-a", "instance/a").await.unwrap(),
        Some(requested.clone())
    );
    assert_eq!(store.get_item("run-a", "instance/zzz").await.unwrap(), None);

    // Completing the requested item moves it out of the `requested` filter.
    let mut completed = requested.clone();
    completed.state = ItemState::Done;
    completed.dr_id = Some("i-dr-a".to_owned());
    completed.updated_at_ms = 50;
    completed.detail_json = r#"{"substituted":"r5.xlarge x2"}"#.to_owned();
    store.upsert_item(&completed).await.unwrap();
    assert_eq!(
        store.get_item("run-a", "instance/a").await.unwrap(),
        Some(completed)
    );
    assert!(
        store
            .list_items("run-a", Some(ItemState::Requested))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        keys(
            store
                .list_items("run-a", Some(ItemState::Done))
                .await
                .unwrap()
        ),
        ["instance/a", "instance/b"]
    );
    assert_eq!(
        keys(
            store
                .list_items("run-b", Some(ItemState::Requested))
                .await
                .unwrap()
        ),
        ["instance/a"]
    );
    let counts: Vec<(ItemState, i64)> = store
        .item_state_counts("run-a")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.state, c.count))
        .collect();
    assert_eq!(counts, [(ItemState::Done, 2), (ItemState::Pending, 1)]);

    let err = store
        .upsert_item(&item("run-zzz", "instance/a", ItemState::Pending))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

async fn check_audit(db: TestDb) {
    let store = &db.store;
    assert!(store.list_audit(None, 10).await.unwrap().is_empty());
    let first = store
        .append_audit(&audit("restore.declare", 1_000))
        .await
        .unwrap();
    let second = store
        .append_audit(&audit("restore.approve", 2_000))
        .await
        .unwrap();
    let third = store
        .append_audit(&audit("restore.cancel", 3_000))
        .await
        .unwrap();
    assert!(first < second && second < third);

    let all = store.list_audit(None, 10).await.unwrap();
    let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["restore.declare", "restore.approve", "restore.cancel"]
    );
    assert_eq!(all[0].id, first);
    assert_eq!(all[0].at_ms, 1_000);
    assert_eq!(all[0].principal, "alice");
    assert_eq!(all[0].role, "operator");
    assert_eq!(all[0].target, "run-1");
    assert_eq!(all[0].detail_json, r#"{"tiers":[1]}"#);
    let after_first = store.list_audit(Some(first), 10).await.unwrap();
    assert_eq!(
        after_first.iter().map(|e| e.id).collect::<Vec<_>>(),
        [second, third]
    );
    assert_eq!(
        store.list_audit(Some(first), 1).await.unwrap()[0].id,
        second
    );
    assert!(store.list_audit(Some(third), 10).await.unwrap().is_empty());

    // Not even raw SQL from another connection can rewrite or remove history.
    for sql in [
        "UPDATE audit_log SET principal = 'mallory'",
        "DELETE FROM audit_log WHERE action = 'restore.cancel'",
        "DELETE FROM audit_log",
    ] {
        let err = raw_execute(&db, sql).await.unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "{sql}: unexpected error {err}"
        );
    }
    if db.store.backend() == Backend::Postgres {
        let err = raw_execute(&db, "TRUNCATE audit_log").await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    assert_eq!(store.list_audit(None, 10).await.unwrap(), all);
    // Appending still works after the rejected statements.
    assert!(
        store
            .append_audit(&audit("restore.watch", 4_000))
            .await
            .unwrap()
            > third
    );
}

async fn check_lease(db: TestDb) {
    let store = &db.store;
    assert_eq!(store.current_lease("leader").await.unwrap(), None);

    // First acquisition.
    let a = store
        .try_acquire_lease("leader", "replica-a", 1_000, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            a.holder.as_str(),
            a.fencing_token,
            a.acquired_at_ms,
            a.expires_at_ms
        ),
        ("replica-a", 1, 0, 1_000)
    );
    assert_eq!(
        store.current_lease("leader").await.unwrap(),
        Some(a.clone())
    );

    // Blocked while live.
    assert_eq!(
        store
            .try_acquire_lease("leader", "replica-b", 1_000, 500)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.current_lease("leader").await.unwrap(),
        Some(a.clone())
    );

    // Renewal keeps the token and the tenure start.
    let renewed = store
        .try_acquire_lease("leader", "replica-a", 1_000, 600)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            renewed.fencing_token,
            renewed.acquired_at_ms,
            renewed.expires_at_ms
        ),
        (1, 0, 1_600)
    );
    assert!(
        store
            .holds_lease("leader", "replica-a", 1, 700)
            .await
            .unwrap()
    );
    assert!(
        !store
            .holds_lease("leader", "replica-b", 1, 700)
            .await
            .unwrap()
    );
    assert!(
        !store
            .holds_lease("leader", "replica-a", 2, 700)
            .await
            .unwrap()
    );
    assert!(
        !store
            .holds_lease("leader", "replica-a", 1, 1_600)
            .await
            .unwrap()
    );
    assert!(renewed.is_live(1_599) && !renewed.is_live(1_600));

    // Still blocked one millisecond before expiry; taken over at expiry with token + 1.
    assert_eq!(
        store
            .try_acquire_lease("leader", "replica-b", 1_000, 1_599)
            .await
            .unwrap(),
        None
    );
    let b = store
        .try_acquire_lease("leader", "replica-b", 1_000, 1_600)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            b.holder.as_str(),
            b.fencing_token,
            b.acquired_at_ms,
            b.expires_at_ms
        ),
        ("replica-b", 2, 1_600, 2_600)
    );
    // The deposed holder can neither renew nor pass the fencing check.
    assert_eq!(
        store
            .try_acquire_lease("leader", "replica-a", 1_000, 1_700)
            .await
            .unwrap(),
        None
    );
    assert!(
        !store
            .holds_lease("leader", "replica-a", 1, 1_700)
            .await
            .unwrap()
    );
    assert!(
        store
            .holds_lease("leader", "replica-b", 2, 1_700)
            .await
            .unwrap()
    );

    // Release: only by the holder; frees the lease at once, and the next holder gets token + 1.
    assert!(!store.release_lease("leader", "replica-a").await.unwrap());
    assert!(store.release_lease("leader", "replica-b").await.unwrap());
    let released = store.current_lease("leader").await.unwrap().unwrap();
    assert!(!released.is_live(1_800));
    assert!(
        !store
            .holds_lease("leader", "replica-b", 2, 1_800)
            .await
            .unwrap()
    );
    let a2 = store
        .try_acquire_lease("leader", "replica-a", 1_000, 1_800)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a2.fencing_token, a2.acquired_at_ms, a2.expires_at_ms),
        (3, 1_800, 2_800)
    );

    // A holder whose own lease lapsed starts a new tenure with a new token.
    let a3 = store
        .try_acquire_lease("leader", "replica-a", 1_000, 3_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a3.fencing_token, a3.acquired_at_ms), (4, 3_000));

    // Leases are independent by name.
    let other = store
        .try_acquire_lease("drill-scheduler", "replica-b", 1_000, 3_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.fencing_token, 1);
    assert_eq!(store.current_lease("leader").await.unwrap(), Some(a3));
}

async fn check_lease_race(db: TestDb) {
    const CANDIDATES: usize = 16;

    async fn race(store: &Store, round: &str, now_ms: i64) -> Vec<pilotlight_store::Lease> {
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CANDIDATES));
        let mut tasks = Vec::new();
        for i in 0..CANDIDATES {
            let store = store.clone();
            let barrier = barrier.clone();
            let holder = format!("{round}-candidate-{i}");
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store
                    .try_acquire_lease("leader", &holder, 10_000, now_ms)
                    .await
                    .unwrap()
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            if let Some(lease) = task.await.unwrap() {
                winners.push(lease);
            }
        }
        winners
    }

    let store = &db.store;
    // Fresh lease: exactly one of the concurrent candidates creates it.
    let winners = race(store, "first", 0).await;
    assert_eq!(winners.len(), 1, "exactly one winner expected: {winners:?}");
    assert_eq!(winners[0].fencing_token, 1);
    assert_eq!(
        store.current_lease("leader").await.unwrap().as_ref(),
        Some(&winners[0])
    );

    // Live lease: nobody else gets it.
    assert!(race(store, "blocked", 5_000).await.is_empty());

    // Expired lease: exactly one takes it over, with the next token.
    let winners = race(store, "takeover", 10_000).await;
    assert_eq!(winners.len(), 1, "exactly one winner expected: {winners:?}");
    assert_eq!(winners[0].fencing_token, 2);
    assert!(winners[0].holder.starts_with("takeover-"));
    assert_eq!(
        store.current_lease("leader").await.unwrap().as_ref(),
        Some(&winners[0])
    );
}

/// The wall clock in unix ms: fenced writes judge the lease's expiry by it.
fn wall_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

const LEADER: &str = "pilotlight-leader";

fn fence_of(lease: &pilotlight_store::Lease) -> Fence {
    Fence {
        lease: lease.name.clone(),
        holder: lease.holder.clone(),
        token: lease.fencing_token,
    }
}

/// The outcomes of [`leader_writes`], by operation.
type Outcomes = Vec<(&'static str, Result<(), StoreError>)>;

/// Every leader-only write through `store`, on rows the caller created (`run-f`, copy `copy`,
/// mapping `subnet/subnet-f`). With `reset`, the slot is given that tenure again before each
/// write, so every write meets the store's check itself (not just the emptied slot).
async fn leader_writes(
    store: &Store,
    copy: i64,
    round: i32,
    reset: Option<(&FenceSlot, &Fence)>,
) -> Outcomes {
    let reset = || {
        if let Some((slot, fence)) = reset {
            slot.set(Some(fence.clone()));
        }
    };
    let mut out: Outcomes = Vec::new();
    reset();
    let mut it = item("run-f", "instance/i-f", ItemState::Requested);
    it.attempts = round;
    out.push(("upsert_item", store.upsert_item(&it).await));
    reset();
    let mut st = step("run-f", "t1/ec2", 1, StepState::Running);
    st.detail_json = format!(r#"{{"round":{round}}}"#);
    out.push(("upsert_step", store.upsert_step(&st).await));
    let run = store.get_run("run-f").await.unwrap().unwrap();
    let mut update = RunUpdate::from(&run);
    update.error = Some(format!("round {round}"));
    reset();
    out.push((
        "update_run",
        store.update_run("run-f", &update).await.map(|_| ()),
    ));
    reset();
    out.push((
        "update_run_if",
        store
            .update_run_if("run-f", run.state, &update)
            .await
            .map(|updated| assert!(updated.is_some())),
    ));
    let source = format!("snap-round-{round}");
    reset();
    out.push((
        "insert_copy",
        store
            .insert_copy(&new_copy(CopyKind::EbsSnapshot, &source, "vol-f", 1))
            .await
            .map(|_| ()),
    ));
    let current = store.get_copy(copy).await.unwrap().unwrap();
    let mut cu = CopyUpdate::from(&current);
    cu.attempts = round;
    reset();
    out.push((
        "update_copy",
        store.update_copy(copy, &cu).await.map(|_| ()),
    ));
    let mut mapping = new_mapping("subnet", "subnet-f");
    mapping.fingerprint = format!("fp-round-{round}");
    reset();
    out.push((
        "upsert_mapping",
        store.upsert_mapping(&mapping, 100).await.map(|_| ()),
    ));
    reset();
    out.push((
        "set_mapping_status",
        store
            .set_mapping_status("subnet", "subnet-f", MappingStatus::Active, 200)
            .await,
    ));
    reset();
    out.push((
        "delete_mapping",
        store
            .delete_mapping("subnet", &format!("subnet-gone-{round}"))
            .await
            .map(|existed| assert!(!existed)),
    ));
    reset();
    out.push((
        "record_inventory_version",
        store
            .record_inventory_version(&NewInventoryVersion {
                schema_version: 1,
                bucket: "b".to_owned(),
                object_key: format!("inventory/{round}.json"),
                sha256: "00".to_owned(),
                size_bytes: 1,
                captured_at_ms: 1,
                counts_json: "{}".to_owned(),
                digest: format!("d{round}"),
            })
            .await
            .map(|_| ()),
    ));
    out
}

fn all_ok(outcomes: &Outcomes) -> bool {
    outcomes.iter().all(|(_, r)| r.is_ok())
}

/// Whether every write was refused as a fenced write of its own operation, with `token`.
fn all_fenced(outcomes: &Outcomes, token: Option<i64>) -> bool {
    outcomes.len() == 10
        && outcomes.iter().all(|(name, r)| {
            matches!(r, Err(StoreError::Fenced { operation, token: t })
                if operation == name && *t == token)
        })
}

/// What the leader-only writes leave behind, to show a refused round changed nothing.
async fn leader_written(store: &Store, copy: i64) -> String {
    format!(
        "{:?} {:?} {:?} {:?} {:?} {:?}",
        store.get_item("run-f", "instance/i-f").await.unwrap(),
        store.list_steps("run-f").await.unwrap(),
        store.get_run("run-f").await.unwrap(),
        store.list_copies(None, &[], 100).await.unwrap(),
        store.get_mapping("subnet", "subnet-f").await.unwrap(),
        store
            .latest_inventory()
            .await
            .unwrap()
            .map(|v| v.object_key),
    ) + &copy.to_string()
}

async fn check_fenced_writes(db: TestDb) {
    let store = &db.store;
    store
        .create_run(&new_run("run-f", None, RunState::Running, 1))
        .await
        .unwrap();
    let copy = store
        .insert_copy(&new_copy(CopyKind::EbsSnapshot, "snap-f", "vol-f", 1))
        .await
        .unwrap();
    let now = wall_ms();
    let a = store
        .try_acquire_lease(LEADER, "replica-a", 60_000, now)
        .await
        .unwrap()
        .unwrap();
    let slot = FenceSlot::new();
    let leader = store.fenced(&slot);
    let mut deposed = slot.deposed();

    // No tenure yet: refused without a query, and the refusal is reported.
    let err = leader
        .upsert_item(&item("run-f", "instance/i-f", ItemState::Requested))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Fenced {
                operation: "upsert_item",
                token: None
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.get_item("run-f", "instance/i-f").await.unwrap(), None);
    assert_eq!(slot.refused(), 1);
    assert!(!deposed.has_changed().unwrap(), "no tenure was deposed");

    // While the tenure holds the lease, every leader-only write goes through.
    slot.set(Some(fence_of(&a)));
    let outcomes = leader_writes(&leader, copy, 1, None).await;
    assert!(all_ok(&outcomes), "{outcomes:?}");
    assert_eq!(slot.refused(), 1);
    assert!(!deposed.has_changed().unwrap());
    // A write that changes no row for its own reasons is not a refusal.
    let run = store.get_run("run-f").await.unwrap().unwrap();
    assert!(matches!(
        leader
            .update_run("run-missing", &RunUpdate::from(&run))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        leader
            .update_run_if("run-f", RunState::Pending, &RunUpdate::from(&run))
            .await
            .unwrap(),
        None
    );
    assert_eq!(slot.current(), Some(fence_of(&a)));
    assert_eq!(slot.refused(), 1);

    // Replica B takes the lease over (A's lapsed by B's clock): every write A's tenure makes
    // from now on is refused by the store, changes nothing, and empties A's slot.
    let b = store
        .try_acquire_lease(LEADER, "replica-b", 60_000, now + 60_001)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.fencing_token, a.fencing_token + 1);
    let before = leader_written(store, copy).await;
    let outcomes = leader_writes(&leader, copy, 2, Some((&slot, &fence_of(&a)))).await;
    assert!(all_fenced(&outcomes, Some(a.fencing_token)), "{outcomes:?}");
    assert_eq!(slot.current(), None);
    assert_eq!(slot.refused(), 11);
    assert!(deposed.has_changed().unwrap());
    assert_eq!(*deposed.borrow_and_update(), Some(fence_of(&a)));
    assert_eq!(leader_written(store, copy).await, before);
    // Once emptied, the slot refuses without asking the database.
    let outcomes = leader_writes(&leader, copy, 2, None).await;
    assert!(all_fenced(&outcomes, None), "{outcomes:?}");
    assert_eq!(leader_written(store, copy).await, before);

    // B's tenure writes; the unfenced handle (the API's, on any replica) is never fenced.
    let slot_b = FenceSlot::new();
    slot_b.set(Some(fence_of(&b)));
    let outcomes = leader_writes(&store.fenced(&slot_b), copy, 3, None).await;
    assert!(all_ok(&outcomes), "{outcomes:?}");
    let outcomes = leader_writes(store, copy, 4, None).await;
    assert!(all_ok(&outcomes), "{outcomes:?}");

    // A lease that lapsed with nobody taking it over fences its holder too.
    assert!(store.release_lease(LEADER, "replica-b").await.unwrap());
    let before = leader_written(store, copy).await;
    let outcomes = leader_writes(
        &store.fenced(&slot_b),
        copy,
        5,
        Some((&slot_b, &fence_of(&b))),
    )
    .await;
    assert!(all_fenced(&outcomes, Some(b.fencing_token)), "{outcomes:?}");
    assert_eq!(leader_written(store, copy).await, before);
    assert_eq!(slot_b.current(), None);
}

async fn check_fenced_write_races_a_take_over(db: TestDb) {
    let store = db.store.clone();
    store
        .create_run(&new_run("run-f", None, RunState::Running, 1))
        .await
        .unwrap();
    let now = wall_ms();
    let a = store
        .try_acquire_lease(LEADER, "replica-a", 60_000, now)
        .await
        .unwrap()
        .unwrap();
    let slot = FenceSlot::new();
    slot.set(Some(fence_of(&a)));
    let leader = store.fenced(&slot);
    // Four writers of A's tenure write as fast as they can, each its own item, counting up;
    // each stops at its first refusal and answers the last count it wrote.
    let mut writers = Vec::new();
    for w in 0..4 {
        let leader = leader.clone();
        writers.push(tokio::spawn(async move {
            let key = format!("instance/w{w}");
            let mut written = 0;
            loop {
                let mut it = item("run-f", &key, ItemState::Requested);
                it.attempts = written + 1;
                match leader.upsert_item(&it).await {
                    Ok(()) => written += 1,
                    Err(StoreError::Fenced { .. }) => return (key, written),
                    Err(e) => panic!("{e:?}"),
                }
            }
        }));
    }
    poll_store("the writers to get going", || async {
        let items = store.list_items("run-f", None).await.unwrap();
        items.len() == 4 && items.iter().all(|i| i.attempts >= 3)
    })
    .await;
    // The take-over commits while writes are in flight. Whatever A wrote is visible to B the
    // moment it holds the lease, and nothing A writes lands after that.
    store
        .try_acquire_lease(LEADER, "replica-b", 60_000, now + 60_001)
        .await
        .unwrap()
        .unwrap();
    let seen_by_b: Vec<(String, i32)> = store
        .list_items("run-f", None)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.item_key, i.attempts))
        .collect();
    let mut last_written = Vec::new();
    for writer in writers {
        last_written.push(writer.await.unwrap());
    }
    last_written.sort();
    let after: Vec<(String, i32)> = store
        .list_items("run-f", None)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.item_key, i.attempts))
        .collect();
    assert_eq!(
        after, seen_by_b,
        "a deposed writer's write landed after the take-over"
    );
    assert_eq!(after, last_written, "a write reported done is missing");
    assert_eq!(slot.current(), None);
}

/// Polls `check` every 10 ms for up to 30 s.
async fn poll_store<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

async fn check_one_active_disaster(db: TestDb) {
    const DECLARERS: usize = 8;
    let store = &db.store;
    // Replicas declaring at the same moment: exactly one disaster run is created.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(DECLARERS));
    let mut tasks = Vec::new();
    for i in 0..DECLARERS {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let state = if i % 2 == 0 {
                RunState::AwaitingApproval
            } else {
                RunState::Pending
            };
            store
                .create_run(&new_run(&format!("run-d{i}"), None, state, 1_000))
                .await
        }));
    }
    let mut created = Vec::new();
    let mut refused = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok((run, true)) => created.push(run.id),
            Err(StoreError::ActiveDisaster { run_id }) => refused.push(run_id),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(refused, vec![created[0].clone(); DECLARERS - 1]);
    let winner = created[0].clone();

    // Drills, dry runs and finished disasters are not limited; a retried declaration with the
    // active run's key gets that run.
    store
        .create_run(&new_drill("run-drill", RunState::Running, 2_000))
        .await
        .unwrap();
    let mut dry = new_run("run-dry", None, RunState::Pending, 2_000);
    dry.dry_run = true;
    store.create_run(&dry).await.unwrap();
    store
        .create_run(&new_run("run-old", None, RunState::Failed, 500))
        .await
        .unwrap();
    let err = store
        .create_run(&new_run("run-late", Some("late"), RunState::Pending, 3_000))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ActiveDisaster { ref run_id } if *run_id == winner),
        "{err:?}"
    );

    // Every active state blocks; once the active one ends, the next disaster can be declared.
    let mut run = store.get_run(&winner).await.unwrap().unwrap();
    for state in [RunState::Pending, RunState::Running, RunState::Succeeded] {
        let mut update = RunUpdate::from(&run);
        update.state = state;
        run = store.update_run(&winner, &update).await.unwrap();
        let result = store
            .create_run(&new_run("run-next", Some("next"), RunState::Pending, 4_000))
            .await;
        if state.is_active() {
            assert!(
                matches!(result, Err(StoreError::ActiveDisaster { .. })),
                "{state}: {result:?}"
            );
        } else {
            assert!(result.unwrap().1, "{state}");
        }
    }
    let (again, created) = store
        .create_run(&new_run(
            "run-next-2",
            Some("next"),
            RunState::Pending,
            5_000,
        ))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.id, "run-next");
    // Reopening a finished disaster while another is active is refused too.
    let mut update = RunUpdate::from(&run);
    update.state = RunState::Running;
    let err = store.update_run(&winner, &update).await.unwrap_err();
    assert!(matches!(err, StoreError::Query { .. }), "{err:?}");
}

async fn check_reopen(db: TestDb) {
    let TestDb { store, url } = db;
    store
        .upsert_mapping(&new_mapping("vpc", "vpc-1"), 1_000)
        .await
        .unwrap();
    let copy_id = store
        .insert_copy(&new_copy(CopyKind::EbsSnapshot, "snap-1", "vol-1", 1_000))
        .await
        .unwrap();
    store
        .create_run(&new_run("run-1", Some("key-1"), RunState::Running, 1_000))
        .await
        .unwrap();
    store
        .upsert_item(&item("run-1", "instance/a", ItemState::Requested))
        .await
        .unwrap();
    let audit_id = store
        .append_audit(&audit("restore.declare", 1_000))
        .await
        .unwrap();
    let lease = store
        .try_acquire_lease("leader", "replica-a", 60_000, 1_000)
        .await
        .unwrap()
        .unwrap();
    store.close().await;
    assert!(
        store.ping().await.is_err(),
        "a closed store must not answer"
    );

    // A restarted daemon: new pool, migrations run again (no-op), everything still there.
    let reopened = Store::connect(&url, &test_options()).await.unwrap();
    reopened.migrate().await.unwrap();
    reopened.ping().await.unwrap();
    assert_eq!(
        reopened
            .get_mapping("vpc", "vpc-1")
            .await
            .unwrap()
            .unwrap()
            .dr_id,
        "dr-vpc-1"
    );
    assert_eq!(
        reopened.get_copy(copy_id).await.unwrap().unwrap().source_id,
        "snap-1"
    );
    assert_eq!(
        reopened
            .active_runs()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        ["run-1"]
    );
    assert_eq!(
        reopened
            .get_item("run-1", "instance/a")
            .await
            .unwrap()
            .unwrap()
            .state,
        ItemState::Requested
    );
    assert_eq!(reopened.list_audit(None, 10).await.unwrap()[0].id, audit_id);
    assert_eq!(reopened.current_lease("leader").await.unwrap(), Some(lease));
    // Identity columns continue after the existing rows.
    assert!(
        reopened
            .append_audit(&audit("restore.watch", 2_000))
            .await
            .unwrap()
            > audit_id
    );
    reopened.close().await;
}

// ---------------------------------------------------------------------------------------------
// Back-end specific behaviour
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unsupported_scheme_is_rejected() {
    for (url, scheme) in [
        ("mysql://root@localhost/pl", "mysql"),
        ("/var/lib/pilotlight.db", "/var/lib/pilotlight.db"),
    ] {
        let err = Store::connect(url, &StoreOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::UnsupportedScheme { scheme: ref s } if s == scheme),
            "{url}: {err:?}"
        );
        assert!(err.to_string().contains("sqlite://PATH"), "{err}");
    }
}

#[tokio::test]
async fn malformed_postgres_url_is_invalid_url() {
    let err = Store::connect("postgres://localhost:notaport/db", &StoreOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidUrl {
                backend: Backend::Postgres,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_memory_store_shares_one_database() {
    let store = Store::connect("sqlite::memory:", &StoreOptions { max_connections: 8 })
        .await
        .unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store.migrate().await.unwrap();
    store
        .upsert_mapping(&new_mapping("subnet", "subnet-1"), 1)
        .await
        .unwrap();
    // Concurrent readers all see the row: there is one database, not one per connection.
    let mut readers = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        readers.push(tokio::spawn(async move {
            store.get_mapping("subnet", "subnet-1").await.unwrap()
        }));
    }
    for reader in readers {
        assert_eq!(reader.await.unwrap().unwrap().primary_id, "subnet-1");
    }
    store.close().await;
}

#[tokio::test]
async fn sqlite_file_and_parent_dirs_are_created_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/state.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert!(path.is_file());
    store.close().await;

    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn sqlite_foreign_keys_are_enforced() {
    let store = Store::connect("sqlite::memory:", &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let err = store
        .upsert_item(&item("no-such-run", "instance/a", ItemState::Pending))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    store.close().await;
}

#[test]
fn with_database_replaces_only_the_path() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "pl_x"),
        "postgres://postgres@127.0.0.1:5432/pl_x"
    );
    assert_eq!(
        with_database(
            "postgres://postgres@localhost:5/postgres?host=/tmp/d",
            "pl_x"
        ),
        "postgres://postgres@localhost:5/pl_x?host=/tmp/d"
    );
    assert_eq!(
        with_database("postgresql://u@h", "pl_x"),
        "postgresql://u@h/pl_x"
    );
}

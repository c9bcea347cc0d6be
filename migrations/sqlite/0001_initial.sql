-- pilotlight state store, initial schema (SQLite). Kept in step with
-- migrations/postgres/0001_initial.sql: same tables, columns and constraints; only identity
-- columns and the append-only trigger are written differently.
-- Conventions: timestamps are unix milliseconds (BIGINT, *_ms); JSON documents are TEXT
-- (*_json); states are snake_case TEXT checked against their closed set.

-- R1: primary -> DR resource map of the network mirror.
CREATE TABLE resource_mappings (
    kind            TEXT    NOT NULL,
    primary_id      TEXT    NOT NULL,
    dr_id           TEXT    NOT NULL,
    primary_region  TEXT    NOT NULL,
    dr_region       TEXT    NOT NULL,
    fingerprint     TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('active', 'orphaned')),
    created_at_ms   BIGINT  NOT NULL,
    updated_at_ms   BIGINT  NOT NULL,
    PRIMARY KEY (kind, primary_id)
);

-- R2-R4: cross-region copies of EBS/RDS snapshots and AMIs.
CREATE TABLE copies (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    kind                  TEXT    NOT NULL
        CHECK (kind IN ('ebs_snapshot', 'rds_snapshot', 'rds_cluster_snapshot', 'ami')),
    source_id             TEXT    NOT NULL,
    source_region         TEXT    NOT NULL,
    resource_id           TEXT    NOT NULL,
    tier                  INTEGER NOT NULL,
    dest_region           TEXT    NOT NULL,
    dest_id               TEXT,
    state                 TEXT    NOT NULL
        CHECK (state IN ('queued', 'in_flight', 'completed', 'failed', 'superseded', 'deleted')),
    progress_pct          INTEGER NOT NULL DEFAULT 0 CHECK (progress_pct BETWEEN 0 AND 100),
    size_gib              BIGINT  NOT NULL,
    source_created_at_ms  BIGINT  NOT NULL,
    requested_at_ms       BIGINT,
    completed_at_ms       BIGINT,
    attempts              INTEGER NOT NULL DEFAULT 0,
    last_error            TEXT,
    UNIQUE (kind, source_id, dest_region)
);
CREATE INDEX copies_by_state ON copies (state, kind);
CREATE INDEX copies_by_resource ON copies (kind, resource_id, dest_region, source_created_at_ms);

-- R5: pointers to the versioned inventory documents in the DR bucket; latest = max(version).
CREATE TABLE inventory_versions (
    version         INTEGER PRIMARY KEY AUTOINCREMENT,
    schema_version  INTEGER NOT NULL,
    bucket          TEXT    NOT NULL,
    object_key      TEXT    NOT NULL,
    sha256          TEXT    NOT NULL,
    size_bytes      BIGINT  NOT NULL,
    captured_at_ms  BIGINT  NOT NULL,
    counts_json     TEXT    NOT NULL
);

-- D1/D10: restore runs, their steps and items (the crash-resumable journal).
CREATE TABLE restore_runs (
    id               TEXT    PRIMARY KEY,
    mode             TEXT    NOT NULL CHECK (mode IN ('disaster', 'drill')),
    state            TEXT    NOT NULL CHECK (state IN ('awaiting_approval', 'pending', 'running',
                                 'tearing_down', 'succeeded', 'failed', 'cancelled')),
    dry_run          BOOLEAN NOT NULL,
    tiers_json       TEXT    NOT NULL,
    plan_json        TEXT    NOT NULL,
    requested_by     TEXT    NOT NULL,
    approved_by      TEXT,
    idempotency_key  TEXT    UNIQUE,
    created_at_ms    BIGINT  NOT NULL,
    started_at_ms    BIGINT,
    finished_at_ms   BIGINT,
    error            TEXT
);
CREATE INDEX restore_runs_by_state ON restore_runs (state);
CREATE INDEX restore_runs_by_created ON restore_runs (created_at_ms);

CREATE TABLE restore_steps (
    run_id          TEXT    NOT NULL REFERENCES restore_runs (id) ON DELETE CASCADE,
    step_id         TEXT    NOT NULL,
    tier            INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    state           TEXT    NOT NULL
        CHECK (state IN ('pending', 'running', 'done', 'failed', 'skipped')),
    started_at_ms   BIGINT,
    finished_at_ms  BIGINT,
    detail_json     TEXT    NOT NULL,
    PRIMARY KEY (run_id, step_id)
);

CREATE TABLE restore_items (
    run_id         TEXT    NOT NULL REFERENCES restore_runs (id) ON DELETE CASCADE,
    item_key       TEXT    NOT NULL,
    step_id        TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    primary_id     TEXT    NOT NULL,
    dr_id          TEXT,
    state          TEXT    NOT NULL CHECK (state IN ('pending', 'requested', 'done', 'failed')),
    client_token   TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    detail_json    TEXT    NOT NULL,
    last_error     TEXT,
    updated_at_ms  BIGINT  NOT NULL,
    PRIMARY KEY (run_id, item_key)
);
CREATE INDEX restore_items_by_state ON restore_items (run_id, state);

-- D1: append-only audit log of admin actions.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms        BIGINT  NOT NULL,
    principal    TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    target       TEXT    NOT NULL,
    detail_json  TEXT    NOT NULL
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE rejected');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: DELETE rejected');
END;

-- P2: leader lease with a fencing token.
CREATE TABLE leader_lease (
    name            TEXT    PRIMARY KEY,
    holder          TEXT    NOT NULL,
    fencing_token   BIGINT  NOT NULL,
    acquired_at_ms  BIGINT  NOT NULL,
    expires_at_ms   BIGINT  NOT NULL
);

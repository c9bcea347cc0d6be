-- Inventory digests and tenants (R5, R8). Same text for PostgreSQL and SQLite.

-- Hex SHA-256 of the inventory document without its capture time: a capture with the same
-- digest as the latest version writes nothing.
ALTER TABLE inventory_versions ADD COLUMN digest TEXT NOT NULL DEFAULT '';

-- R8: tenants managed through the admin API (tenants in the config file are not stored).
CREATE TABLE tenants (
    name           TEXT    PRIMARY KEY,
    clusters_json  TEXT    NOT NULL,
    updated_by     TEXT    NOT NULL,
    updated_at_ms  BIGINT  NOT NULL
);

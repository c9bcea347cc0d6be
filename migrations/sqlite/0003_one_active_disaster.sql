-- P2 / D1: at most one active disaster run, across every replica sharing this store. Two
-- replicas declaring at the same moment both pass the service's read-then-insert check; this
-- index refuses the second insert (the store answers `ActiveDisaster`, the API 409). The
-- indexed column is constant under the predicate, so the index holds at most one row.
-- Same text for PostgreSQL and SQLite.
CREATE UNIQUE INDEX restore_runs_one_active_disaster ON restore_runs (mode)
    WHERE mode = 'disaster' AND dry_run = FALSE
      AND state IN ('awaiting_approval', 'pending', 'running', 'tearing_down');

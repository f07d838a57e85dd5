-- 0002 schedules (SQLite): schedules declared through the API or the CLI.
-- The same migration exists in migrations/postgres; keep them in step.
-- Times are milliseconds since the epoch.

-- A declared schedule. Redis holds it as a BullMQ job scheduler; this row
-- is what the reconciler in `drover scheduler` restores it from when Redis
-- lost it (a flush, a restart without persistence). Schedules declared in
-- the config file are not stored here: the file is their source.
CREATE TABLE schedules (
    queue          TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    definition     TEXT    NOT NULL,  -- JSON, as PUT /api/v1/queues/{queue}/schedules/{id} takes it
    created_at_ms  BIGINT  NOT NULL,
    updated_at_ms  BIGINT  NOT NULL,
    updated_by     TEXT    NOT NULL,  -- the actor, as in the audit log
    PRIMARY KEY (queue, id)
);

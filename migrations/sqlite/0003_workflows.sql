-- 0003 workflows (SQLite): workflow types, runs, their steps and events.
-- The same migration exists in migrations/postgres; keep them in step.
-- Times are milliseconds since the epoch; JSON is kept as TEXT.

-- A registered workflow type: its checked definition. version grows with
-- every change; a run keeps the definition it started with.
CREATE TABLE workflow_types (
    kind           TEXT    NOT NULL PRIMARY KEY,
    definition     TEXT    NOT NULL,
    version        BIGINT  NOT NULL,
    updated_at_ms  BIGINT  NOT NULL,
    updated_by     TEXT    NOT NULL
);

-- One run of a workflow type.
-- state: pending (waiting for a run slot), running, completed, failed,
-- cancelled.
CREATE TABLE workflow_runs (
    id               TEXT    NOT NULL PRIMARY KEY,
    kind             TEXT    NOT NULL,
    definition       TEXT    NOT NULL,  -- the type's definition when the run started
    state            TEXT    NOT NULL,
    input            TEXT    NOT NULL,
    output           TEXT,
    error            TEXT,
    idempotency_key  TEXT,
    created_at_ms    BIGINT  NOT NULL,
    started_at_ms    BIGINT,
    finished_at_ms   BIGINT,
    deadline_ms      BIGINT,
    updated_at_ms    BIGINT  NOT NULL
);
CREATE UNIQUE INDEX workflow_runs_idempotency ON workflow_runs (kind, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX workflow_runs_by_state ON workflow_runs (state, created_at_ms);
CREATE INDEX workflow_runs_by_kind ON workflow_runs (kind, state);

-- One unit of a run's step: item -1 for a plain step (and for the
-- fan-in of a fan-out step), 0.. for the items of a fan-out.
-- state: waiting, dispatched (its job is in Redis), completed, failed,
-- cancelled. attempt is the dispatch generation (retrying a failed run
-- dispatches a new one); its job id is derived from run, step, item and
-- attempt, so a re-dispatch after a crash adds the same job.
CREATE TABLE workflow_steps (
    run_id            TEXT    NOT NULL,
    step              TEXT    NOT NULL,
    item              BIGINT  NOT NULL,
    state             TEXT    NOT NULL,
    attempt           BIGINT  NOT NULL,
    queue             TEXT    NOT NULL,
    job_id            TEXT,
    input             TEXT,
    output            TEXT,
    checkpoint        TEXT,
    error             TEXT,
    tries             BIGINT  NOT NULL,  -- tries BullMQ made of the current job
    ready_at_ms       BIGINT  NOT NULL,
    dispatched_at_ms  BIGINT,
    finished_at_ms    BIGINT,
    PRIMARY KEY (run_id, step, item)
);
CREATE INDEX workflow_steps_by_state ON workflow_steps (state, run_id);

-- Every state change of runs and steps, in order: the events feed.
CREATE TABLE workflow_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms   BIGINT  NOT NULL,
    run_id  TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    step    TEXT,
    item    BIGINT,
    state   TEXT    NOT NULL,
    detail  TEXT
);
CREATE INDEX workflow_events_by_run ON workflow_events (run_id, id);

-- 0001 init (SQLite): API keys and the audit log.
-- The same migration exists in migrations/postgres; keep them in step.
-- Times are milliseconds since the epoch.

-- An API key. Its token is never stored: only the SHA-256 (hex) of it,
-- looked up through the unique index on every authenticated request.
CREATE TABLE api_keys (
    id                 TEXT    NOT NULL PRIMARY KEY,  -- v4 UUID
    name               TEXT    NOT NULL,
    token_hash         TEXT    NOT NULL UNIQUE,
    token_prefix       TEXT    NOT NULL,              -- first 12 characters, for people
    scopes             TEXT    NOT NULL,              -- JSON array of scope strings
    rate_limit_per_sec BIGINT,
    created_at_ms      BIGINT  NOT NULL,
    revoked_at_ms      BIGINT
);

-- A name belongs to at most one key that is not revoked; revoked keys keep
-- theirs, so a name can be reused after its key is revoked.
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at_ms IS NULL;

-- Who did what, when, and how it ended. Append-only, read newest first by
-- id; AUTOINCREMENT so an id is never handed out twice, even after rows
-- are pruned.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms   BIGINT  NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    queue   TEXT,
    target  TEXT,
    params  TEXT    NOT NULL,  -- JSON
    outcome TEXT    NOT NULL
);

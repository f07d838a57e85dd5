-- 0004 dashboard sessions (SQLite).
-- The same migration exists in migrations/postgres; keep them in step.

-- A dashboard sign-in: someone pasted an API key into the sign-in form and
-- got a session cookie. Only the SHA-256 (hex) of the cookie's token is
-- stored. The session acts with its key's scopes, looked up on every
-- request, so revoking the key ends its sessions at once.
CREATE TABLE dashboard_sessions (
    token_hash    TEXT   NOT NULL PRIMARY KEY,
    key_id        TEXT   NOT NULL REFERENCES api_keys (id),
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);

CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at_ms);

//! Dashboard sessions: an API key pasted into the sign-in form becomes a
//! session whose random token lives in an HttpOnly cookie. The store keeps
//! only the token's SHA-256; every lookup joins the key, so a revoked key
//! ends its sessions at once and a session never outlives its expiry.

use std::time::Duration;

use sqlx::Row;
use uuid::Uuid;

use super::api_keys::{ApiKey, key_from_row, token_hash};
use super::{Store, ms_from_db, ms_to_db};
use crate::error::Result;

/// What every session token starts with.
const SESSION_PREFIX: &str = "drs_";

/// A session just opened, with its token: set it in the cookie; the store
/// keeps its hash.
#[derive(Clone)]
pub struct NewSession {
    /// The secret, `drs_` and 64 lowercase hex characters.
    pub token: String,
    /// When it stops working, ms since the epoch.
    pub expires_at_ms: u64,
}

// By hand so the token never reaches a log.
impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("token", &"***")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// A live session and the key it acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The API key signed in with (not revoked).
    pub key: ApiKey,
    /// When the session began, ms since the epoch.
    pub created_at_ms: u64,
    /// When it ends, ms since the epoch.
    pub expires_at_ms: u64,
}

impl Store {
    /// Opens a session for the key `key_id`, valid for `ttl` from `now_ms`.
    pub async fn create_session(
        &self,
        key_id: &str,
        now_ms: u64,
        ttl: Duration,
    ) -> Result<NewSession> {
        let token = format!(
            "{SESSION_PREFIX}{}{}",
            Uuid::new_v4().simple(),
            Uuid::new_v4().simple()
        );
        let expires_at_ms =
            now_ms.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        sqlx::query(
            "INSERT INTO dashboard_sessions (token_hash, key_id, created_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash(&token))
        .bind(key_id)
        .bind(ms_to_db(now_ms))
        .bind(ms_to_db(expires_at_ms))
        .execute(self.pool())
        .await?;
        Ok(NewSession {
            token,
            expires_at_ms,
        })
    }

    /// The session whose token this is, if it has not expired and its key
    /// is not revoked. Anything not shaped like a session token is `None`
    /// without a query.
    pub async fn session(&self, token: &str, now_ms: u64) -> Result<Option<Session>> {
        if !looks_like_session_token(token) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT k.id, k.name, k.token_prefix, k.scopes, k.rate_limit_per_sec, \
                    k.created_at_ms, k.revoked_at_ms, \
                    s.created_at_ms AS session_created_at_ms, s.expires_at_ms \
             FROM dashboard_sessions s JOIN api_keys k ON k.id = s.key_id \
             WHERE s.token_hash = $1 AND s.expires_at_ms > $2 AND k.revoked_at_ms IS NULL",
        )
        .bind(token_hash(token))
        .bind(ms_to_db(now_ms))
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Session {
            key: key_from_row(&row)?,
            created_at_ms: ms_from_db(row.try_get("session_created_at_ms")?),
            expires_at_ms: ms_from_db(row.try_get("expires_at_ms")?),
        }))
    }

    /// Ends the session whose token this is (signing out); nothing if
    /// there is none.
    pub async fn end_session(&self, token: &str) -> Result<()> {
        sqlx::query("DELETE FROM dashboard_sessions WHERE token_hash = $1")
            .bind(token_hash(token))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Deletes sessions that expired before `now_ms`; answers how many.
    pub async fn purge_expired_sessions(&self, now_ms: u64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at_ms <= $1")
            .bind(ms_to_db(now_ms))
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

fn looks_like_session_token(token: &str) -> bool {
    token.len() == SESSION_PREFIX.len() + 64
        && token.strip_prefix(SESSION_PREFIX).is_some_and(|hex| {
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_session_shaped_tokens_are_looked_up() {
        assert!(looks_like_session_token(&format!(
            "drs_{}",
            "a1".repeat(32)
        )));
        assert!(!looks_like_session_token(&format!(
            "drv_{}",
            "a1".repeat(32)
        )));
        assert!(!looks_like_session_token("drs_short"));
        assert!(!looks_like_session_token(&format!(
            "drs_{}",
            "A1".repeat(32)
        )));
    }
}

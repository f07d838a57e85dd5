//! API keys: a name, scopes and an optional rate limit, created with a
//! secret token that is shown once and stored only as its SHA-256.
//!
//! A token is `drv_` and 64 hex characters from two v4 UUIDs: 244 bits
//! from the operating system's random source (uuid uses getrandom). At that
//! entropy a plain SHA-256 is the right hash: nobody can search the space
//! for a preimage, and looking a key up on every request stays one cheap
//! hash and one indexed read. Slow password hashes (argon2, bcrypt) exist to
//! protect guessable secrets, which these are not. Looking the hash up by a
//! unique index also means no comparison of secrets happens in Drover.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{Scope, Store, ms_from_db, ms_to_db};
use crate::clock::now_ms;
use crate::error::{QueueError, Result};

/// What every token starts with, so leaked ones are easy to search for.
const TOKEN_PREFIX: &str = "drv_";
/// Length of a token: the prefix and 64 hex characters.
const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 64;
/// How much of a token is kept in clear, to tell keys apart in a list.
const SHOWN_PREFIX_LEN: usize = 12;
/// Longest key name, in characters.
const MAX_NAME_LEN: usize = 64;

const COLUMNS: &str =
    "id, name, token_prefix, scopes, rate_limit_per_sec, created_at_ms, revoked_at_ms";

/// An API key as stored: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// A v4 UUID, hyphenated.
    pub id: String,
    /// The name people know it by; unique among keys not revoked.
    pub name: String,
    /// The token's first 12 characters (`drv_` and 8 more), to recognise a
    /// key in a list; not enough to use it.
    pub token_prefix: String,
    /// What it may do; never empty.
    pub scopes: Vec<Scope>,
    /// Its own limit of requests per second, if it has one.
    pub rate_limit_per_sec: Option<u32>,
    /// When it was created, in ms since the epoch.
    pub created_at_ms: u64,
    /// When it was revoked, in ms since the epoch, if it was.
    pub revoked_at_ms: Option<u64>,
}

/// A key just created, with its token. The token exists only here: show it
/// to the person once; the store keeps its hash.
#[derive(Clone)]
pub struct NewApiKey {
    /// The stored key.
    pub key: ApiKey,
    /// The secret, `drv_` and 64 lowercase hex characters.
    pub token: String,
}

// By hand so the token never reaches a log.
impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey")
            .field("key", &self.key)
            .field("token", &"***")
            .finish()
    }
}

impl Store {
    /// Creates a key named `name` with `scopes`; the answer holds its token.
    ///
    /// Fails with [`QueueError::InvalidApiKeyName`] or
    /// [`QueueError::InvalidScope`] (no scopes) before touching the store,
    /// and with [`QueueError::ApiKeyNameTaken`] when a key that is not
    /// revoked has that name.
    pub async fn create_api_key(
        &self,
        name: &str,
        scopes: &[Scope],
        rate_limit_per_sec: Option<u32>,
    ) -> Result<NewApiKey> {
        validate_name(name)?;
        if scopes.is_empty() {
            return Err(QueueError::InvalidScope {
                scope: String::new(),
                reason: "a key needs at least one scope (enqueue:<queue pattern>, read or admin)",
            });
        }
        let token = new_token();
        let key = ApiKey {
            id: Uuid::new_v4().to_string(),
            name: name.to_owned(),
            token_prefix: token.chars().take(SHOWN_PREFIX_LEN).collect(),
            scopes: scopes.to_vec(),
            rate_limit_per_sec,
            created_at_ms: now_ms(),
            revoked_at_ms: None,
        };
        let inserted = sqlx::query(
            "INSERT INTO api_keys \
             (id, name, token_hash, token_prefix, scopes, rate_limit_per_sec, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(token_hash(&token))
        .bind(&key.token_prefix)
        .bind(scopes_to_db(&key.scopes)?)
        .bind(rate_limit_per_sec.map(i64::from))
        .bind(ms_to_db(key.created_at_ms))
        .execute(self.pool())
        .await;
        match inserted {
            Ok(_) => Ok(NewApiKey { key, token }),
            // The only unique index a fresh UUID and 244 random bits can
            // realistically hit is the one on active names.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(QueueError::ApiKeyNameTaken {
                    name: name.to_owned(),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Keys by creation time (then id, for keys made in the same
    /// millisecond); revoked ones only with `include_revoked`.
    pub async fn list_api_keys(&self, include_revoked: bool) -> Result<Vec<ApiKey>> {
        let filter = if include_revoked {
            ""
        } else {
            "WHERE revoked_at_ms IS NULL"
        };
        let sql = format!("SELECT {COLUMNS} FROM api_keys {filter} ORDER BY created_at_ms, id");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Revokes a key, by id or by the name of an active key; answers the
    /// key as it is now.
    ///
    /// By id it is idempotent: a key already revoked is answered unchanged
    /// (keeping its first `revoked_at_ms`). By name only active keys match,
    /// so revoking a name twice is [`QueueError::ApiKeyNotFound`] the
    /// second time, as is anything else that names no key. Names can never
    /// look like ids (see [`Store::create_api_key`]), so the two never mix.
    pub async fn revoke_api_key(&self, id_or_name: &str) -> Result<ApiKey> {
        let not_found = || QueueError::ApiKeyNotFound {
            key: id_or_name.to_owned(),
        };
        let now = ms_to_db(now_ms());
        if let Ok(id) = Uuid::try_parse(id_or_name) {
            let id = id.to_string();
            let revoked = sqlx::query(&format!(
                "UPDATE api_keys SET revoked_at_ms = $1 \
                 WHERE id = $2 AND revoked_at_ms IS NULL RETURNING {COLUMNS}"
            ))
            .bind(now)
            .bind(&id)
            .fetch_optional(self.pool())
            .await?;
            let row = match revoked {
                Some(row) => row,
                None => sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"))
                    .bind(&id)
                    .fetch_optional(self.pool())
                    .await?
                    .ok_or_else(not_found)?,
            };
            return key_from_row(&row);
        }
        let row = sqlx::query(&format!(
            "UPDATE api_keys SET revoked_at_ms = $1 \
             WHERE name = $2 AND revoked_at_ms IS NULL RETURNING {COLUMNS}"
        ))
        .bind(now)
        .bind(id_or_name)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(not_found)?;
        key_from_row(&row)
    }

    /// The key whose token this is, if it exists and is not revoked.
    ///
    /// Anything not shaped like a token is `None` without a query, so
    /// garbage in an `Authorization` header costs nothing.
    pub async fn authenticate(&self, token: &str) -> Result<Option<ApiKey>> {
        if !looks_like_token(token) {
            return Ok(None);
        }
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE token_hash = $1 AND revoked_at_ms IS NULL"
        ))
        .bind(token_hash(token))
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(key_from_row).transpose()
    }
}

/// `drv_` and the 32 hex digits of each of two v4 UUIDs.
fn new_token() -> String {
    format!(
        "{TOKEN_PREFIX}{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    )
}

fn looks_like_token(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token.strip_prefix(TOKEN_PREFIX).is_some_and(|hex| {
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// The stored form of a token: lowercase hex of its SHA-256.
pub(super) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// 1 to 64 ASCII letters, digits, `_`, `.` or `-`, and not shaped like a
/// UUID (ids are UUIDs, and revoking takes either).
fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() || name.len() > MAX_NAME_LEN {
        Some("must be 1 to 64 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        Some("may hold only ASCII letters, digits, '_', '.' and '-'")
    } else if Uuid::try_parse(name).is_ok() {
        Some("must not look like a key id (a UUID)")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(QueueError::InvalidApiKeyName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Scopes are stored as a JSON array of their strings: a queue pattern may
/// hold spaces or commas, so no simpler separator is safe.
fn scopes_to_db(scopes: &[Scope]) -> Result<String> {
    serde_json::to_string(scopes).map_err(|e| QueueError::StoreData(e.to_string()))
}

pub(super) fn key_from_row(row: &AnyRow) -> Result<ApiKey> {
    let id: String = row.try_get("id")?;
    let scopes: String = row.try_get("scopes")?;
    let scopes: Vec<Scope> = serde_json::from_str(&scopes)
        .map_err(|e| QueueError::StoreData(format!("scopes of API key {id}: {e}")))?;
    let rate_limit_per_sec = match row.try_get::<Option<i64>, _>("rate_limit_per_sec")? {
        Some(limit) => Some(u32::try_from(limit).map_err(|_| {
            QueueError::StoreData(format!(
                "rate limit of API key {id}: {limit} is out of range"
            ))
        })?),
        None => None,
    };
    Ok(ApiKey {
        name: row.try_get("name")?,
        token_prefix: row.try_get("token_prefix")?,
        scopes,
        rate_limit_per_sec,
        created_at_ms: ms_from_db(row.try_get("created_at_ms")?),
        revoked_at_ms: row
            .try_get::<Option<i64>, _>("revoked_at_ms")?
            .map(ms_from_db),
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_hex_and_distinct() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_LEN);
        assert!(looks_like_token(&a), "{a}");
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn only_token_shapes_are_looked_up() {
        let token = new_token();
        assert!(!looks_like_token(&token.to_uppercase()));
        assert!(!looks_like_token(&token[..TOKEN_LEN - 1]));
        assert!(!looks_like_token(&format!("{token}0")));
        assert!(!looks_like_token(&token.replacen("drv_", "drx_", 1)));
        assert!(!looks_like_token(""));
    }

    #[test]
    fn hash_is_sha256_hex() {
        // SHA-256("abc"), from FIPS 180-2.
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn names_are_checked() {
        for ok in ["shop", "billing-eu.v2", "A_1", &"n".repeat(64)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "x'; DROP TABLE api_keys;--",
            "o'brien",
            "with space",
            "quote\"d",
            "semi;colon",
            "naïve",
            &"n".repeat(65),
            "6f1c1f0e-8a52-4b0e-9d8e-2b1f3c4d5e6f",
            "6f1c1f0e8a524b0e9d8e2b1f3c4d5e6f",
        ] {
            let err = validate_name(bad).unwrap_err();
            assert!(
                matches!(err, QueueError::InvalidApiKeyName { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn scopes_with_spaces_survive_storage() {
        let scopes: Vec<Scope> = ["enqueue:my queue, eu*", "read"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let stored = scopes_to_db(&scopes).unwrap();
        assert_eq!(serde_json::from_str::<Vec<Scope>>(&stored).unwrap(), scopes);
    }

    #[test]
    fn new_keys_do_not_print_their_token() {
        let token = new_token();
        let key = NewApiKey {
            key: ApiKey {
                id: Uuid::new_v4().to_string(),
                name: "k".into(),
                token_prefix: token[..SHOWN_PREFIX_LEN].to_owned(),
                scopes: vec![Scope::Read],
                rate_limit_per_sec: None,
                created_at_ms: 0,
                revoked_at_ms: None,
            },
            token: token.clone(),
        };
        assert!(!format!("{key:?}").contains(&token));
    }
}

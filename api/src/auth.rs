//! Who is calling, and may they: API keys (`Authorization: Bearer drv_…`)
//! checked against the store, cached briefly, rate-limited per key in
//! Redis, then each route group's scope requirement.
//!
//! `401` means no key or an unknown or revoked one; `403` means a valid key
//! whose scopes do not cover the route. In `drover dev` authentication is
//! off and every request acts as an admin on loopback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use queue_core::rate_limit::{self, RateDecision};
use queue_core::store::{ApiKey, Scope};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::ApiState;

/// Whether requests need an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Every route but `/health` and `/ready` needs a key.
    ApiKeys,
    /// No authentication (`drover dev` on loopback only).
    Disabled,
}

/// Who is acting: the authenticated caller of a request (a request
/// extension), or a dashboard session's key. Actions take one, check its
/// scopes and write its name in the audit log.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The API key's id; `None` when authentication is off.
    pub(crate) key_id: Option<String>,
    /// Who to write in the audit log.
    pub(crate) name: String,
    scopes: Vec<Scope>,
    rate_limit_per_sec: Option<u32>,
}

impl Caller {
    fn from_key(key: ApiKey, default_limit: Option<u32>) -> Self {
        Self {
            name: format!("key:{}", key.name),
            rate_limit_per_sec: key.rate_limit_per_sec.or(default_limit),
            key_id: Some(key.id),
            scopes: key.scopes,
        }
    }

    /// Everyone, when authentication is off (`drover dev`): an admin.
    pub fn auth_disabled() -> Self {
        Self {
            key_id: None,
            name: "dev (auth off)".into(),
            scopes: vec![Scope::Admin],
            rate_limit_per_sec: None,
        }
    }

    /// Someone signed in to the dashboard with `key`.
    pub fn dashboard(key: ApiKey) -> Self {
        Self {
            name: format!("key:{} (dashboard)", key.name),
            rate_limit_per_sec: None,
            key_id: Some(key.id),
            scopes: key.scopes,
        }
    }

    /// Who to write in the audit log.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The identity idempotency keys are scoped to.
    pub(crate) fn idempotency_owner(&self) -> &str {
        self.key_id.as_deref().unwrap_or("dev")
    }

    /// Whether it may read queues, jobs and the rest.
    pub fn can_read(&self) -> bool {
        self.scopes.iter().any(Scope::permits_read)
    }

    /// Whether it may act (pause, retry, remove, ...).
    pub fn can_admin(&self) -> bool {
        self.scopes.iter().any(Scope::permits_admin)
    }

    fn can_enqueue(&self, queue: &str) -> bool {
        self.scopes.iter().any(|s| s.permits_enqueue(queue))
    }
}

/// Verified keys by token hash, trusted for the configured TTL so the hot
/// path does not ask the store on every request. Unknown tokens are cached
/// too (a flood of bad keys must not become a flood of store queries); the
/// map is emptied when it grows past [`KEY_CACHE_MAX`].
///
/// When an entry goes stale, the first request to see it starts one
/// re-check in the background and requests keep using the stale answer
/// until it lands (up to twice the TTL, then they wait for the store):
/// otherwise every request in flight at expiry would query the store at
/// once, which is a latency spike every TTL under load.
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    entries: Mutex<KeyMap>,
}

#[derive(Debug, Clone)]
struct Entry {
    verified_at: Instant,
    refreshing: bool,
    key: Option<ApiKey>,
}

/// Token hash → what the store said about it.
type KeyMap = HashMap<[u8; 32], Entry>;

/// What the cache knows about a token.
enum Cached {
    /// Usable as is.
    Fresh(Option<ApiKey>),
    /// Usable while one background re-check runs (started by this caller
    /// when `refresh`).
    Stale { key: Option<ApiKey>, refresh: bool },
    /// Ask the store now.
    Missing,
}

/// Most tokens remembered at once.
const KEY_CACHE_MAX: usize = 10_000;

impl KeyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, KeyMap> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn look_up(&self, digest: &[u8; 32], ttl: Duration) -> Cached {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(digest) else {
            return Cached::Missing;
        };
        let age = entry.verified_at.elapsed();
        if age < ttl {
            Cached::Fresh(entry.key.clone())
        } else if age < ttl * 2 {
            let refresh = !entry.refreshing;
            entry.refreshing = true;
            Cached::Stale {
                key: entry.key.clone(),
                refresh,
            }
        } else {
            Cached::Missing
        }
    }

    fn store(&self, digest: [u8; 32], key: Option<ApiKey>) {
        let mut entries = self.lock();
        if entries.len() >= KEY_CACHE_MAX {
            entries.clear();
        }
        entries.insert(
            digest,
            Entry {
                verified_at: Instant::now(),
                refreshing: false,
                key,
            },
        );
    }

    /// Lets the next request retry a re-check that failed.
    fn refresh_failed(&self, digest: &[u8; 32]) {
        if let Some(entry) = self.lock().get_mut(digest) {
            entry.refreshing = false;
        }
    }
}

/// Authenticates and rate-limits every request it wraps.
pub(crate) async fn authenticate(
    State(state): State<Arc<ApiState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let caller = match state.auth {
        AuthMode::Disabled => Caller::auth_disabled(),
        AuthMode::ApiKeys => match verify(&state, bearer_token(&req).map(str::to_owned)).await {
            Ok(caller) => caller,
            Err(e) => return e.into_response(),
        },
    };
    if let (Some(limit), Some(id)) = (caller.rate_limit_per_sec, &caller.key_id) {
        match rate_limit::hit(&state.conn, id, limit).await {
            Ok(RateDecision::Allowed { .. }) => {}
            Ok(RateDecision::Limited { retry_after }) => {
                return ApiError::rate_limited(retry_after).into_response();
            }
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// `token` is owned: the request body is not `Sync`, so no borrow of the
/// request may live across the store query.
async fn verify(
    state: &Arc<ApiState>,
    token: Result<String, &'static str>,
) -> Result<Caller, ApiError> {
    let token = token.map_err(ApiError::unauthorized)?;
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let key = match state.keys.look_up(&digest, state.settings.key_cache_ttl) {
        Cached::Fresh(key) => key,
        Cached::Stale { key, refresh } => {
            if refresh {
                let state = Arc::clone(state);
                tokio::spawn(async move {
                    match state.store.authenticate(&token).await {
                        Ok(key) => state.keys.store(digest, key),
                        Err(e) => {
                            state.keys.refresh_failed(&digest);
                            state.metrics.count_error("key_refresh");
                            tracing::warn!(error = %e, "cannot re-check an API key; will retry");
                        }
                    }
                });
            }
            key
        }
        Cached::Missing => {
            let key = state.store.authenticate(&token).await?;
            state.keys.store(digest, key.clone());
            key
        }
    };
    let key = key.ok_or_else(|| ApiError::unauthorized("unknown or revoked API key"))?;
    Ok(Caller::from_key(key, state.settings.key_rate_limit_per_sec))
}

fn bearer_token(req: &Request) -> Result<&str, &'static str> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or("this route needs an API key: send Authorization: Bearer <key>")?;
    let value = value
        .to_str()
        .map_err(|_| "the Authorization header is not valid text")?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or("the Authorization header must be: Bearer <key>")?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err("the Authorization header must be: Bearer <key>");
    }
    Ok(token)
}

/// `WWW-Authenticate` for `401`s, as RFC 6750 asks.
pub(crate) async fn challenge(mut response: Response) -> Response {
    if response.status() == axum::http::StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"drover\""),
        );
    }
    response
}

fn caller(parts: &Parts) -> Result<Caller, ApiError> {
    parts
        .extensions
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::internal(&"a scope check ran before authentication"))
}

/// A handler argument that admits `read` and `admin` keys (`403` for
/// others). Scope extractors come first in a handler's arguments, so the
/// check happens before the body is read.
#[derive(Debug)]
pub(crate) struct ReadScope;

impl<S: Send + Sync> FromRequestParts<S> for ReadScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        if caller(parts)?.can_read() {
            Ok(Self)
        } else {
            Err(ApiError::forbidden("this API key lacks the read scope"))
        }
    }
}

/// A handler argument that admits `admin` keys only.
#[derive(Debug)]
pub(crate) struct AdminScope(pub(crate) Caller);

impl<S: Send + Sync> FromRequestParts<S> for AdminScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let c = caller(parts)?;
        if c.can_admin() {
            Ok(Self(c))
        } else {
            Err(ApiError::forbidden("this API key lacks the admin scope"))
        }
    }
}

/// A handler argument that admits keys whose `enqueue:` pattern matches
/// the route's `{queue}`, and `admin` keys.
#[derive(Debug)]
pub(crate) struct EnqueueScope(pub(crate) Caller);

impl<S: Send + Sync> FromRequestParts<S> for EnqueueScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let c = caller(parts)?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))?;
        let queue = params.get("queue").map(String::as_str).unwrap_or_default();
        if c.can_enqueue(queue) {
            Ok(Self(c))
        } else {
            Err(ApiError::forbidden(format!(
                "this API key may not add jobs to queue {queue:?}; it needs an enqueue scope matching it"
            )))
        }
    }
}

/// A handler argument for routes whose queues are known only after a
/// lookup (the queues of a workflow's steps): admits `admin` keys and keys
/// with an `enqueue:` scope, so a key that could never pass is refused
/// before anything is looked up; the handler then checks the queues it
/// found with [`EnqueueLater::check`].
#[derive(Debug)]
pub(crate) struct EnqueueLater(pub(crate) Caller);

impl EnqueueLater {
    /// `403` unless the key may add jobs to every one of `queues`.
    pub(crate) fn check<'a>(
        &self,
        queues: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ApiError> {
        match queues.into_iter().find(|q| !self.0.can_enqueue(q)) {
            None => Ok(()),
            Some(queue) => Err(ApiError::forbidden(format!(
                "this API key may not add jobs to queue {queue:?}, where this workflow runs a step; it needs an enqueue scope matching it, or admin"
            ))),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for EnqueueLater {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let c = caller(parts)?;
        if c.can_admin() || c.scopes.iter().any(|s| matches!(s, Scope::Enqueue(_))) {
            Ok(Self(c))
        } else {
            Err(ApiError::forbidden(
                "this API key lacks an enqueue scope (or admin), which this route needs",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aged(cache: &KeyCache, digest: [u8; 32], age: Duration) {
        cache.store(digest, None);
        let mut entries = cache.lock();
        let entry = entries.get_mut(&digest).unwrap();
        entry.verified_at = Instant::now().checked_sub(age).unwrap();
    }

    #[test]
    fn stale_entries_start_one_refresh_and_expire_after_twice_the_ttl() {
        let ttl = Duration::from_secs(5);
        let cache = KeyCache::default();
        assert!(matches!(cache.look_up(&[1; 32], ttl), Cached::Missing));
        aged(&cache, [1; 32], Duration::from_secs(1));
        assert!(matches!(cache.look_up(&[1; 32], ttl), Cached::Fresh(None)));
        aged(&cache, [2; 32], Duration::from_secs(6));
        assert!(matches!(
            cache.look_up(&[2; 32], ttl),
            Cached::Stale { refresh: true, .. }
        ));
        assert!(matches!(
            cache.look_up(&[2; 32], ttl),
            Cached::Stale { refresh: false, .. }
        ));
        cache.refresh_failed(&[2; 32]);
        assert!(matches!(
            cache.look_up(&[2; 32], ttl),
            Cached::Stale { refresh: true, .. }
        ));
        aged(&cache, [3; 32], Duration::from_secs(11));
        assert!(matches!(cache.look_up(&[3; 32], ttl), Cached::Missing));
    }
}

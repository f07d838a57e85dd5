//! An API in-process on a private redis-server and a fresh SQLite store,
//! with one key per scope, driven through the real router.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use drover_api::{ApiConfig, ApiState, AuthMode};
use http_body_util::BodyExt;
use queue_core::store::{Scope, Store, StoreConfig};
use queue_core::{Connection, RedisSettings};
use serde_json::Value;
use testkit::RedisServer;

/// One API under test.
pub struct TestApi {
    pub redis: RedisServer,
    pub conn: Connection,
    pub store: Store,
    pub router: Router,
    pub state: Arc<ApiState>,
    pub registry: prometheus::Registry,
    pub admin: String,
    pub reader: String,
    /// `enqueue:emails*`.
    pub producer: String,
    /// `enqueue:other-*`.
    pub outsider: String,
    _dir: tempfile::TempDir,
}

impl TestApi {
    pub async fn start() -> Self {
        Self::start_with(ApiConfig {
            key_cache_ttl_ms: 0,
            queue_metrics_interval_ms: 100,
            ..ApiConfig::default()
        })
        .await
    }

    pub async fn start_with(config: ApiConfig) -> Self {
        Self::start_on(config, StoreConfig::default()).await
    }

    /// With the store `store` says (a PostgreSQL test database's URL; by
    /// default a SQLite file in a temporary directory).
    pub async fn start_on(config: ApiConfig, store: StoreConfig) -> Self {
        let redis = RedisServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&store.resolve(dir.path()).unwrap())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let key = |name: &'static str, scope: &'static str| {
            let store = store.clone();
            async move {
                let scopes = [scope.parse::<Scope>().unwrap()];
                store
                    .create_api_key(name, &scopes, None)
                    .await
                    .unwrap()
                    .token
            }
        };
        let admin = key("admin", "admin").await;
        let reader = key("reader", "read").await;
        let producer = key("producer", "enqueue:emails*").await;
        let outsider = key("outsider", "enqueue:other-*").await;
        let conn = Connection::connect(RedisSettings::for_url(redis.url()).unwrap())
            .await
            .unwrap();
        let registry = prometheus::Registry::new();
        let state = ApiState::new(
            conn.clone(),
            store.clone(),
            AuthMode::ApiKeys,
            config.resolve().unwrap(),
            registry.clone(),
        )
        .unwrap();
        Self {
            router: drover_api::router(Arc::clone(&state)),
            state,
            registry,
            redis,
            conn,
            store,
            admin,
            reader,
            producer,
            outsider,
            _dir: dir,
        }
    }

    /// Sends a request; `key` None sends no Authorization header.
    pub async fn send(&self, req: Request<Body>) -> Response<Body> {
        use tower::ServiceExt;
        self.router.clone().oneshot(req).await.unwrap()
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let res = self.send(request(method, path, key, body, &[])).await;
        json_of(res).await
    }
}

/// Builds a request with an optional bearer key, JSON body and headers.
pub fn request(
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        b = b.header("authorization", format!("Bearer {key}"));
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

/// A raw-body request (for malformed input).
pub fn raw(
    method: &str,
    path: &str,
    key: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap()
}

/// Status and JSON body (Null when the body is not JSON).
pub async fn json_of(res: Response<Body>) -> (StatusCode, Value) {
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The error code of an error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

//! The API and the dashboard in-process, as `drover serve` merges them, on
//! a private redis-server and a fresh SQLite store, with one key per
//! scope, driven through the real router like a browser would: cookies,
//! forms, redirects.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use drover_api::{ApiConfig, ApiState, AuthMode};
use drover_dashboard::DashboardConfig;
use http_body_util::BodyExt;
use queue_core::store::{Scope, Store, StoreConfig};
use queue_core::{Connection, RedisSettings};
use testkit::RedisServer;
use tokio_util::sync::CancellationToken;

/// One API + dashboard under test.
pub struct TestDash {
    pub redis: RedisServer,
    pub conn: Connection,
    pub store: Store,
    pub router: Router,
    pub admin: String,
    pub reader: String,
    /// `enqueue:*`: may add jobs, may not read.
    pub producer: String,
    pub stop: CancellationToken,
    _dir: tempfile::TempDir,
}

/// A response, read whole.
pub struct Page {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The value of the first `name="csrf"` field on the page.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a CSRF field");
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

impl TestDash {
    pub async fn start() -> Self {
        Self::start_with(AuthMode::ApiKeys).await
    }

    pub async fn start_with(auth: AuthMode) -> Self {
        let redis = RedisServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&StoreConfig::default().resolve(dir.path()).unwrap())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let key = |name: &'static str, scope: &'static str| {
            let store = store.clone();
            async move {
                store
                    .create_api_key(name, &[scope.parse::<Scope>().unwrap()], None)
                    .await
                    .unwrap()
                    .token
            }
        };
        let admin = key("admin", "admin").await;
        let reader = key("reader", "read").await;
        let producer = key("producer", "enqueue:*").await;
        let conn = Connection::connect(RedisSettings::for_url(redis.url()).unwrap())
            .await
            .unwrap();
        let state = ApiState::new(
            conn.clone(),
            store.clone(),
            auth,
            ApiConfig::default().resolve().unwrap(),
            prometheus::Registry::new(),
        )
        .unwrap();
        let settings = DashboardConfig {
            live_interval_ms: 200,
            background_action_above: 50,
            ..DashboardConfig::default()
        }
        .resolve()
        .unwrap();
        let stop = CancellationToken::new();
        let router = drover_api::router(Arc::clone(&state)).merge(drover_dashboard::router(
            state,
            settings,
            stop.clone(),
        ));
        Self {
            redis,
            conn,
            store,
            router,
            admin,
            reader,
            producer,
            stop,
            _dir: dir,
        }
    }

    pub async fn send(&self, req: Request<Body>) -> Page {
        use tower::ServiceExt;
        let res: Response<Body> = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// GET `path` with `cookie` (a `name=value` pair, or none).
    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Page {
        let mut b = Request::builder().uri(path);
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    /// POST a form to `path` with `cookie`, as a page of this site would.
    pub async fn post(&self, path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Page {
        self.post_with(
            path,
            cookie,
            fields,
            &[("origin", "http://dash.test"), ("host", "dash.test")],
        )
        .await
    }

    pub async fn post_with(
        &self,
        path: &str,
        cookie: Option<&str>,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut b = Request::builder()
            .method("POST")
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Body::from(body)).unwrap()).await
    }

    /// Signs in with `key`; answers the session cookie (`drover_session=…`).
    pub async fn sign_in(&self, key: &str) -> String {
        let page = self
            .post("/login", None, &[("key", key), ("next", "/")])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let set = page
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("drover_session="))
            .expect("a session cookie")
            .to_string();
        set.split(';').next().unwrap().to_string()
    }
}

//! `drover-dashboard` is the web page ops people live in during incidents:
//! every queue with its counts, latency and throughput; a queue's jobs by
//! state with per-job and bulk actions; one job in full; workers,
//! schedules, workflow runs and the audit log. Pages update themselves
//! over one Server-Sent Events stream per browser tab.
//!
//! It is server-rendered HTML (maud, which escapes every value) with one
//! small plain script (`assets/app.js`) and no build step. [`router`]
//! serves it at `/` beside the API, over the API's [`ApiState`]: the same
//! Redis connection, store and cached queue list, and the same audited
//! actions ([`drover_api::ops`]). Sign-in takes an API key and gives a
//! session cookie ([`session`]); read-only keys see no action and get
//! `403` if they post one anyway; every form carries a CSRF token.
//!
//! It never scans the keyspace or reads a whole set on a request: pages
//! read counts, ranges and single jobs through `queue-core`'s read models,
//! and the queue list comes from the API's background discovery.

mod actions;
mod assets;
mod charts;
mod config;
mod error;
mod format;
mod forms;
mod html;
mod live;
mod pages;
mod session;
mod snapshot;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use drover_api::ApiState;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;

pub use config::{DashboardConfig, DashboardSettings, SecureCookies};

use crate::error::PageError;
use crate::snapshot::{Snapshot, Snapshots};

/// The dashboard's state: the API's, its settings, and what it shares
/// between viewers.
#[derive(Debug)]
pub(crate) struct Dashboard {
    pub(crate) api: Arc<ApiState>,
    pub(crate) settings: DashboardSettings,
    /// The CSRF token of everyone when authentication is off (`drover
    /// dev`): random per process, so another site still cannot know it.
    pub(crate) dev_csrf: String,
    pub(crate) snapshots: Snapshots,
    pub(crate) live_streams: Arc<Semaphore>,
    /// Fires at shutdown: live streams end so the server can drain.
    pub(crate) stop: CancellationToken,
}

impl Dashboard {
    /// The overview reading, at most one live interval old.
    pub(crate) async fn snapshot(&self) -> Result<Arc<Snapshot>, PageError> {
        self.snapshots
            .get(&self.api, self.settings.live_interval)
            .await
    }
}

/// The dashboard's routes, to merge with the API's router. Live streams
/// end when `stop` fires (they would otherwise hold a graceful shutdown
/// open for as long as a tab stays open).
pub fn router(api: Arc<ApiState>, settings: DashboardSettings, stop: CancellationToken) -> Router {
    let dash = Arc::new(Dashboard {
        api,
        stop,
        live_streams: Arc::new(Semaphore::new(settings.max_live_streams)),
        settings,
        dev_csrf: format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ),
        snapshots: Snapshots::default(),
    });
    Router::new()
        .route("/", get(pages::overview::overview))
        .route(
            "/login",
            get(pages::login::form).post(pages::login::sign_in),
        )
        .route("/logout", post(pages::login::sign_out))
        .route("/queues/{queue}", get(pages::queue::queue))
        .route("/queues/{queue}/find", get(pages::queue::find))
        .route("/queues/{queue}/confirm", get(pages::confirm::confirm))
        .route("/queues/{queue}/actions", post(actions::queue_action))
        .route("/queues/{queue}/jobs", post(actions::bulk_action))
        .route("/queues/{queue}/jobs/{id}", get(pages::job::job))
        .route(
            "/queues/{queue}/jobs/{id}/raw/{field}",
            get(pages::job::raw),
        )
        .route(
            "/queues/{queue}/jobs/{id}/{action}",
            post(actions::job_action),
        )
        .route("/workers", get(pages::workers::workers))
        .route("/schedules", get(pages::schedules::schedules))
        .route("/workflows", get(pages::workflows::runs))
        .route("/workflows/runs/{run}", get(pages::workflows::run))
        .route("/autoscaler", get(pages::autoscaler::autoscaler))
        .route("/audit", get(pages::audit::audit))
        .route("/ui/live", get(live::stream))
        .route("/ui/assets/{file}", get(assets::asset))
        .layer(middleware::from_fn(page_headers))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&dash.api),
            drover_api::track,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a dashboard page panicked");
            error::PageError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; the cause is in the server's log",
            )
            .into_response()
        }))
        .with_state(dash)
}

/// Headers every dashboard response gets: a strict Content Security
/// Policy (scripts and styles from this origin only, no framing), no
/// caching of pages, and the time the server spent (`Server-Timing`).
async fn page_headers(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let is_asset = req.uri().path().starts_with("/ui/assets/");
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "same-origin");
    if !is_asset && !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    let ms = started.elapsed().as_secs_f64() * 1_000.0;
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={ms:.2}")) {
        h.insert(HeaderName::from_static("server-timing"), v);
    }
    response
}

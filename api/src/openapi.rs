//! The OpenAPI document and the service that serves it with the routes.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router, middleware};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Info, OpenApi as Document};
use utoipa::{Modify, OpenApi};

use crate::auth::{self, ReadScope};
use crate::error::ApiError;
use crate::error_docs::ErrorResponses;
use crate::metrics;
use crate::routes;
use crate::shed;
use crate::state::ApiState;

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Drover API",
        description = "Add jobs to BullMQ queues over HTTP, read queues and act on them."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "jobs", description = "Adding, reading and acting on jobs"),
        (name = "queues", description = "Queues, their counts, actions and events"),
        (name = "schedules", description = "Periodic jobs, kept as BullMQ job schedulers"),
        (name = "cache", description = "Warmed cache keys"),
        (name = "system", description = "Health, readiness, metrics, workers, audit log"),
        (name = "workflows", description = "Workflow types (DAGs of steps, each a job), their runs, checkpoints and events"),
        (name = "autoscaler", description = "Workers per queue from depth and latency: status, decisions, history, policies"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The OpenAPI 3.1 document of every route [`router`] serves.
pub fn openapi() -> Document {
    let (_, _, doc) = split();
    doc
}

fn split() -> (Router<Arc<ApiState>>, Router<Arc<ApiState>>, Document) {
    let (protected, protected_doc) = routes::protected().split_for_parts();
    let (open, open_doc) = routes::open().split_for_parts();
    let mut doc = ApiDoc::openapi();
    doc.info = Info::new("Drover API", env!("CARGO_PKG_VERSION"));
    doc.merge(protected_doc);
    doc.merge(open_doc);
    ErrorResponses.modify(&mut doc);
    (protected, open, doc)
}

/// The whole HTTP service: `/api/v1/*`, `/metrics`, `/health`, `/ready`
/// and the OpenAPI document, with authentication, metrics, body limits,
/// panic isolation and JSON 404/405 answers.
pub fn router(state: Arc<ApiState>) -> Router {
    let (protected, open, doc) = split();
    let doc = Arc::new(doc);
    let protected = protected
        .route(
            OPENAPI_PATH,
            get(move |_: ReadScope| {
                let doc = Arc::clone(&doc);
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::authenticate,
        ))
        .layer(middleware::map_response(auth::challenge))
        // Outermost: an overloaded server refuses before any key lookup.
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            shed::limit_in_flight,
        ));
    open.merge(protected)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal(&"a request handler panicked").into_response()
        }))
        .with_state(state)
}

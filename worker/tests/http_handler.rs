//! The `http` handler against a real HTTP server (axum, in-process) and a
//! real Redis: what it sends, and what each answer does to the job.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use drover_worker::builtin::{HttpHandler, HttpHandlerConfig};
use drover_worker::{HandlerOptions, HandlerRegistry};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use support::*;
use testkit::RedisServer;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
struct Seen {
    name: String,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

#[derive(Default)]
struct App {
    seen: Mutex<Vec<Seen>>,
    down: AtomicBool,
    flaky: AtomicUsize,
}

async fn jobs(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    app.seen.lock().unwrap().push(Seen {
        name: name.clone(),
        headers,
        body: body.clone(),
        at: Instant::now(),
    });
    match name.as_str() {
        "ok" => {
            let job: Value = serde_json::from_slice(&body).unwrap();
            axum::Json(json!({ "received": job["id"] })).into_response()
        }
        "text" => "done".into_response(),
        "empty" => StatusCode::NO_CONTENT.into_response(),
        "boom" => (StatusCode::INTERNAL_SERVER_ERROR, "internal").into_response(),
        "busy" => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "slow down",
        )
            .into_response(),
        "missing" => (StatusCode::NOT_FOUND, "no such route").into_response(),
        "redirect" => (StatusCode::FOUND, [(header::LOCATION, "/elsewhere")]).into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late".into_response()
        }
        "flaky" if app.flaky.fetch_add(1, Ordering::SeqCst) < 2 => {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        "flaky" => axum::Json(json!("recovered")).into_response(),
        "down" if app.down.load(Ordering::SeqCst) => StatusCode::BAD_GATEWAY.into_response(),
        "down" => axum::Json(json!("up again")).into_response(),
        _ => StatusCode::IM_A_TEAPOT.into_response(),
    }
}

async fn serve(app: Arc<App>) -> String {
    let router = Router::new()
        .route("/jobs/{name}", post(jobs))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}/jobs/{{name}}")
}

async fn pool_with(
    conn: &queue_core::Connection,
    config: HttpHandlerConfig,
) -> drover_worker::WorkerPool {
    let handler = HttpHandler::new(config.resolve().unwrap()).unwrap();
    let mut handlers = HandlerRegistry::new();
    handlers.fallback(handler, HandlerOptions::default());
    let s = settings(vec![queue_settings("push", 4)], Duration::from_secs(5));
    start(conn, &s, handlers).await.0
}

fn seen(app: &App, name: &str) -> Vec<Seen> {
    app.seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.name == name)
        .cloned()
        .collect()
}

#[tokio::test]
async fn jobs_are_posted_signed_and_completed_with_the_response() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let app = Arc::new(App::default());
    let url = serve(app.clone()).await;
    let pool = pool_with(
        &conn,
        HttpHandlerConfig {
            url: Some(url),
            secret: Some("s3cret".into()),
            ..HttpHandlerConfig::default()
        },
    )
    .await;
    let ok = add(&conn, "push", "ok", json!({ "order": 7 }), json!({})).await;
    let text = add(&conn, "push", "text", json!({}), json!({})).await;
    let empty = add(&conn, "push", "empty", json!({}), json!({})).await;
    for id in [&ok, &text, &empty] {
        server.wait_in("push", "completed", id).await;
    }
    assert_eq!(
        server.job_hash("push", &ok).await["returnvalue"],
        json!({ "received": ok }).to_string()
    );
    assert_eq!(
        server.job_hash("push", &text).await["returnvalue"],
        r#""done""#
    );
    assert_eq!(server.job_hash("push", &empty).await["returnvalue"], "null");

    let req = seen(&app, "ok").remove(0);
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        body,
        json!({ "id": ok, "name": "ok", "data": { "order": 7 }, "attemptsMade": 0 })
    );
    assert_eq!(
        req.headers["idempotency-key"],
        format!("push:{ok}:1").as_str()
    );
    assert_eq!(req.headers["content-type"], "application/json");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(&req.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(req.headers["x-drover-signature"], expected.as_str());
    pool.shutdown(CancellationToken::new()).await;
}

#[tokio::test]
async fn server_errors_retry_with_the_jobs_backoff_then_fail() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let app = Arc::new(App::default());
    let url = serve(app.clone()).await;
    let pool = pool_with(
        &conn,
        HttpHandlerConfig {
            url: Some(url.clone()),
            ..Default::default()
        },
    )
    .await;
    let opts = json!({ "attempts": 3, "backoff": { "type": "fixed", "delay": 50 } });
    let boom = add(&conn, "push", "boom", json!({}), opts.clone()).await;
    let flaky = add(&conn, "push", "flaky", json!({}), opts).await;
    server.wait_in("push", "failed", &boom).await;
    server.wait_in("push", "completed", &flaky).await;
    let h = server.job_hash("push", &boom).await;
    assert_eq!(h["atm"], "3");
    assert_eq!(
        h["failedReason"],
        format!(
            "POST {}: 500 Internal Server Error: internal",
            url.replace("{name}", "boom")
        )
    );
    let keys: Vec<String> = seen(&app, "boom")
        .iter()
        .map(|s| s.headers["idempotency-key"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        (1..=3)
            .map(|a| format!("push:{boom}:{a}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        server.job_hash("push", &flaky).await["returnvalue"],
        r#""recovered""#
    );
    assert_eq!(seen(&app, "flaky").len(), 3);
    pool.shutdown(CancellationToken::new()).await;
}

#[tokio::test]
async fn retry_after_beats_the_backoff() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let app = Arc::new(App::default());
    let url = serve(app.clone()).await;
    let pool = pool_with(
        &conn,
        HttpHandlerConfig {
            url: Some(url),
            ..Default::default()
        },
    )
    .await;
    let id = add(
        &conn,
        "push",
        "busy",
        json!({}),
        json!({ "attempts": 2, "backoff": { "type": "fixed", "delay": 600000 } }),
    )
    .await;
    server.wait_in("push", "failed", &id).await;
    let tries = seen(&app, "busy");
    assert_eq!(tries.len(), 2, "the 10-minute backoff was not used");
    let gap = tries[1].at - tries[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After: 1 honoured, gap {gap:?}"
    );
    pool.shutdown(CancellationToken::new()).await;
}

#[tokio::test]
async fn client_errors_and_redirects_fail_without_retry() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let app = Arc::new(App::default());
    let url = serve(app.clone()).await;
    let pool = pool_with(
        &conn,
        HttpHandlerConfig {
            url: Some(url),
            ..Default::default()
        },
    )
    .await;
    let missing = add(
        &conn,
        "push",
        "missing",
        json!({}),
        json!({ "attempts": 5 }),
    )
    .await;
    let redirect = add(
        &conn,
        "push",
        "redirect",
        json!({}),
        json!({ "attempts": 5 }),
    )
    .await;
    server.wait_in("push", "failed", &missing).await;
    server.wait_in("push", "failed", &redirect).await;
    assert_eq!(seen(&app, "missing").len(), 1);
    assert_eq!(seen(&app, "redirect").len(), 1);
    let h = server.job_hash("push", &missing).await;
    assert_eq!(h["atm"], "1");
    assert!(
        h["failedReason"].ends_with("404 Not Found: no such route"),
        "{}",
        h["failedReason"]
    );
    pool.shutdown(CancellationToken::new()).await;
}

#[tokio::test]
async fn timeouts_and_refused_connections_retry() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let app = Arc::new(App::default());
    let url = serve(app.clone()).await;
    let pool = pool_with(
        &conn,
        HttpHandlerConfig {
            url: Some(url),
            timeout_ms: 200,
            ..Default::default()
        },
    )
    .await;
    let id = add(&conn, "push", "slow", json!({}), json!({ "attempts": 2 })).await;
    server.wait_in("push", "failed", &id).await;
    assert_eq!(seen(&app, "slow").len(), 2);
    let reason = &server.job_hash("push", &id).await["failedReason"];
    assert!(reason.contains("timed out"), "{reason}");
    pool.shutdown(CancellationToken::new()).await;

    // Nothing listens here: a connection error is retried too.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/jobs/{{name}}", closed.local_addr().unwrap());
    drop(closed);
    let pool = pool_with(
        &conn,
        HttpHandlerConfig {
            url: Some(dead_url),
            ..Default::default()
        },
    )
    .await;
    let id = add(&conn, "push", "x", json!({}), json!({ "attempts": 2 })).await;
    server.wait_in("push", "failed", &id).await;
    let h = server.job_hash("push", &id).await;
    assert_eq!(h["atm"], "2");
    assert!(
        h["failedReason"].contains("could not connect"),
        "{}",
        h["failedReason"]
    );
    pool.shutdown(CancellationToken::new()).await;
}

#[tokio::test]
async fn an_open_circuit_delays_jobs_instead_of_spending_their_attempts() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let app = Arc::new(App::default());
    app.down.store(true, Ordering::SeqCst);
    let url = serve(app.clone()).await;
    let pool = pool_with(
        &conn,
        HttpHandlerConfig {
            url: Some(url),
            breaker_failures: 2,
            breaker_cooldown_ms: 1000,
            ..Default::default()
        },
    )
    .await;
    // Two failures open the circuit.
    for _ in 0..2 {
        let id = add(&conn, "push", "down", json!({}), json!({ "attempts": 1 })).await;
        server.wait_in("push", "failed", &id).await;
    }
    // A job arriving now is not sent: it waits out the cooldown without
    // spending its single attempt.
    let patient = add(&conn, "push", "down", json!({}), json!({ "attempts": 1 })).await;
    server.wait_in("push", "delayed", &patient).await;
    assert_eq!(
        seen(&app, "down").len(),
        2,
        "nothing sent while the circuit is open"
    );
    app.down.store(false, Ordering::SeqCst);
    server.wait_in("push", "completed", &patient).await;
    let h = server.job_hash("push", &patient).await;
    assert_eq!(h["atm"], "1", "only the successful attempt was counted");
    assert_eq!(h["returnvalue"], r#""up again""#);
    assert_eq!(seen(&app, "down").len(), 3);
    pool.shutdown(CancellationToken::new()).await;
}

#[tokio::test]
async fn a_workflow_steps_app_gets_its_key_and_latest_checkpoint() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let app = Arc::new(App::default());
    let url = serve(app.clone()).await;
    // A job as the workflow engine dispatches it, with a checkpoint saved
    // by an earlier try (through the API callback or a Rust handler).
    let step = queue_core::workflow::StepRef {
        run: "0123456789abcdef0123456789abcdef".into(),
        step: "ok".into(),
        item: Some(3),
        attempt: 2,
    };
    queue_core::workflow::save_checkpoint(&conn, &step, &json!({ "next": 4000 }))
        .await
        .unwrap();
    let id = add(
        &conn,
        "push",
        "ok",
        json!({ "part": 3, "_workflow": { "checkpoint": { "next": 1000 } } }),
        json!({ "jobId": step.job_id() }),
    )
    .await;
    let pool = pool_with(
        &conn,
        HttpHandlerConfig {
            url: Some(url),
            ..HttpHandlerConfig::default()
        },
    )
    .await;
    server.wait_in("push", "completed", &id).await;
    let req = seen(&app, "ok").remove(0);
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        body["checkpoint"],
        json!({ "next": 4000 }),
        "the latest one, not the dispatched one"
    );
    assert_eq!(
        req.headers["idempotency-key"],
        format!("{}:ok[3]:2", step.run).as_str()
    );
    pool.shutdown(CancellationToken::new()).await;
}

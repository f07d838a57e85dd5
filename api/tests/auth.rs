//! Every route × every kind of key, and the OpenAPI document against the
//! routes actually served. Both tables come from the OpenAPI document, so a
//! route added without a line here fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use queue_core::workflow::{self, Workflow};
use support::{TestApi, code, json_of, request};

/// What a route needs, by its handler name (the operation id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Open,
    Read,
    Admin,
    Enqueue,
}

const NEEDS: &[(&str, Need)] = &[
    ("health", Need::Open),
    ("ready", Need::Open),
    ("metrics", Need::Read),
    ("queues_list", Need::Read),
    ("queues_get", Need::Read),
    ("events_stream", Need::Read),
    ("jobs_list", Need::Read),
    ("jobs_get", Need::Read),
    ("workers_list", Need::Read),
    ("schedules_list", Need::Read),
    ("cache_get", Need::Read),
    ("schedules_get", Need::Read),
    ("schedules_put", Need::Admin),
    ("schedules_delete", Need::Admin),
    ("queues_pause", Need::Admin),
    ("queues_resume", Need::Admin),
    ("queues_drain", Need::Admin),
    ("queues_clean", Need::Admin),
    ("queues_retry_failed", Need::Admin),
    ("queues_promote_delayed", Need::Admin),
    ("queues_obliterate", Need::Admin),
    ("jobs_retry", Need::Admin),
    ("jobs_promote", Need::Admin),
    ("jobs_remove", Need::Admin),
    ("audit_list", Need::Admin),
    ("jobs_create", Need::Enqueue),
    ("jobs_create_bulk", Need::Enqueue),
    ("workflows_list", Need::Read),
    ("workflows_get", Need::Read),
    ("workflow_runs_list", Need::Read),
    ("workflow_runs_get", Need::Read),
    ("workflow_events_stream", Need::Read),
    ("workflows_put", Need::Admin),
    ("workflow_runs_cancel", Need::Admin),
    ("workflow_runs_retry", Need::Admin),
    // An enqueue scope covering the queues of the workflow's steps
    // (`emails` in `signup_run`).
    ("workflow_runs_create", Need::Enqueue),
    ("workflow_checkpoints_put", Need::Enqueue),
    ("autoscaler_get", Need::Read),
    ("autoscaler_queues_get", Need::Read),
    ("autoscaler_history_get", Need::Read),
    ("autoscaler_queues_put", Need::Admin),
    ("autoscaler_queues_delete", Need::Admin),
];

/// Every operation of the document: (method, concrete path, operation id);
/// workflow paths name type `signup`, its step `welcome` and `run`.
fn operations(run: &str) -> Vec<(String, String, String)> {
    let doc = serde_json::to_value(drover_api::openapi()).unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let concrete = path
                .replace("{queue}", "emails")
                .replace("{id}", "job-1")
                .replace("{key}", "cache:k")
                .replace("{type}", "signup")
                .replace("{run}", run)
                .replace("{step}", "welcome");
            let id = op["operationId"].as_str().unwrap().to_string();
            ops.push((method.to_uppercase(), concrete, id));
        }
    }
    ops
}

/// Registers workflow type `signup` (one step, on queue `emails`) and
/// starts a run whose step is dispatched; answers the run id.
async fn signup_run(api: &TestApi) -> String {
    let def = serde_json::json!({"steps": [{"id": "welcome", "queue": "emails"}]});
    let workflow = Workflow::new("signup", serde_json::from_value(def).unwrap()).unwrap();
    let now = queue_core::now_ms();
    api.store
        .put_workflow_type(&workflow, "test", now)
        .await
        .unwrap();
    let input = serde_json::json!({});
    let (run, _) = api
        .store
        .start_run(&workflow, &input, None, now)
        .await
        .unwrap();
    workflow::tick(&api.conn, &api.store, 10).await.unwrap();
    run.id
}

/// Event streams never end; their status is all a test reads.
fn is_stream(op: &str) -> bool {
    op.ends_with("events_stream")
}

fn need(op: &str) -> Need {
    NEEDS
        .iter()
        .find(|(name, _)| *name == op)
        .map(|(_, n)| *n)
        .unwrap_or_else(|| panic!("route {op} has no line in NEEDS: say what scope it needs"))
}

#[tokio::test]
async fn every_route_checks_every_kind_of_key() {
    let api = TestApi::start().await;
    let ops = operations(&signup_run(&api).await);
    let documented: BTreeSet<&str> = ops.iter().map(|(_, _, id)| id.as_str()).collect();
    let tabled: BTreeSet<&str> = NEEDS.iter().map(|(n, _)| *n).collect();
    assert_eq!(documented, tabled, "NEEDS and the served routes differ");

    let keys = [
        ("none", None),
        ("read", Some(api.reader.as_str())),
        ("admin", Some(api.admin.as_str())),
        ("enqueue:emails*", Some(api.producer.as_str())),
        ("enqueue:other-*", Some(api.outsider.as_str())),
        (
            "bogus",
            Some("drv_0000000000000000000000000000000000000000000000000000000000000000"),
        ),
    ];
    for (method, path, op) in &ops {
        let need = need(op);
        for (who, key) in keys {
            let body = (method == "POST").then(|| {
                if op == "jobs_create_bulk" {
                    serde_json::json!({"jobs": [{"name": "n"}]})
                } else {
                    serde_json::json!({"name": "n"})
                }
            });
            let body = body.filter(|_| need == Need::Enqueue);
            let res = api.send(request(method, path, key, body, &[])).await;
            let status = res.status();
            let www = res.headers().get("www-authenticate").cloned();
            // An accepted event stream never ends; its status is enough.
            let json = if is_stream(op) && status == StatusCode::OK {
                serde_json::Value::Null
            } else {
                json_of(res).await.1
            };
            let expected = match (need, who) {
                (Need::Open, _) => None,
                (_, "none" | "bogus") => Some(StatusCode::UNAUTHORIZED),
                (_, "admin") => None,
                (Need::Read, "read") => None,
                (Need::Enqueue, "enqueue:emails*") => None,
                _ => Some(StatusCode::FORBIDDEN),
            };
            match expected {
                Some(s) => {
                    assert_eq!(status, s, "{method} {path} as {who}: {json}");
                    assert_eq!(
                        code(&json),
                        if s == StatusCode::UNAUTHORIZED {
                            "unauthorized"
                        } else {
                            "forbidden"
                        },
                        "{method} {path} as {who}"
                    );
                    if s == StatusCode::UNAUTHORIZED {
                        assert!(www.is_some(), "401 carries WWW-Authenticate");
                    }
                }
                None => assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{method} {path} as {who} was refused: {status} {json}"
                ),
            }
        }
    }
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_served() {
    let api = TestApi::start().await;
    let (status, doc) = api
        .call("GET", drover_api::OPENAPI_PATH, Some(&api.reader), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    // Every documented operation is served: never the router's 404 or 405.
    for (method, path, op) in operations("0123456789abcdef0123456789abcdef") {
        let body = (method == "POST").then(|| serde_json::json!({"name": "n", "jobs": []}));
        let res = api
            .send(request(&method, &path, Some(&api.admin), body, &[]))
            .await;
        if is_stream(&op) {
            assert_eq!(res.status(), StatusCode::OK, "{op}");
            continue;
        }
        let (status, json) = json_of(res).await;
        assert!(
            code(&json) != "route_not_found" && code(&json) != "method_not_allowed",
            "{op}: {method} {path} is documented but not served: {status} {json}"
        );
    }
    // And what is not documented is not served.
    for (method, path) in [
        ("GET", "/api/v1/nothing"),
        ("GET", "/api/v2/queues"),
        ("PUT", "/api/v1/queues"),
        ("PATCH", "/api/v1/queues/emails/jobs/1"),
    ] {
        let (status, json) = api.call(method, path, Some(&api.admin), None).await;
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {status}"
        );
        assert!(
            json["error"]["message"].is_string(),
            "JSON error shape: {json}"
        );
    }
}

#[tokio::test]
async fn revoked_keys_stop_working() {
    let api = TestApi::start().await;
    let (status, _) = api
        .call("GET", "/api/v1/queues", Some(&api.reader), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    api.store.revoke_api_key("reader").await.unwrap();
    let (status, body) = api
        .call("GET", "/api/v1/queues", Some(&api.reader), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn malformed_authorization_headers_are_401() {
    let api = TestApi::start().await;
    for header in ["Basic abc", "Bearer", "Bearer ", "token", "Bearer x y"] {
        let req = axum::http::Request::builder()
            .uri("/api/v1/queues")
            .header("authorization", header)
            .body(axum::body::Body::empty())
            .unwrap();
        let (status, body) = json_of(api.send(req).await).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header:?}: {body}");
    }
}

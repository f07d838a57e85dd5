//! The authorization audit of the dashboard and of the API as a browser
//! session sees it: every dashboard route × {no session, expired session,
//! read-only session, admin session without and with the CSRF token}, and
//! every API route with only a session cookie (valid or expired), which
//! must not authenticate the API. The dashboard's table is checked against
//! the routes its router declares, so a route added without a line here
//! fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use queue_core::producer::{self, JobOptions, NewJob};
use queue_core::workflow::Workflow;
use queue_core::{QueueName, now_ms};
use serde_json::json;
use support::TestDash;

/// What a dashboard route is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Anyone (the sign-in form, the stylesheet and script).
    Open,
    /// A page for any signed-in key (read or admin).
    Page,
    /// A page for admins only.
    AdminPage,
    /// A state change: admins, with the CSRF token.
    Action,
    /// Signing out: anyone signed in, with the CSRF token.
    SignOut,
    /// The live stream: anyone signed in.
    Stream,
}

/// Every dashboard route: method, the router's path, a concrete path, kind.
const ROUTES: &[(&str, &str, &str, Kind)] = &[
    ("GET", "/", "/", Kind::Page),
    ("GET", "/login", "/login", Kind::Open),
    ("POST", "/login", "/login", Kind::Open),
    ("POST", "/logout", "/logout", Kind::SignOut),
    ("GET", "/queues/{queue}", "/queues/mail", Kind::Page),
    (
        "GET",
        "/queues/{queue}/find",
        "/queues/mail/find?id=j1",
        Kind::Page,
    ),
    (
        "GET",
        "/queues/{queue}/confirm",
        "/queues/mail/confirm?action=pause",
        Kind::AdminPage,
    ),
    (
        "POST",
        "/queues/{queue}/actions",
        "/queues/mail/actions",
        Kind::Action,
    ),
    (
        "POST",
        "/queues/{queue}/jobs",
        "/queues/mail/jobs",
        Kind::Action,
    ),
    (
        "GET",
        "/queues/{queue}/jobs/{id}",
        "/queues/mail/jobs/j1",
        Kind::Page,
    ),
    (
        "GET",
        "/queues/{queue}/jobs/{id}/raw/{field}",
        "/queues/mail/jobs/j1/raw/data",
        Kind::Page,
    ),
    (
        "POST",
        "/queues/{queue}/jobs/{id}/{action}",
        "/queues/mail/jobs/j1/promote",
        Kind::Action,
    ),
    ("GET", "/workers", "/workers", Kind::Page),
    ("GET", "/schedules", "/schedules", Kind::Page),
    ("GET", "/workflows", "/workflows", Kind::Page),
    (
        "GET",
        "/workflows/runs/{run}",
        "/workflows/runs/RUN",
        Kind::Page,
    ),
    ("GET", "/autoscaler", "/autoscaler", Kind::Page),
    ("GET", "/audit", "/audit", Kind::AdminPage),
    ("GET", "/ui/live", "/ui/live?path=%2Fworkers", Kind::Stream),
    ("GET", "/ui/assets/{file}", "/ui/assets/app.css", Kind::Open),
];

/// (method, path) of every route `dashboard/src/lib.rs` declares.
fn declared_routes() -> BTreeSet<(String, String)> {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs")).unwrap();
    let mut out = BTreeSet::new();
    for chunk in src.split(".route(").skip(1) {
        let path = chunk.trim_start().strip_prefix('"').unwrap();
        let path = &path[..path.find('"').unwrap()];
        let body = &chunk[..chunk.find(".route(").unwrap_or(chunk.len())];
        let body = &body[..body.find(".layer(").unwrap_or(body.len())];
        for (needle, method) in [("get(", "GET"), ("post(", "POST")] {
            if body.contains(needle) {
                out.insert((method.to_string(), path.to_string()));
            }
        }
    }
    out
}

/// Sends `method path` with `cookie`, and for POSTs a form of `fields`
/// from this site; only the status and `Location` matter (an accepted
/// live stream is not read).
async fn status(
    dash: &TestDash,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    use tower::ServiceExt;
    let mut b = Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    let body = if method == "POST" {
        b = b
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ORIGIN, "http://dash.test")
            .header(header::HOST, "dash.test");
        Body::from(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields)
                .finish(),
        )
    } else {
        Body::empty()
    };
    let res = dash
        .router
        .clone()
        .oneshot(b.body(body).unwrap())
        .await
        .unwrap();
    let location = res
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (res.status(), location)
}

/// A session cookie that was valid and has expired (its row is in the
/// store with an expiry in the past).
async fn expired_cookie(dash: &TestDash) -> String {
    let key = dash
        .store
        .list_api_keys(false)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name == "admin")
        .unwrap();
    let session = dash
        .store
        .create_session(
            &key.id,
            now_ms() - 120_000,
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    format!("drover_session={}", session.token)
}

#[tokio::test]
async fn every_dashboard_route_for_every_kind_of_visitor() {
    let dash = TestDash::start().await;
    let tabled: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _, _)| ((*m).to_string(), (*p).to_string()))
        .collect();
    assert_eq!(
        declared_routes(),
        tabled,
        "ROUTES and the dashboard's router differ"
    );
    let job = NewJob {
        name: "n".into(),
        data: json!({}),
        opts: serde_json::from_value::<JobOptions>(json!({ "jobId": "j1", "delay": 600000 }))
            .unwrap(),
    };
    producer::enqueue(&dash.conn, &QueueName::new("mail").unwrap(), &job)
        .await
        .unwrap();
    let expired = expired_cookie(&dash).await;
    let def = json!({"steps": [{"id": "welcome", "queue": "mail"}]});
    let workflow = Workflow::new("signup", serde_json::from_value(def).unwrap()).unwrap();
    dash.store
        .put_workflow_type(&workflow, "test", now_ms())
        .await
        .unwrap();
    let (run, _) = dash
        .store
        .start_run(&workflow, &json!({}), None, now_ms())
        .await
        .unwrap();

    for (method, _, path, kind) in ROUTES {
        let path = path.replace("RUN", &run.id);
        let path = path.as_str();
        // Fresh sessions for every route, so signing out does not end the
        // next check's session.
        let admin = dash.sign_in(&dash.admin).await;
        let reader = dash.sign_in(&dash.reader).await;
        let admin_csrf = dash.get("/", Some(&admin)).await.csrf();
        let reader_csrf = dash.get("/", Some(&reader)).await.csrf();
        let fields: Vec<(&str, &str)> = match path {
            "/queues/mail/actions" => vec![("action", "resume")],
            "/queues/mail/jobs" => vec![("action", "promote"), ("id", "j1")],
            "/login" => vec![("key", "drv_wrong"), ("next", "/")],
            _ => vec![],
        };
        let mut with_reader = fields.clone();
        with_reader.push(("csrf", reader_csrf.as_str()));
        let mut with_admin = fields.clone();
        with_admin.push(("csrf", admin_csrf.as_str()));
        let anonymous = status(&dash, method, path, None, &fields).await;
        let stale = status(&dash, method, path, Some(&expired), &fields).await;
        let read = status(&dash, method, path, Some(&reader), &with_reader).await;
        let no_csrf = status(&dash, method, path, Some(&admin), &fields).await;
        let ok = status(&dash, method, path, Some(&admin), &with_admin).await;
        let see = |s: &(StatusCode, String)| (s.0, s.1.starts_with("/login"));
        let to_login = (StatusCode::SEE_OTHER, true);
        let what = format!("{method} {path}");
        match kind {
            Kind::Open => {
                if *method == "POST" {
                    assert_eq!(anonymous.0, StatusCode::UNAUTHORIZED, "{what}: a wrong key");
                } else {
                    assert!(anonymous.0 == StatusCode::OK, "{what}: {anonymous:?}");
                }
            }
            Kind::Stream => {
                assert_eq!(anonymous.0, StatusCode::UNAUTHORIZED, "{what}");
                assert_eq!(stale.0, StatusCode::UNAUTHORIZED, "{what} expired");
                assert_eq!(read.0, StatusCode::OK, "{what}");
            }
            Kind::Page | Kind::AdminPage => {
                assert_eq!(see(&anonymous), to_login, "{what} anonymous");
                assert_eq!(see(&stale), to_login, "{what} expired");
                assert!(stale.1.contains("expired=1"), "{what}: {stale:?}");
                let expected_read = if *kind == Kind::AdminPage {
                    StatusCode::FORBIDDEN
                } else {
                    ok.0
                };
                assert_eq!(read.0, expected_read, "{what} read-only");
                assert!(
                    ok.0 == StatusCode::OK || ok.0 == StatusCode::SEE_OTHER,
                    "{what} admin: {ok:?}"
                );
            }
            Kind::Action | Kind::SignOut => {
                assert_eq!(see(&anonymous), to_login, "{what} anonymous");
                assert_eq!(see(&stale), to_login, "{what} expired");
                assert_eq!(no_csrf.0, StatusCode::FORBIDDEN, "{what} without CSRF");
                let expected_read = if *kind == Kind::SignOut {
                    StatusCode::SEE_OTHER
                } else {
                    StatusCode::FORBIDDEN
                };
                assert_eq!(read.0, expected_read, "{what} read-only");
                assert_eq!(ok.0, StatusCode::SEE_OTHER, "{what} admin with CSRF");
                assert!(
                    !ok.1.starts_with("/login") || *kind == Kind::SignOut,
                    "{what}: {ok:?}"
                );
            }
        }
    }
    // Only the admin's posts with the token acted: the promote and the bulk
    // promote of j1, the resume; each is in the audit log.
    let actions: Vec<String> = dash
        .store
        .list_audit(100, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .filter(|a| a != "sign-in" && a != "sign-out")
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "resume").count(),
        1,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "promote").count(),
        2,
        "{actions:?}"
    );
}

#[tokio::test]
async fn a_session_cookie_never_authenticates_the_api() {
    let dash = TestDash::start().await;
    let admin = dash.sign_in(&dash.admin).await;
    let expired = expired_cookie(&dash).await;
    let doc = serde_json::to_value(drover_api::openapi()).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .replace("{queue}", "mail")
                .replace("{id}", "j1")
                .replace("{key}", "cache:k")
                .replace("{type}", "t")
                .replace("{run}", "r")
                .replace("{step}", "s");
            for cookie in [&admin, &expired] {
                let req = Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(&concrete)
                    .header(header::COOKIE, cookie)
                    .body(Body::empty())
                    .unwrap();
                let page = dash.send(req).await;
                if path == "/health" || path == "/ready" {
                    assert!(
                        page.status.is_success() || page.status == StatusCode::SERVICE_UNAVAILABLE
                    );
                } else {
                    assert_eq!(
                        page.status,
                        StatusCode::UNAUTHORIZED,
                        "{method} {concrete} with a cookie only"
                    );
                    assert!(page.body.contains("\"unauthorized\""), "{}", page.body);
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 60, "{checked} route checks");
}

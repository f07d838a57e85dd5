//! Reading queues and jobs, acting on them with an audit trail, following
//! events over SSE, readiness and metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use support::{TestApi, code, request};
use testkit::{Check, wait_until};

async fn add(api: &TestApi, queue: &str, body: Value) -> String {
    let (status, res) = api
        .call(
            "POST",
            &format!("/api/v1/queues/{queue}/jobs"),
            Some(&api.admin),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{res}");
    res["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn queues_and_jobs_read_back() {
    let api = TestApi::start().await;
    for i in 0..5 {
        add(&api, "emails", json!({"name": "n", "data": {"i": i}})).await;
    }
    let delayed = add(
        &api,
        "emails",
        json!({"name": "later", "opts": {"delay": 60000}}),
    )
    .await;
    let (status, list) = api
        .call("GET", "/api/v1/queues", Some(&api.reader), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let emails = &list["queues"][0];
    assert_eq!(emails["name"], "emails");
    assert_eq!(emails["counts"]["waiting"], 5);
    assert_eq!(emails["counts"]["delayed"], 1);

    let (_, page) = api
        .call(
            "GET",
            "/api/v1/queues/emails/jobs?state=waiting&page=2&size=2&order=oldest",
            Some(&api.reader),
            None,
        )
        .await;
    assert_eq!(page["total"], 5);
    assert_eq!(page["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(page["jobs"][0]["data"]["i"], 2, "oldest first, second page");

    let (status, job) = api
        .call(
            "GET",
            &format!("/api/v1/queues/emails/jobs/{delayed}"),
            Some(&api.reader),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["state"], "delayed");
    assert_eq!(job["job"]["name"], "later");

    for (path, want) in [
        (
            "/api/v1/queues/emails/jobs?size=1001",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v1/queues/emails/jobs?page=0",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v1/queues/emails/jobs?state=sleeping",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v1/queues/emails/jobs?colour=red",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/queues/emails/jobs?size=abc",
            StatusCode::BAD_REQUEST,
        ),
        ("/api/v1/queues/nope/jobs", StatusCode::NOT_FOUND),
        ("/api/v1/queues/nope", StatusCode::NOT_FOUND),
        ("/api/v1/queues/emails/jobs/missing", StatusCode::NOT_FOUND),
    ] {
        let (status, body) = api.call("GET", path, Some(&api.reader), None).await;
        assert_eq!(status, want, "{path}: {body}");
        assert!(!code(&body).is_empty(), "{path}: {body}");
    }
}

#[tokio::test]
async fn admin_actions_work_and_are_audited() {
    let api = TestApi::start().await;
    let delayed = add(
        &api,
        "emails",
        json!({"name": "later", "opts": {"delay": 60000}}),
    )
    .await;
    add(&api, "emails", json!({"name": "now"})).await;

    let (status, body) = api
        .call(
            "POST",
            "/api/v1/queues/emails/pause",
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, q) = api
        .call("GET", "/api/v1/queues/emails", Some(&api.reader), None)
        .await;
    assert_eq!(q["counts"]["paused"], true);
    let (status, _) = api
        .call(
            "POST",
            "/api/v1/queues/emails/resume",
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = api
        .call(
            "POST",
            &format!("/api/v1/queues/emails/jobs/{delayed}/promote"),
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(api.redis.list("emails", "wait").await.len(), 2);

    let (status, body) = api
        .call(
            "POST",
            "/api/v1/queues/emails/jobs/missing/retry",
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, body) = api
        .call(
            "POST",
            "/api/v1/queues/emails/drain",
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!((status, body["count"].clone()), (StatusCode::OK, json!(2)));
    let (status, body) = api
        .call(
            "POST",
            "/api/v1/queues/emails/clean?state=completed&graceMs=0",
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = api
        .call(
            "POST",
            "/api/v1/queues/emails/clean?state=bogus",
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = api
        .call("POST", "/api/v1/queues/ghost/pause", Some(&api.admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, audit) = api
        .call("GET", "/api/v1/audit?limit=100", Some(&api.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let entries = audit["entries"].as_array().unwrap();
    let seen: Vec<(String, String, String)> = entries
        .iter()
        .rev()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = |a: &str, o: &str| (a.to_string(), o.to_string(), "key:admin".to_string());
    assert_eq!(
        seen,
        vec![
            expect("pause", "ok"),
            expect("resume", "ok"),
            expect("promote", "ok"),
            expect("retry", "not_found"),
            expect("drain", "ok"),
            expect("clean", "ok"),
            expect("clean", "invalid_input"),
            expect("pause", "not_found"),
        ]
    );
    assert_eq!(entries[0]["queue"], "ghost");
    assert!(entries[0]["at_ms"].as_u64().unwrap() > 0 || entries[0]["atMs"].as_u64().unwrap() > 0);
}

type SseEvent = (String, String, Value);

/// Reads SSE frames from a response body until an `added` event arrives;
/// returns every event read, that one last.
async fn read_until_added(body: &mut axum::body::Body) -> Vec<SseEvent> {
    let mut text = String::new();
    let mut events: Vec<SseEvent> = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while events.last().is_none_or(|(_, e, _)| e != "added") {
            let frame = body.frame().await.unwrap().unwrap();
            if let Ok(data) = frame.into_data() {
                text.push_str(std::str::from_utf8(&data).unwrap());
            }
            while let Some(end) = text.find("\n\n") {
                let block: String = text.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}:")))
                        .map(|v| v.trim().to_string())
                };
                if let (Some(id), Some(event), Some(data)) =
                    (field("id"), field("event"), field("data"))
                {
                    events.push((id, event, serde_json::from_str(&data).unwrap()));
                }
            }
        }
    })
    .await
    .expect("events arrived in time");
    events
}

#[tokio::test]
async fn events_stream_and_resume_with_last_event_id() {
    let api = TestApi::start().await;
    let first = add(&api, "emails", json!({"name": "a"})).await;
    let res = api
        .send(request(
            "GET",
            "/api/v1/queues/emails/events?from=0",
            Some(&api.reader),
            None,
            &[],
        ))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    let events = read_until_added(&mut body).await;
    let added = events.last().unwrap();
    assert_eq!(added.2["jobId"], first.as_str());
    let resume_from = added.0.clone();

    // Live: a job added now arrives on the open stream.
    let second = add(&api, "emails", json!({"name": "b"})).await;
    let live = read_until_added(&mut body).await;
    assert!(
        live.iter()
            .any(|(_, e, d)| e == "added" && d["jobId"] == second.as_str()),
        "{live:?}"
    );
    drop(body);

    // Resuming after the first event replays the second and not the first.
    let res = api
        .send(request(
            "GET",
            "/api/v1/queues/emails/events",
            Some(&api.reader),
            None,
            &[("last-event-id", resume_from.as_str())],
        ))
        .await;
    let mut body = res.into_body();
    let replay = read_until_added(&mut body).await;
    assert_eq!(
        replay.last().unwrap().2["jobId"],
        second.as_str(),
        "{replay:?}"
    );
    assert!(
        replay.iter().all(|(id, _, _)| *id > resume_from),
        "{replay:?}"
    );

    let (status, body) = api
        .call(
            "GET",
            "/api/v1/queues/emails/events?from=nonsense",
            Some(&api.reader),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_cursor")
    );
}

#[tokio::test]
async fn ready_reports_each_dependency() {
    let mut api = TestApi::start().await;
    let (status, ready) = api.call("GET", "/ready", None, None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["redis"]["ok"], true);
    assert_eq!(ready["store"]["ok"], true);
    assert_eq!(ready["store_backend"], "sqlite");
    assert!(ready["store_pool"]["max"].as_u64().unwrap() >= 1);
    let (status, _) = api.call("GET", "/health", None, None).await;
    assert_eq!(status, StatusCode::OK);

    api.redis.kill();
    let (status, ready) = api.call("GET", "/ready", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["redis"]["ok"], false);
    assert_eq!(ready["store"]["ok"], true);
    let (status, _) = api.call("GET", "/health", None, None).await;
    assert_eq!(status, StatusCode::OK, "liveness does not depend on Redis");
}

#[tokio::test]
async fn metrics_count_requests_and_queue_depth() {
    let api = TestApi::start().await;
    let stop = tokio_util::sync::CancellationToken::new();
    let refresher = drover_api::spawn_queue_refresher(api.state.clone(), stop.clone());
    for _ in 0..3 {
        add(&api, "emails", json!({"name": "n"})).await;
    }
    let text = wait_until(
        "queue depth in /metrics",
        Duration::from_secs(10),
        || async {
            let res = api
                .send(request("GET", "/metrics", Some(&api.reader), None, &[]))
                .await;
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            let text = String::from_utf8(bytes.to_vec()).unwrap();
            if text.contains(r#"drover_queue_jobs{queue="emails",state="waiting"} 3"#) {
                Check::Done(text)
            } else {
                Check::NotYet(text)
            }
        },
    )
    .await;
    assert!(
        text.contains(r#"drover_http_requests_total{method="POST",route="/api/v1/queues/{queue}/jobs",status="201"} 3"#),
        "{text}"
    );
    assert!(
        text.contains("drover_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains(r#"drover_store_pool_connections{state="max"}"#),
        "{text}"
    );
    stop.cancel();
    refresher.await.unwrap();
}

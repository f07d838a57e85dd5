//! Load shedding: past `[api] max_in_flight_requests` requests in
//! handlers, one more is refused at once with `503 overloaded` and
//! `Retry-After`, `/health` is still answered, and once the slot is free
//! requests are served again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use axum::http::{StatusCode, header};
use drover_api::ApiConfig;
use support::{TestApi, json_of, request};

#[tokio::test]
async fn past_the_in_flight_limit_a_request_is_refused_at_once() {
    let api = TestApi::start_with(ApiConfig {
        max_in_flight_requests: 1,
        // No Redis call in authentication: the handler's is the one held.
        key_rate_limit_per_sec: 0,
        ..ApiConfig::default()
    })
    .await;
    let (status, body) = api
        .call(
            "POST",
            "/api/v1/queues/q/jobs",
            Some(&api.admin),
            Some(serde_json::json!({"name": "n"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let counts = || request("GET", "/api/v1/queues/q", Some(&api.admin), None, &[]);
    // The key is verified (and cached) now, so the held request waits in
    // its handler only.
    let (status, body) = json_of(api.send(counts()).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Redis holds every command for a while: the first request takes the
    // only slot and waits there.
    api.redis.pause_clients(Duration::from_secs(1)).await;
    let (held, refused, health) = tokio::join!(
        api.send(counts()),
        api.send(counts()),
        api.send(request("GET", "/health", None, None, &[])),
    );

    assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
    let (status, body) = json_of(refused).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    assert_eq!(health.status(), StatusCode::OK, "/health is never refused");
    let (status, body) = json_of(held).await;
    assert_ne!(body["error"]["code"], "overloaded", "{status} {body}");

    let (status, body) = json_of(api.send(counts()).await).await;
    assert_eq!(status, StatusCode::OK, "served again: {body}");
}

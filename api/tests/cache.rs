//! `GET /api/v1/cache/{key}`: warmed values read back, misses and keys
//! outside the readable prefixes refused, hits and misses counted in
//! `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::StatusCode;
use queue_core::cache;
use serde_json::json;
use support::{TestApi, code};

#[tokio::test]
async fn warmed_keys_read_back_and_hits_show_in_metrics() {
    let api = TestApi::start().await;
    cache::swap(
        &api.conn,
        "templates",
        &[
            (
                "cache:template:1".into(),
                json!({"id": 1, "name": "a"}).to_string(),
            ),
            ("cache:plain".into(), "not json".into()),
        ],
        std::time::Duration::from_secs(600),
    )
    .await
    .unwrap();

    let (status, hit) = api
        .call(
            "GET",
            "/api/v1/cache/cache:template:1",
            Some(&api.reader),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{hit}");
    assert_eq!(hit["value"], json!({"id": 1, "name": "a"}));
    let ttl = hit["ttl_ms"].as_u64().unwrap();
    assert!(ttl > 0 && ttl <= 600_000);
    let (_, plain) = api
        .call("GET", "/api/v1/cache/cache:plain", Some(&api.reader), None)
        .await;
    assert_eq!(plain["value"], "not json");

    let (status, miss) = api
        .call(
            "GET",
            "/api/v1/cache/cache:template:2",
            Some(&api.reader),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&miss), "cache_miss");

    // Queue keys and Drover's own are not readable here.
    for key in ["bull:emails:meta", "drover:bull:workers", "other:key"] {
        let (status, body) = api
            .call(
                "GET",
                &format!("/api/v1/cache/{key}"),
                Some(&api.reader),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{key}: {body}");
    }

    let res = api
        .send(support::request(
            "GET",
            "/metrics",
            Some(&api.reader),
            None,
            &[],
        ))
        .await;
    let text = String::from_utf8(
        http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains("drover_cache_reads_total{result=\"hit\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("drover_cache_reads_total{result=\"miss\"} 1"),
        "{text}"
    );
}

#[test]
fn cache_prefixes_cannot_expose_queue_keys() {
    for bad in ["bull:", "", "drover:x"] {
        let config = drover_api::ApiConfig {
            cache_prefixes: vec![bad.into()],
            ..Default::default()
        };
        assert!(config.resolve().is_err(), "{bad:?}");
    }
}

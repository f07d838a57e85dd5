//! Adding jobs over HTTP: one, bulk all-or-nothing, idempotency, strict
//! input that leaves Redis untouched, and the shared per-key rate limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::StatusCode;
use drover_api::ApiConfig;
use queue_core::store::Scope;
use serde_json::{Value, json};
use support::{TestApi, code, json_of, raw, request};

const JOBS: &str = "/api/v1/queues/emails/jobs";
const BULK: &str = "/api/v1/queues/emails/jobs/bulk";

#[tokio::test]
async fn one_job_is_stored_as_bullmq_stores_it() {
    let api = TestApi::start().await;
    let body = json!({
        "name": "welcome",
        "data": {"to": "ada@example.com"},
        "opts": {"attempts": 3, "backoff": {"type": "exponential", "delay": 1000}, "priority": 5}
    });
    let (status, res) = api
        .call("POST", JOBS, Some(&api.producer), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{res}");
    let id = res["id"].as_str().unwrap();
    let hash = api.redis.job_hash("emails", id).await;
    assert_eq!(hash["name"], "welcome");
    assert_eq!(
        serde_json::from_str::<Value>(&hash["data"]).unwrap()["to"],
        "ada@example.com"
    );
    let opts: Value = serde_json::from_str(&hash["opts"]).unwrap();
    assert_eq!(opts["attempts"], 3);
    assert_eq!(
        api.redis.zset("emails", "prioritized").await,
        vec![id.to_string()]
    );

    // A delayed job lands in `delayed`.
    let (status, res) = api
        .call(
            "POST",
            JOBS,
            Some(&api.producer),
            Some(json!({"name": "later", "opts": {"delay": 60000}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        api.redis.zset("emails", "delayed").await,
        vec![res["id"].as_str().unwrap().to_string()]
    );
}

#[tokio::test]
async fn a_bulk_add_is_all_or_nothing() {
    let api = TestApi::start().await;
    let jobs: Vec<Value> = (0..50)
        .map(|i| json!({"name": "n", "data": {"i": i}}))
        .collect();
    let (status, res) = api
        .call(
            "POST",
            BULK,
            Some(&api.producer),
            Some(json!({"jobs": jobs})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{res}");
    let ids: Vec<String> = serde_json::from_value(res["ids"].clone()).unwrap();
    assert_eq!(ids.len(), 50);
    let waiting = api.redis.list("emails", "wait").await;
    assert_eq!(waiting.len(), 50);
    for (i, id) in ids.iter().enumerate() {
        let data: Value =
            serde_json::from_str(&api.redis.job_hash("emails", id).await["data"]).unwrap();
        assert_eq!(data["i"], i, "ids come back in request order");
    }

    // One bad job among good ones: nothing is written at all.
    let before = api.redis.keys("bull:*").await;
    let mut jobs: Vec<Value> = (0..10)
        .map(|i| json!({"name": "n", "data": {"i": i}}))
        .collect();
    jobs.push(json!({"name": "n", "opts": {"priority": 99_999_999}}));
    let (status, res) = api
        .call(
            "POST",
            BULK,
            Some(&api.producer),
            Some(json!({"jobs": jobs})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{res}");
    assert!(
        res["error"]["message"]
            .as_str()
            .unwrap()
            .contains("jobs[10]"),
        "{res}"
    );
    assert_eq!(api.redis.keys("bull:*").await, before, "nothing written");
    assert_eq!(api.redis.list("emails", "wait").await.len(), 50);

    for bad in [
        json!({"jobs": []}),
        json!({"jobs": vec![json!({"name": "n"}); 1001]}),
    ] {
        let (status, _) = api.call("POST", BULK, Some(&api.producer), Some(bad)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(api.redis.keys("bull:*").await, before);
}

#[tokio::test]
async fn hostile_and_malformed_input_gets_its_status_and_writes_nothing() {
    let api = TestApi::start_with(ApiConfig {
        max_body_bytes: 64 * 1024,
        ..ApiConfig::default()
    })
    .await;
    // Only BullMQ's keys count: the per-key rate-limit counter is written
    // for every authenticated request, accepted or not.
    let before = api.redis.keys("bull:*").await;
    let key = api.admin.clone();
    let deep = format!(
        "{{\"name\":\"n\",\"data\":{}{}}}",
        "[".repeat(100),
        "]".repeat(100)
    );
    let big = format!("{{\"name\":\"n\",\"data\":\"{}\"}}", "x".repeat(70 * 1024));
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode, &str)> = vec![
        (
            JOBS,
            "application/json",
            b"{".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            JOBS,
            "application/json",
            b"".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            JOBS,
            "application/json",
            b"[1,2]".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            JOBS,
            "application/json",
            br#"{"name":"n","colour":"red"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            JOBS,
            "application/json",
            br#"{"name":"n","opts":{"atempts":3}}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            JOBS,
            "application/json",
            br#"{"data":{}}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            JOBS,
            "application/json",
            br#"{"name":""}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            JOBS,
            "application/json",
            b"{\"name\":\"a\\u0000b\"}".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            JOBS,
            "application/json",
            br#"{"name":"n","opts":{"jobId":"42"}}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            JOBS,
            "application/json",
            br#"{"name":"n","opts":{"jobId":"a:b"}}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            JOBS,
            "application/json",
            br#"{"name":"n","opts":{"attempts":-1}}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            JOBS,
            "application/json",
            deep.into_bytes(),
            StatusCode::BAD_REQUEST,
            "json_too_deep",
        ),
        (
            JOBS,
            "application/json",
            big.into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            JOBS,
            "text/plain",
            br#"{"name":"n"}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            JOBS,
            "application/json",
            vec![0xff, 0xfe, b'{'],
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "/api/v1/queues/a:b/jobs",
            "application/json",
            br#"{"name":"n"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "/api/v1/queues/has%20space/jobs",
            "application/json",
            br#"{"name":"n"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "/api/v1/queues/%7Ba%7D%7Bb%7D/jobs",
            "application/json",
            br#"{"name":"n"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
    ];
    for (path, ct, body, want, want_code) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let (status, json) = json_of(api.send(raw("POST", path, &key, ct, body)).await).await;
        assert_eq!(status, want, "{path} {shown}: {json}");
        assert_eq!(code(&json), want_code, "{path} {shown}: {json}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    assert_eq!(
        api.redis.keys("bull:*").await,
        before,
        "no rejected request wrote anything"
    );

    // A Cluster hash tag is a fine queue name.
    let (status, _) = api
        .call(
            "POST",
            "/api/v1/queues/%7Btenant-1%7Demails/jobs",
            Some(&key),
            Some(json!({"name": "n"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn an_idempotency_key_creates_one_job_however_often_it_is_sent() {
    let api = TestApi::start().await;
    let body = json!({"name": "charge", "data": {"order": 7}});
    let send = |key: &'static str, body: Value| {
        let req = request(
            "POST",
            JOBS,
            Some(&api.producer),
            Some(body),
            &[("idempotency-key", key)],
        );
        api.send(req)
    };
    let first = send("order-7", body.clone()).await;
    assert!(first.headers().get("idempotent-replayed").is_none());
    let (status, first) = json_of(first).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let again = send("order-7", body.clone()).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let (status, again) = json_of(again).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(api.redis.list("emails", "wait").await.len(), 1);

    // The same key for a different request is refused, not answered with
    // someone else's job.
    let (status, res) =
        json_of(send("order-7", json!({"name": "charge", "data": {"order": 8}})).await).await;
    assert_eq!(status, StatusCode::CONFLICT, "{res}");

    // Many concurrent retries of one request: one job.
    let sends = (0..20).map(|_| send("order-9", body.clone()));
    let answers = futures::future::join_all(sends).await;
    let mut ids = std::collections::BTreeSet::new();
    for a in answers {
        let (status, json) = json_of(a).await;
        assert!(status.is_success(), "{status} {json}");
        ids.insert(json["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "every retry names the same job");
    assert_eq!(api.redis.list("emails", "wait").await.len(), 2);

    // Even after the job is gone, the key still answers with its id and
    // creates nothing (the record lives 24 h).
    let id = first["id"].as_str().unwrap();
    let (status, _) = api
        .call("DELETE", &format!("{JOBS}/{id}"), Some(&api.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, replay) = json_of(send("order-7", body.clone()).await).await;
    assert_eq!(
        (status, replay["id"].clone()),
        (StatusCode::OK, first["id"].clone())
    );
    assert_eq!(api.redis.list("emails", "wait").await.len(), 1);

    // Bulk adds are idempotent too.
    let bulk = json!({"jobs": [{"name": "a"}, {"name": "b"}]});
    let req = || {
        request(
            "POST",
            BULK,
            Some(&api.producer),
            Some(bulk.clone()),
            &[("idempotency-key", "batch-1")],
        )
    };
    let (s1, b1) = json_of(api.send(req()).await).await;
    let (s2, b2) = json_of(api.send(req()).await).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(b1["ids"], b2["ids"]);
    assert_eq!(api.redis.list("emails", "wait").await.len(), 3);

    // A bad key is a 400, and writes nothing.
    let before = api.redis.keys("bull:*").await;
    let long = "k".repeat(300);
    let res = api
        .send(request(
            "POST",
            JOBS,
            Some(&api.producer),
            Some(body.clone()),
            &[("idempotency-key", long.as_str())],
        ))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(api.redis.keys("bull:*").await, before);
}

#[tokio::test]
async fn the_rate_limit_is_per_key_and_shared_by_instances() {
    let api = TestApi::start().await;
    let limited = api
        .store
        .create_api_key("limited", &["enqueue:*".parse::<Scope>().unwrap()], Some(3))
        .await
        .unwrap()
        .token;
    // A second API instance on the same Redis and store.
    let other = drover_api::router(
        drover_api::ApiState::new(
            api.conn.clone(),
            api.store.clone(),
            drover_api::AuthMode::ApiKeys,
            ApiConfig {
                key_cache_ttl_ms: 0,
                ..ApiConfig::default()
            }
            .resolve()
            .unwrap(),
            prometheus::Registry::new(),
        )
        .unwrap(),
    );
    let mut accepted = 0;
    let mut limited_answers = 0;
    for i in 0..12 {
        let req = request(
            "POST",
            JOBS,
            Some(&limited),
            Some(json!({"name": "n"})),
            &[],
        );
        let res = if i % 2 == 0 {
            api.send(req).await
        } else {
            use tower::ServiceExt;
            other.clone().oneshot(req).await.unwrap()
        };
        match res.status() {
            StatusCode::CREATED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let after: u64 = res.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=1).contains(&after), "Retry-After {after}");
                let (_, body) = json_of(res).await;
                assert_eq!(code(&body), "rate_limited");
                limited_answers += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    // 12 requests within at most a few one-second windows of 3.
    assert!(limited_answers > 0, "the limit was enforced");
    assert!(accepted >= 3, "{accepted}");
    assert_eq!(api.redis.list("emails", "wait").await.len(), accepted);
    // Other keys are not affected.
    let (status, _) = api
        .call(
            "POST",
            JOBS,
            Some(&api.producer),
            Some(json!({"name": "n"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

//! Workflows over HTTP: registering types (invalid ones refused naming the
//! step, with nothing stored), starting runs idempotently with the scopes
//! of every step's queue, listing and showing runs, cancel and retry by
//! state, the checkpoint callback, the events stream and the run gauges;
//! the run routes on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Response, StatusCode};
use drover_api::ApiConfig;
use http_body_util::BodyExt;
use queue_core::store::{Scope, StoreConfig};
use queue_core::workflow::{self, StepRef};
use serde_json::{Value, json};
use support::{TestApi, code, json_of, request};
use testkit::postgres::TestDatabase;
use testkit::{Check, wait_until};

/// Two steps: `fetch` on `emails-fetch`, then `send` on `emails`.
fn signup() -> Value {
    json!({"steps": [
        {"id": "fetch", "queue": "emails-fetch", "input": {"url": "{{ input.url }}"}},
        {"id": "send", "queue": "emails", "depends_on": ["fetch"],
         "input": {"page": "{{ steps.fetch.output }}"}},
    ]})
}

async fn put_type(api: &TestApi, kind: &str, def: Value) -> (StatusCode, Value) {
    let path = format!("/api/v1/workflows/{kind}");
    api.call("PUT", &path, Some(&api.admin), Some(def)).await
}

async fn start(api: &TestApi, kind: &str, key: &str, input: Value) -> (StatusCode, Value) {
    let path = format!("/api/v1/workflows/{kind}/runs");
    api.call("POST", &path, Some(key), Some(json!({ "input": input })))
        .await
}

#[tokio::test]
async fn types_are_registered_replaced_and_refused_naming_the_step() {
    let api = TestApi::start().await;
    let (status, created) = put_type(&api, "signup", signup()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["type"], "signup");
    assert_eq!(created["version"], 1);
    assert_eq!(
        created["definition"]["steps"][1]["depends_on"],
        json!(["fetch"])
    );
    assert_eq!(created["updated_by"], "key:admin");

    // The body may name the type only as the path does.
    let mut named = signup();
    named["type"] = "signup".into();
    let (status, replaced) = put_type(&api, "signup", named).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["version"], 2);
    assert!(replaced["definition"].get("type").is_none());

    for (def, needle) in [
        (
            json!({"steps": [{"id": "a", "queue": "q"}, {"id": "b", "queue": "q", "depends_on": ["zzz"]}]}),
            r#"step "b": depends on unknown step "zzz""#,
        ),
        (
            json!({"steps": [{"id": "a", "queue": "q", "input": {"x": "{{ steps.b.output }}"}},
                {"id": "b", "queue": "q"}]}),
            r#"step "a": {{ steps.b.output }} reads step "b""#,
        ),
        (
            json!({"steps": [{"id": "a", "queue": "q", "depends_on": ["b"]},
                {"id": "b", "queue": "q", "depends_on": ["a"]}]}),
            "cycle",
        ),
        (
            json!({"type": "other", "steps": [{"id": "a", "queue": "q"}]}),
            "path names",
        ),
    ] {
        for kind in ["signup", "fresh"] {
            let (status, body) = put_type(&api, kind, def.clone()).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{def}: {body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{message}");
        }
    }
    let (status, body) = put_type(&api, "signup", json!({"steps": [], "bogus": 1})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = put_type(&api, "bad:name", signup()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Nothing refused was stored.
    assert!(
        api.store
            .get_workflow_type("fresh")
            .await
            .unwrap()
            .is_none()
    );
    let (status, one) = api
        .call("GET", "/api/v1/workflows/signup", Some(&api.reader), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["version"], 2);
    let (_, list) = api
        .call("GET", "/api/v1/workflows", Some(&api.reader), None)
        .await;
    let kinds: Vec<&str> = list["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["signup"]);
    let (status, missing) = api
        .call("GET", "/api/v1/workflows/nope", Some(&api.reader), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&missing), "not_found");

    // The two registrations are audited, on no queue.
    let audit = api.store.list_audit(100, None).await.unwrap();
    let puts: Vec<_> = audit
        .iter()
        .filter(|r| r.action == "workflow.put")
        .collect();
    assert_eq!(puts.len(), 2, "{audit:?}");
    assert!(puts.iter().all(|r| r.queue.is_none()
        && r.target.as_deref() == Some("signup")
        && r.outcome == "ok"
        && r.actor == "key:admin"));
}

#[tokio::test]
async fn starting_needs_an_enqueue_scope_for_every_step_queue() {
    let api = TestApi::start().await;
    put_type(&api, "signup", signup()).await;
    put_type(
        &api,
        "mixed",
        json!({"steps": [
            {"id": "a", "queue": "emails"}, {"id": "b", "queue": "reports", "depends_on": ["a"]},
        ]}),
    )
    .await;
    let both = api
        .store
        .create_api_key(
            "both",
            &[
                "enqueue:emails".parse::<Scope>().unwrap(),
                "enqueue:reports".parse().unwrap(),
            ],
            None,
        )
        .await
        .unwrap()
        .token;

    let (status, _) = start(&api, "signup", &api.producer, json!({})).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "emails* covers emails and emails-fetch"
    );
    let (status, body) = start(&api, "mixed", &api.producer, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"reports\""),
        "{body}"
    );
    for key in [&api.outsider, &api.reader] {
        let (status, body) = start(&api, "signup", key, json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    let (status, _) = start(&api, "mixed", &both, json!({})).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "two scopes together cover both queues"
    );
    let (status, _) = start(&api, "mixed", &api.admin, json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = start(&api, "nope", &api.producer, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Refused starts made no run.
    let runs = api.store.list_runs(None, None, 100, None).await.unwrap();
    assert_eq!(runs.len(), 3);
}

/// Starting (idempotently), listing, showing, cancelling and retrying,
/// on whichever store `api` has.
async fn run_lifecycle(api: &TestApi) {
    put_type(api, "signup", signup()).await;
    let path = "/api/v1/workflows/signup/runs";
    let post = |key: Option<&'static str>, body: Value| {
        let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        api.send(request(
            "POST",
            path,
            Some(&api.producer),
            Some(body),
            &headers,
        ))
    };
    let input = json!({"input": {"url": "https://example.com/a"}});

    let res = post(Some("signup-1"), input.clone()).await;
    assert!(res.headers().get("idempotent-replayed").is_none());
    let (status, first) = json_of(res).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["state"], "pending");
    assert_eq!(first["input"]["url"], "https://example.com/a");
    assert_eq!(first["idempotency_key"], "signup-1");
    let res = post(Some("signup-1"), input.clone()).await;
    assert_eq!(res.headers()["idempotent-replayed"], "true");
    let (status, again) = json_of(res).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], first["id"]);
    let (status, reused) =
        json_of(post(Some("signup-1"), json!({"input": {"url": "elsewhere"}})).await).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reused}");
    let long = "k".repeat(256);
    let headers = [("idempotency-key", long.as_str())];
    let res = api
        .send(request(
            "POST",
            path,
            Some(&api.producer),
            Some(input.clone()),
            &headers,
        ))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let (status, body) = json_of(post(None, json!({"input": [1, 2]})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Without a key every start is a new run; no input is `{}`.
    let (status, second) = json_of(post(None, json!({})).await).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(second["input"], json!({}));
    let (_, third) = json_of(post(None, input.clone()).await).await;
    assert_ne!(second["id"], third["id"]);

    // Newest first, a page at a time.
    let list = |query: &str| {
        let path = format!("{path}{query}");
        async move { api.call("GET", &path, Some(&api.reader), None).await }
    };
    // (Runs started in the same millisecond come in id order.)
    let (status, page) = list("?limit=2").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["runs"].as_array().unwrap().len(), 2);
    let next = page["next"].as_str().unwrap();
    let (_, rest) = list(&format!("?limit=2&before={next}")).await;
    assert_eq!(rest["runs"].as_array().unwrap().len(), 1);
    assert!(rest.get("next").is_none(), "{rest}");
    let listed: Vec<&Value> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["runs"].as_array().unwrap())
        .collect();
    let times: Vec<u64> = listed
        .iter()
        .map(|r| r["created_at_ms"].as_u64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let mut ids: Vec<&str> = listed.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut started = [&first, &second, &third].map(|r| r["id"].as_str().unwrap());
    started.sort_unstable();
    assert_eq!(ids, started);
    assert_eq!(list("?limit=0").await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(list("?state=sleeping").await.0, StatusCode::BAD_REQUEST);
    let unknown = api
        .call(
            "GET",
            "/api/v1/workflows/nope/runs",
            Some(&api.reader),
            None,
        )
        .await;
    assert_eq!(unknown.0, StatusCode::NOT_FOUND);

    // The orchestrator's first tick dispatches `fetch`; the run shows it.
    workflow::tick(&api.conn, &api.store, 100).await.unwrap();
    let run_path = format!("/api/v1/workflow-runs/{}", first["id"].as_str().unwrap());
    let (status, shown) = api.call("GET", &run_path, Some(&api.reader), None).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["state"], "running");
    let steps = shown["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{shown}");
    assert_eq!(steps[0]["step"], "fetch");
    assert_eq!(steps[0]["state"], "dispatched");
    assert_eq!(steps[0]["attempt"], 1);
    assert_eq!(steps[0]["tries"], 0);
    assert_eq!(steps[0]["queue"], "emails-fetch");
    assert_eq!(steps[0]["input"]["url"], "https://example.com/a");
    let (_, running) = list("?state=running").await;
    assert_eq!(running["runs"].as_array().unwrap().len(), 2);
    // The run started without input fails: `{{ input.url }}` finds nothing.
    let (_, failed) = list("?state=failed").await;
    assert_eq!(failed["runs"][0]["id"], second["id"], "{failed}");
    let error = failed["runs"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("step fetch failed") && error.contains("input.url"),
        "{error}"
    );

    // Cancel and retry follow the run's state.
    let act = |what: &str| {
        let path = format!("{run_path}/{what}");
        async move { api.call("POST", &path, Some(&api.admin), None).await }
    };
    let (status, cancelled) = act("cancel").await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    let (status, body) = act("cancel").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "conflict");
    let (status, retried) = act("retry").await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(
        retried["state"], "pending",
        "a retried run waits for a slot"
    );
    assert_eq!(act("retry").await.0, StatusCode::CONFLICT);
    let gone = "/api/v1/workflow-runs/0123456789abcdef0123456789abcdef";
    for path in [
        gone.to_string(),
        format!("{gone}/cancel"),
        format!("{gone}/retry"),
    ] {
        let method = if path == gone { "GET" } else { "POST" };
        let (status, _) = api.call(method, &path, Some(&api.admin), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let outcomes: Vec<(String, String)> = api
        .store
        .list_audit(100, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action != "workflow.put")
        .map(|r| (r.action, r.outcome))
        .collect();
    let expected = [
        ("workflow.retry", "not_found"),
        ("workflow.cancel", "not_found"),
        ("workflow.retry", "conflict"),
        ("workflow.retry", "ok"),
        ("workflow.cancel", "conflict"),
        ("workflow.cancel", "ok"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, o)| (a.to_string(), o.to_string()))
        .collect();
    assert_eq!(outcomes, expected);
}

#[tokio::test]
async fn runs_start_list_show_cancel_and_retry_on_sqlite() {
    run_lifecycle(&TestApi::start().await).await;
}

#[tokio::test]
async fn runs_start_list_show_cancel_and_retry_on_postgres() {
    let db = TestDatabase::create().await;
    let config = ApiConfig {
        key_cache_ttl_ms: 0,
        ..ApiConfig::default()
    };
    let store = StoreConfig {
        url: Some(db.url.clone()),
        ..StoreConfig::default()
    };
    let api = TestApi::start_on(config, store).await;
    run_lifecycle(&api).await;
    api.store.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn the_checkpoint_callback_saves_for_the_dispatched_unit() {
    let api = &TestApi::start().await;
    put_type(api, "split", json!({"steps": [
        {"id": "each", "queue": "emails", "for_each": "{{ input.parts }}", "input": {"part": "{{ item }}"}},
        {"id": "done", "queue": "emails", "depends_on": ["each"]},
    ]}))
    .await;
    let (_, run) = start(api, "split", &api.producer, json!({"parts": ["a", "b"]})).await;
    let id = run["id"].as_str().unwrap();
    workflow::tick(&api.conn, &api.store, 100).await.unwrap();
    let put = |key: &str, step: &str, query: &str, value: Value| {
        let path = format!("/api/v1/workflow-runs/{id}/steps/{step}/checkpoint{query}");
        let req = request("PUT", &path, Some(key), Some(value), &[]);
        async move { json_of(api.send(req).await).await }
    };
    let progress = json!({"done": 40, "cursor": "b-17"});

    let (status, saved) = put(&api.producer, "each", "?item=1", progress.clone()).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(
        saved,
        json!({"run": id, "step": "each", "item": 1, "attempt": 1})
    );
    let at = StepRef {
        run: id.to_string(),
        step: "each".into(),
        item: Some(1),
        attempt: 1,
    };
    let loaded = workflow::load_checkpoint(&api.conn, &at).await.unwrap();
    assert_eq!(loaded, Some(progress.clone()));
    // Any JSON value is a checkpoint.
    let (status, _) = put(&api.admin, "each", "?item=0", json!(7)).await;
    assert_eq!(status, StatusCode::OK);

    // The orchestrator copies it into the run.
    workflow::tick(&api.conn, &api.store, 100).await.unwrap();
    let (_, shown) = api
        .call(
            "GET",
            &format!("/api/v1/workflow-runs/{id}"),
            Some(&api.reader),
            None,
        )
        .await;
    let item = |i: u64| {
        shown["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == "each" && s["item"] == i)
            .unwrap()
            .clone()
    };
    assert_eq!(item(1)["checkpoint"], progress);
    assert_eq!(item(0)["checkpoint"], 7);

    // The fan-in has no job; a fan-out's checkpoints are per item.
    let (status, body) = put(&api.producer, "each", "", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("?item=N"),
        "{body}"
    );
    for (step, query) in [("each", "?item=5"), ("done", ""), ("nope", "")] {
        let (status, body) = put(&api.producer, step, query, json!({})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{step}{query}: {body}");
    }
    let (status, _) = put(&api.producer, "each", "?item=x", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for key in [&api.outsider, &api.reader] {
        let (status, body) = put(key, "each", "?item=1", json!({"done": 99})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    let unknown = "/api/v1/workflow-runs/0123456789abcdef0123456789abcdef/steps/each/checkpoint";
    let req = request("PUT", unknown, Some(&api.producer), Some(json!({})), &[]);
    assert_eq!(api.send(req).await.status(), StatusCode::NOT_FOUND);
    // Refused writes changed nothing.
    let loaded = workflow::load_checkpoint(&api.conn, &at).await.unwrap();
    assert_eq!(loaded, Some(progress));

    // Once the run is cancelled its units are not dispatched any more.
    let cancel = format!("/api/v1/workflow-runs/{id}/cancel");
    api.call("POST", &cancel, Some(&api.admin), None).await;
    workflow::tick(&api.conn, &api.store, 100).await.unwrap();
    let (status, body) = put(&api.producer, "each", "?item=1", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is cancelled"),
        "{body}"
    );
}

/// Reads `n` events from an SSE response within 10 s: (id, type, data).
async fn sse_events(res: Response<Body>, n: usize) -> Vec<(i64, String, Value)> {
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (mut text, mut events) = (String::new(), Vec::new());
    while events.len() < n {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("{} of {n} events within 10 s: {events:?}", events.len()))
            .expect("the stream ended")
            .unwrap();
        if let Ok(bytes) = frame.into_data() {
            text.push_str(std::str::from_utf8(&bytes).unwrap());
        }
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                block.lines().find_map(|l| {
                    l.strip_prefix(name)
                        .and_then(|v| v.strip_prefix(':'))
                        .map(|v| v.trim_start().to_string())
                })
            };
            if let (Some(id), Some(kind), Some(data)) = (field("id"), field("event"), field("data"))
            {
                events.push((
                    id.parse().unwrap(),
                    kind,
                    serde_json::from_str(&data).unwrap(),
                ));
            }
        }
    }
    events
}

#[tokio::test]
async fn events_stream_a_runs_changes_in_order_and_resume() {
    let api = TestApi::start().await;
    put_type(&api, "signup", signup()).await;
    let (_, run) = start(&api, "signup", &api.admin, json!({"url": "u"})).await;
    let id = run["id"].as_str().unwrap();
    workflow::tick(&api.conn, &api.store, 100).await.unwrap();
    let feed = format!("/api/v1/workflows/events?run={id}");
    let res = api
        .send(request("GET", &feed, Some(&api.reader), None, &[]))
        .await;
    let events = sse_events(res, 4).await;
    let seen: Vec<(&str, Option<&str>)> = events
        .iter()
        .map(|(_, kind, data)| (kind.as_str(), data["step"].as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("pending", None),
            ("running", None),
            ("waiting", Some("fetch")),
            ("dispatched", Some("fetch"))
        ]
    );
    assert!(events.windows(2).all(|w| w[0].0 < w[1].0), "{events:?}");
    assert!(
        events
            .iter()
            .all(|(eid, _, d)| d["run_id"] == id && d["id"] == *eid && d["type"] == "signup")
    );

    // Resuming after the second event gives the rest.
    let after = events[1].0.to_string();
    let headers = [("last-event-id", after.as_str())];
    let res = api
        .send(request("GET", &feed, Some(&api.reader), None, &headers))
        .await;
    let resumed = sse_events(res, 2).await;
    assert_eq!(resumed[0].0, events[2].0);
    assert_eq!(resumed[1].1, "dispatched");

    // The feed of every run starts with what happens next.
    let res = api
        .send(request(
            "GET",
            "/api/v1/workflows/events",
            Some(&api.reader),
            None,
            &[],
        ))
        .await;
    let cancel = format!("/api/v1/workflow-runs/{id}/cancel");
    let (status, _) = api.call("POST", &cancel, Some(&api.admin), None).await;
    assert_eq!(status, StatusCode::OK);
    let next = sse_events(res, 1).await;
    assert_eq!(
        (next[0].1.as_str(), &next[0].2["run_id"]),
        ("cancelled", &json!(id))
    );
    assert!(next[0].0 > events[3].0);

    for (path, header) in [
        ("/api/v1/workflows/events?from=x", None),
        ("/api/v1/workflows/events?from=-1", None),
        ("/api/v1/workflows/events", Some("soon")),
    ] {
        let headers: Vec<(&str, &str)> = header.map(|h| ("last-event-id", h)).into_iter().collect();
        let res = api
            .send(request("GET", path, Some(&api.reader), None, &headers))
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{path} {header:?}");
    }
    let unknown = "/api/v1/workflows/events?run=0123456789abcdef0123456789abcdef";
    let (status, _) = api.call("GET", unknown, Some(&api.reader), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_show_runs_per_state() {
    let api = TestApi::start().await;
    let stop = tokio_util::sync::CancellationToken::new();
    let refresher = drover_api::spawn_queue_refresher(api.state.clone(), stop.clone());
    put_type(&api, "signup", signup()).await;
    start(&api, "signup", &api.admin, json!({})).await;
    let (_, run) = start(&api, "signup", &api.admin, json!({})).await;
    let cancel = format!(
        "/api/v1/workflow-runs/{}/cancel",
        run["id"].as_str().unwrap()
    );
    api.call("POST", &cancel, Some(&api.admin), None).await;
    let wanted = [
        r#"drover_workflow_runs{state="pending"} 1"#,
        r#"drover_workflow_runs{state="cancelled"} 1"#,
        r#"drover_workflow_runs{state="completed"} 0"#,
    ];
    wait_until(
        "run gauges in /metrics",
        Duration::from_secs(10),
        || async {
            let res = api
                .send(request("GET", "/metrics", Some(&api.reader), None, &[]))
                .await;
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            let text = String::from_utf8(bytes.to_vec()).unwrap();
            if wanted.iter().all(|w| text.contains(w)) {
                Check::Done(())
            } else {
                Check::NotYet(
                    text.lines()
                        .filter(|l| l.contains("workflow"))
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            }
        },
    )
    .await;
    stop.cancel();
    refresher.await.unwrap();
}

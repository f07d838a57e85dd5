//! The dashboard through its real router, as a browser drives it: sign-in
//! and sessions, what read-only keys see and may do, CSRF and cross-site
//! refusals, escaping, confirmations that name counts, actions landing in
//! Redis and the audit log, and the live stream.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use axum::http::{StatusCode, header};
use drover_api::AuthMode;
use queue_core::producer::{self, JobOptions, NewJob};
use queue_core::{Connection, QueueName, admin, inspect};
use serde_json::{Value, json};
use support::TestDash;

async fn add(conn: &Connection, queue: &str, name: &str, data: Value, opts: Value) -> String {
    let job = NewJob {
        name: name.to_string(),
        data,
        opts: serde_json::from_value::<JobOptions>(opts).unwrap(),
    };
    producer::enqueue(conn, &QueueName::new(queue).unwrap(), &job)
        .await
        .unwrap()
}

/// Moves `id` of `queue` from wait to failed, as a worker's final failure
/// leaves it (reason, stack, finish time).
async fn fail(dash: &TestDash, queue: &str, id: &str) {
    let mut r = dash.redis.conn().await;
    let now = queue_core::now_ms();
    redis::pipe()
        .atomic()
        .lrem(format!("bull:{queue}:wait"), 1, id)
        .zadd(format!("bull:{queue}:failed"), id, now)
        .hset_multiple(
            format!("bull:{queue}:{id}"),
            &[
                ("failedReason", "boom <b>bold</b>".to_string()),
                (
                    "stacktrace",
                    json!(["Error: boom\n    at step"]).to_string(),
                ),
                ("finishedOn", now.to_string()),
                ("processedOn", now.to_string()),
                ("atm", "1".to_string()),
                ("ats", "1".to_string()),
            ],
        )
        .query_async::<()>(&mut r)
        .await
        .unwrap();
}

async fn audit_actions(dash: &TestDash) -> Vec<(String, String, String)> {
    dash.store
        .list_audit(100, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.actor, e.action, e.outcome))
        .collect()
}

#[tokio::test]
async fn sign_in_makes_a_strict_http_only_session_and_sign_out_ends_it() {
    let dash = TestDash::start().await;
    // Not signed in: to the sign-in form, coming back after.
    let page = dash.get("/queues/emails?state=failed", None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location(),
        "/login?next=%2Fqueues%2Femails%3Fstate%3Dfailed"
    );
    let form = dash.get("/login", None).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("type=\"password\""));

    let wrong = dash
        .post("/login", None, &[("key", "drv_nope"), ("next", "/")])
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("unknown or revoked"));
    let producer = dash
        .post("/login", None, &[("key", &dash.producer), ("next", "/")])
        .await;
    assert_eq!(producer.status, StatusCode::FORBIDDEN);

    let page = dash
        .post(
            "/login",
            None,
            &[("key", &dash.admin), ("next", "//evil.example/")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/", "no open redirect");
    let set = page
        .headers
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(set.starts_with("drover_session=drs_"), "{set}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(attr), "{attr} missing from {set}");
    }
    assert!(
        !set.contains("Secure"),
        "plain HTTP without a proxy saying https"
    );
    let cookie = set.split(';').next().unwrap();
    let overview = dash.get("/", Some(cookie)).await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(
        overview
            .body
            .contains("Signed in with <strong>admin</strong>")
    );
    assert!(
        overview.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(overview.headers.contains_key("server-timing"));

    // Behind a proxy that says https, the cookie is Secure.
    let https = dash
        .post_with(
            "/login",
            None,
            &[("key", &dash.reader), ("next", "/")],
            &[("x-forwarded-proto", "https")],
        )
        .await;
    assert!(
        https.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );

    let out = dash
        .post("/logout", Some(cookie), &[("csrf", &overview.csrf())])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let after = dash.get("/", Some(cookie)).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert!(after.location().contains("expired=1"));
    let actions: Vec<String> = audit_actions(&dash)
        .await
        .into_iter()
        .map(|a| a.1)
        .collect();
    assert!(actions.contains(&"sign-in".to_string()) && actions.contains(&"sign-out".to_string()));
}

#[tokio::test]
async fn a_revoked_key_ends_its_sessions_at_once() {
    let dash = TestDash::start().await;
    let cookie = dash.sign_in(&dash.reader).await;
    assert_eq!(
        dash.get("/workers", Some(&cookie)).await.status,
        StatusCode::OK
    );
    dash.store.revoke_api_key("reader").await.unwrap();
    let page = dash.get("/workers", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login?next=%2Fworkers&expired=1");
    // A made-up cookie is no session either.
    let fake = format!("drover_session=drs_{}", "ab".repeat(32));
    assert_eq!(
        dash.get("/", Some(&fake)).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn read_only_keys_see_no_actions_and_are_refused_when_they_post() {
    let dash = TestDash::start().await;
    let id = add(&dash.conn, "mail", "send", json!({}), json!({})).await;
    fail(&dash, "mail", &id).await;
    let cookie = dash.sign_in(&dash.reader).await;
    for path in [
        "/queues/mail?state=failed".to_string(),
        format!("/queues/mail/jobs/{id}"),
    ] {
        let page = dash.get(&path, Some(&cookie)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(page.body.contains("read-only"));
        for action in [
            "Retry",
            "Remove",
            "Queue actions",
            "Pause…",
            "type=\"checkbox\"",
        ] {
            assert!(
                !page.body.contains(action),
                "{path} shows {action:?} to a read-only key"
            );
        }
    }
    let csrf = dash.get("/", Some(&cookie)).await.csrf();
    let posts = [
        (
            "/queues/mail/actions".to_string(),
            vec![("action", "pause")],
        ),
        (format!("/queues/mail/jobs/{id}/retry"), vec![]),
        (
            "/queues/mail/jobs".to_string(),
            vec![("action", "remove"), ("id", id.as_str())],
        ),
    ];
    for (path, mut fields) in posts {
        fields.push(("csrf", &csrf));
        let page = dash.post(&path, Some(&cookie), &fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert!(page.body.contains("read-only"));
    }
    let confirm = dash
        .get("/queues/mail/confirm?action=drain", Some(&cookie))
        .await;
    assert_eq!(confirm.status, StatusCode::FORBIDDEN);
    assert_eq!(
        dash.get("/audit", Some(&cookie)).await.status,
        StatusCode::FORBIDDEN
    );
    // Nothing happened.
    let counts = inspect::queue_counts(&dash.conn, &[QueueName::new("mail").unwrap()])
        .await
        .unwrap();
    assert!(!counts[0].1.paused);
    assert_eq!(counts[0].1.failed, 1);
    assert!(audit_actions(&dash).await.iter().all(|a| a.1 == "sign-in"));
}

#[tokio::test]
async fn actions_need_the_csrf_token_and_a_same_site_origin_and_are_audited() {
    let dash = TestDash::start().await;
    add(&dash.conn, "mail", "send", json!({}), json!({})).await;
    let cookie = dash.sign_in(&dash.admin).await;
    let csrf = dash.get("/queues/mail", Some(&cookie)).await.csrf();
    let paused = || async {
        inspect::queue_counts(&dash.conn, &[QueueName::new("mail").unwrap()])
            .await
            .unwrap()[0]
            .1
            .paused
    };
    let missing = dash
        .post(
            "/queues/mail/actions",
            Some(&cookie),
            &[("action", "pause")],
        )
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    let wrong = dash
        .post(
            "/queues/mail/actions",
            Some(&cookie),
            &[("action", "pause"), ("csrf", "0")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let fields = [("action", "pause"), ("csrf", csrf.as_str())];
    let cross = dash
        .post_with(
            "/queues/mail/actions",
            Some(&cookie),
            &fields,
            &[("origin", "http://evil.example"), ("host", "dash.test")],
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let fetch = dash
        .post_with(
            "/queues/mail/actions",
            Some(&cookie),
            &fields,
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(fetch.status, StatusCode::FORBIDDEN);
    assert!(!paused().await, "no refused post paused the queue");

    let ok = dash
        .post("/queues/mail/actions", Some(&cookie), &fields)
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.location(), "/queues/mail");
    assert!(paused().await);
    // The next page shows how it went, once.
    let flash = ok
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("drover_flash="))
        .unwrap();
    let next = dash
        .get("/queues/mail", Some(&format!("{cookie}; {flash}")))
        .await;
    assert!(next.body.contains("Paused mail."));
    assert!(
        next.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .starts_with("drover_flash=;")
    );
    assert!(next.body.contains("Resume…"));

    let audit = audit_actions(&dash).await;
    assert_eq!(
        audit[0],
        (
            "key:admin (dashboard)".to_string(),
            "pause".to_string(),
            "ok".to_string()
        )
    );
    assert_eq!(audit.iter().filter(|a| a.1 == "pause").count(), 1);
}

#[tokio::test]
async fn hostile_job_content_is_rendered_as_text() {
    let dash = TestDash::start().await;
    let xss = "<script>window.pwned=1</script>";
    let id = add(
        &dash.conn,
        "q",
        "<img src=x onerror=alert(1)>",
        json!({ "html": xss, "attr": "\" onmouseover=\"alert(1)" }),
        json!({}),
    )
    .await;
    fail(&dash, "q", &id).await;
    let cookie = dash.sign_in(&dash.admin).await;
    for path in [
        "/queues/q?state=failed".to_string(),
        format!("/queues/q/jobs/{id}"),
        "/".into(),
    ] {
        let page = dash.get(&path, Some(&cookie)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.body.contains("<script>window"), "{path}");
        assert!(!page.body.contains("<img src=x"), "{path}");
        assert!(!page.body.contains("<b>bold</b>"), "{path}");
    }
    let job = dash
        .get(&format!("/queues/q/jobs/{id}"), Some(&cookie))
        .await;
    assert!(
        job.body
            .contains("&lt;script&gt;window.pwned=1&lt;/script&gt;")
    );
    assert!(job.body.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(job.body.contains("boom &lt;b&gt;bold&lt;/b&gt;"));
    // The raw view is JSON, never HTML.
    let raw = dash
        .get(&format!("/queues/q/jobs/{id}/raw/data"), Some(&cookie))
        .await;
    assert!(
        raw.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(raw.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}

#[tokio::test]
async fn queue_names_and_job_ids_with_odd_characters_round_trip() {
    let dash = TestDash::start().await;
    let id = add(
        &dash.conn,
        "a b/{c}",
        "n",
        json!({}),
        json!({ "jobId": "x/y?z#1" }),
    )
    .await;
    assert_eq!(id, "x/y?z#1");
    let cookie = dash.sign_in(&dash.admin).await;
    let list = dash.get("/queues/a%20b%2F%7Bc%7D", Some(&cookie)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert!(
        list.body
            .contains("href=\"/queues/a%20b%2F%7Bc%7D/jobs/x%2Fy%3Fz%231\"")
    );
    let job = dash
        .get("/queues/a%20b%2F%7Bc%7D/jobs/x%2Fy%3Fz%231", Some(&cookie))
        .await;
    assert_eq!(job.status, StatusCode::OK);
    let find = dash
        .get(
            "/queues/a%20b%2F%7Bc%7D/find?id=x%2Fy%3Fz%231",
            Some(&cookie),
        )
        .await;
    assert_eq!(
        find.location(),
        "/queues/a%20b%2F%7Bc%7D/jobs/x%2Fy%3Fz%231"
    );
    let missing = dash
        .get("/queues/a%20b%2F%7Bc%7D/jobs/nope", Some(&cookie))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let no_queue = dash.get("/queues/never-made", Some(&cookie)).await;
    assert_eq!(no_queue.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn confirmations_name_the_jobs_touched_and_bulk_actions_apply_to_the_selection() {
    let dash = TestDash::start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = add(&dash.conn, "work", "n", json!({ "i": i }), json!({})).await;
        fail(&dash, "work", &id).await;
        ids.push(id);
    }
    for _ in 0..3 {
        add(
            &dash.conn,
            "work",
            "n",
            json!({}),
            json!({ "delay": 600_000 }),
        )
        .await;
    }
    add(&dash.conn, "work", "n", json!({}), json!({})).await;
    let cookie = dash.sign_in(&dash.admin).await;
    let confirm = |q: &'static str| {
        let cookie = cookie.clone();
        let dash = &dash;
        async move {
            dash.get(&format!("/queues/work/confirm?{q}"), Some(&cookie))
                .await
        }
    };
    assert!(
        confirm("action=retry-failed")
            .await
            .body
            .contains("<strong>5 failed jobs</strong>")
    );
    assert!(
        confirm("action=promote-delayed")
            .await
            .body
            .contains("<strong>3 delayed jobs</strong>")
    );
    let drain = confirm("action=drain").await.body;
    assert!(drain.contains("1 waiting and prioritized jobs") && drain.contains("3 delayed jobs"));
    assert!(
        confirm("action=pause")
            .await
            .body
            .contains("1 waiting jobs")
    );
    let clean = confirm("action=clean&state=failed&age=0").await.body;
    assert!(
        clean.contains("Removes <strong>5 failed jobs</strong>"),
        "{clean}"
    );
    let clean_old = confirm("action=clean&state=failed&age=86400").await.body;
    assert!(clean_old.contains("<strong>0 failed jobs</strong>"));
    assert_eq!(
        confirm("action=explode").await.status,
        StatusCode::BAD_REQUEST
    );

    // Retry two of the five selected on the failed page.
    let page = dash.get("/queues/work?state=failed", Some(&cookie)).await;
    assert!(page.body.contains("Retry selected"));
    let csrf = page.csrf();
    let back = "/queues/work?state=failed&page=1&size=50&order=newest";
    let fields = [
        ("csrf", csrf.as_str()),
        ("back", back),
        ("action", "retry"),
        ("id", ids[0].as_str()),
        ("id", ids[1].as_str()),
    ];
    let done = dash.post("/queues/work/jobs", Some(&cookie), &fields).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), back);
    let counts = inspect::queue_counts(&dash.conn, &[QueueName::new("work").unwrap()])
        .await
        .unwrap()[0]
        .1
        .clone();
    assert_eq!((counts.failed, counts.waiting), (3, 3));
    let retries = audit_actions(&dash)
        .await
        .into_iter()
        .filter(|a| a.1 == "retry")
        .count();
    assert_eq!(retries, 2, "each job's retry is in the audit log");

    // A clean small enough runs at once and says how many went.
    let fields = [
        ("csrf", csrf.as_str()),
        ("action", "clean"),
        ("state", "failed"),
        ("age", "0"),
    ];
    let cleaned = dash
        .post("/queues/work/actions", Some(&cookie), &fields)
        .await;
    assert_eq!(cleaned.status, StatusCode::SEE_OTHER);
    let flash = cleaned.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        flash.contains("Cleaned%3A+removed+3+failed+jobs"),
        "{flash}"
    );
    let after = admin::ensure_queue_exists(&dash.conn, &QueueName::new("work").unwrap()).await;
    assert!(after.is_ok());
}

#[tokio::test]
async fn large_actions_run_in_the_background_and_are_audited_when_done() {
    let dash = TestDash::start().await;
    // The test dashboard sends actions above 50 jobs to the background.
    for _ in 0..60 {
        add(&dash.conn, "big", "n", json!({}), json!({})).await;
    }
    let cookie = dash.sign_in(&dash.admin).await;
    let csrf = dash.get("/queues/big", Some(&cookie)).await.csrf();
    let page = dash
        .post(
            "/queues/big/actions",
            Some(&cookie),
            &[("csrf", &csrf), ("action", "drain")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(
        page.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Started")
    );
    let audit = testkit::wait_until(
        "the drain in the audit log",
        std::time::Duration::from_secs(10),
        || async {
            let drained: Vec<_> = dash
                .store
                .list_audit(10, None)
                .await
                .unwrap()
                .into_iter()
                .filter(|e| e.action == "drain")
                .collect();
            match drained.first() {
                Some(e) => testkit::Check::Done(e.clone()),
                None => testkit::Check::NotYet("no drain yet".into()),
            }
        },
    )
    .await;
    assert_eq!(audit.outcome, "ok");
    let counts = inspect::queue_counts(&dash.conn, &[QueueName::new("big").unwrap()])
        .await
        .unwrap();
    assert_eq!(counts[0].1.waiting, 0);
}

#[tokio::test]
async fn the_live_stream_patches_regions_that_changed() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let dash = TestDash::start().await;
    add(&dash.conn, "live", "n", json!({}), json!({})).await;
    let cookie = dash.sign_in(&dash.reader).await;
    let req = axum::http::Request::builder()
        .uri("/ui/live?path=%2Fqueues%2Flive%3Fstate%3Dwaiting")
        .header(header::COOKIE, &cookie)
        .body(axum::body::Body::empty())
        .unwrap();
    let res = dash.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = res.into_body();
    let mut text = String::new();
    // The first event carries the regions as they are now.
    while !text.contains("\n\n") {
        let frame = body.frame().await.unwrap().unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(text.starts_with("event: patch\n"), "{text}");
    assert!(text.contains("live-queue-head") && text.contains("live-job-list"));
    // A new job changes the counts: the next patch says so.
    add(&dash.conn, "live", "n", json!({}), json!({})).await;
    text.clear();
    while !text.contains("\n\n") {
        let frame = body.frame().await.unwrap().unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(text.contains("waiting jobs 1–2 of 2"), "{text}");
    // Shutting down ends the stream.
    dash.stop.cancel();
    while let Some(frame) = body.frame().await {
        frame.unwrap();
    }

    // Not signed in: no stream; a page without live parts: none either.
    let req = axum::http::Request::builder()
        .uri("/ui/live?path=%2F")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = dash.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let page = dash.get("/ui/live?path=%2Faudit", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn development_mode_needs_no_sign_in_but_still_a_csrf_token() {
    let dash = TestDash::start_with(AuthMode::Disabled).await;
    add(&dash.conn, "dev", "n", json!({}), json!({})).await;
    let page = dash.get("/queues/dev", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("development mode"));
    assert_eq!(dash.get("/login", None).await.status, StatusCode::SEE_OTHER);
    let refused = dash
        .post("/queues/dev/actions", None, &[("action", "pause")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let ok = dash
        .post(
            "/queues/dev/actions",
            None,
            &[("action", "pause"), ("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_autoscaler_panel_shows_the_leader_queues_history_and_decisions() {
    use queue_core::autoscale::{
        self, Actuator, Decision, DesiredState, Direction, HistorySample, Lease, QueueStatus,
        Retention, SignalsView, Tick,
    };
    use std::time::Duration;
    let dash = TestDash::start().await;
    let cookie = dash.sign_in(&dash.reader).await;
    let empty = dash.get("/autoscaler", Some(&cookie)).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(empty.body.contains("nothing is being scaled"));
    assert!(empty.body.contains("No queue has an autoscaling policy"));

    // What a leader writes at its ticks, through its own write path.
    let now = queue_core::now_ms();
    let lease = Lease::try_acquire(&dash.conn, "host-a", Duration::from_secs(30), now)
        .await
        .unwrap()
        .unwrap();
    let retention = Retention {
        lease_ttl: Duration::from_secs(30),
        decisions: 100,
        history_samples: 100,
        history_ttl: Duration::from_secs(3600),
    };
    let signals = SignalsView {
        backlog: 120,
        active: 4,
        live_workers: 1,
        live_slots: 4,
        ..SignalsView::default()
    };
    for (i, (desired, actual)) in [(1, 1), (5, 1), (5, 5)].into_iter().enumerate() {
        let at_ms = now + i as u64 * 500;
        let tick = Tick {
            desired: vec![DesiredState {
                queue: "mail".into(),
                actuator: Actuator::Process,
                workers: desired,
                assignments: Default::default(),
                epoch: lease.epoch(),
                at_ms,
            }],
            status: vec![QueueStatus {
                queue: "mail".into(),
                policy: None,
                source: None,
                actuator: Some(Actuator::Process),
                desired: Some(desired),
                actual,
                recommended: Some(desired),
                reason: Some("backlog <120> over 10 per slot".into()),
                signals: signals.clone(),
                at_ms,
            }],
            decisions: (i == 1)
                .then(|| Decision {
                    at_ms,
                    queue: "mail".into(),
                    from: 1,
                    to: 5,
                    direction: Direction::Up,
                    reason: "backlog <120> over 10 per slot".into(),
                    signals: signals.clone(),
                    epoch: lease.epoch(),
                })
                .into_iter()
                .collect(),
            history: vec![(
                QueueName::new("mail").unwrap(),
                HistorySample {
                    at_ms,
                    desired,
                    actual,
                    recommended: desired,
                },
            )],
        };
        assert!(
            autoscale::publish(&dash.conn, &lease, &tick, &retention)
                .await
                .unwrap()
        );
    }
    let page = dash.get("/autoscaler", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    assert!(
        body.contains("Led by <span class=\"mono\">host-a</span>"),
        "{body}"
    );
    assert!(body.contains("1 → 5 (up)"));
    assert!(
        body.contains("backlog &lt;120&gt; over 10 per slot"),
        "reasons are escaped"
    );
    assert!(body.contains("120 waiting, 4 active"));
    assert!(body.contains("svg class=\"steps\""));
    assert!(body.contains("Up to 5 workers"));
}

#[tokio::test]
async fn dashboard_requests_are_counted_in_the_api_metrics() {
    let dash = TestDash::start().await;
    add(&dash.conn, "m", "n", json!({}), json!({})).await;
    let cookie = dash.sign_in(&dash.reader).await;
    assert_eq!(
        dash.get("/queues/m", Some(&cookie)).await.status,
        StatusCode::OK
    );
    let req = axum::http::Request::builder()
        .uri("/metrics")
        .header(header::AUTHORIZATION, format!("Bearer {}", dash.reader))
        .body(axum::body::Body::empty())
        .unwrap();
    let metrics = dash.send(req).await.body;
    assert!(
        metrics.contains(
            r#"drover_http_requests_total{method="GET",route="/queues/{queue}",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"route="/login",status="303""#),
        "{metrics}"
    );
}

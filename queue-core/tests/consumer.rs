//! The consumer against a real redis-server: every disposition lands in
//! Redis with BullMQ's semantics.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use queue_core::{Consumer, ConsumerOptions, Disposition, Failure, Settlement};
use serde_json::{Value, json};
use support::*;
use testkit::{Check, RedisServer, wait_until};

fn options(q: &str, concurrency: usize) -> ConsumerOptions {
    ConsumerOptions {
        drain_delay: Duration::from_secs(1),
        ..ConsumerOptions::new(queue(q), concurrency)
    }
}

async fn start<F>(
    conn: &queue_core::Connection,
    opts: ConsumerOptions,
    f: F,
) -> (Consumer, Arc<Recorder>)
where
    F: Fn(queue_core::ActiveJob) -> futures::future::BoxFuture<'static, Disposition>
        + Send
        + Sync
        + 'static,
{
    let recorder = Arc::new(Recorder::default());
    let consumer = Consumer::start(conn, opts, Arc::new(FnProcessor(f)), recorder.clone())
        .await
        .unwrap();
    (consumer, recorder)
}

#[tokio::test]
async fn completed_jobs_carry_their_return_value() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("done");
    let (consumer, _) = start(&conn, options("done", 4), |job| {
        let data = job.data().clone();
        Box::pin(async move { Disposition::Complete(json!({ "echo": data })) })
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(add(&conn, &q, "n", json!({ "i": i }), json!({})).await);
    }
    for (i, id) in ids.iter().enumerate() {
        server.wait_in("done", "completed", id).await;
        let h = server.job_hash("done", id).await;
        assert_eq!(h["returnvalue"], json!({ "echo": { "i": i } }).to_string());
        assert_eq!(h["atm"], "1");
    }
    consumer.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn failures_retry_with_fixed_backoff_then_fail_with_every_trace() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("flaky");
    let (consumer, recorder) = start(&conn, options("flaky", 1), |job| {
        let attempt = job.attempts_made() + 1;
        Box::pin(async move {
            Disposition::Fail(Failure {
                stack: Some(format!("Error: boom {attempt}\n    at handler")),
                ..Failure::new(format!("boom {attempt}"))
            })
        })
    })
    .await;
    let id = add(
        &conn,
        &q,
        "n",
        json!({}),
        json!({ "attempts": 3, "backoff": { "type": "fixed", "delay": 50 } }),
    )
    .await;
    server.wait_in("flaky", "failed", &id).await;
    let h = server.job_hash("flaky", &id).await;
    assert_eq!(h["atm"], "3", "three attempts made");
    assert_eq!(h["failedReason"], "boom 3");
    let traces: Vec<String> = serde_json::from_str(&h["stacktrace"]).unwrap();
    assert_eq!(
        traces,
        vec![
            "Error: boom 1\n    at handler",
            "Error: boom 2\n    at handler",
            "Error: boom 3\n    at handler"
        ]
    );
    // Each retry announced a due time 50 ms after it was written.
    let delays = server.delayed_events("flaky").await;
    assert_eq!(delays.len(), 2, "{delays:?}");
    for (written, due) in delays {
        assert!(
            due.abs_diff(written + 50) <= 20,
            "due {due} vs written {written}"
        );
    }
    let settled: Vec<Settlement> = recorder.settlements().into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        settled,
        vec![
            Settlement::Retrying { delay_ms: 50 },
            Settlement::Retrying { delay_ms: 50 },
            Settlement::Failed
        ]
    );
    consumer.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn jitter_written_by_another_client_is_honoured() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("jitter");
    // Add paused, then rewrite the stored options the way a Node producer
    // with `backoff: {type: 'fixed', delay: 400, jitter: 0.5}` stores them.
    let id = add(&conn, &q, "n", json!({}), json!({ "delay": 60_000 })).await;
    let mut r = server.conn().await;
    redis::cmd("HSET")
        .arg(format!("bull:jitter:{id}"))
        .arg("opts")
        .arg(r#"{"attempts":2,"backoff":{"type":"fixed","delay":400,"jitter":0.5}}"#)
        .query_async::<()>(&mut r)
        .await
        .unwrap();
    queue_core::admin::promote_job(&conn, &q, &id)
        .await
        .unwrap();
    let (consumer, recorder) = start(&conn, options("jitter", 1), |_| {
        Box::pin(async { Disposition::Fail(Failure::new("nope")) })
    })
    .await;
    server.wait_in("jitter", "failed", &id).await;
    let settled = recorder.settlements();
    let Settlement::Retrying { delay_ms } = settled[0].1 else {
        panic!("first attempt should retry: {settled:?}");
    };
    assert!(
        (200..400).contains(&delay_ms),
        "jittered delay {delay_ms} outside [200, 400)"
    );
    let h = server.job_hash("jitter", &id).await;
    assert_eq!(h["atm"], "2", "the manual retry counted its attempt once");
    let delays = server.delayed_events("jitter").await;
    // The job was added delayed (first event), then retried once.
    let (written, due) = *delays.last().unwrap();
    assert!(
        due.abs_diff(written + delay_ms) <= 20,
        "due {due} vs written {written} + {delay_ms}"
    );
    consumer.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn retry_after_overrides_backoff_and_unrecoverable_stops_retries() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("ra");
    let (consumer, recorder) = start(&conn, options("ra", 1), |job| {
        let first = job.attempts_made() == 0;
        Box::pin(async move {
            if first {
                Disposition::Fail(Failure {
                    retry_after: Some(Duration::from_millis(120)),
                    ..Failure::new("busy")
                })
            } else {
                Disposition::Fail(Failure {
                    unrecoverable: true,
                    ..Failure::new("bad input")
                })
            }
        })
    })
    .await;
    let id = add(
        &conn,
        &q,
        "n",
        json!({}),
        json!({ "attempts": 5, "backoff": { "type": "fixed", "delay": 60000 } }),
    )
    .await;
    server.wait_in("ra", "failed", &id).await;
    let h = server.job_hash("ra", &id).await;
    assert_eq!(
        h["atm"], "2",
        "stopped after the unrecoverable second attempt"
    );
    assert_eq!(h["failedReason"], "bad input");
    assert_eq!(
        recorder
            .settlements()
            .iter()
            .map(|(_, s)| *s)
            .collect::<Vec<_>>(),
        vec![Settlement::Retrying { delay_ms: 120 }, Settlement::Failed]
    );
    consumer.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn delay_until_reschedules_without_spending_an_attempt() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("later");
    let seen = Arc::new(AtomicUsize::new(0));
    let seen2 = seen.clone();
    let (consumer, _) = start(&conn, options("later", 1), move |job| {
        let n = seen2.fetch_add(1, Ordering::SeqCst);
        let made = job.attempts_made();
        Box::pin(async move {
            if n == 0 {
                Disposition::DelayUntil(SystemTime::now() + Duration::from_millis(300))
            } else {
                Disposition::Complete(json!({ "attempts_made_before": made }))
            }
        })
    })
    .await;
    let started = Instant::now();
    let id = add(&conn, &q, "n", json!({}), json!({ "attempts": 1 })).await;
    server.wait_in("later", "completed", &id).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    let h = server.job_hash("later", &id).await;
    assert_eq!(h["returnvalue"], r#"{"attempts_made_before":0}"#);
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    consumer.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn rate_limited_jobs_go_back_and_the_queue_rests() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("limited");
    let calls = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let calls2 = calls.clone();
    let (consumer, _) = start(&conn, options("limited", 1), move |_job| {
        let mut calls = calls2.lock().unwrap();
        calls.push(Instant::now());
        let first = calls.len() == 1;
        Box::pin(async move {
            if first {
                Disposition::RateLimited(Duration::from_millis(400))
            } else {
                Disposition::Complete(Value::Null)
            }
        })
    })
    .await;
    let id = add(&conn, &q, "n", json!({}), json!({})).await;
    server.wait_in("limited", "completed", &id).await;
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert!(
        calls[1] - calls[0] >= Duration::from_millis(350),
        "the worker rested: {:?}",
        calls[1] - calls[0]
    );
    let h = server.job_hash("limited", &id).await;
    assert_eq!(h["atm"], "1", "the rate-limited try spent no attempt");
    consumer.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn abandoned_jobs_are_handed_back_and_finished_elsewhere() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("handback");
    let (first, recorder) = start(&conn, options("handback", 3), |_| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Disposition::Complete(Value::Null)
        })
    })
    .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(add(&conn, &q, "n", json!({}), json!({})).await);
    }
    wait_until("3 jobs in flight", Duration::from_secs(10), || async {
        match first.in_flight() {
            3 => Check::Done(()),
            n => Check::NotYet(format!("{n} in flight")),
        }
    })
    .await;
    first.stop_fetching();
    first.abandon_in_flight();
    assert!(
        first
            .wait_idle(Instant::now() + Duration::from_secs(5))
            .await
    );
    for id in &ids {
        assert!(
            server.list("handback", "wait").await.contains(id),
            "{id} back in wait"
        );
        let h = server.job_hash("handback", id).await;
        assert_eq!(h.get("atm").map(String::as_str).unwrap_or("0"), "0");
    }
    assert!(
        recorder
            .settlements()
            .iter()
            .all(|(_, s)| *s == Settlement::HandedBack)
    );
    first.close(Duration::from_secs(5)).await;

    let (second, _) = start(&conn, options("handback", 3), |_| {
        Box::pin(async { Disposition::Complete(json!("done")) })
    })
    .await;
    for id in &ids {
        server.wait_in("handback", "completed", id).await;
        let h = server.job_hash("handback", id).await;
        assert_eq!(h["atm"], "1", "completed exactly once");
        assert_eq!(h["ats"], "2", "started twice: handed back once");
    }
    second.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn concurrency_changes_while_running() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("conc");
    let (consumer, _) = start(&conn, options("conc", 1), |_| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Disposition::Complete(Value::Null)
        })
    })
    .await;
    for _ in 0..6 {
        add(&conn, &q, "n", json!({}), json!({})).await;
    }
    let in_flight = |want: usize| {
        let consumer = &consumer;
        async move {
            wait_until(
                &format!("{want} in flight"),
                Duration::from_secs(10),
                || async {
                    match consumer.in_flight() {
                        n if n == want => Check::Done(()),
                        n => Check::NotYet(format!("{n} in flight")),
                    }
                },
            )
            .await
        }
    };
    in_flight(1).await;
    consumer.set_concurrency(4);
    assert_eq!(consumer.concurrency(), 4);
    in_flight(4).await;
    consumer.stop_fetching();
    consumer.abandon_in_flight();
    consumer.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_consumer_survives_a_redis_restart() {
    let mut server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("restart");
    let (consumer, _) = start(&conn, options("restart", 2), |job| {
        let data = job.data().clone();
        Box::pin(async move { Disposition::Complete(data) })
    })
    .await;
    let before = add(&conn, &q, "n", json!({ "when": "before" }), json!({})).await;
    server.wait_in("restart", "completed", &before).await;
    server.kill();
    server.restart().await;
    // The restarted server is empty; the same connection and consumer go
    // on once it answers again.
    let after = wait_until("enqueue after restart", Duration::from_secs(20), || async {
        let job = queue_core::producer::NewJob {
            name: "n".into(),
            data: json!({ "when": "after" }),
            opts: Default::default(),
        };
        match queue_core::producer::enqueue(&conn, &q, &job).await {
            Ok(id) => Check::Done(id),
            Err(e) => Check::NotYet(e.to_string()),
        }
    })
    .await;
    server.wait_in("restart", "completed", &after).await;
    consumer.close(Duration::from_secs(5)).await;
}

//! The worker pool: many queues, per-queue and live concurrency, rate
//! limits, heartbeats, and graceful shutdown that loses nothing and runs
//! nothing twice.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_worker::{HandlerRegistry, JobContext, JobError};
use queue_core::RateLimit;
use queue_core::registry;
use serde_json::{Value, json};
use support::*;
use testkit::{Check, RedisServer, wait_until};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Counts jobs inside a handler now and at most, per queue.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A handler that holds each job until the test releases a permit.
fn held(
    gauge: Arc<Gauge>,
    gate: Arc<Semaphore>,
) -> impl Fn(JobContext, Value) -> futures::future::BoxFuture<'static, Result<(), JobError>>
+ Send
+ Sync
+ 'static {
    move |_ctx, _| {
        let (gauge, gate) = (gauge.clone(), gate.clone());
        Box::pin(async move {
            gauge.enter();
            let permit = gate.acquire().await;
            gauge.leave();
            permit
                .map_err(|_| JobError::failed("gate closed"))?
                .forget();
            Ok(())
        })
    }
}

fn gated(name: &str, gauge: Arc<Gauge>, gate: Arc<Semaphore>) -> HandlerRegistry {
    let mut handlers = HandlerRegistry::new();
    handlers.on(name, held(gauge, gate));
    handlers
}

async fn wait_now(gauge: &Gauge, want: usize) {
    wait_until(
        &format!("{want} jobs in handlers"),
        Duration::from_secs(10),
        || async {
            match gauge.now.load(Ordering::SeqCst) {
                n if n == want => Check::Done(()),
                n => Check::NotYet(format!("{n} in handlers")),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn each_queue_gets_its_own_concurrency_and_it_changes_live() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let (ga, gb) = (Arc::new(Gauge::default()), Arc::new(Gauge::default()));
    let (gate_a, gate_b) = (Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0)));
    // Both queues share one registry; the job name picks the gauge.
    let mut handlers = gated("hold-a", ga.clone(), gate_a.clone());
    handlers.on("hold-b", held(gb.clone(), gate_b.clone()));
    let s = settings(
        vec![queue_settings("qa", 2), queue_settings("qb", 5)],
        Duration::from_secs(5),
    );
    let (pool, _, prom) = start(&conn, &s, handlers).await;
    for _ in 0..10 {
        add(&conn, "qa", "hold-a", json!({}), json!({})).await;
        add(&conn, "qb", "hold-b", json!({}), json!({})).await;
    }
    wait_now(&ga, 2).await;
    wait_now(&gb, 5).await;
    assert_eq!(pool.in_flight(), 7);
    assert_eq!(
        metric(&prom, "drover_worker_concurrency", &[("queue", "qb")]),
        5.0
    );

    // Raise qa to 4 while running: two more jobs start at once.
    assert!(pool.set_concurrency(&queue("qa"), 4));
    wait_now(&ga, 4).await;
    assert_eq!(pool.concurrency(&queue("qa")), Some(4));
    assert!(!pool.set_concurrency(&queue("not-mine"), 3));
    assert!(!pool.set_concurrency(&queue("qa"), 0));
    gate_a.add_permits(100);
    server
        .wait_count("qa", "completed", 10, Duration::from_secs(10))
        .await;
    assert_eq!(
        ga.max.load(Ordering::SeqCst),
        4,
        "qa never above its concurrency"
    );

    // Lower qb to 1: the five running jobs finish undisturbed, then only one
    // runs at a time.
    assert!(pool.set_concurrency(&queue("qb"), 1));
    gate_b.add_permits(5);
    server
        .wait_count("qb", "completed", 5, Duration::from_secs(10))
        .await;
    wait_now(&gb, 1).await;
    gb.max.store(1, Ordering::SeqCst);
    gate_b.add_permits(100);
    server
        .wait_count("qb", "completed", 10, Duration::from_secs(10))
        .await;
    assert_eq!(
        gb.max.load(Ordering::SeqCst),
        1,
        "one at a time after lowering"
    );
    pool.shutdown(CancellationToken::new()).await;
}

#[tokio::test]
async fn queue_rate_limits_space_out_job_starts() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let starts = Arc::new(Mutex::new(Vec::new()));
    let mut handlers = HandlerRegistry::new();
    handlers.on("tick", {
        let starts = starts.clone();
        move |_ctx: JobContext, _: Value| {
            starts.lock().unwrap().push(Instant::now());
            async { Ok::<_, JobError>(()) }
        }
    });
    let mut q = queue_settings("limited", 4);
    q.rate_limit = Some(RateLimit {
        max: 2,
        per: Duration::from_millis(500),
    });
    let (pool, _, _) = start(&conn, &settings(vec![q], Duration::from_secs(5)), handlers).await;
    for _ in 0..6 {
        add(&conn, "limited", "tick", json!({}), json!({})).await;
    }
    server
        .wait_count("limited", "completed", 6, Duration::from_secs(10))
        .await;
    let starts = starts.lock().unwrap().clone();
    // 6 jobs at 2 per 500 ms need at least two full windows after the
    // first: the last start is >= ~1 s after the first.
    let span = *starts.iter().max().unwrap() - *starts.iter().min().unwrap();
    assert!(
        span >= Duration::from_millis(900),
        "6 jobs started within {span:?}"
    );
    pool.shutdown(CancellationToken::new()).await;
}

#[tokio::test]
async fn heartbeats_show_the_worker_until_it_stops() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let mut handlers = HandlerRegistry::new();
    handlers.on("n", |_ctx: JobContext, _: Value| async {
        Ok::<_, JobError>(())
    });
    let s = settings(
        vec![queue_settings("h1", 3), queue_settings("h2", 1)],
        Duration::from_secs(5),
    );
    let (pool, _, _) = start(&conn, &s, handlers).await;
    let live = wait_until("a heartbeat", Duration::from_secs(10), || async {
        let live = registry::live_workers(&conn, Duration::from_secs(30), Duration::from_secs(60))
            .await
            .unwrap();
        if live.is_empty() {
            Check::NotYet("no worker registered".into())
        } else {
            Check::Done(live)
        }
    })
    .await;
    assert_eq!(live.len(), 1);
    let w = &live[0];
    assert_eq!(w.pid, std::process::id());
    let queues: Vec<(String, usize)> = w
        .queues
        .iter()
        .map(|q| (q.queue.clone(), q.concurrency))
        .collect();
    assert_eq!(queues, vec![("h1".to_string(), 3), ("h2".to_string(), 1)]);
    pool.shutdown(CancellationToken::new()).await;
    let after = registry::live_workers(&conn, Duration::from_secs(30), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(after.is_empty(), "deregistered on shutdown: {after:?}");
}

/// Handler side effects, recorded per job id at the moment the handler
/// completes its work.
type Effects = Arc<Mutex<HashMap<String, usize>>>;

fn sleeper(effects: Effects) -> HandlerRegistry {
    let mut handlers = HandlerRegistry::new();
    handlers.on("sleep", move |ctx: JobContext, data: Value| {
        let effects = effects.clone();
        async move {
            let ms = data["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            *effects
                .lock()
                .unwrap()
                .entry(ctx.id().to_string())
                .or_default() += 1;
            Ok::<_, JobError>(ms)
        }
    });
    handlers
}

#[tokio::test]
async fn shutdown_finishes_short_jobs_and_hands_long_ones_back() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let effects: Effects = Arc::default();
    // Enqueue first so the pool takes all ten at once, while the short
    // ones are still running.
    let mut short = Vec::new();
    let mut long = Vec::new();
    for _ in 0..5 {
        short.push(add(&conn, "sd", "sleep", json!({ "ms": 1000 }), json!({})).await);
        long.push(add(&conn, "sd", "sleep", json!({ "ms": 6000 }), json!({})).await);
    }
    let s = settings(vec![queue_settings("sd", 10)], Duration::from_millis(2500));
    let (first, first_metrics, _) = start(&conn, &s, sleeper(effects.clone())).await;
    wait_until("10 jobs in flight", Duration::from_secs(10), || async {
        match first.in_flight() {
            10 => Check::Done(()),
            n => Check::NotYet(format!("{n} in flight")),
        }
    })
    .await;
    let report = first.shutdown(CancellationToken::new()).await;
    assert!(!report.drained);
    assert_eq!(report.handed_back, 5);
    assert_eq!(first_metrics.handed_back(), 5);
    // The long jobs were handed back unfinished, not waited for.
    let done: Vec<String> = effects.lock().unwrap().keys().cloned().collect();
    assert_eq!(
        done.len(),
        5,
        "only the short jobs ran to the end: {done:?}"
    );
    assert!(done.iter().all(|id| short.contains(id)));
    for id in &short {
        server.wait_in("sd", "completed", id).await;
    }
    for id in &long {
        assert!(
            server.list("sd", "wait").await.contains(id),
            "{id} handed back to wait"
        );
    }

    // Another worker takes the handed-back jobs at once.
    let s = settings(vec![queue_settings("sd", 10)], Duration::from_secs(10));
    let (second, _, _) = start(&conn, &s, sleeper(effects.clone())).await;
    for id in &long {
        server.wait_in("sd", "completed", id).await;
    }
    second.shutdown(CancellationToken::new()).await;
    // Nothing lost, nothing run twice: every job's work completed exactly
    // once and BullMQ saw exactly one completion per job.
    let effects = effects.lock().unwrap().clone();
    assert_eq!(effects.len(), 10);
    assert!(effects.values().all(|n| *n == 1), "{effects:?}");
    let completions = server
        .events("sd")
        .await
        .into_iter()
        .filter(|(_, e)| e["event"] == "completed")
        .count();
    assert_eq!(completions, 10);
    for id in long.iter().chain(&short) {
        assert_eq!(server.job_hash("sd", id).await["atm"], "1", "job {id}");
    }
}

#[tokio::test]
async fn shutdown_that_drains_hands_nothing_back() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let effects: Effects = Arc::default();
    let s = settings(vec![queue_settings("calm", 4)], Duration::from_secs(10));
    let (pool, _, _) = start(&conn, &s, sleeper(effects.clone())).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(add(&conn, "calm", "sleep", json!({ "ms": 200 }), json!({})).await);
    }
    wait_until("4 in flight", Duration::from_secs(10), || async {
        match pool.in_flight() {
            4 => Check::Done(()),
            n => Check::NotYet(format!("{n} in flight")),
        }
    })
    .await;
    let report = pool.shutdown(CancellationToken::new()).await;
    assert!(report.drained, "{report:?}");
    assert_eq!(report.handed_back, 0);
    for id in &ids {
        assert!(server.zset("calm", "completed").await.contains(id));
    }
}

#[tokio::test]
async fn a_hurried_shutdown_hands_back_at_once() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let effects: Effects = Arc::default();
    let s = settings(vec![queue_settings("hurry", 2)], Duration::from_secs(60));
    let (pool, _, _) = start(&conn, &s, sleeper(effects.clone())).await;
    let id = add(&conn, "hurry", "sleep", json!({ "ms": 60000 }), json!({})).await;
    wait_until("in flight", Duration::from_secs(10), || async {
        match pool.in_flight() {
            1 => Check::Done(()),
            n => Check::NotYet(format!("{n} in flight")),
        }
    })
    .await;
    let hurry = CancellationToken::new();
    hurry.cancel();
    let report = pool.shutdown(hurry).await;
    assert_eq!(report.handed_back, 1);
    assert!(report.elapsed < Duration::from_secs(10), "{report:?}");
    assert!(server.list("hurry", "wait").await.contains(&id));
    assert!(effects.lock().unwrap().is_empty());
}

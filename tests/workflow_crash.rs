//! Workflows under fire, as processes: `drover scheduler` (the
//! orchestrator) on PostgreSQL and worker processes running Rust handlers
//! that record their side effects in a table, SIGKILLed at random moments.
//! Every run completes, every step's side effect is made under one
//! idempotency key (repeats of a step in flight reuse it), and a step that
//! checkpoints resumes from its last checkpoint.
//!
//! The worker processes are this test binary itself, re-run with
//! `DROVER_TEST_WORKFLOW_WORKER` set (see `workflow_worker_process`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking
#![allow(clippy::print_stderr)] // figures of the run

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_worker::{
    HandlerRegistry, JobContext, JobError, QueueSettings, WorkerIdentity, WorkerMetrics,
    WorkerPool, WorkerSettings,
};
use queue_core::store::{RunState, Store, StoreConfig};
use queue_core::workflow::{Workflow, WorkflowDefinition};
use queue_core::{Connection, QueueName, RedisSettings, now_ms};
use serde_json::{Value, json};
use sqlx::Connection as _;
use support::*;
use testkit::postgres::TestDatabase;
use testkit::{Check, ChildGuard, RedisServer, wait_until};

const ROLE: &str = "DROVER_TEST_WORKFLOW_WORKER";

// ---------------------------------------------------------------------------
// The worker process.

async fn side_effect(db: &str, ctx: &JobContext) -> Result<(), JobError> {
    let step = ctx
        .workflow_step()
        .ok_or_else(|| JobError::unrecoverable("not a workflow step"))?;
    let mut pg = sqlx::PgConnection::connect(db)
        .await
        .map_err(|e| JobError::failed(e.to_string()))?;
    sqlx::query(
        "INSERT INTO side_effects (key, run, step, item, attempt, count) VALUES ($1, $2, $3, $4, $5, 1) \
         ON CONFLICT (key) DO UPDATE SET count = side_effects.count + 1",
    )
    .bind(ctx.idempotency_key())
    .bind(&step.run)
    .bind(&step.step)
    .bind(step.item.map_or(-1, |i| i as i64))
    .bind(step.attempt as i64)
    .execute(&mut pg)
    .await
    .map_err(|e| JobError::failed(e.to_string()))?;
    pg.close().await.ok();
    Ok(())
}

/// Some work: a few tens of ms, so kills land inside handlers.
async fn work() {
    tokio::time::sleep(Duration::from_millis(fastrand::u64(10..120))).await;
}

fn handlers(db: String) -> HandlerRegistry {
    let mut h = HandlerRegistry::new();
    let d = db.clone();
    h.on("prepare", move |ctx: JobContext, data: Value| {
        let d = d.clone();
        async move {
            work().await;
            side_effect(&d, &ctx).await?;
            let n = data["n"].as_u64().unwrap_or(20);
            Ok(json!({ "parts": (0..n).collect::<Vec<u64>>() }))
        }
    });
    let d = db.clone();
    h.on("fan", move |ctx: JobContext, data: Value| {
        let d = d.clone();
        async move {
            work().await;
            side_effect(&d, &ctx).await?;
            Ok(json!({ "v": data["part"].as_u64().unwrap_or(0) * 2 }))
        }
    });
    for name in ["collect", "enrich", "report", "notify"] {
        let d = db.clone();
        h.on(name, move |ctx: JobContext, _data: Value| {
            let d = d.clone();
            async move {
                work().await;
                side_effect(&d, &ctx).await?;
                Ok(json!({ "done": ctx.name() }))
            }
        });
    }
    let d = db;
    h.on("crunch", move |ctx: JobContext, data: Value| {
        let d = d.clone();
        async move { crunch(&d, &ctx, &data).await }
    });
    h
}

/// Processes items 0..total in chunks of 100, checkpointing every 1,000;
/// every processed item is counted in `processed`.
async fn crunch(db: &str, ctx: &JobContext, data: &Value) -> Result<Value, JobError> {
    let total = data["total"].as_u64().unwrap_or(10_000);
    let start = ctx
        .last_checkpoint()
        .await?
        .and_then(|c| c["next"].as_u64())
        .unwrap_or(0);
    let mut pg = sqlx::PgConnection::connect(db)
        .await
        .map_err(|e| JobError::failed(e.to_string()))?;
    let mut next = start;
    while next < total {
        let end = (next + 100).min(total);
        sqlx::query(
            "INSERT INTO processed (n, count) SELECT g, 1 FROM generate_series($1::bigint, $2::bigint) g \
             ON CONFLICT (n) DO UPDATE SET count = processed.count + 1",
        )
        .bind(next as i64)
        .bind(end as i64 - 1)
        .execute(&mut pg)
        .await
        .map_err(|e| JobError::failed(e.to_string()))?;
        tokio::time::sleep(Duration::from_millis(15)).await;
        next = end;
        if next % 1_000 == 0 {
            ctx.checkpoint(json!({ "next": next })).await?;
        }
    }
    Ok(json!({ "started_at": start, "total": total }))
}

/// Not a test of its own: the body of the worker processes the tests
/// start (it returns at once when run as a test).
#[tokio::test]
async fn workflow_worker_process() {
    let Ok(db) = std::env::var(ROLE) else {
        return;
    };
    let redis = std::env::var("REDIS_URL").unwrap();
    let conn = Connection::connect(RedisSettings::for_url(redis).unwrap())
        .await
        .unwrap();
    let settings = WorkerSettings {
        queues: vec![QueueSettings {
            name: QueueName::new("wf").unwrap(),
            concurrency: 8,
            job_timeout: None,
            // Short locks: a killed worker's jobs come back within a second.
            lock_duration: Duration::from_millis(1_000),
            stalled_interval: Duration::from_millis(500),
            max_stalled_count: 1_000,
            rate_limit: None,
            keep_completed: drover_worker::DEFAULT_KEEP_COMPLETED,
            keep_failed: drover_worker::DEFAULT_KEEP_FAILED,
        }],
        shutdown_timeout: Duration::from_secs(5),
        heartbeat_interval: Duration::from_secs(1),
        autoscaler_poll: None,
    };
    let _pool = WorkerPool::start(
        &conn,
        &settings,
        handlers(db),
        Arc::new(WorkerMetrics::unregistered()),
        WorkerIdentity::current(),
    )
    .await
    .unwrap();
    eprintln!("worker ready");
    // Runs until killed.
    std::future::pending::<()>().await;
}

// ---------------------------------------------------------------------------
// The tests.

struct Stack {
    server: RedisServer,
    drover: Drover,
    db: TestDatabase,
    store: Store,
}

impl Stack {
    async fn start() -> Self {
        let server = RedisServer::start().await;
        let drover = Drover::new(&server);
        let db = TestDatabase::create().await;
        let mut pg = sqlx::PgConnection::connect(&db.url).await.unwrap();
        for ddl in [
            "CREATE TABLE side_effects (key TEXT PRIMARY KEY, run TEXT NOT NULL, step TEXT NOT NULL, \
             item BIGINT NOT NULL, attempt BIGINT NOT NULL, count BIGINT NOT NULL)",
            "CREATE TABLE processed (n BIGINT PRIMARY KEY, count BIGINT NOT NULL)",
        ] {
            sqlx::query(ddl).execute(&mut pg).await.unwrap();
        }
        pg.close().await.ok();
        let settings = StoreConfig {
            url: Some(db.url.clone()),
            ..StoreConfig::default()
        }
        .resolve(std::path::Path::new("."))
        .unwrap();
        let store = Store::connect(&settings).await.unwrap();
        store.migrate().await.unwrap();
        Self {
            server,
            drover,
            db,
            store,
        }
    }

    fn orchestrator(&self, label: &str) -> ChildGuard {
        self.orchestrator_with(label, &[])
    }

    fn orchestrator_with(&self, label: &str, extra: &[&str]) -> ChildGuard {
        let mut args = vec!["scheduler"];
        args.extend_from_slice(extra);
        self.drover
            .spawn_env(label, &args, &[("DATABASE_URL", self.db.url.as_str())])
    }

    fn worker(&self, label: &str) -> ChildGuard {
        let log = std::fs::File::create(self.drover.log_path(label)).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "workflow_worker_process", "--nocapture"])
            .env(ROLE, &self.db.url)
            .env("REDIS_URL", self.server.url())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        ChildGuard::new(format!("workflow worker ({label})"), child)
    }

    async fn register(&self, kind: &str, def: Value) -> Workflow {
        let def: WorkflowDefinition = serde_json::from_value(def).unwrap();
        let wf = Workflow::new(kind, def).unwrap();
        self.store
            .put_workflow_type(&wf, "test", now_ms())
            .await
            .unwrap();
        wf
    }
}

fn six_steps() -> Value {
    json!({"steps": [
        {"id": "prepare", "queue": "wf", "input": {"n": "{{ input.n }}"}},
        {"id": "fan", "queue": "wf", "depends_on": ["prepare"],
         "for_each": "{{ steps.prepare.output.parts }}", "input": {"part": "{{ item }}"}},
        {"id": "collect", "queue": "wf", "depends_on": ["fan"], "input": {"all": "{{ steps.fan.output }}"}},
        {"id": "enrich", "queue": "wf", "depends_on": ["prepare"], "input": {}},
        {"id": "report", "queue": "wf", "depends_on": ["collect", "enrich"], "input": {}},
        {"id": "notify", "queue": "wf", "depends_on": ["report"], "input": {}},
    ]})
}

#[tokio::test]
async fn runs_complete_and_side_effects_happen_once_through_30_random_kills() {
    let stack = Stack::start().await;
    let wf = stack.register("chaos", six_steps()).await;
    let mut orchestrator = stack.orchestrator("orchestrator-0");
    let mut workers = vec![stack.worker("worker-a-0"), stack.worker("worker-b-0")];

    let mut runs = Vec::new();
    let mut kills = BTreeMap::<&str, usize>::new();
    let started = Instant::now();
    for round in 1..=30 {
        // A new run now and then, so kills land in every phase of runs.
        if round % 3 == 1 {
            let (run, _) = stack
                .store
                .start_run(&wf, &json!({"n": 20}), None, now_ms())
                .await
                .unwrap();
            runs.push(run.id);
        }
        // Chaos timing, not a wait for a state.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(100..500))).await;
        match fastrand::u8(0..4) {
            0 => {
                orchestrator.kill();
                orchestrator = stack.orchestrator(&format!("orchestrator-{round}"));
                *kills.entry("orchestrator").or_default() += 1;
            }
            1 | 2 => {
                let i = fastrand::usize(0..workers.len());
                workers[i].kill();
                workers[i] = stack.worker(&format!("worker-{i}-{round}"));
                *kills.entry("one worker").or_default() += 1;
            }
            _ => {
                orchestrator.kill();
                for w in &mut workers {
                    w.kill();
                }
                orchestrator = stack.orchestrator(&format!("orchestrator-{round}"));
                workers = vec![
                    stack.worker(&format!("worker-a-{round}")),
                    stack.worker(&format!("worker-b-{round}")),
                ];
                *kills.entry("everything").or_default() += 1;
            }
        }
    }
    let chaos = started.elapsed();

    // Every run completes.
    for id in &runs {
        wait_until("run completed", Duration::from_secs(120), || async {
            let d = stack.store.get_run(id).await.unwrap().unwrap();
            if d.run.state == RunState::Completed {
                Check::Done(())
            } else {
                Check::NotYet(format!("{:?} {:?}", d.run.state, d.run.error))
            }
        })
        .await;
    }

    // Every unit's side effect was made under exactly one key, the one of
    // its first attempt; repeats (a step in flight when its worker died)
    // reused it.
    let mut pg = sqlx::PgConnection::connect(&stack.db.url).await.unwrap();
    let rows: Vec<(String, String, String, i64, i64, i64)> =
        sqlx::query_as("SELECT key, run, step, item, attempt, count FROM side_effects")
            .fetch_all(&mut pg)
            .await
            .unwrap();
    let mut keys_per_unit = BTreeMap::<(String, String, i64), BTreeSet<String>>::new();
    let mut repeats = 0;
    for (key, run, step, item, attempt, count) in &rows {
        assert_eq!(*attempt, 1, "{key}: no run was retried");
        keys_per_unit
            .entry((run.clone(), step.clone(), *item))
            .or_default()
            .insert(key.clone());
        repeats += count - 1;
    }
    let expected_units = runs.len() * (5 + 20);
    assert_eq!(
        keys_per_unit.len(),
        expected_units,
        "a unit without a side effect, or a stray one"
    );
    for (unit, keys) in &keys_per_unit {
        assert_eq!(keys.len(), 1, "{unit:?} ran under several keys: {keys:?}");
    }
    for id in &runs {
        let d = stack.store.get_run(id).await.unwrap().unwrap();
        for s in &d.steps {
            assert_eq!(s.attempt, 1, "{s:?}");
        }
    }
    eprintln!(
        "{} runs, {} units; {} kills in {:.1}s ({kills:?}); {repeats} side effect(s) repeated in flight under their own key",
        runs.len(),
        expected_units,
        kills.values().sum::<usize>(),
        chaos.as_secs_f64()
    );
}

#[tokio::test]
async fn a_killed_step_resumes_from_its_last_checkpoint() {
    let stack = Stack::start().await;
    let wf = stack
        .register(
            "long",
            json!({"steps": [{"id": "crunch", "queue": "wf", "input": {"total": 10_000}}]}),
        )
        .await;
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let _orchestrator = stack.orchestrator_with("orchestrator", &["--metrics-addr", &metrics_addr]);
    let mut worker = stack.worker("worker-1");
    let (run, _) = stack
        .store
        .start_run(&wf, &json!({}), None, now_ms())
        .await
        .unwrap();
    let conn = Connection::connect(RedisSettings::for_url(stack.server.url()).unwrap())
        .await
        .unwrap();
    let step = queue_core::workflow::StepRef {
        run: run.id.clone(),
        step: "crunch".into(),
        item: None,
        attempt: 1,
    };
    let checkpoint = || async {
        queue_core::workflow::load_checkpoint(&conn, &step)
            .await
            .unwrap()
            .and_then(|c| c["next"].as_u64())
            .unwrap_or(0)
    };
    wait_until("checkpoint 3000 saved", Duration::from_secs(60), || async {
        let at = checkpoint().await;
        if at >= 3_000 {
            Check::Done(())
        } else {
            Check::NotYet(format!("at {at}"))
        }
    })
    .await;
    worker.kill();
    let at_kill = checkpoint().await;
    let _worker = stack.worker("worker-2");
    let done = wait_until("run completed", Duration::from_secs(60), || async {
        let d = stack.store.get_run(&run.id).await.unwrap().unwrap();
        if d.run.state == RunState::Completed {
            Check::Done(d)
        } else {
            Check::NotYet(format!("{:?}", d.run.state))
        }
    })
    .await;
    let output = &done.steps[0].output.as_ref().unwrap();
    assert_eq!(
        output["started_at"], at_kill,
        "the second run started at the checkpoint"
    );
    assert_eq!(done.steps[0].checkpoint.as_ref().unwrap()["next"], 10_000);

    let mut pg = sqlx::PgConnection::connect(&stack.db.url).await.unwrap();
    let counts: Vec<(i64, i64)> = sqlx::query_as("SELECT n, count FROM processed ORDER BY n")
        .fetch_all(&mut pg)
        .await
        .unwrap();
    assert_eq!(counts.len(), 10_000, "every item processed");
    let at_kill = at_kill as i64;
    let before: Vec<_> = counts
        .iter()
        .filter(|(n, c)| *n < at_kill && *c != 1)
        .collect();
    assert!(
        before.is_empty(),
        "items before the checkpoint were processed again: {before:?}"
    );
    let again = counts.iter().filter(|(_, c)| *c > 1).count();
    assert!(
        again <= 1_000,
        "only the items after the last checkpoint repeat ({again})"
    );
    eprintln!("killed at checkpoint {at_kill}; {again} item(s) after it were processed twice");

    // The orchestrator's metrics saw the step and the run.
    let text = http_client()
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "drover_workflow_step_duration_seconds_count 1",
        "drover_workflow_orchestration_lag_seconds_count 1",
        "drover_workflow_runs_finished_total{state=\"completed\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

//! The workflow engine against real Redis, SQLite and PostgreSQL: runs a
//! DAG with a fan-out to completion through real BullMQ jobs, fails and
//! retries from the failed step only, cancels, times out, and shares runs
//! between two orchestrators on PostgreSQL without dispatching a step
//! twice.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_scheduler::Orchestrator;
use futures::future::BoxFuture;
use queue_core::store::{RunState, StepState, Store, StoreConfig};
use queue_core::workflow::{StepRef, Workflow, WorkflowDefinition};
use queue_core::{
    ActiveJob, Connection, Consumer, ConsumerOptions, Disposition, Failure, Processor, QueueName,
    now_ms,
};
use serde_json::{Value, json};
use support::{Quiet, connect, sqlite_store};
use testkit::postgres::TestDatabase;
use testkit::{Check, RedisServer, wait_until};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(60);

fn etl() -> Workflow {
    let def: WorkflowDefinition = serde_json::from_value(json!({
        "steps": [
            {"id": "fetch", "queue": "wf", "input": {"n": "{{ input.n }}"}},
            {"id": "square", "queue": "wf", "depends_on": ["fetch"],
             "for_each": "{{ steps.fetch.output.parts }}",
             "input": {"x": "{{ item }}", "i": "{{ index }}"}},
            {"id": "sum", "queue": "wf", "depends_on": ["square"],
             "input": {"squares": "{{ steps.square.output }}"}},
            {"id": "notify", "queue": "wf", "depends_on": ["sum", "fetch"],
             "input": {"text": "{{ run.type }} total {{ steps.sum.output.total }} of {{ input.n }}"}},
        ]
    }))
    .unwrap();
    Workflow::new("etl", def).unwrap()
}

/// Runs the test's step handlers; `fail_sum` makes `sum` fail for good.
struct Steps {
    fail_sum: AtomicBool,
    seen: Mutex<Vec<Value>>,
}

impl Processor for Steps {
    fn process(&self, job: ActiveJob) -> BoxFuture<'static, Disposition> {
        let data = job.data().clone();
        self.seen.lock().unwrap().push(data.clone());
        let fail = self.fail_sum.load(Ordering::SeqCst);
        Box::pin(async move {
            let out = match job.name() {
                "fetch" => {
                    let n = data["n"].as_u64().unwrap();
                    json!({ "parts": (1..=n).collect::<Vec<u64>>() })
                }
                "square" => {
                    let x = data["x"].as_u64().unwrap();
                    json!({ "sq": x * x, "i": data["i"] })
                }
                "sum" if fail => {
                    return Disposition::Fail(Failure {
                        unrecoverable: true,
                        ..Failure::new("sum is broken today")
                    });
                }
                "sum" => {
                    let total: u64 = data["squares"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s["sq"].as_u64().unwrap())
                        .sum();
                    json!({ "total": total })
                }
                "notify" => json!({ "sent": data["text"] }),
                other => panic!("unexpected step {other}"),
            };
            Disposition::Complete(out)
        })
    }
}

async fn workers(conn: &Connection, steps: Arc<Steps>) -> Consumer {
    let opts = ConsumerOptions {
        drain_delay: Duration::from_millis(200),
        ..ConsumerOptions::new(QueueName::new("wf").unwrap(), 8)
    };
    Consumer::start(conn, opts, steps, Arc::new(Quiet))
        .await
        .unwrap()
}

fn orchestrate(
    conn: &Connection,
    store: &Store,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let o = Orchestrator::new(conn.clone(), store.clone(), None);
    let s = stop.clone();
    (stop, tokio::spawn(async move { o.run(s).await }))
}

async fn wait_state(store: &Store, run: &str, state: RunState) -> queue_core::store::RunDetail {
    wait_until(&format!("run {state}"), DEADLINE, || async {
        let d = store.get_run(run).await.unwrap().unwrap();
        if d.run.state == state {
            Check::Done(d)
        } else {
            Check::NotYet(format!("{:?} {:?}", d.run.state, d.run.error))
        }
    })
    .await
}

#[tokio::test]
async fn a_dag_with_fan_out_runs_to_completion_and_retries_only_what_failed() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let wf = etl();
    store
        .put_workflow_type(&wf, "test", now_ms())
        .await
        .unwrap();
    let steps = Arc::new(Steps {
        fail_sum: AtomicBool::new(true),
        seen: Mutex::new(Vec::new()),
    });
    let consumer = workers(&conn, steps.clone()).await;
    let (stop, orchestrator) = orchestrate(&conn, &store);

    let (run, created) = store
        .start_run(&wf, &json!({"n": 20}), Some("k1"), now_ms())
        .await
        .unwrap();
    assert!(created);
    let failed = wait_state(&store, &run.id, RunState::Failed).await;
    assert!(
        failed
            .run
            .error
            .as_deref()
            .unwrap()
            .contains("step sum failed: sum is broken today")
    );
    // The fan-out ran 20 items, each with its own data and context.
    let items: Vec<_> = failed
        .steps
        .iter()
        .filter(|s| s.step == "square" && s.item.is_some())
        .collect();
    assert_eq!(items.len(), 20);
    assert!(
        items
            .iter()
            .all(|s| s.state == StepState::Completed && s.attempt == 1)
    );
    let fan_in = failed
        .steps
        .iter()
        .find(|s| s.step == "square" && s.item.is_none())
        .unwrap();
    let squares = fan_in.output.as_ref().unwrap().as_array().unwrap();
    assert_eq!(squares.len(), 20);
    for (i, s) in squares.iter().enumerate() {
        assert_eq!(s["i"], i as u64, "fan-in keeps item order");
        assert_eq!(s["sq"], (i as u64 + 1).pow(2));
    }
    let seen_square = steps
        .seen
        .lock()
        .unwrap()
        .iter()
        .find(|d| d.get("x") == Some(&json!(3)))
        .cloned()
        .unwrap();
    let ctx = &seen_square["_workflow"];
    assert_eq!(ctx["run"], run.id.as_str());
    assert_eq!(ctx["step"], "square");
    assert_eq!(ctx["item"], 2);
    assert_eq!(ctx["idempotency_key"], format!("{}:square[2]:1", run.id));
    assert!(
        failed.steps.iter().all(|s| s.step != "notify"),
        "notify never became ready"
    );

    // Retry runs sum again (attempt 2) and what follows, nothing before.
    let before = steps.seen.lock().unwrap().len();
    steps.fail_sum.store(false, Ordering::SeqCst);
    store.retry_run(&run.id, now_ms()).await.unwrap();
    let done = wait_state(&store, &run.id, RunState::Completed).await;
    let ran_again: Vec<String> = steps.seen.lock().unwrap()[before..]
        .iter()
        .map(|d| d["_workflow"]["step"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ran_again, ["sum", "notify"]);
    let sum = done.steps.iter().find(|s| s.step == "sum").unwrap();
    assert_eq!(sum.attempt, 2);
    assert_eq!(sum.output.as_ref().unwrap()["total"], 2870);
    assert_eq!(
        done.run.output.as_ref().unwrap()["notify"]["sent"],
        "etl total 2870 of 20"
    );

    // An idempotent start answers the same run.
    let (again, created) = store
        .start_run(&wf, &json!({"n": 20}), Some("k1"), now_ms())
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.id, run.id);

    // Events tell the story in order.
    let events = store
        .list_workflow_events(0, Some(&run.id), 1000)
        .await
        .unwrap();
    let run_states: Vec<&str> = events
        .iter()
        .filter(|e| e.step.is_none())
        .map(|e| e.state.as_str())
        .collect();
    assert_eq!(
        run_states,
        [
            "pending",
            "running",
            "failed",
            "pending",
            "running",
            "completed"
        ]
    );

    stop.cancel();
    orchestrator.await.unwrap();
    consumer.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn cancel_stops_dispatching_and_timeouts_fail_the_run() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let wf = etl();
    let (stop, orchestrator) = orchestrate(&conn, &store);

    // No workers: the first step's job waits in Redis.
    let (run, _) = store
        .start_run(&wf, &json!({"n": 3}), None, now_ms())
        .await
        .unwrap();
    let job = StepRef {
        run: run.id.clone(),
        step: "fetch".into(),
        item: None,
        attempt: 1,
    }
    .job_id();
    // The job is added to Redis after the store records the dispatch, so
    // wait for both.
    wait_until("fetch dispatched and its job waiting", DEADLINE, || async {
        let d = store.get_run(&run.id).await.unwrap().unwrap();
        let waiting = server.list("wf", "wait").await;
        match d.steps.first() {
            Some(s) if s.state == StepState::Dispatched && waiting.contains(&job) => {
                Check::Done(())
            }
            other => Check::NotYet(format!("{other:?} {waiting:?}")),
        }
    })
    .await;
    store.cancel_run(&run.id, now_ms()).await.unwrap();
    wait_until("the waiting job removed", DEADLINE, || async {
        let d = store.get_run(&run.id).await.unwrap().unwrap();
        let waiting = server.list("wf", "wait").await;
        if d.steps[0].state == StepState::Cancelled && !waiting.contains(&job) {
            Check::Done(())
        } else {
            Check::NotYet(format!("{:?} {waiting:?}", d.steps[0].state))
        }
    })
    .await;
    assert!(
        store.cancel_run(&run.id, now_ms()).await.is_err(),
        "cancelled twice"
    );

    // A run that outlives its timeout fails and its steps are cancelled.
    let mut def = wf.definition().clone();
    def.timeout_ms = Some(300);
    let quick = Workflow::new("quick", def).unwrap();
    let (run, _) = store
        .start_run(&quick, &json!({"n": 3}), None, now_ms())
        .await
        .unwrap();
    let failed = wait_state(&store, &run.id, RunState::Failed).await;
    assert!(
        failed
            .run
            .error
            .as_deref()
            .unwrap()
            .starts_with("timed out after 300 ms")
    );
    assert!(failed.steps.iter().all(|s| s.state == StepState::Cancelled));

    stop.cancel();
    orchestrator.await.unwrap();
}

#[tokio::test]
async fn two_orchestrators_on_postgres_never_dispatch_a_step_twice() {
    two_orchestrators_share_runs(false).await;
}

/// The same through PgBouncer in transaction mode (`[store]
/// transaction_pooling`): the engine's transactions, row locks and
/// statements hold there too.
#[tokio::test]
async fn two_orchestrators_through_pgbouncer_never_dispatch_a_step_twice() {
    two_orchestrators_share_runs(true).await;
}

async fn two_orchestrators_share_runs(through_pgbouncer: bool) {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let db = TestDatabase::create().await;
    let bouncer = if through_pgbouncer {
        Some(testkit::PgBouncer::start(2).await)
    } else {
        None
    };
    let settings = StoreConfig {
        url: Some(
            bouncer
                .as_ref()
                .map_or_else(|| db.url.clone(), |b| b.url_for(&db.url)),
        ),
        transaction_pooling: through_pgbouncer,
        migrate_url: through_pgbouncer.then(|| db.url.clone()),
        ..StoreConfig::default()
    }
    .resolve(std::path::Path::new("."))
    .unwrap();
    let store = Store::connect(&settings).await.unwrap();
    store.migrate().await.unwrap();
    let wf = etl();
    let steps = Arc::new(Steps {
        fail_sum: AtomicBool::new(false),
        seen: Mutex::new(Vec::new()),
    });
    let consumer = workers(&conn, steps.clone()).await;
    let (stop_a, a) = orchestrate(&conn, &store);
    let other = Store::connect(&settings).await.unwrap();
    let (stop_b, b) = orchestrate(&conn, &other);

    let mut ids = Vec::new();
    for i in 0..10 {
        let (run, _) = store
            .start_run(&wf, &json!({"n": 5 + i}), None, now_ms())
            .await
            .unwrap();
        ids.push(run.id);
    }
    for id in &ids {
        wait_state(&store, id, RunState::Completed).await;
    }
    // Every step job was added once: BullMQ emits `added` per new job and
    // `duplicated` for an add of an existing id.
    let mut added: HashMap<String, usize> = HashMap::new();
    for (_, e) in server.events("wf").await {
        if e.get("event").map(String::as_str) == Some("added") {
            *added.entry(e["jobId"].clone()).or_insert(0) += 1;
        }
    }
    let twice: Vec<_> = added.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{twice:?}");
    // Each handler ran once per unit.
    let runs_of_units = steps.seen.lock().unwrap().len();
    let units: usize = (0..10).map(|i| 1 + (5 + i) + 1 + 1).sum();
    assert_eq!(runs_of_units, units);

    stop_a.cancel();
    stop_b.cancel();
    a.await.unwrap();
    b.await.unwrap();
    consumer.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn max_concurrent_runs_holds_the_rest_pending() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let mut def = etl().definition().clone();
    def.max_concurrent_runs = Some(1);
    let one_at_a_time = Workflow::new("serial", def).unwrap();
    store
        .put_workflow_type(&one_at_a_time, "test", now_ms())
        .await
        .unwrap();
    let (stop, orchestrator) = orchestrate(&conn, &store);
    let mut ids = Vec::new();
    for n in [2, 3, 4] {
        let (run, _) = store
            .start_run(&one_at_a_time, &json!({"n": n}), None, now_ms())
            .await
            .unwrap();
        ids.push(run.id);
    }
    // Without workers the first run to take the slot keeps it.
    wait_until("one run running", DEADLINE, || async {
        let running = store
            .list_runs(Some("serial"), Some(RunState::Running), 10, None)
            .await
            .unwrap();
        if running.len() == 1 {
            Check::Done(())
        } else {
            Check::NotYet(format!("{running:?}"))
        }
    })
    .await;
    let pending = store
        .list_runs(Some("serial"), Some(RunState::Pending), 10, None)
        .await
        .unwrap();
    assert_eq!(pending.len(), 2);
    // With workers, all three finish, never two at once.
    let steps = Arc::new(Steps {
        fail_sum: AtomicBool::new(false),
        seen: Mutex::new(Vec::new()),
    });
    let consumer = workers(&conn, steps).await;
    for id in &ids {
        wait_state(&store, id, RunState::Completed).await;
    }
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for id in &ids {
        let d = store.get_run(id).await.unwrap().unwrap();
        spans.push((d.run.started_at_ms.unwrap(), d.run.finished_at_ms.unwrap()));
    }
    spans.sort_unstable();
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "two runs overlapped: {spans:?}");
    }
    stop.cancel();
    orchestrator.await.unwrap();
    consumer.close(Duration::from_secs(5)).await;
}

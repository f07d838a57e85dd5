//! The workflow engine on a real 3-master Redis Cluster: a run whose steps
//! live on two hash-tagged queues in different slots completes, so the
//! engine's reads of jobs and checkpoints, which span slots, work there.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use std::sync::Arc;
use std::time::Duration;

use drover_scheduler::Orchestrator;
use futures::future::BoxFuture;
use queue_core::store::RunState;
use queue_core::workflow::{Workflow, WorkflowDefinition};
use queue_core::{
    ActiveJob, Connection, Consumer, ConsumerOptions, Disposition, Processor, QueueName,
    RedisConfig, now_ms,
};
use serde_json::json;
use support::{Quiet, sqlite_store};
use testkit::{Check, RedisCluster, wait_until};
use tokio_util::sync::CancellationToken;

/// Doubles `x` (step `double`), then adds one (step `inc`).
struct Steps;

impl Processor for Steps {
    fn process(&self, job: ActiveJob) -> BoxFuture<'static, Disposition> {
        let data = job.data().clone();
        let name = job.name().to_owned();
        Box::pin(async move {
            let x = data["x"].as_u64().unwrap();
            Disposition::Complete(match name.as_str() {
                "double" => json!({ "x": x * 2 }),
                _ => json!({ "x": x + 1 }),
            })
        })
    }
}

#[tokio::test]
async fn a_run_over_queues_in_different_slots_completes() {
    let cluster = RedisCluster::start(3).await;
    let conn = Connection::connect(
        RedisConfig {
            cluster_nodes: cluster.urls(),
            ..RedisConfig::default()
        }
        .resolve()
        .unwrap(),
    )
    .await
    .unwrap();
    let first = cluster.master_for_key(0, "bull:{wf-a}:id").await;
    let second = cluster.master_for_key(0, "bull:{wf-b}:id").await;
    assert_ne!(first, second, "the two queues live on different masters");

    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let def: WorkflowDefinition = serde_json::from_value(json!({
        "steps": [
            {"id": "double", "queue": "{wf-a}", "input": {"x": "{{ input.x }}"}},
            {"id": "inc", "queue": "{wf-b}", "depends_on": ["double"],
             "input": {"x": "{{ steps.double.output.x }}"}},
        ]
    }))
    .unwrap();
    let wf = Workflow::new("two-slots", def).unwrap();
    store
        .put_workflow_type(&wf, "test", now_ms())
        .await
        .unwrap();
    let mut consumers = Vec::new();
    for q in ["{wf-a}", "{wf-b}"] {
        let opts = ConsumerOptions {
            drain_delay: Duration::from_millis(200),
            ..ConsumerOptions::new(QueueName::new(q).unwrap(), 2)
        };
        consumers.push(
            Consumer::start(&conn, opts, Arc::new(Steps), Arc::new(Quiet))
                .await
                .unwrap(),
        );
    }
    let stop = CancellationToken::new();
    let orchestrator = Orchestrator::new(conn.clone(), store.clone(), None);
    let task = {
        let stop = stop.clone();
        tokio::spawn(async move { orchestrator.run(stop).await })
    };
    let (run, _) = store
        .start_run(&wf, &json!({"x": 20}), None, now_ms())
        .await
        .unwrap();
    let done = wait_until("run completed", Duration::from_secs(60), || async {
        let d = store.get_run(&run.id).await.unwrap().unwrap();
        if d.run.state == RunState::Completed {
            Check::Done(d)
        } else {
            Check::NotYet(format!("{:?} {:?}", d.run.state, d.run.error))
        }
    })
    .await;
    let inc = done.steps.iter().find(|s| s.step == "inc").unwrap();
    assert_eq!(inc.output, Some(json!({"x": 41})));
    stop.cancel();
    task.await.unwrap();
    for c in consumers {
        c.close(Duration::from_secs(5)).await;
    }
}

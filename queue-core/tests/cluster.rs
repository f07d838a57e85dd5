//! queue-core on a real 3-master Redis Cluster: queues hash-tagged into
//! one slot each, spread over the masters; discovery walks every master,
//! counts batch per slot, workers consume.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use std::sync::Arc;
use std::time::Duration;

use queue_core::inspect::{self, Order};
use queue_core::{
    Connection, Consumer, ConsumerOptions, Disposition, JobState, QueueDiscovery, QueueName,
};
use serde_json::json;
use support::*;
use testkit::{Check, RedisCluster, wait_until};

#[tokio::test]
async fn queues_work_across_a_cluster() {
    let cluster = RedisCluster::start(3).await;
    let conn = connect_cluster(&cluster).await;
    // Hash-tagged names keep each queue in one slot; different tags land on
    // different masters.
    let names = [
        "{alpha}",
        "{beta}",
        "{gamma}",
        "{delta}",
        "{epsilon}",
        "{zeta}",
    ];
    for (i, name) in names.iter().enumerate() {
        for j in 0..=i {
            add(&conn, &queue(name), "n", json!({ "j": j }), json!({})).await;
        }
    }
    let mut masters_used = std::collections::BTreeSet::new();
    for node in cluster.nodes() {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("bull:*:id")
            .query_async(&mut node.conn().await)
            .await
            .unwrap();
        if !keys.is_empty() {
            masters_used.insert(node.port());
        }
    }
    assert!(
        masters_used.len() >= 2,
        "queues spread over masters: {masters_used:?}"
    );

    let discovered: Vec<String> = QueueDiscovery::new(conn.clone(), Duration::ZERO)
        .queues()
        .await
        .unwrap()
        .iter()
        .map(|q| q.to_string())
        .collect();
    let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(discovered, expected);

    let queues: Vec<_> = names.iter().map(|n| queue(n)).collect();
    let counts = inspect::queue_counts(&conn, &queues).await.unwrap();
    for (i, (_, c)) in counts.iter().enumerate() {
        assert_eq!(c.waiting, i as u64 + 1, "{:?}", counts[i]);
    }
    let page = inspect::list_jobs(
        &conn,
        &queue("{zeta}"),
        JobState::Waiting,
        0,
        3,
        Order::OldestFirst,
    )
    .await
    .unwrap();
    assert_eq!(page.total, 6);
    assert_eq!(page.jobs[0].data, json!({ "j": 0 }));

    let consumer = echo_consumer(&conn, queue("{zeta}")).await;
    wait_until(
        "6 completed on the cluster",
        Duration::from_secs(20),
        || async {
            let c = inspect::queue_counts(&conn, &[queue("{zeta}")])
                .await
                .unwrap();
            match c[0].1.completed {
                6 => Check::Done(()),
                n => Check::NotYet(format!("{n} completed")),
            }
        },
    )
    .await;
    let detail = inspect::job_detail(&conn, &queue("{zeta}"), "1")
        .await
        .unwrap();
    assert_eq!(detail.state, Some(JobState::Completed));
    assert_eq!(detail.record.returnvalue, Some(json!({ "j": 0 })));
    consumer.close(Duration::from_secs(5)).await;
}

/// BullMQ's Node client on the same cluster, with the same hash-tagged
/// names: jobs Drover adds, a Node worker runs; jobs Node adds, a Drover
/// consumer runs.
#[tokio::test]
async fn node_and_drover_share_tagged_queues_on_a_cluster() {
    let cluster = RedisCluster::start(3).await;
    let conn = connect_cluster(&cluster).await;
    let (to_node, to_drover) = (queue("{to-node}"), queue("{to-drover}"));
    for i in 0..5 {
        add(&conn, &to_node, "from-drover", json!({ "i": i }), json!({})).await;
    }
    let ports: Vec<u16> = cluster.nodes().iter().map(|n| n.port()).collect();
    let out = testkit::node::run(
        "cluster.mjs",
        &cluster.urls()[0],
        &json!({"nodes": ports, "addTo": "{to-drover}", "count": 5, "work": "{to-node}", "expect": 5}),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(out["processed"].as_array().unwrap().len(), 5, "{out}");
    assert_eq!(out["added"].as_array().unwrap().len(), 5, "{out}");

    let consumer = echo_consumer(&conn, to_drover.clone()).await;
    wait_until(
        "Node's jobs completed by Drover",
        Duration::from_secs(30),
        || async {
            let c = inspect::queue_counts(&conn, &[to_drover.clone(), to_node.clone()])
                .await
                .unwrap();
            if c[0].1.completed == 5 && c[1].1.completed == 5 {
                Check::Done(())
            } else {
                Check::NotYet(format!("{c:?}"))
            }
        },
    )
    .await;
    consumer.close(Duration::from_secs(5)).await;
}

/// A consumer on `queue` (2 slots) that completes each job with its data.
async fn echo_consumer(conn: &Connection, queue: QueueName) -> Consumer {
    Consumer::start(
        conn,
        ConsumerOptions {
            drain_delay: Duration::from_secs(1),
            ..ConsumerOptions::new(queue, 2)
        },
        Arc::new(FnProcessor(|job: queue_core::ActiveJob| {
            let data = job.data().clone();
            Box::pin(async move { Disposition::Complete(data) })
                as futures::future::BoxFuture<'static, Disposition>
        })),
        Arc::new(Recorder::default()),
    )
    .await
    .unwrap()
}

//! `drover serve` and `drover worker` on a real Redis Cluster of 3 masters
//! and 3 replicas. Clients add jobs through the API to six hash-tagged
//! queues spread over the masters; one master is killed (SIGKILL) under
//! that load. Its replica takes over, the API and the worker reconnect by
//! themselves, and every job whose add was acknowledged (HTTP 2xx, with
//! `[redis] wait_replicas = 1`) is completed exactly once; a handler runs
//! again only for a finish the worker logged as failed when the master
//! died under it (BullMQ's at-least-once case). Until the
//! killed node is back as the promoted one's replica, adds to the queues
//! that moved are refused (503), since no replica can confirm them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use support::load::{Load, LogsOnPanic, Stack};
use support::{Drover, http_client};
use testkit::{Check, RedisCluster, wait_until};

const QUEUES: &[&str] = &["{c0}", "{c1}", "{c2}", "{c3}", "{c4}", "{c5}"];
/// Kill the master once this many adds were acknowledged.
const KILL_AFTER: usize = 300;
/// Acknowledged adds after the kill before the load stops.
const AFTER_KILL: usize = 300;

/// A `drover.toml` holding `redis`, and the environment that points a
/// spawned `drover` at it and at the cluster.
fn cluster_env(drover: &Drover, seeds: &str, redis: &str) -> Vec<(String, String)> {
    let config = drover.dir.path().join("drover.toml");
    std::fs::write(&config, format!("[redis]\n{redis}")).unwrap();
    vec![
        ("DROVER_REDIS_CLUSTER_NODES".into(), seeds.into()),
        ("DROVER_CONFIG".into(), config.to_str().unwrap().into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_master_under_load_loses_no_acknowledged_job() {
    let mut cluster = RedisCluster::start_with_replicas(3, 1).await;
    let drover = Drover::new(&cluster.nodes()[0]);
    let env = cluster_env(
        &drover,
        &cluster.urls().join(","),
        "wait_replicas = 1\nwait_timeout_ms = 2000\nreconnect_delay_ms = 200\n",
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let _logs = LogsOnPanic(vec![drover.log_path("serve"), drover.log_path("worker")]);
    // The queues' slots are spread over the masters; the victim is the
    // master of the first queue.
    let mut by_master: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for q in QUEUES {
        let m = cluster.master_for_key(0, &format!("bull:{q}:id")).await;
        by_master.entry(m).or_default().push(q);
    }
    assert!(by_master.len() >= 2, "queues spread: {by_master:?}");
    let victim = cluster
        .master_for_key(0, &format!("bull:{}:id", QUEUES[0]))
        .await;
    let victim_queues: BTreeSet<&str> = by_master[&victim].iter().copied().collect();

    let mut stack = Stack::start(&drover, QUEUES, &env).await;

    let client = http_client();
    let load = Load::start(&client, &stack.addr, &stack.token, QUEUES, 6);
    load.wait_acked(KILL_AFTER, "load under way", Duration::from_secs(60))
        .await;
    cluster.kill(victim);
    let killed_at = Instant::now();
    let (acked_at_kill, refused_at_kill) = (load.acked(), load.refused());

    // The victim's replica is promoted: three masters again, without it,
    // and the node asked has learnt (by gossip) who owns the slot now.
    let new_master = wait_until("a replica promoted", Duration::from_secs(30), || async {
        let masters = cluster.masters().await;
        if masters.len() != 3 || masters.contains(&victim) {
            return Check::NotYet(format!("masters {masters:?}"));
        }
        let owner = cluster
            .master_for_key(masters[0], &format!("bull:{}:id", QUEUES[0]))
            .await;
        if owner == victim {
            Check::NotYet(format!(
                "masters {masters:?}; node {} still names the victim",
                masters[0]
            ))
        } else {
            Check::Done(owner)
        }
    })
    .await;
    let promoted_after = killed_at.elapsed();
    assert_ne!(new_master, victim);
    // As an operator (or Kubernetes) would: the crashed node comes back,
    // as the replica of the promoted one, so its queues' adds can be
    // confirmed by a replica again (`wait_replicas = 1`).
    cluster.restart(victim).await;

    load.wait_acked(
        acked_at_kill + AFTER_KILL,
        "adds acknowledged after the failover",
        Duration::from_secs(60),
    )
    .await;
    let refused = load.refused();
    let acked = load.stop().await;
    // The same API process reached the promoted replica.
    let moved_after: Vec<Duration> = acked
        .iter()
        .filter(|a| victim_queues.contains(a.queue) && a.sent > killed_at)
        .map(|a| a.at.duration_since(killed_at))
        .collect();
    assert!(
        moved_after.len() >= 10,
        "adds to the moved queues resumed: {}",
        moved_after.len()
    );
    let first_moved_ack = moved_after.iter().min().unwrap();

    let seeds: Vec<String> = cluster
        .urls()
        .into_iter()
        .enumerate()
        .filter_map(|(i, u)| (i != victim).then_some(u))
        .collect();
    let conn = redis::cluster::ClusterClient::new(seeds)
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let (completed, runs, unconfirmed, stalled) = stack
        .assert_completed_once(&conn, &acked, &client, &drover)
        .await;
    eprintln!(
        "cluster failover: {} acknowledged ({acked_at_kill} before SIGKILL, {} after), {} refused \
         ({} after the kill); replica promoted {:.2}s after the kill; first add sent to a moved \
         queue after the kill acknowledged {:.2}s after it; {completed} completed, {runs} handler completions \
         ({unconfirmed} logged as not written, {stalled} stalled-job recoveries)",
        acked.len(),
        acked.len() - acked_at_kill,
        refused,
        refused - refused_at_kill,
        promoted_after.as_secs_f64(),
        first_moved_ack.as_secs_f64(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untagged_queue_is_refused_on_a_cluster_with_what_to_do() {
    let cluster = RedisCluster::start(3).await;
    let drover = Drover::new(&cluster.nodes()[0]);
    let env = cluster_env(&drover, &cluster.urls().join(","), "");
    let mut cmd = tokio::process::Command::from(
        drover.command(&["enqueue", "emails", "send", "--data", "{}"]),
    );
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let out = cmd.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("{emails}"), "{stderr}");
    // A tagged name works on the same cluster.
    let mut cmd = tokio::process::Command::from(
        drover.command(&["enqueue", "{emails}", "send", "--data", "{}"]),
    );
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let out = cmd.output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

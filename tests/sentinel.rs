//! `drover serve` and `drover worker` through Redis Sentinel
//! (`REDIS_URL=redis+sentinel://…`): a master, two replicas and three
//! Sentinels. The master is killed (SIGKILL) under load; the Sentinels
//! promote a replica, and the same Drover processes follow it with no
//! restart: adds are acknowledged again, and every job whose add was
//! acknowledged (`[redis] wait_replicas = 1`) is completed exactly once;
//! a handler runs again only for a finish the worker logged as failed when
//! the master died under it (BullMQ's at-least-once case).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use std::time::{Duration, Instant};

use support::load::{Load, LogsOnPanic, Stack};
use support::{Drover, http_client};
use testkit::SentinelGroup;

const QUEUES: &[&str] = &["orders", "emails"];
/// Kill the master once this many adds were acknowledged.
const KILL_AFTER: usize = 300;
/// Acknowledged adds after the kill before the load stops.
const AFTER_KILL: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_under_load_loses_no_acknowledged_job() {
    let mut group = SentinelGroup::start(2).await;
    let drover = Drover::new(&group.servers()[0]);
    let _logs = LogsOnPanic(vec![drover.log_path("serve"), drover.log_path("worker")]);
    let config = drover.dir.path().join("drover.toml");
    std::fs::write(
        &config,
        "[redis]\nwait_replicas = 1\nwait_timeout_ms = 2000\nreconnect_delay_ms = 200\n",
    )
    .unwrap();
    let url = group.url();
    let env = [
        ("REDIS_URL", url.as_str()),
        ("DROVER_CONFIG", config.to_str().unwrap()),
    ];
    let mut stack = Stack::start(&drover, QUEUES, &env).await;

    let client = http_client();
    let load = Load::start(&client, &stack.addr, &stack.token, QUEUES, 6);
    load.wait_acked(KILL_AFTER, "load under way", Duration::from_secs(60))
        .await;
    let old = group.master().await.unwrap();
    group.kill(old);
    let killed_at = Instant::now();
    let (acked_at_kill, refused_at_kill) = (load.acked(), load.refused());
    let new = group.wait_failover(old, Duration::from_secs(30)).await;
    let promoted_after = killed_at.elapsed();

    load.wait_acked(
        acked_at_kill + AFTER_KILL,
        "adds acknowledged after the failover",
        Duration::from_secs(60),
    )
    .await;
    let refused = load.refused();
    let acked = load.stop().await;
    let first_after = acked
        .iter()
        .filter(|a| a.sent > killed_at)
        .map(|a| a.at.duration_since(killed_at))
        .min()
        .unwrap();

    let conn = group.servers()[new].conn().await;
    let (completed, runs, unconfirmed, stalled) = stack
        .assert_completed_once(&conn, &acked, &client, &drover)
        .await;
    // No restart (checked above): the processes that started before the
    // failover did all of this, and say they followed the new master.
    let new_port = group.servers()[new].port().to_string();
    for label in ["serve", "worker"] {
        let log = drover.log(label);
        assert!(
            log.lines()
                .any(|l| l.contains("the master changed") && l.contains(&new_port)),
            "{label} logged the switch to port {new_port}"
        );
    }
    eprintln!(
        "sentinel failover: {} acknowledged ({acked_at_kill} before SIGKILL, {} after), {} refused \
         ({} after the kill); replica promoted {:.2}s after the kill; first add sent after the \
         kill acknowledged {:.2}s after it; {completed} completed, {runs} handler completions \
         ({unconfirmed} logged as not written, {stalled} stalled-job recoveries)",
        acked.len(),
        acked.len() - acked_at_kill,
        refused,
        refused - refused_at_kill,
        promoted_after.as_secs_f64(),
        first_after.as_secs_f64(),
    );
}

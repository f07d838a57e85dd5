//! The autoscaler under steady load (two minutes; runs alone, see
//! `.config/nextest.toml`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/rig.rs"]
mod rig;
mod support;

use std::time::Duration;

use nix::sys::signal::Signal;
use queue_core::autoscale::{self, Decision};
use queue_core::inspect;
use queue_core::{QueueName, now_ms};
use rig::Rig;
use serde_json::json;
use testkit::{Check, wait_until};

/// Must show: steady load at half capacity for two minutes makes no scale
/// change. Two processes of four slots run 50-ms jobs (160 jobs/s); the
/// test adds 80 jobs/s, evenly.
#[tokio::test]
async fn steady_load_at_half_capacity_for_two_minutes_changes_nothing() {
    let rig = Rig::start(
        r#"
[worker]
heartbeat_interval_ms = 1000
[supervise]
poll_interval_ms = 200
[autoscaler]
interval_ms = 500
lease_ttl_ms = 3000
[autoscaler.queue.steady]
actuator = "process"
min_workers = 2
max_workers = 8
target_backlog_per_slot = 10
"#,
    )
    .await;
    let mut supervisor = rig.supervise("steady", "4", "2");
    rig.wait_workers("steady", 2, 2, Duration::from_secs(30))
        .await;
    let started = now_ms();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut added = 0usize;
    let mut most_waiting = 0u64;
    while now_ms() - started < 120_000 {
        tick.tick().await;
        rig.add("steady", 4, json!({ "sleep_ms": 50 })).await;
        added += 4;
        if added % 400 == 0 {
            let s = rig.status("steady").await.unwrap();
            most_waiting = most_waiting.max(s.signals.backlog);
        }
    }
    let ended = now_ms();
    let q = QueueName::new("steady").unwrap();
    let completed = wait_until("the load drained", Duration::from_secs(30), || async {
        let c = inspect::queue_counts(&rig.conn, std::slice::from_ref(&q))
            .await
            .unwrap()[0]
            .1
            .clone();
        if c.waiting + c.active == 0 {
            Check::Done(c.completed)
        } else {
            Check::NotYet(format!("{c:?}"))
        }
    })
    .await;
    let rate = added as f64 / ((ended - started) as f64 / 1_000.0);
    let changes: Vec<Decision> = rig
        .decisions("steady")
        .await
        .into_iter()
        .filter(|d| d.at_ms >= started)
        .collect();
    let history = autoscale::worker_history(&rig.conn, &q, autoscale::MAX_HISTORY)
        .await
        .unwrap();
    let during: Vec<_> = history
        .iter()
        .filter(|s| s.at_ms >= started && s.at_ms <= ended)
        .collect();
    eprintln!(
        "steady: {added} jobs in {} s ({rate:.0}/s), {completed} completed, largest backlog seen {most_waiting}, {} samples, recommendations {:?}",
        (ended - started) / 1_000,
        during.len(),
        during
            .iter()
            .map(|s| s.recommended)
            .collect::<std::collections::BTreeSet<_>>()
    );
    assert!(
        changes.is_empty(),
        "no scale change under steady load: {changes:#?}"
    );
    assert!(during.iter().all(|s| s.desired == 2), "desired stayed 2");
    assert!(
        during.len() > 200,
        "the leader ticked all along: {}",
        during.len()
    );
    assert_eq!(completed as usize, added);
    supervisor.signal(Signal::SIGTERM);
    supervisor.wait_exit(Duration::from_secs(30)).await;
}

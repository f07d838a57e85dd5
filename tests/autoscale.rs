//! The autoscaler end to end with the process actuator: `drover serve`
//! runs the control loop, `drover worker --supervise` starts and drains
//! `drover worker` processes, the test adds `echo` jobs that take 50 ms.
//! Decision times are read from what the leader recorded in Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/rig.rs"]
mod rig;
mod support;

use std::time::Duration;

use nix::sys::signal::Signal;
use queue_core::autoscale::{self, Direction};
use queue_core::inspect;
use queue_core::{QueueName, now_ms};
use rig::Rig;
use serde_json::json;
use support::event_counts;
use testkit::{Check, wait_until};

/// Must show: a burst of 20,000 50-ms jobs takes the workers from min to
/// max within 2 s of the burst (decision times recorded by the leader),
/// the backlog drains, and the workers go back to min only after the
/// scale-down stabilization window.
#[tokio::test]
async fn a_burst_scales_from_min_to_max_fast_and_back_after_the_window() {
    const WINDOW_SECS: u64 = 15;
    let rig = Rig::start(&format!(
        r#"
[worker]
heartbeat_interval_ms = 1000
[supervise]
poll_interval_ms = 200
[autoscaler]
interval_ms = 500
lease_ttl_ms = 3000
[autoscaler.queue.burst]
actuator = "process"
min_workers = 1
max_workers = 8
target_backlog_per_slot = 10
[autoscaler.queue.burst.scale_down]
stabilization_window_secs = {WINDOW_SECS}
policies = [{{ type = "percent", value = 100, period_secs = 1 }}]
"#
    ))
    .await;
    let mut supervisor = rig.supervise("burst", "10", "1");
    rig.wait_workers("burst", 1, 1, Duration::from_secs(30))
        .await;

    let burst_ms = now_ms();
    rig.add("burst", 20_000, json!({ "sleep_ms": 50 })).await;
    let added_ms = now_ms();
    rig.wait_workers("burst", 8, 8, Duration::from_secs(30))
        .await;
    let decisions = rig.decisions("burst").await;
    let reached = decisions
        .iter()
        .find(|d| d.at_ms >= burst_ms && d.to == 8)
        .unwrap_or_else(|| panic!("no decision to 8: {decisions:#?}"));
    let took = reached.at_ms - burst_ms;
    eprintln!(
        "burst: 20,000 jobs added in {} ms; max (8) decided {took} ms after the burst began; decisions: {:?}",
        added_ms - burst_ms,
        decisions
            .iter()
            .map(|d| (d.at_ms.saturating_sub(burst_ms), d.from, d.to))
            .collect::<Vec<_>>()
    );
    assert!(
        took <= 2_000,
        "max reached {took} ms after the burst: {decisions:#?}"
    );
    assert!(
        decisions
            .iter()
            .filter(|d| d.at_ms >= burst_ms && d.at_ms <= reached.at_ms)
            .all(|d| d.direction == Direction::Up),
        "{decisions:#?}"
    );

    let q = QueueName::new("burst").unwrap();
    let drained = wait_until("the burst drained", Duration::from_secs(180), || async {
        let counts = inspect::queue_counts(&rig.conn, std::slice::from_ref(&q))
            .await
            .unwrap();
        let c = &counts[0].1;
        // Workers keep at most 10,000 completed jobs (`remove_on_complete`);
        // BullMQ's metrics count them all.
        if c.completed_total == Some(20_000)
            && c.waiting + c.active + c.prioritized + c.delayed == 0
        {
            Check::Done(now_ms())
        } else {
            Check::NotYet(format!("{c:?}"))
        }
    })
    .await;
    eprintln!("burst drained {} ms after it began", drained - burst_ms);
    assert_eq!(
        inspect::queue_counts(&rig.conn, std::slice::from_ref(&q))
            .await
            .unwrap()[0]
            .1
            .failed,
        0
    );

    rig.wait_workers("burst", 1, 1, Duration::from_secs(WINDOW_SECS + 60))
        .await;
    let decisions = rig.decisions("burst").await;
    let down = decisions
        .iter()
        .find(|d| d.at_ms > reached.at_ms && d.direction == Direction::Down)
        .expect("a scale-down decision");
    let history = autoscale::worker_history(&rig.conn, &q, autoscale::MAX_HISTORY)
        .await
        .unwrap();
    let last_high = history
        .iter()
        .filter(|s| s.at_ms < down.at_ms && s.recommended >= 8)
        .map(|s| s.at_ms)
        .max()
        .expect("samples recommending the maximum");
    eprintln!(
        "scale-down to {} at {} ms after the last recommendation of 8 (window {WINDOW_SECS} s): {}",
        down.to,
        down.at_ms - last_high,
        down.reason
    );
    assert!(
        down.at_ms - last_high >= WINDOW_SECS * 1_000 - 600,
        "scaled down {} ms after the last high recommendation, before the {WINDOW_SECS} s window",
        down.at_ms - last_high
    );
    let log = rig.drover.log("supervisor");
    assert!(
        !log.contains("exited unexpectedly"),
        "every process left by draining:\n{log}"
    );
    supervisor.signal(Signal::SIGTERM);
    supervisor.wait_exit(Duration::from_secs(30)).await;
}

/// Must show: scale-down during long jobs loses none and runs none twice.
/// Three processes hold two 4-second jobs each when the maximum drops to
/// one: two processes drain (finish their jobs, then exit).
#[tokio::test]
async fn scale_down_during_long_jobs_loses_none_and_runs_none_twice() {
    let rig = Rig::start(
        r#"
[worker]
heartbeat_interval_ms = 500
[supervise]
poll_interval_ms = 200
[autoscaler]
interval_ms = 300
lease_ttl_ms = 3000
[autoscaler.queue.long]
actuator = "process"
min_workers = 1
max_workers = 3
target_backlog_per_slot = 1
[autoscaler.queue.long.scale_down]
stabilization_window_secs = 0
policies = [{ type = "percent", value = 100, period_secs = 1 }]
"#,
    )
    .await;
    let mut supervisor = rig.supervise("long", "2", "1");
    rig.wait_workers("long", 1, 1, Duration::from_secs(30))
        .await;
    rig.add("long", 6, json!({ "sleep_ms": 4_000 })).await;
    rig.wait_workers("long", 3, 3, Duration::from_secs(20))
        .await;
    wait_until("six jobs active", Duration::from_secs(20), || async {
        match support::active_len(&rig.server, "long").await {
            6 => Check::Done(()),
            n => Check::NotYet(format!("{n} active")),
        }
    })
    .await;
    // A bad policy is a usage error, one line, nothing written.
    let out = rig
        .drover
        .run(&[
            "autoscaler",
            "set",
            "long",
            "--policy",
            r#"{"min_workers": 3, "max_workers": 1}"#,
        ])
        .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );
    rig.drover
        .ok(&[
            "autoscaler",
            "set",
            "long",
            "--policy",
            r#"{"actuator": "process", "max_workers": 1, "target_backlog_per_slot": 1,
                "scale_down": {"stabilization_window_secs": 0}}"#,
        ])
        .await;
    rig.wait_workers("long", 1, 1, Duration::from_secs(30))
        .await;
    rig.server
        .wait_count("long", "completed", 6, Duration::from_secs(30))
        .await;
    let completions = event_counts(&rig.server, "long", "completed").await;
    assert_eq!(completions.len(), 6, "{completions:?}");
    assert!(completions.values().all(|n| *n == 1), "{completions:?}");
    for id in completions.keys() {
        let h = rig.server.job_hash("long", id).await;
        assert_eq!(h["ats"], "1", "job {id} started once: {h:?}");
        assert_eq!(h["atm"], "1", "job {id} finished once: {h:?}");
    }
    let log = wait_until("two processes drained", Duration::from_secs(20), || async {
        let log = rig.drover.log("supervisor");
        match log.matches("worker process drained and exited").count() {
            2 => Check::Done(log),
            n => Check::NotYet(format!("{n} drained")),
        }
    })
    .await;
    assert!(
        !log.contains("handed_back=1") && !log.contains("handed_back=2"),
        "{log}"
    );
    let table = rig.drover.ok(&["autoscaler"]).await;
    assert!(
        table.contains("long") && table.contains("3 -> 1"),
        "{table}"
    );
    supervisor.signal(Signal::SIGTERM);
    supervisor.wait_exit(Duration::from_secs(30)).await;
}

/// The concurrency actuator: two running `drover worker` processes share
/// the slots the autoscaler wants, live, and go back down after the
/// window; no process restarts.
#[tokio::test]
async fn the_concurrency_actuator_shares_slots_among_running_workers() {
    let rig = Rig::start(
        r#"
[worker]
heartbeat_interval_ms = 300
autoscaler_poll_ms = 200
[autoscaler]
interval_ms = 300
lease_ttl_ms = 3000
[autoscaler.queue.conc]
actuator = "concurrency"
min_workers = 2
max_workers = 12
target_backlog_per_slot = 10
[autoscaler.queue.conc.scale_down]
stabilization_window_secs = 3
policies = [{ type = "percent", value = 100, period_secs = 1 }]
"#,
    )
    .await;
    let worker = |label: &str| {
        rig.drover.spawn_worker(
            label,
            &[
                "--queue",
                "conc",
                "--concurrency",
                "1",
                "--config",
                &rig.config,
            ],
        )
    };
    let _w1 = worker("w1");
    let _w2 = worker("w2");
    rig.wait_workers("conc", 2, 2, Duration::from_secs(30))
        .await;
    rig.add("conc", 3_000, json!({ "sleep_ms": 50 })).await;
    rig.wait_workers("conc", 12, 12, Duration::from_secs(30))
        .await;
    for label in ["w1", "w2"] {
        let log = rig.drover.log(label);
        assert!(
            log.contains("autoscaler: concurrency changed") && log.contains("to=6"),
            "{label} took its share of 6:\n{log}"
        );
    }
    rig.server
        .wait_count("conc", "completed", 3_000, Duration::from_secs(120))
        .await;
    rig.wait_workers("conc", 2, 2, Duration::from_secs(60))
        .await;
    for label in ["w1", "w2"] {
        let log = rig.drover.log(label);
        assert_eq!(log.matches("consuming").count(), 1, "no restart:\n{log}");
    }
}

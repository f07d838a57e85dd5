//! `drover scheduler` as processes: several schedulers and workers make
//! exactly one job per tick, a flushed Redis gets its schedules back within
//! one reconcile period, and a restart of everything duplicates nothing
//! and skips or catches up the missed ticks by policy.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::*;
use testkit::{Check, ChildGuard, RedisServer, wait_until};

/// Writes a config file into the test's directory; returns its path.
fn config_file(drover: &Drover, text: &str) -> String {
    let path = drover.dir.path().join("drover.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn spawn_scheduler(drover: &Drover, label: &str, config: &str) -> ChildGuard {
    drover.spawn(label, &["scheduler", "--config", config, "--migrate"])
}

fn spawn_worker(drover: &Drover, label: &str, queue: &str) -> ChildGuard {
    // Short locks, so a job whose worker is killed is recovered quickly.
    drover.spawn_worker(
        label,
        &[
            "--queue",
            queue,
            "--handler",
            "echo",
            "--concurrency",
            "2",
            "--lock-duration",
            "2000",
            "--stalled-interval",
            "1000",
        ],
    )
}

/// Waits until nothing is waiting or running in `queue`.
async fn settle(server: &RedisServer, queue: &str) {
    wait_until("the queue settled", Duration::from_secs(30), || async {
        let (w, a) = (
            server.list(queue, "wait").await.len(),
            active_len(server, queue).await,
        );
        if w + a == 0 {
            Check::Done(())
        } else {
            Check::NotYet(format!("{w} waiting, {a} active"))
        }
    })
    .await;
}

/// The tick counts a scheduler log reports as missed for `schedule`.
fn logged_missed(log: &str, schedule: &str) -> u64 {
    let needle = format!("schedule {schedule} missed ");
    log.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &log[at + needle.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().unwrap()
        })
        .sum()
}

async fn stop_all(children: &mut [ChildGuard]) {
    for c in children.iter() {
        c.signal(Signal::SIGTERM);
    }
    for c in children.iter_mut() {
        c.wait_exit(Duration::from_secs(30)).await;
    }
}

/// Tick times (ms) of a schedule's jobs in the completed set: BullMQ's
/// runs (`repeat:<id>:<ms>`) and caught-up ones (`catchup-<id>-<ms>`).
async fn completed_ticks(server: &RedisServer, queue: &str, id: &str) -> (Vec<u64>, Vec<u64>) {
    let ids = server.zset(queue, "completed").await;
    let parse = |prefix: String| -> Vec<u64> {
        let mut v: Vec<u64> = ids
            .iter()
            .filter_map(|j| j.strip_prefix(prefix.as_str()))
            .map(|t| t.parse().unwrap())
            .collect();
        v.sort_unstable();
        v
    };
    (
        parse(format!("repeat:{id}:")),
        parse(format!("catchup-{id}-")),
    )
}

/// Each id started exactly once (one `active` event each).
async fn each_started_once(server: &RedisServer, queue: &str) -> usize {
    let started = event_counts(server, queue, "active").await;
    let twice: Vec<_> = started.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "jobs started more than once: {twice:?}");
    started.len()
}

#[tokio::test]
async fn three_schedulers_and_three_workers_make_one_job_per_tick_for_a_minute() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let config = config_file(
        &drover,
        r#"
[scheduler]
reconcile_interval_ms = 1000

[[schedule]]
id = "tick"
queue = "ticks"
every = 1000
name = "tick"
data = { source = "test" }
"#,
    );
    let mut children = Vec::new();
    for i in 0..3 {
        children.push(spawn_scheduler(&drover, &format!("scheduler-{i}"), &config));
        children.push(spawn_worker(&drover, &format!("worker-{i}"), "ticks"));
    }
    let started = Instant::now();
    let (runs, _) = wait_until("60 ticks run", Duration::from_secs(120), || async {
        let (runs, caught) = completed_ticks(&server, "ticks", "tick").await;
        assert!(
            caught.is_empty(),
            "nothing was missed, so nothing is caught up"
        );
        if runs.len() >= 60 {
            Check::Done((runs, caught))
        } else {
            Check::NotYet(format!(
                "{} ticks after {:?}",
                runs.len(),
                started.elapsed()
            ))
        }
    })
    .await;
    stop_all(&mut children).await;

    // One job per tick: consecutive runs one second apart, none missing,
    // none twice, each started once.
    for pair in runs.windows(2) {
        assert_eq!(pair[1] - pair[0], 1000, "ticks {runs:?}");
    }
    let (runs_after, _) = completed_ticks(&server, "ticks", "tick").await;
    let unique: BTreeSet<u64> = runs_after.iter().copied().collect();
    assert_eq!(unique.len(), runs_after.len());
    assert_eq!(each_started_once(&server, "ticks").await, runs_after.len());
    // The schedule was created once, by one of the three.
    let created: usize = (0..3)
        .map(|i| {
            drover
                .log(&format!("scheduler-{i}"))
                .matches("schedule created in redis")
                .count()
        })
        .sum();
    assert_eq!(created, 1);
    eprintln!(
        "{} ticks in {:.1}s with 3 schedulers and 3 workers; first {} last {}",
        runs_after.len(),
        started.elapsed().as_secs_f64(),
        runs_after[0],
        runs_after[runs_after.len() - 1]
    );
}

/// Scheduler ids in a queue's `repeat` set.
async fn scheduler_ids(server: &RedisServer, queue: &str) -> BTreeSet<String> {
    server.zset(queue, "repeat").await.into_iter().collect()
}

#[tokio::test]
async fn flushall_gets_every_declared_schedule_back_within_a_period() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let config = config_file(
        &drover,
        r#"
[scheduler]
reconcile_interval_ms = 2000

[[schedule]]
id = "warm-templates"
queue = "cache"
every = 1800000
name = "cache-warm"
data = { source = "popular_templates", target = "templates" }

[[schedule]]
id = "warm-stats"
queue = "cache"
pattern = "0 */10 * * * *"
tz = "Europe/Berlin"
name = "cache-warm"
data = { source = "dashboard_stats", target = "dashboard" }
"#,
    );
    drover.ok(&["migrate"]).await;
    // One declared through the CLI (kept in the store), one by hand in
    // redis-cli style that Drover does not own.
    drover
        .ok(&[
            "schedule",
            "set",
            "reports",
            "nightly",
            "--pattern",
            "0 0 3 * * *",
            "--tz",
            "America/New_York",
            "--name",
            "report",
        ])
        .await;
    let mut scheduler = spawn_scheduler(&drover, "scheduler", &config);
    let want_cache = BTreeSet::from(["warm-stats".to_string(), "warm-templates".to_string()]);
    let want_reports = BTreeSet::from(["nightly".to_string()]);
    let all_there = || async {
        let (c, r) = (
            scheduler_ids(&server, "cache").await,
            scheduler_ids(&server, "reports").await,
        );
        if c == want_cache && r == want_reports {
            Check::Done(())
        } else {
            Check::NotYet(format!("{c:?} {r:?}"))
        }
    };
    wait_until("schedules created", Duration::from_secs(30), all_there).await;

    redis::cmd("FLUSHALL")
        .query_async::<()>(&mut server.conn().await)
        .await
        .unwrap();
    let flushed = Instant::now();
    assert!(scheduler_ids(&server, "cache").await.is_empty());
    // Within one period (2 s) plus the pass itself.
    wait_until(
        "schedules restored after FLUSHALL",
        Duration::from_secs(4),
        all_there,
    )
    .await;
    eprintln!("restored {:?} after FLUSHALL", flushed.elapsed());
    // Restored as declared, with their pending runs.
    let schedules = drover.json(&["schedules", "--json"]).await;
    let by_id: BTreeMap<String, serde_json::Value> = schedules
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_string(), s.clone()))
        .collect();
    assert_eq!(by_id["warm-stats"]["tz"], "Europe/Berlin");
    assert_eq!(by_id["warm-stats"]["owner"], "config");
    assert_eq!(by_id["warm-templates"]["every"], 1_800_000);
    assert_eq!(
        by_id["warm-templates"]["data"]["source"],
        "popular_templates"
    );
    assert_eq!(by_id["nightly"]["owner"], "api");
    assert_eq!(by_id["nightly"]["tz"], "America/New_York");
    for s in by_id.values() {
        assert_eq!(s["upcoming_ms"].as_array().unwrap().len(), 5, "{s}");
    }
    scheduler.signal(Signal::SIGTERM);
    assert!(scheduler.wait_exit(Duration::from_secs(30)).await.success());
}

#[tokio::test]
async fn a_restart_of_everything_duplicates_nothing_and_applies_the_missed_policy() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let config = config_file(
        &drover,
        r#"
[scheduler]
reconcile_interval_ms = 500

[[schedule]]
id = "skipper"
queue = "r"
every = 500

[[schedule]]
id = "catcher"
queue = "r"
every = 500
missed = "catch-up"
"#,
    );
    let start = |round: usize| {
        vec![
            spawn_scheduler(&drover, &format!("scheduler-a{round}"), &config),
            spawn_scheduler(&drover, &format!("scheduler-b{round}"), &config),
            spawn_worker(&drover, &format!("worker-a{round}"), "r"),
            spawn_worker(&drover, &format!("worker-b{round}"), "r"),
        ]
    };
    let mut children = start(0);
    wait_until("a few ticks of each", Duration::from_secs(60), || async {
        let (a, _) = completed_ticks(&server, "r", "skipper").await;
        let (b, _) = completed_ticks(&server, "r", "catcher").await;
        if a.len() >= 5 && b.len() >= 5 {
            Check::Done(())
        } else {
            Check::NotYet(format!("{} {}", a.len(), b.len()))
        }
    })
    .await;
    // Everything dies at once, mid-flight, and stays down for 3 s.
    for c in &mut children {
        c.kill();
    }
    let down_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await; // the outage itself, not a wait for a state
    let mut children = start(1);
    // Catch-up: the ticks of the outage are added and run; skip: a log line.
    wait_until("the outage dealt with", Duration::from_secs(60), || async {
        let logs = drover.log("scheduler-a1") + &drover.log("scheduler-b1");
        let caught = completed_ticks(&server, "r", "catcher").await.1.len();
        if logs.contains("policy skip") && caught >= 4 {
            Check::Done(())
        } else {
            Check::NotYet(format!("{caught} caught up; logs: {logs}"))
        }
    })
    .await;
    // Let both run a few more ticks after the outage.
    let settled = completed_ticks(&server, "r", "skipper").await.0.len();
    wait_until(
        "ticks after the restart",
        Duration::from_secs(30),
        || async {
            let n = completed_ticks(&server, "r", "skipper").await.0.len();
            if n >= settled + 3 {
                Check::Done(())
            } else {
                Check::NotYet(format!("{n}"))
            }
        },
    )
    .await;
    settle(&server, "r").await;
    stop_all(&mut children).await;
    eprintln!("outage of {:?}", down_at.elapsed());

    // Catch-up: runs and caught-up jobs tile the grid, each tick once (a
    // tick never has both a run and a caught-up job).
    let (runs, caught) = completed_ticks(&server, "r", "catcher").await;
    let overlap: BTreeSet<&u64> = runs.iter().filter(|t| caught.contains(t)).collect();
    assert!(overlap.is_empty(), "ticks run twice: {overlap:?}");
    let mut all: Vec<u64> = runs.iter().chain(&caught).copied().collect();
    all.sort_unstable();
    for pair in all.windows(2) {
        assert_eq!(pair[1] - pair[0], 500, "runs {runs:?} caught up {caught:?}");
    }
    // Skip: a gap of at least the outage, no caught-up jobs, and the log
    // says how many were skipped.
    let (runs, caught) = completed_ticks(&server, "r", "skipper").await;
    assert!(caught.is_empty());
    let skipped: u64 = runs.windows(2).map(|p| (p[1] - p[0]) / 500 - 1).sum();
    assert!(skipped >= 4, "{runs:?}");
    let logs = drover.log("scheduler-a1") + &drover.log("scheduler-b1");
    assert_eq!(logged_missed(&logs, "r/skipper"), skipped, "{logs}");
}

#[tokio::test]
async fn schedule_set_list_and_rm_from_the_command_line() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    drover.ok(&["migrate"]).await;

    let bad = drover
        .run(&["schedule", "set", "cache", "s", "--pattern", "0 0 25 * * *"])
        .await;
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("pattern \"0 0 25 * * *\""), "{stderr}");
    let bad = drover
        .run(&[
            "schedule", "set", "cache", "s", "--every", "1000", "--data", "{nope",
        ])
        .await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--data is not JSON"));
    assert!(scheduler_ids(&server, "cache").await.is_empty());

    let out = drover
        .ok(&[
            "schedule",
            "set",
            "cache",
            "warm",
            "--every",
            "600000",
            "--name",
            "cache-warm",
            "--data",
            r#"{"source":"dashboard_stats","target":"dashboard"}"#,
            "--opts",
            r#"{"attempts":2}"#,
        ])
        .await;
    assert!(
        out.starts_with("created schedule cache/warm; next run "),
        "{out}"
    );
    let out = drover
        .ok(&[
            "schedule",
            "set",
            "cache",
            "warm",
            "--every",
            "300000",
            "--name",
            "cache-warm",
        ])
        .await;
    assert!(out.starts_with("replaced schedule cache/warm"), "{out}");

    let table = drover.ok(&["schedules"]).await;
    let row = table.lines().find(|l| l.contains("warm")).unwrap();
    assert!(
        row.contains("every 300000 ms") && row.contains("api"),
        "{table}"
    );
    let json = drover
        .json(&["schedules", "--queue", "cache", "--json"])
        .await;
    assert_eq!(json[0]["every"], 300_000);

    assert_eq!(
        drover.ok(&["schedule", "rm", "cache", "warm"]).await.trim(),
        "removed schedule cache/warm"
    );
    let gone = drover.run(&["schedule", "rm", "cache", "warm"]).await;
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no schedule \"warm\""));
    assert!(scheduler_ids(&server, "cache").await.is_empty());
}

#[tokio::test]
async fn the_scheduler_registers_the_config_files_workflows_once() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let config = config_file(
        &drover,
        r#"
[[workflow]]
type = "etl"
[[workflow.steps]]
id = "a"
queue = "q"
[[workflow.steps]]
id = "b"
queue = "q"
depends_on = ["a"]
input = { x = "{{ steps.a.output.x }}" }
"#,
    );
    let store_url = format!(
        "sqlite:{}",
        drover.dir.path().join("data/drover.db").display()
    );
    for round in 0..2 {
        let label = format!("scheduler-{round}");
        let mut scheduler = spawn_scheduler(&drover, &label, &config);
        wait_until("scheduler ready", Duration::from_secs(30), || async {
            let log = drover.log(&label);
            if log.contains("ready") {
                Check::Done(())
            } else {
                Check::NotYet(log)
            }
        })
        .await;
        scheduler.signal(Signal::SIGTERM);
        assert!(scheduler.wait_exit(Duration::from_secs(30)).await.success());
    }
    let settings = queue_core::store::StoreConfig {
        url: Some(store_url),
        ..Default::default()
    }
    .resolve(drover.dir.path())
    .unwrap();
    let store = queue_core::store::Store::connect(&settings).await.unwrap();
    let etl = store.get_workflow_type("etl").await.unwrap().unwrap();
    assert_eq!(etl.workflow.order(), ["a", "b"]);
    assert_eq!(
        etl.version, 1,
        "a restart with the same definition does not bump it"
    );
    assert!(
        drover
            .log("scheduler-0")
            .contains("workflow type registered from the config file")
    );
    assert!(
        !drover
            .log("scheduler-1")
            .contains("workflow type registered")
    );
}

//! The reconciler against a real redis-server, a real SQLite store and the
//! real BullMQ Node client: it creates, updates and prunes only its own
//! schedulers, N reconcilers leave the state one leaves, and missed ticks
//! are skipped or caught up exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use drover_scheduler::{Reconciler, SchedulerConfig};
use futures::future::BoxFuture;
use queue_core::schedule::{Owner, Schedule, ScheduleSpec, live};
use queue_core::{
    ActiveJob, Connection, Consumer, ConsumerOptions, Disposition, Processor, QueueName, now_ms,
};
use serde_json::{Value, json};
use support::{Quiet, connect, sqlite_store};
use testkit::{Check, RedisServer, node, wait_until};

const DEADLINE: Duration = Duration::from_secs(30);

fn schedule(queue: &str, id: &str, spec: Value) -> Schedule {
    let spec: ScheduleSpec = serde_json::from_value(spec).unwrap();
    Schedule::new(QueueName::new(queue).unwrap(), id, spec).unwrap()
}

fn config() -> SchedulerConfig {
    SchedulerConfig {
        reconcile_interval_ms: 200,
        ..SchedulerConfig::default()
    }
}

/// `repeat` zset of a queue: scheduler id → pending run time.
async fn pending(server: &RedisServer, queue: &str) -> Vec<(String, u64)> {
    redis::cmd("ZRANGE")
        .arg(format!("bull:{queue}:repeat"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut server.conn().await)
        .await
        .unwrap()
}

/// BullMQ's `id` counter: one INCR per upsert and per run produced.
async fn id_counter(server: &RedisServer, queue: &str) -> u64 {
    let v: Option<u64> = redis::cmd("GET")
        .arg(format!("bull:{queue}:id"))
        .query_async(&mut server.conn().await)
        .await
        .unwrap();
    v.unwrap_or(0)
}

#[tokio::test]
async fn creates_updates_and_prunes_only_its_own_schedules() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;

    // A schedule another BullMQ client made, and one with a clashing id.
    for id in ["node-made", "clash"] {
        node::run(
            "scheduler.mjs",
            &server.url(),
            &json!({"queue": "reports", "id": id, "repeat": {"every": 60_000},
                    "template": {"name": "node-job", "data": {"from": "node"}}}),
            DEADLINE,
        )
        .await;
    }

    let nightly = schedule(
        "reports",
        "nightly",
        json!({"pattern": "0 0 3 * * *", "tz": "Europe/Berlin", "name": "build-report",
               "data": {"kind": "nightly"}, "opts": {"attempts": 3}}),
    );
    let clash = schedule("reports", "clash", json!({"every": 5_000}));
    let api_made = schedule(
        "cache",
        "stats",
        json!({"every": 600_000, "name": "cache-warm"}),
    );
    store
        .put_schedule(&api_made, "key:ops", now_ms())
        .await
        .unwrap();

    let reconciler = Reconciler::new(
        conn.clone(),
        Some(store.clone()),
        vec![nightly.clone(), clash.clone()],
        config(),
    );
    let first = reconciler.pass().await.unwrap();
    assert_eq!(first.created, vec!["cache/stats", "reports/nightly"]);
    assert_eq!(first.foreign, vec!["reports/clash"]);
    assert!(first.updated.is_empty() && first.removed.is_empty());

    // As BullMQ's own client sees them: ours and Node's side by side, the
    // clashing one still Node's.
    let seen = node::run(
        "jobs.mjs",
        &server.url(),
        &json!({"queue": "reports", "ids": []}),
        DEADLINE,
    )
    .await;
    let mut by_id: Vec<(String, Value)> = seen["schedulers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["key"].as_str().unwrap().to_string(), s.clone()))
        .collect();
    by_id.sort_by(|a, b| a.0.cmp(&b.0));
    let ids: Vec<&str> = by_id.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(ids, ["clash", "nightly", "node-made"]);
    let node_nightly = &by_id[1].1;
    assert_eq!(node_nightly["pattern"], "0 0 3 * * *");
    assert_eq!(node_nightly["tz"], "Europe/Berlin");
    assert_eq!(node_nightly["name"], "build-report");
    assert_eq!(node_nightly["template"]["data"], json!({"kind": "nightly"}));
    assert_eq!(
        by_id[0].1["every"], 60_000,
        "the clashing Node schedule is untouched"
    );

    // A second pass changes nothing and writes no scheduler.
    let counter = id_counter(&server, "reports").await;
    let second = reconciler.pass().await.unwrap();
    assert!(!second.changed(), "{second:?}");
    assert_eq!(second.unchanged, 2);
    assert_eq!(id_counter(&server, "reports").await, counter);

    // A changed declaration is applied; a dropped one is removed; Node's
    // schedulers are never touched.
    let nightly_at_4 = schedule(
        "reports",
        "nightly",
        json!({"pattern": "0 0 4 * * *", "tz": "Europe/Berlin", "name": "build-report",
               "data": {"kind": "nightly"}, "opts": {"attempts": 3}}),
    );
    let reconciler = Reconciler::new(
        conn.clone(),
        Some(store.clone()),
        vec![nightly_at_4],
        config(),
    );
    let third = reconciler.pass().await.unwrap();
    assert_eq!(third.updated, vec!["reports/nightly"]);
    assert!(third.removed.is_empty());
    let view = live::get(&conn, &QueueName::new("reports").unwrap(), "nightly")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.pattern.as_deref(), Some("0 0 4 * * *"));
    assert_eq!(view.owner, Some(Owner::Config));
    assert_eq!(view.upcoming_ms.len(), 5);

    store
        .delete_schedule(&QueueName::new("cache").unwrap(), "stats")
        .await
        .unwrap();
    let reconciler = Reconciler::new(conn.clone(), Some(store.clone()), vec![], config());
    let fourth = reconciler.pass().await.unwrap();
    assert_eq!(fourth.removed, vec!["cache/stats", "reports/nightly"]);
    let left: BTreeSet<String> = pending(&server, "reports")
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        left,
        BTreeSet::from(["clash".to_string(), "node-made".to_string()])
    );
    assert!(pending(&server, "cache").await.is_empty());
}

#[tokio::test]
async fn many_reconcilers_at_once_leave_the_state_one_leaves() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let declared = vec![
        schedule("q", "every-second", json!({"every": 1_000})),
        schedule("q", "every-5s", json!({"pattern": "*/5 * * * * *"})),
        schedule(
            "q",
            "half-hourly",
            json!({"pattern": "0 */30 * * * *", "tz": "America/New_York"}),
        ),
        schedule(
            "q",
            "nightly",
            json!({"pattern": "0 0 3 * * *", "data": {"a": 1}}),
        ),
    ];
    let reconcilers: Vec<Arc<Reconciler>> = (0..3)
        .map(|_| {
            Arc::new(Reconciler::new(
                conn.clone(),
                None,
                declared.clone(),
                config(),
            ))
        })
        .collect();
    let mut tasks = Vec::new();
    for r in &reconcilers {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let mut created = Vec::new();
            for _ in 0..5 {
                let report = r.pass().await.unwrap();
                assert!(report.updated.is_empty(), "{report:?}");
                created.extend(report.created);
            }
            created
        }));
    }
    let mut created = Vec::new();
    for t in tasks {
        created.extend(t.await.unwrap());
    }
    created.sort();
    // Each schedule was created exactly once across the three.
    assert_eq!(
        created,
        ["q/every-5s", "q/every-second", "q/half-hourly", "q/nightly"]
    );
    // One upsert each, hence one INCR each; and exactly one pending run per
    // scheduler, the one the zset points at.
    assert_eq!(id_counter(&server, "q").await, 4);
    let delayed: BTreeSet<String> = server.zset("q", "delayed").await.into_iter().collect();
    let wait: BTreeSet<String> = server.list("q", "wait").await.into_iter().collect();
    let runs: BTreeSet<String> = delayed.union(&wait).cloned().collect();
    let expected: BTreeSet<String> = pending(&server, "q")
        .await
        .into_iter()
        .map(|(id, at)| format!("repeat:{id}:{at}"))
        .collect();
    assert_eq!(runs, expected);
}

/// Completes every job at once.
struct Complete;
impl Processor for Complete {
    fn process(&self, _job: ActiveJob) -> BoxFuture<'static, Disposition> {
        Box::pin(async { Disposition::Complete(Value::Null) })
    }
}

async fn consume(conn: &Connection, queue: &str) -> Consumer {
    let opts = ConsumerOptions {
        drain_delay: Duration::from_millis(200),
        ..ConsumerOptions::new(QueueName::new(queue).unwrap(), 2)
    };
    Consumer::start(conn, opts, Arc::new(Complete), Arc::new(Quiet))
        .await
        .unwrap()
}

/// Ids of every job in the queue's completed, wait and delayed sets.
async fn all_job_ids(server: &RedisServer, queue: &str) -> Vec<String> {
    let mut ids = server.zset(queue, "completed").await;
    ids.extend(server.list(queue, "wait").await);
    ids.extend(server.zset(queue, "delayed").await);
    ids
}

/// Tick times of a schedule's jobs: BullMQ's runs and caught-up ones.
fn ticks(ids: &[String], id: &str) -> (Vec<u64>, Vec<u64>) {
    let parse = |prefix: &str| -> Vec<u64> {
        let mut v: Vec<u64> = ids
            .iter()
            .filter_map(|j| j.strip_prefix(prefix))
            .map(|t| t.parse().unwrap())
            .collect();
        v.sort_unstable();
        v
    };
    (
        parse(&format!("repeat:{id}:")),
        parse(&format!("catchup-{id}-")),
    )
}

#[tokio::test]
async fn ticks_missed_while_nothing_ran_are_skipped_or_caught_up_once() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    const EVERY: u64 = 400;
    let declared = vec![
        schedule("t", "skipper", json!({"every": EVERY})),
        schedule(
            "t",
            "catcher",
            json!({"every": EVERY, "missed": "catch-up"}),
        ),
    ];
    let reconciler = Reconciler::new(conn.clone(), None, declared, config());
    assert_eq!(reconciler.pass().await.unwrap().created.len(), 2);

    // Runs on time: nothing is missed.
    let worker = consume(&conn, "t").await;
    wait_until("three runs of each", DEADLINE, || async {
        let (a, _) = ticks(&all_job_ids(&server, "t").await, "skipper");
        let (b, _) = ticks(&all_job_ids(&server, "t").await, "catcher");
        if a.len() >= 3 && b.len() >= 3 {
            Check::Done(())
        } else {
            Check::NotYet(format!("{a:?} {b:?}"))
        }
    })
    .await;
    let on_time = reconciler.pass().await.unwrap();
    assert!(on_time.missed.is_empty(), "{on_time:?}");

    // Every worker stops; the pending runs fall more than 4 ticks behind.
    worker.close(Duration::from_secs(5)).await;
    let stalled_at = pending(&server, "t")
        .await
        .iter()
        .map(|(_, at)| *at)
        .max()
        .unwrap();
    let resume_after = stalled_at + 4 * EVERY + EVERY / 2;
    let wait_ms = resume_after.saturating_sub(now_ms());
    // Waiting for wall-clock time itself, not for a state.
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;

    // Work resumes: BullMQ runs each pending run late and realigns.
    let resumed_at = now_ms();
    let worker = consume(&conn, "t").await;
    wait_until(
        "both schedules realigned past the outage",
        DEADLINE,
        || async {
            let p = pending(&server, "t").await;
            if p.iter().all(|(_, at)| *at > resumed_at) {
                Check::Done(())
            } else {
                Check::NotYet(format!("{p:?}"))
            }
        },
    )
    .await;
    let after = reconciler.pass().await.unwrap();
    let missed: std::collections::BTreeMap<&str, (u64, usize)> = after
        .missed
        .iter()
        .map(|(name, n, added)| (name.as_str(), (*n, *added)))
        .collect();
    let (skipped, none_added) = missed["t/skipper"];
    assert!(skipped >= 3, "{after:?}");
    assert_eq!(none_added, 0);
    let (caught, added) = missed["t/catcher"];
    assert!(caught >= 3, "{after:?}");
    assert_eq!(added as u64, caught);

    // The next pass finds nothing new: each missed tick is dealt with once.
    let again = reconciler.pass().await.unwrap();
    assert!(again.missed.is_empty(), "{again:?}");

    wait_until("caught-up jobs done", DEADLINE, || async {
        let waiting = server.list("t", "wait").await.len();
        if waiting == 0 {
            Check::Done(())
        } else {
            Check::NotYet(format!("{waiting} waiting"))
        }
    })
    .await;
    worker.close(Duration::from_secs(5)).await;
    let ids = all_job_ids(&server, "t").await;

    // Catch-up: BullMQ's runs and the caught-up ones tile the grid from the
    // first run to the pending one, each tick exactly once.
    let (runs, caught_up) = ticks(&ids, "catcher");
    assert_eq!(caught_up.len(), added);
    let mut all: Vec<u64> = runs.iter().chain(&caught_up).copied().collect();
    all.sort_unstable();
    let unique: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "a tick ran twice: {runs:?} {caught_up:?}"
    );
    for pair in all.windows(2) {
        assert_eq!(pair[1] - pair[0], EVERY, "a gap in {all:?}");
    }
    // Skip: BullMQ's runs only, with a gap of the skipped ticks.
    let (runs, caught_up) = ticks(&ids, "skipper");
    assert!(caught_up.is_empty());
    let gaps: u64 = runs.windows(2).map(|p| (p[1] - p[0]) / EVERY - 1).sum();
    assert_eq!(gaps, skipped, "{runs:?}");
}

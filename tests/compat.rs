//! Compatibility with the real BullMQ Node client (6.7.0, pinned in
//! `compat/package.json`), in both directions. Each scenario asserts exact
//! results and states as both sides see them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use support::*;
use testkit::{Check, ChildGuard, RedisServer, node, wait_until};

const NODE_DEADLINE: Duration = Duration::from_secs(60);

async fn node_add(server: &RedisServer, queue: &str, jobs: Value, bulk: bool) -> Vec<String> {
    let out = node::run(
        "add.mjs",
        &server.url(),
        &json!({ "queue": queue, "jobs": jobs, "bulk": bulk }),
        NODE_DEADLINE,
    )
    .await;
    out["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect()
}

/// Jobs, counts, workers and schedulers as Node's `Queue` reads them.
async fn node_view(server: &RedisServer, queue: &str, ids: &[String]) -> Value {
    node::run(
        "jobs.mjs",
        &server.url(),
        &json!({ "queue": queue, "ids": ids }),
        NODE_DEADLINE,
    )
    .await
}

fn node_worker(server: &RedisServer, drover: &Drover, params: &Value) -> ChildGuard {
    node::spawn("worker.mjs", &server.url(), params, drover.dir.path())
}

/// Lines a spawned Node worker printed.
fn node_lines(drover: &Drover) -> Vec<Value> {
    std::fs::read_to_string(drover.dir.path().join("worker.out"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

async fn wait_node_ready(drover: &Drover) {
    wait_until("node worker ready", NODE_DEADLINE, || async {
        if node_lines(drover).iter().any(|l| l["event"] == "ready") {
            Check::Done(())
        } else {
            Check::NotYet(format!("{:?}", node_lines(drover)))
        }
    })
    .await;
}

/// The order in which jobs became active, from the event stream.
async fn activation_order(server: &RedisServer, queue: &str) -> Vec<String> {
    server
        .events(queue)
        .await
        .into_iter()
        .filter(|(_, e)| e["event"] == "active")
        .map(|(_, e)| e["jobId"].clone())
        .collect()
}

#[tokio::test]
async fn node_add_and_add_bulk_are_processed_by_a_drover_worker() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let single = node_add(
        &server,
        "n2d",
        json!([
            { "name": "email", "data": { "to": "a@b.c", "n": 1 } },
            { "name": "resize", "data": { "w": 640, "tags": ["x", "y"] }, "opts": { "attempts": 2 } },
            { "name": "plain", "data": "just a string" }
        ]),
        false,
    )
    .await;
    let bulk = node_add(
        &server,
        "n2d",
        json!(
            (0..5)
                .map(|i| json!({ "name": format!("bulk-{i}"), "data": { "i": i } }))
                .collect::<Vec<_>>()
        ),
        true,
    )
    .await;
    let _worker = drover.spawn_worker("w", &["--queue", "n2d", "--concurrency", "4"]);
    let ids: Vec<String> = single.iter().chain(&bulk).cloned().collect();
    server
        .wait_count("n2d", "completed", ids.len(), Duration::from_secs(30))
        .await;

    let view = node_view(&server, "n2d", &ids).await;
    let jobs = view["jobs"].as_array().unwrap();
    let expected_names = [
        "email", "resize", "plain", "bulk-0", "bulk-1", "bulk-2", "bulk-3", "bulk-4",
    ];
    for (job, name) in jobs.iter().zip(expected_names) {
        assert_eq!(job["state"], "completed", "{job}");
        assert_eq!(job["name"], name);
        assert_eq!(
            job["returnvalue"], job["data"],
            "echo returns the data: {job}"
        );
        assert_eq!(job["attemptsMade"], 1);
        assert!(job["finishedOn"].as_u64().unwrap() >= job["processedOn"].as_u64().unwrap());
        assert!(
            job["processedBy"].as_str().unwrap().starts_with("drover-"),
            "{job}"
        );
    }
    assert_eq!(view["counts"]["completed"], 8);
    // BullMQ's getWorkers() sees the Drover worker's connection.
    let workers = view["workers"].as_array().unwrap();
    assert!(
        workers
            .iter()
            .any(|w| w["rawname"].as_str().unwrap().contains(":w:drover-")),
        "{workers:?}"
    );
}

#[tokio::test]
async fn drover_enqueue_is_processed_by_a_node_worker() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let _worker = node_worker(
        &server,
        &drover,
        &json!({ "queue": "d2n", "concurrency": 2 }),
    );
    wait_node_ready(&drover).await;
    let a = drover
        .enqueue(
            "d2n",
            "thumbnail",
            &json!({ "path": "/a.png", "sizes": [64, 128] }),
            &[],
        )
        .await;
    let b = drover
        .enqueue(
            "d2n",
            "ping",
            &json!({ "unicode": "héllo ✓" }),
            &["--attempts", "3", "--job-id", "custom-b"],
        )
        .await;
    assert_eq!(b, "custom-b");
    for id in [&a, &b] {
        server.wait_in("d2n", "completed", id).await;
    }
    // Node saw the data and name exactly as enqueued...
    let lines = node_lines(&drover);
    let seen: HashMap<String, &Value> = lines
        .iter()
        .filter(|l| l["event"] == "processing")
        .map(|l| (l["id"].as_str().unwrap().to_string(), l))
        .collect();
    assert_eq!(seen[&a]["name"], "thumbnail");
    assert_eq!(
        seen[&a]["data"],
        json!({ "path": "/a.png", "sizes": [64, 128] })
    );
    assert_eq!(seen[&b]["data"], json!({ "unicode": "héllo ✓" }));
    assert_eq!(seen[&b]["attemptsMade"], 0);
    // ...and Drover reads back Node's result.
    let job = drover.json(&["job", "d2n", &b, "--json"]).await;
    assert_eq!(job["state"], "completed");
    assert_eq!(
        job["returnvalue"],
        json!({ "echo": { "unicode": "héllo ✓" }, "by": "node" })
    );
    assert_eq!(job["attempts_made"], 1);
    let view = node_view(&server, "d2n", std::slice::from_ref(&b)).await;
    assert_eq!(view["jobs"][0]["opts"]["attempts"], 3);
}

/// Retries with fixed and exponential backoff, processed by Drover, end
/// where Node expects: `failed`, every attempt made, the last reason, one
/// stack per attempt, and the backoff delays between attempts.
#[tokio::test]
async fn retries_with_backoff_end_failed_as_node_expects() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let ids = node_add(
        &server,
        "retry",
        json!([
            { "name": "fixed", "data": { "fail": "kaput" },
              "opts": { "attempts": 3, "backoff": { "type": "fixed", "delay": 100 } } },
            { "name": "expo", "data": { "fail": "kaput" },
              "opts": { "attempts": 4, "backoff": { "type": "exponential", "delay": 50 } } },
            { "name": "flaky", "data": { "fail_attempts": 2 },
              "opts": { "attempts": 3, "backoff": 20 } }
        ]),
        false,
    )
    .await;
    let _worker = drover.spawn_worker("w", &["--queue", "retry", "--concurrency", "3"]);
    server.wait_in("retry", "failed", &ids[0]).await;
    server.wait_in("retry", "failed", &ids[1]).await;
    server.wait_in("retry", "completed", &ids[2]).await;
    let view = node_view(&server, "retry", &ids).await;
    let (fixed, expo, flaky) = (&view["jobs"][0], &view["jobs"][1], &view["jobs"][2]);
    assert_eq!(fixed["state"], "failed");
    assert_eq!(fixed["attemptsMade"], 3);
    assert_eq!(fixed["failedReason"], "kaput");
    assert_eq!(fixed["stacktrace"].as_array().unwrap().len(), 3);
    assert_eq!(expo["state"], "failed");
    assert_eq!(expo["attemptsMade"], 4);
    assert_eq!(expo["stacktrace"].as_array().unwrap().len(), 4);
    assert_eq!(flaky["state"], "completed");
    assert_eq!(flaky["attemptsMade"], 3);
    assert_eq!(view["counts"]["failed"], 2);

    // The delays announced between attempts follow each backoff.
    let mut delays: HashMap<String, Vec<u64>> = HashMap::new();
    for (written, e) in server.events("retry").await {
        if e["event"] == "delayed" {
            let due: u64 = e["delay"].parse().unwrap();
            delays
                .entry(e["jobId"].clone())
                .or_default()
                .push(due - written);
        }
    }
    let near = |got: &[u64], want: &[u64]| {
        got.len() == want.len() && got.iter().zip(want).all(|(g, w)| g.abs_diff(*w) <= 25)
    };
    assert!(
        near(&delays[&ids[0]], &[100, 100]),
        "fixed: {:?}",
        delays[&ids[0]]
    );
    assert!(
        near(&delays[&ids[1]], &[50, 100, 200]),
        "exponential: {:?}",
        delays[&ids[1]]
    );
    assert!(
        near(&delays[&ids[2]], &[20, 20]),
        "bare-number backoff: {:?}",
        delays[&ids[2]]
    );
}

/// The reverse: jobs Drover enqueued with retry options are retried by a
/// Node worker exactly as the options say.
#[tokio::test]
async fn drover_retry_options_drive_a_node_worker() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let _worker = node_worker(
        &server,
        &drover,
        &json!({ "queue": "rr", "behavior": "fail" }),
    );
    wait_node_ready(&drover).await;
    let id = drover
        .enqueue(
            "rr",
            "n",
            &json!({}),
            &["--attempts", "3", "--backoff", "exponential:40"],
        )
        .await;
    server.wait_in("rr", "failed", &id).await;
    let job = drover.json(&["job", "rr", &id, "--json"]).await;
    assert_eq!(job["attempts_made"], 3);
    assert_eq!(job["failed_reason"], format!("node says no to {id}"));
    let due_gaps: Vec<u64> = server
        .delayed_events("rr")
        .await
        .into_iter()
        .map(|(written, due)| due - written)
        .collect();
    assert_eq!(due_gaps.len(), 2);
    assert!(
        due_gaps[0].abs_diff(40) <= 25 && due_gaps[1].abs_diff(80) <= 25,
        "{due_gaps:?}"
    );
}

#[tokio::test]
async fn priorities_and_delays_are_ordered_the_same_on_both_sides() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    // Node adds while the queue is paused, then Drover drains it one by one:
    // plain jobs first (FIFO), then by priority, FIFO within a priority.
    node_add(
        &server,
        "prio",
        json!([{ "name": "seed", "data": {} }]),
        false,
    )
    .await;
    drover.ok(&["pause", "prio"]).await;
    node_add(
        &server,
        "prio",
        json!([
            { "name": "p3", "data": {}, "opts": { "priority": 3 } },
            { "name": "p1a", "data": {}, "opts": { "priority": 1 } },
            { "name": "plain1", "data": {} },
            { "name": "p2", "data": {}, "opts": { "priority": 2 } },
            { "name": "p1b", "data": {}, "opts": { "priority": 1 } },
            { "name": "plain2", "data": {} }
        ]),
        false,
    )
    .await;
    let _worker = drover.spawn_worker("w", &["--queue", "prio", "--concurrency", "1"]);
    drover.ok(&["resume", "prio"]).await;
    server
        .wait_count("prio", "completed", 7, Duration::from_secs(20))
        .await;
    let order = activation_order(&server, "prio").await;
    // ids: seed=1, p3=2, p1a=3, plain1=4, p2=5, p1b=6, plain2=7
    assert_eq!(order, vec!["1", "4", "7", "3", "6", "5", "2"]);

    // Delays: due order, not insertion order.
    let delayed = node_add(
        &server,
        "prio",
        json!([
            { "name": "d600", "data": {}, "opts": { "delay": 600 } },
            { "name": "d200", "data": {}, "opts": { "delay": 200 } },
            { "name": "d400", "data": {}, "opts": { "delay": 400 } }
        ]),
        false,
    )
    .await;
    server
        .wait_count("prio", "completed", 10, Duration::from_secs(20))
        .await;
    let order = activation_order(&server, "prio").await;
    assert_eq!(
        order[7..],
        [delayed[1].clone(), delayed[2].clone(), delayed[0].clone()]
    );

    // The reverse: Drover enqueues with priorities and delays into a
    // paused queue; a Node worker with concurrency 1 takes them in the same
    // order.
    let seed = drover.enqueue("prio2", "seed", &json!({}), &[]).await;
    drover.ok(&["pause", "prio2"]).await;
    let mut ids = vec![seed];
    for (name, flags) in [
        ("p3", vec!["--priority", "3"]),
        ("p1a", vec!["--priority", "1"]),
        ("plain1", vec![]),
        ("p2", vec!["--priority", "2"]),
        ("p1b", vec!["--priority", "1"]),
        ("plain2", vec![]),
    ] {
        ids.push(drover.enqueue("prio2", name, &json!({}), &flags).await);
    }
    let _node = node_worker(
        &server,
        &drover,
        &json!({ "queue": "prio2", "concurrency": 1 }),
    );
    wait_node_ready(&drover).await;
    drover.ok(&["resume", "prio2"]).await;
    server
        .wait_count("prio2", "completed", 7, Duration::from_secs(20))
        .await;
    let names: Vec<String> = node_lines(&drover)
        .iter()
        .filter(|l| l["event"] == "processing")
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        vec!["seed", "plain1", "plain2", "p1a", "p1b", "p2", "p3"]
    );
}

/// A job scheduler made in Node keeps producing its runs when only Drover
/// workers consume the queue (the next run is produced by whoever
/// processes the current one).
#[tokio::test]
async fn a_node_job_scheduler_keeps_firing_with_only_drover_workers() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let created = node::run(
        "scheduler.mjs",
        &server.url(),
        &json!({
            "queue": "sched", "id": "every-300",
            "repeat": { "every": 300 },
            "template": { "name": "tick", "data": { "from": "node" } }
        }),
        NODE_DEADLINE,
    )
    .await;
    assert_eq!(created["schedulers"][0]["key"], "every-300");
    let _worker = drover.spawn_worker("w", &["--queue", "sched", "--concurrency", "2"]);
    server
        .wait_count("sched", "completed", 5, Duration::from_secs(30))
        .await;
    let done = server.zset("sched", "completed").await;
    let mut millis: Vec<u64> = done
        .iter()
        .map(|id| {
            let rest = id
                .strip_prefix("repeat:every-300:")
                .unwrap_or_else(|| panic!("{id}"));
            rest.parse().unwrap()
        })
        .collect();
    millis.sort_unstable();
    for pair in millis.windows(2) {
        assert_eq!(
            (pair[1] - pair[0]) % 300,
            0,
            "runs on the 300 ms grid: {millis:?}"
        );
        assert!(pair[1] > pair[0]);
    }
    for id in &done {
        let h = server.job_hash("sched", id).await;
        assert_eq!(h["name"], "tick");
        assert_eq!(h["rjk"], "every-300");
        assert_eq!(h["returnvalue"], r#"{"from":"node"}"#);
    }
    // Node still sees its scheduler, with a pending next run.
    let view = node_view(&server, "sched", &[]).await;
    let scheduler = &view["schedulers"][0];
    assert_eq!(scheduler["key"], "every-300");
    assert!(
        scheduler["iterationCount"].as_u64().unwrap() >= 6,
        "{scheduler}"
    );
    assert!(scheduler["next"].as_u64().unwrap() > *millis.last().unwrap());
}

/// Node's `QueueEvents` receives what Drover workers emit.
#[tokio::test]
async fn node_queue_events_receive_drover_events() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    // QueueEvents reads from `$`: start it, and wait until it is blocked
    // reading the stream, before anything happens.
    let listener = tokio::spawn({
        let url = server.url();
        async move {
            node::run(
                "events.mjs",
                &url,
                &json!({ "queue": "ev", "until": { "completed": 1, "failed": 1 }, "timeoutMs": 30000 }),
                NODE_DEADLINE,
            )
            .await
        }
    });
    server.wait_blocked_in("xread").await;
    let good = drover
        .enqueue(
            "ev",
            "good",
            &json!({ "progress": [10, { "stage": "half" }], "x": 1 }),
            &[],
        )
        .await;
    let bad = drover
        .enqueue("ev", "bad", &json!({ "fail": "it broke" }), &[])
        .await;
    let _worker = drover.spawn_worker("w", &["--queue", "ev"]);
    let out = listener.await.unwrap();
    let received = out["received"].as_array().unwrap();
    let of = |event: &str, id: &str| -> Vec<&Value> {
        received
            .iter()
            .filter(|e| e["event"] == event && e["jobId"] == id)
            .collect()
    };
    assert_eq!(of("active", &good).len(), 1);
    assert_eq!(of("active", &bad).len(), 1);
    let progress: Vec<&Value> = of("progress", &good).iter().map(|e| &e["data"]).collect();
    assert_eq!(progress, vec![&json!(10), &json!({ "stage": "half" })]);
    let completed = of("completed", &good);
    assert_eq!(
        completed[0]["returnvalue"],
        json!({ "progress": [10, { "stage": "half" }], "x": 1 })
    );
    assert_eq!(completed[0]["prev"], "active");
    let failed = of("failed", &bad);
    assert_eq!(failed[0]["failedReason"], "it broke");
    assert_eq!(failed[0]["prev"], "active");
    assert_eq!(of("retries-exhausted", &bad).len(), 1);
}

/// SIGKILL a Drover worker mid-job: a Node worker recovers the job as
/// stalled and completes it. And the reverse.
#[tokio::test]
async fn stalled_jobs_are_recovered_across_implementations() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let fast_locks = ["--lock-duration", "1000", "--stalled-interval", "500"];

    // Drover dies holding a job; Node recovers it.
    let mut args = vec!["--queue", "k1"];
    args.extend_from_slice(&fast_locks);
    let mut doomed = drover.spawn_worker("doomed", &args);
    let id = drover
        .enqueue("k1", "n", &json!({ "sleep_ms": 600000 }), &[])
        .await;
    wait_until("drover holds the job", Duration::from_secs(20), || async {
        match active_len(&server, "k1").await {
            1 => Check::Done(()),
            n => Check::NotYet(format!("{n} active")),
        }
    })
    .await;
    doomed.signal(nix::sys::signal::Signal::SIGKILL);
    doomed.wait_exit(Duration::from_secs(5)).await;
    let _node = node_worker(
        &server,
        &drover,
        &json!({ "queue": "k1", "lockDuration": 1000, "stalledInterval": 500 }),
    );
    server.wait_in("k1", "completed", &id).await;
    let view = node_view(&server, "k1", std::slice::from_ref(&id)).await;
    let job = &view["jobs"][0];
    assert_eq!(job["state"], "completed");
    assert_eq!(job["stalledCounter"], 1);
    assert_eq!(job["returnvalue"]["by"], "node");
    assert_eq!(
        event_counts(&server, "k1", "stalled").await.get(&id),
        Some(&1)
    );

    // Node dies holding a job; Drover recovers it.
    let k2_logs = drover.dir.path().join("k2");
    std::fs::create_dir_all(&k2_logs).unwrap();
    let mut node_doomed = node::spawn(
        "worker.mjs",
        &server.url(),
        &json!({ "queue": "k2", "lockDuration": 1000, "stalledInterval": 500 }),
        &k2_logs,
    );
    let id = node_add(
        &server,
        "k2",
        json!([{ "name": "n", "data": { "node_sleep_ms": 600000 } }]),
        false,
    )
    .await
    .remove(0);
    wait_until("node holds the job", Duration::from_secs(30), || async {
        match active_len(&server, "k2").await {
            1 => Check::Done(()),
            n => Check::NotYet(format!("{n} active")),
        }
    })
    .await;
    node_doomed.signal(nix::sys::signal::Signal::SIGKILL);
    node_doomed.wait_exit(Duration::from_secs(5)).await;
    let mut args = vec!["--queue", "k2"];
    args.extend_from_slice(&fast_locks);
    let _rescuer = drover.spawn_worker("rescuer", &args);
    server.wait_in("k2", "completed", &id).await;
    let h = server.job_hash("k2", &id).await;
    assert_eq!(h["stc"], "1");
    assert!(h["pb"].starts_with("drover-"), "{h:?}");
    assert_eq!(h["returnvalue"], r#"{"node_sleep_ms":600000}"#);
}

/// Node and Drover workers share one queue of 10,000 jobs: every job is
/// completed exactly once, and both did a share.
#[tokio::test]
async fn mixed_node_and_drover_workers_complete_each_job_exactly_once() {
    const N: usize = 10_000;
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    // Keep the whole event history (4 events per job) to count completions.
    let out = node::run(
        "add.mjs",
        &server.url(),
        &json!({
            "queue": "mixed", "generate": { "count": N, "name": "n" },
            "bulk": true, "maxLenEvents": 100000
        }),
        NODE_DEADLINE,
    )
    .await;
    assert_eq!(out["ids"].as_array().unwrap().len(), N);
    let _node = node_worker(
        &server,
        &drover,
        &json!({ "queue": "mixed", "concurrency": 8, "name": "node-w" }),
    );
    let _rust = drover.spawn_worker("rust", &["--queue", "mixed", "--concurrency", "8"]);
    server
        .wait_count("mixed", "completed", N, Duration::from_secs(120))
        .await;

    let completions = event_counts(&server, "mixed", "completed").await;
    assert_eq!(completions.len(), N, "one completed event per job");
    assert!(completions.values().all(|n| *n == 1));
    assert!(event_counts(&server, "mixed", "failed").await.is_empty());
    // Each job was started once and finished once.
    let mut pipe = redis::pipe();
    for id in completions.keys() {
        pipe.hmget(format!("bull:mixed:{id}"), &["ats", "atm", "pb"]);
    }
    let rows: Vec<(String, String, String)> =
        pipe.query_async(&mut server.conn().await).await.unwrap();
    let mut by_worker: HashMap<String, usize> = HashMap::new();
    for (ats, atm, pb) in rows {
        assert_eq!((ats.as_str(), atm.as_str()), ("1", "1"));
        let who = if pb == "node-w" {
            "node"
        } else if pb.starts_with("drover-") {
            "drover"
        } else {
            "?"
        };
        *by_worker.entry(who.to_string()).or_default() += 1;
    }
    assert!(
        by_worker.get("node").is_some_and(|n| *n > 0),
        "{by_worker:?}"
    );
    assert!(
        by_worker.get("drover").is_some_and(|n| *n > 0),
        "{by_worker:?}"
    );
    assert_eq!(by_worker.values().sum::<usize>(), N, "{by_worker:?}");
}

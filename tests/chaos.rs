//! Chaos: worker processes killed at random, Redis killed and restarted
//! from its append-only file, the network between a worker and Redis cut
//! and restored, the API driven at twice its capacity. Each test checks
//! that no job is lost and none is completed twice, from Redis itself and
//! from the application the jobs push to.
//!
//! Short by default (CI); `DROVER_CHAOS_JOBS=100000` runs the kill test at
//! full size. Figures go to stderr (`--no-capture`) and RELIABILITY.md.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking
#![allow(clippy::print_stderr)] // the figures of a run are its report

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use queue_core::producer::{self, JobOptions, NewJob};
use queue_core::{Connection, QueueName, RedisSettings};
use serde_json::json;
use support::sink::Sink;
use support::stack::{ApiClient, Stack};
use support::*;
use testkit::proxy::TcpProxy;
use testkit::{Check, ChildGuard, RedisServer, wait_until};
use tokio::sync::Mutex;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Workers keep every finished job here: the tests look for each one.
const KEEP_ALL: &str = "[worker]\nremove_on_complete = false\nremove_on_fail = false\n\n\
                        [handler.http]\nbreaker_failures = 0\n";

fn write_config(drover: &Drover, text: &str) -> String {
    let path = drover.dir.path().join("chaos.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `fields` of each job's hash.
async fn job_fields(
    server: &RedisServer,
    queue: &str,
    ids: &[String],
    fields: &[&str],
) -> Vec<Vec<Option<String>>> {
    server
        .per_id(ids, |id| {
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(format!("bull:{queue}:{id}")).arg(fields);
            cmd
        })
        .await
}

/// Whether each id is in the sorted set `bull:<queue>:<set>`.
async fn members(server: &RedisServer, queue: &str, set: &str, ids: &[String]) -> Vec<bool> {
    let scores: Vec<Option<f64>> = server
        .per_id(ids, |id| {
            let mut cmd = redis::cmd("ZSCORE");
            cmd.arg(format!("bull:{queue}:{set}")).arg(id);
            cmd
        })
        .await;
    scores.into_iter().map(|s| s.is_some()).collect()
}

/// Keeps the queue's whole event stream (BullMQ trims it to 10,000 by
/// default), so completions can be counted per job.
async fn keep_events(server: &RedisServer, queue: &str, n: usize) {
    redis::cmd("HSET")
        .arg(format!("bull:{queue}:meta"))
        .arg("opts.maxLenEvents")
        .arg(n * 10 + 10_000)
        .query_async::<()>(&mut server.conn().await)
        .await
        .unwrap();
}

/// Must show: 4 worker processes, one SIGKILLed at random every few
/// seconds (and at least every eighth of the jobs) and restarted: every
/// job completes exactly once (one `completed` event, one finished
/// attempt), its side effect is recorded in the application, and the
/// attempts started are the stalls plus the one that finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_at_random_lose_no_job_and_complete_none_twice() {
    const QUEUE: &str = "chaos";
    const WORKERS: usize = 4;
    let n = env_usize("DROVER_CHAOS_JOBS", 3_000);
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let sink = Sink::start().await;
    keep_events(&server, QUEUE, n).await;
    let conn = Connection::connect(RedisSettings::for_url(server.url()).unwrap())
        .await
        .unwrap();
    let queue = QueueName::new(QUEUE).unwrap();
    let mut ids = Vec::with_capacity(n);
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| NewJob {
            name: "effect".into(),
            // Up to 20 ms in the application: jobs are in flight when a
            // worker dies.
            data: json!({ "i": i, "sleep_ms": i % 20 }),
            opts: JobOptions::default(),
        })
        .collect();
    for chunk in jobs.chunks(producer::MAX_BULK_JOBS) {
        ids.extend(producer::enqueue_bulk(&conn, &queue, chunk).await.unwrap());
    }
    let config = write_config(&drover, KEEP_ALL);
    let url = sink.url();
    let flags = [
        "--queue",
        QUEUE,
        "--concurrency",
        "16",
        "--handler",
        "http",
        "--url",
        &url,
        "--lock-duration",
        "4000",
        "--stalled-interval",
        "1000",
        // A job may be caught in many kills; it must still complete.
        "--max-stalled-count",
        "1000000",
        "--config",
        &config,
    ];
    let started = Instant::now();
    let mut generation = 0;
    let mut workers: Vec<ChildGuard> = (0..WORKERS)
        .map(|slot| drover.spawn_worker(&format!("w{slot}-0"), &flags))
        .collect();

    let deadline = Duration::from_secs(120 + (n as u64) / 100);
    let mut kills = 0;
    let mut last_kill = Instant::now();
    let mut done_at_last_kill = 0;
    let mut gap = Duration::from_millis(fastrand::u64(1_000..3_000));
    loop {
        let done = server.zcard(QUEUE, "completed").await + server.zcard(QUEUE, "failed").await;
        if done >= n {
            break;
        }
        assert!(
            started.elapsed() < deadline,
            "only {done} of {n} jobs finished in {deadline:?} ({kills} kills)"
        );
        if last_kill.elapsed() >= gap || done - done_at_last_kill >= n / 8 {
            let slot = fastrand::usize(..WORKERS);
            workers[slot].signal(Signal::SIGKILL);
            workers[slot].wait_exit(Duration::from_secs(10)).await;
            generation += 1;
            workers[slot] = drover.spawn_worker(&format!("w{slot}-{generation}"), &flags);
            kills += 1;
            last_kill = Instant::now();
            done_at_last_kill = done;
            gap = Duration::from_millis(fastrand::u64(1_000..3_000));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    drop(workers);

    assert_eq!(server.zcard(QUEUE, "failed").await, 0, "no job failed");
    assert_eq!(server.zcard(QUEUE, "completed").await, n);
    assert_eq!(server.llen(QUEUE, "wait").await, 0);
    assert_eq!(server.llen(QUEUE, "active").await, 0);
    assert!(
        members(&server, QUEUE, "completed", &ids)
            .await
            .iter()
            .all(|m| *m),
        "every job enqueued is in completed"
    );
    let completions = event_counts(&server, QUEUE, "completed").await;
    let twice: Vec<_> = completions.iter().filter(|(_, c)| **c != 1).collect();
    assert!(twice.is_empty(), "jobs completed more than once: {twice:?}");
    assert_eq!(completions.len(), n, "one completed event per job");

    let calls = sink.calls();
    let rows = job_fields(&server, QUEUE, &ids, &["atm", "ats", "stc"]).await;
    let num = |v: &Option<String>| v.as_deref().map_or(0, |s| s.parse::<u64>().unwrap());
    let (mut stalls, mut duplicate_effects, mut most_starts) = (0, 0, 0);
    for (id, row) in ids.iter().zip(&rows) {
        let (atm, ats, stc) = (num(&row[0]), num(&row[1]), num(&row[2]));
        let seen = u64::from(calls.get(id).copied().unwrap_or(0));
        assert_eq!(atm, 1, "job {id}: one finished attempt");
        assert_eq!(
            ats,
            stc + 1,
            "job {id}: every start but the last was a stall"
        );
        assert!(
            (1..=ats).contains(&seen),
            "job {id}: {seen} calls of the application for {ats} starts"
        );
        stalls += stc;
        duplicate_effects += seen - 1;
        most_starts = most_starts.max(ats);
    }
    assert_eq!(
        calls.len(),
        n,
        "the application saw every job, and no other"
    );
    assert!(kills >= 4, "{kills} kills");
    assert!(stalls > 0, "the kills caught jobs in flight");
    eprintln!(
        "chaos/kill: {n} jobs, {WORKERS} workers, {kills} SIGKILLs in {:.1}s; \
         {stalls} stalled-job recoveries, {duplicate_effects} repeated calls of the application \
         (at-least-once effects, each after a stall), most starts of one job {most_starts}; \
         lost 0, completed twice 0",
        elapsed.as_secs_f64()
    );
}

/// Enqueues over HTTP from `tasks` loops until `stop`.
struct Loops {
    /// Ids the API acknowledged (201).
    acked: Arc<Mutex<Vec<String>>>,
    /// Other answers, and requests without one.
    refused: Arc<Mutex<usize>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Loops {
    /// Waits for the loops to end (after `stop`): each request in flight
    /// is answered or fails within the client's timeout.
    async fn join(&mut self) {
        for task in self.tasks.drain(..) {
            task.await.unwrap();
        }
    }
}

fn enqueue_loops(
    client: &ApiClient,
    queue: &'static str,
    tasks: usize,
    stop: &Arc<AtomicBool>,
) -> Loops {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(0));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (client, stop, acked, refused) =
            (client.clone(), stop.clone(), acked.clone(), refused.clone());
        handles.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let job = json!({ "name": "e", "data": { "t": t, "i": i } });
                match client.enqueue(queue, &job).await {
                    Ok(id) => acked.lock().await.push(id),
                    Err(_) => {
                        *refused.lock().await += 1;
                        // Refused while Redis is down: try again soon.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    Loops {
        acked,
        refused,
        tasks: handles,
    }
}

async fn wait_acked(acked: &Mutex<Vec<String>>, n: usize, what: &str) {
    wait_until(what, Duration::from_secs(60), || async {
        let have = acked.lock().await.len();
        if have >= n {
            Check::Done(())
        } else {
            Check::NotYet(format!("{have} acknowledged"))
        }
    })
    .await;
}

/// Must show: Redis with `appendfsync always` SIGKILLed mid-run and
/// restarted on the same port and directory: every enqueue the API
/// acknowledged completes; the API, the workers and `drover scheduler`
/// recover without being restarted (new enqueues are acknowledged and
/// run, the schedule keeps firing, a workflow started afterwards is run
/// by the scheduler's orchestrator).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_with_aof_loses_no_acknowledged_enqueue() {
    const QUEUE: &str = "aof";
    let mut server =
        RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]).await;
    let stack = Stack::start(
        &server,
        &format!(
            "{KEEP_ALL}\n[api]\nkey_rate_limit_per_sec = 0\n\n\
             [scheduler]\nreconcile_interval_ms = 500\n\n\
             [[schedule]]\nid = \"tick\"\nqueue = \"{QUEUE}\"\nevery = 500\nname = \"tick\"\n"
        ),
    )
    .await;
    keep_events(&server, QUEUE, 10_000).await;
    // Jobs whose completion was cut short by the crash stay active until
    // their lock expires; short locks make that quick.
    let flags = [
        "worker",
        "--queue",
        QUEUE,
        "--concurrency",
        "8",
        "--lock-duration",
        "4000",
        "--stalled-interval",
        "1000",
    ];
    let _w1 = stack.spawn("w1", &flags);
    let _w2 = stack.spawn("w2", &flags);
    let mut scheduler = stack.spawn("scheduler", &["scheduler"]);
    let client = stack.client();
    let stop = Arc::new(AtomicBool::new(false));
    let mut loops = enqueue_loops(&client, QUEUE, 8, &stop);
    let (acked, refused) = (loops.acked.clone(), loops.refused.clone());

    wait_acked(&acked, 300, "300 enqueues acknowledged before the crash").await;
    server.kill();
    let killed_at = queue_core::now_ms();
    let refused_before = *refused.lock().await;
    wait_until(
        "the API refuses enqueues while Redis is down",
        Duration::from_secs(30),
        || async {
            let now = *refused.lock().await;
            if now > refused_before {
                Check::Done(())
            } else {
                Check::NotYet(format!("{now} refused"))
            }
        },
    )
    .await;
    let acked_at_kill = acked.lock().await.len();
    server.restart().await;
    let restarted = Instant::now();
    wait_acked(
        &acked,
        acked_at_kill + 1,
        "an enqueue acknowledged after the restart",
    )
    .await;
    let api_back = restarted.elapsed();
    wait_acked(
        &acked,
        acked_at_kill + 300,
        "300 more enqueues acknowledged after the restart",
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    loops.join().await;
    let acked: Vec<String> = acked.lock().await.clone();

    wait_until(
        "every acknowledged job completed",
        Duration::from_secs(60),
        || async {
            let missing = members(&server, QUEUE, "completed", &acked)
                .await
                .iter()
                .filter(|m| !**m)
                .count();
            if missing == 0 {
                Check::Done(())
            } else {
                Check::NotYet(format!("{missing} of {} not completed", acked.len()))
            }
        },
    )
    .await;
    let all_done = restarted.elapsed();
    let unique: HashSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len(), "every acknowledgement a new job");
    let completions = event_counts(&server, QUEUE, "completed").await;
    let mut rerun = 0;
    for (id, row) in acked
        .iter()
        .zip(job_fields(&server, QUEUE, &acked, &["atm", "stc"]).await)
    {
        assert_eq!(completions.get(id), Some(&1), "job {id} completed once");
        assert_eq!(
            row[0].as_deref(),
            Some("1"),
            "job {id}: one finished attempt"
        );
        if row[1].is_some() {
            rerun += 1;
        }
    }

    // The schedule fires after the restart, and is run.
    wait_until(
        "a scheduled run completed after the restart",
        Duration::from_secs(30),
        || async {
            let ids = server.zset(QUEUE, "completed").await;
            let ticks: Vec<String> = ids
                .into_iter()
                .filter(|id| id.starts_with("repeat:"))
                .collect();
            let finished = job_fields(&server, QUEUE, &ticks, &["finishedOn"]).await;
            let after = finished
                .iter()
                .filter_map(|r| r[0].as_deref().and_then(|s| s.parse::<u64>().ok()))
                .filter(|at| *at > killed_at)
                .count();
            if after > 0 {
                Check::Done(())
            } else {
                Check::NotYet(format!("{} ticks, none after the restart", ticks.len()))
            }
        },
    )
    .await;
    let tick_done = restarted.elapsed();

    // The scheduler's orchestrator runs a workflow started now.
    let (status, body) = client
        .call(
            "PUT",
            "/api/v1/workflows/after-crash",
            Some(&json!({"steps": [{"id": "one", "queue": QUEUE, "input": {"x": 1}}]})),
        )
        .await
        .unwrap();
    assert!(status == 201 || status == 200, "{status} {body}");
    let (status, run) = client
        .call(
            "POST",
            "/api/v1/workflows/after-crash/runs",
            Some(&json!({"input": {}})),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{run}");
    client.wait_run_completed(run["id"].as_str().unwrap()).await;
    assert!(
        scheduler.try_wait().is_none(),
        "the scheduler is still running"
    );
    let (status, ready) = client.call("GET", "/ready", None).await.unwrap();
    assert_eq!(status, 200, "{ready}");
    eprintln!(
        "chaos/aof: {} enqueues acknowledged ({acked_at_kill} before the SIGKILL of Redis), {} refused \
         while it was down; all acknowledged completed once ({rerun} run again after \
         their stall: the crash cut their completion short); lost 0. After the restart: first \
         acknowledgement {:.1}s, all completed {:.1}s, a scheduled run completed {:.1}s, \
         workflow completed {:.1}s",
        acked.len(),
        *refused.lock().await,
        api_back.as_secs_f64(),
        all_done.as_secs_f64(),
        tick_done.as_secs_f64(),
        restarted.elapsed().as_secs_f64(),
    );
}

/// Must show: the network between a worker and Redis cut long enough for
/// its job's lock to expire: another worker takes the job over and
/// completes it; when the network is back, the first worker's late
/// completion is refused by BullMQ's lock check (and logged), the job
/// stays completed once, and the first worker goes on taking jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cut_off_from_redis_cannot_complete_a_job_taken_over() {
    const QUEUE: &str = "cut";
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let sink = Sink::start().await;
    let config = write_config(&drover, KEEP_ALL);
    let proxy = TcpProxy::start(([127, 0, 0, 1], server.port()).into()).await;
    let url = sink.url();
    let flags = |stalled: &'static str| {
        vec![
            "worker".to_string(),
            "--queue".into(),
            QUEUE.into(),
            "--concurrency".into(),
            "2".into(),
            "--handler".into(),
            "http".into(),
            "--url".into(),
            url.clone(),
            "--lock-duration".into(),
            "2000".into(),
            "--stalled-interval".into(),
            stalled.into(),
            "--config".into(),
            config.clone(),
        ]
    };
    let a_flags = flags("1000");
    let a_args: Vec<&str> = a_flags.iter().map(String::as_str).collect();
    let proxied = format!("redis://127.0.0.1:{}", proxy.port());
    let a = drover.spawn_env("a", &a_args, &[("REDIS_URL", &proxied)]);

    let held = drover
        .enqueue(QUEUE, "held", &json!({ "hold": true }), &[])
        .await;
    wait_until(
        "worker a calls the application",
        Duration::from_secs(20),
        || async {
            match sink.calls_of(&held) {
                0 => Check::NotYet("no call yet".into()),
                n => Check::Done(n),
            }
        },
    )
    .await;

    let links = proxy.open_links();
    proxy.cut();
    let b_flags = flags("500");
    let b_args: Vec<&str> = b_flags.iter().map(String::as_str).collect();
    let mut b = drover.spawn("b", &b_args);
    server
        .wait_in_for(QUEUE, "completed", &held, Duration::from_secs(30))
        .await;
    let taken_over = server.job_hash(QUEUE, &held).await;
    assert_eq!(
        taken_over["returnvalue"],
        json!({"id": held, "call": 2}).to_string()
    );
    b.signal(Signal::SIGTERM);
    b.wait_exit(Duration::from_secs(15)).await;

    proxy.restore();
    // Every connection worker a had is back (its finishing script must
    // reach Redis, to be refused there).
    wait_until("worker a reconnects", Duration::from_secs(30), || async {
        match proxy.open_links() {
            open if open >= links => Check::Done(()),
            open => Check::NotYet(format!(
                "{open} of {links} connections, {} refused while cut",
                proxy.refused()
            )),
        }
    })
    .await;
    // Worker a's request is answered now: it completes its attempt, too
    // late.
    sink.release();
    let refusal = wait_until(
        "worker a's completion refused",
        Duration::from_secs(30),
        || async {
            let log = drover.log("a");
            match log.lines().find(|l| {
                l.contains(&format!("job_id={held} ")) && l.contains("failed to move job")
            }) {
                Some(line) => Check::Done(line.to_string()),
                None => Check::NotYet(log.lines().rev().take(5).collect::<Vec<_>>().join("\n")),
            }
        },
    )
    .await;

    assert!(
        refusal.contains("lock"),
        "refused by the lock check: {refusal}"
    );
    let after = server.job_hash(QUEUE, &held).await;
    assert_eq!(after, taken_over, "the refused completion changed nothing");
    assert_eq!(after["atm"], "1");
    assert_eq!(after["ats"], "2");
    assert_eq!(after["stc"], "1");
    assert_eq!(
        sink.calls_of(&held),
        2,
        "both workers called the application"
    );
    assert!(!server.zset(QUEUE, "failed").await.contains(&held));
    assert_eq!(
        event_counts(&server, QUEUE, "completed").await.get(&held),
        Some(&1)
    );

    // Worker a, alone now, goes on.
    let next = drover.enqueue(QUEUE, "next", &json!({}), &[]).await;
    server.wait_in(QUEUE, "completed", &next).await;
    let pb = &server.job_hash(QUEUE, &next).await["pb"];
    assert!(pb.ends_with(&format!("-{}", a.pid())), "{pb}");
    eprintln!("chaos/network-cut: late completion refused: {refusal}");
}

/// Must show: the API driven at twice the rate it sustained sheds the
/// excess at once with `503 overloaded` (or `429`), answers every request
/// (no timeout, no dropped connection), acknowledges only jobs it added,
/// and serves normally once the load is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_at_twice_its_capacity_sheds_load_and_recovers() {
    const QUEUE: &str = "load";
    let measure = Duration::from_secs(env_usize("DROVER_OVERLOAD_MEASURE_SECS", 3) as u64);
    let overload = Duration::from_secs(env_usize("DROVER_OVERLOAD_SECS", 5) as u64);
    let concurrency = 32;
    let server = RedisServer::start().await;
    let stack = Stack::start(
        &server,
        &format!("[api]\nkey_rate_limit_per_sec = 0\nmax_in_flight_requests = {concurrency}\n"),
    )
    .await;
    let client = stack.client();
    let job = json!({ "name": "e", "data": { "x": 1 } });

    // Capacity: what `concurrency` clients, each waiting for its answer
    // before the next request, get through.
    let stop = Arc::new(AtomicBool::new(false));
    let mut loops = enqueue_loops(&client, QUEUE, concurrency, &stop);
    let measuring = Instant::now();
    tokio::time::sleep(measure).await;
    stop.store(true, Ordering::SeqCst);
    loops.join().await;
    let measured = loops.acked.lock().await.len();
    let capacity = measured as f64 / measuring.elapsed().as_secs_f64();
    assert_eq!(*loops.refused.lock().await, 0, "no refusal at capacity");

    // Twice that, open loop: requests are sent on a clock, whatever the
    // answers.
    let rate = 2.0 * capacity;
    let tick = Duration::from_millis(10);
    let per_tick = (rate * tick.as_secs_f64()).ceil() as usize;
    let mut answers = Vec::new();
    let started = Instant::now();
    let mut clock = tokio::time::interval(tick);
    while started.elapsed() < overload {
        clock.tick().await;
        for _ in 0..per_tick {
            let (client, job) = (client.clone(), job.clone());
            answers.push(tokio::spawn(async move {
                client
                    .call("POST", &format!("/api/v1/queues/{QUEUE}/jobs"), Some(&job))
                    .await
            }));
        }
    }
    let sent = answers.len();
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    let mut ids = Vec::new();
    let mut failures = Vec::new();
    for answer in answers {
        match answer.await.unwrap() {
            Ok((status, body)) => {
                *by_status.entry(status).or_insert(0) += 1;
                match status {
                    201 => ids.push(body["id"].as_str().unwrap().to_string()),
                    503 => assert_eq!(body["error"]["code"], "overloaded", "{body}"),
                    429 => {}
                    other => failures.push(format!("{other}: {body}")),
                }
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {sent} requests had no proper answer, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    let shed =
        by_status.get(&503).copied().unwrap_or(0) + by_status.get(&429).copied().unwrap_or(0);
    assert!(shed > 0, "twice the capacity was not shed: {by_status:?}");
    // Every acknowledged job was added; nothing else was.
    let acked_total = measured + ids.len();
    assert_eq!(server.llen(QUEUE, "wait").await, acked_total);

    // The load is gone: requests are served again.
    wait_until("the API serves again", Duration::from_secs(30), || async {
        let mut statuses = Vec::new();
        for _ in 0..20 {
            statuses.push(client.enqueue(QUEUE, &job).await.is_ok());
        }
        if statuses.iter().all(|ok| *ok) {
            Check::Done(())
        } else {
            Check::NotYet(format!("{statuses:?}"))
        }
    })
    .await;
    eprintln!(
        "chaos/overload: capacity {capacity:.0} enqueues/s with {concurrency} clients; \
         driven at {rate:.0}/s for {overload:?}: {sent} requests, answers {by_status:?}, \
         0 without an answer"
    );
}

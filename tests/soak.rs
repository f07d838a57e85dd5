//! Soak: mixed load for a while (enqueues over HTTP, some failing; two
//! workers; a schedule every second; a stream of workflow runs), with the
//! memory of every process and of Redis sampled, the kept completed and
//! failed sets counted, and the enqueue latency's p99 per window.
//!
//! Short by default (CI, about a minute). The long run:
//! `DROVER_SOAK_SECS=1800 cargo nextest run -p drover --test soak --no-capture`
//! (`DROVER_SOAK_RATE` enqueues per second, default 100;
//! `DROVER_SOAK_REPORT=<file>` writes the samples as CSV). Runs of ten
//! minutes or more also check that memory stays flat: the mean of the last
//! fifth of the samples within 10% of the mean of the second fifth (the
//! first is warm-up, while the kept sets fill up to their retention).
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking
#![allow(clippy::print_stderr)] // the samples of a run are its report

mod support;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use support::stack::Stack;
use testkit::{Check, ChildGuard, RedisServer, wait_until};
use tokio::sync::Mutex;

const JOBS: &str = "soak";
const TICKS: &str = "soak-sched";
const STEPS: &str = "soak-wf";
/// Finished jobs the workers keep per queue (and the schedule's own).
const KEPT: usize = 1_000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Bytes Redis holds in what fills up by design over hours rather than
/// minutes: each queue's event stream (capped at BullMQ's `maxLenEvents`,
/// 10,000 entries) and the workflow step jobs the orchestrator keeps for a
/// week. Subtracted from `used_memory`, what is left must be flat once the
/// kept sets are full.
async fn slow_filling_bytes(server: &RedisServer) -> u64 {
    let mut keys: Vec<String> = [JOBS, TICKS, STEPS]
        .iter()
        .map(|q| format!("bull:{q}:events"))
        .collect();
    keys.extend(
        server
            .zset(STEPS, "completed")
            .await
            .into_iter()
            .map(|id| format!("bull:{STEPS}:{id}")),
    );
    let sizes: Vec<Option<u64>> = server
        .per_id(&keys, |key| {
            let mut cmd = redis::cmd("MEMORY");
            cmd.arg("USAGE").arg(key).arg("SAMPLES").arg(0);
            cmd
        })
        .await;
    sizes.into_iter().flatten().sum()
}

async fn redis_used_memory(server: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut server.conn().await)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// BullMQ's running count of jobs that finished this way (`metrics:<how>`).
async fn finished_total(server: &RedisServer, queue: &str, how: &str) -> u64 {
    let count: Option<u64> = redis::cmd("HGET")
        .arg(format!("bull:{queue}:metrics:{how}"))
        .arg("count")
        .query_async(&mut server.conn().await)
        .await
        .unwrap();
    count.unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One sample of the run.
#[derive(Debug, Clone)]
struct Sample {
    at_s: f64,
    /// RSS in KiB of serve, worker 1, worker 2, scheduler.
    rss: [u64; 4],
    redis_bytes: u64,
    /// `redis_bytes` less [`slow_filling_bytes`].
    redis_net_bytes: u64,
    completed_kept: usize,
    failed_kept: usize,
    ticks_kept: usize,
    steps_kept: usize,
    acked: usize,
    p50_ms: f64,
    p99_ms: f64,
}

/// What the load loop saw since the last sample.
#[derive(Default)]
struct Window {
    latencies_ms: Vec<f64>,
    acked: usize,
    failures: Vec<String>,
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Growth of the last fifth over the second fifth of `samples`.
fn growth(samples: &[Sample], value: impl Fn(&Sample) -> f64) -> f64 {
    let fifth = (samples.len() / 5).max(1);
    let base = mean(samples[fifth..2 * fifth].iter().map(&value));
    let last = mean(samples[samples.len() - fifth..].iter().map(&value));
    last / base - 1.0
}

/// Must show: under steady mixed load, memory stays flat (processes and
/// Redis), the kept completed and failed sets never grow beyond their
/// retention, every enqueue is answered and acknowledged, every job and
/// workflow run finishes, and the enqueue p99 per window is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_load_keeps_memory_flat_and_finished_sets_bounded() {
    let secs = env_u64("DROVER_SOAK_SECS", 45);
    let rate = env_u64("DROVER_SOAK_RATE", 100);
    let sample_every = Duration::from_secs(env_u64("DROVER_SOAK_SAMPLE_SECS", (secs / 60).max(5)));
    let server = RedisServer::start().await;
    let stack = Stack::start(
        &server,
        &format!(
            "[api]\nkey_rate_limit_per_sec = 0\n\n\
             [worker]\nremove_on_complete = {{ age = 3600, count = {KEPT} }}\n\
             remove_on_fail = {{ age = 3600, count = {KEPT} }}\n\n\
             [scheduler]\nreconcile_interval_ms = 1000\n\n\
             [[schedule]]\nid = \"tick\"\nqueue = \"{TICKS}\"\nevery = 1000\nname = \"tick\"\n\
             opts = {{ removeOnComplete = 100 }}\n"
        ),
    )
    .await;
    let queues = format!("{JOBS},{TICKS},{STEPS}");
    let flags = ["worker", "--queue", &queues, "--concurrency", "8"];
    let w1 = stack.spawn("w1", &flags);
    let w2 = stack.spawn("w2", &flags);
    let scheduler = stack.spawn("scheduler", &["scheduler"]);
    let pids = [stack.serve.pid(), w1.pid(), w2.pid(), scheduler.pid()];
    let client = stack.client();
    let (status, body) = client
        .call(
            "PUT",
            "/api/v1/workflows/soak-flow",
            Some(&json!({"steps": [
                {"id": "a", "queue": STEPS, "input": {"n": "{{ input.n }}"}},
                {"id": "b", "queue": STEPS, "depends_on": ["a"], "input": {"from_a": "{{ steps.a.output }}"}},
            ]})),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");

    // The load: `rate` enqueues a second on a clock (one in ten fails in
    // its worker), a workflow run every ten seconds (its two step jobs
    // are kept a week by the orchestrator, by design: they add up).
    let window = Arc::new(Mutex::new(Window::default()));
    let runs = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (client, window, runs, stop) =
            (client.clone(), window.clone(), runs.clone(), stop.clone());
        tokio::spawn(async move {
            let tick = Duration::from_millis(100);
            let per_tick = (rate / 10).max(1);
            let mut clock = tokio::time::interval(tick);
            let mut n = 0u64;
            let mut requests = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                clock.tick().await;
                for _ in 0..per_tick {
                    n += 1;
                    let data = if n % 10 == 0 {
                        json!({ "n": n, "fail": "soak failure" })
                    } else {
                        json!({ "n": n })
                    };
                    let (client, window) = (client.clone(), window.clone());
                    requests.push(tokio::spawn(async move {
                        let sent = Instant::now();
                        let answer = client
                            .enqueue(JOBS, &json!({ "name": "soak", "data": data }))
                            .await;
                        let ms = sent.elapsed().as_secs_f64() * 1_000.0;
                        let mut w = window.lock().await;
                        match answer {
                            Ok(_) => {
                                w.acked += 1;
                                w.latencies_ms.push(ms);
                            }
                            Err(e) => w.failures.push(format!("{e:?}")),
                        }
                    }));
                }
                if n % (per_tick * 100) == 0 {
                    let (client, runs) = (client.clone(), runs.clone());
                    requests.push(tokio::spawn(async move {
                        let answer = client
                            .call(
                                "POST",
                                "/api/v1/workflows/soak-flow/runs",
                                Some(&json!({"input": {"n": n}})),
                            )
                            .await;
                        runs.lock().await.push(answer);
                    }));
                }
                requests.retain(|r| !r.is_finished());
            }
            for r in requests {
                r.await.unwrap();
            }
        })
    };

    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut acked = 0;
    let mut failures = Vec::new();
    let mut next = started + sample_every;
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep_until(next.into()).await;
        next += sample_every;
        let w = std::mem::take(&mut *window.lock().await);
        acked += w.acked;
        failures.extend(w.failures);
        let mut lat = w.latencies_ms;
        lat.sort_by(f64::total_cmp);
        let redis_bytes = redis_used_memory(&server).await;
        let sample = Sample {
            at_s: started.elapsed().as_secs_f64(),
            rss: pids.map(rss_kib),
            redis_bytes,
            redis_net_bytes: redis_bytes.saturating_sub(slow_filling_bytes(&server).await),
            completed_kept: server.zcard(JOBS, "completed").await,
            failed_kept: server.zcard(JOBS, "failed").await,
            ticks_kept: server.zcard(TICKS, "completed").await,
            steps_kept: server.zcard(STEPS, "completed").await,
            acked,
            p50_ms: percentile(&lat, 50.0),
            p99_ms: percentile(&lat, 99.0),
        };
        eprintln!("soak: {sample:?}");
        assert!(
            sample.completed_kept <= KEPT && sample.failed_kept <= KEPT,
            "finished sets beyond their retention: {sample:?}"
        );
        assert!(sample.ticks_kept <= 100, "{sample:?}");
        samples.push(sample);
    }
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    let w = std::mem::take(&mut *window.lock().await);
    acked += w.acked;
    failures.extend(w.failures);
    assert!(
        failures.is_empty(),
        "{} enqueues not acknowledged, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );

    // Every acknowledged job finished: BullMQ's own counters of
    // completed and failed jobs add up to the acknowledgements.
    wait_until("every job finished", Duration::from_secs(120), || async {
        let done = finished_total(&server, JOBS, "completed").await
            + finished_total(&server, JOBS, "failed").await;
        if done == acked as u64 {
            Check::Done(())
        } else {
            Check::NotYet(format!("{done} of {acked} finished"))
        }
    })
    .await;
    let failed = finished_total(&server, JOBS, "failed").await;
    assert_eq!(failed, acked as u64 / 10, "one in ten failed, as sent");
    assert!(server.zcard(JOBS, "completed").await <= KEPT);

    // Every workflow run started completes.
    let runs: Vec<String> = runs
        .lock()
        .await
        .iter()
        .map(|r| match r {
            Ok((201, run)) => run["id"].as_str().unwrap().to_string(),
            other => panic!("a workflow run was not started: {other:?}"),
        })
        .collect();
    for run in &runs {
        client.wait_run_completed(run).await;
    }
    let alive: Vec<bool> = [w1, w2, scheduler]
        .into_iter()
        .map(|mut c: ChildGuard| c.try_wait().is_none())
        .collect();
    assert!(alive.iter().all(|a| *a), "every process ran to the end");

    report(&samples, secs, rate, acked, runs.len());
}

/// Prints (and with `DROVER_SOAK_REPORT`, writes) the samples and the
/// growth figures; checks flatness on long runs.
fn report(samples: &[Sample], secs: u64, rate: u64, acked: usize, runs: usize) {
    let mut csv = String::from(
        "at_s,rss_serve_kib,rss_worker1_kib,rss_worker2_kib,rss_scheduler_kib,redis_used_bytes,redis_net_bytes,\
         completed_kept,failed_kept,ticks_kept,wf_steps_kept,acked,p50_ms,p99_ms\n",
    );
    for s in samples {
        writeln!(
            csv,
            "{:.0},{},{},{},{},{},{},{},{},{},{},{},{:.1},{:.1}",
            s.at_s,
            s.rss[0],
            s.rss[1],
            s.rss[2],
            s.rss[3],
            s.redis_bytes,
            s.redis_net_bytes,
            s.completed_kept,
            s.failed_kept,
            s.ticks_kept,
            s.steps_kept,
            s.acked,
            s.p50_ms,
            s.p99_ms
        )
        .unwrap();
    }
    if let Ok(path) = std::env::var("DROVER_SOAK_REPORT") {
        std::fs::write(&path, &csv).unwrap();
    }
    let names = ["serve", "worker 1", "worker 2", "scheduler"];
    let mut growths: Vec<(String, f64)> = names
        .iter()
        .enumerate()
        .map(|(i, name)| (format!("RSS {name}"), growth(samples, |s| s.rss[i] as f64)))
        .collect();
    growths.push((
        "Redis used_memory less event streams and workflow step jobs".into(),
        growth(samples, |s| s.redis_net_bytes as f64),
    ));
    let raw = growth(samples, |s| s.redis_bytes as f64);
    let p99s: Vec<f64> = samples.iter().map(|s| s.p99_ms).collect();
    eprintln!(
        "soak: {secs}s at {rate} enqueues/s: {acked} acknowledged and finished, {runs} workflow runs \
         completed; growth (last fifth over second fifth): {}; Redis used_memory as is {:+.1}% \
         (from {} to {} bytes); p99 per window: min {:.1} ms, max {:.1} ms",
        growths
            .iter()
            .map(|(n, g)| format!("{n} {:+.1}%", g * 100.0))
            .collect::<Vec<_>>()
            .join(", "),
        raw * 100.0,
        samples.first().map_or(0, |s| s.redis_bytes),
        samples.last().map_or(0, |s| s.redis_bytes),
        p99s.iter().copied().fold(f64::INFINITY, f64::min),
        p99s.iter().copied().fold(0.0, f64::max),
    );
    if secs >= 600 {
        for (name, g) in &growths {
            assert!(*g <= 0.10, "{name} grew {:.1}% over the run", g * 100.0);
        }
    }
}

//! `autoscale`: how long a burst of 20,000 `echo` jobs of 50 ms takes to
//! drain with the autoscaler (process actuator, 1 to `--max` processes)
//! against a fixed minimum of one process. Both cases run `drover worker
//! --supervise` with the same flags; only the autoscaled one has a
//! `drover serve` whose policy scales the queue.
//!
//! Prints one line per run and a summary with medians and the ratio.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use drover_bench::procs::{WorkerProcess, target_dir};
use drover_bench::server::{RedisServer, free_port};
use queue_core::autoscale;
use queue_core::inspect;
use queue_core::producer::{self, JobOptions, NewJob};
use queue_core::{Connection, QueueName, RedisSettings, now_ms};
use tokio::process::Command;

/// The queue under test.
const QUEUE: &str = "burst";

#[derive(Debug, Parser)]
#[command(about = "Drain time of a 20,000-job burst: autoscaled vs a fixed minimum")]
struct Args {
    /// The `drover` binary (default: $CARGO_TARGET_DIR/release/drover).
    #[arg(long)]
    drover: Option<PathBuf>,
    /// `redis-server` to start.
    #[arg(long, default_value = "redis-server")]
    redis_server: String,
    /// Jobs in the burst.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// How long each job sleeps, in ms.
    #[arg(long, default_value_t = 50)]
    job_ms: u64,
    /// Jobs each worker process runs at once.
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    /// Most processes the autoscaler may run (the minimum is 1).
    #[arg(long, default_value_t = 8)]
    max: u32,
    /// Runs of each case, interleaved.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Autoscaled,
    FixedMin,
}

#[derive(Debug)]
struct Run {
    case: Case,
    drain: Duration,
    to_max: Option<Duration>,
    peak: u32,
}

#[tokio::main]
#[allow(clippy::print_stdout)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let drover = args
        .drover
        .clone()
        .unwrap_or_else(|| target_dir().join("release").join("drover"));
    if !drover.is_file() {
        bail!(
            "no drover binary at {}; build it with `cargo build --release -p drover`",
            drover.display()
        );
    }
    let redis = RedisServer::start(args.redis_server.as_ref()).await?;
    let conn = Connection::connect(RedisSettings::for_url(redis.url())?).await?;
    let dir = tempfile::tempdir()?;
    println!(
        "autoscale: {} jobs of {} ms, {} per process; autoscaled 1..{} processes vs fixed 1; {} cores",
        args.jobs,
        args.job_ms,
        args.concurrency,
        args.max,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut runs = Vec::new();
    for round in 0..args.rounds {
        for case in [Case::Autoscaled, Case::FixedMin] {
            let run = one(&args, &drover, &redis, &conn, dir.path(), case, round).await?;
            println!(
                "round {} {:?}: drained in {:.1} s ({:.0} jobs/s), max workers {} reached {}",
                round + 1,
                run.case,
                run.drain.as_secs_f64(),
                args.jobs as f64 / run.drain.as_secs_f64(),
                run.peak,
                run.to_max.map_or_else(
                    || "-".into(),
                    |d| format!("{} ms after the burst", d.as_millis())
                )
            );
            runs.push(run);
        }
    }
    let median = |case: Case| {
        let mut v: Vec<f64> = runs
            .iter()
            .filter(|r| r.case == case)
            .map(|r| r.drain.as_secs_f64())
            .collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (auto, fixed) = (median(Case::Autoscaled), median(Case::FixedMin));
    println!(
        "median drain: autoscaled {auto:.1} s, fixed minimum {fixed:.1} s; autoscaled is {:.1}x faster",
        fixed / auto
    );
    redis.stop().await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn one(
    args: &Args,
    drover: &Path,
    redis: &RedisServer,
    conn: &Connection,
    dir: &Path,
    case: Case,
    round: usize,
) -> Result<Run> {
    redis::cmd("FLUSHALL")
        .query_async::<()>(
            &mut redis::Client::open(redis.url())?
                .get_multiplexed_async_connection()
                .await?,
        )
        .await?;
    let config = dir.join("drover.toml");
    std::fs::write(
        &config,
        format!(
            "[worker]\nheartbeat_interval_ms = 1000\n[supervise]\npoll_interval_ms = 200\n\
             [autoscaler.queue.{QUEUE}]\nactuator = \"process\"\nmin_workers = 1\nmax_workers = {}\n",
            args.max
        ),
    )?;
    let label = format!("{case:?}-{round}");
    let command = |extra: &[&str]| {
        let mut cmd = Command::new(drover);
        cmd.args(extra)
            .arg("--config")
            .arg(&config)
            .env("REDIS_URL", redis.url())
            .env("DROVER_DATA_DIR", dir.join("data"))
            .env("RUST_LOG", "info");
        cmd
    };
    let serve = match case {
        Case::Autoscaled => {
            let addr = format!("127.0.0.1:{}", free_port()?);
            Some(WorkerProcess::spawn(
                command(&["serve", "--migrate", "--addr", &addr]),
                &dir.join(format!("serve-{label}.log")),
            )?)
        }
        Case::FixedMin => None,
    };
    let concurrency = args.concurrency.to_string();
    let mut supervisor = WorkerProcess::spawn(
        command(&[
            "worker",
            "--supervise",
            "--queue",
            QUEUE,
            "--concurrency",
            &concurrency,
            "--processes",
            "1",
        ]),
        &dir.join(format!("supervisor-{label}.log")),
    )?;
    let queue = QueueName::new(QUEUE)?;
    wait(Duration::from_secs(30), "one worker process", || async {
        Ok(live(conn).await? == 1)
    })
    .await?;
    if case == Case::Autoscaled {
        wait(
            Duration::from_secs(30),
            "the autoscaler's first tick",
            || async { Ok(autoscale::queue_status(conn, &queue).await?.is_some()) },
        )
        .await?;
    }
    let burst = now_ms();
    let started = Instant::now();
    let jobs: Vec<NewJob> = (0..args.jobs)
        .map(|_| NewJob {
            name: "echo".into(),
            data: serde_json::json!({ "sleep_ms": args.job_ms }),
            opts: serde_json::from_value::<JobOptions>(
                serde_json::json!({"removeOnComplete": true}),
            )
            .unwrap_or_default(),
        })
        .collect();
    for chunk in jobs.chunks(producer::MAX_BULK_JOBS) {
        producer::enqueue_bulk(conn, &queue, chunk).await?;
    }
    let mut peak = 0;
    let drain = loop {
        supervisor.check_alive()?;
        peak = peak.max(live(conn).await?);
        let c = &inspect::queue_counts(conn, std::slice::from_ref(&queue)).await?[0].1;
        if c.completed_total.unwrap_or(0) >= args.jobs as u64
            && c.waiting + c.active + c.prioritized + c.delayed == 0
        {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!("the burst did not drain in 15 minutes: {c:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let to_max = autoscale::recent_decisions(conn, Some(&queue), 100)
        .await?
        .into_iter()
        .filter(|d| d.at_ms >= burst && d.to == args.max)
        .map(|d| Duration::from_millis(d.at_ms - burst))
        .min();
    supervisor
        .terminate(Duration::from_secs(60))
        .await
        .context("stopping the supervisor")?;
    if let Some(serve) = serve {
        serve.terminate(Duration::from_secs(30)).await?;
    }
    Ok(Run {
        case,
        drain,
        to_max,
        peak,
    })
}

/// Live `drover worker` processes (heartbeats).
async fn live(conn: &Connection) -> Result<u32> {
    let workers = queue_core::registry::live_workers(
        conn,
        Duration::from_secs(3),
        Duration::from_secs(3_600),
    )
    .await?;
    Ok(u32::try_from(workers.len())?)
}

async fn wait<F, Fut>(within: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let started = Instant::now();
    while !check().await? {
        if started.elapsed() > within {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

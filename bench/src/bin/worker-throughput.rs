//! Worker throughput, bulk enqueue throughput and worker memory of three
//! BullMQ workers on one private redis-server: Node BullMQ's `Worker`, a
//! bare bullmq-official `Worker`, and `drover worker --handler echo`.
//!
//! Each (worker, concurrency) case: FLUSHALL, pause the queue, start the
//! worker process, wait until it blocks on the queue's marker, enqueue N
//! jobs through the worker's own client (the enqueue measurement), resume
//! at t0 and poll every 10 ms until no job is waiting or active (t1);
//! jobs/s = N / (t1 - t0). Then read the worker's VmHWM and SIGTERM it.
//! See `bench/README.md`.

// A measurement program: printing its results is its purpose.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use drover_bench::clients::{Producers, enqueue_node};
use drover_bench::probe::Probe;
use drover_bench::procs::{Launchers, WorkerKind, WorkerProcess, node_version};
use drover_bench::report::{CaseResult, Report};
use drover_bench::server::RedisServer;
use tokio::time::MissedTickBehavior;

/// How often the queue is polled while a worker drains it.
const POLL: Duration = Duration::from_millis(10);
/// How long a worker may take to connect and block on the queue's marker.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a worker may take to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// Measure worker and bulk-enqueue throughput of Node BullMQ, bare
/// bullmq-official and Drover on a private redis-server.
#[derive(Debug, Parser)]
#[command(name = "worker-throughput", max_term_width = 100)]
struct Args {
    /// No-op jobs per case.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    jobs: u64,
    /// Worker concurrencies, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,16,64,256",
        value_name = "C,..."
    )]
    concurrency: Vec<usize>,
    /// Workers to run, comma separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "node,bare,drover",
        value_name = "WORKER,..."
    )]
    only: Vec<WorkerKind>,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Runs of every case; the tables show medians. Rounds are interleaved
    /// (every case once, then again) so drift hits every worker alike.
    #[arg(long, default_value_t = 3, value_name = "R")]
    repeat: usize,
    /// Jobs per bulk enqueue call.
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    chunk: usize,
    /// The drover binary [default: $CARGO_TARGET_DIR/release/drover].
    #[arg(long, value_name = "PATH")]
    drover_bin: Option<PathBuf>,
    /// The bare-bullmq-worker binary [default: next to this program, else
    /// $CARGO_TARGET_DIR/release/bare-bullmq-worker].
    #[arg(long, value_name = "PATH")]
    bare_bin: Option<PathBuf>,
    /// The node executable.
    #[arg(long, default_value = "node", value_name = "PATH")]
    node: PathBuf,
    /// The redis-server executable.
    #[arg(long, default_value = "redis-server", value_name = "PATH")]
    redis_server: OsString,
    /// Keep the worker processes' logs (they are kept anyway when a case
    /// fails).
    #[arg(long)]
    keep_logs: bool,
    /// Give up on a case whose jobs are not all processed after this long.
    #[arg(long, default_value_t = 1_800, value_name = "SECS")]
    case_timeout: u64,
}

/// What every case needs.
struct Bench {
    probe: Probe,
    producers: Producers,
    launchers: Launchers,
    redis: (&'static str, u16),
    jobs: u64,
    chunk: usize,
    case_timeout: Duration,
    logs: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("worker-throughput: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<ExitCode> {
    if args.jobs == 0 || args.chunk == 0 || args.repeat == 0 {
        bail!("--jobs, --chunk and --repeat must be at least 1");
    }
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--concurrency needs values of at least 1");
    }
    let workers: Vec<WorkerKind> = WorkerKind::ALL
        .into_iter()
        .filter(|w| args.only.contains(w))
        .collect();
    let launchers = Launchers::locate(
        args.node.clone(),
        args.drover_bin.clone(),
        args.bare_bin.clone(),
        &workers,
    )?;
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; the in-process enqueue numbers (bare, drover) \
             are not representative. Build with --release."
        );
    }
    let node_version = if workers.contains(&WorkerKind::Node) {
        Some(node_version(&launchers.node)?)
    } else {
        None
    };
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let logs = tempfile::Builder::new()
        .prefix("drover-bench-logs-")
        .tempdir()
        .context("creating a log directory")?;

    let redis = RedisServer::start(&args.redis_server).await?;
    eprintln!(
        "redis-server on {} ({} cores, {} jobs per case, {} run(s) of each)",
        redis.url(),
        cores,
        args.jobs,
        args.repeat
    );
    let cases = tokio::select! {
        r = run_cases(&args, &workers, launchers, &redis, logs.path()) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    redis.stop().await?;
    let (redis_version, cases) = cases?;

    let report = Report {
        jobs: args.jobs,
        chunk: args.chunk,
        cores,
        redis_version,
        node_version,
        workers,
        concurrencies: args.concurrency.clone(),
        rounds: args.repeat,
        cases,
    };
    println!();
    print!("{}", report.header());
    println!();
    print!("{}", report.throughput_table());
    println!();
    print!("{}", report.spread_table());
    println!();
    print!("{}", report.enqueue_table());
    let notes = report.notes();
    if !notes.is_empty() {
        println!();
        for note in &notes {
            println!("note: {note}");
        }
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.to_json())?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("\nJSON written to {}", path.display());
    }
    let failed = report.cases.iter().any(|c| c.error.is_some());
    if failed || args.keep_logs {
        let kept = logs.keep();
        println!("worker logs kept in {}", kept.display());
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs every case, concurrency by concurrency so the workers are compared
/// under the same conditions; returns the server version and the results.
async fn run_cases(
    args: &Args,
    workers: &[WorkerKind],
    launchers: Launchers,
    redis: &RedisServer,
    logs: &Path,
) -> Result<(String, Vec<CaseResult>)> {
    let probe = Probe::connect(&redis.url()).await?;
    let bench = Bench {
        producers: Producers::connect(&redis.url()).await?,
        probe,
        launchers,
        redis: (redis.host(), redis.port()),
        jobs: args.jobs,
        chunk: args.chunk,
        case_timeout: Duration::from_secs(args.case_timeout),
        logs: logs.to_path_buf(),
    };
    let version = bench.probe.server_version().await?;
    bench.warm_up(workers).await?;
    let mut results = Vec::new();
    for round in 0..args.repeat {
        for &concurrency in &args.concurrency {
            for &worker in workers {
                let result = bench.case(round, worker, concurrency).await;
                eprintln!("{}", result.summary(args.jobs));
                results.push(result);
            }
        }
    }
    Ok((version, results))
}

impl Bench {
    /// One (worker, concurrency) case; failures are recorded, not returned.
    async fn case(&self, round: usize, worker: WorkerKind, concurrency: usize) -> CaseResult {
        let mut result = CaseResult::new(round, worker, concurrency);
        if let Err(e) = self.measure_case(&mut result).await {
            result.error = Some(format!("{e:#}"));
        }
        result
    }

    async fn measure_case(&self, result: &mut CaseResult) -> Result<()> {
        self.probe.flush_all().await?;
        self.producers.pause().await?;
        let clients_before = self.probe.max_client_id().await?;
        let log = self.logs.join(format!(
            "{}-c{}.log",
            result.worker.name(),
            result.concurrency
        ));
        let command = self
            .launchers
            .command(result.worker, self.redis, result.concurrency);
        let mut worker = WorkerProcess::spawn(command, &log)?;
        let measured = self
            .measure_worker(&mut worker, clients_before, result)
            .await;
        // Stop it whatever happened; a failed measurement is the error that
        // matters most.
        let stopped = worker.terminate(STOP_GRACE).await;
        measured?;
        result.stopped = Some(stopped?);
        Ok(())
    }

    async fn measure_worker(
        &self,
        worker: &mut WorkerProcess,
        clients_before: u64,
        result: &mut CaseResult,
    ) -> Result<()> {
        self.wait_until_waiting(worker, clients_before).await?;

        result.enqueue = Some(self.enqueue(result.worker, self.jobs).await?);
        worker.check_alive()?;
        let waiting = self.probe.waiting().await?;
        if waiting != self.jobs {
            bail!(
                "{waiting} jobs waiting after enqueue, expected {} (did the worker run jobs while paused?)",
                self.jobs
            );
        }

        let t0 = Instant::now();
        self.producers.resume().await?;
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let pending = self.probe.pending().await?;
            if pending == 0 {
                result.drain = Some(t0.elapsed());
                break;
            }
            worker.check_alive()?;
            if t0.elapsed() > self.case_timeout {
                bail!(
                    "{pending} of {} jobs still pending after {:?}",
                    self.jobs,
                    self.case_timeout
                );
            }
        }

        result.peak_rss_kib = Some(worker.peak_rss_kib()?);
        result.failed_jobs = Some(self.probe.finished().await?.1);
        Ok(())
    }

    /// Waits until a client the worker opened has issued BZPOPMIN: it is
    /// connected, found nothing to do (the queue is paused) and blocks on
    /// the queue's marker, which the resume will write.
    async fn wait_until_waiting(&self, worker: &mut WorkerProcess, after_id: u64) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            worker.check_alive()?;
            if self.probe.worker_waiting(after_id).await? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the worker did not block on the queue within {READY_TIMEOUT:?}; its log ends with:\n{}",
                    worker.log_tail(20)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Adds one chunk of jobs through each client and flushes them, so
    /// Redis has compiled every client's add scripts before any timed
    /// enqueue (otherwise the first timed run of a client pays for loading
    /// them, once per concurrent call).
    async fn warm_up(&self, workers: &[WorkerKind]) -> Result<()> {
        self.probe.flush_all().await?;
        self.producers.pause().await?;
        let jobs = self.jobs.min(self.chunk as u64);
        for &worker in workers {
            self.enqueue(worker, jobs)
                .await
                .with_context(|| format!("warming up the {} client", worker.name()))?;
        }
        self.probe.flush_all().await
    }

    /// Enqueues `jobs` jobs through `worker`'s own client.
    async fn enqueue(&self, worker: WorkerKind, jobs: u64) -> Result<Duration> {
        match worker {
            WorkerKind::Node => {
                enqueue_node(
                    &self.launchers.node,
                    &self.launchers.node_scripts.join("enqueue.mjs"),
                    self.redis,
                    jobs,
                    self.chunk,
                    self.case_timeout,
                )
                .await
            }
            WorkerKind::Bare => self.producers.enqueue_bare(jobs, self.chunk).await,
            WorkerKind::Drover => self.producers.enqueue_drover(jobs, self.chunk).await,
        }
    }
}

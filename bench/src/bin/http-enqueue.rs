//! HTTP enqueue throughput and latency: `drover serve` against the
//! reference users build themselves, Express + Node BullMQ
//! (`bench/node/express-enqueue.mjs`), on one private redis-server.
//!
//! Each run of a target: FLUSHALL, start the server, wait for `GET /health`,
//! send one test job (must answer 201 with an id), warm up with wrk for a
//! few seconds on one queue, then measure with
//! `wrk -t T -c C -d D --latency` posting the same small JSON job, with the
//! same headers, to a fresh queue. Afterwards the jobs in that queue must
//! equal wrk's 2xx responses, plus at most the requests still in flight
//! when wrk stopped; otherwise the run fails. Then the server's VmHWM is
//! read and it gets SIGTERM. Rounds are interleaved, alternating which
//! target goes first; the table shows medians. See `bench/README.md`.

// A measurement program: printing its results is its purpose.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use drover_bench::PREFIX;
use drover_bench::cpu::{self, CpuUse, QuietWait};
use drover_bench::http::{self, DroverServer, Target};
use drover_bench::probe::Probe;
use drover_bench::procs::{Stopped, WorkerProcess, node_version, target_dir};
use drover_bench::report::median;
use drover_bench::server::{RedisServer, free_port};
use drover_bench::wrk::{self, Outcome};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// How long a server may take to answer `GET /health` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// wrk's `--timeout`: slower responses count as timeouts (and fail the run)
/// instead of entering the latency histogram.
const WRK_TIMEOUT: Duration = Duration::from_secs(10);
/// The job count is read this often after wrk stops...
const SETTLE_POLL: Duration = Duration::from_millis(50);
/// ...until it has not changed for this long...
const SETTLE_QUIET: Duration = Duration::from_millis(500);
/// ...or this long has passed.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The queue of the test job and the warm-up.
const WARMUP_QUEUE: &str = "http-bench-warmup";
/// The queue of the measured phase (fresh: the server is flushed first).
const MEASURE_QUEUE: &str = "http-bench";
/// The job name of every request.
const JOB_NAME: &str = "bench";
/// CPU of other programs (machine busy time the benchmark's processes do
/// not account for), in cores, above which a run is flagged as disturbed.
const OTHER_CPU_NOTE: f64 = 0.15;
/// Before each run the machine counts as quiet below this many busy cores
/// (the idle redis-server and this program use almost none)...
const QUIET_CORES: f64 = 0.15;
/// ...averaged over this long.
const QUIET_SAMPLE: Duration = Duration::from_secs(1);

/// Measure HTTP enqueue throughput and latency of `drover serve` and an
/// Express + Node BullMQ reference server on a private redis-server.
#[derive(Debug, Parser)]
#[command(name = "http-enqueue", max_term_width = 100)]
struct Args {
    /// Seconds of measured load per run (wrk -d).
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    duration_secs: u64,
    /// Seconds of unmeasured load before each measured run, to a separate
    /// queue (0: none).
    #[arg(long, default_value_t = 3, value_name = "SECS")]
    warmup_secs: u64,
    /// Open connections, each with one request in flight (wrk -c).
    #[arg(long, default_value_t = 64, value_name = "N")]
    connections: usize,
    /// wrk threads (wrk -t).
    #[arg(long, default_value_t = 2, value_name = "N")]
    threads: usize,
    /// Runs of every target; the table shows medians. Rounds are
    /// interleaved, alternating which target goes first.
    #[arg(long, default_value_t = 3, value_name = "R")]
    rounds: usize,
    /// Targets to run, comma separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "drover,express",
        value_name = "TARGET,..."
    )]
    only: Vec<Target>,
    /// The drover binary [default: $CARGO_TARGET_DIR/release/drover, else
    /// target/release/drover].
    #[arg(long, value_name = "PATH")]
    drover_bin: Option<PathBuf>,
    /// The node executable.
    #[arg(long, default_value = "node", value_name = "PATH")]
    node: PathBuf,
    /// The wrk executable.
    #[arg(long, default_value = "wrk", value_name = "PATH")]
    wrk: PathBuf,
    /// The redis-server executable.
    #[arg(long, default_value = "redis-server", value_name = "PATH")]
    redis_server: OsString,
    /// Write the results as JSON here [default:
    /// bench/results/http-enqueue-<UTC date>.json, written only when every
    /// run passed].
    #[arg(long, value_name = "FILE", conflicts_with = "no_json")]
    json: Option<PathBuf>,
    /// Write no JSON.
    #[arg(long)]
    no_json: bool,
    /// Before each run, wait up to this long for the machine to be quiet
    /// (below 0.15 busy cores over 1 s), so another program's burst (a
    /// compile, say) does not land in a measurement; 0: do not wait.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    quiet_wait_secs: u64,
    /// Repeat a run disturbed by other programs (more than 0.15 cores of
    /// the machine's busy time not used by the benchmark) up to this many
    /// times; the disturbed attempts are listed but left out of the medians.
    #[arg(long, default_value_t = 2, value_name = "N")]
    retries: usize,
    /// Keep the servers' logs and wrk's reports (they are kept anyway when
    /// a run fails).
    #[arg(long)]
    keep_logs: bool,
}

/// What one (target, round) run measured; fields stay `None` when the run
/// failed before reaching them.
#[derive(Debug)]
struct RunResult {
    round: usize,
    target: Target,
    warmup: Option<Outcome>,
    measured: Option<Outcome>,
    /// Jobs in the measured queue once it settled.
    jobs: Option<u64>,
    /// CPU used during the measured phase.
    cpu: Option<CpuUse>,
    /// The wait for a quiet machine before the run.
    quiet: Option<QuietWait>,
    /// Other programs disturbed it and it was run again: left out of the
    /// medians.
    repeated: bool,
    peak_rss_kib: Option<u64>,
    stopped: Option<Stopped>,
    error: Option<String>,
}

impl RunResult {
    fn new(round: usize, target: Target) -> Self {
        Self {
            round,
            target,
            warmup: None,
            measured: None,
            jobs: None,
            cpu: None,
            quiet: None,
            repeated: false,
            peak_rss_kib: None,
            stopped: None,
            error: None,
        }
    }

    /// The measurement, if the run passed and counts.
    fn passed(&self) -> Option<&Outcome> {
        self.measured
            .as_ref()
            .filter(|_| self.error.is_none() && !self.repeated)
    }

    /// Other programs used a noticeable share of the machine while it was
    /// measured.
    fn disturbed(&self) -> bool {
        self.cpu.is_some_and(|c| c.other() > OTHER_CPU_NOTE)
    }

    /// Jobs added by requests wrk did not count as answered (in flight when
    /// it stopped).
    fn in_flight_jobs(&self) -> Option<i64> {
        let (jobs, m) = (self.jobs?, self.measured.as_ref()?);
        Some(i64::try_from(jobs).ok()? - i64::try_from(m.ok_responses()).ok()?)
    }

    fn summary(&self) -> String {
        let run = format!("#{} {:>7}", self.round + 1, self.target.name());
        let measured = self.measured.as_ref().map_or_else(String::new, |m| {
            format!(
                "{:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  non-2xx {}  errors {}  jobs {} (+{} in flight)  peak RSS {:.1} MiB  {}",
                m.ok_per_sec(),
                ms(m.latency.p50),
                ms(m.latency.p99),
                m.non_2xx_3xx,
                m.errors.total(),
                self.jobs.map_or_else(|| "-".to_string(), |j| j.to_string()),
                self.in_flight_jobs()
                    .map_or_else(|| "-".to_string(), |j| j.to_string()),
                self.peak_rss_kib.map_or(0.0, mib),
                self.cpu.map_or_else(String::new, |c| format!(
                    "cores: server {:.2} redis {:.2} wrk {:.2} other {:.2}",
                    c.server,
                    c.redis,
                    c.load,
                    c.other()
                )),
            )
        });
        match &self.error {
            Some(e) => format!(
                "{run} FAILED: {e}{}",
                if measured.is_empty() {
                    String::new()
                } else {
                    format!("\n   ({measured})")
                }
            ),
            None => format!("{run} {measured}"),
        }
    }
}

/// What every run needs.
struct Bench {
    probe: Probe,
    redis_url: String,
    redis_pid: Pid,
    wrk: PathBuf,
    script: PathBuf,
    request: wrk::Request,
    node: PathBuf,
    express_script: PathBuf,
    drover: Option<DroverServer>,
    threads: usize,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    quiet_wait: Duration,
    logs: PathBuf,
}

/// Versions and settings for the header and the JSON.
#[derive(Debug, Default)]
struct Meta {
    date: String,
    cores: usize,
    redis: String,
    wrk: String,
    drover: Option<String>,
    node: Option<String>,
    express: Option<String>,
    bullmq: Option<String>,
    ioredis: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("http-enqueue: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<ExitCode> {
    if args.duration_secs == 0 || args.rounds == 0 || args.threads == 0 {
        bail!("--duration-secs, --rounds and --threads must be at least 1");
    }
    if args.connections < args.threads {
        bail!("--connections must be at least --threads (wrk gives every thread a connection)");
    }
    let targets: Vec<Target> = Target::ALL
        .into_iter()
        .filter(|t| args.only.contains(t))
        .collect();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut meta = Meta {
        date: utc_date(SystemTime::now()),
        cores: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        wrk: wrk::version(&args.wrk)?,
        ..Meta::default()
    };
    let drover_bin = if targets.contains(&Target::Drover) {
        Some(locate_drover(args.drover_bin.clone(), manifest)?)
    } else {
        None
    };
    let express_script = manifest.join("node/express-enqueue.mjs");
    if targets.contains(&Target::Express) {
        let modules = manifest.join("../compat/node_modules");
        let version = |package: &str| -> Result<String> {
            let path = modules.join(package).join("package.json");
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "{package} is not installed in compat/ ({} is missing); run \
                     `npm install --prefix compat --no-audit --no-fund` from the repository root",
                    path.display()
                )
            })?;
            let v: Value = serde_json::from_str(&text)?;
            Ok(v["version"].as_str().unwrap_or("unknown").to_string())
        };
        meta.express = Some(version("express")?);
        meta.bullmq = Some(version("bullmq")?);
        meta.ioredis = Some(version("ioredis")?);
        meta.node = Some(node_version(&args.node)?);
    }
    if cfg!(debug_assertions) {
        eprintln!("note: this harness is a debug build; that is fine, it only orchestrates");
    }
    let logs = tempfile::Builder::new()
        .prefix("drover-bench-http-")
        .tempdir()
        .context("creating a log directory")?;

    let redis = RedisServer::start(&args.redis_server).await?;
    eprintln!(
        "redis-server on {} ({} cores shared by wrk, redis-server and the server under test)",
        redis.url(),
        meta.cores
    );
    let runs = tokio::select! {
        r = run_all(&args, &targets, drover_bin.as_deref(), &express_script, &redis, logs.path(), &mut meta) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    redis.stop().await?;
    let (runs, request) = runs?;

    let report = Report {
        args: &args,
        targets: &targets,
        meta: &meta,
        request: &request,
        runs: &runs,
    };
    println!();
    print!("{}", report.header());
    println!();
    print!("{}", report.table());
    println!();
    print!("{}", report.ratios());
    println!();
    print!("{}", report.runs_table());
    let notes = report.notes();
    let failed = runs.iter().any(|r| r.error.is_some());
    if !notes.is_empty() {
        println!();
        for note in &notes {
            println!("note: {note}");
        }
    }
    let json_path = match (&args.json, args.no_json, failed) {
        (_, true, _) => None,
        (Some(path), false, _) => Some(path.clone()),
        (None, false, false) => Some(
            manifest
                .join("results")
                .join(format!("http-enqueue-{}.json", meta.date)),
        ),
        (None, false, true) => {
            println!("\nno JSON written: a run failed (pass --json FILE to write it anyway)");
            None
        }
    };
    if let Some(path) = json_path {
        let text = serde_json::to_string_pretty(&report.to_json())?;
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("\nJSON written to {}", path.display());
    }
    if failed || args.keep_logs {
        let kept = logs.keep();
        println!("server logs and wrk reports kept in {}", kept.display());
    }
    if failed {
        println!("\nFAILED: at least one run failed; its figures are left out of the tables.");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `--drover-bin`, else `$CARGO_TARGET_DIR/release/drover` (default
/// `$HOME/.cache/drover-target`), else the workspace's
/// `target/release/drover`.
fn locate_drover(flag: Option<PathBuf>, manifest: &Path) -> Result<PathBuf> {
    if let Some(path) = flag {
        if !path.is_file() {
            bail!("--drover-bin {}: no such file", path.display());
        }
        return Ok(path);
    }
    let candidates = [
        target_dir().join("release/drover"),
        manifest.join("../target/release/drover"),
    ];
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    bail!(
        "drover not found at {}; build it with\n  \
         CARGO_TARGET_DIR={} cargo build --release -p drover\n\
         or point to it with --drover-bin (or run --only express)",
        candidates[0].display(),
        target_dir().display()
    )
}

/// Prepares the targets, then runs every round; returns the runs and the
/// request sent.
async fn run_all(
    args: &Args,
    targets: &[Target],
    drover_bin: Option<&Path>,
    express_script: &Path,
    redis: &RedisServer,
    logs: &Path,
    meta: &mut Meta,
) -> Result<(Vec<RunResult>, wrk::Request)> {
    let probe = Probe::connect(&redis.url()).await?;
    meta.redis = probe.server_version().await?;
    let drover = match drover_bin {
        Some(bin) => {
            let server = DroverServer::prepare(bin, &redis.url()).await?;
            meta.drover = Some(server.version().to_string());
            Some(server)
        }
        None => None,
    };
    // The same bytes go to both servers: Express ignores the key.
    let token = drover
        .as_ref()
        .map_or("drv_unused-by-express", DroverServer::token);
    let request = wrk::Request {
        method: "POST".to_string(),
        headers: vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Authorization".to_string(), format!("Bearer {token}")),
        ],
        // Written out so its keys stay in this order on the wire.
        body: format!(
            r#"{{"name":"{JOB_NAME}","data":{{"to":"user@example.com","template":"welcome","userId":4217}}}}"#
        ),
    };
    let script = wrk::write_script(logs, "post-job.lua", &wrk::script(&request))?;
    let bench = Bench {
        probe,
        redis_url: redis.url(),
        redis_pid: redis.pid(),
        wrk: args.wrk.clone(),
        script,
        request,
        node: args.node.clone(),
        express_script: express_script.to_path_buf(),
        drover,
        threads: args.threads,
        connections: args.connections,
        duration: Duration::from_secs(args.duration_secs),
        warmup: Duration::from_secs(args.warmup_secs),
        quiet_wait: Duration::from_secs(args.quiet_wait_secs),
        logs: logs.to_path_buf(),
    };
    let mut runs = Vec::new();
    for round in 0..args.rounds {
        // Alternate which target goes first, so drift over the run (Redis
        // memory growing, the machine warming) does not favour one.
        let mut order = targets.to_vec();
        if round % 2 == 1 {
            order.reverse();
        }
        for target in order {
            for attempt in 0.. {
                let mut result = bench.run(round, target).await;
                eprintln!("{}", result.summary());
                let again = result.error.is_none() && result.disturbed() && attempt < args.retries;
                if again {
                    eprintln!("   other programs disturbed this run: running it again");
                    result.repeated = true;
                }
                runs.push(result);
                if !again {
                    break;
                }
            }
        }
    }
    Ok((runs, bench.request))
}

impl Bench {
    /// One (target, round) run; failures are recorded, not returned.
    async fn run(&self, round: usize, target: Target) -> RunResult {
        let mut result = RunResult::new(round, target);
        if !self.quiet_wait.is_zero() {
            match self.wait_quiet().await {
                Ok(quiet) => result.quiet = Some(quiet),
                Err(e) => {
                    result.error = Some(format!("{e:#}"));
                    return result;
                }
            }
        }
        if let Err(e) = self.measure_run(&mut result).await {
            result.error = Some(format!("{e:#}"));
        }
        result
    }

    async fn measure_run(&self, result: &mut RunResult) -> Result<()> {
        self.probe.flush_all().await?;
        let port = free_port()?;
        let name = format!("{}-r{}", result.target.name(), result.round + 1);
        let command = match result.target {
            Target::Drover => self
                .drover
                .as_ref()
                .context("drover was not prepared")?
                .serve_command(&self.redis_url, port),
            Target::Express => {
                http::express_command(&self.node, &self.express_script, &self.redis_url, port)
            }
        };
        let mut server = WorkerProcess::spawn(command, &self.logs.join(format!("{name}.log")))?;
        let measured = self.measure_server(&mut server, port, &name, result).await;
        // Stop it whatever happened; a failed measurement is the error that
        // matters most.
        let stopped = server.terminate(STOP_GRACE).await;
        measured?;
        result.stopped = Some(stopped?);
        Ok(())
    }

    async fn measure_server(
        &self,
        server: &mut WorkerProcess,
        port: u16,
        name: &str,
        result: &mut RunResult,
    ) -> Result<()> {
        http::wait_healthy(server, port, READY_TIMEOUT).await?;
        self.test_request(server, port).await?;

        if !self.warmup.is_zero() {
            let warmup = self.wrk(port, WARMUP_QUEUE, self.warmup).await?;
            server.check_alive()?;
            let failed = warmup.non_2xx_3xx + warmup.errors.total();
            result.warmup = Some(warmup);
            if failed > 0 {
                bail!(
                    "{failed} requests of the warm-up failed (non-2xx or socket errors); \
                     the server's log ends with:\n{}",
                    server.log_tail(20)
                );
            }
        }

        let window = cpu::Window::start(server.pid(), self.redis_pid)?;
        let measured = self.wrk(port, MEASURE_QUEUE, self.duration).await?;
        result.cpu = Some(window.finish()?);
        std::fs::write(
            self.logs.join(format!("{name}.wrk.txt")),
            measured.report.as_bytes(),
        )?;
        let ok = measured.ok_responses();
        let (non_2xx, errors) = (measured.non_2xx_3xx, measured.errors);
        result.measured = Some(measured);
        server.check_alive()?;

        let jobs = self.settled_jobs(MEASURE_QUEUE).await?;
        result.jobs = Some(jobs);
        result.peak_rss_kib = Some(server.peak_rss_kib()?);

        // wrk counts the responses that arrived within the duration; the
        // requests still in flight when it stopped (at most one per
        // connection) may still add their job, and so may a request whose
        // connection failed after the server had taken it.
        let slack = self.connections as u64 + errors.total();
        if jobs < ok || jobs > ok + slack {
            bail!(
                "JOB COUNT MISMATCH: {jobs} jobs in {PREFIX}:{MEASURE_QUEUE} after wrk counted \
                 {ok} 2xx responses; expected {ok} to {} (at most {} in flight at the end, \
                 {} socket errors). A server that drops or duplicates jobs is not measured.",
                ok + slack,
                self.connections,
                errors.total()
            );
        }
        self.check_stored_job().await?;
        if non_2xx > 0 {
            bail!(
                "{non_2xx} responses were not 2xx; the server's log ends with:\n{}",
                server.log_tail(20)
            );
        }
        if errors.total() > 0 {
            bail!(
                "wrk counted socket errors: connect {}, read {}, write {}, timeout (>{}s) {}",
                errors.connect,
                errors.read,
                errors.write,
                WRK_TIMEOUT.as_secs(),
                errors.timeout
            );
        }
        Ok(())
    }

    /// Waits until the machine is quiet (or `quiet_wait` passes), saying
    /// so when it has to wait.
    async fn wait_quiet(&self) -> Result<QuietWait> {
        let first = cpu::machine_busy_over(QUIET_SAMPLE).await?;
        if first < QUIET_CORES {
            return Ok(QuietWait {
                waited: QUIET_SAMPLE,
                busy: first,
                quiet: true,
            });
        }
        eprintln!(
            "   waiting (up to {:?}) for the machine to go quiet: {first:.2} cores busy before the run",
            self.quiet_wait
        );
        let mut quiet = cpu::wait_quiet(QUIET_CORES, QUIET_SAMPLE, self.quiet_wait).await?;
        quiet.waited += QUIET_SAMPLE;
        Ok(quiet)
    }

    /// One job through a plain connection before any load: it must answer
    /// 201 with an id, so a misconfigured server fails here, clearly.
    async fn test_request(&self, server: &WorkerProcess, port: u16) -> Result<()> {
        let path = format!("/api/v1/queues/{WARMUP_QUEUE}/jobs");
        let r = http::request(
            port,
            &self.request.method,
            &path,
            &self.request.headers,
            &self.request.body,
        )
        .await?;
        let id = serde_json::from_str::<Value>(&r.body)
            .ok()
            .and_then(|v| v.get("id").map(Value::to_string));
        if r.status != 201 || id.is_none() {
            bail!(
                "the test job was refused: POST {path} answered {} {}; the server's log ends with:\n{}",
                r.status,
                r.body.trim(),
                server.log_tail(20)
            );
        }
        Ok(())
    }

    /// Runs wrk against `queue` for `duration`.
    async fn wrk(&self, port: u16, queue: &str, duration: Duration) -> Result<Outcome> {
        let url = format!("http://127.0.0.1:{port}/api/v1/queues/{queue}/jobs");
        wrk::run(&wrk::Run {
            program: &self.wrk,
            url: &url,
            script: &self.script,
            threads: self.threads,
            connections: self.connections,
            duration,
            timeout: WRK_TIMEOUT,
        })
        .await
    }

    /// The job count of `queue` once it has stopped changing.
    async fn settled_jobs(&self, queue: &str) -> Result<u64> {
        let started = Instant::now();
        let mut last = self.probe.queue_jobs(queue).await?;
        let mut last_change = Instant::now();
        loop {
            tokio::time::sleep(SETTLE_POLL).await;
            let now = self.probe.queue_jobs(queue).await?;
            if now != last {
                last = now;
                last_change = Instant::now();
            } else if last_change.elapsed() >= SETTLE_QUIET {
                return Ok(now);
            }
            if started.elapsed() > SETTLE_TIMEOUT {
                bail!(
                    "the job count of {queue} was still changing {SETTLE_TIMEOUT:?} after wrk stopped"
                );
            }
        }
    }

    /// The oldest measured job holds the name and data that were sent, so
    /// both servers are known to store the same job.
    async fn check_stored_job(&self) -> Result<()> {
        let sent: Value = serde_json::from_str(&self.request.body)?;
        let Some((id, name, data)) = self.probe.oldest_waiting_job(MEASURE_QUEUE).await? else {
            bail!("no waiting job in {MEASURE_QUEUE}");
        };
        let data: Option<Value> = data.as_deref().and_then(|d| serde_json::from_str(d).ok());
        if name.as_deref() != sent["name"].as_str() || data.as_ref() != Some(&sent["data"]) {
            bail!("job {id} of {MEASURE_QUEUE} is not the job sent: name {name:?}, data {data:?}");
        }
        Ok(())
    }
}

/// The results as tables and JSON.
struct Report<'a> {
    args: &'a Args,
    targets: &'a [Target],
    meta: &'a Meta,
    request: &'a wrk::Request,
    runs: &'a [RunResult],
}

/// Median figures of one target over its passed runs.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    runs: usize,
    req_per_sec: Option<f64>,
    min_req_per_sec: Option<f64>,
    max_req_per_sec: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    p99_9_ms: Option<f64>,
    non_2xx: u64,
    socket_errors: u64,
    peak_rss_mib: Option<f64>,
}

fn ms(us: f64) -> f64 {
    us / 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

impl Report<'_> {
    fn summary(&self, target: Target) -> Summary {
        let runs: Vec<&RunResult> = self.runs.iter().filter(|r| r.target == target).collect();
        let passed: Vec<&Outcome> = runs.iter().filter_map(|r| r.passed()).collect();
        let mut rates: Vec<f64> = passed.iter().map(|m| m.ok_per_sec()).collect();
        let mut p50: Vec<f64> = passed.iter().map(|m| ms(m.latency.p50)).collect();
        let mut p99: Vec<f64> = passed.iter().map(|m| ms(m.latency.p99)).collect();
        let mut p999: Vec<f64> = passed.iter().map(|m| ms(m.latency.p99_9)).collect();
        let measured = runs.iter().filter_map(|r| r.measured.as_ref());
        Summary {
            runs: passed.len(),
            min_req_per_sec: rates.iter().copied().reduce(f64::min),
            max_req_per_sec: rates.iter().copied().reduce(f64::max),
            req_per_sec: median(&mut rates),
            p50_ms: median(&mut p50),
            p99_ms: median(&mut p99),
            p99_9_ms: median(&mut p999),
            non_2xx: measured.clone().map(|m| m.non_2xx_3xx).sum(),
            socket_errors: measured.map(|m| m.errors.total()).sum(),
            peak_rss_mib: runs.iter().filter_map(|r| r.peak_rss_kib).max().map(mib),
        }
    }

    fn header(&self) -> String {
        let m = self.meta;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "cores (available_parallelism): {}, shared by wrk, redis-server and the server under test",
            m.cores
        );
        let _ = writeln!(
            s,
            "load: wrk -t{} -c{} -d{}s --latency (after a {} s warm-up), {} round(s), UTC date {}",
            self.args.threads,
            self.args.connections,
            self.args.duration_secs,
            self.args.warmup_secs,
            self.args.rounds,
            m.date
        );
        let _ = writeln!(s, "redis-server {}   {}", m.redis, m.wrk);
        if let Some(d) = &m.drover {
            let _ = writeln!(s, "drover: {d} (`drover serve`, API key auth)");
        }
        if let Some(n) = &m.node {
            let _ = writeln!(
                s,
                "express: node {n}, express {}, bullmq {}, ioredis {} (bench/node/express-enqueue.mjs)",
                m.express.as_deref().unwrap_or("-"),
                m.bullmq.as_deref().unwrap_or("-"),
                m.ioredis.as_deref().unwrap_or("-"),
            );
        }
        let _ = writeln!(
            s,
            "request: {} /api/v1/queues/{MEASURE_QUEUE}/jobs, body {} ({} bytes), one BullMQ add each",
            self.request.method,
            self.request.body,
            self.request.body.len()
        );
        s
    }

    fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "HTTP enqueue (median over passed runs; req/s counts 2xx responses only; latency from wrk)"
        );
        let _ = writeln!(
            s,
            "{:<8} | {:>4} | {:>9} | {:>17} | {:>7} {:>7} {:>8} | {:>7} {:>6} | {:>8}",
            "target",
            "runs",
            "req/s",
            "req/s min-max",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "non-2xx",
            "errors",
            "peak MiB"
        );
        let _ = writeln!(s, "{}", "-".repeat(104));
        for &t in self.targets {
            let x = self.summary(t);
            let range = match (x.min_req_per_sec, x.max_req_per_sec) {
                (Some(lo), Some(hi)) => format!("{lo:.0}-{hi:.0}"),
                _ => "-".to_string(),
            };
            let _ = writeln!(
                s,
                "{:<8} | {:>4} | {:>9} | {:>17} | {:>7} {:>7} {:>8} | {:>7} {:>6} | {:>8}",
                t.name(),
                x.runs,
                num(x.req_per_sec, 0),
                range,
                num(x.p50_ms, 2),
                num(x.p99_ms, 2),
                num(x.p99_9_ms, 2),
                x.non_2xx,
                x.socket_errors,
                num(x.peak_rss_mib, 1)
            );
        }
        s
    }

    fn ratios(&self) -> String {
        let mut s = String::new();
        if self.targets.len() < 2 {
            let _ = writeln!(s, "drover / express: - (only one target ran)");
            return s;
        }
        let (d, e) = (self.summary(Target::Drover), self.summary(Target::Express));
        let show = |r: Option<f64>| num(r, 2) + "x";
        let _ = writeln!(
            s,
            "drover / express: req/s {}   p50 {}   p99 {}   peak RSS {}",
            show(ratio(d.req_per_sec, e.req_per_sec)),
            show(ratio(d.p50_ms, e.p50_ms)),
            show(ratio(d.p99_ms, e.p99_ms)),
            show(ratio(d.peak_rss_mib, e.peak_rss_mib)),
        );
        let _ = writeln!(
            s,
            "(req/s above 1x: Drover serves more; latency and RSS below 1x: Drover is faster / smaller)"
        );
        let paired = self.paired_ratios();
        if !paired.is_empty() {
            let list = |f: fn(&(usize, f64, f64)) -> f64| {
                let mut values: Vec<f64> = paired.iter().map(f).collect();
                let shown: Vec<String> = values.iter().map(|v| format!("{v:.2}x")).collect();
                format!("{} (median {})", shown.join(" "), show(median(&mut values)))
            };
            let _ = writeln!(
                s,
                "same round only (the two servers ran back to back): req/s {}   p99 {}",
                list(|p| p.1),
                list(|p| p.2)
            );
        }
        let met = match (ratio(d.req_per_sec, e.req_per_sec), d.p99_ms) {
            (Some(r), Some(p99)) => {
                if r >= 3.0 && p99 <= 10.0 {
                    "met"
                } else {
                    "NOT met"
                }
            }
            _ => "-",
        };
        let _ = writeln!(
            s,
            "goal at {} connections: drover >= 3x express req/s and drover p99 <= 10 ms: {met}",
            self.args.connections
        );
        s
    }

    fn runs_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Every run (jobs = jobs found in {PREFIX}:{MEASURE_QUEUE}; in flight = jobs beyond wrk's 2xx count;"
        );
        let _ = writeln!(
            s,
            "CPU in cores over the measured phase: the server, redis-server, wrk, and other = the rest of the machine's busy time)"
        );
        let _ = writeln!(
            s,
            "{:>5} {:<8} | {:>9} {:>7} {:>7} | {:>9} {:>9} {:>9} | {:>8} | {:>6} {:>5} {:>5} {:>5} | result",
            "round",
            "target",
            "req/s",
            "p50 ms",
            "p99 ms",
            "2xx",
            "jobs",
            "in flight",
            "peak MiB",
            "server",
            "redis",
            "wrk",
            "other",
        );
        let _ = writeln!(s, "{}", "-".repeat(127));
        for r in self.runs {
            let m = r.measured.as_ref();
            let _ = writeln!(
                s,
                "{:>5} {:<8} | {:>9} {:>7} {:>7} | {:>9} {:>9} {:>9} | {:>8} | {:>6} {:>5} {:>5} {:>5} | {}",
                r.round + 1,
                r.target.name(),
                num(m.map(Outcome::ok_per_sec), 0),
                num(m.map(|m| ms(m.latency.p50)), 2),
                num(m.map(|m| ms(m.latency.p99)), 2),
                m.map_or_else(|| "-".to_string(), |m| m.ok_responses().to_string()),
                r.jobs.map_or_else(|| "-".to_string(), |j| j.to_string()),
                r.in_flight_jobs()
                    .map_or_else(|| "-".to_string(), |j| j.to_string()),
                num(r.peak_rss_kib.map(mib), 1),
                num(r.cpu.map(|c| c.server), 2),
                num(r.cpu.map(|c| c.redis), 2),
                num(r.cpu.map(|c| c.load), 2),
                num(r.cpu.map(|c| c.other()), 2),
                match (&r.error, r.repeated, r.disturbed()) {
                    (Some(_), _, _) => "FAILED",
                    (None, true, _) => "disturbed, repeated",
                    (None, false, true) => "ok, disturbed",
                    (None, false, false) => "ok",
                },
            );
        }
        s
    }

    /// drover/express req/s and p99 of each round where both passed:
    /// (round, req/s ratio, p99 ratio).
    fn paired_ratios(&self) -> Vec<(usize, f64, f64)> {
        let passed = |round: usize, target: Target| {
            self.runs
                .iter()
                .filter(|r| r.round == round && r.target == target)
                .find_map(RunResult::passed)
        };
        (0..self.args.rounds)
            .filter_map(|round| {
                let (d, e) = (
                    passed(round, Target::Drover)?,
                    passed(round, Target::Express)?,
                );
                Some((
                    round,
                    ratio(Some(d.ok_per_sec()), Some(e.ok_per_sec()))?,
                    ratio(Some(d.latency.p99), Some(e.latency.p99))?,
                ))
            })
            .collect()
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for r in self.runs {
            let run = format!("run {} {}", r.round + 1, r.target.name());
            if let Some(e) = &r.error {
                notes.push(format!("{run}: FAILED: {e}"));
            }
            if let Some(q) = r.quiet.filter(|q| !q.quiet) {
                notes.push(format!(
                    "{run}: started on a busy machine ({:.2} cores busy after waiting {:.0} s)",
                    q.busy,
                    q.waited.as_secs_f64()
                ));
            }
            if let Some(other) = r
                .cpu
                .map(|c| c.other())
                .filter(|o| *o > OTHER_CPU_NOTE && !r.repeated)
            {
                notes.push(format!(
                    "{run}: {other:.2} cores went to other programs (or unattributed kernel work) \
                     while it was measured; its figures may be disturbed"
                ));
            }
            if let Some(stop) = &r.stopped {
                if !stop.graceful {
                    notes.push(format!(
                        "{run}: the server did not exit within {STOP_GRACE:?} after SIGTERM and was killed"
                    ));
                } else if !stop.status.success() {
                    notes.push(format!(
                        "{run}: the server exited with {} after SIGTERM",
                        stop.status
                    ));
                }
            }
        }
        notes
    }

    fn to_json(&self) -> Value {
        let outcome = |m: &Outcome| {
            json!({
                "requests": m.requests,
                "ok_responses": m.ok_responses(),
                "ok_per_sec": m.ok_per_sec(),
                "wrk_printed_requests_per_sec": m.printed_requests_per_sec,
                "seconds": m.duration.as_secs_f64(),
                "bytes": m.bytes,
                "non_2xx_3xx": m.non_2xx_3xx,
                "socket_errors": {
                    "connect": m.errors.connect,
                    "read": m.errors.read,
                    "write": m.errors.write,
                    "timeout": m.errors.timeout,
                },
                "latency_ms": {
                    "min": ms(m.latency.min),
                    "mean": ms(m.latency.mean),
                    "stdev": ms(m.latency.stdev),
                    "p50": ms(m.latency.p50),
                    "p75": ms(m.latency.p75),
                    "p90": ms(m.latency.p90),
                    "p99": ms(m.latency.p99),
                    "p99_9": ms(m.latency.p99_9),
                    "max": ms(m.latency.max),
                },
            })
        };
        let runs: Vec<Value> = self
            .runs
            .iter()
            .map(|r| {
                json!({
                    "round": r.round,
                    "target": r.target.name(),
                    "measured": r.measured.as_ref().map(outcome),
                    "warmup": r.warmup.as_ref().map(outcome),
                    "jobs_in_queue": r.jobs,
                    "jobs_beyond_2xx": r.in_flight_jobs(),
                    "quiet_wait": r.quiet.map(|q| json!({
                        "seconds": q.waited.as_secs_f64(),
                        "busy_cores": q.busy,
                        "quiet": q.quiet,
                    })),
                    "cpu_cores": r.cpu.map(|c| json!({
                        "machine": c.machine,
                        "server": c.server,
                        "redis": c.redis,
                        "wrk": c.load,
                        "harness": c.harness,
                        "other": c.other(),
                    })),
                    "peak_rss_kib": r.peak_rss_kib,
                    "peak_rss_mib": r.peak_rss_kib.map(mib),
                    "stop": r.stopped.as_ref().map(|s| json!({
                        "graceful": s.graceful,
                        "status": s.status.to_string(),
                        "seconds": s.took.as_secs_f64(),
                    })),
                    "repeated_as_disturbed": r.repeated,
                    "error": r.error,
                })
            })
            .collect();
        let summaries: serde_json::Map<String, Value> = self
            .targets
            .iter()
            .map(|&t| {
                let x = self.summary(t);
                (
                    t.name().to_string(),
                    json!({
                        "passed_runs": x.runs,
                        "median_req_per_sec": x.req_per_sec,
                        "min_req_per_sec": x.min_req_per_sec,
                        "max_req_per_sec": x.max_req_per_sec,
                        "median_p50_ms": x.p50_ms,
                        "median_p99_ms": x.p99_ms,
                        "median_p99_9_ms": x.p99_9_ms,
                        "non_2xx": x.non_2xx,
                        "socket_errors": x.socket_errors,
                        "peak_rss_mib": x.peak_rss_mib,
                    }),
                )
            })
            .collect();
        let (d, e) = (self.summary(Target::Drover), self.summary(Target::Express));
        let m = self.meta;
        json!({
            "benchmark": "http-enqueue",
            "date": m.date,
            "cores": m.cores,
            "versions": {
                "redis": m.redis,
                "wrk": m.wrk,
                "drover": m.drover,
                "node": m.node,
                "express": m.express,
                "bullmq": m.bullmq,
                "ioredis": m.ioredis,
            },
            "settings": {
                "threads": self.args.threads,
                "connections": self.args.connections,
                "duration_secs": self.args.duration_secs,
                "warmup_secs": self.args.warmup_secs,
                "rounds": self.args.rounds,
                "wrk_timeout_secs": WRK_TIMEOUT.as_secs(),
                "quiet_wait_secs": self.args.quiet_wait_secs,
                "retries": self.args.retries,
            },
            "request": {
                "method": self.request.method,
                "path": format!("/api/v1/queues/{MEASURE_QUEUE}/jobs"),
                "body": self.request.body,
                "headers": self.request.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            },
            "targets": self.targets.iter().map(|t| t.name()).collect::<Vec<_>>(),
            "summary": summaries,
            "ratios_drover_over_express": {
                "req_per_sec": ratio(d.req_per_sec, e.req_per_sec),
                "p50": ratio(d.p50_ms, e.p50_ms),
                "p99": ratio(d.p99_ms, e.p99_ms),
                "peak_rss": ratio(d.peak_rss_mib, e.peak_rss_mib),
                "same_round": self.paired_ratios().iter().map(|&(round, rps, p99)| json!({
                    "round": round,
                    "req_per_sec": rps,
                    "p99": p99,
                })).collect::<Vec<_>>(),
            },
            "runs": runs,
        })
    }
}

/// `YYYY-MM-DD` of `t` in UTC.
fn utc_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_780), (2026, 11, 23));
        assert_eq!(
            utc_date(UNIX_EPOCH + Duration::from_secs(1_795_405_495)),
            "2026-11-23"
        );
    }

    #[test]
    fn ratios_need_both_sides() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
    }
}

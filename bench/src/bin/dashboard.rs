//! Dashboard pages on a big queue: Drover's dashboard (`drover serve`)
//! next to bull-board 9.10 (`bench/node/bull-board.mjs`), on one private
//! redis-server holding a queue with 1,000,000 waiting and 1,000,000
//! completed jobs.
//!
//! The queue is filled by Drover's producer (`enqueue_bulk`, BullMQ's own
//! add scripts, 1,000 jobs per call): first N jobs that a release `drover
//! worker --handler echo` completes (so `completed` holds N jobs with
//! their finish times and BullMQ's metrics are recorded), then N more that
//! stay waiting. Then each server in turn is started, warmed up (every
//! page twice) and timed: each page is requested `--samples` times on a
//! fresh connection; Drover's `Server-Timing` header gives the time its
//! handler took, and for both servers the time from sending the request to
//! reading the whole response is measured on the client (loopback). The
//! table shows medians and maxima; bull-board's rows are its JSON API
//! calls behind the equivalent view. Drover's overview samples are 1.1 s
//! apart, past the one-second reuse of its shared reading. See
//! `bench/README.md`.

// A measurement program: printing its results is its purpose.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use drover_bench::http::{self, DroverServer};
use drover_bench::procs::{WorkerProcess, node_version, target_dir};
use drover_bench::report::median;
use drover_bench::server::{RedisServer, free_port};
use drover_bench::{PREFIX, big_queue};
use queue_core::{Connection, QueueName, RedisSettings};
use serde_json::{Value, json};

/// The queue measured.
const QUEUE: &str = "dash-bench";

#[derive(Debug, Parser)]
#[command(about = "Time dashboard pages on a queue with N waiting and N completed jobs")]
struct Args {
    /// Jobs in each of waiting and completed.
    #[arg(long, default_value_t = 1_000_000)]
    jobs: u64,
    /// Requests per page per server.
    #[arg(long, default_value_t = 15)]
    samples: usize,
    /// The drover binary (release build).
    #[arg(long)]
    drover: Option<PathBuf>,
    /// redis-server to start.
    #[arg(long, default_value = "redis-server")]
    redis_server: PathBuf,
    /// node, for bull-board.
    #[arg(long, default_value = "node")]
    node: PathBuf,
    /// Skip bull-board.
    #[arg(long)]
    drover_only: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

/// One page's timings, in ms.
#[derive(Debug, Clone, Default)]
struct Timing {
    client: Vec<f64>,
    server: Vec<f64>,
    bytes: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dashboard benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let drover = args
        .drover
        .clone()
        .unwrap_or_else(|| target_dir().join("release/drover"));
    if !drover.exists() {
        bail!(
            "{} is missing: cargo build --release -p drover -p drover-bench",
            drover.display()
        );
    }
    let redis = RedisServer::start(args.redis_server.as_os_str()).await?;
    let url = redis.url();
    let logs = tempfile::Builder::new()
        .prefix("drover-dash-bench-")
        .tempdir()?;
    println!(
        "dashboard benchmark: {} waiting + {} completed jobs in queue {QUEUE}; {} samples per page; {} cores",
        args.jobs,
        args.jobs,
        args.samples,
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    // Fill: N jobs completed by a real worker, then N left waiting.
    let conn = Connection::connect(RedisSettings::for_url(&url)?.with_prefix(PREFIX)?).await?;
    let queue = QueueName::new(QUEUE)?;
    let took = big_queue::fill(&conn, &queue, args.jobs).await?;
    println!("  added {} jobs in {:.1} s", args.jobs, took.as_secs_f64());
    let mut worker = WorkerProcess::spawn(
        big_queue::worker_command(&drover, &url, QUEUE, logs.path())?,
        &logs.path().join("worker.log"),
    )?;
    let started = Instant::now();
    loop {
        worker.check_alive()?;
        let done = big_queue::zcard(&url, QUEUE, "completed").await?;
        if done >= args.jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "  a drover worker completed them in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    worker.terminate(Duration::from_secs(20)).await?;
    let took = big_queue::fill(&conn, &queue, args.jobs).await?;
    println!(
        "  added {} more (left waiting) in {:.1} s",
        args.jobs,
        took.as_secs_f64()
    );
    let (oldest_waiting, newest_completed) = big_queue::sample_ids(&url, QUEUE).await?;
    let memory = big_queue::used_memory(&url).await?;
    println!("  Redis holds {:.0} MiB", memory as f64 / 1_048_576.0);

    let last = args.jobs.div_ceil(50);
    let drover_pages: Vec<(&str, String)> = vec![
        ("overview", "/".into()),
        (
            "queue, waiting, page 1",
            format!("/queues/{QUEUE}?state=waiting"),
        ),
        (
            "queue, waiting, last page",
            format!("/queues/{QUEUE}?state=waiting&page={last}"),
        ),
        (
            "queue, completed, page 1",
            format!("/queues/{QUEUE}?state=completed"),
        ),
        (
            "queue, completed, last page",
            format!("/queues/{QUEUE}?state=completed&page={last}"),
        ),
        (
            "job, oldest waiting",
            format!("/queues/{QUEUE}/jobs/{oldest_waiting}"),
        ),
        (
            "job, newest completed",
            format!("/queues/{QUEUE}/jobs/{newest_completed}"),
        ),
        (
            "confirm clean completed > 1 h",
            format!("/queues/{QUEUE}/confirm?action=clean&state=completed&age=3600"),
        ),
        (
            "confirm drain",
            format!("/queues/{QUEUE}/confirm?action=drain"),
        ),
        ("workers", "/workers".into()),
        ("schedules", "/schedules".into()),
        ("workflows", "/workflows".into()),
        ("audit log", "/audit".into()),
    ];
    let board_pages: Vec<(&str, String)> = vec![
        ("overview", "/ui/api/queues?jobsPerPage=50".into()),
        (
            "queue, waiting, page 1",
            format!("/ui/api/queues?activeQueue={QUEUE}&status=waiting&page=1&jobsPerPage=50"),
        ),
        (
            "queue, waiting, last page",
            format!("/ui/api/queues?activeQueue={QUEUE}&status=waiting&page={last}&jobsPerPage=50"),
        ),
        (
            "queue, completed, page 1",
            format!("/ui/api/queues?activeQueue={QUEUE}&status=completed&page=1&jobsPerPage=50"),
        ),
        (
            "queue, completed, last page",
            format!(
                "/ui/api/queues?activeQueue={QUEUE}&status=completed&page={last}&jobsPerPage=50"
            ),
        ),
        (
            "job, oldest waiting",
            format!("/ui/api/queues/{QUEUE}/{oldest_waiting}"),
        ),
        (
            "job, newest completed",
            format!("/ui/api/queues/{QUEUE}/{newest_completed}"),
        ),
    ];

    // Drover.
    let server = DroverServer::prepare(&drover, &url).await?;
    let admin = server.create_key("dash-admin", "admin", &url).await?;
    let port = free_port()?;
    let mut serve = WorkerProcess::spawn(
        server.serve_command(&url, port),
        &logs.path().join("serve.log"),
    )?;
    http::wait_healthy(&mut serve, port, Duration::from_secs(60)).await?;
    let cookie = sign_in(port, &admin).await?;
    wait_listed(port, &cookie).await?;
    let drover_times = time_pages(
        port,
        &[("cookie".into(), cookie)],
        &drover_pages,
        args.samples,
        true,
    )
    .await?;
    serve.terminate(Duration::from_secs(10)).await?;

    // bull-board.
    let board_times = if args.drover_only {
        Vec::new()
    } else {
        let script = std::env::current_dir()?.join("bench/node/bull-board.mjs");
        let port = free_port()?;
        let mut cmd = tokio::process::Command::new(&args.node);
        cmd.arg(&script)
            .current_dir(std::env::current_dir()?.join("compat"))
            .env("REDIS_URL", &url)
            .env("QUEUE", QUEUE)
            .env("PORT", port.to_string());
        let mut board = WorkerProcess::spawn(cmd, &logs.path().join("bull-board.log"))?;
        http::wait_healthy(&mut board, port, Duration::from_secs(60)).await?;
        let times = time_pages(port, &[], &board_pages, args.samples, false).await?;
        board.terminate(Duration::from_secs(10)).await?;
        times
    };

    report(&args, &drover_pages, &drover_times, &board_times, memory)?;
    println!(
        "versions: {}, bull-board 9.10.1 on node {}",
        server.version(),
        node_version(&args.node).unwrap_or_default()
    );
    Ok(())
}

/// Signs in with `key`; answers the `Cookie` header value.
async fn sign_in(port: u16, key: &str) -> Result<String> {
    let body = format!("key={key}&next=%2F");
    let headers = [(
        "content-type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    let r = http::request(port, "POST", "/login", &headers, &body).await?;
    if r.status != 303 {
        bail!("sign-in answered {}: {}", r.status, r.body);
    }
    let cookie = r
        .headers
        .iter()
        .find(|(n, v)| n == "set-cookie" && v.starts_with("drover_session="))
        .map(|(_, v)| v.split(';').next().unwrap_or_default().to_string())
        .context("no session cookie")?;
    Ok(cookie)
}

/// Waits until the overview lists the queue (the first discovery scan of a
/// big keyspace runs in the background after start).
async fn wait_listed(port: u16, cookie: &str) -> Result<()> {
    let headers = [("cookie".to_string(), cookie.to_string())];
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // The first request waits for the first discovery scan.
        let first = Instant::now();
        let r =
            http::request_within(Duration::from_secs(120), port, "GET", "/", &headers, "").await?;
        if r.status == 200 && r.body.contains(&format!("/queues/{QUEUE}\"")) {
            println!(
                "  the overview lists the queue (that request took {:.0} ms, the first discovery scan included)",
                first.elapsed().as_secs_f64() * 1_000.0
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the overview never listed {QUEUE}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn time_pages(
    port: u16,
    headers: &[(String, String)],
    pages: &[(&str, String)],
    samples: usize,
    server_timing: bool,
) -> Result<Vec<Timing>> {
    let mut out = Vec::new();
    for (name, path) in pages {
        for _ in 0..2 {
            http::request(port, "GET", path, headers, "").await?;
        }
        let mut t = Timing::default();
        // Drover's overview reuses one reading per live interval (1 s) for
        // every viewer; pace its samples so each one reads Redis afresh
        // (throughput history is reread every 15 s: the maximum shows it).
        let paced = server_timing && *path == "/";
        for _ in 0..samples {
            if paced {
                tokio::time::sleep(Duration::from_millis(1_100)).await;
            }
            let started = Instant::now();
            let r = http::request(port, "GET", path, headers, "").await?;
            t.client.push(started.elapsed().as_secs_f64() * 1_000.0);
            if r.status != 200 {
                bail!(
                    "{name} ({path}) answered {}: {}",
                    r.status,
                    &r.body[..r.body.len().min(300)]
                );
            }
            t.bytes = r.body.len();
            if server_timing {
                let dur = r
                    .header("server-timing")
                    .and_then(|v| v.split("dur=").nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
                    .context("no Server-Timing")?;
                t.server.push(dur);
            }
        }
        out.push(t);
    }
    Ok(out)
}

fn med(v: &[f64]) -> f64 {
    median(&mut v.to_vec()).unwrap_or(0.0)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

fn report(
    args: &Args,
    pages: &[(&str, String)],
    drover: &[Timing],
    board: &[Timing],
    memory: u64,
) -> Result<()> {
    println!();
    println!(
        "{:<32} {:>13} {:>10} {:>13} {:>10} {:>15} {:>8}",
        "page", "drover server", "(max)", "drover client", "(max)", "bull-board", "ratio"
    );
    let mut rows = Vec::new();
    for (i, (name, path)) in pages.iter().enumerate() {
        let d = &drover[i];
        let server = med(&d.server);
        let client = med(&d.client);
        let b = board.get(i).map(|t| (med(&t.client), max(&t.client)));
        println!(
            "{:<32} {:>10.1} ms {:>7.1} ms {:>10.1} ms {:>7.1} ms {:>15} {:>8}",
            name,
            server,
            max(&d.server),
            client,
            max(&d.client),
            b.map_or_else(|| "—".to_string(), |(m, _)| format!("{m:.1} ms")),
            b.map_or_else(|| "—".to_string(), |(m, _)| format!("{:.1}×", m / client)),
        );
        rows.push(json!({
            "page": name, "path": path, "bytes": d.bytes,
            "drover_server_ms": { "median": server, "max": max(&d.server) },
            "drover_client_ms": { "median": client, "max": max(&d.client) },
            "bull_board_client_ms": b.map(|(m, x)| json!({ "median": m, "max": x })),
        }));
    }
    let worst = drover.iter().map(|t| max(&t.server)).fold(0.0, f64::max);
    println!("\nslowest Drover page, server time, worst sample: {worst:.1} ms (goal: ≤ 200 ms)");
    if let Some(path) = &args.json_out {
        let doc: Value = json!({
            "jobs_waiting": args.jobs, "jobs_completed": args.jobs, "samples": args.samples,
            "redis_used_memory_bytes": memory,
            "cores": std::thread::available_parallelism().map_or(0, usize::from),
            "pages": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

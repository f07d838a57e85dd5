//! A big queue for benchmarks that read one: jobs added in bulk through
//! Drover's producer (BullMQ's own add scripts), completed by a real
//! `drover worker`, and a few reads to pick sample jobs.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use queue_core::producer::{NewJob, enqueue_bulk};
use queue_core::{Connection, QueueName};
use serde_json::json;

use crate::PREFIX;

/// Adds `n` small jobs in bulks of 1,000 (default options: completed jobs
/// are kept).
pub async fn fill(conn: &Connection, queue: &QueueName, n: u64) -> Result<Duration> {
    let started = Instant::now();
    let mut added = 0;
    while added < n {
        let batch: Vec<NewJob> = (added..(added + 1_000).min(n))
            .map(|i| NewJob {
                name: "ship-order".into(),
                data: json!({ "order": i, "customer": format!("c-{}", i % 10_000), "items": 3 }),
                opts: Default::default(),
            })
            .collect();
        added += enqueue_bulk(conn, queue, &batch).await?.len() as u64;
    }
    Ok(started.elapsed())
}

/// `drover worker` on `queue` with the echo handler, 64 at once.
pub fn worker_command(
    drover: &Path,
    url: &str,
    queue: &str,
    dir: &Path,
) -> Result<tokio::process::Command> {
    // Workers keep 10,000 completed jobs by default; the big queue needs
    // every one of them kept.
    let config = dir.join("keep-all.toml");
    std::fs::write(
        &config,
        "[worker]\nremove_on_complete = false\nremove_on_fail = false\n",
    )?;
    let mut cmd = tokio::process::Command::new(drover);
    cmd.args([
        "worker",
        "--queue",
        queue,
        "--concurrency",
        "64",
        "--handler",
        "echo",
    ])
    .env("REDIS_URL", url)
    .env("DROVER_CONFIG", &config)
    .env_remove("RUST_LOG");
    Ok(cmd)
}

async fn redis_conn(url: &str) -> Result<redis::aio::MultiplexedConnection> {
    Ok(redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?)
}

/// `ZCARD` of one of `queue`'s sets.
pub async fn zcard(url: &str, queue: &str, set: &str) -> Result<u64> {
    let mut c = redis_conn(url).await?;
    Ok(redis::cmd("ZCARD")
        .arg(format!("{PREFIX}:{queue}:{set}"))
        .query_async(&mut c)
        .await?)
}

/// The id at the far end of `wait` (the worst case for finding a job's
/// state: it is the last id an LPOS reaches) and the newest completed id.
pub async fn sample_ids(url: &str, queue: &str) -> Result<(String, String)> {
    let mut c = redis_conn(url).await?;
    let waiting: Option<String> = redis::cmd("LINDEX")
        .arg(format!("{PREFIX}:{queue}:wait"))
        .arg(-1)
        .query_async(&mut c)
        .await?;
    let completed: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{PREFIX}:{queue}:completed"))
        .arg(-1)
        .arg(-1)
        .query_async(&mut c)
        .await?;
    Ok((
        waiting.context("no waiting job")?,
        completed.into_iter().next().context("no completed job")?,
    ))
}

/// Redis `used_memory`, bytes.
pub async fn used_memory(url: &str) -> Result<u64> {
    let mut c = redis_conn(url).await?;
    let info: String = redis::cmd("INFO").arg("memory").query_async(&mut c).await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

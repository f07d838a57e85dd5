//! The producers under test and the queue's pause switch.
//!
//! Each enqueue function adds `jobs` no-op jobs (`{}` data,
//! `removeOnComplete: true`) in bulk calls of `chunk` jobs, one call after
//! the other, and returns the time the calls took. Connecting and creating
//! queue handles happen before the clock starts, for every client alike;
//! building each chunk's job list is inside it.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bullmq::options::RedisConnectionOptions;
use bullmq::types::RemoveOnFinish;
use queue_core::producer::{JobOptions, NewJob, Retention, enqueue_bulk};
use queue_core::{Connection, QueueName, RedisSettings};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::{JOB_NAME, PREFIX, QUEUE};

/// The in-process producers: a bare bullmq-official `Queue` and a Drover
/// `Connection`, both on the benchmark queue.
#[derive(Clone)]
pub struct Producers {
    bull: bullmq::Queue,
    drover: Connection,
    drover_queue: QueueName,
}

impl std::fmt::Debug for Producers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producers")
            .field("drover", &self.drover)
            .finish_non_exhaustive()
    }
}

impl Producers {
    /// Connects both producers to `url`.
    pub async fn connect(url: &str) -> Result<Self> {
        let opts = bullmq::QueueOptions::new()
            .connection(RedisConnectionOptions::new().url(url))
            .prefix(PREFIX);
        let bull = bullmq::Queue::with_options(QUEUE, opts)
            .await
            .context("opening a bullmq-official queue")?;
        let settings = RedisSettings::for_url(url)?.with_prefix(PREFIX)?;
        let drover = Connection::connect(settings)
            .await
            .context("opening a Drover connection")?;
        Ok(Self {
            bull,
            drover,
            drover_queue: QueueName::new(QUEUE)?,
        })
    }

    /// Pauses the queue (BullMQ's `meta.paused`). Works on an empty
    /// database: bullmq's pause creates the queue's `meta` hash.
    pub async fn pause(&self) -> Result<()> {
        self.bull.pause().await.context("pausing the queue")
    }

    /// Resumes the queue; waiting workers are woken through its marker.
    pub async fn resume(&self) -> Result<()> {
        self.bull.resume().await.context("resuming the queue")
    }

    /// Bulk enqueue through bullmq-official's `Queue::add_bulk`.
    pub async fn enqueue_bare(&self, jobs: u64, chunk: usize) -> Result<Duration> {
        let opts = bullmq::JobOptions::new().remove_on_complete(RemoveOnFinish::Bool(true));
        let started = Instant::now();
        for n in chunks(jobs, chunk) {
            let batch = (0..n)
                .map(|_| bullmq::BulkJob::with_options(JOB_NAME, json!({}), opts.clone()))
                .collect();
            let added = self.bull.add_bulk(batch).await?;
            check_added(added.len(), n)?;
        }
        Ok(started.elapsed())
    }

    /// Bulk enqueue through Drover's `queue_core::producer::enqueue_bulk`.
    pub async fn enqueue_drover(&self, jobs: u64, chunk: usize) -> Result<Duration> {
        // The queue exists (it was paused), so this succeeds; it also makes
        // the connection create its queue handle before the clock starts,
        // as the bare and Node producers do.
        queue_core::admin::pause(&self.drover, &self.drover_queue).await?;
        let started = Instant::now();
        for n in chunks(jobs, chunk) {
            let batch: Vec<NewJob> = (0..n)
                .map(|_| NewJob {
                    name: JOB_NAME.to_string(),
                    data: json!({}),
                    opts: JobOptions {
                        remove_on_complete: Some(Retention::Remove(true)),
                        ..JobOptions::default()
                    },
                })
                .collect();
            let ids = enqueue_bulk(&self.drover, &self.drover_queue, &batch).await?;
            check_added(ids.len(), n)?;
        }
        Ok(started.elapsed())
    }
}

/// Bulk enqueue through Node BullMQ's `Queue.addBulk`, in a `node` child
/// running `enqueue.mjs`; the time is the one the script measured around
/// its `addBulk` calls (so Node's start-up is not counted).
pub async fn enqueue_node(
    node: &Path,
    script: &Path,
    (host, port): (&str, u16),
    jobs: u64,
    chunk: usize,
    timeout: Duration,
) -> Result<Duration> {
    let child = Command::new(node)
        .arg(script)
        .args([
            "--host",
            host,
            "--port",
            &port.to_string(),
            "--queue",
            QUEUE,
        ])
        .args(["--jobs", &jobs.to_string(), "--chunk", &chunk.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", node.display()))?;
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .with_context(|| format!("Node enqueue did not finish within {timeout:?}"))??;
    if !out.status.success() {
        bail!(
            "Node enqueue failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let report: Value = serde_json::from_str(line)
        .with_context(|| format!("Node enqueue printed {line:?}, not a JSON report"))?;
    let added = report["added"].as_u64().unwrap_or(0);
    check_added(usize::try_from(added)?, usize::try_from(jobs)?)?;
    let seconds = report["seconds"]
        .as_f64()
        .context("Node enqueue report has no seconds")?;
    Ok(Duration::from_secs_f64(seconds))
}

/// Sizes of consecutive bulk calls adding `jobs` jobs, `chunk` at most each.
fn chunks(jobs: u64, chunk: usize) -> impl Iterator<Item = usize> {
    let chunk = chunk.max(1) as u64;
    (0..jobs.div_ceil(chunk)).map(move |i| {
        // At most `chunk`, which came from a usize.
        usize::try_from(chunk.min(jobs - i * chunk)).unwrap_or(usize::MAX)
    })
}

fn check_added(added: usize, expected: usize) -> Result<()> {
    if added != expected {
        bail!("a bulk add returned {added} jobs, expected {expected}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::chunks;

    #[test]
    fn chunks_cover_every_job() {
        assert_eq!(chunks(2500, 1000).collect::<Vec<_>>(), [1000, 1000, 500]);
        assert_eq!(chunks(1000, 1000).collect::<Vec<_>>(), [1000]);
        assert_eq!(chunks(0, 1000).count(), 0);
    }
}

//! A worker with its own Rust handlers, using Drover as a library.
//!
//! ```sh
//! cargo run --example thumbnail_worker            # consumes the `images` queue
//! drover enqueue images thumbnail --data '{"path":"/tmp/a.png","width":128}'
//! drover enqueue images thumbnail --data '{"path":"","width":128}'   # fails, no retry
//! ```
//!
//! Each handler is an async function from the job's typed payload to a
//! result; errors say what should happen next (see `JobError`).
#![allow(clippy::print_stderr)] // an example reports to the terminal

use std::sync::Arc;
use std::time::Duration;

use drover_worker::{
    HandlerRegistry, JobContext, JobError, QueueSettings, WorkerIdentity, WorkerMetrics,
    WorkerPool, WorkerSettings,
};
use queue_core::{Connection, QueueName, RedisConfig};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Thumbnail {
    path: String,
    width: u32,
}

#[derive(Serialize)]
struct Made {
    thumbnail: String,
    bytes: usize,
}

async fn make_thumbnail(ctx: JobContext, job: Thumbnail) -> Result<Made, JobError> {
    if job.path.is_empty() {
        // Bad input: retrying cannot help.
        return Err(JobError::unrecoverable("path is empty"));
    }
    ctx.log(format!("resizing {} to {}px", job.path, job.width))
        .await?;
    ctx.progress(50).await?;
    // Real work would go here; a cancellation (timeout, shutdown) drops this
    // future at its next await.
    tokio::time::sleep(Duration::from_millis(100)).await;
    ctx.progress(100).await?;
    Ok(Made {
        thumbnail: format!("{}.{}w.png", job.path, job.width),
        bytes: job.width as usize * 40,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut redis = RedisConfig::default();
    if let Ok(url) = std::env::var("REDIS_URL") {
        redis.url = url;
    }
    let conn = Connection::connect(redis.resolve()?).await?;

    let mut handlers = HandlerRegistry::new();
    handlers.on("thumbnail", make_thumbnail);

    let settings = WorkerSettings {
        queues: vec![QueueSettings {
            name: QueueName::new("images")?,
            concurrency: 4,
            job_timeout: Some(Duration::from_secs(30)),
            lock_duration: Duration::from_secs(30),
            stalled_interval: Duration::from_secs(30),
            max_stalled_count: 1,
            rate_limit: None,
            keep_completed: drover_worker::DEFAULT_KEEP_COMPLETED,
            keep_failed: drover_worker::DEFAULT_KEEP_FAILED,
        }],
        shutdown_timeout: Duration::from_secs(10),
        heartbeat_interval: Duration::from_secs(5),
        autoscaler_poll: None,
    };
    let metrics = Arc::new(WorkerMetrics::unregistered());
    let pool = WorkerPool::start(
        &conn,
        &settings,
        handlers,
        metrics,
        WorkerIdentity::current(),
    )
    .await?;
    eprintln!("consuming `images`; Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    let report = pool.shutdown(Default::default()).await;
    eprintln!("stopped: {report:?}");
    Ok(())
}

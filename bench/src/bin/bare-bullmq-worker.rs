//! The "bare" peer of the throughput benchmark: bullmq-official's `Worker`
//! with a no-op processor, written as a plain user of the crate would. It
//! drains the worker's event channel (the channel is unbounded, so leaving
//! it unread would grow memory with every job) and closes the worker on
//! SIGTERM or SIGINT.

// A measurement program: it reports its own failures on stderr.
#![allow(clippy::print_stderr)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bullmq::options::RedisConnectionOptions;
use bullmq::worker::{CancellationToken, WorkerEvent};
use bullmq::{Job, Worker, WorkerOptions};
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

/// Consume a BullMQ queue with a no-op processor until SIGTERM.
#[derive(Debug, Parser)]
struct Args {
    /// Redis to use.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// BullMQ key prefix.
    #[arg(long, default_value = "bull")]
    prefix: String,
    /// The queue to consume.
    #[arg(long)]
    queue: String,
    /// Jobs processed at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// How long `close` may wait for the worker to wind down, in ms.
    #[arg(long, default_value_t = 2_000)]
    close_timeout_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare-bullmq-worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let opts = WorkerOptions::new()
        .connection(RedisConnectionOptions::new().url(args.redis_url))
        .prefix(args.prefix)
        .concurrency(args.concurrency);
    let processor = |_job: Job, _cancel: CancellationToken| async { Ok(serde_json::Value::Null) };
    let worker = Arc::new(Worker::with_options(&args.queue, processor, opts).await?);

    let events = tokio::spawn({
        let worker = worker.clone();
        async move {
            while let Some(event) = worker.next_event().await {
                match event {
                    WorkerEvent::Closed => break,
                    WorkerEvent::Error(e) => eprintln!("bare-bullmq-worker: worker error: {e}"),
                    _ => {}
                }
            }
        }
    });

    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    worker.close(args.close_timeout_ms).await?;
    // The drain task ends on the Closed event sent by `close`.
    let _ = tokio::time::timeout(Duration::from_secs(2), events).await;
    Ok(())
}

//! Shared helpers for the worker crate's integration tests.
#![allow(dead_code)] // each test binary uses a subset
#![allow(unreachable_pub)] // shared between test files, not exported
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

use std::sync::Arc;
use std::time::Duration;

use drover_worker::{
    HandlerRegistry, QueueSettings, WorkerIdentity, WorkerMetrics, WorkerPool, WorkerSettings,
};
use queue_core::producer::{self, JobOptions, NewJob};
use queue_core::{Connection, QueueName, RedisSettings};
use serde_json::Value;
use testkit::RedisServer;

pub async fn connect(server: &RedisServer) -> Connection {
    Connection::connect(RedisSettings::for_url(server.url()).unwrap())
        .await
        .unwrap()
}

pub fn queue(name: &str) -> QueueName {
    QueueName::new(name).unwrap()
}

pub async fn add(conn: &Connection, q: &str, name: &str, data: Value, opts: Value) -> String {
    let job = NewJob {
        name: name.to_string(),
        data,
        opts: serde_json::from_value::<JobOptions>(opts).unwrap(),
    };
    producer::enqueue(conn, &queue(q), &job).await.unwrap()
}

pub fn queue_settings(name: &str, concurrency: usize) -> QueueSettings {
    QueueSettings {
        name: queue(name),
        concurrency,
        job_timeout: None,
        lock_duration: Duration::from_secs(30),
        stalled_interval: Duration::from_secs(30),
        max_stalled_count: 1,
        rate_limit: None,
        keep_completed: drover_worker::DEFAULT_KEEP_COMPLETED,
        keep_failed: drover_worker::DEFAULT_KEEP_FAILED,
    }
}

pub fn settings(queues: Vec<QueueSettings>, shutdown_timeout: Duration) -> WorkerSettings {
    WorkerSettings {
        queues,
        shutdown_timeout,
        heartbeat_interval: Duration::from_millis(200),
        autoscaler_poll: Some(Duration::from_millis(100)),
    }
}

pub async fn start(
    conn: &Connection,
    settings: &WorkerSettings,
    registry: HandlerRegistry,
) -> (WorkerPool, Arc<WorkerMetrics>, prometheus::Registry) {
    let prom = prometheus::Registry::new();
    let metrics = Arc::new(WorkerMetrics::new(&prom).unwrap());
    let pool = WorkerPool::start(
        conn,
        settings,
        registry,
        metrics.clone(),
        WorkerIdentity::current(),
    )
    .await
    .unwrap();
    (pool, metrics, prom)
}

/// The value of a counter or gauge in a registry, by name and labels (read
/// from the text exposition format, as Prometheus would).
pub fn metric(prom: &prometheus::Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    use prometheus::Encoder;
    let mut out = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&prom.gather(), &mut out)
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

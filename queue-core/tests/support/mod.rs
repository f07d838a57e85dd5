//! Shared helpers for queue-core's integration tests.
#![allow(dead_code)] // each test binary uses a subset
#![allow(unreachable_pub)] // items are shared between test files, not exported
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

#[macro_use]
pub mod engine;

use std::sync::Mutex;

use futures::future::BoxFuture;
use queue_core::producer::{self, JobOptions, NewJob};
use queue_core::{
    ActiveJob, Connection, ConsumerEvent, ConsumerObserver, Disposition, Processor, QueueName,
    RedisConfig, RedisSettings, SettledJob, Settlement,
};
use serde_json::Value;
use testkit::{RedisCluster, RedisServer};

/// A processor from a closure.
pub struct FnProcessor<F>(pub F);

impl<F> Processor for FnProcessor<F>
where
    F: Fn(ActiveJob) -> BoxFuture<'static, Disposition> + Send + Sync + 'static,
{
    fn process(&self, job: ActiveJob) -> BoxFuture<'static, Disposition> {
        (self.0)(job)
    }
}

/// Records what consumers report.
#[derive(Default)]
pub struct Recorder {
    pub settled: Mutex<Vec<(String, Settlement)>>,
    pub events: Mutex<Vec<ConsumerEvent>>,
}

impl ConsumerObserver for Recorder {
    fn settled(&self, job: &SettledJob<'_>) {
        self.settled
            .lock()
            .unwrap()
            .push((job.id.to_string(), job.settlement));
    }
    fn event(&self, _queue: &QueueName, event: ConsumerEvent) {
        self.events.lock().unwrap().push(event);
    }
}

impl Recorder {
    pub fn settlements(&self) -> Vec<(String, Settlement)> {
        self.settled.lock().unwrap().clone()
    }
}

/// A connection to a test cluster, seeded with every node.
pub async fn connect_cluster(cluster: &RedisCluster) -> Connection {
    let settings = RedisConfig {
        cluster_nodes: cluster.urls(),
        ..RedisConfig::default()
    }
    .resolve()
    .unwrap();
    Connection::connect(settings).await.unwrap()
}

pub async fn connect(server: &RedisServer) -> Connection {
    Connection::connect(RedisSettings::for_url(server.url()).unwrap())
        .await
        .unwrap()
}

pub fn queue(name: &str) -> QueueName {
    QueueName::new(name).unwrap()
}

pub async fn add(conn: &Connection, q: &QueueName, name: &str, data: Value, opts: Value) -> String {
    let job = NewJob {
        name: name.to_string(),
        data,
        opts: serde_json::from_value::<JobOptions>(opts).unwrap(),
    };
    producer::enqueue(conn, q, &job).await.unwrap()
}

//! A `drover serve` (the autoscaler's leader) and a supervisor on a fresh
//! Redis, for the autoscaler's end-to-end tests.
#![allow(dead_code)] // each test binary uses a subset
#![allow(unreachable_pub)] // shared between test files, not exported

use std::time::Duration;

use queue_core::autoscale::{self, Decision, QueueStatus};
use queue_core::producer::{self, JobOptions, NewJob};
use queue_core::{Connection, QueueName, RedisSettings};
use testkit::{Check, ChildGuard, RedisServer, wait_until};

use crate::support::{Drover, free_port, wait_healthy};

/// `drover serve` and a supervisor on a fresh Redis, with `config`.
pub struct Rig {
    pub server: RedisServer,
    pub drover: Drover,
    pub conn: Connection,
    pub config: String,
    _serve: ChildGuard,
}

impl Rig {
    pub async fn start(config: &str) -> Self {
        let server = RedisServer::start().await;
        let drover = Drover::new(&server);
        let path = drover.dir.path().join("drover.toml");
        std::fs::write(&path, config).unwrap();
        let config = path.display().to_string();
        let addr = format!("127.0.0.1:{}", free_port());
        let serve = drover.spawn(
            "serve",
            &["serve", "--addr", &addr, "--migrate", "--config", &config],
        );
        wait_healthy(&addr, "drover serve healthy").await;
        let conn = Connection::connect(RedisSettings::for_url(server.url()).unwrap())
            .await
            .unwrap();
        Self {
            server,
            drover,
            conn,
            config,
            _serve: serve,
        }
    }

    pub fn supervise(&self, queue: &str, concurrency: &str, processes: &str) -> ChildGuard {
        self.drover.spawn(
            "supervisor",
            &[
                "worker",
                "--supervise",
                "--queue",
                queue,
                "--concurrency",
                concurrency,
                "--processes",
                processes,
                "--config",
                &self.config,
            ],
        )
    }

    pub async fn status(&self, queue: &str) -> Option<QueueStatus> {
        autoscale::queue_status(&self.conn, &QueueName::new(queue).unwrap())
            .await
            .unwrap()
    }

    /// Waits until the leader reports `desired` and `actual` for `queue`.
    pub async fn wait_workers(&self, queue: &str, desired: u32, actual: u32, within: Duration) {
        wait_until(
            &format!("{queue}: desired {desired}, actual {actual}"),
            within,
            || async {
                match self.status(queue).await {
                    Some(s) if s.desired == Some(desired) && s.actual == actual => Check::Done(()),
                    other => Check::NotYet(format!(
                        "{:?}",
                        other.map(|s| (s.desired, s.actual, s.signals.backlog, s.reason))
                    )),
                }
            },
        )
        .await;
    }

    pub async fn decisions(&self, queue: &str) -> Vec<Decision> {
        let mut d = autoscale::recent_decisions(
            &self.conn,
            Some(&QueueName::new(queue).unwrap()),
            autoscale::MAX_DECISIONS,
        )
        .await
        .unwrap();
        d.reverse();
        d
    }

    pub async fn add(&self, queue: &str, n: usize, data: serde_json::Value) {
        let q = QueueName::new(queue).unwrap();
        let jobs: Vec<NewJob> = (0..n)
            .map(|_| NewJob {
                name: "echo".into(),
                data: data.clone(),
                opts: JobOptions::default(),
            })
            .collect();
        for chunk in jobs.chunks(producer::MAX_BULK_JOBS) {
            producer::enqueue_bulk(&self.conn, &q, chunk).await.unwrap();
        }
    }
}

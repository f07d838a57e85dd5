//! What the overview shows, read once for every viewer: counts, queue
//! latency and Redis figures at most once per live interval, throughput
//! history at most every [`THROUGHPUT_TTL`]. Every open overview (and
//! every page load) shares the last reading, so ten open tabs cost Redis
//! what one does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use queue_core::inspect::{self, HeadOfLine, QueueCounts, ServerInfo, Throughput};
use queue_core::{QueueName, now_ms};
use tokio::sync::Mutex;

use crate::error::PageError;

/// How long throughput history is reused.
const THROUGHPUT_TTL: Duration = Duration::from_secs(15);
/// Minutes of throughput history shown.
pub(crate) const HISTORY_MINUTES: usize = 60;

/// One queue's line on the overview.
#[derive(Debug, Clone)]
pub(crate) struct QueueLine {
    pub(crate) name: QueueName,
    pub(crate) counts: QueueCounts,
    pub(crate) head: HeadOfLine,
    pub(crate) throughput: Option<Throughput>,
}

/// Everything the overview shows, as of `at_ms`.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) at_ms: u64,
    pub(crate) queues: Vec<QueueLine>,
    /// `None` when `INFO` is not allowed (some hosted Redis) or failed.
    pub(crate) server: Option<ServerInfo>,
}

impl Snapshot {
    /// Counts summed over every queue.
    pub(crate) fn totals(&self) -> QueueCounts {
        let mut t = QueueCounts::default();
        for q in &self.queues {
            let c = &q.counts;
            t.waiting += c.waiting;
            t.prioritized += c.prioritized;
            t.delayed += c.delayed;
            t.active += c.active;
            t.completed += c.completed;
            t.failed += c.failed;
            t.waiting_children += c.waiting_children;
        }
        t
    }
}

type Throughputs = Arc<Vec<(QueueName, Throughput)>>;

/// The shared readings.
#[derive(Debug, Default)]
pub(crate) struct Snapshots {
    last: Mutex<Option<(Instant, Arc<Snapshot>)>>,
    throughput: Mutex<Option<(Instant, Throughputs)>>,
}

impl Snapshots {
    /// The last reading if younger than `max_age`, else a new one (taken
    /// by one caller while the others wait for it).
    pub(crate) async fn get(
        &self,
        api: &drover_api::ApiState,
        max_age: Duration,
    ) -> Result<Arc<Snapshot>, PageError> {
        let mut last = self.last.lock().await;
        if let Some((at, snap)) = last.as_ref() {
            if at.elapsed() < max_age {
                return Ok(Arc::clone(snap));
            }
        }
        let conn = api.conn();
        let names = api.discovery().queues().await?;
        let (counts, heads) = tokio::try_join!(
            inspect::queue_counts(conn, &names),
            inspect::head_of_line(conn, &names),
        )?;
        let throughputs = self.throughputs(conn, &names).await;
        let server = match inspect::server_info(conn).await {
            Ok(info) => Some(info),
            Err(e) => {
                tracing::debug!(error = %e, "no INFO from Redis");
                None
            }
        };
        let by_queue: HashMap<&QueueName, &Throughput> =
            throughputs.iter().map(|(q, t)| (q, t)).collect();
        let queues = counts
            .into_iter()
            .zip(heads)
            .map(|((name, counts), head)| QueueLine {
                throughput: by_queue.get(&name).map(|t| (*t).clone()),
                name,
                counts,
                head,
            })
            .collect();
        let snap = Arc::new(Snapshot {
            at_ms: now_ms(),
            queues,
            server,
        });
        *last = Some((Instant::now(), Arc::clone(&snap)));
        Ok(snap)
    }

    /// Throughput of `names`, reused for [`THROUGHPUT_TTL`]; on a failure
    /// the last answer (or none) is shown and the error logged.
    async fn throughputs(&self, conn: &queue_core::Connection, names: &[QueueName]) -> Throughputs {
        let mut cached = self.throughput.lock().await;
        if let Some((at, t)) = cached.as_ref() {
            if at.elapsed() < THROUGHPUT_TTL && t.len() == names.len() {
                return Arc::clone(t);
            }
        }
        match inspect::throughput(conn, names, HISTORY_MINUTES).await {
            Ok(t) => {
                let t: Throughputs = Arc::new(names.iter().cloned().zip(t).collect());
                *cached = Some((Instant::now(), Arc::clone(&t)));
                t
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read throughput history; will retry");
                cached
                    .as_ref()
                    .map_or_else(Default::default, |(_, t)| Arc::clone(t))
            }
        }
    }
}

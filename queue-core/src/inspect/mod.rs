//! Read models for the CLI, the API and the dashboard: counts, job pages,
//! job details, queue latency, throughput history, server figures and
//! estimates of what an action would touch, read with bounded commands
//! only (lengths, ranges, counts by score, pipelines; never a keyspace scan
//! or a full-set read).
//!
//! Inspection never runs on the workers' hot path and never writes.

mod detail;
mod estimate;
mod latency;
mod pages;
mod server;
pub(crate) mod slots;
mod throughput;

use serde::Serialize;

pub use detail::{JobDetail, job_detail, job_detail_since};
pub use estimate::{CleanEstimate, clean_estimate};
pub use latency::{HeadOfLine, head_of_line};
pub use pages::{JobPage, Order, list_job_summaries, list_jobs};
pub use server::{ServerInfo, server_info};
pub use throughput::{MinuteSeries, SeriesSource, Throughput, throughput};

use crate::connection::Connection;
use crate::error::Result;
use crate::names::QueueName;
use crate::state::JobState;

/// Most jobs one page may hold.
pub const MAX_PAGE_SIZE: u64 = 1_000;
/// Most log lines returned with a job (the newest ones).
pub const MAX_LOG_LINES: u64 = 1_000;

/// How many jobs a queue holds in each state, and whether it is paused.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    /// `wait` plus the legacy `paused` list.
    pub waiting: u64,
    /// `prioritized`.
    pub prioritized: u64,
    /// `delayed`.
    pub delayed: u64,
    /// `active`.
    pub active: u64,
    /// `completed`.
    pub completed: u64,
    /// `failed`.
    pub failed: u64,
    /// `waiting-children`.
    pub waiting_children: u64,
    /// Whether the queue is paused (`meta.paused` present).
    pub paused: bool,
    /// Jobs completed since BullMQ's metrics began (`metrics:completed`
    /// `count`, kept by workers that record metrics, as Drover's do).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_total: Option<u64>,
    /// Jobs finally failed since BullMQ's metrics began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_total: Option<u64>,
}

impl QueueCounts {
    /// The count for one state.
    pub fn get(&self, state: JobState) -> u64 {
        match state {
            JobState::Waiting => self.waiting,
            JobState::Prioritized => self.prioritized,
            JobState::Delayed => self.delayed,
            JobState::Active => self.active,
            JobState::Completed => self.completed,
            JobState::Failed => self.failed,
            JobState::WaitingChildren => self.waiting_children,
        }
    }

    /// Jobs ready to run: waiting and prioritized.
    pub fn ready(&self) -> u64 {
        self.waiting + self.prioritized
    }
}

/// Commands per queue in [`queue_counts`], in the order they are read back.
const COUNT_COMMANDS: usize = 11;

/// Counts for many queues in one round trip (one pipeline per cluster slot,
/// sent concurrently).
pub async fn queue_counts(
    conn: &Connection,
    queues: &[QueueName],
) -> Result<Vec<(QueueName, QueueCounts)>> {
    let replies = slots::per_queue(conn, queues, COUNT_COMMANDS, |pipe, k| {
        pipe.llen(k.wait())
            .llen(k.paused())
            .llen(k.active())
            .zcard(k.prioritized())
            .zcard(k.delayed())
            .zcard(k.completed())
            .zcard(k.failed())
            .zcard(k.waiting_children())
            .hexists(k.meta(), "paused")
            .hget(k.get("metrics:completed"), "count")
            .hget(k.get("metrics:failed"), "count");
    })
    .await?;
    queues
        .iter()
        .zip(replies)
        .map(|(queue, v)| {
            let n = |i: usize| slots::decode::<Option<u64>>(&v[i]);
            Ok((
                queue.clone(),
                QueueCounts {
                    waiting: n(0)?.unwrap_or(0) + n(1)?.unwrap_or(0),
                    active: n(2)?.unwrap_or(0),
                    prioritized: n(3)?.unwrap_or(0),
                    delayed: n(4)?.unwrap_or(0),
                    completed: n(5)?.unwrap_or(0),
                    failed: n(6)?.unwrap_or(0),
                    waiting_children: n(7)?.unwrap_or(0),
                    paused: n(8)? == Some(1),
                    completed_total: n(9)?,
                    failed_total: n(10)?,
                },
            ))
        })
        .collect()
}

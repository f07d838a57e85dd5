//! Queue latency: how long the job at the head of the line has been
//! waiting (Sidekiq's latency, asynq's `queue_latency_seconds`).

use serde::Serialize;

use super::slots;
use crate::clock::now_ms;
use crate::connection::Connection;
use crate::error::Result;
use crate::names::QueueName;

/// The job a worker would take next, and since when it has been ready.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HeadOfLine {
    /// Its id; `None` when nothing is ready.
    pub job_id: Option<String>,
    /// When it became ready, ms since the epoch: its creation time plus
    /// its delay, or the start of its last attempt if later (a retried
    /// job). A lower bound on how long it has waited.
    pub ready_since_ms: Option<u64>,
}

impl HeadOfLine {
    /// How long it has waited, in ms, as of `now_ms`.
    pub fn age_ms(&self, now_ms: u64) -> Option<u64> {
        self.ready_since_ms.map(|t| now_ms.saturating_sub(t))
    }
}

/// For each queue, the oldest of the jobs at the front of `wait`, of the
/// legacy `paused` list and of `prioritized`: two round trips, each one
/// pipeline per cluster slot, whatever the queues hold.
pub async fn head_of_line(conn: &Connection, queues: &[QueueName]) -> Result<Vec<HeadOfLine>> {
    // The consumed end of each list is the tail; of `prioritized`, the
    // lowest score.
    let fronts = slots::per_queue(conn, queues, 3, |pipe, k| {
        pipe.lindex(k.wait(), -1)
            .lindex(k.paused(), -1)
            .zrange(k.prioritized(), 0, 0);
    })
    .await?;
    let mut candidates: Vec<Vec<String>> = Vec::with_capacity(queues.len());
    for replies in &fronts {
        let wait: Option<String> = slots::decode(&replies[0])?;
        let paused: Option<String> = slots::decode(&replies[1])?;
        let prioritized: Vec<String> = slots::decode(&replies[2])?;
        candidates.push(
            wait.into_iter()
                .chain(paused)
                .chain(prioritized)
                .filter(|id| !id.starts_with("0:"))
                .collect(),
        );
    }
    let times = slots::per_queue_varying(conn, queues, |pipe, i, k| {
        for id in &candidates[i] {
            pipe.hmget(k.job_key(id), &["timestamp", "delay", "processedOn"][..]);
        }
        candidates[i].len()
    })
    .await?;
    let mut heads = Vec::with_capacity(queues.len());
    for (ids, replies) in candidates.iter().zip(times) {
        let mut head = HeadOfLine::default();
        for (id, reply) in ids.iter().zip(&replies) {
            let fields: Vec<Option<String>> = slots::decode(reply)?;
            let num = |i: usize| {
                fields
                    .get(i)
                    .cloned()
                    .flatten()
                    .and_then(|v| v.parse::<f64>().ok())
                    .map(|f| f.max(0.0) as u64)
            };
            let Some(created) = num(0) else { continue };
            let ready = (created + num(1).unwrap_or(0)).max(num(2).unwrap_or(0));
            if head.ready_since_ms.is_none_or(|t| ready < t) {
                head = HeadOfLine {
                    job_id: Some(id.clone()),
                    ready_since_ms: Some(ready.min(now_ms())),
                };
            }
        }
        heads.push(head);
    }
    Ok(heads)
}

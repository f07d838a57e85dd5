//! What the autoscaler reads about a queue each tick, with a fixed number
//! of O(1) or O(log n) commands per queue in one pipeline (plus one
//! `HMGET` of the job next in line): lengths, a `ZCOUNT` of the delayed
//! jobs due soon, the heads of `wait`, `prioritized`, `delayed` and
//! `repeat`, `meta`'s pause and limits, and the counters rates are derived
//! from. Never a scan, never a whole structure.

use redis::Value;
use serde::{Deserialize, Serialize};

use crate::connection::Connection;
use crate::error::{QueueError, Result};
use crate::keys;
use crate::names::QueueName;

/// One reading of a queue.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSample {
    /// When it was read, ms since the epoch.
    pub at_ms: u64,
    /// `wait` plus the legacy `paused` list.
    pub waiting: u64,
    /// `prioritized`.
    pub prioritized: u64,
    /// Delayed jobs due by the end of the next tick.
    pub delayed_due: u64,
    /// All delayed jobs.
    pub delayed: u64,
    /// `active`.
    pub active: u64,
    /// Whether the queue is paused (its backlog then counts as zero).
    pub paused: bool,
    /// Age of the job next in line, in ms (from its creation plus its
    /// delay), when one waits.
    pub oldest_wait_ms: Option<u64>,
    /// When the earliest delayed job is due (ms).
    pub next_delayed_ms: Option<u64>,
    /// When the earliest schedule (BullMQ job scheduler) runs next (ms).
    pub next_schedule_ms: Option<u64>,
    /// BullMQ's `id` counter: every add increments it.
    pub added_total: u64,
    /// BullMQ's metrics counters, completed plus failed, when workers keep
    /// them (Drover's do).
    pub finished_total: Option<u64>,
    /// `meta.concurrency`: the queue's global concurrency.
    pub global_concurrency: Option<u64>,
    /// `meta.max` jobs per `meta.duration` ms: the global rate limit.
    pub rate_limit_max: Option<u64>,
    /// The rate limit's window, ms.
    pub rate_limit_duration_ms: Option<u64>,
}

impl QueueSample {
    /// Jobs ready to run or due within the next tick; 0 while paused.
    pub fn backlog(&self) -> u64 {
        if self.paused {
            0
        } else {
            self.waiting + self.prioritized + self.delayed_due
        }
    }
}

/// Commands per queue in the first pipeline.
const COMMANDS: usize = 14;

/// Reads every queue in `queues` at `now_ms`, counting delayed jobs due
/// within `due_within_ms` as backlog.
pub async fn read_samples(
    conn: &Connection,
    queues: &[QueueName],
    now_ms: u64,
    due_within_ms: u64,
) -> Result<Vec<QueueSample>> {
    let reads = queues
        .iter()
        .map(|q| read_one(conn, q, now_ms, due_within_ms));
    futures::future::try_join_all(reads).await
}

async fn read_one(
    conn: &Connection,
    queue: &QueueName,
    now_ms: u64,
    due_within_ms: u64,
) -> Result<QueueSample> {
    let k = keys::queue(conn.prefix(), queue);
    let due_score = (now_ms.saturating_add(due_within_ms)).saturating_mul(4096) + 4095;
    let mut pipe = redis::pipe();
    pipe.llen(k.wait())
        .llen(k.paused())
        .zcard(k.prioritized())
        .zcard(k.delayed())
        .zcount(k.delayed(), "-inf", due_score)
        .llen(k.active())
        .cmd("HMGET")
        .arg(k.meta())
        .arg(&["paused", "concurrency", "max", "duration"][..]);
    pipe.get(k.id())
        .hget(k.get("metrics:completed"), "count")
        .hget(k.get("metrics:failed"), "count")
        .lindex(k.wait(), -1)
        .zrange(k.prioritized(), 0, 0)
        .cmd("ZRANGE")
        .arg(k.delayed())
        .arg(0)
        .arg(0)
        .arg("WITHSCORES");
    pipe.cmd("ZRANGE")
        .arg(k.repeat())
        .arg(0)
        .arg(0)
        .arg("WITHSCORES");
    let mut redis = conn.redis();
    let values: Vec<Value> = pipe.query_async(&mut redis).await?;
    if values.len() != COMMANDS {
        return Err(QueueError::Protocol(
            "short reply to the autoscaler's pipeline".into(),
        ));
    }
    let mut v = values.into_iter();
    let mut next = || v.next().unwrap_or(Value::Nil);
    let wait: u64 = redis::from_redis_value(next())?;
    let paused_list: u64 = redis::from_redis_value(next())?;
    let prioritized: u64 = redis::from_redis_value(next())?;
    let delayed: u64 = redis::from_redis_value(next())?;
    let delayed_due: u64 = redis::from_redis_value(next())?;
    let active: u64 = redis::from_redis_value(next())?;
    let meta: Vec<Option<String>> = redis::from_redis_value(next())?;
    let added: Option<u64> = redis::from_redis_value(next())?;
    let completed: Option<u64> = redis::from_redis_value(next())?;
    let failed: Option<u64> = redis::from_redis_value(next())?;
    let wait_head: Option<String> = redis::from_redis_value(next())?;
    let prio_head: Vec<String> = redis::from_redis_value(next())?;
    let delayed_head: Vec<(String, f64)> = redis::from_redis_value(next())?;
    let repeat_head: Vec<(String, f64)> = redis::from_redis_value(next())?;
    let number = |i: usize| meta.get(i).cloned().flatten().and_then(|s| s.parse().ok());
    let paused = meta.first().is_some_and(Option::is_some);
    let head = wait_head.or_else(|| prio_head.into_iter().next());
    let oldest_wait_ms = match (&head, paused) {
        (Some(id), false) => {
            let (ts, delay): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
                .arg(k.job_key(id))
                .arg("timestamp")
                .arg("delay")
                .query_async(&mut redis)
                .await?;
            ts.map(|t| now_ms.saturating_sub(t + delay.unwrap_or(0)))
        }
        _ => None,
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ms = |score: f64| score.max(0.0) as u64;
    Ok(QueueSample {
        at_ms: now_ms,
        waiting: wait + paused_list,
        prioritized,
        delayed_due,
        delayed,
        active,
        paused,
        oldest_wait_ms,
        // Delayed scores are due time × 4096 + a sequence number.
        next_delayed_ms: delayed_head.first().map(|(_, s)| ms(*s / 4096.0)),
        next_schedule_ms: repeat_head.first().map(|(_, s)| ms(*s)),
        added_total: added.unwrap_or(0),
        finished_total: match (completed, failed) {
            (None, None) => None,
            (c, f) => Some(c.unwrap_or(0) + f.unwrap_or(0)),
        },
        global_concurrency: number(1).filter(|c| *c > 0),
        rate_limit_max: number(2).filter(|m| *m > 0),
        rate_limit_duration_ms: number(3).filter(|d| *d > 0),
    })
}

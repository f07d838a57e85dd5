//! One job: its hash, its state and its newest log lines.

use std::collections::HashMap;

use redis::{Pipeline, Value};
use serde::Serialize;

use super::MAX_LOG_LINES;
use crate::connection::Connection;
use crate::error::{QueueError, Result};
use crate::keys;
use crate::names::QueueName;
use crate::record::JobRecord;
use crate::state::JobState;

/// Everything about one job: its record, state and newest log lines.
#[derive(Debug, Clone, Serialize)]
pub struct JobDetail {
    /// The decoded job hash.
    #[serde(flatten)]
    pub record: JobRecord,
    /// Where it is now (`None` if it is in no state structure, which
    /// happens for a job mid-removal or a corrupt one).
    pub state: Option<JobState>,
    /// The newest log lines (at most [`MAX_LOG_LINES`]), oldest first.
    pub logs: Vec<String>,
    /// How many log lines the job has in all.
    pub logs_total: u64,
}

/// Reads one job, its state and its newest logs.
///
/// The hash, the logs and the state structures that are cheap to probe
/// (the sorted sets, by score, and the `active` list, which holds at most
/// the workers' concurrency) are read in one atomic round trip. Only a job
/// found in none of them is looked for in `wait` and the legacy `paused`
/// list, whose `LPOS` walks lists that may hold millions of ids.
pub async fn job_detail(conn: &Connection, queue: &QueueName, id: &str) -> Result<JobDetail> {
    job_detail_since(conn, queue, id, None).await
}

/// [`job_detail`] for a caller that read the job before and saw it in
/// `previous` state (a page refreshing itself). A waiting job that is in
/// none of the cheap structures is still waiting: a job leaves `wait` only
/// for `active`, `prioritized` or `delayed`, all probed here, or by being
/// deleted, which the missing hash shows; so `wait` is not walked again.
pub async fn job_detail_since(
    conn: &Connection,
    queue: &QueueName,
    id: &str,
    previous: Option<JobState>,
) -> Result<JobDetail> {
    let k = keys::queue(conn.prefix(), queue);
    let logs_key = keys::job_logs(&k, id);
    let mut pipe = Pipeline::new();
    pipe.atomic()
        .hgetall(k.job_key(id))
        .lrange(&logs_key, -(MAX_LOG_LINES as isize), -1)
        .llen(&logs_key);
    // The order of BullMQ's getState, with the long lists left out.
    pipe.zscore(k.completed(), id)
        .zscore(k.failed(), id)
        .zscore(k.delayed(), id)
        .zscore(k.prioritized(), id);
    pipe.cmd("LPOS").arg(k.active()).arg(id);
    pipe.zscore(k.waiting_children(), id);
    const ORDER: [JobState; 6] = [
        JobState::Completed,
        JobState::Failed,
        JobState::Delayed,
        JobState::Prioritized,
        JobState::Active,
        JobState::WaitingChildren,
    ];
    let mut replies: Vec<Value> = pipe.query_async(&mut conn.redis()).await?;
    if replies.len() != 3 + ORDER.len() {
        return Err(QueueError::Protocol(
            "short reply to the job pipeline".into(),
        ));
    }
    let state_replies = replies.split_off(3);
    let mut head = replies.into_iter();
    let mut next = || head.next().unwrap_or(Value::Nil);
    let hash: HashMap<String, String> = redis::from_redis_value(next())?;
    let logs: Vec<String> = redis::from_redis_value(next())?;
    let logs_total: u64 = redis::from_redis_value(next())?;
    let record = JobRecord::from_hash(id, hash).ok_or_else(|| QueueError::JobNotFound {
        queue: queue.to_string(),
        id: id.to_string(),
    })?;
    let mut state = state_replies
        .iter()
        .zip(ORDER)
        .find(|(reply, _)| !matches!(reply, Value::Nil))
        .map(|(_, state)| state);
    if state.is_none() && previous == Some(JobState::Waiting) {
        state = previous;
    } else if state.is_none() {
        let mut pipe = Pipeline::new();
        for list in [k.wait(), k.paused()] {
            pipe.cmd("LPOS").arg(list).arg(id);
        }
        let found: Vec<Option<u64>> = pipe.query_async(&mut conn.redis()).await?;
        if found.iter().any(Option::is_some) {
            state = Some(JobState::Waiting);
        }
    }
    Ok(JobDetail {
        record,
        state,
        logs,
        logs_total,
    })
}

//! Read models for the CLI, the API and the dashboard: counts, job pages and
//! job details, read with bounded commands only (lengths, ranges, pipelines;
//! never a keyspace scan or a full-set read).
//!
//! Inspection never runs on the workers' hot path and never writes.

use std::collections::{BTreeMap, HashMap};

use redis::{Pipeline, Value};
use serde::Serialize;

use crate::connection::Connection;
use crate::error::{QueueError, Result};
use crate::keys;
use crate::names::QueueName;
use crate::record::JobRecord;
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
}

/// Commands per queue in [`queue_counts`], in the order they are read back.
const COUNT_COMMANDS: usize = 11;

/// Counts for many queues in one round trip (one pipeline per cluster slot,
/// sent concurrently).
pub async fn queue_counts(
    conn: &Connection,
    queues: &[QueueName],
) -> Result<Vec<(QueueName, QueueCounts)>> {
    let prefix = conn.prefix();
    // Group queues by the slot of their keys; on one server everything is
    // one group.
    let mut groups: BTreeMap<u16, Vec<&QueueName>> = BTreeMap::new();
    for queue in queues {
        let slot = if conn.is_cluster() {
            keys::cluster_slot(&keys::queue(prefix, queue).meta())
        } else {
            0
        };
        groups.entry(slot).or_default().push(queue);
    }
    let requests = groups.into_values().map(|group| {
        let mut pipe = redis::pipe();
        for queue in &group {
            let k = keys::queue(prefix, queue);
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
        }
        let mut redis = conn.redis();
        async move {
            let values: Vec<Option<u64>> = pipe.query_async(&mut redis).await?;
            Ok::<_, QueueError>((group, values))
        }
    });
    let mut counts: HashMap<QueueName, QueueCounts> = HashMap::new();
    for result in futures::future::join_all(requests).await {
        let (group, values) = result?;
        for (queue, v) in group.into_iter().zip(values.chunks(COUNT_COMMANDS)) {
            let [
                wait,
                paused_list,
                active,
                prioritized,
                delayed,
                completed,
                failed,
                children,
                paused,
                completed_total,
                failed_total,
            ] = v
                .try_into()
                .map_err(|_| QueueError::Protocol("short reply to the counts pipeline".into()))?;
            counts.insert(
                queue.clone(),
                QueueCounts {
                    waiting: wait.unwrap_or(0) + paused_list.unwrap_or(0),
                    prioritized: prioritized.unwrap_or(0),
                    delayed: delayed.unwrap_or(0),
                    active: active.unwrap_or(0),
                    completed: completed.unwrap_or(0),
                    failed: failed.unwrap_or(0),
                    waiting_children: children.unwrap_or(0),
                    paused: paused == Some(1),
                    completed_total,
                    failed_total,
                },
            );
        }
    }
    Ok(queues
        .iter()
        .map(|q| (q.clone(), counts.remove(q).unwrap_or_default()))
        .collect())
}

/// Which end of a state to start a page from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// Most recently added (or finished, or latest due) first.
    #[default]
    NewestFirst,
    /// Oldest (next to run, soonest due, first finished) first.
    OldestFirst,
}

/// One page of jobs in one state.
#[derive(Debug, Clone, Serialize)]
pub struct JobPage {
    /// The state listed.
    pub state: JobState,
    /// Jobs in that state when the page was read.
    pub total: u64,
    /// Index of the first job of this page.
    pub offset: u64,
    /// The jobs (ids removed while reading are skipped).
    pub jobs: Vec<JobRecord>,
}

/// Reads `limit` (≤ [`MAX_PAGE_SIZE`]) jobs of `state` starting at `offset`,
/// in two round trips: ids, then their hashes.
pub async fn list_jobs(
    conn: &Connection,
    queue: &QueueName,
    state: JobState,
    offset: u64,
    limit: u64,
    order: Order,
) -> Result<JobPage> {
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(QueueError::InvalidOptions(format!(
            "page size must be between 1 and {MAX_PAGE_SIZE}, not {limit}"
        )));
    }
    let k = keys::queue(conn.prefix(), queue);
    let mut redis = conn.redis();
    let (total, ids) = if state.is_list() {
        // `Waiting` spans `wait` then the legacy `paused` list (which holds
        // older jobs), as one virtual list, newest first.
        let mut segments = vec![k.get(state.key_suffix())];
        if state == JobState::Waiting {
            segments.push(k.paused());
        }
        let mut pipe = redis::pipe();
        for key in &segments {
            pipe.llen(key);
        }
        let lens: Vec<u64> = pipe.query_async(&mut redis).await?;
        let total = lens.iter().sum();
        let ids = read_list_page(&mut redis, &segments, &lens, offset, limit, order).await?;
        (total, ids)
    } else {
        let key = k.get(state.key_suffix());
        let start = offset;
        let stop = offset + limit - 1;
        let mut pipe = redis::pipe();
        pipe.zcard(&key);
        match order {
            Order::NewestFirst => pipe.zrevrange(&key, start as isize, stop as isize),
            Order::OldestFirst => pipe.zrange(&key, start as isize, stop as isize),
        };
        let (total, ids): (u64, Vec<String>) = pipe.query_async(&mut redis).await?;
        (total, ids)
    };
    let jobs = read_records(conn, &k, &ids).await?;
    Ok(JobPage {
        state,
        total,
        offset,
        jobs,
    })
}

/// A page of a virtual list made of `segments` (newest first), each with
/// its length.
async fn read_list_page(
    redis: &mut bullmq::redis_connection::AnyConnection,
    segments: &[String],
    lens: &[u64],
    offset: u64,
    limit: u64,
    order: Order,
) -> Result<Vec<String>> {
    // Work in "position from the page's start" space: newest-first walks
    // segments from head to tail, oldest-first from tail to head.
    let total: u64 = lens.iter().sum();
    if offset >= total {
        return Ok(Vec::new());
    }
    let want_end = (offset + limit).min(total);
    let mut pipe = redis::pipe();
    let mut reads = 0;
    let mut seg_start = 0;
    let indices: Vec<usize> = match order {
        Order::NewestFirst => (0..segments.len()).collect(),
        Order::OldestFirst => (0..segments.len()).rev().collect(),
    };
    for i in indices {
        let len = lens[i];
        let seg_end = seg_start + len;
        let from = offset.max(seg_start);
        let to = want_end.min(seg_end);
        if from < to {
            let (a, b) = (from - seg_start, to - seg_start - 1);
            match order {
                Order::NewestFirst => pipe.lrange(&segments[i], a as isize, b as isize),
                // Oldest first reads from the tail: position p from the
                // tail is index -(p+1).
                Order::OldestFirst => {
                    pipe.lrange(&segments[i], -(b as isize) - 1, -(a as isize) - 1)
                }
            };
            reads += 1;
        }
        seg_start = seg_end;
    }
    if reads == 0 {
        return Ok(Vec::new());
    }
    let chunks: Vec<Vec<String>> = pipe.query_async(redis).await?;
    Ok(chunks
        .into_iter()
        .flat_map(|mut chunk| {
            if order == Order::OldestFirst {
                chunk.reverse();
            }
            chunk
        })
        .collect())
}

/// The hashes of `ids`, in order, skipping ids whose hash is gone.
async fn read_records(
    conn: &Connection,
    k: &bullmq::QueueKeys,
    ids: &[String],
) -> Result<Vec<JobRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.hgetall(k.job_key(id));
    }
    let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn.redis()).await?;
    Ok(ids
        .iter()
        .zip(hashes)
        .filter_map(|(id, hash)| JobRecord::from_hash(id, hash))
        .collect())
}

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

/// Reads one job, its state and its newest logs in one atomic round trip.
pub async fn job_detail(conn: &Connection, queue: &QueueName, id: &str) -> Result<JobDetail> {
    let k = keys::queue(conn.prefix(), queue);
    let logs_key = keys::job_logs(&k, id);
    let mut pipe = Pipeline::new();
    pipe.atomic()
        .hgetall(k.job_key(id))
        .lrange(&logs_key, -(MAX_LOG_LINES as isize), -1)
        .llen(&logs_key);
    // The state lookup BullMQ's getState does, in its order.
    pipe.zscore(k.completed(), id)
        .zscore(k.failed(), id)
        .zscore(k.delayed(), id)
        .zscore(k.prioritized(), id);
    for list in [k.active(), k.wait(), k.paused()] {
        pipe.cmd("LPOS").arg(list).arg(id);
    }
    pipe.zscore(k.waiting_children(), id);
    let mut replies: Vec<Value> = pipe.query_async(&mut conn.redis()).await?;
    if replies.len() != 11 {
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
    const ORDER: [JobState; 8] = [
        JobState::Completed,
        JobState::Failed,
        JobState::Delayed,
        JobState::Prioritized,
        JobState::Active,
        JobState::Waiting,
        JobState::Waiting,
        JobState::WaitingChildren,
    ];
    let state = state_replies
        .iter()
        .zip(ORDER)
        .find(|(reply, _)| !matches!(reply, Value::Nil))
        .map(|(_, state)| state);
    Ok(JobDetail {
        record,
        state,
        logs,
        logs_total,
    })
}

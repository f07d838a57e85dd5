//! Pages of jobs in one state: ids by range, then their hashes (whole, or
//! only the fields a list shows).

use std::collections::HashMap;

use redis::Value;
use serde::Serialize;

use super::MAX_PAGE_SIZE;
use crate::connection::Connection;
use crate::error::{QueueError, Result};
use crate::keys;
use crate::names::QueueName;
use crate::record::JobRecord;
use crate::state::JobState;

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
    /// For pages of summaries, each job's payload size in bytes (the
    /// stored JSON text), in the order of `jobs`; empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data_bytes: Vec<u64>,
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
    let k = keys::queue(conn.prefix(), queue);
    let (total, ids) = page_ids(conn, &k, state, offset, limit, order).await?;
    let jobs = read_records(conn, &k, &ids).await?;
    Ok(JobPage {
        state,
        total,
        offset,
        jobs,
        data_bytes: Vec::new(),
    })
}

/// Fields of a job hash a list shows: everything but the payload and the
/// return value, which may be megabytes each.
const SUMMARY_FIELDS: [&str; 15] = [
    "name",
    "opts",
    "progress",
    "timestamp",
    "delay",
    "priority",
    "processedOn",
    "finishedOn",
    "atm",
    "ats",
    "attemptsMade",
    "stc",
    "failedReason",
    "rjk",
    "pb",
];

/// Like [`list_jobs`], but reads only the fields a list shows (the
/// records' `data` and `returnvalue` are left empty) and the payload's size
/// in bytes, so a page of jobs with huge payloads stays small.
pub async fn list_job_summaries(
    conn: &Connection,
    queue: &QueueName,
    state: JobState,
    offset: u64,
    limit: u64,
    order: Order,
) -> Result<JobPage> {
    let k = keys::queue(conn.prefix(), queue);
    let (total, ids) = page_ids(conn, &k, state, offset, limit, order).await?;
    let mut jobs = Vec::with_capacity(ids.len());
    let mut data_bytes = Vec::with_capacity(ids.len());
    if !ids.is_empty() {
        let mut pipe = redis::pipe();
        for id in &ids {
            let key = k.job_key(id);
            pipe.hmget(&key, &SUMMARY_FIELDS[..]);
            pipe.cmd("HSTRLEN").arg(&key).arg("data");
        }
        let replies: Vec<Value> = pipe.query_async(&mut conn.redis()).await?;
        for (id, pair) in ids.iter().zip(replies.chunks(2)) {
            let [fields, size] = pair else {
                return Err(QueueError::Protocol("short reply to a job page".into()));
            };
            let values: Vec<Option<String>> = super::slots::decode(fields)?;
            let hash: HashMap<String, String> = SUMMARY_FIELDS
                .iter()
                .zip(values)
                .filter_map(|(f, v)| v.map(|v| ((*f).to_string(), v)))
                .collect();
            if let Some(mut record) = JobRecord::from_hash(id, hash) {
                record.data = serde_json::Value::Null;
                jobs.push(record);
                data_bytes.push(super::slots::decode::<u64>(size)?);
            }
        }
    }
    Ok(JobPage {
        state,
        total,
        offset,
        jobs,
        data_bytes,
    })
}

/// The total in `state` and the ids of one page of it.
async fn page_ids(
    conn: &Connection,
    k: &bullmq::QueueKeys,
    state: JobState,
    offset: u64,
    limit: u64,
    order: Order,
) -> Result<(u64, Vec<String>)> {
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(QueueError::InvalidOptions(format!(
            "page size must be between 1 and {MAX_PAGE_SIZE}, not {limit}"
        )));
    }
    let mut redis = conn.redis();
    if state.is_list() {
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
        Ok((total, ids))
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
        Ok(pipe.query_async(&mut redis).await?)
    }
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

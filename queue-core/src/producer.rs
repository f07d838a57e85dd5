//! Adding jobs, through bullmq-official's add scripts.
//!
//! [`JobOptions`] uses BullMQ's option names, so the same JSON a Node
//! producer passes to `Queue.add` works here; everything is checked before
//! anything is written.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::connection::Connection;
use crate::error::{QueueError, Result};
use crate::names::{QueueName, validate_custom_job_id, validate_job_name};

/// Highest priority value BullMQ accepts (2^21 - 1); lower runs first.
pub const MAX_PRIORITY: u32 = 2_097_151;
/// Longest delay accepted (about 10 years), in ms.
pub const MAX_DELAY_MS: u64 = 10 * 366 * 24 * 3_600 * 1_000;
/// Most attempts a job may be given.
pub const MAX_ATTEMPTS: u32 = 1_000;

/// A job to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The job name (routes it to a handler).
    pub name: String,
    /// The payload, stored as JSON.
    pub data: Value,
    /// BullMQ options.
    pub opts: JobOptions,
}

/// BullMQ's job options, by their BullMQ names.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct JobOptions {
    /// A custom id; adding an id that exists returns the existing job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Wait this many ms before the job may run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<u64>,
    /// 1 (first) to 2,097,151; unset or 0 means not prioritized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Run next instead of last among waiting jobs.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lifo: bool,
    /// Total tries, the first included (0 and 1 both mean one try).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Wait between tries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// What to keep once completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_on_complete: Option<Retention>,
    /// What to keep once finally failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_on_fail: Option<Retention>,
    /// Drop (or replace) adds while a job with the same id is pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deduplication: Option<Deduplication>,
}

/// BullMQ's built-in backoff strategies.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Backoff {
    /// The same delay before every retry.
    Fixed {
        /// Delay in ms.
        delay: u64,
    },
    /// `delay`, then twice that, four times that, ...
    Exponential {
        /// First delay in ms.
        delay: u64,
    },
}

/// BullMQ's `removeOnComplete` / `removeOnFail`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Retention {
    /// `true` removes the job at once; `false` keeps it.
    Remove(bool),
    /// Keep only the newest N.
    KeepLast(u64),
    /// Keep jobs younger than `age` seconds and/or the newest `count`.
    Policy(RetentionPolicy),
}

/// The object form of [`Retention`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Maximum age in seconds (BullMQ measures this one in seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<u64>,
    /// Maximum number kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// BullMQ's deduplication options.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Deduplication {
    /// Adds with the same id are deduplicated.
    pub id: String,
    /// Window in ms; without it, until the job finishes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// Each duplicate restarts the window.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extend: bool,
    /// A duplicate replaces the pending job while it is still delayed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace: bool,
}

impl NewJob {
    /// Checks the name and options; nothing is sent to Redis for a job that
    /// fails here.
    pub fn validate(&self) -> Result<()> {
        validate_job_name(&self.name)?;
        let o = &self.opts;
        if let Some(id) = &o.job_id {
            validate_custom_job_id(id)?;
        }
        let invalid = |msg: String| Err(QueueError::InvalidOptions(msg));
        if o.delay.is_some_and(|d| d > MAX_DELAY_MS) {
            return invalid(format!("delay must be at most {MAX_DELAY_MS} ms"));
        }
        if o.priority.is_some_and(|p| p > MAX_PRIORITY) {
            return invalid(format!("priority must be between 0 and {MAX_PRIORITY}"));
        }
        if o.attempts.is_some_and(|a| a > MAX_ATTEMPTS) {
            return invalid(format!("attempts must be at most {MAX_ATTEMPTS}"));
        }
        if let Some(Backoff::Fixed { delay } | Backoff::Exponential { delay }) = o.backoff {
            if delay > MAX_DELAY_MS {
                return invalid(format!("backoff delay must be at most {MAX_DELAY_MS} ms"));
            }
        }
        if let Some(d) = &o.deduplication {
            if d.id.is_empty() || d.id.len() > 255 {
                return invalid("deduplication id must be 1 to 255 bytes".into());
            }
            if d.extend && d.ttl.is_none() {
                return invalid("deduplication extend needs a ttl".into());
            }
        }
        Ok(())
    }

    fn to_bullmq(&self) -> bullmq::JobOptions {
        options_to_bullmq(&self.opts)
    }
}

/// [`JobOptions`] in bullmq-official's form.
pub(crate) fn options_to_bullmq(o: &JobOptions) -> bullmq::JobOptions {
    let mut opts = bullmq::JobOptions::new();
    opts.job_id = o.job_id.clone();
    opts.delay = o.delay.filter(|d| *d > 0);
    opts.priority = o.priority.filter(|p| *p > 0);
    opts.lifo = o.lifo.then_some(true);
    // Node always stores `attempts` (0 by default); so do we.
    opts.attempts = Some(o.attempts.unwrap_or(0));
    opts.backoff = o.backoff.map(|b| match b {
        Backoff::Fixed { delay } => bullmq::types::BackoffStrategy::Fixed(delay),
        Backoff::Exponential { delay } => bullmq::types::BackoffStrategy::Exponential(delay),
    });
    opts.remove_on_complete = o.remove_on_complete.map(retention_to_bullmq);
    opts.remove_on_fail = o.remove_on_fail.map(retention_to_bullmq);
    opts.deduplication = o
        .deduplication
        .as_ref()
        .map(|d| bullmq::DeduplicationOptions {
            id: d.id.clone(),
            ttl: d.ttl,
            extend: d.extend.then_some(true),
            replace: d.replace.then_some(true),
            keep_last_if_active: None,
        });
    opts
}

pub(crate) fn retention_to_bullmq(r: Retention) -> bullmq::types::RemoveOnFinish {
    use bullmq::types::{KeepJobs, RemoveOnFinish};
    match r {
        Retention::Remove(b) => RemoveOnFinish::Bool(b),
        Retention::KeepLast(n) => RemoveOnFinish::Count(usize::try_from(n).unwrap_or(usize::MAX)),
        Retention::Policy(p) => RemoveOnFinish::Options(KeepJobs {
            age: p.age,
            count: p.count.map(|c| usize::try_from(c).unwrap_or(usize::MAX)),
            limit: None,
        }),
    }
}

/// Adds one job; returns its id (the existing job's id when a custom id or
/// a deduplication id matched).
pub async fn enqueue(conn: &Connection, queue: &QueueName, job: &NewJob) -> Result<String> {
    job.validate()?;
    conn.check_replicas(queue)?;
    let q = conn.bullmq_queue(queue).await?;
    let added = q.add(&job.name, &job.data).options(job.to_bullmq()).await?;
    conn.confirm_replicated(queue).await?;
    Ok(added.id().to_string())
}

/// Most jobs one bulk add may hold.
pub const MAX_BULK_JOBS: usize = 1_000;

/// Adds many jobs all-or-nothing in one round trip: every job is checked
/// before anything is sent, then all adds go in one `MULTI`/`EXEC`
/// (bullmq-official's `FlowProducer::add_bulk`, the same transaction Node's
/// `Queue.addBulk` uses), so a dropped connection or a failed request
/// leaves none of them. Returns the ids in order; jobs without a custom id
/// get a UUID, as flows do in every BullMQ client.
pub async fn enqueue_bulk(
    conn: &Connection,
    queue: &QueueName,
    jobs: &[NewJob],
) -> Result<Vec<String>> {
    if jobs.len() > MAX_BULK_JOBS {
        return Err(QueueError::InvalidOptions(format!(
            "a bulk add holds at most {MAX_BULK_JOBS} jobs, got {}",
            jobs.len()
        )));
    }
    for job in jobs {
        job.validate()?;
    }
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    // The queue's `meta` (version, events length) is written once per
    // process, as for single adds.
    conn.check_replicas(queue)?;
    conn.bullmq_queue(queue).await?;
    let flows =
        jobs.iter()
            .map(|job| {
                Ok(bullmq::FlowJob::new(&job.name, queue.as_str(), &job.data)?
                    .options(job.to_bullmq()))
            })
            .collect::<Result<Vec<_>>>()?;
    let added = conn.flow_producer()?.add_bulk(flows).await?;
    conn.confirm_replicated(queue).await?;
    Ok(added.iter().map(|node| node.job.id().to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(opts: Value) -> NewJob {
        NewJob {
            name: "n".into(),
            data: json!({}),
            opts: serde_json::from_value(opts).unwrap(),
        }
    }

    #[test]
    fn bullmq_option_names_deserialize() {
        let j = job(json!({
            "jobId": "order-1", "delay": 500, "priority": 3, "lifo": true, "attempts": 4,
            "backoff": {"type": "exponential", "delay": 100},
            "removeOnComplete": true, "removeOnFail": {"age": 3600, "count": 10},
            "deduplication": {"id": "d1", "ttl": 1000, "extend": true}
        }));
        assert!(j.validate().is_ok());
        assert_eq!(j.opts.backoff, Some(Backoff::Exponential { delay: 100 }));
        assert_eq!(j.opts.remove_on_complete, Some(Retention::Remove(true)));
        assert_eq!(
            j.opts.remove_on_fail,
            Some(Retention::Policy(RetentionPolicy {
                age: Some(3600),
                count: Some(10)
            }))
        );
        let b = j.to_bullmq();
        assert_eq!(b.attempts, Some(4));
        assert_eq!(b.delay, Some(500));
    }

    #[test]
    fn unknown_options_are_rejected() {
        let r: Result<JobOptions, _> = serde_json::from_value(json!({"atempts": 3}));
        assert!(r.is_err());
    }

    #[test]
    fn out_of_range_options_are_rejected() {
        for opts in [
            json!({"priority": 2_097_152}),
            json!({"attempts": 1001}),
            json!({"jobId": "42"}),
            json!({"deduplication": {"id": "x", "extend": true}}),
        ] {
            assert!(job(opts.clone()).validate().is_err(), "{opts}");
        }
    }

    #[test]
    fn plain_add_stores_attempts_zero_like_node() {
        assert_eq!(job(json!({})).to_bullmq().attempts, Some(0));
    }
}

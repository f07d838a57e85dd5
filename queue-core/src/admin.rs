//! Actions ops take on queues and jobs, all through bullmq-official's
//! scripts and all bounded: bulk actions run in batches of
//! [`ADMIN_BATCH`] so no single script holds Redis for long.

use std::time::Duration;

use crate::clock::now_ms;
use crate::connection::Connection;
use crate::error::{QueueError, Result};
use crate::keys;
use crate::names::QueueName;
use crate::state::JobState;

/// Jobs touched per script call by bulk actions.
pub const ADMIN_BATCH: u32 = 1_000;

/// Fails with [`QueueError::QueueNotFound`] unless the queue has a `meta`
/// hash or an `id` counter, so a typo never creates a queue.
pub async fn ensure_queue_exists(conn: &Connection, queue: &QueueName) -> Result<()> {
    let k = keys::queue(conn.prefix(), queue);
    let found: u64 = redis::cmd("EXISTS")
        .arg(k.meta())
        .arg(k.id())
        .query_async(&mut conn.redis())
        .await?;
    if found == 0 {
        return Err(QueueError::QueueNotFound {
            queue: queue.to_string(),
        });
    }
    Ok(())
}

async fn existing_queue(conn: &Connection, queue: &QueueName) -> Result<bullmq::Queue> {
    ensure_queue_exists(conn, queue).await?;
    conn.bullmq_queue(queue).await
}

/// Pauses the queue for every worker (BullMQ's `meta.paused`).
pub async fn pause(conn: &Connection, queue: &QueueName) -> Result<()> {
    Ok(existing_queue(conn, queue).await?.pause().await?)
}

/// Resumes a paused queue.
pub async fn resume(conn: &Connection, queue: &QueueName) -> Result<()> {
    Ok(existing_queue(conn, queue).await?.resume().await?)
}

async fn existing_job(conn: &Connection, queue: &QueueName, id: &str) -> Result<bullmq::Job> {
    let q = existing_queue(conn, queue).await?;
    q.get_job(id).await?.ok_or_else(|| QueueError::JobNotFound {
        queue: queue.to_string(),
        id: id.to_string(),
    })
}

/// Moves one failed job back to waiting (attempt counters kept).
pub async fn retry_job(conn: &Connection, queue: &QueueName, id: &str) -> Result<()> {
    let mut job = existing_job(conn, queue, id).await?;
    job.retry("failed", None)
        .await
        .map_err(|e| not_in_state(queue, id, "retried (only failed jobs can be)", e))
}

/// Moves one delayed job to waiting now.
pub async fn promote_job(conn: &Connection, queue: &QueueName, id: &str) -> Result<()> {
    let job = existing_job(conn, queue, id).await?;
    job.promote()
        .await
        .map_err(|e| not_in_state(queue, id, "promoted (only delayed jobs can be)", e))
}

/// Maps bullmq's "not in the expected state" answers to
/// [`QueueError::JobNotInState`], naming the state the job is in.
fn not_in_state(queue: &QueueName, id: &str, action: &'static str, e: bullmq::Error) -> QueueError {
    let code = match &e {
        bullmq::Error::Script { code, .. } => Some(*code),
        // `Job::retry` reports its script code inside an InvalidConfig text.
        bullmq::Error::InvalidConfig(msg) => {
            msg.rsplit(' ').next().and_then(|c| c.parse::<i64>().ok())
        }
        _ => None,
    };
    match code {
        Some(-3) => QueueError::JobNotInState {
            id: id.to_string(),
            actual: "in another state".to_string(),
            action,
        },
        Some(-1) => QueueError::JobNotFound {
            queue: queue.to_string(),
            id: id.to_string(),
        },
        _ => e.into(),
    }
}

/// Removes one job (and its children). Refused while a worker holds it.
pub async fn remove_job(conn: &Connection, queue: &QueueName, id: &str) -> Result<()> {
    let q = existing_queue(conn, queue).await?;
    let k = keys::queue(conn.prefix(), queue);
    let exists: bool = redis::cmd("EXISTS")
        .arg(k.job_key(id))
        .query_async(&mut conn.redis())
        .await?;
    if !exists {
        return Err(QueueError::JobNotFound {
            queue: queue.to_string(),
            id: id.to_string(),
        });
    }
    match q.remove(id).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(QueueError::JobLocked { id: id.to_string() }),
        Err(bullmq::Error::Script { code: -8, .. }) => {
            Err(QueueError::JobBelongsToScheduler { id: id.to_string() })
        }
        Err(e) => Err(e.into()),
    }
}

/// Moves every job that failed before now back to waiting; returns how many
/// were moved.
pub async fn retry_all_failed(conn: &Connection, queue: &QueueName) -> Result<u64> {
    let q = existing_queue(conn, queue).await?;
    let k = keys::queue(conn.prefix(), queue);
    let cutoff = now_ms();
    let before: u64 = count_until(conn, &k.failed(), cutoff).await?;
    q.retry_jobs("failed", ADMIN_BATCH, Some(cutoff)).await?;
    let after: u64 = count_until(conn, &k.failed(), cutoff).await?;
    Ok(before.saturating_sub(after))
}

/// Moves every delayed job to waiting now; returns how many were moved.
pub async fn promote_all_delayed(conn: &Connection, queue: &QueueName) -> Result<u64> {
    let q = existing_queue(conn, queue).await?;
    let k = keys::queue(conn.prefix(), queue);
    let before: u64 = redis::cmd("ZCARD")
        .arg(k.delayed())
        .query_async(&mut conn.redis())
        .await?;
    q.promote_jobs(ADMIN_BATCH).await?;
    let after: u64 = redis::cmd("ZCARD")
        .arg(k.delayed())
        .query_async(&mut conn.redis())
        .await?;
    Ok(before.saturating_sub(after))
}

async fn count_until(conn: &Connection, zset: &str, max_score: u64) -> Result<u64> {
    Ok(redis::cmd("ZCOUNT")
        .arg(zset)
        .arg("-inf")
        .arg(max_score)
        .query_async(&mut conn.redis())
        .await?)
}

/// What [`clean`] may remove.
fn clean_target(state: JobState) -> Result<&'static str> {
    match state {
        JobState::Waiting => Ok("wait"),
        JobState::Prioritized => Ok("prioritized"),
        JobState::Delayed => Ok("delayed"),
        JobState::Active => Ok("active"),
        JobState::Completed => Ok("completed"),
        JobState::Failed => Ok("failed"),
        JobState::WaitingChildren => Err(QueueError::InvalidOptions(
            "waiting-children jobs cannot be cleaned; remove their children instead".into(),
        )),
    }
}

/// Removes up to `limit` jobs (`None`: all) of `state` older than `grace`,
/// in batches; returns how many were removed. Active jobs are removed only
/// if no worker holds their lock; pending scheduler runs are kept.
pub async fn clean(
    conn: &Connection,
    queue: &QueueName,
    state: JobState,
    grace: Duration,
    limit: Option<u64>,
) -> Result<u64> {
    let q = existing_queue(conn, queue).await?;
    let mut targets = vec![clean_target(state)?];
    if state == JobState::Waiting {
        // Waiting jobs may still sit in the legacy 5.x `paused` list.
        targets.push("paused");
    }
    let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    let mut removed = 0u64;
    for target in targets {
        removed += clean_batches(&q, target, grace_ms, limit.map(|l| l - removed)).await?;
        if limit.is_some_and(|l| removed >= l) {
            break;
        }
    }
    Ok(removed)
}

async fn clean_batches(
    q: &bullmq::Queue,
    target: &str,
    grace_ms: u64,
    limit: Option<u64>,
) -> Result<u64> {
    let mut removed = 0u64;
    loop {
        let batch = match limit {
            Some(l) if l - removed < u64::from(ADMIN_BATCH) => (l - removed) as u32,
            _ => ADMIN_BATCH,
        };
        if batch == 0 {
            return Ok(removed);
        }
        let ids = q.clean(grace_ms, batch, target).await?;
        removed += ids.len() as u64;
        if (ids.len() as u32) < batch {
            return Ok(removed);
        }
    }
}

/// Removes every waiting and prioritized job (and delayed ones if asked),
/// in batches; pending scheduler runs are kept. Returns how many went.
pub async fn drain(conn: &Connection, queue: &QueueName, include_delayed: bool) -> Result<u64> {
    let q = existing_queue(conn, queue).await?;
    let mut targets = vec!["wait", "paused", "prioritized"];
    if include_delayed {
        targets.push("delayed");
    }
    let mut removed = 0;
    for target in targets {
        removed += clean_batches(&q, target, 0, None).await?;
    }
    Ok(removed)
}

/// Deletes the queue and everything in it, in batches. The queue is paused
/// first; with active jobs it is refused unless `force`.
pub async fn obliterate(conn: &Connection, queue: &QueueName, force: bool) -> Result<()> {
    let q = existing_queue(conn, queue).await?;
    let k = keys::queue(conn.prefix(), queue);
    let active: u64 = redis::cmd("LLEN")
        .arg(k.active())
        .query_async(&mut conn.redis())
        .await?;
    if active > 0 && !force {
        return Err(QueueError::QueueHasActiveJobs {
            queue: queue.to_string(),
        });
    }
    q.pause().await?;
    q.obliterate(force, ADMIN_BATCH as usize).await?;
    redis::cmd("SREM")
        .arg(keys::queue_registry(conn.prefix()))
        .arg(queue.as_str())
        .query_async::<()>(&mut conn.redis())
        .await?;
    Ok(())
}

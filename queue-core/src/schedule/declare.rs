//! Declaring and withdrawing schedules through the API or the CLI: the
//! durable store keeps the declaration, Redis gets the BullMQ scheduler,
//! both under the schedule lease so a reconciler pass never sees half.

use std::time::Duration;

use super::live::{self, Owner, ScheduleLock};
use super::spec::Schedule;
use crate::clock::now_ms;
use crate::connection::Connection;
use crate::error::{QueueError, Result};
use crate::names::QueueName;
use crate::store::Store;

/// How long a write holds the lease at most.
const WRITE_LEASE: Duration = Duration::from_secs(15);
/// How long a write waits for a reconciler pass to finish.
const WRITE_WAIT: Duration = Duration::from_secs(5);

async fn lease(conn: &Connection) -> Result<ScheduleLock> {
    ScheduleLock::acquire(conn, WRITE_LEASE, WRITE_WAIT)
        .await?
        .ok_or(QueueError::ScheduleBusy)
}

/// Refuses to change a schedule Drover's config file declares, or one
/// another BullMQ client made.
async fn check_writable(
    conn: &Connection,
    queue: &QueueName,
    id: &str,
    creating: bool,
) -> Result<()> {
    match live::owner_record(conn, queue, id).await? {
        Some(r) if r.owner == Owner::Config => Err(QueueError::ScheduleNotOwned {
            queue: queue.to_string(),
            id: id.to_string(),
            reason: "is declared in the config file; change it there (the scheduler would undo a change made here)",
        }),
        Some(_) => Ok(()),
        None if creating && live::get(conn, queue, id).await?.is_some() => {
            Err(QueueError::ScheduleNotOwned {
                queue: queue.to_string(),
                id: id.to_string(),
                reason: "was made by another BullMQ client; remove it first or choose another id",
            })
        }
        None => Ok(()),
    }
}

/// Declares `schedule` (new or changed) and applies it to Redis; answers
/// whether it is new. `actor` is recorded with the declaration.
pub async fn declare(
    conn: &Connection,
    store: &Store,
    schedule: &Schedule,
    actor: &str,
) -> Result<bool> {
    let now = now_ms();
    if let Some(end) = schedule.spec().end_date.filter(|end| *end <= now) {
        return Err(QueueError::InvalidSchedule(format!(
            "endDate {end} is in the past; nothing would run"
        )));
    }
    let lock = lease(conn).await?;
    let result = async {
        check_writable(conn, schedule.queue(), schedule.id(), true).await?;
        let created = store.put_schedule(schedule, actor, now).await?;
        live::apply(conn, schedule, Owner::Api).await?;
        Ok(created)
    }
    .await;
    release(lock).await;
    result
}

/// Withdraws the schedule `queue`/`id`: forgets its declaration and removes
/// its BullMQ scheduler (also one another client made: this is an explicit
/// request). A run already started finishes.
pub async fn withdraw(conn: &Connection, store: &Store, queue: &QueueName, id: &str) -> Result<()> {
    let lock = lease(conn).await?;
    let result = async {
        check_writable(conn, queue, id, false).await?;
        let declared = store.delete_schedule(queue, id).await?;
        let removed = live::remove(conn, queue, id).await?;
        if declared || removed {
            Ok(())
        } else {
            Err(QueueError::ScheduleNotFound {
                queue: queue.to_string(),
                id: id.to_string(),
            })
        }
    }
    .await;
    release(lock).await;
    result
}

async fn release(lock: ScheduleLock) {
    if let Err(e) = lock.release().await {
        tracing::warn!(error = %e, "could not release the schedule lease; it expires by itself");
    }
}

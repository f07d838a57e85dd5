//! Schedules declared through the API or the CLI. Redis holds them as
//! BullMQ job schedulers; these rows are what they are restored from.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, ms_from_db, ms_to_db};
use crate::error::{QueueError, Result};
use crate::names::QueueName;
use crate::schedule::{Schedule, ScheduleSpec};

/// Most rows [`Store::list_schedules`] reads.
pub const MAX_STORED_SCHEDULES: u32 = 10_000;

/// A declared schedule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSchedule {
    /// The checked schedule.
    pub schedule: Schedule,
    /// When it was first declared (ms).
    pub created_at_ms: u64,
    /// When it was last changed (ms).
    pub updated_at_ms: u64,
    /// Who changed it last.
    pub updated_by: String,
}

impl Store {
    /// Declares `schedule` (or replaces its definition); answers whether it
    /// is new.
    pub async fn put_schedule(
        &self,
        schedule: &Schedule,
        actor: &str,
        now_ms: u64,
    ) -> Result<bool> {
        let definition = serde_json::to_string(schedule.spec())
            .map_err(|e| QueueError::StoreData(format!("cannot encode a schedule: {e}")))?;
        let created: i64 = sqlx::query_scalar(
            "INSERT INTO schedules (queue, id, definition, created_at_ms, updated_at_ms, updated_by) \
             VALUES ($1, $2, $3, $4, $4, $5) \
             ON CONFLICT (queue, id) DO UPDATE SET definition = excluded.definition, \
             updated_at_ms = excluded.updated_at_ms, updated_by = excluded.updated_by \
             RETURNING created_at_ms",
        )
        .bind(schedule.queue().as_str())
        .bind(schedule.id())
        .bind(definition)
        .bind(ms_to_db(now_ms))
        .bind(actor)
        .fetch_one(self.pool())
        .await?;
        Ok(ms_from_db(created) == now_ms)
    }

    /// Forgets a declared schedule; answers whether it was declared.
    pub async fn delete_schedule(&self, queue: &QueueName, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM schedules WHERE queue = $1 AND id = $2")
            .bind(queue.as_str())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// One declared schedule.
    pub async fn get_schedule(
        &self,
        queue: &QueueName,
        id: &str,
    ) -> Result<Option<StoredSchedule>> {
        let row = sqlx::query(
            "SELECT queue, id, definition, created_at_ms, updated_at_ms, updated_by \
             FROM schedules WHERE queue = $1 AND id = $2",
        )
        .bind(queue.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every declared schedule (at most [`MAX_STORED_SCHEDULES`]), by queue
    /// and id.
    pub async fn list_schedules(&self) -> Result<Vec<StoredSchedule>> {
        let rows = sqlx::query(
            "SELECT queue, id, definition, created_at_ms, updated_at_ms, updated_by \
             FROM schedules ORDER BY queue, id LIMIT $1",
        )
        .bind(i64::from(MAX_STORED_SCHEDULES))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }
}

fn from_row(row: &AnyRow) -> Result<StoredSchedule> {
    let queue: String = row.try_get("queue")?;
    let id: String = row.try_get("id")?;
    let definition: String = row.try_get("definition")?;
    let bad = |e: String| QueueError::StoreData(format!("schedule {queue}/{id}: {e}"));
    let spec: ScheduleSpec = serde_json::from_str(&definition).map_err(|e| bad(e.to_string()))?;
    let queue_name = QueueName::new(queue.clone()).map_err(|e| bad(e.to_string()))?;
    let schedule = Schedule::new(queue_name, &id, spec).map_err(|e| bad(e.to_string()))?;
    Ok(StoredSchedule {
        schedule,
        created_at_ms: ms_from_db(row.try_get("created_at_ms")?),
        updated_at_ms: ms_from_db(row.try_get("updated_at_ms")?),
        updated_by: row.try_get("updated_by")?,
    })
}

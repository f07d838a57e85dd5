//! The audit log: who did what to which queue or job, when, and how it
//! ended. Append-only; read newest first in pages.

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, ms_from_db, ms_to_db};
use crate::error::Result;

/// Most records one [`Store::list_audit`] call returns.
pub const MAX_AUDIT_PAGE: u32 = 1_000;

/// An action to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// When it happened, in ms since the epoch.
    pub at_ms: u64,
    /// Who did it (`key:<name>`, `cli`, ...).
    pub actor: String,
    /// What was done (`queue.pause`, `job.retry`, ...).
    pub action: String,
    /// The queue acted on, if one.
    pub queue: Option<String>,
    /// The job or other thing acted on, if one.
    pub target: Option<String>,
    /// The action's parameters.
    pub params: Value,
    /// How it ended: `ok`, or an error code.
    pub outcome: String,
}

/// A recorded action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// Grows with every record; pass the last one of a page as `before_id`
    /// to get the next (older) page.
    pub id: i64,
    /// When it happened, in ms since the epoch.
    pub at_ms: u64,
    /// Who did it.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// The queue acted on, if one.
    pub queue: Option<String>,
    /// The job or other thing acted on, if one.
    pub target: Option<String>,
    /// The action's parameters.
    pub params: Value,
    /// How it ended.
    pub outcome: String,
}

impl Store {
    /// Appends `entry` to the log; answers its id.
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<i64> {
        let id = sqlx::query_scalar(
            "INSERT INTO audit_log (at_ms, actor, action, queue, target, params, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(ms_to_db(entry.at_ms))
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(entry.queue.as_deref())
        .bind(entry.target.as_deref())
        .bind(entry.params.to_string())
        .bind(&entry.outcome)
        .fetch_one(self.pool())
        .await?;
        Ok(id)
    }

    /// Up to `limit` records (clamped to 1..=1000), newest first; with
    /// `before_id`, only records older than that one.
    pub async fn list_audit(&self, limit: u32, before_id: Option<i64>) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT id, at_ms, actor, action, queue, target, params, outcome FROM audit_log \
             WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(i64::from(page_size(limit)))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(record_from_row).collect()
    }
}

fn page_size(limit: u32) -> u32 {
    limit.clamp(1, MAX_AUDIT_PAGE)
}

fn record_from_row(row: &AnyRow) -> Result<AuditRecord> {
    let params: String = row.try_get("params")?;
    Ok(AuditRecord {
        id: row.try_get("id")?,
        at_ms: ms_from_db(row.try_get("at_ms")?),
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        queue: row.try_get("queue")?,
        target: row.try_get("target")?,
        // Drover writes JSON here; text put there by other hands is shown
        // as it is rather than hiding the whole page.
        params: serde_json::from_str(&params).unwrap_or(Value::String(params)),
        outcome: row.try_get("outcome")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_clamped() {
        assert_eq!(page_size(0), 1);
        assert_eq!(page_size(1), 1);
        assert_eq!(page_size(250), 250);
        assert_eq!(page_size(1_000), 1_000);
        assert_eq!(page_size(1_001), 1_000);
        assert_eq!(page_size(u32::MAX), 1_000);
    }
}

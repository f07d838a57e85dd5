//! Reading a queue's events stream (`P:Q:events`) as it grows, for
//! Server-Sent Events and tailing tools.
//!
//! Each [`EventReader`] blocks on a connection of its own (`XREAD BLOCK`
//! on the shared connection would stall every other command behind it),
//! so callers bound how many readers they open.

use std::collections::BTreeMap;
use std::time::Duration;

use bullmq::redis_connection::AnyConnection;
use redis::Value;
use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use serde::Serialize;

use crate::connection::Connection;
use crate::error::{QueueError, Result};
use crate::keys;
use crate::names::QueueName;

/// Most events one read returns.
pub const MAX_EVENTS_PER_READ: usize = 1_000;

/// Where a reader starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventCursor {
    /// Only events written after the reader opened.
    Latest,
    /// Events after this stream id (an SSE `Last-Event-ID`); `0` for the
    /// whole retained stream.
    After(String),
}

/// One entry of the events stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueEvent {
    /// The stream id (`<ms>-<seq>`), usable as a resume cursor.
    pub id: String,
    /// BullMQ's event name (`added`, `completed`, `failed`, ...).
    pub event: String,
    /// The entry's other fields (`jobId`, `returnvalue`, ...).
    pub fields: BTreeMap<String, String>,
}

/// Follows one queue's events stream.
pub struct EventReader {
    redis: AnyConnection,
    key: String,
    last_id: String,
}

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader")
            .field("key", &self.key)
            .field("last_id", &self.last_id)
            .finish_non_exhaustive()
    }
}

/// Checks an SSE cursor: a Redis stream id `<ms>` or `<ms>-<seq>`.
pub fn parse_cursor(id: &str) -> Result<EventCursor> {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    let numeric = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if numeric(ms) && numeric(seq) {
        Ok(EventCursor::After(id.to_string()))
    } else {
        Err(QueueError::InvalidEventCursor(id.to_string()))
    }
}

impl EventReader {
    /// Opens a reader on `queue`'s stream starting at `from`.
    pub async fn open(conn: &Connection, queue: &QueueName, from: EventCursor) -> Result<Self> {
        let key = keys::queue(conn.prefix(), queue).events();
        let mut redis = conn.dedicated().await?;
        let last_id = match from {
            EventCursor::After(id) => id,
            // Resolve "latest" now, so events written between opening and
            // the first read are not missed.
            EventCursor::Latest => {
                let newest: Vec<StreamId> = redis::cmd("XREVRANGE")
                    .arg(&key)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async::<redis::streams::StreamRangeReply>(&mut redis)
                    .await?
                    .ids;
                newest
                    .first()
                    .map_or_else(|| "0".to_string(), |e| e.id.clone())
            }
        };
        Ok(Self {
            redis,
            key,
            last_id,
        })
    }

    /// The id of the last event returned (or the starting cursor).
    pub fn last_id(&self) -> &str {
        &self.last_id
    }

    /// The next events, waiting up to `block` for one to arrive; empty when
    /// none came in time.
    pub async fn next_batch(&mut self, block: Duration, count: usize) -> Result<Vec<QueueEvent>> {
        let block_ms = usize::try_from(block.as_millis())
            .unwrap_or(usize::MAX)
            .max(1);
        let opts = StreamReadOptions::default()
            .block(block_ms)
            .count(count.clamp(1, MAX_EVENTS_PER_READ));
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg(&opts)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(&self.last_id)
            .query_async(&mut self.redis)
            .await?;
        let entries = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(to_event)
            .collect::<Vec<_>>();
        if let Some(last) = entries.last() {
            self.last_id = last.id.clone();
        }
        Ok(entries)
    }
}

fn to_event(entry: StreamId) -> QueueEvent {
    let mut fields: BTreeMap<String, String> = entry
        .map
        .into_iter()
        .map(|(k, v)| (k, value_text(&v)))
        .collect();
    let event = fields.remove("event").unwrap_or_default();
    QueueEvent {
        id: entry.id,
        event,
        fields,
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors() {
        assert_eq!(
            parse_cursor("1700000000000-3").unwrap(),
            EventCursor::After("1700000000000-3".into())
        );
        assert!(parse_cursor("0").is_ok());
        for bad in ["", "abc", "1-", "-1", "1-2-3", "$", "+"] {
            assert!(parse_cursor(bad).is_err(), "{bad:?}");
        }
    }
}

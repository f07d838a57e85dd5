//! Idempotent adds: a client's idempotency key maps to the jobs its first
//! request created, for [`IDEMPOTENCY_TTL`].
//!
//! Two requests with the same key must never create two jobs, even when
//! they race or when the first one's process dies half-way. So the jobs of
//! an idempotent add get ids derived from the key (unless the client chose
//! ids): BullMQ's add scripts return the existing job for an id that exists,
//! which makes the add itself idempotent while the job exists. The record
//! (`drover:<prefix>:idempotency:<digest>`) then answers later retries
//! without touching the queue, for 24 hours, even after the job was removed.

use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::connection::Connection;
use crate::error::{QueueError, Result};
use crate::keys;
use crate::names::QueueName;
use crate::producer::{self, NewJob};

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3_600);
/// Longest idempotency key accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// Checks an `Idempotency-Key` as a client sent it: 1 to 255 visible
/// ASCII characters (spaces allowed).
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(QueueError::InvalidIdempotencyKey("must be 1 to 255 bytes"));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(QueueError::InvalidIdempotencyKey(
            "must be visible ASCII characters",
        ));
    }
    Ok(())
}

/// A checked idempotency key, scoped to the client that sent it so two
/// clients' keys never collide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    digest: String,
}

impl IdempotencyKey {
    /// Checks `key` (1 to 255 visible ASCII characters) sent by `owner` (an
    /// API key id, or any stable client identity) for `queue`.
    pub fn new(owner: &str, queue: &QueueName, key: &str) -> Result<Self> {
        validate_key(key)?;
        // Lengths prefix each part so ("a", "bc") and ("ab", "c") differ.
        let mut h = Sha256::new();
        for part in [owner, queue.as_str(), key] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        Ok(Self {
            digest: hex::encode(h.finalize()),
        })
    }

    /// The job id given to job `index` of an add that set none: derived
    /// from the key, so a retried add finds the job its first try made.
    fn job_id(&self, index: usize, bulk: bool) -> String {
        let stem = &self.digest[..32];
        if bulk {
            format!("idem-{stem}-{index}")
        } else {
            format!("idem-{stem}")
        }
    }
}

/// What an idempotent add did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentAdd {
    /// The job ids, in request order.
    pub ids: Vec<String>,
    /// `true` when the key was seen before and nothing was created now.
    pub replayed: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// Hash of the request, so a key reused for a different request is
    /// refused instead of silently answered with another request's jobs.
    fingerprint: String,
    ids: Vec<String>,
}

/// Adds `jobs` (one job, or an all-or-nothing bulk when `bulk`) unless
/// `key` was used before; then returns the first request's ids and creates
/// nothing. `fingerprint` identifies the request body; the same key with a
/// different fingerprint is an error.
pub async fn enqueue_idempotent(
    conn: &Connection,
    queue: &QueueName,
    jobs: &[NewJob],
    bulk: bool,
    key: &IdempotencyKey,
    fingerprint: &str,
) -> Result<IdempotentAdd> {
    let record_key = keys::idempotency_record(conn.prefix(), &key.digest);
    let mut redis = conn.redis();
    if let Some(ids) = replay(&mut redis, &record_key, fingerprint).await? {
        return Ok(IdempotentAdd {
            ids,
            replayed: true,
        });
    }
    let jobs: Vec<NewJob> = jobs
        .iter()
        .enumerate()
        .map(|(i, job)| {
            let mut job = job.clone();
            if job.opts.job_id.is_none() {
                job.opts.job_id = Some(key.job_id(i, bulk));
            }
            job
        })
        .collect();
    let ids = match (bulk, jobs.as_slice()) {
        (false, [job]) => vec![producer::enqueue(conn, queue, job).await?],
        (false, _) => {
            return Err(QueueError::InvalidOptions(
                "a single add takes exactly one job".into(),
            ));
        }
        (true, _) => producer::enqueue_bulk(conn, queue, &jobs).await?,
    };
    let record = serde_json::to_string(&Record {
        fingerprint: fingerprint.to_string(),
        ids: ids.clone(),
    })
    .map_err(|e| QueueError::Protocol(format!("cannot encode an idempotency record: {e}")))?;
    let ttl_ms = u64::try_from(IDEMPOTENCY_TTL.as_millis()).unwrap_or(u64::MAX);
    let stored: Option<String> = redis::cmd("SET")
        .arg(&record_key)
        .arg(&record)
        .arg("NX")
        .arg("PX")
        .arg(ttl_ms)
        .query_async(&mut redis)
        .await?;
    if stored.is_none() {
        // A concurrent request with the same key recorded first; its jobs
        // carry the same derived ids, so nothing was created twice.
        if let Some(ids) = replay(&mut redis, &record_key, fingerprint).await? {
            return Ok(IdempotentAdd {
                ids,
                replayed: true,
            });
        }
    }
    Ok(IdempotentAdd {
        ids,
        replayed: false,
    })
}

async fn replay(
    redis: &mut bullmq::redis_connection::AnyConnection,
    record_key: &str,
    fingerprint: &str,
) -> Result<Option<Vec<String>>> {
    let existing: Option<String> = redis.get(record_key).await?;
    let Some(existing) = existing else {
        return Ok(None);
    };
    let record: Record = serde_json::from_str(&existing)
        .map_err(|e| QueueError::Protocol(format!("unreadable idempotency record: {e}")))?;
    if record.fingerprint != fingerprint {
        return Err(QueueError::IdempotencyKeyReused);
    }
    Ok(Some(record.ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(name: &str) -> QueueName {
        QueueName::new(name).unwrap()
    }

    #[test]
    fn keys_are_scoped_to_owner_and_queue() {
        let a = IdempotencyKey::new("key-1", &q("emails"), "order-7").unwrap();
        assert_eq!(
            a,
            IdempotencyKey::new("key-1", &q("emails"), "order-7").unwrap()
        );
        assert_ne!(
            a,
            IdempotencyKey::new("key-2", &q("emails"), "order-7").unwrap()
        );
        assert_ne!(
            a,
            IdempotencyKey::new("key-1", &q("sms"), "order-7").unwrap()
        );
        assert_ne!(
            IdempotencyKey::new("ab", &q("c"), "x").unwrap(),
            IdempotencyKey::new("a", &q("bc"), "x").unwrap()
        );
    }

    #[test]
    fn derived_job_ids_are_valid_custom_ids() {
        let k = IdempotencyKey::new("o", &q("q"), "k").unwrap();
        for id in [k.job_id(0, false), k.job_id(3, true)] {
            assert!(crate::names::validate_custom_job_id(&id).is_ok(), "{id}");
        }
        assert_ne!(k.job_id(0, true), k.job_id(1, true));
    }

    #[test]
    fn bad_keys_are_rejected() {
        for bad in [
            String::new(),
            "x".repeat(256),
            "tab\there".into(),
            "é".into(),
        ] {
            assert!(IdempotencyKey::new("o", &q("q"), &bad).is_err(), "{bad:?}");
        }
    }
}

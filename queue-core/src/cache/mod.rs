//! Warmed cache entries: written as one atomic swap, read back for people.
//!
//! A warm run of a target replaces all of the target's keys at once: one
//! `MULTI`/`EXEC` sets every new key with its TTL, deletes the keys the
//! previous run wrote that this one did not, and updates the target's
//! manifest (the set of its keys, `drover:<prefix>:cache:<target>:keys`).
//! A reader sees the old set or the new one, never a mix.
//!
//! The manifest is read before the transaction, so two runs of one target
//! at the same moment may each miss the other's keys. That is why a run
//! removes from the manifest only the keys it deleted and adds its own,
//! rather than replacing the set: every key a run leaves behind stays
//! listed, and the next run deletes it.
//!
//! Redis Cluster: one transaction must stay in one hash slot, and the
//! manifest sits under Drover's namespace, so a swap is refused on a
//! cluster (unless every key and the manifest happen to share a slot) with
//! a clear error rather than Redis's `CROSSSLOT`: cache warming needs a
//! single Redis server.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::connection::Connection;
use crate::error::{QueueError, Result};
use crate::keys;

/// Prefixes no cache key may have: BullMQ's default prefix and Drover's
/// own namespace.
pub const RESERVED_PREFIXES: [&str; 2] = ["bull:", "drover:"];

/// What one swap wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapReport {
    /// Keys set.
    pub keys_written: u64,
    /// Bytes of values set.
    pub bytes: u64,
    /// Keys of the previous run removed because this run did not write them.
    pub stale_removed: u64,
}

/// Checks a cache key: not empty, not under a reserved prefix (or this
/// connection's BullMQ prefix).
pub fn check_key(conn: &Connection, key: &str) -> Result<()> {
    let bull = format!("{}:", conn.prefix());
    if key.is_empty() {
        return Err(QueueError::InvalidOptions(
            "a cache key must not be empty".into(),
        ));
    }
    if RESERVED_PREFIXES.iter().any(|p| key.starts_with(p)) || key.starts_with(&bull) {
        return Err(QueueError::InvalidOptions(format!(
            "cache key {key:?} is under a prefix reserved for queues and Drover"
        )));
    }
    Ok(())
}

/// Replaces the keys of `target` with `entries` (key, value), each with
/// `ttl`, atomically.
pub async fn swap(
    conn: &Connection,
    target: &str,
    entries: &[(String, String)],
    ttl: Duration,
) -> Result<SwapReport> {
    for (key, _) in entries {
        check_key(conn, key)?;
    }
    let manifest = keys::cache_manifest(conn.prefix(), target);
    if conn.is_cluster() {
        check_one_slot(&manifest, entries)?;
    }
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    let mut redis = conn.redis();
    let previous: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&manifest)
        .query_async(&mut redis)
        .await?;
    let new: BTreeSet<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    let stale: Vec<&String> = previous
        .iter()
        .filter(|k| !new.contains(k.as_str()))
        .collect();
    let mut pipe = redis::pipe();
    pipe.atomic();
    let mut bytes = 0u64;
    for (key, value) in entries {
        bytes += value.len() as u64;
        pipe.cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(ttl_ms)
            .ignore();
    }
    // Only the DELs answer: how many stale keys still existed.
    for chunk in stale.chunks(1_000) {
        pipe.cmd("DEL").arg(chunk);
        pipe.cmd("SREM").arg(&manifest).arg(chunk).ignore();
    }
    let listed: Vec<&str> = new.into_iter().collect();
    for chunk in listed.chunks(1_000) {
        pipe.cmd("SADD").arg(&manifest).arg(chunk).ignore();
    }
    // The manifest outlives its keys a little, so the next run finds them.
    pipe.cmd("PEXPIRE")
        .arg(&manifest)
        .arg(ttl_ms.saturating_mul(2))
        .ignore();
    let deleted: Vec<u64> = pipe.query_async(&mut redis).await?;
    Ok(SwapReport {
        keys_written: entries.len() as u64,
        bytes,
        stale_removed: deleted.iter().sum(),
    })
}

/// On a cluster, a transaction must stay in one slot: refuse a swap that
/// would not, before anything is written.
fn check_one_slot(manifest: &str, entries: &[(String, String)]) -> Result<()> {
    let slot = keys::cluster_slot(manifest);
    if entries
        .iter()
        .any(|(key, _)| keys::cluster_slot(key) != slot)
    {
        return Err(QueueError::InvalidOptions(
            "cache warming needs a single Redis server: under Redis Cluster a target's keys \
             and its manifest would span hash slots, which one transaction cannot"
                .into(),
        ));
    }
    Ok(())
}

/// A cached value and its remaining TTL (ms; `None` without expiry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    /// The value as stored.
    pub value: String,
    /// Time left before it expires.
    pub ttl_ms: Option<u64>,
}

/// Reads one cache key (value and TTL together).
pub async fn get(conn: &Connection, key: &str) -> Result<Option<Cached>> {
    let mut redis = conn.redis();
    let (value, ttl): (Option<String>, i64) = redis::pipe()
        .atomic()
        .get(key)
        .pttl(key)
        .query_async(&mut redis)
        .await?;
    Ok(value.map(|value| Cached {
        value,
        ttl_ms: u64::try_from(ttl).ok(),
    }))
}

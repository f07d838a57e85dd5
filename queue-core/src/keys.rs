//! Every Redis key Drover touches is built here.
//!
//! BullMQ's keys (`P:Q:wait`, `P:Q:<jobId>`, ...) come from
//! `bullmq::QueueKeys`; Drover's own keys live under the `drover:` namespace,
//! which is reserved as a BullMQ prefix (see `config.rs`), so the two can
//! never collide.

use bullmq::QueueKeys;

use crate::names::QueueName;

/// Root of every key Drover adds to Redis.
pub(crate) const DROVER_NAMESPACE: &str = "drover";

/// BullMQ's keys for one queue.
pub(crate) fn queue(prefix: &str, queue: &QueueName) -> QueueKeys {
    QueueKeys::new(queue.as_str(), Some(prefix))
}

/// A job's log list (`P:Q:<id>:logs`).
pub(crate) fn job_logs(keys: &QueueKeys, id: &str) -> String {
    format!("{}:logs", keys.job_key(id))
}

/// Set of the queues Drover processes have written to or consumed under a
/// prefix, so a listing shows them at once; discovery's scans add the
/// queues other clients made, and drop members that no longer exist.
pub(crate) fn queue_registry(prefix: &str) -> String {
    format!("{DROVER_NAMESPACE}:{prefix}:queues")
}

/// Hash of live Drover worker processes under a prefix: field = worker id,
/// value = the worker's heartbeat record (JSON).
pub(crate) fn worker_registry(prefix: &str) -> String {
    format!("{DROVER_NAMESPACE}:{prefix}:workers")
}

/// The record of one `Idempotency-Key` (a string, JSON: fingerprint and job
/// ids). `digest` is a hex SHA-256 of the key's owner, queue and key, so
/// the client's text never becomes part of a key name.
pub(crate) fn idempotency_record(prefix: &str, digest: &str) -> String {
    format!("{DROVER_NAMESPACE}:{prefix}:idempotency:{digest}")
}

/// The request counter of one rate-limit subject (an API key id) for one
/// window, numbered by its start in seconds since the epoch.
pub(crate) fn rate_limit_window(prefix: &str, subject: &str, window: u64) -> String {
    format!("{DROVER_NAMESPACE}:{prefix}:ratelimit:{subject}:{window}")
}

/// Hash of the job schedulers Drover owns under a prefix: field = JSON
/// `["<queue>","<schedule id>"]`, value = the owner record (JSON). Schedulers
/// not listed here belong to someone else and are never touched by the
/// reconciler.
pub(crate) fn schedule_owners(prefix: &str) -> String {
    format!("{DROVER_NAMESPACE}:{prefix}:schedules")
}

/// The lease the schedule reconciler (and every schedule write) holds, so
/// concurrent writers take turns.
pub(crate) fn schedule_lock(prefix: &str) -> String {
    format!("{DROVER_NAMESPACE}:{prefix}:schedules:lock")
}

/// The last checkpoint a workflow step's handler saved (JSON), keyed by
/// run, step and fan-out item (`x` for none), so every try and re-dispatch
/// of the step finds it.
pub(crate) fn workflow_checkpoint(
    prefix: &str,
    run: &str,
    step: &str,
    item: Option<u64>,
) -> String {
    let item = item.map_or_else(|| "x".to_string(), |i| i.to_string());
    format!("{DROVER_NAMESPACE}:{prefix}:workflow:{run}:{step}:{item}:checkpoint")
}

/// The set of keys the last warm run of a cache target wrote.
pub(crate) fn cache_manifest(prefix: &str, target: &str) -> String {
    format!("{DROVER_NAMESPACE}:{prefix}:cache:{target}:keys")
}

/// One of the autoscaler's keys. They all share the `{autoscale}` hash tag
/// (the first `{...}` of every one of them lies in the shared
/// `drover:<prefix>:{autoscale}:` part), so the lease scripts that touch
/// several of them work on Redis Cluster too. `part` is one of `leader`,
/// `fence`, `policies`, `desired`, `status`, `decisions`, `supervisors`.
pub(crate) fn autoscale(prefix: &str, part: &str) -> String {
    format!("{DROVER_NAMESPACE}:{prefix}:{{autoscale}}:{part}")
}

/// The autoscaler's history of one queue: a list of samples (desired,
/// actual, recommended), newest first.
pub(crate) fn autoscale_history(prefix: &str, queue: &QueueName) -> String {
    format!(
        "{DROVER_NAMESPACE}:{prefix}:{{autoscale}}:history:{}",
        queue.as_str()
    )
}

/// The SCAN pattern whose matches include every queue under `prefix`:
/// every queue has a `meta` hash (written by any Queue or script) or an
/// `id` counter (written by every add). One glob covers both suffixes
/// (`:[mi][ed]*`), so one walk of the keyspace finds them; the few other
/// keys it lets through are dropped by [`queue_from_discovered_key`].
pub(crate) fn discovery_pattern(prefix: &str) -> String {
    format!("{}:*:[mi][ed]*", escape_glob(prefix))
}

/// The queue name inside a key matched by [`discovery_pattern`], or `None`
/// when the key is something else (a job id of `meta`, a dedup key, ...).
pub(crate) fn queue_from_discovered_key(prefix: &str, key: &str) -> Option<QueueName> {
    let rest = key.strip_prefix(prefix)?.strip_prefix(':')?;
    let name = rest
        .strip_suffix(":meta")
        .or_else(|| rest.strip_suffix(":id"))?;
    QueueName::new(name).ok()
}

/// The Redis Cluster hash slot of `key` (CRC16/XMODEM of the key, or of
/// its first non-empty `{...}` tag, modulo 16384), so reads can be batched
/// per slot instead of failing with CROSSSLOT.
pub(crate) fn cluster_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &bytes[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .filter(|&close| close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(bytes);
    crc16_xmodem(tagged) % 16_384
}

/// Whether every key of `queue` under `prefix` hashes to one Redis
/// Cluster slot, as BullMQ's scripts need (they touch several keys of a
/// queue at once). That holds when the part all of them share,
/// `<prefix>:<queue>:`, holds the whole of their hash tag: the first `{`
/// and the first `}` after it, with something between. `{emails}` as the
/// queue name (one slot per queue, queues spread over the masters) or
/// `{bull}` as the prefix (every queue in one slot) both qualify.
pub(crate) fn queue_shares_slot(prefix: &str, queue: &QueueName) -> bool {
    let shared = format!("{prefix}:{}:", queue.as_str());
    let Some(open) = shared.find('{') else {
        return false;
    };
    shared[open + 1..].find('}').is_some_and(|close| close > 0)
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Escapes Redis glob metacharacters so a prefix like `{bull}` or `a*b`
/// matches only itself.
fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_parses_queue_names_only() {
        let q = |k| queue_from_discovered_key("bull", k).map(|q| q.to_string());
        assert_eq!(q("bull:emails:meta").as_deref(), Some("emails"));
        assert_eq!(q("bull:emails:id").as_deref(), Some("emails"));
        assert_eq!(q("bull:{t1}:meta").as_deref(), Some("{t1}"));
        // A dedup key `bull:q:de:meta` is not a queue called `q:de`.
        assert_eq!(q("bull:q:de:meta"), None);
        assert_eq!(q("other:q:meta"), None);
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(discovery_pattern("a*b"), r"a\*b:*:[mi][ed]*");
        assert_eq!(discovery_pattern("{bull}"), "{bull}:*:[mi][ed]*");
    }

    #[test]
    fn cluster_slots_match_redis() {
        // Values from `redis-cli CLUSTER KEYSLOT`.
        assert_eq!(cluster_slot("foo"), 12182);
        assert_eq!(
            cluster_slot("bull:emails:wait"),
            cluster_slot("bull:emails:wait")
        );
        assert_eq!(
            cluster_slot("{user1000}.following"),
            cluster_slot("user1000")
        );
        assert_eq!(cluster_slot("foo{}{bar}"), cluster_slot("foo{}{bar}"));
        assert_eq!(cluster_slot("{bull}:a:wait"), cluster_slot("{bull}:b:meta"));
    }

    #[test]
    fn drover_keys_cannot_be_bullmq_keys_of_an_allowed_prefix() {
        // `drover` is refused as a BullMQ prefix, so this key is ours alone.
        assert!(worker_registry("bull").starts_with("drover:"));
    }

    #[test]
    fn queues_share_a_slot_only_with_a_whole_tag_in_the_shared_part() {
        let q = |name: &str| QueueName::new(name).unwrap();
        assert!(queue_shares_slot("bull", &q("{emails}")));
        assert!(queue_shares_slot("bull", &q("tenant-{7}-emails")));
        assert!(queue_shares_slot("{bull}", &q("emails")));
        assert!(queue_shares_slot("a{b", &q("c}d")));
        assert!(!queue_shares_slot("bull", &q("emails")));
        // An empty tag hashes the whole key, which differs per key.
        assert!(!queue_shares_slot("bull", &q("{}emails")));
        // A `{` whose `}` would come from the key's suffix (a job id).
        assert!(!queue_shares_slot("bull", &q("{emails")));
        // Whatever the check says is what Redis does with the keys.
        for (prefix, name) in [("bull", "{emails}"), ("{bull}", "x"), ("bull", "a{b}c")] {
            let k = queue(prefix, &q(name));
            assert_eq!(cluster_slot(&k.wait()), cluster_slot(&k.meta()));
            assert_eq!(cluster_slot(&k.wait()), cluster_slot(&k.job_key("42")));
        }
        let k = queue("bull", &q("emails"));
        assert_ne!(cluster_slot(&k.wait()), cluster_slot(&k.meta()));
    }

    #[test]
    fn autoscaler_keys_share_one_slot() {
        let q = QueueName::new("{t1}").unwrap();
        for prefix in ["bull", "{bull}", "a{b"] {
            let leader = cluster_slot(&autoscale(prefix, "leader"));
            assert_eq!(leader, cluster_slot(&autoscale(prefix, "decisions")));
            assert_eq!(leader, cluster_slot(&autoscale_history(prefix, &q)));
        }
    }
}

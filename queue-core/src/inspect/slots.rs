//! The same reads for many queues in one round trip: one pipeline per
//! group of queues whose keys share a cluster slot (a single group on one
//! server), the groups sent concurrently.

use std::collections::BTreeMap;

use bullmq::QueueKeys;
use redis::{Cmd, Pipeline, Value};

use crate::connection::Connection;
use crate::error::{QueueError, Result};
use crate::keys;
use crate::names::QueueName;

/// Runs `build` for every queue (it must add exactly `per_queue` commands)
/// and returns each queue's replies, in the order of `queues`.
pub(crate) async fn per_queue<F>(
    conn: &Connection,
    queues: &[QueueName],
    per_queue: usize,
    build: F,
) -> Result<Vec<Vec<Value>>>
where
    F: Fn(&mut Pipeline, &QueueKeys),
{
    per_queue_varying(conn, queues, |pipe, _, k| {
        build(pipe, k);
        per_queue
    })
    .await
}

/// Like [`per_queue`], but `build` is told the queue's index in `queues`
/// and returns how many commands it added, which may differ by queue.
pub(crate) async fn per_queue_varying<F>(
    conn: &Connection,
    queues: &[QueueName],
    build: F,
) -> Result<Vec<Vec<Value>>>
where
    F: Fn(&mut Pipeline, usize, &QueueKeys) -> usize,
{
    let prefix = conn.prefix();
    let mut groups: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (i, queue) in queues.iter().enumerate() {
        let slot = if conn.is_cluster() {
            keys::cluster_slot(&keys::queue(prefix, queue).meta())
        } else {
            0
        };
        groups.entry(slot).or_default().push(i);
    }
    let requests = groups.into_values().map(|members| {
        let mut pipe = redis::pipe();
        let counts: Vec<usize> = members
            .iter()
            .map(|&i| build(&mut pipe, i, &keys::queue(prefix, &queues[i])))
            .collect();
        let expected: usize = counts.iter().sum();
        let mut redis = conn.redis();
        async move {
            let values: Vec<Value> = if expected == 0 {
                Vec::new()
            } else {
                pipe.query_async(&mut redis).await?
            };
            if values.len() != expected {
                return Err(QueueError::Protocol(format!(
                    "expected {expected} replies from a read pipeline, got {}",
                    values.len()
                )));
            }
            Ok::<_, QueueError>((members, counts, values))
        }
    });
    let mut out = vec![Vec::new(); queues.len()];
    for result in futures::future::join_all(requests).await {
        let (members, counts, values) = result?;
        let mut rest = values.into_iter();
        for (i, n) in members.into_iter().zip(counts) {
            out[i] = rest.by_ref().take(n).collect();
        }
    }
    Ok(out)
}

/// Runs single-key commands, each given with its key, in one round trip:
/// on a cluster one pipeline per slot (concurrently), so commands on keys
/// of different queues or of Drover's own namespace may be mixed. Returns
/// the replies in the order of `commands`.
pub(crate) async fn per_key(conn: &Connection, commands: Vec<(String, Cmd)>) -> Result<Vec<Value>> {
    let mut groups: BTreeMap<u16, Vec<(usize, Cmd)>> = BTreeMap::new();
    for (i, (key, cmd)) in commands.into_iter().enumerate() {
        let slot = if conn.is_cluster() {
            keys::cluster_slot(&key)
        } else {
            0
        };
        groups.entry(slot).or_default().push((i, cmd));
    }
    let total = groups.values().map(Vec::len).sum();
    let requests = groups.into_values().map(|members| {
        let mut pipe = redis::pipe();
        let order: Vec<usize> = members
            .into_iter()
            .map(|(i, cmd)| {
                pipe.add_command(cmd);
                i
            })
            .collect();
        let mut redis = conn.redis();
        async move {
            let values: Vec<Value> = pipe.query_async(&mut redis).await?;
            if values.len() != order.len() {
                return Err(QueueError::Protocol(format!(
                    "expected {} replies from a pipeline, got {}",
                    order.len(),
                    values.len()
                )));
            }
            Ok::<_, QueueError>(order.into_iter().zip(values))
        }
    });
    let mut out = vec![Value::Nil; total];
    for group in futures::future::join_all(requests).await {
        for (i, value) in group? {
            out[i] = value;
        }
    }
    Ok(out)
}

/// A reply read as `T`, or the protocol error naming what was expected.
pub(crate) fn decode<T: redis::FromRedisValue>(value: &Value) -> Result<T> {
    Ok(redis::from_redis_value(value.clone())?)
}

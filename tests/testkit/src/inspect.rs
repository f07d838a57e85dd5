//! Reading BullMQ's structures straight from Redis, for assertions that do
//! not trust the code under test.

use std::collections::HashMap;
use std::time::Duration;

use crate::redis_server::RedisServer;
use crate::wait::{Check, wait_until};

impl RedisServer {
    /// The job hash `bull:<queue>:<id>`.
    pub async fn job_hash(&self, queue: &str, id: &str) -> HashMap<String, String> {
        redis::cmd("HGETALL")
            .arg(format!("bull:{queue}:{id}"))
            .query_async(&mut self.conn().await)
            .await
            .unwrap()
    }

    /// How many keys the server holds (to show a rejected request wrote
    /// nothing).
    pub async fn dbsize(&self) -> u64 {
        redis::cmd("DBSIZE")
            .query_async(&mut self.conn().await)
            .await
            .unwrap()
    }

    /// Every key matching `pattern`, by SCAN (small test databases only).
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut conn = self.conn().await;
        let mut cursor = 0u64;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .unwrap();
            keys.extend(batch);
            if next == 0 {
                keys.sort();
                return keys;
            }
            cursor = next;
        }
    }

    /// Members of the sorted set `bull:<queue>:<name>`, lowest score first.
    pub async fn zset(&self, queue: &str, name: &str) -> Vec<String> {
        redis::cmd("ZRANGE")
            .arg(format!("bull:{queue}:{name}"))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn().await)
            .await
            .unwrap()
    }

    /// Items of the list `bull:<queue>:<name>`, head first.
    pub async fn list(&self, queue: &str, name: &str) -> Vec<String> {
        redis::cmd("LRANGE")
            .arg(format!("bull:{queue}:{name}"))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn().await)
            .await
            .unwrap()
    }

    /// Waits until `id` is in the sorted set `bull:<queue>:<name>`
    /// (`completed`, `failed`, `delayed`...).
    pub async fn wait_in(&self, queue: &str, name: &str, id: &str) {
        self.wait_in_for(queue, name, id, Duration::from_secs(20))
            .await;
    }

    /// [`wait_in`](Self::wait_in) with a deadline.
    pub async fn wait_in_for(&self, queue: &str, name: &str, id: &str, deadline: Duration) {
        let key = format!("bull:{queue}:{name}");
        wait_until(&format!("job {id} in {key}"), deadline, || {
            let key = key.clone();
            async move {
                let score: Option<f64> = redis::cmd("ZSCORE")
                    .arg(&key)
                    .arg(id)
                    .query_async(&mut self.conn().await)
                    .await
                    .unwrap();
                match score {
                    Some(_) => Check::Done(()),
                    None => Check::NotYet(format!("{id} not yet in {key}")),
                }
            }
        })
        .await;
    }

    /// Waits until the sorted set `bull:<queue>:<name>` holds `n` members.
    pub async fn wait_count(&self, queue: &str, name: &str, n: usize, deadline: Duration) {
        let key = format!("bull:{queue}:{name}");
        wait_until(&format!("{n} in {key}"), deadline, || {
            let key = key.clone();
            async move {
                let have: usize = redis::cmd("ZCARD")
                    .arg(&key)
                    .query_async(&mut self.conn().await)
                    .await
                    .unwrap();
                if have == n {
                    Check::Done(())
                } else {
                    Check::NotYet(format!("{have} in {key}"))
                }
            }
        })
        .await;
    }

    /// Waits until some client is blocked in `command` (e.g. `bzpopmin`: a
    /// worker found nothing to do and waits on a queue's marker; `xread`: a
    /// `QueueEvents` listens).
    pub async fn wait_blocked_in(&self, command: &str) {
        let needle = format!("cmd={}", command.to_ascii_lowercase());
        wait_until(
            &format!("a client blocked in {command}"),
            Duration::from_secs(30),
            || {
                let needle = needle.clone();
                async move {
                    let clients: String = redis::cmd("CLIENT")
                        .arg("LIST")
                        .query_async(&mut self.conn().await)
                        .await
                        .unwrap();
                    if clients.contains(&needle) {
                        Check::Done(())
                    } else {
                        Check::NotYet(format!("no client in {command}"))
                    }
                }
            },
        )
        .await;
    }

    /// The queue's event stream as (ms the entry was written, fields).
    pub async fn events(&self, queue: &str) -> Vec<(u64, HashMap<String, String>)> {
        let key = format!("bull:{queue}:events");
        let mut conn = self.conn().await;
        let mut all = Vec::new();
        let mut start = "-".to_string();
        loop {
            let page: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
                .arg(&key)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(5000)
                .query_async(&mut conn)
                .await
                .unwrap();
            let Some((last, _)) = page.last() else {
                return all;
            };
            // Continue after the last id (exclusive range).
            start = format!("({last}");
            for (id, fields) in page {
                let at = id.split('-').next().unwrap().parse().unwrap();
                all.push((at, fields));
            }
        }
    }

    /// The `delayed` events as (ms written, absolute due time announced).
    pub async fn delayed_events(&self, queue: &str) -> Vec<(u64, u64)> {
        self.events(queue)
            .await
            .into_iter()
            .filter(|(_, f)| f.get("event").map(String::as_str) == Some("delayed"))
            .map(|(at, f)| (at, f["delay"].parse().unwrap()))
            .collect()
    }
}

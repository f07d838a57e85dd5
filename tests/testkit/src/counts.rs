//! Sizes of BullMQ's sets and lists, and commands per job pipelined, for
//! tests that check thousands of jobs at once.

use crate::redis_server::RedisServer;

impl RedisServer {
    /// Members of the sorted set `bull:<queue>:<set>`.
    pub async fn zcard(&self, queue: &str, set: &str) -> usize {
        redis::cmd("ZCARD")
            .arg(format!("bull:{queue}:{set}"))
            .query_async(&mut self.conn().await)
            .await
            .unwrap()
    }

    /// Items of the list `bull:<queue>:<list>`.
    pub async fn llen(&self, queue: &str, list: &str) -> usize {
        redis::cmd("LLEN")
            .arg(format!("bull:{queue}:{list}"))
            .query_async(&mut self.conn().await)
            .await
            .unwrap()
    }

    /// The answers of `command(id)` for each id, pipelined a thousand at a
    /// time.
    pub async fn per_id<T: redis::FromRedisValue>(
        &self,
        ids: &[String],
        command: impl Fn(&str) -> redis::Cmd,
    ) -> Vec<T> {
        let mut conn = self.conn().await;
        let mut all = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(1_000) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.add_command(command(id));
            }
            let answers: Vec<T> = pipe.query_async(&mut conn).await.unwrap();
            all.extend(answers);
        }
        all
    }
}

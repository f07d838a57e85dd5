//! Faults a test injects into its own Redis.

use std::time::Duration;

use crate::redis_server::RedisServer;

impl RedisServer {
    /// Holds every client's commands for `how_long` (`CLIENT PAUSE ... ALL`):
    /// Redis looks hung, then answers them all.
    pub async fn pause_clients(&self, how_long: Duration) {
        redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(u64::try_from(how_long.as_millis()).unwrap())
            .arg("ALL")
            .query_async::<()>(&mut self.conn().await)
            .await
            .unwrap();
    }
}

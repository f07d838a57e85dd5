//! The orchestrator's own view of Redis: plain commands on BullMQ's keys
//! (read-only, apart from `FLUSHALL` between cases).

use anyhow::{Context, Result};
use redis::aio::MultiplexedConnection;

use crate::{PREFIX, QUEUE};

/// A connection for probing, separate from every client under test.
#[derive(Clone)]
pub struct Probe {
    conn: MultiplexedConnection,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe").finish_non_exhaustive()
    }
}

fn key(suffix: &str) -> String {
    format!("{PREFIX}:{QUEUE}:{suffix}")
}

impl Probe {
    /// Connects to `url`.
    pub async fn connect(url: &str) -> Result<Self> {
        let client = redis::Client::open(url)?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("connecting to {url}"))?;
        Ok(Self { conn })
    }

    /// Empties the whole (private) server.
    pub async fn flush_all(&self) -> Result<()> {
        redis::cmd("FLUSHALL")
            .query_async::<()>(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// The server's `redis_version`.
    pub async fn server_version(&self) -> Result<String> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_string())
    }

    async fn client_list(&self) -> Result<Vec<ClientInfo>> {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(list.lines().filter_map(ClientInfo::parse).collect())
    }

    /// The highest client id connected now; clients that connect later get
    /// higher ids.
    pub async fn max_client_id(&self) -> Result<u64> {
        Ok(self
            .client_list()
            .await?
            .iter()
            .map(|c| c.id)
            .max()
            .unwrap_or(0))
    }

    /// Whether a client newer than `after_id` has issued `BZPOPMIN` (a
    /// BullMQ worker waiting for the queue's marker: connected and idle).
    pub async fn worker_waiting(&self, after_id: u64) -> Result<bool> {
        Ok(self
            .client_list()
            .await?
            .iter()
            .any(|c| c.id > after_id && c.cmd.eq_ignore_ascii_case("bzpopmin")))
    }

    /// Jobs not finished yet: `wait` + `active` + `prioritized` (+ the
    /// legacy `paused` list, which current scripts leave empty).
    pub async fn pending(&self) -> Result<u64> {
        let (wait, active, prioritized, paused): (u64, u64, u64, u64) = redis::pipe()
            .cmd("LLEN")
            .arg(key("wait"))
            .cmd("LLEN")
            .arg(key("active"))
            .cmd("ZCARD")
            .arg(key("prioritized"))
            .cmd("LLEN")
            .arg(key("paused"))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(wait + active + prioritized + paused)
    }

    /// Jobs in `wait`.
    pub async fn waiting(&self) -> Result<u64> {
        Ok(redis::cmd("LLEN")
            .arg(key("wait"))
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// Sizes of the `completed` and `failed` sets.
    pub async fn finished(&self) -> Result<(u64, u64)> {
        Ok(redis::pipe()
            .cmd("ZCARD")
            .arg(key("completed"))
            .cmd("ZCARD")
            .arg(key("failed"))
            .query_async(&mut self.conn.clone())
            .await?)
    }
}

/// Reads on any queue, for benchmarks that use more than [`QUEUE`].
impl Probe {
    /// Jobs of `queue` that are not finished: `wait` + `paused` + `delayed` +
    /// `prioritized` (+ `active`). With no worker running, every job a
    /// producer added is in one of them.
    pub async fn queue_jobs(&self, queue: &str) -> Result<u64> {
        let key = |suffix: &str| format!("{PREFIX}:{queue}:{suffix}");
        let (wait, paused, active, delayed, prioritized): (u64, u64, u64, u64, u64) = redis::pipe()
            .cmd("LLEN")
            .arg(key("wait"))
            .cmd("LLEN")
            .arg(key("paused"))
            .cmd("LLEN")
            .arg(key("active"))
            .cmd("ZCARD")
            .arg(key("delayed"))
            .cmd("ZCARD")
            .arg(key("prioritized"))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(wait + paused + active + delayed + prioritized)
    }

    /// The oldest waiting job of `queue`: its id and its hash's `name` and
    /// `data` fields, as stored.
    pub async fn oldest_waiting_job(
        &self,
        queue: &str,
    ) -> Result<Option<(String, Option<String>, Option<String>)>> {
        let mut conn = self.conn.clone();
        // BullMQ pushes new jobs on the left, so the oldest is on the right.
        let id: Option<String> = redis::cmd("LINDEX")
            .arg(format!("{PREFIX}:{queue}:wait"))
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        let Some(id) = id else {
            return Ok(None);
        };
        let (name, data): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(format!("{PREFIX}:{queue}:{id}"))
            .arg("name")
            .arg("data")
            .query_async(&mut conn)
            .await?;
        Ok(Some((id, name, data)))
    }
}

/// The fields of one `CLIENT LIST` line the benchmark needs.
struct ClientInfo {
    id: u64,
    cmd: String,
}

impl ClientInfo {
    fn parse(line: &str) -> Option<Self> {
        let mut id = None;
        let mut cmd = None;
        for field in line.split_whitespace() {
            if let Some(v) = field.strip_prefix("id=") {
                id = v.parse().ok();
            } else if let Some(v) = field.strip_prefix("cmd=") {
                cmd = Some(v.to_string());
            }
        }
        Some(Self {
            id: id?,
            cmd: cmd.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ClientInfo;

    #[test]
    fn parses_client_list_lines() {
        let line = "id=7 addr=127.0.0.1:5 laddr=127.0.0.1:6 fd=9 name=bull:YmVuY2g= age=1 \
                    idle=0 flags=b db=0 cmd=bzpopmin user=default";
        let c = ClientInfo::parse(line).unwrap_or_else(|| panic!("unparsed"));
        assert_eq!(c.id, 7);
        assert_eq!(c.cmd, "bzpopmin");
        assert!(ClientInfo::parse("garbage").is_none());
    }
}

//! Redis Sentinel: find the master of a monitored group, and follow it
//! through failovers without the rest of Drover knowing.
//!
//! bullmq-official connects to one address and its connections reconnect
//! to that same address, which after a failover is a dead server or a
//! read-only replica. So a Sentinel connection goes through a relay in the
//! process: a Unix socket in a private directory (mode 0700) that every
//! connection of the process (bullmq's queues, workers and blocking reads,
//! Drover's own reads) opens as its Redis. The relay pipes each one to the
//! master the Sentinels name now. A monitor asks the Sentinels every
//! [`POLL`]; when they name another master, and it answers `ROLE` as a
//! master, the relay cuts every piped connection. Their clients reconnect,
//! as after any dropped connection, and reach the new master; nothing is
//! restarted.
//!
//! The relay copies bytes and never reads them: AUTH and commands go
//! through unchanged. TLS to a Sentinel-managed master is not supported
//! (the address is the relay's, which a certificate would not name).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{percent_encode, redact_url};
use crate::error::{QueueError, Result};

/// How often the Sentinels are asked who the master is.
const POLL: Duration = Duration::from_millis(250);
/// How long one question to one Sentinel (or one `ROLE`) may take.
const ASK_TIMEOUT: Duration = Duration::from_millis(1_000);

/// A parsed `redis+sentinel://[user:pass@]host:port[,host:port…]/<master>[/<db>]`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SentinelUrl {
    /// `host:port` of each Sentinel.
    pub(crate) sentinels: Vec<String>,
    /// The name of the monitored master group.
    pub(crate) master: String,
    /// The database number on the master.
    pub(crate) db: u32,
    /// `user` and `password` for the master (percent-decoded); the
    /// Sentinels themselves are asked without authentication.
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
}

// By hand so the password never reaches a log.
impl std::fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelUrl")
            .field("sentinels", &self.sentinels)
            .field("master", &self.master)
            .field("db", &self.db)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The URL scheme that selects Sentinel.
pub(crate) const SCHEME: &str = "redis+sentinel://";

impl SentinelUrl {
    /// Parses and checks a `redis+sentinel://` URL.
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let invalid = |why: &str| {
            QueueError::InvalidConfig(format!(
                "sentinel URL {} {why}; expected redis+sentinel://[user:password@]host:port[,host:port...]/<master name>[/<db>]",
                redact_url(url)
            ))
        };
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| invalid("does not start with redis+sentinel://"))?;
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| invalid("names no master"))?;
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (u, p) = info.split_once(':').unwrap_or((info, ""));
                let u = percent_decode(u).ok_or_else(|| invalid("has a bad %-escape"))?;
                let p = percent_decode(p).ok_or_else(|| invalid("has a bad %-escape"))?;
                (
                    Some(u).filter(|u| !u.is_empty()),
                    Some(p).filter(|p| !p.is_empty()),
                )
            }
        };
        let sentinels: Vec<String> = hosts.split(',').map(str::to_owned).collect();
        for s in &sentinels {
            let port = s.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>()));
            if !matches!(port, Some((h, Ok(p))) if !h.is_empty() && p > 0) {
                return Err(invalid(&format!(
                    "has a sentinel {s:?} that is not host:port"
                )));
            }
        }
        let mut parts = path.split('/');
        let master = parts.next().unwrap_or_default().to_owned();
        if master.is_empty() || master.contains(['?', '#']) {
            return Err(invalid("names no master"));
        }
        let db = match parts.next() {
            None | Some("") => 0,
            Some(db) => db
                .parse()
                .map_err(|_| invalid("has a database that is not a number"))?,
        };
        if parts.next().is_some() {
            return Err(invalid("has more path than /<master>/<db>"));
        }
        Ok(Self {
            sentinels,
            master,
            db,
            user,
            password,
        })
    }

    /// The URL the process's connections open: the relay's socket and the
    /// master's database. No credentials: the relay authenticates each
    /// connection it opens to the master (see [`authenticate`]), so the
    /// password is in no URL that a library might log.
    pub(crate) fn relay_url(&self, socket: &Path) -> String {
        format!("redis+unix://{}?db={}", socket.display(), self.db)
    }

    /// `AUTH [user] password` as RESP, when the URL has a password.
    fn auth_command(&self) -> Option<Vec<u8>> {
        let password = self.password.as_deref()?;
        let mut args = vec!["AUTH"];
        if let Some(user) = self.user.as_deref() {
            args.push(user);
        }
        args.push(password);
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Some(out)
    }
}

/// The running relay; dropping it stops the relay and the monitor and
/// removes the socket's directory.
pub(crate) struct Relay {
    socket: PathBuf,
    dir: PathBuf,
    stop: CancellationToken,
    master: watch::Receiver<SocketAddr>,
}

impl Relay {
    /// Asks the Sentinels for the master, then starts the relay on a fresh
    /// socket and the monitor that follows failovers.
    pub(crate) async fn start(url: &SentinelUrl) -> Result<Self> {
        let first = find_master(url, None).await?;
        tracing::info!(master = %first, group = %url.master, "sentinel: following the master");
        let dir = private_dir()?;
        let socket = dir.join("redis.sock");
        let listener = UnixListener::bind(&socket).map_err(|e| {
            QueueError::InvalidConfig(format!(
                "cannot open the sentinel relay socket {}: {e}",
                socket.display()
            ))
        })?;
        let (tx, rx) = watch::channel(first);
        let stop = CancellationToken::new();
        let recheck = Arc::new(Notify::new());
        tokio::spawn(monitor(url.clone(), tx, Arc::clone(&recheck), stop.clone()));
        let auth = Arc::new(url.auth_command());
        tokio::spawn(accept(listener, rx.clone(), auth, recheck, stop.clone()));
        Ok(Self {
            socket,
            dir,
            stop,
            master: rx,
        })
    }

    /// The relay's socket.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// The master connections are piped to now.
    pub(crate) fn master(&self) -> SocketAddr {
        *self.master.borrow()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A new directory only this user can enter, for the socket.
fn private_dir() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    let dir = base.join(format!("drover-sentinel-{}", uuid::Uuid::new_v4().simple()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| {
            QueueError::InvalidConfig(format!(
                "cannot create the sentinel relay directory in {}: {e}",
                base.display()
            ))
        })?;
    Ok(dir)
}

/// Asks each Sentinel in turn for the group's master, and returns the
/// first address named that is `current` (no need to ask it again) or
/// answers `ROLE` as a master.
async fn find_master(url: &SentinelUrl, current: Option<SocketAddr>) -> Result<SocketAddr> {
    let mut seen = Vec::new();
    for sentinel in &url.sentinels {
        match ask_sentinel(sentinel, &url.master).await {
            Ok(Some(addr)) => {
                if Some(addr) == current || is_master(addr, url).await {
                    return Ok(addr);
                }
                seen.push(format!(
                    "{sentinel} names {addr}, which did not answer ROLE as a master (down, \
                     still a replica, or refusing the URL's credentials)"
                ));
            }
            Ok(None) => seen.push(format!("{sentinel} does not know {:?}", url.master)),
            Err(e) => seen.push(format!("{sentinel}: {e}")),
        }
    }
    Err(QueueError::Redis(redis::RedisError::from((
        redis::ErrorKind::Io,
        "no sentinel named a reachable master",
        seen.join("; "),
    ))))
}

/// `SENTINEL get-master-addr-by-name <master>` on one Sentinel.
async fn ask_sentinel(sentinel: &str, master: &str) -> Result<Option<SocketAddr>> {
    let client = redis::Client::open(format!("redis://{sentinel}"))?;
    let ask = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(master)
            .query_async::<Option<(String, u16)>>(&mut conn)
            .await
    };
    let answer = tokio::time::timeout(ASK_TIMEOUT, ask)
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "sentinel timed out")))??;
    Ok(match answer {
        None => None,
        Some((host, port)) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .ok()
            .and_then(|mut addrs| addrs.next()),
    })
}

/// Whether `addr` answers `ROLE` as a master (with the URL's credentials).
async fn is_master(addr: SocketAddr, url: &SentinelUrl) -> bool {
    let auth = match (&url.user, &url.password) {
        (None, None) => String::new(),
        (user, password) => format!(
            "{}:{}@",
            percent_encode(user.as_deref().unwrap_or_default()),
            percent_encode(password.as_deref().unwrap_or_default())
        ),
    };
    let target = format!("redis://{auth}{addr}/{}", url.db);
    let ask = async {
        let client = redis::Client::open(target.as_str()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let role: redis::Value = redis::cmd("ROLE").query_async(&mut conn).await.ok()?;
        match role {
            redis::Value::Array(parts) => match parts.first() {
                Some(redis::Value::BulkString(b)) => Some(b.as_slice() == b"master"),
                Some(redis::Value::SimpleString(s)) => Some(s == "master"),
                _ => None,
            },
            _ => None,
        }
    };
    matches!(tokio::time::timeout(ASK_TIMEOUT, ask).await, Ok(Some(true)))
}

/// Follows the Sentinels' answer every [`POLL`] (or at once when the relay
/// could not reach the master), and publishes a change of master.
async fn monitor(
    url: SentinelUrl,
    master: watch::Sender<SocketAddr>,
    recheck: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                tracing::debug!(group = %url.master, "sentinel: relay stopped");
                return;
            }
            () = tokio::time::sleep(POLL) => {}
            () = recheck.notified() => {}
        }
        let current = *master.borrow();
        match find_master(&url, Some(current)).await {
            Ok(found) if found != current => {
                tracing::warn!(
                    old = %current, new = %found, group = %url.master,
                    "sentinel: the master changed; reconnecting every connection to the new one"
                );
                master.send_replace(found);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "sentinel: no master found this round"),
        }
    }
}

/// Accepts the process's connections and pipes each to the master.
async fn accept(
    listener: UnixListener,
    master: watch::Receiver<SocketAddr>,
    auth: Arc<Option<Vec<u8>>>,
    recheck: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        let client = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(e) => {
                    tracing::warn!(error = %e, "sentinel relay: accept failed");
                    continue;
                }
            },
        };
        tokio::spawn(pipe(
            client,
            master.clone(),
            Arc::clone(&auth),
            Arc::clone(&recheck),
            stop.clone(),
        ));
    }
}

/// Copies bytes both ways between one client and the master until either
/// side closes, the master changes, or the relay stops.
async fn pipe(
    mut client: UnixStream,
    mut master: watch::Receiver<SocketAddr>,
    auth: Arc<Option<Vec<u8>>>,
    recheck: Arc<Notify>,
    stop: CancellationToken,
) {
    let addr = *master.borrow_and_update();
    let upstream = tokio::time::timeout(ASK_TIMEOUT, async {
        let mut stream = TcpStream::connect(addr).await?;
        if let Some(command) = auth.as_ref() {
            authenticate(&mut stream, command).await?;
        }
        Ok::<_, std::io::Error>(stream)
    })
    .await;
    let mut upstream = match upstream {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            tracing::warn!(master = %addr, error = %e, "sentinel relay: the master refused AUTH");
            return;
        }
        _ => {
            // The client sees its connection closed and retries; meanwhile
            // the Sentinels are asked at once whether the master moved.
            recheck.notify_one();
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    tokio::select! {
        () = stop.cancelled() => {}
        _ = master.changed() => {}
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
    }
}

/// Sends `AUTH` on a new connection to the master and reads its one-line
/// answer; anything but `+OK` is refused as `PermissionDenied`.
async fn authenticate(stream: &mut TcpStream, command: &[u8]) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(command).await?;
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        if line.len() > 1_024 {
            break;
        }
        line.push(stream.read_u8().await?);
    }
    if line == b"+OK\r\n" {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            String::from_utf8_lossy(&line).trim_end().to_owned(),
        ))
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sentinel_urls() {
        let u = SentinelUrl::parse("redis+sentinel://127.0.0.1:26379,s2:26380/mymaster").unwrap();
        assert_eq!(u.sentinels, ["127.0.0.1:26379", "s2:26380"]);
        assert_eq!(u.master, "mymaster");
        assert_eq!(u.db, 0);
        assert_eq!(u.password, None);
        let u = SentinelUrl::parse("redis+sentinel://:p%40ss%2B@h:1/m/3").unwrap();
        assert_eq!(u.password.as_deref(), Some("p@ss+"));
        assert_eq!(u.user, None);
        assert_eq!(u.db, 3);
        assert!(!format!("{u:?}").contains("p@ss"), "{u:?}");
        assert_eq!(
            u.relay_url(Path::new("/tmp/x/redis.sock")),
            "redis+unix:///tmp/x/redis.sock?db=3"
        );
        assert_eq!(
            u.auth_command().unwrap(),
            b"*2\r\n$4\r\nAUTH\r\n$5\r\np@ss+\r\n"
        );
        let u = SentinelUrl::parse("redis+sentinel://drover:pw@h:1/m").unwrap();
        assert_eq!(
            u.auth_command().unwrap(),
            b"*3\r\n$4\r\nAUTH\r\n$6\r\ndrover\r\n$2\r\npw\r\n"
        );
        assert_eq!(
            SentinelUrl::parse("redis+sentinel://h:1/m")
                .unwrap()
                .auth_command(),
            None
        );
    }

    #[test]
    fn bad_sentinel_urls_are_refused_without_their_password() {
        for url in [
            "redis+sentinel://h:1",
            "redis+sentinel://h:1/",
            "redis+sentinel://h/m",
            "redis+sentinel://h:0/m",
            "redis+sentinel://h:1,/m",
            "redis+sentinel://h:1/m/x",
            "redis+sentinel://h:1/m/0/extra",
            "redis+sentinel://:hunter2@h:x/m",
        ] {
            let err = SentinelUrl::parse(url).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("redis+sentinel://"), "{url}: {err}");
        }
    }
}

//! A private PgBouncer per test, in transaction pool mode, in front of the
//! test PostgreSQL server (see [`crate::postgres`]); killed when the test
//! ends. Debian's `pgbouncer` package (`.ci/run` installs it).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::ChildGuard;
use crate::redis_server::free_port;

/// A running `pgbouncer` with `pool_mode = transaction`.
#[derive(Debug)]
pub struct PgBouncer {
    port: u16,
    _child: ChildGuard,
    dir: TempDir,
}

impl PgBouncer {
    /// Starts PgBouncer in transaction mode with at most `server_pool`
    /// server connections per database and user: fewer than the store's
    /// pool, so client connections take turns on server connections, as
    /// in production.
    pub async fn start(server_pool: u32) -> Self {
        let server = crate::postgres::admin_url();
        let (host, port, user) = server_parts(&server);
        for _ in 0..10 {
            let dir = tempfile::Builder::new()
                .prefix("drover-pgbouncer-")
                .tempdir()
                .unwrap();
            let listen = free_port();
            let d = dir.path().display();
            std::fs::write(dir.path().join("users.txt"), format!("\"{user}\" \"\"\n")).unwrap();
            std::fs::write(
                dir.path().join("pgbouncer.ini"),
                format!(
                    "[databases]\n* = host={host} port={port}\n\n[pgbouncer]\n\
                     listen_addr = 127.0.0.1\nlisten_port = {listen}\nunix_socket_dir =\n\
                     auth_type = trust\nauth_file = {d}/users.txt\n\
                     pool_mode = transaction\ndefault_pool_size = {server_pool}\n\
                     max_client_conn = 200\nlogfile = {d}/pgbouncer.log\n\
                     pidfile = {d}/pgbouncer.pid\nignore_startup_parameters = extra_float_digits\n"
                ),
            )
            .unwrap();
            let mut cmd = Command::new(binary());
            if running_as_root() {
                // PgBouncer refuses to run as root; Debian's PostgreSQL
                // packages make the `postgres` user.
                let chown = Command::new("chown")
                    .args(["-R", "postgres"])
                    .arg(dir.path())
                    .status()
                    .expect("chown runs");
                assert!(chown.success(), "chown -R postgres {d}");
                cmd.args(["-u", "postgres"]);
            }
            let child = cmd
                .arg(dir.path().join("pgbouncer.ini"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start pgbouncer ({e}); .ci/run installs Debian's pgbouncer")
                });
            let mut child = ChildGuard::new(format!("pgbouncer:{listen}"), child);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if child.try_wait().is_some() {
                    break; // the port was taken: try another
                }
                if std::net::TcpStream::connect(("127.0.0.1", listen)).is_ok() {
                    return Self {
                        port: listen,
                        _child: child,
                        dir,
                    };
                }
                assert!(Instant::now() < deadline, "pgbouncer never listened");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        panic!("pgbouncer did not start after 10 attempts");
    }

    /// `url` (a database on the test server) as reached through PgBouncer.
    pub fn url_for(&self, url: &str) -> String {
        let (_, rest) = url.split_once("://").expect("a postgres:// URL");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let user = authority
            .rsplit_once('@')
            .map(|(user, _)| format!("{user}@"))
            .unwrap_or_default();
        format!("postgres://{user}127.0.0.1:{}/{path}", self.port)
    }

    /// What PgBouncer logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

/// Whether this process runs as root (it owns `/proc/self` then).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `pgbouncer` on PATH, or where Debian installs it.
fn binary() -> &'static str {
    if Command::new("pgbouncer")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
    {
        "pgbouncer"
    } else {
        "/usr/sbin/pgbouncer"
    }
}

/// Host, port and user of a `postgres://user[:pw]@host:port/db` URL.
fn server_parts(url: &str) -> (String, u16, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let (user, hostport) = authority
        .rsplit_once('@')
        .unwrap_or(("postgres", authority));
    let user = user.split(':').next().unwrap_or("postgres").to_string();
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
    (host.to_string(), port.parse().unwrap_or(5432), user)
}

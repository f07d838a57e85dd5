//! The HTTP enqueue servers `http-enqueue` compares, and a minimal HTTP/1.1
//! client for checking on them (health, one test request) without a
//! dependency.
//!
//! - [`Target::Drover`]: `drover serve`, with an API key made for the run in
//!   a private data directory (its SQLite store).
//! - [`Target::Express`]: `node/express-enqueue.mjs`, Express + Node BullMQ
//!   from `compat/node_modules`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::procs::WorkerProcess;

/// How long one request of [`request`] may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often [`wait_healthy`] asks.
const HEALTH_POLL: Duration = Duration::from_millis(50);
/// How long a `drover migrate` or `drover keys create` may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The servers compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Target {
    /// `drover serve`.
    Drover,
    /// Express + Node BullMQ (`node/express-enqueue.mjs`).
    Express,
}

impl Target {
    /// Every target, in report order.
    pub const ALL: [Self; 2] = [Self::Drover, Self::Express];

    /// Its name in flags and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Drover => "drover",
            Self::Express => "express",
        }
    }
}

/// Environment variables that would change what `drover` does; they are
/// removed so the benchmark runs Drover's defaults whatever the caller's
/// shell holds.
const DROVER_ENV: [&str; 10] = [
    "RUST_LOG",
    "REDIS_URL",
    "DATABASE_URL",
    "DROVER_CONFIG",
    "DROVER_DATA_DIR",
    "DROVER_PREFIX",
    "DROVER_REDIS_CLUSTER_NODES",
    "DROVER_METRICS_ADDR",
    "DROVER_LOG_FORMAT",
    "DROVER_API_ADDR",
];

/// `drover serve` and what it needs: the binary, a private data directory
/// holding the migrated SQLite store, and an API key in it.
#[derive(Debug)]
pub struct DroverServer {
    bin: PathBuf,
    data_dir: tempfile::TempDir,
    token: String,
    version: String,
}

impl DroverServer {
    /// Checks that `bin` has `serve`, then migrates a new store in a
    /// private data directory and creates an API key allowed to enqueue to
    /// every queue with a rate limit out of the way (1,000,000/s).
    pub async fn prepare(bin: &Path, redis_url: &str) -> Result<Self> {
        let data_dir = tempfile::Builder::new()
            .prefix("drover-bench-data-")
            .tempdir()
            .context("creating a data directory for drover")?;
        let mut server = Self {
            bin: bin.to_path_buf(),
            data_dir,
            token: String::new(),
            version: String::new(),
        };
        server.version = server
            .output(&["--version"], redis_url)
            .await?
            .trim()
            .to_string();
        if let Err(e) = server.output(&["serve", "--help"], redis_url).await {
            bail!(
                "{} has no working `serve` command, which this benchmark measures \
                 (run with --only express to measure the reference alone): {e:#}",
                bin.display()
            );
        }
        server.output(&["migrate"], redis_url).await?;
        let created = server
            .output(
                &[
                    "keys",
                    "create",
                    "--name",
                    "bench",
                    "--scope",
                    "enqueue:*",
                    "--rate-limit",
                    "1000000",
                    "--json",
                ],
                redis_url,
            )
            .await?;
        server.token = token_of(&created)?;
        Ok(server)
    }

    /// Creates another API key with `scope`; answers its secret.
    pub async fn create_key(&self, name: &str, scope: &str, redis_url: &str) -> Result<String> {
        let created = self
            .output(
                &["keys", "create", "--name", name, "--scope", scope, "--json"],
                redis_url,
            )
            .await?;
        token_of(&created)
    }

    /// `drover --version`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The API key's secret, for `Authorization: Bearer`.
    pub fn token(&self) -> &str {
        &self.token
    }

    fn command(&self, redis_url: &str) -> Command {
        let mut cmd = Command::new(&self.bin);
        for var in DROVER_ENV {
            cmd.env_remove(var);
        }
        cmd.env("DROVER_DATA_DIR", self.data_dir.path())
            .env("REDIS_URL", redis_url);
        cmd
    }

    /// Runs `drover ARGS` to completion and returns its stdout; fails with
    /// its stderr when it fails.
    async fn output(&self, args: &[&str], redis_url: &str) -> Result<String> {
        let mut cmd = self.command(redis_url);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let what = format!("drover {}", args.join(" "));
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .with_context(|| format!("`{what}` did not finish within {COMMAND_TIMEOUT:?}"))??;
        if !out.status.success() {
            bail!(
                "`{what}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `drover serve --addr 127.0.0.1:PORT --migrate`.
    pub fn serve_command(&self, redis_url: &str, port: u16) -> Command {
        let mut cmd = self.command(redis_url);
        cmd.arg("serve")
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--migrate");
        cmd
    }
}

/// The token of `drover keys create --json`'s output.
fn token_of(stdout: &str) -> Result<String> {
    let value: serde_json::Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("`drover keys create --json` printed no JSON: {stdout:?}"))?;
    let token = value
        .get("token")
        .and_then(serde_json::Value::as_str)
        .context("`drover keys create --json` printed no \"token\"")?;
    Ok(token.to_string())
}

/// `node express-enqueue.mjs` with `REDIS_URL`, `HOST` and `PORT` set.
pub fn express_command(node: &Path, script: &Path, redis_url: &str, port: u16) -> Command {
    let mut cmd = Command::new(node);
    // Node's defaults, whatever the caller's shell holds.
    for var in ["NODE_OPTIONS", "NODE_ENV", "UV_THREADPOOL_SIZE"] {
        cmd.env_remove(var);
    }
    cmd.arg(script)
        .env("REDIS_URL", redis_url)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string());
    cmd
}

/// A response of [`request`]: the status, the headers and the body as
/// text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: String,
}

impl Response {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request to `127.0.0.1:port` on a new connection
/// (`Connection: close`), read to the end.
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> Result<Response> {
    request_within(REQUEST_TIMEOUT, port, method, path, headers, body).await
}

/// [`request`] with its own time limit.
pub async fn request_within(
    limit: Duration,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> Result<Response> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
        for (name, value) in headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        if !body.is_empty() || method != "GET" {
            let _ = write!(head, "Content-Length: {}\r\n", body.len());
        }
        head.push_str("\r\n");
        head.push_str(body);
        stream.write_all(head.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        anyhow::Ok(raw)
    };
    let raw = tokio::time::timeout(limit, exchange)
        .await
        .with_context(|| format!("{method} {path}: no answer within {limit:?}"))?
        .with_context(|| format!("{method} {path}"))?;
    parse_response(&String::from_utf8_lossy(&raw))
        .with_context(|| format!("{method} {path}: not an HTTP response"))
}

fn parse_response(text: &str) -> Option<Response> {
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status_line = head.lines().next()?;
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let chunked = head.lines().skip(1).any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
        })
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(Response {
        status,
        headers,
        body,
    })
}

/// The data of a chunked body (`<hex size>\r\n<data>\r\n ... 0\r\n\r\n`).
fn dechunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size_line, after) = rest.split_once("\r\n")?;
        let size_hex = size_line.split(';').next()?.trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// Polls `GET /health` on `port` until it answers 200, failing (with the
/// end of the server's log) if the process exits or `timeout` passes.
pub async fn wait_healthy(server: &mut WorkerProcess, port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        server.check_alive()?;
        let last = match request(port, "GET", "/health", &[], "").await {
            Ok(r) if r.status == 200 => return Ok(()),
            Ok(r) => format!("status {}: {}", r.status, r.body.trim()),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!(
                "GET /health on port {port} did not answer 200 within {timeout:?} ({last}); \
                 the server's log ends with:\n{}",
                server.log_tail(20)
            );
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_body() {
        let r = parse_response("HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\n{\"id\":\"1\"}")
            .unwrap_or_else(|| panic!("unparsed"));
        assert_eq!(r.status, 201);
        assert_eq!(r.header("content-length"), Some("10"));
        assert_eq!(r.body, "{\"id\":\"1\"}");
        assert!(parse_response("garbage").is_none());
    }

    #[test]
    fn dechunks_chunked_bodies() {
        let text = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n\
                    4\r\n{\"id\r\n6\r\n\":\"1\"}\r\n0\r\n\r\n";
        let r = parse_response(text).unwrap_or_else(|| panic!("unparsed"));
        assert_eq!(r.body, "{\"id\":\"1\"}");
        assert!(dechunk("zz\r\n").is_none());
    }

    #[test]
    fn reads_the_token_of_keys_create() {
        let out = "{\n  \"id\": \"k1\",\n  \"name\": \"bench\",\n  \"token\": \"drv_abc\"\n}\n";
        assert_eq!(token_of(out).unwrap_or_default(), "drv_abc");
        assert!(token_of("created").is_err());
        assert!(token_of("{\"id\":1}").is_err());
    }
}

//! `http`: pushes each job to an application over HTTP, so apps in any
//! language can be workers.
//!
//! Each attempt is a `POST` of `{"id", "name", "data", "attemptsMade"}` to
//! the configured URL (`{name}` in it is replaced by the job name). The
//! answer decides the job:
//!
//! * 2xx completes it; the JSON response body is the return value (empty:
//!   `null`; not JSON: the text as a JSON string).
//! * 408, 429 and 5xx, timeouts and connection errors fail the attempt, to
//!   be retried with the job's backoff, or after the response's
//!   `Retry-After` when it has one.
//! * Any other status (3xx, 4xx) fails the job without retry: the request
//!   itself is wrong and sending it again will not help.
//!
//! Requests carry `Idempotency-Key: <queue>:<id>:<attempt>` and, with a
//! secret configured, `X-Drover-Signature: sha256=<hex HMAC of the body>`.
//! A circuit breaker per URL delays jobs (spending no attempt) while a
//! target keeps failing.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use queue_core::config::{percent_encode, redact_url};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER, USER_AGENT};
use serde::Deserialize;
use serde_json::{Value, json};

use super::breaker::{Admission, Breakers};
use super::signature::{SIGNATURE_HEADER, sign};
use crate::context::JobContext;
use crate::handler::Handler;
use crate::outcome::JobError;

/// The `[handler.http]` table of the config file.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpHandlerConfig {
    /// Where jobs are POSTed; `{name}` is replaced by the job name.
    pub url: Option<String>,
    /// Key for the `X-Drover-Signature` HMAC; none: requests are unsigned.
    pub secret: Option<String>,
    /// Longest a request may take.
    pub timeout_ms: u64,
    /// Largest response body read (larger fails the attempt).
    pub max_response_bytes: u64,
    /// Consecutive failures that open a URL's circuit (0: never).
    pub breaker_failures: u32,
    /// How long an open circuit rests before a probe.
    pub breaker_cooldown_ms: u64,
}

impl Default for HttpHandlerConfig {
    fn default() -> Self {
        Self {
            url: None,
            secret: None,
            timeout_ms: 30_000,
            max_response_bytes: 1024 * 1024,
            breaker_failures: 5,
            breaker_cooldown_ms: 30_000,
        }
    }
}

impl fmt::Debug for HttpHandlerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpHandlerConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("timeout_ms", &self.timeout_ms)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_cooldown_ms", &self.breaker_cooldown_ms)
            .finish()
    }
}

/// Checked settings of the `http` handler.
#[derive(Clone)]
pub struct HttpHandlerSettings {
    url_template: String,
    secret: Option<Vec<u8>>,
    timeout: Duration,
    max_response_bytes: usize,
    breaker_failures: u32,
    breaker_cooldown: Duration,
}

impl fmt::Debug for HttpHandlerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpHandlerSettings")
            .field("url", &redact_url(&self.url_template))
            .field("signed", &self.secret.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpHandlerConfig {
    /// Checks the settings; the message says what to fix.
    pub fn resolve(&self) -> Result<HttpHandlerSettings, String> {
        let Some(url) = self.url.clone() else {
            return Err("the http handler needs a URL: pass --url".into());
        };
        let probe = url.replace("{name}", "job");
        let parsed = reqwest::Url::parse(&probe)
            .map_err(|e| format!("--url {} is not a valid URL: {e}", redact_url(&url)))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "--url {} must be an http:// or https:// URL",
                redact_url(&url)
            ));
        }
        if self.timeout_ms == 0 {
            return Err("http timeout_ms must be greater than 0".into());
        }
        Ok(HttpHandlerSettings {
            url_template: url,
            secret: self
                .secret
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec()),
            timeout: Duration::from_millis(self.timeout_ms),
            max_response_bytes: usize::try_from(self.max_response_bytes).unwrap_or(usize::MAX),
            breaker_failures: self.breaker_failures,
            breaker_cooldown: Duration::from_millis(self.breaker_cooldown_ms.max(1)),
        })
    }
}

/// The `http` handler.
#[derive(Clone)]
pub struct HttpHandler {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    settings: HttpHandlerSettings,
    breakers: Breakers,
}

impl fmt::Debug for HttpHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpHandler")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl HttpHandler {
    /// A handler with its own connection pool.
    pub fn new(settings: HttpHandlerSettings) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            // A redirect would turn the POST into a GET elsewhere; report
            // it instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                breakers: Breakers::new(settings.breaker_failures, settings.breaker_cooldown),
                settings,
            }),
        })
    }
}

/// A request that got no answer, as a retryable failure. The reason is
/// stored in the job and shown by the API, so it names the URL only as
/// `shown` (redacted), never as reqwest prints it.
pub(crate) fn request_failure(method: &str, shown: &str, e: reqwest::Error) -> JobError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    JobError::failed(format!("{method} {shown}: {what}: {}", e.without_url()))
}

/// A plain HTTP client (GETs of the `cache-warm` handler): ring TLS,
/// Mozilla's roots, a timeout, redirects followed.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config()?)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// TLS with the ring provider and Mozilla's roots, chosen here so no
/// process-wide default provider is needed.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Handler for HttpHandler {
    fn call(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, JobError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.push(&ctx).await })
    }
}

impl Inner {
    async fn push(&self, ctx: &JobContext) -> Result<Value, JobError> {
        let url = self
            .settings
            .url_template
            .replace("{name}", &percent_encode(ctx.name()));
        let shown = redact_url(&url);
        if let Admission::WaitUntil(at) = self.breakers.admit(&url, Instant::now()) {
            // Spread the resumed jobs over a second so they do not return
            // all at once.
            let wait = at.saturating_duration_since(Instant::now())
                + Duration::from_millis(fastrand::u64(0..1000));
            return Err(JobError::DelayUntil(SystemTime::now() + wait));
        }
        let mut payload = json!({
            "id": ctx.id(),
            "name": ctx.name(),
            "data": ctx.data(),
            "attemptsMade": ctx.attempt() - 1,
        });
        // A workflow step's app gets its latest checkpoint (saved through
        // PUT /api/v1/workflow-runs/{run}/steps/{step}/checkpoint), so a
        // retry continues where the last try stopped.
        if ctx.workflow_step().is_some() {
            payload["checkpoint"] = ctx.last_checkpoint().await?.unwrap_or(Value::Null);
        }
        let body = serde_json::to_vec(&payload)
            .map_err(|e| JobError::unrecoverable(format!("cannot encode the request: {e}")))?;
        let mut request = self
            .client
            .post(&url)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("drover/", env!("CARGO_PKG_VERSION")))
            .header("idempotency-key", ctx.idempotency_key());
        if let Some(secret) = &self.settings.secret {
            request = request.header(SIGNATURE_HEADER, sign(secret, &body));
        }
        let response = tokio::select! {
            r = request.body(body).send() => r,
            () = ctx.cancelled() => return Err(JobError::failed(format!("POST {shown}: cancelled"))),
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                self.breakers.record(&url, false, Instant::now());
                return Err(request_failure("POST", &shown, e));
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = read_body(response, self.settings.max_response_bytes).await;
        let transient = status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error();
        // A 4xx means the target is up and answering.
        self.breakers.record(&url, !transient, Instant::now());
        let body = body.map_err(|e| JobError::failed(format!("POST {shown}: {e}")))?;
        if status.is_success() {
            return Ok(parse_body(&body));
        }
        let reason = format!("POST {shown}: {status}{}", snippet(&body));
        if transient {
            Err(match retry_after {
                Some(after) => JobError::retry_after(after, reason),
                None => JobError::failed(reason),
            })
        } else {
            Err(JobError::unrecoverable(reason))
        }
    }
}

async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(format!("response body larger than {limit} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(format!("reading the response failed: {e}")),
        }
    }
}

/// The return value for a 2xx body.
fn parse_body(body: &[u8]) -> Value {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// `Retry-After` as seconds or an HTTP date, capped at a day.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match raw.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(raw)
            .ok()?
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(Duration::from_secs(24 * 3600)))
}

/// The start of a response body for an error message, control characters
/// removed.
fn snippet(body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn names_are_encoded_for_paths() {
        assert_eq!(percent_encode("send-email"), "send-email");
        assert_eq!(percent_encode("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let wait = retry_after(&h).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn bodies_become_return_values() {
        assert_eq!(parse_body(b""), Value::Null);
        assert_eq!(parse_body(b"{\"ok\":1}"), json!({"ok": 1}));
        assert_eq!(parse_body(b"done"), json!("done"));
    }

    #[test]
    fn config_is_checked_and_secret_hidden() {
        let mut c = HttpHandlerConfig::default();
        assert!(c.resolve().unwrap_err().contains("needs a URL"));
        c.url = Some("ftp://x".into());
        assert!(c.resolve().unwrap_err().contains("http://"));
        c.url = Some("http://app:8080/jobs/{name}".into());
        c.secret = Some("s3cret".into());
        assert!(c.resolve().is_ok());
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}

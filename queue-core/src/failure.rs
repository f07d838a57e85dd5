//! A failed attempt, applied the way BullMQ's Node worker applies it: the
//! hash gets `failedReason` and the growing `stacktrace` on every attempt,
//! then the job is retried (per [`crate::retry`]) or failed for good.

use std::time::Duration;

use serde_json::Value;
use tracing::warn;

use crate::clock::now_ms;
use crate::connection::Connection;
use crate::consumer::Settlement;
use crate::error::QueueError;
use crate::keys;
use crate::names::QueueName;
use crate::retry::{self, FailedAttempt, RetryDecision, StoredBackoff};

/// Why an attempt failed, and what the processor says about retrying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The error message (becomes `failedReason`).
    pub message: String,
    /// A longer trace (error chain, panic location); appended to the job's
    /// `stacktrace`. Defaults to the message.
    pub stack: Option<String>,
    /// Retrying cannot help: fail now whatever attempts remain.
    pub unrecoverable: bool,
    /// Retry after this delay instead of the job's backoff (attempts still
    /// apply).
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// A plain failure, retried per the job's options.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            stack: None,
            unrecoverable: false,
            retry_after: None,
        }
    }
}

pub(crate) type EngineResult = std::result::Result<Value, bullmq::Error>;

/// Applies `failure` to `job`. On `Err`, nothing conclusive was written and
/// the caller treats the job as unapplied.
pub(crate) async fn apply(
    conn: &Connection,
    queue: &QueueName,
    job: &bullmq::Job,
    failure: Failure,
) -> Result<(EngineResult, Settlement), (&'static str, QueueError)> {
    let k = keys::queue(conn.prefix(), queue);
    let job_key = k.job_key(job.id());
    let stored: Result<(Option<String>, Option<String>), redis::RedisError> = redis::cmd("HMGET")
        .arg(&job_key)
        .arg("opts")
        .arg("stacktrace")
        .query_async(&mut conn.redis())
        .await;
    let (opts_raw, trace_raw) = match stored {
        Ok(v) => v,
        Err(e) => {
            // Without the stored options, let bullmq-official decide from
            // its own view of them (no jitter): still correct, just plainer.
            warn!(id = %job.id(), error = %e, "could not read the job's options; retrying as the engine decides");
            return Ok(engine_fallback(failure));
        }
    };
    let opts: Value = opts_raw
        .and_then(|raw| serde_json::from_str(&raw).ok())
        .unwrap_or(Value::Null);
    let backoff = StoredBackoff::from_opts(&opts);
    let attempts = opts.get("attempts").and_then(Value::as_u64).unwrap_or(0);
    let decision = retry::decide(
        FailedAttempt {
            attempts,
            attempts_made: u64::from(job.attempts_made()),
            unrecoverable: failure.unrecoverable,
            backoff: backoff.as_ref(),
            retry_after_ms: failure
                .retry_after
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        },
        fastrand::f64,
    );
    // The engine's retry path is atomic, so it is used whenever it would do
    // exactly what BullMQ's rule says: same delay, and the same view of the
    // job's attempts and backoff (it parses `opts` itself, less tolerantly).
    let manual = match decision {
        RetryDecision::Retry { engine, .. } => {
            !engine || !engine_agrees(job, attempts, backoff.as_ref())
        }
        RetryDecision::Fail => false,
    };

    let stacktrace = grow_stacktrace(trace_raw.as_deref(), &failure, &opts);
    let mut pipe = redis::pipe();
    pipe.atomic().hset_multiple(
        &job_key,
        &[
            ("failedReason", failure.message.as_str()),
            ("stacktrace", stacktrace.as_str()),
        ],
    );
    if manual {
        // The engine's moveToDelayed counts the attempt itself only on its
        // own retry path; here Drover counts it, then moves the job without
        // counting again.
        pipe.hincr(&job_key, "atm", 1);
    }
    if let Err(e) = pipe.query_async::<()>(&mut conn.redis()).await {
        if manual {
            return Err(("record the failed attempt", e.into()));
        }
        warn!(id = %job.id(), error = %e, "could not record failedReason/stacktrace");
    }

    Ok(match decision {
        RetryDecision::Fail => (
            Err(bullmq::Error::Unrecoverable(failure.message)),
            Settlement::Failed,
        ),
        RetryDecision::Retry { delay_ms, .. } if !manual => (
            Err(bullmq::Error::ProcessingError(failure.message)),
            Settlement::Retrying { delay_ms },
        ),
        RetryDecision::Retry { delay_ms, .. } => {
            let due = now_ms().saturating_add(delay_ms.max(1));
            job.move_to_delayed(due)
                .await
                .map_err(|e| ("move the job to delayed for its retry", e.into()))?;
            (
                Err(bullmq::Error::Delayed),
                Settlement::Retrying { delay_ms },
            )
        }
    })
}

fn engine_fallback(failure: Failure) -> (EngineResult, Settlement) {
    if failure.unrecoverable {
        (
            Err(bullmq::Error::Unrecoverable(failure.message)),
            Settlement::Failed,
        )
    } else {
        (
            Err(bullmq::Error::ProcessingError(failure.message)),
            Settlement::Retrying { delay_ms: 0 },
        )
    }
}

/// Whether bullmq-official parsed the job's options as Drover read them.
fn engine_agrees(job: &bullmq::Job, attempts: u64, backoff: Option<&StoredBackoff>) -> bool {
    use bullmq::types::BackoffStrategy as B;
    let opts = job.opts();
    if u64::from(opts.attempts.unwrap_or(0)) != attempts {
        return false;
    }
    match (&opts.backoff, backoff) {
        (None, None) => true,
        (Some(B::Fixed(d)), Some(b)) => b.kind == "fixed" && *d == b.delay,
        (Some(B::Exponential(d)), Some(b)) => b.kind == "exponential" && *d == b.delay,
        (Some(B::Custom(name)), Some(b)) => *name == b.kind,
        _ => false,
    }
}

/// The job's stacktrace with this attempt's appended, trimmed to
/// `opts.stackTraceLimit` (newest kept), as a JSON array.
fn grow_stacktrace(stored: Option<&str>, failure: &Failure, opts: &Value) -> String {
    let mut traces: Vec<Value> = stored
        .and_then(|raw| serde_json::from_str::<Vec<Value>>(raw).ok())
        .unwrap_or_default();
    traces.push(Value::String(
        failure
            .stack
            .clone()
            .unwrap_or_else(|| failure.message.clone()),
    ));
    if let Some(limit) = opts.get("stackTraceLimit").and_then(Value::as_u64) {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let excess = traces.len().saturating_sub(limit);
        traces.drain(..excess);
    }
    Value::Array(traces).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stacktrace_grows_and_is_trimmed() {
        let f = Failure {
            stack: Some("Error: c".into()),
            ..Failure::new("c")
        };
        let grown = grow_stacktrace(Some(r#"["a","b"]"#), &f, &json!({}));
        assert_eq!(grown, r#"["a","b","Error: c"]"#);
        let trimmed = grow_stacktrace(Some(r#"["a","b"]"#), &f, &json!({"stackTraceLimit": 2}));
        assert_eq!(trimmed, r#"["b","Error: c"]"#);
        let none = grow_stacktrace(None, &Failure::new("x"), &json!({"stackTraceLimit": 0}));
        assert_eq!(none, "[]");
    }

    #[test]
    fn corrupt_stored_stacktrace_restarts() {
        let grown = grow_stacktrace(Some("not json"), &Failure::new("m"), &json!({}));
        assert_eq!(grown, r#"["m"]"#);
    }
}

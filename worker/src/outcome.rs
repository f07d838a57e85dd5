//! What a handler can say about a job it could not complete.

use std::fmt;
use std::time::{Duration, SystemTime};

/// Why a handler did not complete its job, and what should happen next.
///
/// Any `std::error::Error` converts into [`JobError::Failed`], so `?` works
/// in handlers; the other variants are chosen explicitly.
#[non_exhaustive]
pub enum JobError {
    /// The attempt failed; it is retried per the job's `attempts` and
    /// `backoff` (BullMQ's rule), then the job fails for good.
    Failed(Box<dyn std::error::Error + Send + Sync>),
    /// The attempt failed and the next one should wait `after` instead of
    /// the job's backoff (e.g. a downstream `Retry-After`); attempts still
    /// run out as usual.
    RetryAfter {
        /// Delay before the next attempt.
        after: Duration,
        /// Why (becomes the job's `failedReason`).
        reason: String,
    },
    /// Retrying cannot help (bad input, a permanent refusal): the job fails
    /// now, whatever attempts remain.
    Unrecoverable(String),
    /// Not a failure: run the job again at this time, without counting an
    /// attempt (polling something that is not ready yet, say).
    DelayUntil(SystemTime),
    /// Not a failure: the downstream is rate limiting us. The job goes back
    /// to the queue, and this queue's workers pause for this long; no
    /// attempt is counted.
    RateLimited(Duration),
}

impl JobError {
    /// A plain failure with a message, retried per the job's options.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into().into())
    }

    /// A failure that must not be retried.
    pub fn unrecoverable(message: impl Into<String>) -> Self {
        Self::Unrecoverable(message.into())
    }

    /// A failure to retry after `after`.
    pub fn retry_after(after: Duration, reason: impl Into<String>) -> Self {
        Self::RetryAfter {
            after,
            reason: reason.into(),
        }
    }

    /// Run again `after` from now, without counting an attempt.
    pub fn delay_for(after: Duration) -> Self {
        Self::DelayUntil(SystemTime::now() + after)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    fn from(e: E) -> Self {
        Self::Failed(Box::new(e))
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(e) => write!(f, "{e}"),
            Self::RetryAfter { after, reason } => {
                write!(f, "{reason} (retry after {}ms)", after.as_millis())
            }
            Self::Unrecoverable(msg) => f.write_str(msg),
            Self::DelayUntil(at) => write!(f, "delayed until {at:?}"),
            Self::RateLimited(d) => write!(f, "rate limited for {}ms", d.as_millis()),
        }
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
            Self::RetryAfter { after, reason } => f
                .debug_struct("RetryAfter")
                .field("after", after)
                .field("reason", reason)
                .finish(),
            Self::Unrecoverable(m) => f.debug_tuple("Unrecoverable").field(m).finish(),
            Self::DelayUntil(t) => f.debug_tuple("DelayUntil").field(t).finish(),
            Self::RateLimited(d) => f.debug_tuple("RateLimited").field(d).finish(),
        }
    }
}

/// The message and cause chain of an error, one cause per line, for the
/// job's `stacktrace`.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = format!("Error: {e}");
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(&format!("\n    caused by: {cause}"));
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn question_mark_makes_a_failure_with_its_chain() {
        fn handler() -> Result<(), JobError> {
            Err(Outer(std::io::Error::other("inner")))?;
            Ok(())
        }
        let JobError::Failed(e) = handler().unwrap_err() else {
            panic!("expected Failed");
        };
        assert_eq!(
            error_chain(e.as_ref()),
            "Error: outer\n    caused by: inner"
        );
    }
}

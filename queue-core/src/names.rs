//! Checked names: queues, jobs and custom job ids.
//!
//! Queue names follow BullMQ's own rule (no `:`) so Drover can serve queues
//! that Node or Python clients created, plus sanity limits (no control
//! characters, bounded length). Custom job ids follow Node's client-side
//! rules and also refuse the ids that would overwrite a queue key.

use std::fmt;

use crate::error::{QueueError, Result};

/// Longest queue name accepted, in bytes.
pub const MAX_QUEUE_NAME_BYTES: usize = 255;
/// Longest name of a queue created through the API, in bytes.
pub const MAX_NEW_QUEUE_NAME_BYTES: usize = 128;
/// Longest job name accepted, in bytes.
pub const MAX_JOB_NAME_BYTES: usize = 255;
/// Longest custom job id accepted, in bytes.
pub const MAX_JOB_ID_BYTES: usize = 255;

/// A queue name valid for BullMQ: non-empty, no `:`, no control characters,
/// at most [`MAX_QUEUE_NAME_BYTES`]. `{...}` hash tags are kept verbatim.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(String);

impl QueueName {
    /// Checks `name` against BullMQ's rules.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("must not be empty")
        } else if name.contains(':') {
            Some("must not contain ':' (BullMQ uses it to separate key parts)")
        } else if name.chars().any(char::is_control) {
            Some("must not contain control characters")
        } else if name.len() > MAX_QUEUE_NAME_BYTES {
            Some("must be at most 255 bytes")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(QueueError::InvalidQueueName { name, reason }),
            None => Ok(Self(name)),
        }
    }

    /// Checks `name` against the stricter rule for queues Drover creates
    /// from outside input (the HTTP API): 1 to [`MAX_NEW_QUEUE_NAME_BYTES`]
    /// ASCII letters, digits, `.`, `_`, `-`, with at most one `{tag}` for
    /// Redis Cluster. Queues made by other BullMQ clients may have any name
    /// [`QueueName::new`] accepts and can still be read and managed.
    pub fn new_strict(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        let mut braces = name.chars().filter(|c| matches!(c, '{' | '}'));
        let tag_ok = match (braces.next(), braces.next(), braces.next()) {
            (None, None, _) => true,
            (Some('{'), Some('}'), None) => {
                let open = name.find('{').unwrap_or(0);
                let close = name.find('}').unwrap_or(0);
                close > open + 1
            }
            _ => false,
        };
        let reason = if name.len() > MAX_NEW_QUEUE_NAME_BYTES {
            Some("must be at most 128 bytes")
        } else if !name.chars().all(|c| allowed(c) || matches!(c, '{' | '}')) {
            Some("may hold only ASCII letters, digits, '.', '_', '-' and one {tag}")
        } else if !tag_ok {
            Some("may hold at most one non-empty {tag}")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(QueueError::InvalidQueueName { name, reason }),
            None => Self::new(name),
        }
    }

    /// The name as written in Redis keys.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for QueueName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for QueueName {
    type Err = QueueError;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

/// Checks a job name: non-empty, no control characters, bounded.
pub fn validate_job_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("must not be empty")
    } else if name.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if name.len() > MAX_JOB_NAME_BYTES {
        Some("must be at most 255 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(QueueError::InvalidJobName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Queue key suffixes a job id must never equal: a job hash at `P:Q:<id>`
/// would overwrite the queue's own key of that name.
const RESERVED_JOB_IDS: [&str; 20] = [
    "wait",
    "paused",
    "active",
    "prioritized",
    "pc",
    "delayed",
    "completed",
    "failed",
    "waiting-children",
    "stalled",
    "stalled-check",
    "limiter",
    "meta",
    "events",
    "marker",
    "repeat",
    "id",
    "priority",
    "delay",
    "metrics",
];

/// Checks a custom job id given at enqueue, following Node's rules (not `0`,
/// not an integer, no `:`) plus the key-collision guard the protocol
/// document recommends.
pub fn validate_custom_job_id(id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        Some("must not be empty")
    } else if id == "0" || id.starts_with("0:") {
        Some("must not be '0' or start with '0:'")
    } else if is_integer_like(id) {
        Some("must not be an integer (those are BullMQ's automatic ids)")
    } else if id.contains(':') {
        Some("must not contain ':'")
    } else if id.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if id.len() > MAX_JOB_ID_BYTES {
        Some("must be at most 255 bytes")
    } else if RESERVED_JOB_IDS.contains(&id) {
        Some("collides with a queue key of the same name")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(QueueError::InvalidJobId {
            id: id.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Whether Node would read `id` back as the same integer
/// (`String(parseInt(id)) === id`), for the ids that matter here: an
/// optional `-` and digits without a leading zero.
fn is_integer_like(id: &str) -> bool {
    let digits = id.strip_prefix('-').unwrap_or(id);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_follow_bullmq() {
        for ok in ["emails", "email queue", "{tenant-a}", "a.b_c-d", "ünïcode"] {
            assert!(QueueName::new(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "a:b", "tab\there", &"x".repeat(256)] {
            assert!(QueueName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn strict_queue_names() {
        for ok in ["emails", "{tenant-a}", "a.b_c-d", "{t1}orders", "x"] {
            assert!(QueueName::new_strict(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "a:b",
            "email queue",
            "ünïcode",
            "{}",
            "{a}{b}",
            "{a",
            "a}",
            "}a{",
            "a/b",
            &"x".repeat(129),
        ] {
            assert!(QueueName::new_strict(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn custom_job_ids() {
        for ok in ["order-17", "abc", "007", "1.5", "repeatable"] {
            assert!(validate_custom_job_id(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "0", "0:x", "42", "-3", "a:b", "meta", "wait", "events"] {
            assert!(validate_custom_job_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn job_names() {
        assert!(validate_job_name("send-email").is_ok());
        assert!(validate_job_name("").is_err());
        assert!(validate_job_name("a\nb").is_err());
    }
}

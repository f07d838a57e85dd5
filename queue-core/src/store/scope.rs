//! What an API key may do: `enqueue:<queue pattern>`, `read` or `admin`.
//!
//! A scope is written and stored as that string; [`Scope`]'s `FromStr`,
//! `Display` and serde forms are the same text, so a key's scopes read the
//! same in the config, the CLI, the API and the database.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{QueueError, Result};

/// Longest queue pattern accepted, in bytes (the longest queue name).
const MAX_GLOB_BYTES: usize = 255;

/// One permission of an API key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Add jobs to the queues whose names match the pattern.
    Enqueue(QueueGlob),
    /// Read queues, jobs, events, workers and metrics.
    Read,
    /// Everything: adding jobs anywhere, reading, admin actions and the
    /// audit log.
    Admin,
}

impl Scope {
    /// Whether this scope lets a key add jobs to `queue`.
    pub fn permits_enqueue(&self, queue: &str) -> bool {
        match self {
            Self::Enqueue(glob) => glob.matches(queue),
            Self::Admin => true,
            Self::Read => false,
        }
    }

    /// Whether this scope lets a key read queues and jobs.
    pub fn permits_read(&self) -> bool {
        matches!(self, Self::Read | Self::Admin)
    }

    /// Whether this scope lets a key act on queues and jobs and read the
    /// audit log.
    pub fn permits_admin(&self) -> bool {
        matches!(self, Self::Admin)
    }
}

impl FromStr for Scope {
    type Err = QueueError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "read" => Ok(Self::Read),
            "admin" => Ok(Self::Admin),
            _ => match s.strip_prefix("enqueue:") {
                Some(pattern) => QueueGlob::new(pattern).map(Self::Enqueue),
                None => Err(QueueError::InvalidScope {
                    scope: s.to_owned(),
                    reason: "expected enqueue:<queue pattern>, read or admin",
                }),
            },
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Enqueue(glob) => write!(f, "enqueue:{glob}"),
            Self::Read => f.write_str("read"),
            Self::Admin => f.write_str("admin"),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A pattern over queue names: `*` stands for any run of characters (also
/// none), `?` for exactly one character, and every other character for
/// itself, `{` and `}` included (so `{tenant}*` matches hash-tagged queues
/// literally).
///
/// It is 1 to 255 bytes with no `:` (no queue name has one) and no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueueGlob(String);

impl QueueGlob {
    /// Checks `pattern`.
    pub fn new(pattern: impl Into<String>) -> Result<Self> {
        let pattern = pattern.into();
        let reason = if pattern.is_empty() {
            Some("the queue pattern must not be empty; use * for every queue")
        } else if pattern.len() > MAX_GLOB_BYTES {
            Some("the queue pattern must be at most 255 bytes")
        } else if pattern.contains(':') {
            Some("the queue pattern must not contain ':' (no queue name has one)")
        } else if pattern.chars().any(char::is_control) {
            Some("the queue pattern must not contain control characters")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(QueueError::InvalidScope {
                scope: format!("enqueue:{pattern}"),
                reason,
            }),
            None => Ok(Self(pattern)),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `queue` matches the whole pattern.
    ///
    /// One pass over the name that, on a mismatch after a `*`, resumes just
    /// after the last `*` with that star swallowing one more character.
    /// Only the last star is ever revisited (whatever an earlier star could
    /// absorb, the later one can too), so there is no recursion and no
    /// exponential blow-up: at worst pattern length × name length steps,
    /// both at most 255, and one step per character for the common shapes
    /// (`*`, `emails-*`, exact names).
    pub fn matches(&self, queue: &str) -> bool {
        let pattern: Vec<char> = self.0.chars().collect();
        let name: Vec<char> = queue.chars().collect();
        let (mut p, mut n) = (0, 0);
        // (index of the last star seen, name index it currently covers up to)
        let mut resume: Option<(usize, usize)> = None;
        while n < name.len() {
            match pattern.get(p) {
                Some('*') => {
                    resume = Some((p, n));
                    p += 1;
                }
                Some(&c) if c == '?' || c == name[n] => {
                    p += 1;
                    n += 1;
                }
                _ => match resume {
                    Some((star, covered)) => {
                        resume = Some((star, covered + 1));
                        p = star + 1;
                        n = covered + 1;
                    }
                    None => return false,
                },
            }
        }
        pattern[p..].iter().all(|&c| c == '*')
    }
}

impl FromStr for QueueGlob {
    type Err = QueueError;

    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl fmt::Display for QueueGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(pattern: &str) -> QueueGlob {
        QueueGlob::new(pattern).unwrap()
    }

    #[test]
    fn glob_matching_table() {
        let table = [
            ("*", "", true),
            ("*", "emails", true),
            ("emails", "emails", true),
            ("emails", "email", false),
            ("emails", "emails2", false),
            ("emails-*", "emails-", true),
            ("emails-*", "emails-eu", true),
            ("emails-*", "emails", false),
            ("*-eu", "emails-eu", true),
            ("*-eu", "emails-us", false),
            ("*-eu", "-eu", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "abbc", false),
            ("?", "é", true),
            ("??", "é", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("a*b", "abab", true),
            ("a*b", "abba", false),
            ("*a*", "banana", true),
            ("**", "x", true),
            ("*?", "", false),
            ("*?", "x", true),
            ("{t1}*", "{t1}orders", true),
            ("{t1}*", "{t2}orders", false),
            ("{t1}*", "t1orders", false),
            ("[ab]", "a", false),
            ("[ab]", "[ab]", true),
            ("a.c", "abc", false),
            ("Emails", "emails", false),
        ];
        for (pattern, queue, want) in table {
            assert_eq!(
                glob(pattern).matches(queue),
                want,
                "{pattern:?} vs {queue:?}"
            );
        }
    }

    #[test]
    fn pathological_patterns_stay_cheap() {
        let name = "a".repeat(255);
        let pattern = format!("{}b", "*a".repeat(100));
        assert!(!glob(&pattern).matches(&name));
        assert!(glob(&"*a".repeat(100)).matches(&name));
    }

    #[test]
    fn globs_are_checked() {
        for bad in ["", "a:b", ":", "a\nb", "a\u{7f}"] {
            let err = QueueGlob::new(bad).unwrap_err();
            assert!(
                matches!(err, QueueError::InvalidScope { .. }),
                "{bad:?}: {err}"
            );
        }
        assert!(QueueGlob::new("x".repeat(255)).is_ok());
        assert!(QueueGlob::new("x".repeat(256)).is_err());
        assert_eq!(glob("emails-*").as_str(), "emails-*");
    }

    #[test]
    fn scopes_round_trip_through_text_and_serde() {
        for text in [
            "read",
            "admin",
            "enqueue:*",
            "enqueue:emails-*",
            "enqueue:{t1}?x",
        ] {
            let scope: Scope = text.parse().unwrap();
            assert_eq!(scope.to_string(), text);
            let json = serde_json::to_string(&scope).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope);
        }
    }

    #[test]
    fn bad_scopes_are_refused() {
        for bad in [
            "",
            "root",
            "Read",
            "read ",
            "enqueue",
            "enqueue:",
            "enqueue:a:b",
            "enqueue:emails:*",
            "enqueue:a\tb",
        ] {
            let err = bad.parse::<Scope>().unwrap_err();
            assert!(
                matches!(err, QueueError::InvalidScope { .. }),
                "{bad:?}: {err}"
            );
        }
        assert!(serde_json::from_str::<Scope>("\"enqueue:a:b\"").is_err());
    }

    #[test]
    fn permissions() {
        let enqueue: Scope = "enqueue:emails-*".parse().unwrap();
        assert!(enqueue.permits_enqueue("emails-eu"));
        assert!(!enqueue.permits_enqueue("sms"));
        assert!(!enqueue.permits_read());
        assert!(!enqueue.permits_admin());
        assert!(Scope::Read.permits_read());
        assert!(!Scope::Read.permits_enqueue("emails-eu"));
        assert!(!Scope::Read.permits_admin());
        assert!(Scope::Admin.permits_enqueue("anything"));
        assert!(Scope::Admin.permits_read());
        assert!(Scope::Admin.permits_admin());
    }
}

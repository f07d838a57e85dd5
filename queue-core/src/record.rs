//! A job hash read back for people: tolerant of whatever a foreign client
//! (Node, Python, Elixir, a hand-written script) may have stored.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

/// One job as stored in its Redis hash, decoded for display.
///
/// Nothing here fails on bad data: a field that does not parse is kept as
/// its raw text (a JSON string) and named in [`malformed`](Self::malformed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    /// The job id.
    pub id: String,
    /// The job name.
    pub name: String,
    /// The payload.
    pub data: Value,
    /// The stored options (BullMQ's abbreviated keys, as written).
    pub opts: Value,
    /// Last reported progress, if any.
    pub progress: Option<Value>,
    /// The handler's result, once completed.
    pub returnvalue: Option<Value>,
    /// Creation time, ms since the epoch.
    pub timestamp: Option<u64>,
    /// Relative delay in ms (BullMQ's `delay` field).
    pub delay: Option<u64>,
    /// Priority (0 = none).
    pub priority: Option<u64>,
    /// When the last attempt started, ms since the epoch.
    pub processed_on: Option<u64>,
    /// When the job finished, ms since the epoch.
    pub finished_on: Option<u64>,
    /// Attempts finished so far (`atm`, or the legacy `attemptsMade`).
    pub attempts_made: u64,
    /// Attempts started so far (`ats`).
    pub attempts_started: u64,
    /// Total attempts allowed (`opts.attempts`, at least 1).
    pub max_attempts: u64,
    /// Times the job was recovered after its worker stalled (`stc`).
    pub stalled_count: u64,
    /// Error message of the last failed attempt.
    pub failed_reason: Option<String>,
    /// Error stacks of failed attempts, oldest first.
    pub stacktrace: Vec<String>,
    /// Full key of the flow parent, if any.
    pub parent_key: Option<String>,
    /// The job scheduler that produced this job, if any (`rjk`).
    pub scheduler_id: Option<String>,
    /// Deduplication id, if any (`deid`).
    pub deduplication_id: Option<String>,
    /// Name of the worker that last processed it (`pb`).
    pub processed_by: Option<String>,
    /// A failure waiting to be applied when a worker picks the job (`defa`).
    pub deferred_failure: Option<String>,
    /// Fields whose stored text did not decode (kept raw above).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub malformed: Vec<&'static str>,
}

impl JobRecord {
    /// Decodes a job hash (`HGETALL P:Q:<id>`); `None` when the hash is
    /// empty (no such job).
    pub fn from_hash(id: &str, mut hash: HashMap<String, String>) -> Option<Self> {
        if hash.is_empty() {
            return None;
        }
        let mut malformed = Vec::new();
        let mut json = |field: &'static str, hash: &mut HashMap<String, String>| {
            hash.remove(field)
                .map(|raw| match serde_json::from_str(&raw) {
                    Ok(value) => value,
                    Err(_) => {
                        malformed.push(field);
                        Value::String(raw)
                    }
                })
        };
        let data = json("data", &mut hash).unwrap_or_else(|| Value::Object(Default::default()));
        let opts = json("opts", &mut hash).unwrap_or_else(|| Value::Object(Default::default()));
        let progress = json("progress", &mut hash);
        let returnvalue = json("returnvalue", &mut hash);
        let stacktrace = match json("stacktrace", &mut hash) {
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect(),
            Some(Value::String(raw)) => vec![raw],
            _ => Vec::new(),
        };
        let num = |field: &str| hash.get(field).and_then(|v| parse_number(v));
        let text = |field: &str| hash.get(field).filter(|v| !v.is_empty()).cloned();
        let max_attempts = opts
            .get("attempts")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .max(1);
        Some(Self {
            id: id.to_string(),
            name: hash.get("name").cloned().unwrap_or_default(),
            timestamp: num("timestamp"),
            delay: num("delay"),
            priority: num("priority"),
            processed_on: num("processedOn"),
            finished_on: num("finishedOn"),
            attempts_made: num("atm").or_else(|| num("attemptsMade")).unwrap_or(0),
            attempts_started: num("ats").unwrap_or(0),
            stalled_count: num("stc").or_else(|| num("stalledCounter")).unwrap_or(0),
            max_attempts,
            failed_reason: text("failedReason"),
            parent_key: text("parentKey"),
            scheduler_id: text("rjk"),
            deduplication_id: text("deid"),
            processed_by: text("pb"),
            deferred_failure: text("defa"),
            data,
            opts,
            progress,
            returnvalue,
            stacktrace,
            malformed,
        })
    }
}

/// Reads an integer as Node's `parseInt` would for the values BullMQ
/// writes (plain integers; tolerate a fractional part written by Lua).
fn parse_number(raw: &str) -> Option<u64> {
    raw.parse::<u64>().ok().or_else(|| {
        raw.parse::<f64>()
            .ok()
            .filter(|f| *f >= 0.0)
            .map(|f| f as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_hash_is_no_job() {
        assert_eq!(JobRecord::from_hash("1", HashMap::new()), None);
    }

    #[test]
    fn decodes_what_node_writes() {
        let record = JobRecord::from_hash(
            "7",
            hash(&[
                ("name", "send"),
                ("data", r#"{"to":"a@b"}"#),
                (
                    "opts",
                    r#"{"attempts":3,"backoff":{"type":"fixed","delay":1000}}"#,
                ),
                ("timestamp", "1795395113304"),
                ("delay", "0"),
                ("priority", "0"),
                ("atm", "2"),
                ("ats", "3"),
                ("failedReason", "boom"),
                ("stacktrace", r#"["Error: boom\n    at x","Error: boom"]"#),
                ("progress", "50"),
            ]),
        )
        .unwrap();
        assert_eq!(record.name, "send");
        assert_eq!(record.data["to"], "a@b");
        assert_eq!(record.max_attempts, 3);
        assert_eq!(record.attempts_made, 2);
        assert_eq!(record.attempts_started, 3);
        assert_eq!(record.stacktrace.len(), 2);
        assert_eq!(record.progress, Some(Value::from(50)));
        assert_eq!(record.failed_reason.as_deref(), Some("boom"));
        assert!(record.malformed.is_empty());
    }

    #[test]
    fn malformed_fields_are_kept_raw_and_named() {
        let record = JobRecord::from_hash(
            "x",
            hash(&[("name", "n"), ("data", "{not json"), ("attemptsMade", "4")]),
        )
        .unwrap();
        assert_eq!(record.data, Value::String("{not json".into()));
        assert_eq!(record.malformed, vec!["data"]);
        assert_eq!(record.attempts_made, 4, "legacy attemptsMade is read");
        assert_eq!(record.max_attempts, 1, "no attempts option means one try");
    }
}

//! A schedule as people declare it (config file, API, CLI) and its checks.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::time::{self, Timing};
use crate::error::{QueueError, Result};
use crate::names::{QueueName, validate_job_name};
use crate::producer::JobOptions;

/// Longest schedule id, in bytes.
pub const MAX_SCHEDULE_ID_BYTES: usize = 128;
/// Largest template payload, serialized, in bytes.
pub const MAX_TEMPLATE_DATA_BYTES: usize = 512 * 1024;

/// What to do with ticks that passed while nothing could run them (every
/// scheduler and worker down, Redis down): BullMQ itself runs the one
/// pending run late and carries on from now, so the ticks in between never
/// run.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissedTicks {
    /// Leave them out, with a log line saying how many and when (BullMQ's
    /// behaviour, the default).
    #[default]
    Skip,
    /// Add one job per missed tick (at most `catch_up_max` per outage, the
    /// latest ones), with id `catchup-<schedule>-<tick ms>`.
    CatchUp,
}

impl fmt::Display for MissedTicks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Skip => "skip",
            Self::CatchUp => "catch-up",
        })
    }
}

/// A schedule's definition: BullMQ's `upsertJobScheduler(id, repeatOpts,
/// {name, data, opts})` in one object, with BullMQ's field names, plus
/// Drover's missed-tick policy. The same shape is the API's request body,
/// a `[[schedule]]` table of the config file (which adds `id` and `queue`)
/// and `drover schedule set --file`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// The schedule's id; only in the config file (the API takes it from
    /// the path, and accepts it here only if it is the same).
    #[serde(default, skip_serializing)]
    pub id: Option<String>,
    /// The queue; only in the config file, as `id`.
    #[serde(default, skip_serializing)]
    pub queue: Option<String>,
    /// A cron pattern: 5 fields, or 6 with leading seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Or: run every this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<u64>,
    /// IANA time zone of the cron pattern; `UTC` when unset (Node's BullMQ
    /// would use its process's local zone, so Drover always writes one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// No run before this: ms since the epoch, or an RFC 3339 date.
    #[serde(
        default,
        alias = "start_date",
        deserialize_with = "date_ms",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub start_date: Option<u64>,
    /// No run after this: ms since the epoch, or an RFC 3339 date.
    #[serde(
        default,
        alias = "end_date",
        deserialize_with = "date_ms",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub end_date: Option<u64>,
    /// Stop after this many runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Run once as soon as the schedule is created (cron only), then on
    /// the pattern.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub immediately: bool,
    /// Name of the jobs it adds; the schedule id when unset (as BullMQ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Payload of every job it adds.
    #[serde(default = "empty_object", skip_serializing_if = "is_empty_object")]
    pub data: Value,
    /// Options of every job it adds (attempts, backoff, priority,
    /// retention; not `jobId`, `delay` or `deduplication`, which the
    /// schedule decides).
    #[serde(default, skip_serializing_if = "is_default_opts")]
    pub opts: JobOptions,
    /// What to do with ticks missed while nothing ran.
    #[serde(default, skip_serializing_if = "is_skip")]
    pub missed: MissedTicks,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

fn is_empty_object(v: &Value) -> bool {
    v.as_object().is_some_and(serde_json::Map::is_empty)
}

fn is_default_opts(o: &JobOptions) -> bool {
    *o == JobOptions::default()
}

fn is_skip(m: &MissedTicks) -> bool {
    *m == MissedTicks::Skip
}

/// A date as ms since the epoch or an RFC 3339 string.
fn date_ms<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Date {
        Ms(u64),
        Text(String),
    }
    match Option::<Date>::deserialize(d)? {
        None => Ok(None),
        Some(Date::Ms(ms)) => Ok(Some(ms)),
        Some(Date::Text(text)) => chrono::DateTime::parse_from_rfc3339(&text)
            .ok()
            .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
            .map(Some)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{text:?} is not a date: give ms since the epoch or RFC 3339 such as 2027-01-31T08:00:00Z"
                ))
            }),
    }
}

/// A checked schedule: where, which, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    queue: QueueName,
    id: String,
    spec: ScheduleSpec,
    timing: Timing,
}

impl Schedule {
    /// Checks `spec` as the schedule `id` of `queue`; nothing is written
    /// for a schedule that fails here. (An end date in the past is refused
    /// when the schedule is applied, not here.)
    pub fn new(queue: QueueName, id: &str, mut spec: ScheduleSpec) -> Result<Self> {
        validate_schedule_id(id)?;
        let invalid = |msg: String| Err(QueueError::InvalidSchedule(msg));
        if spec.id.as_deref().is_some_and(|given| given != id) {
            return invalid(format!(
                "the body names schedule {:?} but the path names {id:?}",
                spec.id.as_deref().unwrap_or_default()
            ));
        }
        if spec
            .queue
            .as_deref()
            .is_some_and(|given| given != queue.as_str())
        {
            return invalid(format!(
                "the body names queue {:?} but the path names {:?}",
                spec.queue.as_deref().unwrap_or_default(),
                queue.as_str()
            ));
        }
        spec.id = None;
        spec.queue = None;
        let timing = match (&spec.pattern, spec.every) {
            (Some(_), Some(_)) => {
                return invalid("give either pattern or every, not both".into());
            }
            (None, None) => {
                return invalid(
                    "give pattern (a cron pattern) or every (an interval in ms)".into(),
                );
            }
            (Some(pattern), None) => {
                let tz = spec.tz.get_or_insert_with(|| "UTC".to_string()).clone();
                Timing::Cron {
                    pattern: pattern.trim().to_string(),
                    tz,
                }
            }
            (None, Some(every)) => {
                if spec.tz.is_some() {
                    return invalid("tz applies to cron patterns only, not to every".into());
                }
                if spec.immediately {
                    return invalid(
                        "immediately applies to cron patterns only; an every schedule runs at once anyway".into(),
                    );
                }
                Timing::Every { every_ms: every }
            }
        };
        time::validate(&timing).map_err(QueueError::InvalidSchedule)?;
        if spec.immediately && spec.start_date.is_some() {
            return invalid("give either immediately or startDate, not both".into());
        }
        if let (Some(start), Some(end)) = (spec.start_date, spec.end_date) {
            if end <= start {
                return invalid("endDate must be after startDate".into());
            }
        }
        if spec.limit == Some(0) {
            return invalid("limit must be at least 1".into());
        }
        if spec.missed == MissedTicks::CatchUp && spec.limit.is_some() {
            return invalid(
                "missed = catch-up cannot be combined with limit (caught-up runs are not counted by BullMQ)".into(),
            );
        }
        if let Some(name) = &spec.name {
            validate_job_name(name)?;
        }
        if spec.data.to_string().len() > MAX_TEMPLATE_DATA_BYTES {
            return invalid(format!(
                "data must be at most {MAX_TEMPLATE_DATA_BYTES} bytes as JSON"
            ));
        }
        let o = &spec.opts;
        for (set, what) in [
            (o.job_id.is_some(), "jobId (each run gets its own id)"),
            (
                o.delay.is_some(),
                "delay (the schedule decides when a job runs)",
            ),
            (o.deduplication.is_some(), "deduplication"),
        ] {
            if set {
                return invalid(format!("opts may not set {what}"));
            }
        }
        // The rest of the options are checked as for any job.
        crate::producer::NewJob {
            name: spec.job_name_or(id).to_string(),
            data: Value::Null,
            opts: spec.opts.clone(),
        }
        .validate()?;
        Ok(Self {
            queue,
            id: id.to_string(),
            spec,
            timing,
        })
    }

    /// The queue it adds jobs to.
    pub fn queue(&self) -> &QueueName {
        &self.queue
    }

    /// Its id (BullMQ's job-scheduler id).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The checked definition (`tz` filled in for cron patterns).
    pub fn spec(&self) -> &ScheduleSpec {
        &self.spec
    }

    /// When it fires.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// The name of the jobs it adds.
    pub fn job_name(&self) -> &str {
        self.spec.job_name_or(&self.id)
    }

    /// A digest of the definition: equal definitions, equal digests.
    pub fn fingerprint(&self) -> String {
        // serde_json's maps are sorted, so equal values print alike.
        let canonical = serde_json::to_value(&self.spec)
            .map(|v| v.to_string())
            .unwrap_or_default();
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }
}

impl ScheduleSpec {
    fn job_name_or<'a>(&'a self, id: &'a str) -> &'a str {
        self.name.as_deref().unwrap_or(id)
    }
}

/// Checks a schedule id: 1 to 128 ASCII letters, digits, `.`, `_` or `-`.
/// (BullMQ's own rule is looser, but its run ids are `repeat:<id>:<ms>`,
/// which a `:` in the id would break, and ids end up in URLs and logs.)
pub fn validate_schedule_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_SCHEDULE_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(QueueError::InvalidSchedule(format!(
            "schedule id {id:?} must be 1 to {MAX_SCHEDULE_ID_BYTES} ASCII letters, digits, '.', '_' or '-'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schedule(spec: Value) -> Result<Schedule> {
        let spec: ScheduleSpec =
            serde_json::from_value(spec).map_err(|e| QueueError::InvalidSchedule(e.to_string()))?;
        Schedule::new(QueueName::new("q").unwrap(), "s-1", spec)
    }

    #[test]
    fn cron_gets_utc_unless_a_zone_is_given() {
        let s = schedule(json!({"pattern": "*/5 * * * * *"})).unwrap();
        assert_eq!(s.spec().tz.as_deref(), Some("UTC"));
        let s = schedule(json!({"pattern": "0 0 * * *", "tz": "Europe/Berlin"})).unwrap();
        assert_eq!(s.spec().tz.as_deref(), Some("Europe/Berlin"));
        assert_eq!(s.job_name(), "s-1");
    }

    #[test]
    fn dates_take_ms_or_rfc3339() {
        let s = schedule(json!({"every": 1000, "startDate": "2027-01-01T00:00:00Z",
                                "end_date": 1_900_000_000_000u64}))
        .unwrap();
        assert_eq!(s.spec().start_date, Some(1_798_761_600_000));
        assert_eq!(s.spec().end_date, Some(1_900_000_000_000));
        assert!(schedule(json!({"every": 1000, "startDate": "tomorrow"})).is_err());
    }

    #[test]
    fn contradictions_are_refused_with_a_reason() {
        for (spec, needle) in [
            (json!({}), "give pattern"),
            (json!({"pattern": "* * * * *", "every": 5}), "not both"),
            (json!({"every": 5, "tz": "UTC"}), "cron patterns only"),
            (
                json!({"pattern": "* * * * *", "immediately": true, "startDate": 5}),
                "immediately or startDate",
            ),
            (
                json!({"every": 5, "startDate": 10, "endDate": 10}),
                "after startDate",
            ),
            (json!({"every": 5, "limit": 0}), "at least 1"),
            (
                json!({"every": 5, "limit": 3, "missed": "catch-up"}),
                "catch-up",
            ),
            (json!({"every": 5, "opts": {"jobId": "x"}}), "jobId"),
            (json!({"every": 5, "opts": {"delay": 10}}), "delay"),
            (
                json!({"every": 5, "opts": {"attempts": 100_000}}),
                "attempts",
            ),
            (json!({"every": 5, "name": ""}), "empty"),
            (json!({"every": 5, "id": "other"}), "path names"),
        ] {
            let err = schedule(spec.clone()).unwrap_err().to_string();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn ids_are_url_and_key_safe() {
        assert!(validate_schedule_id("warm.popular_templates-30m").is_ok());
        for bad in ["", "a:b", "a b", "é", &"x".repeat(129)] {
            assert!(validate_schedule_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fingerprint_follows_the_definition() {
        let a = schedule(json!({"every": 1000, "data": {"a": 1, "b": 2}})).unwrap();
        let b = schedule(json!({"data": {"b": 2, "a": 1}, "every": 1000})).unwrap();
        let c = schedule(json!({"every": 2000, "data": {"a": 1, "b": 2}})).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }
}

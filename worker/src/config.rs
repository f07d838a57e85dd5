//! The `[worker]` table of the config file, and its checked form.

use std::collections::BTreeMap;
use std::time::Duration;

use queue_core::producer::{Retention, RetentionPolicy};
use queue_core::{QueueName, RateLimit};
use serde::Deserialize;

/// Worker settings as written in the config file (all optional).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Queues to consume.
    pub queues: Vec<String>,
    /// Jobs processed at once per queue, unless the queue says otherwise.
    pub concurrency: usize,
    /// Longest one attempt may run before it is cancelled and failed
    /// (retried per the job's options); unset: no limit.
    pub job_timeout_ms: Option<u64>,
    /// At shutdown, how long in-flight jobs may take to finish before they
    /// are handed back to the queue.
    pub shutdown_timeout_ms: u64,
    /// How long a job's lock lasts between renewals (renewed every half).
    pub lock_duration_ms: u64,
    /// How often stalled jobs are looked for.
    pub stalled_interval_ms: u64,
    /// Stalls allowed before a job fails instead of being retried.
    pub max_stalled_count: u32,
    /// How often the worker writes its heartbeat.
    pub heartbeat_interval_ms: u64,
    /// Whether the worker adopts the concurrency the autoscaler wants for
    /// its queues (policies with the concurrency actuator).
    pub follow_autoscaler: bool,
    /// How often it reads what the autoscaler wants.
    pub autoscaler_poll_ms: u64,
    /// What is kept of completed jobs that set no `removeOnComplete` of
    /// their own, in BullMQ's forms: `false` (all), `true` (none), a count
    /// (the newest N) or `{ age = <seconds>, count = <n> }`.
    pub remove_on_complete: Retention,
    /// The same for jobs that failed for good (`removeOnFail`).
    pub remove_on_fail: Retention,
    /// Per-queue overrides, `[worker.queue.<name>]`.
    pub queue: BTreeMap<String, QueueOverrides>,
}

/// Completed jobs kept by default: one day, at most 10,000 per queue, so a
/// busy queue cannot fill Redis with finished jobs (BullMQ keeps them all).
pub const DEFAULT_KEEP_COMPLETED: Retention = Retention::Policy(RetentionPolicy {
    age: Some(24 * 3600),
    count: Some(10_000),
});

/// Failed jobs kept by default: 30 days, at most 100,000 per queue; long
/// enough to look into them and retry.
pub const DEFAULT_KEEP_FAILED: Retention = Retention::Policy(RetentionPolicy {
    age: Some(30 * 24 * 3600),
    count: Some(100_000),
});

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            queues: Vec::new(),
            concurrency: 1,
            job_timeout_ms: None,
            shutdown_timeout_ms: 30_000,
            lock_duration_ms: 30_000,
            stalled_interval_ms: 30_000,
            max_stalled_count: 1,
            heartbeat_interval_ms: 5_000,
            follow_autoscaler: true,
            autoscaler_poll_ms: 1_000,
            remove_on_complete: DEFAULT_KEEP_COMPLETED,
            remove_on_fail: DEFAULT_KEEP_FAILED,
            queue: BTreeMap::new(),
        }
    }
}

/// Settings for one queue that differ from the worker's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueOverrides {
    /// Jobs processed at once.
    pub concurrency: Option<usize>,
    /// Per-attempt timeout.
    pub job_timeout_ms: Option<u64>,
    /// Queue-wide rate limit: at most this many jobs start...
    pub rate_limit_max: Option<u64>,
    /// ...per this many ms (both must be set).
    pub rate_limit_per_ms: Option<u64>,
}

/// Checked worker settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSettings {
    /// One entry per consumed queue.
    pub queues: Vec<QueueSettings>,
    /// Grace period for in-flight jobs at shutdown.
    pub shutdown_timeout: Duration,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// How often the autoscaler's desired concurrency is read; `None`: it
    /// is not followed.
    pub autoscaler_poll: Option<Duration>,
}

/// Checked settings of one consumed queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// The queue.
    pub name: QueueName,
    /// Jobs processed at once.
    pub concurrency: usize,
    /// Per-attempt timeout.
    pub job_timeout: Option<Duration>,
    /// Lock duration.
    pub lock_duration: Duration,
    /// Stalled-check period.
    pub stalled_interval: Duration,
    /// Stalls allowed.
    pub max_stalled_count: u32,
    /// Queue-wide rate limit.
    pub rate_limit: Option<RateLimit>,
    /// What is kept of completed jobs (unless a job says otherwise).
    pub keep_completed: Retention,
    /// What is kept of failed jobs (unless a job says otherwise).
    pub keep_failed: Retention,
}

/// The `[supervise]` table: `drover worker --supervise`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SuperviseConfig {
    /// Worker processes per queue until the autoscaler says otherwise (and
    /// for queues it does not scale with the process actuator).
    pub processes: u32,
    /// How often the autoscaler's desired count is read.
    pub poll_interval_ms: u64,
    /// How long a process being drained may take to finish its jobs
    /// before it hands the rest back (its shutdown timeout).
    pub drain_timeout_ms: u64,
}

impl Default for SuperviseConfig {
    fn default() -> Self {
        Self {
            processes: 1,
            poll_interval_ms: 500,
            drain_timeout_ms: 3_600_000,
        }
    }
}

impl SuperviseConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.processes > 1_000 {
            return Err("[supervise] processes must be at most 1000".into());
        }
        if !(50..=60_000).contains(&self.poll_interval_ms) {
            return Err("[supervise] poll_interval_ms must be 50 to 60000".into());
        }
        if self.drain_timeout_ms == 0 {
            return Err("[supervise] drain_timeout_ms must be above 0".into());
        }
        Ok(())
    }
}

/// Most jobs one worker process may run at once on one queue.
pub const MAX_CONCURRENCY: usize = 10_000;

impl WorkerConfig {
    /// Checks the settings; the message says what to fix.
    pub fn resolve(&self) -> Result<WorkerSettings, String> {
        if self.queues.is_empty() {
            return Err("no queue to consume: pass --queue or set worker.queues".into());
        }
        for name in self.queue.keys() {
            if !self.queues.contains(name) {
                return Err(format!(
                    "worker.queue.{name} configures a queue this worker does not consume"
                ));
            }
        }
        let check_concurrency = |c: usize, what: &str| {
            if (1..=MAX_CONCURRENCY).contains(&c) {
                Ok(c)
            } else {
                Err(format!(
                    "{what} must be between 1 and {MAX_CONCURRENCY}, not {c}"
                ))
            }
        };
        let positive_ms = |ms: u64, what: &str| {
            if ms == 0 {
                Err(format!("{what} must be greater than 0"))
            } else {
                Ok(Duration::from_millis(ms))
            }
        };
        let lock_duration = positive_ms(self.lock_duration_ms, "lock_duration_ms")?;
        let stalled_interval = positive_ms(self.stalled_interval_ms, "stalled_interval_ms")?;
        let mut queues = Vec::with_capacity(self.queues.len());
        let mut seen = std::collections::HashSet::new();
        for name in &self.queues {
            let queue = QueueName::new(name.as_str()).map_err(|e| e.to_string())?;
            if !seen.insert(queue.clone()) {
                return Err(format!("queue {name:?} is listed twice"));
            }
            let o = self.queue.get(name).cloned().unwrap_or_default();
            let concurrency = check_concurrency(
                o.concurrency.unwrap_or(self.concurrency),
                &format!("concurrency of queue {name:?}"),
            )?;
            let job_timeout = o
                .job_timeout_ms
                .or(self.job_timeout_ms)
                .map(|ms| positive_ms(ms, "job_timeout_ms"))
                .transpose()?;
            let rate_limit = match (o.rate_limit_max, o.rate_limit_per_ms) {
                (None, None) => None,
                (Some(max), Some(per)) if max > 0 && per > 0 => Some(RateLimit {
                    max,
                    per: Duration::from_millis(per),
                }),
                _ => {
                    return Err(format!(
                        "queue {name:?}: rate_limit_max and rate_limit_per_ms must both be set \
                         and greater than 0"
                    ));
                }
            };
            queues.push(QueueSettings {
                name: queue,
                concurrency,
                job_timeout,
                lock_duration,
                stalled_interval,
                max_stalled_count: self.max_stalled_count,
                rate_limit,
                keep_completed: self.remove_on_complete,
                keep_failed: self.remove_on_fail,
            });
        }
        Ok(WorkerSettings {
            queues,
            shutdown_timeout: Duration::from_millis(self.shutdown_timeout_ms),
            heartbeat_interval: positive_ms(self.heartbeat_interval_ms, "heartbeat_interval_ms")?,
            autoscaler_poll: if self.follow_autoscaler {
                Some(positive_ms(self.autoscaler_poll_ms, "autoscaler_poll_ms")?)
            } else {
                None
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> WorkerConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn per_queue_overrides_apply() {
        let settings = config(
            r#"
            queues = ["emails", "reports"]
            concurrency = 4
            job_timeout_ms = 1000
            [queue.reports]
            concurrency = 1
            rate_limit_max = 10
            rate_limit_per_ms = 1000
            "#,
        )
        .resolve()
        .unwrap();
        assert_eq!(settings.queues[0].concurrency, 4);
        assert_eq!(settings.queues[1].concurrency, 1);
        assert_eq!(settings.queues[1].job_timeout, Some(Duration::from_secs(1)));
        assert_eq!(
            settings.queues[1].rate_limit,
            Some(RateLimit {
                max: 10,
                per: Duration::from_secs(1)
            })
        );
    }

    #[test]
    fn mistakes_are_explained() {
        let cases = [
            ("queues = []", "no queue"),
            ("queues = [\"a\"]\nconcurrency = 0", "between 1 and"),
            ("queues = [\"a:b\"]", "must not contain ':'"),
            ("queues = [\"a\", \"a\"]", "listed twice"),
            (
                "queues = [\"a\"]\n[queue.b]\nconcurrency = 2",
                "does not consume",
            ),
            (
                "queues = [\"a\"]\n[queue.a]\nrate_limit_max = 5",
                "must both be set",
            ),
        ];
        for (text, expected) in cases {
            let err = config(text).resolve().unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn finished_jobs_are_bounded_unless_told_otherwise() {
        let settings = config("queues = [\"a\"]").resolve().unwrap();
        assert_eq!(settings.queues[0].keep_completed, DEFAULT_KEEP_COMPLETED);
        assert_eq!(settings.queues[0].keep_failed, DEFAULT_KEEP_FAILED);
        let settings = config(
            "queues = [\"a\"]\nremove_on_complete = false\nremove_on_fail = { age = 60, count = 5 }",
        )
        .resolve()
        .unwrap();
        assert_eq!(settings.queues[0].keep_completed, Retention::Remove(false));
        assert_eq!(
            settings.queues[0].keep_failed,
            Retention::Policy(RetentionPolicy {
                age: Some(60),
                count: Some(5)
            })
        );
        assert_eq!(
            config("queues = [\"a\"]\nremove_on_complete = 100")
                .resolve()
                .unwrap()
                .queues[0]
                .keep_completed,
            Retention::KeepLast(100)
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<WorkerConfig>("concurency = 3").is_err());
    }
}

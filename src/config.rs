//! The binary's one typed config, layered: defaults < TOML file <
//! environment < flags. Sub-tables belong to the library crates.

use std::fs;

use std::path::PathBuf;

use drover_api::{ApiConfig, ApiSettings};
use drover_dashboard::{DashboardConfig, DashboardSettings};
use drover_scheduler::SchedulerConfig;
use drover_scheduler::autoscaler::AutoscalerConfig;
use drover_worker::builtin::{CacheWarmConfig, HttpHandlerConfig};
use drover_worker::{SuperviseConfig, WorkerConfig};
use queue_core::schedule::{Schedule, ScheduleSpec};
use queue_core::store::{StoreConfig, StoreSettings};
use queue_core::workflow::{Workflow, WorkflowDefinition};
use queue_core::{QueueName, RedisConfig, RedisSettings, TlsPem};
use serde::Deserialize;

use crate::cli::{GlobalArgs, LogFormat, WorkerArgs};
use crate::exit::UsageError;

/// Everything a config file may say.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// Local state: the SQLite store, `drover dev`'s redis-server data.
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) redis: RedisConfig,
    pub(crate) store: StoreConfig,
    pub(crate) api: ApiConfig,
    pub(crate) dashboard: DashboardConfig,
    pub(crate) worker: WorkerConfig,
    pub(crate) handler: HandlerConfig,
    pub(crate) scheduler: SchedulerConfig,
    /// `[autoscaler]`: the control loop of `drover serve`.
    pub(crate) autoscaler: AutoscalerConfig,
    /// `[supervise]`: `drover worker --supervise`.
    pub(crate) supervise: SuperviseConfig,
    /// `[[schedule]]` entries: periodic jobs the scheduler keeps in Redis.
    pub(crate) schedule: Vec<ScheduleSpec>,
    /// `[[workflow]]` entries: workflow types the scheduler registers.
    pub(crate) workflow: Vec<WorkflowDefinition>,
    pub(crate) metrics: MetricsConfig,
    pub(crate) log: LogConfig,
    /// Whether a Redis was named (flag, environment or file) rather than
    /// left at its default; `drover dev` starts its own Redis otherwise.
    #[serde(skip)]
    pub(crate) redis_url_explicit: bool,
}

/// Settings of the built-in handlers.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct HandlerConfig {
    pub(crate) http: HttpHandlerConfig,
    pub(crate) cache_warm: CacheWarmConfig,
}

/// Where `/metrics` is served.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct MetricsConfig {
    pub(crate) addr: Option<String>,
}

/// Logging.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct LogConfig {
    /// `text` or `json`.
    pub(crate) format: Option<LogFormat>,
    /// A tracing filter (`info`, `drover=debug,warn`); `RUST_LOG` wins.
    pub(crate) filter: Option<String>,
}

impl FileConfig {
    /// Reads the config file (if any) and applies the global flags and
    /// environment on top.
    pub(crate) fn load(global: &GlobalArgs) -> Result<Self, UsageError> {
        let mut config = match &global.config {
            None => Self::default(),
            Some(path) => {
                let text = fs::read_to_string(path).map_err(|e| {
                    UsageError(format!("cannot read config file {}: {e}", path.display()))
                })?;
                toml::from_str(&text).map_err(|e| {
                    UsageError(format!(
                        "config file {}: {}",
                        path.display(),
                        e.message().replace('\n', " ")
                    ))
                })?
            }
        };
        config.redis_url_explicit = config.redis != RedisConfig::default()
            && (config.redis.url != RedisConfig::default().url
                || !config.redis.cluster_nodes.is_empty());
        if let Some(url) = &global.redis_url {
            config.redis.url = url.clone();
            config.redis_url_explicit = true;
        }
        if !global.redis_cluster_nodes.is_empty() {
            config.redis.cluster_nodes = global
                .redis_cluster_nodes
                .iter()
                .filter(|n| !n.is_empty())
                .cloned()
                .collect();
            config.redis_url_explicit = true;
        }
        if let Some(prefix) = &global.prefix {
            config.redis.prefix = prefix.clone();
        }
        if let Some(format) = global.log_format {
            config.log.format = Some(format);
        }
        if let Some(url) = &global.database_url {
            config.store.url = Some(url.clone()).filter(|u| !u.is_empty());
        }
        if let Some(url) = &global.migrate_url {
            config.store.migrate_url = Some(url.clone()).filter(|u| !u.is_empty());
        }
        if let Some(dir) = &global.data_dir {
            config.data_dir = Some(dir.clone());
        }
        Ok(config)
    }

    /// The data directory (default `.drover`).
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(".drover"))
    }

    /// The checked store settings.
    pub(crate) fn store_settings(&self) -> Result<StoreSettings, UsageError> {
        self.store
            .resolve(&self.data_dir())
            .map_err(|e| UsageError(e.to_string()))
    }

    /// The checked `[api]` settings.
    pub(crate) fn api_settings(&self) -> Result<ApiSettings, UsageError> {
        self.api.resolve().map_err(UsageError)
    }

    /// The checked `[dashboard]` settings.
    pub(crate) fn dashboard_settings(&self) -> Result<DashboardSettings, UsageError> {
        self.dashboard.resolve().map_err(UsageError)
    }

    /// The checked `[[schedule]]` entries; every entry names its `id` and
    /// `queue`, and no two the same pair.
    pub(crate) fn schedules(&self) -> Result<Vec<Schedule>, UsageError> {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::with_capacity(self.schedule.len());
        for (i, spec) in self.schedule.iter().enumerate() {
            let n = i + 1;
            let (Some(id), Some(queue)) = (spec.id.clone(), spec.queue.clone()) else {
                return Err(UsageError(format!(
                    "[[schedule]] #{n} needs both an id and a queue"
                )));
            };
            let bad = |e: &dyn std::fmt::Display| {
                UsageError(format!("[[schedule]] #{n} ({queue}/{id}): {e}"))
            };
            let name = QueueName::new(queue.as_str()).map_err(|e| bad(&e))?;
            let schedule = Schedule::new(name, &id, spec.clone()).map_err(|e| bad(&e))?;
            if !seen.insert((queue.clone(), id.clone())) {
                return Err(bad(&"declared twice"));
            }
            out.push(schedule);
        }
        self.scheduler.validate().map_err(UsageError)?;
        Ok(out)
    }

    /// The checked `[[workflow]]` entries; each names its `type`, no two
    /// the same.
    pub(crate) fn workflows(&self) -> Result<Vec<Workflow>, UsageError> {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::with_capacity(self.workflow.len());
        for (i, def) in self.workflow.iter().enumerate() {
            let n = i + 1;
            let Some(kind) = def.kind.clone() else {
                return Err(UsageError(format!("[[workflow]] #{n} needs a type")));
            };
            let workflow = Workflow::new(&kind, def.clone())
                .map_err(|e| UsageError(format!("[[workflow]] #{n} ({kind}): {e}")))?;
            if !seen.insert(kind.clone()) {
                return Err(UsageError(format!("[[workflow]] {kind} is declared twice")));
            }
            out.push(workflow);
        }
        Ok(out)
    }

    /// The checked Redis settings.
    pub(crate) fn redis_settings(&self) -> Result<RedisSettings, UsageError> {
        let settings = self
            .redis
            .resolve()
            .map_err(|e| UsageError(e.to_string()))?;
        let tls = &self.redis.tls;
        if !tls.is_set() {
            return Ok(settings);
        }
        let read = |what: &str, path: &Option<PathBuf>| -> Result<Option<Vec<u8>>, UsageError> {
            path.as_ref()
                .map(|p| {
                    fs::read(p)
                        .map_err(|e| UsageError(format!("[redis.tls] {what} {}: {e}", p.display())))
                })
                .transpose()
        };
        let pem = TlsPem {
            ca: read("ca_file", &tls.ca_file)?,
            cert: read("cert_file", &tls.cert_file)?,
            key: read("key_file", &tls.key_file)?,
        };
        settings
            .with_tls(pem)
            .map_err(|e| UsageError(e.to_string()))
    }

    /// Applies `drover worker` flags over the `[worker]` and
    /// `[handler.http]` tables.
    pub(crate) fn apply_worker_flags(&mut self, args: &WorkerArgs) {
        let w = &mut self.worker;
        if !args.queue.is_empty() {
            w.queues = args
                .queue
                .iter()
                .filter(|q| !q.is_empty())
                .cloned()
                .collect();
        }
        set(&mut w.concurrency, args.concurrency);
        if args.job_timeout.is_some() {
            w.job_timeout_ms = args.job_timeout;
        }
        set(&mut w.shutdown_timeout_ms, args.shutdown_timeout);
        set(&mut w.lock_duration_ms, args.lock_duration);
        set(&mut w.stalled_interval_ms, args.stalled_interval);
        set(&mut w.max_stalled_count, args.max_stalled_count);
        let http = &mut self.handler.http;
        if args.url.is_some() {
            http.url = args.url.clone();
        }
        if args.secret.is_some() {
            http.secret = args.secret.clone();
        }
        if args.metrics_addr.is_some() {
            self.metrics.addr = args.metrics_addr.clone();
        }
        set(&mut self.supervise.processes, args.processes);
        set(&mut self.supervise.drain_timeout_ms, args.drain_timeout);
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../deploy/config.example.toml");
        let config: FileConfig = toml::from_str(text).unwrap();
        assert!(config.redis.resolve().is_ok());
        assert!(config.worker.resolve().is_ok());
        let schedules = config.schedules().unwrap();
        let ids: Vec<&str> = schedules.iter().map(|s| s.id()).collect();
        assert_eq!(ids, ["warm-popular-templates", "warm-dashboard-stats"]);
        config.handler.cache_warm.validate().unwrap();
        assert!(config.handler.cache_warm.is_configured());
        let workflows = config.workflows().unwrap();
        assert_eq!(workflows[0].order(), ["fetch", "render", "publish"]);
        let autoscaler = config.autoscaler.resolve().unwrap();
        assert_eq!(autoscaler.queues.len(), 2);
        config.supervise.validate().unwrap();
    }

    #[test]
    fn workflows_are_checked_and_name_their_step() {
        let parse = |text: &str| toml::from_str::<FileConfig>(text).unwrap().workflows();
        let ok = parse(
            "[[workflow]]\ntype = \"etl\"\n[[workflow.steps]]\nid = \"a\"\nqueue = \"q\"\n\
             [[workflow.steps]]\nid = \"b\"\nqueue = \"q\"\ndepends_on = [\"a\"]\n",
        )
        .unwrap();
        assert_eq!(ok[0].order(), ["a", "b"]);
        let err = parse(
            "[[workflow]]\ntype = \"etl\"\n[[workflow.steps]]\nid = \"a\"\nqueue = \"q\"\ndepends_on = [\"z\"]\n",
        )
        .unwrap_err();
        assert!(
            err.0.contains("[[workflow]] #1 (etl)") && err.0.contains("step \"a\""),
            "{}",
            err.0
        );
        let err =
            parse("[[workflow]]\n[[workflow.steps]]\nid = \"a\"\nqueue = \"q\"\n").unwrap_err();
        assert!(err.0.contains("needs a type"), "{}", err.0);
    }

    #[test]
    fn schedules_need_an_id_and_a_queue_and_are_checked() {
        let parse = |text: &str| toml::from_str::<FileConfig>(text).unwrap().schedules();
        let err = parse("[[schedule]]\nqueue = \"q\"\nevery = 5").unwrap_err();
        assert!(err.0.contains("needs both an id and a queue"), "{}", err.0);
        let err =
            parse("[[schedule]]\nid = \"a\"\nqueue = \"q\"\npattern = \"61 * * * *\"").unwrap_err();
        assert!(err.0.contains("[[schedule]] #1 (q/a)"), "{}", err.0);
        let twice = "[[schedule]]\nid = \"a\"\nqueue = \"q\"\nevery = 5\n".repeat(2);
        assert!(parse(&twice).unwrap_err().0.contains("declared twice"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<FileConfig>("[redis]\nurll = \"x\"").is_err());
        assert!(toml::from_str::<FileConfig>("[wroker]").is_err());
    }
}

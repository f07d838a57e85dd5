//! Command-line flags. Names are part of Drover's interface: ops scripts and
//! our own checks use them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Drover: a distributed background job queue on BullMQ's Redis layout.
#[derive(Debug, Parser)]
#[command(name = "drover", version, about, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Config file (TOML); values in it are overridden by the environment
    /// and by flags.
    #[arg(long, global = true, env = "DROVER_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Redis to use: redis://host:port[/db], rediss:// for TLS.
    #[arg(long, global = true, env = "REDIS_URL", value_name = "URL")]
    pub(crate) redis_url: Option<String>,
    /// Redis Cluster seed nodes, comma separated (instead of --redis-url).
    #[arg(
        long,
        global = true,
        env = "DROVER_REDIS_CLUSTER_NODES",
        value_delimiter = ',',
        value_name = "URL,..."
    )]
    pub(crate) redis_cluster_nodes: Vec<String>,
    /// BullMQ key prefix (a {hash tag} is kept verbatim for Redis Cluster).
    #[arg(long, global = true, env = "DROVER_PREFIX", value_name = "PREFIX")]
    pub(crate) prefix: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, env = "DROVER_LOG_FORMAT", value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    /// Durable store: postgres://user@host/db; unset, a SQLite file in the
    /// data directory.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub(crate) database_url: Option<String>,
    /// With `[store] transaction_pooling`: a direct PostgreSQL URL that
    /// `drover migrate` uses instead of the pooler.
    #[arg(
        long,
        global = true,
        env = "DROVER_MIGRATE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub(crate) migrate_url: Option<String>,
    /// Where local state lives: the SQLite store and, for `drover dev`, the
    /// private redis-server's data.
    #[arg(long, global = true, env = "DROVER_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Process jobs from one or more queues.
    Worker(WorkerArgs),
    /// Run everything on one machine: a private redis-server when none is
    /// reachable, the HTTP API without authentication on loopback, and
    /// workers with the built-in handlers.
    Dev(DevArgs),
    /// Serve the HTTP API (`/api/v1`, `/metrics`, `/health`, `/ready`).
    Serve(ServeArgs),
    /// Keep Redis holding the declared schedules (the config file's
    /// `[[schedule]]` entries and those declared through the API), and run
    /// workflows step by step.
    Scheduler(SchedulerArgs),
    /// List schedules (BullMQ job schedulers) with their next runs.
    Schedules(SchedulesArgs),
    /// Create, change or remove a schedule.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// List workflow types with their versions.
    Workflows(JsonFlag),
    /// Register a workflow type; start, list, show, cancel and retry runs.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Read warmed cache keys.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Apply the durable store's pending migrations.
    Migrate,
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Show the autoscaler: leader, each queue's workers wanted and
    /// present, recent decisions; set or remove a queue's policy.
    Autoscaler(AutoscalerArgs),
    /// Add a job to a queue; prints its id.
    Enqueue(EnqueueArgs),
    /// List the queues under the prefix with their counts.
    Queues(JsonFlag),
    /// List a queue's jobs in one state.
    Jobs(JobsArgs),
    /// Show one job: data, options, state, attempts, errors, logs.
    Job(JobArgs),
    /// List live workers (Drover's and other BullMQ clients').
    Workers(JsonFlag),
    /// Pause a queue: workers stop taking its jobs.
    Pause(QueueArg),
    /// Resume a paused queue.
    Resume(QueueArg),
    /// Move a failed job (or all of them) back to waiting.
    Retry(JobOrAll),
    /// Move a delayed job (or all of them) to waiting now.
    Promote(JobOrAll),
    /// Remove a job (refused while a worker runs it).
    Remove(JobArg),
    /// Remove old jobs of one state, in batches.
    Clean(CleanArgs),
    /// Remove every waiting job (and delayed ones with --delayed).
    Drain(DrainArgs),
    /// Delete a queue and all its jobs.
    Obliterate(ObliterateArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum HandlerKind {
    /// Complete each job with its own data.
    Echo,
    /// POST each job to --url.
    Http,
    /// Fill Redis cache keys from the sources of [handler.cache_warm].
    CacheWarm,
}

/// Worker flags; each overrides the config file's `[worker]` table.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// Queues to consume, comma separated.
    #[arg(long, value_delimiter = ',', value_name = "QUEUE,...")]
    pub(crate) queue: Vec<String>,
    /// Jobs processed at once, per queue.
    #[arg(long, value_name = "N")]
    pub(crate) concurrency: Option<usize>,
    /// What runs the jobs.
    #[arg(long, value_enum, default_value = "echo")]
    pub(crate) handler: HandlerKind,
    /// With --handler http: where jobs are POSTed ({name} = job name).
    #[arg(long, value_name = "URL")]
    pub(crate) url: Option<String>,
    /// With --handler http: HMAC-SHA256 key for X-Drover-Signature.
    #[arg(
        long,
        env = "DROVER_HTTP_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub(crate) secret: Option<String>,
    /// Longest one attempt may run, in ms; then it is cancelled and failed.
    #[arg(long, value_name = "MS")]
    pub(crate) job_timeout: Option<u64>,
    /// At shutdown, how long in-flight jobs may finish before being handed
    /// back, in ms.
    #[arg(long, value_name = "MS")]
    pub(crate) shutdown_timeout: Option<u64>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9100).
    #[arg(long, env = "DROVER_METRICS_ADDR", value_name = "ADDR")]
    pub(crate) metrics_addr: Option<String>,
    /// Job lock duration in ms (renewed every half).
    #[arg(long, value_name = "MS")]
    pub(crate) lock_duration: Option<u64>,
    /// How often stalled jobs are looked for, in ms.
    #[arg(long, value_name = "MS")]
    pub(crate) stalled_interval: Option<u64>,
    /// Stalls allowed before a job fails.
    #[arg(long, value_name = "N")]
    pub(crate) max_stalled_count: Option<u32>,
    /// Run no jobs here: start and drain `drover worker` processes per
    /// queue to the count the autoscaler wants (process actuator).
    #[arg(long)]
    pub(crate) supervise: bool,
    /// With --supervise: processes per queue until the autoscaler says
    /// otherwise (overrides `[supervise] processes`).
    #[arg(long, value_name = "N", requires = "supervise")]
    pub(crate) processes: Option<u32>,
    /// With --supervise: how long a draining process may take to finish
    /// its jobs, in ms (overrides `[supervise] drain_timeout_ms`).
    #[arg(long, value_name = "MS", requires = "supervise")]
    pub(crate) drain_timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "DROVER_API_ADDR",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub(crate) addr: String,
    /// Apply pending store migrations at start (otherwise a store behind
    /// the binary's schema is refused).
    #[arg(long)]
    pub(crate) migrate: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key; its secret is printed once and stored only hashed.
    Create(KeysCreateArgs),
    /// List keys (never their secrets).
    List(KeysListArgs),
    /// Revoke a key by id or name; it stops working within twice the
    /// API's key cache time (10 s by default).
    Revoke(KeysRevokeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct KeysCreateArgs {
    /// A name for people (unique among active keys).
    #[arg(long)]
    pub(crate) name: String,
    /// What the key may do: enqueue:QUEUE-GLOB, read or admin (repeat or
    /// comma-separate for several).
    #[arg(
        long = "scope",
        required = true,
        value_delimiter = ',',
        value_name = "SCOPE"
    )]
    pub(crate) scopes: Vec<String>,
    /// Requests per second this key may make (default: the API's
    /// `key_rate_limit_per_sec`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) rate_limit: Option<u32>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct KeysListArgs {
    /// Include revoked keys.
    #[arg(long)]
    pub(crate) all: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct KeysRevokeArgs {
    /// The key's id or name.
    pub(crate) key: String,
}

#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    /// Serve the HTTP API here (loopback only, no authentication).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub(crate) addr: String,
    /// Queues the built-in worker consumes.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "default",
        value_name = "QUEUE,..."
    )]
    pub(crate) queue: Vec<String>,
    /// Jobs processed at once, per queue.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub(crate) concurrency: usize,
    /// POST jobs to this URL with the http handler instead of echoing them.
    #[arg(long, value_name = "URL")]
    pub(crate) url: Option<String>,
    /// Serve Prometheus metrics here.
    #[arg(long, default_value = "127.0.0.1:9100", value_name = "ADDR")]
    pub(crate) metrics_addr: String,
}

#[derive(Debug, Args)]
pub(crate) struct EnqueueArgs {
    /// Target queue.
    pub(crate) queue: String,
    /// Job name.
    pub(crate) name: String,
    /// Payload (JSON).
    #[arg(long, default_value = "{}", value_name = "JSON")]
    pub(crate) data: String,
    /// Run no earlier than this many ms from now.
    #[arg(long, value_name = "MS")]
    pub(crate) delay: Option<u64>,
    /// 1 (first) .. 2097151; lower runs first.
    #[arg(long, value_name = "N")]
    pub(crate) priority: Option<u32>,
    /// Total tries, the first included.
    #[arg(long, value_name = "N")]
    pub(crate) attempts: Option<u32>,
    /// Wait between tries: fixed:MS or exponential:MS.
    #[arg(long, value_name = "KIND:MS")]
    pub(crate) backoff: Option<String>,
    /// A custom job id (adding an existing id returns that job).
    #[arg(long, value_name = "ID")]
    pub(crate) job_id: Option<String>,
    /// Run next instead of last.
    #[arg(long)]
    pub(crate) lifo: bool,
    /// Any BullMQ job options as JSON (flags above win).
    #[arg(long, value_name = "JSON")]
    pub(crate) opts: Option<String>,
    /// Print {"id": ...} instead of the bare id.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct JobsArgs {
    /// The queue.
    pub(crate) queue: String,
    /// waiting, prioritized, delayed, active, completed, failed or
    /// waiting-children.
    #[arg(long, default_value = "waiting", value_name = "STATE")]
    pub(crate) state: String,
    /// Page number, from 1.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(crate) page: u64,
    /// Jobs per page (at most 1000).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub(crate) size: u64,
    /// Oldest (next to run) first instead of newest first.
    #[arg(long)]
    pub(crate) oldest_first: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct JobArgs {
    /// The queue.
    pub(crate) queue: String,
    /// The job id.
    pub(crate) id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct QueueArg {
    /// The queue.
    pub(crate) queue: String,
}

#[derive(Debug, Args)]
pub(crate) struct JobArg {
    /// The queue.
    pub(crate) queue: String,
    /// The job id.
    pub(crate) id: String,
}

#[derive(Debug, Args)]
pub(crate) struct JobOrAll {
    /// The queue.
    pub(crate) queue: String,
    /// The job id (or --all).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub(crate) id: Option<String>,
    /// Every job in that state.
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CleanArgs {
    /// The queue.
    pub(crate) queue: String,
    /// Which state to clean.
    #[arg(long, value_name = "STATE")]
    pub(crate) state: String,
    /// Keep jobs younger than this many ms.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub(crate) grace: u64,
    /// Remove at most this many.
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct DrainArgs {
    /// The queue.
    pub(crate) queue: String,
    /// Remove delayed jobs too.
    #[arg(long)]
    pub(crate) delayed: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ObliterateArgs {
    /// The queue.
    pub(crate) queue: String,
    /// Even with active jobs.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SchedulerArgs {
    /// Apply pending store migrations at start (otherwise a store behind
    /// the binary's schema is refused).
    #[arg(long)]
    pub(crate) migrate: bool,
    /// Bring Redis in line this often (overrides
    /// `[scheduler] reconcile_interval_ms`).
    #[arg(long, value_name = "MS")]
    pub(crate) reconcile_interval: Option<u64>,
    /// Serve the orchestrator's Prometheus metrics here.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SchedulesArgs {
    /// Only this queue's schedules (default: every queue).
    #[arg(long, value_name = "QUEUE")]
    pub(crate) queue: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ScheduleCommand {
    /// Create or replace a schedule (kept in the store, applied to Redis).
    Set(Box<ScheduleSetArgs>),
    /// Remove a schedule; a run already started finishes.
    Rm(ScheduleRmArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ScheduleSetArgs {
    /// Queue the schedule adds jobs to.
    pub(crate) queue: String,
    /// Schedule id: letters, digits, '.', '_' or '-'.
    pub(crate) id: String,
    /// Cron pattern: 5 fields, or 6 with leading seconds.
    #[arg(long, value_name = "CRON", conflicts_with = "every")]
    pub(crate) pattern: Option<String>,
    /// Or: every this many milliseconds.
    #[arg(long, value_name = "MS")]
    pub(crate) every: Option<u64>,
    /// IANA time zone of the pattern (default UTC).
    #[arg(long, value_name = "ZONE")]
    pub(crate) tz: Option<String>,
    /// Job name (default: the schedule id).
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,
    /// Job payload (JSON).
    #[arg(long, value_name = "JSON")]
    pub(crate) data: Option<String>,
    /// Job options (JSON, BullMQ's names: attempts, backoff, ...).
    #[arg(long, value_name = "JSON")]
    pub(crate) opts: Option<String>,
    /// No run before this (ms since the epoch or RFC 3339).
    #[arg(long, value_name = "DATE")]
    pub(crate) start_date: Option<String>,
    /// No run after this (ms since the epoch or RFC 3339).
    #[arg(long, value_name = "DATE")]
    pub(crate) end_date: Option<String>,
    /// Stop after this many runs.
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u64>,
    /// Run once now, then on the pattern.
    #[arg(long)]
    pub(crate) immediately: bool,
    /// Ticks missed while nothing ran: skip (default) or catch-up.
    #[arg(long, value_name = "POLICY")]
    pub(crate) missed: Option<String>,
    /// Read the whole definition (JSON, as the API takes it) from this
    /// file instead of the flags.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pattern", "every", "tz", "name", "data", "opts", "start_date", "end_date", "limit", "immediately", "missed"])]
    pub(crate) file: Option<PathBuf>,
    /// Print the schedule as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ScheduleRmArgs {
    /// The schedule's queue.
    pub(crate) queue: String,
    /// The schedule id.
    pub(crate) id: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// Print a cached value (pretty JSON when it is JSON) and its TTL;
    /// exits 1 when the key is not cached.
    Get(CacheGetArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CacheGetArgs {
    /// The key, e.g. cache:template:42.
    pub(crate) key: String,
    /// Print {"key", "value", "ttl_ms"} as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum WorkflowCommand {
    /// Register a workflow type, or replace its definition (runs already
    /// started keep theirs).
    Put(WorkflowPutArgs),
    /// Start a run; prints its id.
    Start(WorkflowStartArgs),
    /// List runs, newest first.
    Runs(WorkflowRunsArgs),
    /// Show a run and each of its steps.
    Show(WorkflowRunArgs),
    /// Cancel a pending or running run.
    Cancel(WorkflowRunIdArg),
    /// Run a failed or cancelled run again from where it stopped.
    Retry(WorkflowRunIdArg),
}

#[derive(Debug, Args)]
pub(crate) struct WorkflowPutArgs {
    /// The workflow type: letters, digits, '_' or '-'.
    #[arg(value_name = "TYPE")]
    pub(crate) kind: String,
    /// The definition: JSON as the API takes it, or TOML when the name ends
    /// in .toml (`[[steps]]` tables).
    #[arg(long, value_name = "FILE")]
    pub(crate) file: PathBuf,
    /// Print the registered type as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct WorkflowStartArgs {
    /// The workflow type.
    #[arg(value_name = "TYPE")]
    pub(crate) kind: String,
    /// The run input: a JSON object.
    #[arg(long, default_value = "{}", value_name = "JSON")]
    pub(crate) input: String,
    /// Starting again with this key and the same input prints the first
    /// run; with another input it fails.
    #[arg(long, value_name = "KEY")]
    pub(crate) idempotency_key: Option<String>,
    /// Print the run as JSON instead of its id.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct WorkflowRunsArgs {
    /// Only runs of this type.
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) kind: Option<String>,
    /// Only runs in this state: pending, running, completed, failed or
    /// cancelled.
    #[arg(long, value_name = "STATE")]
    pub(crate) state: Option<String>,
    /// Most runs listed (at most 1000).
    #[arg(long, default_value_t = 20, value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) limit: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct WorkflowRunArgs {
    /// The run id.
    pub(crate) run: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct WorkflowRunIdArg {
    /// The run id.
    pub(crate) run: String,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct AutoscalerArgs {
    #[command(subcommand)]
    pub(crate) command: Option<AutoscalerCommand>,
    /// Decisions shown (newest first).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub(crate) decisions: usize,
    /// Print JSON (as GET /api/v1/autoscaler) instead of tables.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AutoscalerCommand {
    /// Set a queue's policy (overrides the config file's), as JSON with
    /// the fields of `[autoscaler.queue.<name>]`.
    Set(AutoscalerSetArgs),
    /// Remove a queue's policy set with `set` or the API.
    Rm(QueueArg),
    /// A queue's desired vs actual workers, one sample per tick.
    History(AutoscalerHistoryArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AutoscalerSetArgs {
    /// The queue.
    pub(crate) queue: String,
    /// The policy, e.g. '{"actuator":"process","min_workers":1,"max_workers":8}'.
    #[arg(long, value_name = "JSON")]
    pub(crate) policy: String,
}

#[derive(Debug, Args)]
pub(crate) struct AutoscalerHistoryArgs {
    /// The queue.
    pub(crate) queue: String,
    /// Samples, newest last.
    #[arg(long, default_value_t = 60, value_name = "N")]
    pub(crate) last: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

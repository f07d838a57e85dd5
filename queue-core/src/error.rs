//! The one error type of `queue-core`.

use std::fmt;

/// Everything that can go wrong in `queue-core`, named for what went wrong
/// in Drover's domain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// A queue name breaks BullMQ's rules (empty, `:`, control characters,
    /// too long).
    #[error("invalid queue name {name:?}: {reason}")]
    InvalidQueueName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A custom job id cannot be used (integer-like, contains `:`, collides
    /// with a queue key suffix, ...).
    #[error("invalid job id {id:?}: {reason}")]
    InvalidJobId {
        /// The rejected id.
        id: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A job name is empty, too long, or has control characters.
    #[error("invalid job name {name:?}: {reason}")]
    InvalidJobName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Job options are out of range or contradict each other.
    #[error("invalid job options: {0}")]
    InvalidOptions(String),
    /// Fewer replicas than `[redis] wait_replicas` confirmed an add in
    /// time (`written`: the job may exist on the master alone; retrying
    /// with the same `Idempotency-Key` adds it at most once), or the
    /// queue's master was short of replicas a moment ago and nothing was
    /// written.
    #[error(
        "queue {queue:?}: {acked} of {wanted} replicas confirmed {}",
        if *written {
            "the add in time; the job may exist on the master only, retry with the same Idempotency-Key"
        } else {
            "the last add moments ago; nothing was written, retry shortly"
        }
    )]
    NotReplicated {
        /// The queue added to.
        queue: String,
        /// Replicas that confirmed.
        acked: u32,
        /// Replicas required.
        wanted: u32,
        /// Whether the job was written to the master before the shortfall.
        written: bool,
    },
    /// The Redis connection settings are unusable.
    #[error("invalid redis settings: {0}")]
    InvalidConfig(String),
    /// No queue of that name exists under the prefix (no `meta` or `id` key).
    #[error("queue {queue:?} not found; `drover queues` lists the existing ones")]
    QueueNotFound {
        /// The queue asked for.
        queue: String,
    },
    /// No job of that id exists in the queue.
    #[error("job {id:?} not found in queue {queue:?}")]
    JobNotFound {
        /// The queue searched.
        queue: String,
        /// The id asked for.
        id: String,
    },
    /// The job is not in the state the action needs (e.g. promoting a job
    /// that is not delayed).
    #[error("job {id:?} is {actual}, so it cannot be {action}")]
    JobNotInState {
        /// The job id.
        id: String,
        /// Its current state.
        actual: String,
        /// What was attempted.
        action: &'static str,
    },
    /// A worker holds the job's lock; it cannot be removed while it runs.
    #[error("job {id:?} is being processed by a worker; try again when it finishes")]
    JobLocked {
        /// The job id.
        id: String,
    },
    /// The job is the pending iteration of a job scheduler.
    #[error("job {id:?} is the next run of a job scheduler; remove the schedule instead")]
    JobBelongsToScheduler {
        /// The job id.
        id: String,
    },
    /// The queue still has active jobs and the action was not forced.
    #[error("queue {queue:?} has active jobs; pass force to obliterate it anyway")]
    QueueHasActiveJobs {
        /// The queue.
        queue: String,
    },
    /// An `Idempotency-Key` is empty, too long or not visible ASCII.
    #[error("invalid idempotency key: {0}")]
    InvalidIdempotencyKey(&'static str),
    /// An idempotency key was used before for a different request.
    #[error(
        "this idempotency key was already used for a different request; use a new key for a new request"
    )]
    IdempotencyKeyReused,
    /// An events cursor (`Last-Event-ID`) is not a Redis stream id.
    #[error("invalid event id {0:?}: expected a stream id such as 1700000000000-0")]
    InvalidEventCursor(String),
    /// The store's settings are unusable.
    #[error("invalid store settings: {0}")]
    InvalidStoreConfig(String),
    /// The store's schema is older than this binary's migrations.
    #[error(
        "the store is {pending} migration(s) behind this drover; run `drover migrate`, or start with --migrate"
    )]
    StoreSchemaOutdated {
        /// Migrations this binary has that the store has not applied.
        pending: usize,
    },
    /// Migrating the store failed, or its migration history does not fit
    /// this binary's migrations.
    #[error("store migration failed: {0}")]
    StoreMigration(String),
    /// The store could not be reached or failed the query.
    #[error("store error: {0}; check DATABASE_URL (or [store] url) and that the database is up")]
    Store(#[source] sqlx::Error),
    /// The store holds a row Drover cannot read back.
    #[error(
        "the store holds data this drover cannot read ({0}); was it written by a newer version?"
    )]
    StoreData(String),
    /// No API key has that id, and no active key has that name.
    #[error("no API key with id or active name {key:?}; `drover keys list --all` shows them")]
    ApiKeyNotFound {
        /// The id or name asked for.
        key: String,
    },
    /// An active key already has that name.
    #[error("an active API key is already named {name:?}; pick another name or revoke it first")]
    ApiKeyNameTaken {
        /// The name.
        name: String,
    },
    /// A key name breaks the naming rule.
    #[error("invalid API key name {name:?}: {reason}")]
    InvalidApiKeyName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A scope is not `enqueue:<pattern>`, `read` or `admin`.
    #[error("invalid scope {scope:?}: {reason}")]
    InvalidScope {
        /// The rejected scope.
        scope: String,
        /// Why.
        reason: &'static str,
    },
    /// A schedule definition is unusable (bad pattern, time zone, id, ...).
    #[error("invalid schedule: {0}")]
    InvalidSchedule(String),
    /// No schedule of that id exists in the queue.
    #[error("no schedule {id:?} in queue {queue:?}; `drover schedules` lists them")]
    ScheduleNotFound {
        /// The queue searched.
        queue: String,
        /// The schedule id asked for.
        id: String,
    },
    /// The schedule is declared elsewhere (the config file, or another
    /// BullMQ client) and changing it here would be undone or fight its
    /// owner.
    #[error("schedule {id:?} in queue {queue:?} {reason}")]
    ScheduleNotOwned {
        /// The queue.
        queue: String,
        /// The schedule id.
        id: String,
        /// Who owns it and what to do instead.
        reason: &'static str,
    },
    /// A workflow definition is unusable (a cycle, an unknown dependency, a
    /// bad template); the message names the step.
    #[error("invalid workflow: {0}")]
    InvalidWorkflow(String),
    /// No workflow type of that name is registered.
    #[error("no workflow type {kind:?}; `drover workflows` lists them")]
    WorkflowTypeNotFound {
        /// The type asked for.
        kind: String,
    },
    /// No run of that id exists.
    #[error("no workflow run {id:?}")]
    WorkflowRunNotFound {
        /// The run id asked for.
        id: String,
    },
    /// The run is not in a state the action applies to.
    #[error("workflow run {id:?} is {actual}, so it cannot be {action}")]
    WorkflowRunNotInState {
        /// The run id.
        id: String,
        /// Its state.
        actual: String,
        /// What was attempted.
        action: &'static str,
    },
    /// An autoscaling policy is unusable (min above max, an unknown
    /// actuator, a step policy of 0, ...); the message names the field.
    #[error("invalid autoscaling policy: {0}")]
    InvalidAutoscalePolicy(String),
    /// Another writer held the schedule lease for too long.
    #[error("schedules are being changed by another writer; retry shortly")]
    ScheduleBusy,
    /// Redis could not be reached or failed the command.
    #[error("redis error: {0}; check REDIS_URL and that redis-server is running")]
    Redis(#[source] redis::RedisError),
    /// BullMQ's engine answered something Drover did not expect.
    #[error("bullmq protocol error: {0}")]
    Protocol(String),
}

/// A coarse classification of [`QueueError`] so callers can branch without
/// matching variants (HTTP status, CLI exit code, retry decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller's input is wrong; retrying the same call will fail again.
    InvalidInput,
    /// The thing asked for does not exist.
    NotFound,
    /// The thing exists but its current state forbids the action.
    Conflict,
    /// Redis is unreachable or overloaded; the same call may succeed later.
    Unavailable,
    /// An unexpected answer from Redis or BullMQ's scripts.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidInput => "invalid_input",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        })
    }
}

impl QueueError {
    /// The coarse kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidQueueName { .. }
            | Self::InvalidJobId { .. }
            | Self::InvalidJobName { .. }
            | Self::InvalidOptions(_)
            | Self::InvalidConfig(_)
            | Self::InvalidIdempotencyKey(_)
            | Self::InvalidEventCursor(_)
            | Self::InvalidStoreConfig(_)
            | Self::InvalidApiKeyName { .. }
            | Self::InvalidScope { .. }
            | Self::InvalidSchedule(_)
            | Self::InvalidWorkflow(_)
            | Self::InvalidAutoscalePolicy(_) => ErrorKind::InvalidInput,
            Self::QueueNotFound { .. }
            | Self::JobNotFound { .. }
            | Self::ApiKeyNotFound { .. }
            | Self::ScheduleNotFound { .. }
            | Self::WorkflowTypeNotFound { .. }
            | Self::WorkflowRunNotFound { .. } => ErrorKind::NotFound,
            Self::JobNotInState { .. }
            | Self::JobLocked { .. }
            | Self::JobBelongsToScheduler { .. }
            | Self::QueueHasActiveJobs { .. }
            | Self::IdempotencyKeyReused
            | Self::ApiKeyNameTaken { .. }
            | Self::ScheduleNotOwned { .. }
            | Self::WorkflowRunNotInState { .. } => ErrorKind::Conflict,
            Self::StoreSchemaOutdated { .. } | Self::ScheduleBusy | Self::NotReplicated { .. } => {
                ErrorKind::Unavailable
            }
            Self::Store(e) if is_store_transient(e) => ErrorKind::Unavailable,
            Self::Store(_) | Self::StoreMigration(_) | Self::StoreData(_) => ErrorKind::Internal,
            Self::Redis(e) if is_transient(e) => ErrorKind::Unavailable,
            Self::Redis(_) | Self::Protocol(_) => ErrorKind::Internal,
        }
    }

    /// Whether the same call may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Unavailable
    }
}

fn is_transient(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
                | redis::ErrorKind::Server(redis::ServerErrorKind::TryAgain)
                | redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown)
                | redis::ErrorKind::Server(redis::ServerErrorKind::MasterDown)
                | redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
        )
}

/// Whether the database was unreachable, overloaded or restarting rather
/// than refusing the query itself.
fn is_store_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                let code = pg.code();
                // Class 08: connection exceptions; 53: out of resources
                // (too many connections); 57P01-57P03: shutting down or
                // starting; 40001/40P01: serialization failure, deadlock.
                code.starts_with("08")
                    || code.starts_with("53")
                    || matches!(code, "57P01" | "57P02" | "57P03" | "40001" | "40P01")
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLITE_BUSY and SQLITE_LOCKED, with their extended codes:
                // another writer held the file past the busy timeout.
                let code = db.code().and_then(|c| c.parse::<i32>().ok());
                matches!(code.map(|c| c & 0xff), Some(5 | 6))
            } else {
                false
            }
        }
        _ => false,
    }
}

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e)
    }
}

impl From<sqlx::migrate::MigrateError> for QueueError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError as M;
        match e {
            // The database failed, not the migration: keep it a store error
            // so an unreachable database still reads as unavailable.
            M::Execute(e) => Self::Store(e),
            M::ExecuteMigration(e, version) => {
                Self::StoreMigration(format!("migration {version} failed: {e}"))
            }
            M::VersionMismatch(version) => Self::StoreMigration(format!(
                "migration {version} was edited after it was applied; restore its original file \
                 and put the change in a new migration"
            )),
            M::Dirty(version) => Self::StoreMigration(format!(
                "migration {version} is partially applied; repair the schema by hand, then delete \
                 its row from _sqlx_migrations"
            )),
            other => Self::StoreMigration(other.to_string()),
        }
    }
}

impl From<redis::RedisError> for QueueError {
    fn from(e: redis::RedisError) -> Self {
        Self::Redis(e)
    }
}

impl From<redis::ParsingError> for QueueError {
    fn from(e: redis::ParsingError) -> Self {
        Self::Protocol(format!("unexpected reply from redis: {e}"))
    }
}

impl From<bullmq::Error> for QueueError {
    fn from(e: bullmq::Error) -> Self {
        match e {
            bullmq::Error::Redis(e) => Self::Redis(e),
            bullmq::Error::InvalidConfig(msg) => Self::InvalidOptions(msg),
            bullmq::Error::Serialization(e) => Self::InvalidOptions(e.to_string()),
            other => Self::Protocol(other.to_string()),
        }
    }
}

/// Shorthand for `Result<T, QueueError>`.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;

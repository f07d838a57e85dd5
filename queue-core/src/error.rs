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
            | Self::InvalidConfig(_) => ErrorKind::InvalidInput,
            Self::QueueNotFound { .. } | Self::JobNotFound { .. } => ErrorKind::NotFound,
            Self::JobNotInState { .. }
            | Self::JobLocked { .. }
            | Self::JobBelongsToScheduler { .. }
            | Self::QueueHasActiveJobs { .. } => ErrorKind::Conflict,
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

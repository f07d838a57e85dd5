//! One module per group of subcommands.

mod admin;
mod autoscaler;
mod cache;
mod dev;
mod enqueue;
mod inspect;
mod kube;
mod schedule;
mod serve;
mod store;
mod supervise;
mod worker;
mod workflow;

use std::time::Duration;

use anyhow::Context;
use queue_core::{Connection, QueueName, RedisSettings};

use crate::cli::{Cli, Command};
use crate::config::FileConfig;
use crate::exit::UsageError;

/// Runs the parsed command line.
pub(crate) async fn run(cli: Cli, config: FileConfig) -> anyhow::Result<()> {
    match cli.command {
        Command::Worker(args) => worker::run(config, &args, &cli.global).await,
        Command::Dev(args) => dev::run(config, args).await,
        Command::Serve(args) => serve::run(config, &args).await,
        Command::Scheduler(args) => schedule::run(config, &args).await,
        Command::Schedules(args) => schedule::list(&config, &args).await,
        Command::Schedule(command) => schedule::command(&config, &command).await,
        Command::Workflows(args) => workflow::types(&config, args.json).await,
        Command::Workflow(command) => workflow::command(&config, &command).await,
        Command::Cache(command) => cache::run(&config, &command).await,
        Command::Migrate => store::migrate(&config).await,
        Command::Keys(command) => store::keys(&config, &command).await,
        Command::Autoscaler(args) => autoscaler::run(&config, &args).await,
        Command::Enqueue(args) => enqueue::run(&config, &args).await,
        Command::Queues(args) => inspect::queues(&config, args.json).await,
        Command::Jobs(args) => inspect::jobs(&config, &args).await,
        Command::Job(args) => inspect::job(&config, &args).await,
        Command::Workers(args) => inspect::workers(&config, args.json).await,
        Command::Pause(args) => admin::pause(&config, &args.queue).await,
        Command::Resume(args) => admin::resume(&config, &args.queue).await,
        Command::Retry(args) => admin::retry(&config, &args).await,
        Command::Promote(args) => admin::promote(&config, &args).await,
        Command::Remove(args) => admin::remove(&config, &args).await,
        Command::Clean(args) => admin::clean(&config, &args).await,
        Command::Drain(args) => admin::drain(&config, &args).await,
        Command::Obliterate(args) => admin::obliterate(&config, &args).await,
    }
}

/// How long a command waits for Redis before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects with the configured settings, failing in bounded time.
pub(crate) async fn connect(settings: RedisSettings) -> anyhow::Result<Connection> {
    let target = settings.describe();
    // A TLS handshake that fails (an untrusted server certificate, a
    // server that wants a client certificate) is retried like a refused
    // connection, so it shows as a timeout: say where to look.
    let hint = if settings.url().starts_with("rediss://") {
        " (over TLS: check [redis.tls] ca_file, cert_file and key_file against the server's certificate)"
    } else {
        ""
    };
    tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(settings))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {}s{hint}", CONNECT_TIMEOUT.as_secs()))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(|| format!("cannot connect to redis at {target}"))
}

/// Connects for a one-shot command.
async fn connect_for(config: &FileConfig) -> anyhow::Result<Connection> {
    connect(config.redis_settings()?).await
}

/// A queue name from the command line.
fn queue_name(name: &str) -> Result<QueueName, UsageError> {
    QueueName::new(name).map_err(|e| UsageError(e.to_string()))
}

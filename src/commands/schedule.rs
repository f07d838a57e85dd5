//! `drover scheduler`, `drover schedules`, `drover schedule set|rm`.

use std::time::Duration;

use drover_scheduler::{Orchestrator, OrchestratorMetrics, Reconciler};
use queue_core::schedule::{self, Schedule, ScheduleSpec, ScheduleView, live};
use queue_core::{QueueDiscovery, QueueName};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{connect, connect_for, queue_name, store};
use crate::cli::{ScheduleCommand, ScheduleSetArgs, SchedulerArgs, SchedulesArgs};
use crate::config::FileConfig;
use crate::exit::UsageError;
use crate::metrics_server;
use crate::output::{self, Table};
use crate::signals::Signals;

/// `drover scheduler`: reconciles schedules and orchestrates workflows
/// until SIGTERM/SIGINT.
pub(crate) async fn run(mut config: FileConfig, args: &SchedulerArgs) -> anyhow::Result<()> {
    if let Some(ms) = args.reconcile_interval {
        config.scheduler.reconcile_interval_ms = ms;
    }
    if args.metrics_addr.is_some() {
        config.metrics.addr = args.metrics_addr.clone();
    }
    let declared = config.schedules()?;
    let store_settings = config.store_settings()?;
    let redis = config.redis_settings()?;
    info!(redis = ?redis, store = %store_settings.describe(), declared = declared.len(), "starting the scheduler");
    let signals = Signals::listen()?;
    let conn = connect(redis).await?;
    let store = store::open(&store_settings, args.migrate).await?;
    register_workflows(&store, &config).await?;
    let registry = prometheus::Registry::new();
    let metrics = OrchestratorMetrics::new(&registry)?;
    let reconciler = Reconciler::new(
        conn.clone(),
        Some(store.clone()),
        declared,
        config.scheduler.clone(),
    );
    let orchestrator = Orchestrator::new(conn, store.clone(), Some(metrics));
    let stop = CancellationToken::new();
    let metrics_server = match config.metrics.addr.as_deref() {
        Some(addr) => Some(metrics_server::spawn(addr, registry, stop.clone()).await?),
        None => None,
    };
    let stopper = {
        let stop = stop.clone();
        let graceful = signals.graceful.clone();
        tokio::spawn(async move {
            graceful.cancelled().await;
            stop.cancel();
        })
    };
    info!("ready");
    tokio::join!(reconciler.run(stop.clone()), orchestrator.run(stop.clone()));
    stopper.abort();
    if let Some(server) = metrics_server {
        let _ = server.await;
    }
    store.close().await;
    Ok(())
}

/// Registers the config file's `[[workflow]]` types (those that changed).
pub(crate) async fn register_workflows(
    store: &queue_core::store::Store,
    config: &FileConfig,
) -> anyhow::Result<()> {
    for workflow in config.workflows()? {
        if let Some(version) = store
            .ensure_workflow_type(&workflow, "config", queue_core::now_ms())
            .await?
        {
            info!(
                workflow = workflow.kind(),
                version, "workflow type registered from the config file"
            );
        }
    }
    Ok(())
}

/// Spawns the reconciler and the orchestrator of `drover dev` until
/// `stop`.
pub(crate) fn spawn_scheduler(
    reconciler: Reconciler,
    orchestrator: Orchestrator,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::join!(reconciler.run(stop.clone()), orchestrator.run(stop));
    })
}

/// `drover schedules`.
pub(crate) async fn list(config: &FileConfig, args: &SchedulesArgs) -> anyhow::Result<()> {
    let conn = connect_for(config).await?;
    let queues: Vec<QueueName> = match &args.queue {
        Some(q) => vec![queue_name(q)?],
        None => QueueDiscovery::new(conn.clone(), Duration::ZERO)
            .queues()
            .await?
            .to_vec(),
    };
    let mut all = Vec::new();
    for q in &queues {
        all.extend(live::list(&conn, q).await?);
    }
    if args.json {
        return output::json(&all);
    }
    let mut table = Table::new([
        "QUEUE", "ID", "WHEN", "TZ", "JOB", "RUNS", "NEXT", "THEN", "OWNER",
    ]);
    for s in &all {
        table.row(row(s));
    }
    table.print();
    Ok(())
}

fn row(s: &ScheduleView) -> Vec<String> {
    let when = match (&s.pattern, s.every) {
        (Some(p), _) => p.clone(),
        (None, Some(every)) => format!("every {every} ms"),
        (None, None) => "-".into(),
    };
    let then: Vec<String> = s
        .upcoming_ms
        .iter()
        .skip(1)
        .take(2)
        .map(|t| output::timestamp(*t))
        .collect();
    vec![
        s.queue.clone(),
        s.id.clone(),
        when,
        s.tz.clone().unwrap_or_else(|| "-".into()),
        output::truncate(&s.name, 32),
        match s.limit {
            Some(l) => format!("{}/{l}", s.iterations),
            None => s.iterations.to_string(),
        },
        output::maybe_timestamp(s.next_ms),
        if then.is_empty() {
            "-".into()
        } else {
            then.join(" ")
        },
        s.owner.map_or("other client".into(), |o| {
            serde_json::to_value(o)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        }),
    ]
}

/// `drover schedule set|rm`.
pub(crate) async fn command(config: &FileConfig, command: &ScheduleCommand) -> anyhow::Result<()> {
    match command {
        ScheduleCommand::Set(args) => set(config, args).await,
        ScheduleCommand::Rm(args) => rm(config, &args.queue, &args.id).await,
    }
}

/// The definition given by `--file` or by the flags.
fn spec_from_args(args: &ScheduleSetArgs) -> Result<ScheduleSpec, UsageError> {
    let value = match &args.file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?;
            serde_json::from_str(&text)
                .map_err(|e| UsageError(format!("{}: not JSON: {e}", path.display())))?
        }
        None => {
            let mut m = Map::new();
            let json_flag = |flag: &str, text: &str| {
                serde_json::from_str::<Value>(text)
                    .map_err(|e| UsageError(format!("--{flag} is not JSON: {e}")))
            };
            let date = |text: &str| -> Value {
                text.parse::<u64>()
                    .map_or_else(|_| Value::from(text), Value::from)
            };
            if let Some(p) = &args.pattern {
                m.insert("pattern".into(), p.clone().into());
            }
            if let Some(e) = args.every {
                m.insert("every".into(), e.into());
            }
            if let Some(tz) = &args.tz {
                m.insert("tz".into(), tz.clone().into());
            }
            if let Some(n) = &args.name {
                m.insert("name".into(), n.clone().into());
            }
            if let Some(d) = &args.data {
                m.insert("data".into(), json_flag("data", d)?);
            }
            if let Some(o) = &args.opts {
                m.insert("opts".into(), json_flag("opts", o)?);
            }
            if let Some(d) = &args.start_date {
                m.insert("startDate".into(), date(d));
            }
            if let Some(d) = &args.end_date {
                m.insert("endDate".into(), date(d));
            }
            if let Some(l) = args.limit {
                m.insert("limit".into(), l.into());
            }
            if args.immediately {
                m.insert("immediately".into(), true.into());
            }
            if let Some(p) = &args.missed {
                m.insert("missed".into(), p.clone().into());
            }
            Value::Object(m)
        }
    };
    serde_json::from_value(value).map_err(|e| UsageError(format!("invalid schedule: {e}")))
}

#[allow(clippy::print_stdout)] // the command's output
async fn set(config: &FileConfig, args: &ScheduleSetArgs) -> anyhow::Result<()> {
    let queue =
        QueueName::new_strict(args.queue.as_str()).map_err(|e| UsageError(e.to_string()))?;
    let spec = spec_from_args(args)?;
    let params = serde_json::to_value(&spec)?;
    let checked =
        Schedule::new(queue.clone(), &args.id, spec).map_err(|e| UsageError(e.to_string()))?;
    let conn = connect_for(config).await?;
    let store = store::open(&config.store_settings()?, false).await?;
    let actor = store::cli_actor();
    let result = schedule::declare(&conn, &store, &checked, &actor).await;
    store::audit(
        &store,
        "schedule.put",
        Some(queue.as_str()),
        Some(&args.id),
        params,
        &result,
    )
    .await;
    store.close().await;
    let created = result?;
    let view = live::get(&conn, &queue, &args.id).await?;
    if args.json {
        return output::json(&view);
    }
    let next = view
        .as_ref()
        .and_then(|v| v.next_ms)
        .map_or_else(|| "-".into(), output::timestamp);
    println!(
        "{} schedule {queue}/{}; next run {next}",
        if created { "created" } else { "replaced" },
        args.id
    );
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn rm(config: &FileConfig, queue: &str, id: &str) -> anyhow::Result<()> {
    let name = queue_name(queue)?;
    let conn = connect_for(config).await?;
    let store = store::open(&config.store_settings()?, false).await?;
    let result = schedule::withdraw(&conn, &store, &name, id).await;
    store::audit(
        &store,
        "schedule.delete",
        Some(queue),
        Some(id),
        serde_json::json!({}),
        &result,
    )
    .await;
    store.close().await;
    result?;
    println!("removed schedule {queue}/{id}");
    Ok(())
}

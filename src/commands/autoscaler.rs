//! `drover autoscaler`: what the autoscaler's leader published (leader,
//! queues, decisions), and `set`/`rm` of a queue's policy, `history`.

use queue_core::autoscale::{self, PolicySpec};

use super::{connect_for, queue_name};
use crate::cli::{AutoscalerArgs, AutoscalerCommand, AutoscalerHistoryArgs};
use crate::config::FileConfig;
use crate::exit::UsageError;
use crate::output::{self, Table};

pub(crate) async fn run(config: &FileConfig, args: &AutoscalerArgs) -> anyhow::Result<()> {
    match &args.command {
        Some(AutoscalerCommand::Set(set)) => {
            let queue = queue_name(&set.queue)?;
            let spec: PolicySpec = serde_json::from_str(&set.policy)
                .map_err(|e| UsageError(format!("--policy: {e}")))?;
            spec.check().map_err(|e| UsageError(e.to_string()))?;
            let conn = connect_for(config).await?;
            autoscale::put_policy(&conn, &queue, &spec).await?;
            output::line(format!(
                "policy of {queue} set; the autoscaler's leader applies it at its next tick"
            ));
            Ok(())
        }
        Some(AutoscalerCommand::Rm(arg)) => {
            let queue = queue_name(&arg.queue)?;
            let conn = connect_for(config).await?;
            if autoscale::remove_policy(&conn, &queue).await? {
                output::line(format!("policy of {queue} removed"));
                Ok(())
            } else {
                Err(UsageError(format!(
                    "{queue} has no policy set through the API or `drover autoscaler set` \
                     (config file policies are changed there)"
                ))
                .into())
            }
        }
        Some(AutoscalerCommand::History(h)) => history(config, h).await,
        None => status(config, args).await,
    }
}

async fn status(config: &FileConfig, args: &AutoscalerArgs) -> anyhow::Result<()> {
    let conn = connect_for(config).await?;
    let status =
        autoscale::status(&conn, args.decisions.clamp(1, autoscale::MAX_DECISIONS)).await?;
    if args.json {
        return output::json(&status);
    }
    match &status.leader {
        Some(l) => output::line(format!(
            "leader: {} (epoch {}, since {})",
            l.holder,
            l.epoch,
            output::timestamp(l.since_ms)
        )),
        None => output::line("leader: none (no `drover serve` runs the autoscaler)"),
    }
    let mut table = Table::new([
        "QUEUE", "ACTUATOR", "MIN", "MAX", "DESIRED", "ACTUAL", "BACKLOG", "ACTIVE", "WAIT",
        "SOURCE",
    ]);
    for q in &status.queues {
        let policy = q.policy.as_ref().and_then(|p| p.check().ok());
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        table.row(vec![
            q.queue.clone(),
            or_dash(q.actuator.map(|a| a.as_str().to_string())),
            or_dash(policy.as_ref().map(|p| p.min_workers.to_string())),
            or_dash(policy.as_ref().map(|p| p.max_workers.to_string())),
            or_dash(q.desired.map(|d| d.to_string())),
            q.actual.to_string(),
            q.signals.backlog.to_string(),
            q.signals.active.to_string(),
            or_dash(q.signals.oldest_wait_ms.map(|ms| format!("{ms}ms"))),
            or_dash(q.source.map(|s| format!("{s:?}").to_lowercase())),
        ]);
    }
    table.print();
    output::line("");
    let mut table = Table::new(["TIME", "QUEUE", "CHANGE", "REASON"]);
    for d in &status.decisions {
        table.row(vec![
            output::timestamp(d.at_ms),
            d.queue.clone(),
            format!("{} -> {}", d.from, d.to),
            output::truncate(&d.reason, 160),
        ]);
    }
    table.print();
    Ok(())
}

async fn history(config: &FileConfig, args: &AutoscalerHistoryArgs) -> anyhow::Result<()> {
    let queue = queue_name(&args.queue)?;
    let conn = connect_for(config).await?;
    let samples = autoscale::worker_history(&conn, &queue, args.last).await?;
    if args.json {
        return output::json(&samples);
    }
    let mut table = Table::new(["TIME", "DESIRED", "ACTUAL", "RECOMMENDED"]);
    for s in samples {
        table.row(vec![
            output::timestamp(s.at_ms),
            s.desired.to_string(),
            s.actual.to_string(),
            s.recommended.to_string(),
        ]);
    }
    table.print();
    Ok(())
}

//! `drover queues`, `jobs`, `job`, `workers`: read-only, bounded reads.

use std::time::Duration;

use queue_core::inspect::{self, Order};
use queue_core::registry;
use queue_core::{JobState, QueueDiscovery};
use serde_json::json;

use super::{connect_for, queue_name};
use crate::cli::{JobArgs, JobsArgs};
use crate::config::FileConfig;
use crate::exit::UsageError;
use crate::output::{self, Table, ago, maybe_timestamp, truncate};

pub(crate) async fn queues(config: &FileConfig, as_json: bool) -> anyhow::Result<()> {
    let conn = connect_for(config).await?;
    let discovery = QueueDiscovery::new(conn.clone(), Duration::ZERO);
    let names = discovery.queues().await?;
    let counts = inspect::queue_counts(&conn, &names).await?;
    if as_json {
        let rows: Vec<_> = counts
            .iter()
            .map(|(q, c)| json!({ "queue": q.as_str(), "counts": c }))
            .collect();
        return output::json(&rows);
    }
    let mut table = Table::new([
        "QUEUE",
        "WAITING",
        "PRIORITIZED",
        "DELAYED",
        "ACTIVE",
        "COMPLETED",
        "FAILED",
        "STATE",
    ]);
    for (queue, c) in &counts {
        table.row(vec![
            queue.to_string(),
            c.waiting.to_string(),
            c.prioritized.to_string(),
            c.delayed.to_string(),
            c.active.to_string(),
            c.completed.to_string(),
            c.failed.to_string(),
            if c.paused { "paused" } else { "running" }.to_string(),
        ]);
    }
    if counts.is_empty() {
        output::line(format!("no queues under prefix {:?}", conn.prefix()));
    } else {
        table.print();
    }
    Ok(())
}

pub(crate) async fn jobs(config: &FileConfig, args: &JobsArgs) -> anyhow::Result<()> {
    let queue = queue_name(&args.queue)?;
    let state: JobState = args
        .state
        .parse()
        .map_err(|e: queue_core::UnknownState| UsageError(e.to_string()))?;
    if args.page == 0 {
        return Err(UsageError("--page starts at 1".into()).into());
    }
    if args.size == 0 || args.size > inspect::MAX_PAGE_SIZE {
        return Err(UsageError(format!(
            "--size must be between 1 and {}",
            inspect::MAX_PAGE_SIZE
        ))
        .into());
    }
    let order = if args.oldest_first {
        Order::OldestFirst
    } else {
        Order::NewestFirst
    };
    let conn = connect_for(config).await?;
    let offset = (args.page - 1) * args.size;
    let page = inspect::list_jobs(&conn, &queue, state, offset, args.size, order).await?;
    if args.json {
        return output::json(&page);
    }
    let mut table = Table::new(["ID", "NAME", "ATTEMPTS", "CREATED", "FINISHED", "REASON"]);
    for job in &page.jobs {
        table.row(vec![
            job.id.clone(),
            truncate(&job.name, 40),
            format!("{}/{}", job.attempts_made, job.max_attempts),
            maybe_timestamp(job.timestamp),
            maybe_timestamp(job.finished_on),
            job.failed_reason
                .as_deref()
                .map(|r| truncate(r, 60))
                .unwrap_or_default(),
        ]);
    }
    let pages = page.total.div_ceil(args.size).max(1);
    output::line(format!(
        "{} {state} job(s) in {queue}; page {} of {pages}",
        page.total, args.page
    ));
    if !page.jobs.is_empty() {
        table.print();
    }
    Ok(())
}

pub(crate) async fn job(config: &FileConfig, args: &JobArgs) -> anyhow::Result<()> {
    let queue = queue_name(&args.queue)?;
    let conn = connect_for(config).await?;
    let detail = inspect::job_detail(&conn, &queue, &args.id).await?;
    if args.json {
        return output::json(&detail);
    }
    let r = &detail.record;
    let state = detail.state.map_or("unknown", JobState::as_str);
    let mut lines = vec![
        format!("id:           {}", r.id),
        format!("name:         {}", r.name),
        format!("queue:        {queue}"),
        format!("state:        {state}"),
        format!(
            "attempts:     {} made, {} started, {} allowed",
            r.attempts_made, r.attempts_started, r.max_attempts
        ),
        format!("created:      {}", maybe_timestamp(r.timestamp)),
        format!("started:      {}", maybe_timestamp(r.processed_on)),
        format!("finished:     {}", maybe_timestamp(r.finished_on)),
    ];
    if let Some(p) = r.priority.filter(|p| *p > 0) {
        lines.push(format!("priority:     {p}"));
    }
    if let Some(d) = r.delay.filter(|d| *d > 0) {
        lines.push(format!("delay:        {d} ms"));
    }
    if let Some(p) = &r.progress {
        lines.push(format!("progress:     {p}"));
    }
    if let Some(w) = &r.processed_by {
        lines.push(format!("processed by: {w}"));
    }
    if let Some(s) = &r.scheduler_id {
        lines.push(format!("scheduler:    {s}"));
    }
    if let Some(reason) = &r.failed_reason {
        lines.push(format!("failed:       {}", truncate(reason, 500)));
    }
    if !r.malformed.is_empty() {
        lines.push(format!(
            "malformed:    {} (shown raw)",
            r.malformed.join(", ")
        ));
    }
    lines.push(format!(
        "data:         {}",
        serde_json::to_string_pretty(&r.data)?
    ));
    lines.push(format!("options:      {}", serde_json::to_string(&r.opts)?));
    if let Some(v) = &r.returnvalue {
        lines.push(format!(
            "result:       {}",
            serde_json::to_string_pretty(v)?
        ));
    }
    for (i, trace) in r.stacktrace.iter().enumerate() {
        lines.push(format!("stacktrace {}: {trace}", i + 1));
    }
    if detail.logs_total > 0 {
        lines.push(format!(
            "logs ({} of {}):",
            detail.logs.len(),
            detail.logs_total
        ));
        lines.extend(detail.logs.iter().map(|l| format!("  {l}")));
    }
    for l in lines {
        output::line(l);
    }
    Ok(())
}

pub(crate) async fn workers(config: &FileConfig, as_json: bool) -> anyhow::Result<()> {
    let conn = connect_for(config).await?;
    let drover =
        registry::live_workers(&conn, registry::LIVE_WITHIN, registry::FORGET_AFTER).await?;
    let clients = registry::bullmq_worker_clients(&conn).await?;
    // Drover's own engine connections show up in CLIENT LIST too; list
    // only the others there.
    let others: Vec<_> = clients.into_iter().filter(|c| !c.is_drover()).collect();
    if as_json {
        return output::json(&json!({ "drover": drover, "bullmq": others }));
    }
    let mut table = Table::new([
        "WORKER",
        "HOST",
        "PID",
        "QUEUES (concurrency/in flight)",
        "HEARTBEAT",
    ]);
    for w in &drover {
        let queues: Vec<String> = w
            .queues
            .iter()
            .map(|q| format!("{} ({}/{})", q.queue, q.concurrency, q.in_flight))
            .collect();
        table.row(vec![
            w.id.chars().take(12).collect(),
            w.host.clone(),
            w.pid.to_string(),
            queues.join(", "),
            format!("{} ago", ago(w.heartbeat_at_ms)),
        ]);
    }
    output::line(format!("{} Drover worker(s)", drover.len()));
    if !drover.is_empty() {
        table.print();
    }
    if !others.is_empty() {
        output::line(format!(
            "{} other BullMQ worker connection(s)",
            others.len()
        ));
        let mut table = Table::new(["QUEUE", "NAME", "ADDRESS", "CONNECTED"]);
        for c in &others {
            table.row(vec![
                c.queue.clone(),
                c.name.clone().unwrap_or_else(|| "-".into()),
                c.addr.clone(),
                format!("{}s", c.age_secs),
            ]);
        }
        table.print();
    }
    Ok(())
}

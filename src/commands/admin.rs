//! Admin actions: pause, resume, retry, promote, remove, clean, drain,
//! obliterate. Each prints one line saying what it did.

use std::time::Duration;

use queue_core::{JobState, admin};

use super::{connect_for, queue_name};
use crate::cli::{CleanArgs, DrainArgs, JobArg, JobOrAll, ObliterateArgs};
use crate::config::FileConfig;
use crate::exit::UsageError;
use crate::output;

pub(crate) async fn pause(config: &FileConfig, queue: &str) -> anyhow::Result<()> {
    let queue = queue_name(queue)?;
    admin::pause(&connect_for(config).await?, &queue).await?;
    output::line(format!("paused {queue}"));
    Ok(())
}

pub(crate) async fn resume(config: &FileConfig, queue: &str) -> anyhow::Result<()> {
    let queue = queue_name(queue)?;
    admin::resume(&connect_for(config).await?, &queue).await?;
    output::line(format!("resumed {queue}"));
    Ok(())
}

pub(crate) async fn retry(config: &FileConfig, args: &JobOrAll) -> anyhow::Result<()> {
    let queue = queue_name(&args.queue)?;
    let conn = connect_for(config).await?;
    match &args.id {
        Some(id) => {
            admin::retry_job(&conn, &queue, id).await?;
            output::line(format!("retrying job {id} of {queue}"));
        }
        None => {
            let n = admin::retry_all_failed(&conn, &queue).await?;
            output::line(format!("retrying {n} failed job(s) of {queue}"));
        }
    }
    Ok(())
}

pub(crate) async fn promote(config: &FileConfig, args: &JobOrAll) -> anyhow::Result<()> {
    let queue = queue_name(&args.queue)?;
    let conn = connect_for(config).await?;
    match &args.id {
        Some(id) => {
            admin::promote_job(&conn, &queue, id).await?;
            output::line(format!("promoted job {id} of {queue}"));
        }
        None => {
            let n = admin::promote_all_delayed(&conn, &queue).await?;
            output::line(format!("promoted {n} delayed job(s) of {queue}"));
        }
    }
    Ok(())
}

pub(crate) async fn remove(config: &FileConfig, args: &JobArg) -> anyhow::Result<()> {
    let queue = queue_name(&args.queue)?;
    admin::remove_job(&connect_for(config).await?, &queue, &args.id).await?;
    output::line(format!("removed job {} of {queue}", args.id));
    Ok(())
}

pub(crate) async fn clean(config: &FileConfig, args: &CleanArgs) -> anyhow::Result<()> {
    let queue = queue_name(&args.queue)?;
    let state: JobState = args
        .state
        .parse()
        .map_err(|e: queue_core::UnknownState| UsageError(e.to_string()))?;
    if args.limit == Some(0) {
        return Err(UsageError("--limit must be at least 1".into()).into());
    }
    let conn = connect_for(config).await?;
    let n = admin::clean(
        &conn,
        &queue,
        state,
        Duration::from_millis(args.grace),
        args.limit,
    )
    .await?;
    output::line(format!("removed {n} {state} job(s) from {queue}"));
    Ok(())
}

pub(crate) async fn drain(config: &FileConfig, args: &DrainArgs) -> anyhow::Result<()> {
    let queue = queue_name(&args.queue)?;
    let n = admin::drain(&connect_for(config).await?, &queue, args.delayed).await?;
    output::line(format!("removed {n} waiting job(s) from {queue}"));
    Ok(())
}

pub(crate) async fn obliterate(config: &FileConfig, args: &ObliterateArgs) -> anyhow::Result<()> {
    let queue = queue_name(&args.queue)?;
    admin::obliterate(&connect_for(config).await?, &queue, args.force).await?;
    output::line(format!("obliterated {queue}"));
    Ok(())
}

//! `drover enqueue QUEUE NAME --data JSON ...`: adds one job, prints its id.

use queue_core::producer::{self, Backoff, JobOptions, NewJob};
use serde_json::{Value, json};

use super::{connect_for, queue_name};
use crate::cli::EnqueueArgs;
use crate::config::FileConfig;
use crate::exit::UsageError;
use crate::output;

pub(crate) async fn run(config: &FileConfig, args: &EnqueueArgs) -> anyhow::Result<()> {
    let queue = queue_name(&args.queue)?;
    let job = new_job(args)?;
    job.validate().map_err(|e| UsageError(e.to_string()))?;
    let conn = connect_for(config).await?;
    let id = producer::enqueue(&conn, &queue, &job).await?;
    if args.json {
        output::json(&json!({ "id": id }))
    } else {
        output::line(id);
        Ok(())
    }
}

fn new_job(args: &EnqueueArgs) -> Result<NewJob, UsageError> {
    let data: Value = serde_json::from_str(&args.data)
        .map_err(|e| UsageError(format!("--data is not valid JSON: {e}")))?;
    let mut opts: JobOptions = match &args.opts {
        None => JobOptions::default(),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| UsageError(format!("--opts is not valid BullMQ job options: {e}")))?,
    };
    if args.delay.is_some() {
        opts.delay = args.delay;
    }
    if args.priority.is_some() {
        opts.priority = args.priority;
    }
    if args.attempts.is_some() {
        opts.attempts = args.attempts;
    }
    if let Some(spec) = &args.backoff {
        opts.backoff = Some(parse_backoff(spec)?);
    }
    if args.job_id.is_some() {
        opts.job_id = args.job_id.clone();
    }
    if args.lifo {
        opts.lifo = true;
    }
    Ok(NewJob {
        name: args.name.clone(),
        data,
        opts,
    })
}

/// `fixed:MS` or `exponential:MS`.
fn parse_backoff(spec: &str) -> Result<Backoff, UsageError> {
    let bad = || {
        UsageError(format!(
            "--backoff {spec:?}: expected fixed:MS or exponential:MS (e.g. exponential:1000)"
        ))
    };
    let (kind, ms) = spec.split_once(':').ok_or_else(bad)?;
    let delay: u64 = ms.parse().map_err(|_| bad())?;
    match kind {
        "fixed" => Ok(Backoff::Fixed { delay }),
        "exponential" => Ok(Backoff::Exponential { delay }),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_specs() {
        assert_eq!(
            parse_backoff("fixed:500").unwrap(),
            Backoff::Fixed { delay: 500 }
        );
        assert_eq!(
            parse_backoff("exponential:100").unwrap(),
            Backoff::Exponential { delay: 100 }
        );
        for bad in ["fixed", "linear:5", "fixed:-1", "fixed:abc"] {
            assert!(parse_backoff(bad).is_err(), "{bad}");
        }
    }
}

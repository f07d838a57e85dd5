//! `drover cache get`.

use anyhow::anyhow;
use serde_json::{Value, json};

use super::connect_for;
use crate::cli::CacheCommand;
use crate::config::FileConfig;
use crate::output;

/// `drover cache ...`.
#[allow(clippy::print_stdout, clippy::print_stderr)] // the command's output
pub(crate) async fn run(config: &FileConfig, command: &CacheCommand) -> anyhow::Result<()> {
    let CacheCommand::Get(args) = command;
    let conn = connect_for(config).await?;
    let found = queue_core::cache::get(&conn, &args.key)
        .await?
        .ok_or_else(|| anyhow!("{:?} is not cached (never warmed, or expired)", args.key))?;
    let value = serde_json::from_str::<Value>(&found.value).ok();
    if args.json {
        return output::json(&json!({
            "key": args.key,
            "value": value.unwrap_or(Value::String(found.value)),
            "ttl_ms": found.ttl_ms,
        }));
    }
    match value {
        Some(v) => println!("{}", serde_json::to_string_pretty(&v)?),
        None => println!("{}", found.value),
    }
    match found.ttl_ms {
        Some(ms) => eprintln!("expires in {:.1}s", ms as f64 / 1000.0),
        None => eprintln!("no expiry"),
    }
    Ok(())
}

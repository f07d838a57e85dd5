//! `echo`: completes with its payload. Optional payload fields make it a
//! tool for trying a pipeline end to end:
//!
//! | field | effect |
//! |---|---|
//! | `progress` (array) | reports each element as progress, in order |
//! | `sleep_ms` (number) | waits that long first (cancellable) |
//! | `fail_attempts` (number) | fails attempts 1..=n, then succeeds |
//! | `fail` (string) | fails every attempt with that message |
//! | `unrecoverable` (string) | fails with that message, no retries |
//! | `panic` (string) | panics with that message (the job fails, the worker lives) |

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::context::JobContext;
use crate::handler::Handler;
use crate::outcome::JobError;

/// The `echo` handler.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Handler for Echo {
    fn call(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, JobError>> {
        Box::pin(async move {
            let data = ctx.data().clone();
            let knob = |name: &str| data.get(name);
            if let Some(Value::Array(steps)) = knob("progress") {
                for step in steps {
                    ctx.progress(step).await?;
                }
            }
            if let Some(ms) = knob("sleep_ms").and_then(Value::as_u64) {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                    () = ctx.cancelled() => return Err(JobError::failed("echo: cancelled while sleeping")),
                }
            }
            if let Some(n) = knob("fail_attempts").and_then(Value::as_u64) {
                if u64::from(ctx.attempt()) <= n {
                    return Err(JobError::failed(format!(
                        "echo: failing attempt {} of the first {n}",
                        ctx.attempt()
                    )));
                }
            }
            if let Some(message) = knob("fail").and_then(Value::as_str) {
                return Err(JobError::failed(message));
            }
            if let Some(message) = knob("unrecoverable").and_then(Value::as_str) {
                return Err(JobError::unrecoverable(message));
            }
            if let Some(message) = knob("panic").and_then(Value::as_str) {
                panic!("{message}");
            }
            Ok(data)
        })
    }
}

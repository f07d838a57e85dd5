//! Handlers through a real worker pool and Redis: typed data, every
//! outcome, panics, timeouts, unknown names, metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use drover_worker::{HandlerOptions, HandlerRegistry, JobContext, JobError, typed};
use serde::{Deserialize, Serialize};
use serde_json::json;
use support::*;
use testkit::RedisServer;
use tokio_util::sync::CancellationToken;

#[derive(Deserialize)]
struct Resize {
    width: u32,
    height: u32,
}

#[derive(Serialize)]
struct Resized {
    pixels: u32,
    attempt: u32,
    key: String,
}

#[tokio::test]
async fn typed_handlers_decode_data_report_progress_and_return_values() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let mut handlers = HandlerRegistry::new();
    handlers.on("resize", |ctx: JobContext, r: Resize| async move {
        ctx.progress(json!({ "stage": "started" })).await?;
        ctx.log(format!("resizing to {}x{}", r.width, r.height))
            .await?;
        ctx.progress(100).await?;
        Ok::<_, JobError>(Resized {
            pixels: r.width * r.height,
            attempt: ctx.attempt(),
            key: ctx.idempotency_key(),
        })
    });
    let s = settings(vec![queue_settings("images", 2)], Duration::from_secs(5));
    let (pool, _, prom) = start(&conn, &s, handlers).await;
    let id = add(
        &conn,
        "images",
        "resize",
        json!({ "width": 3, "height": 4 }),
        json!({}),
    )
    .await;
    server.wait_in("images", "completed", &id).await;
    let h = server.job_hash("images", &id).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&h["returnvalue"]).unwrap(),
        json!({ "pixels": 12, "attempt": 1, "key": format!("images:{id}:1") })
    );
    assert_eq!(h["progress"], "100");
    let logs = server.list("images", &format!("{id}:logs")).await;
    assert_eq!(logs, vec!["resizing to 3x4"]);
    let progress_events: Vec<String> = server
        .events("images")
        .await
        .into_iter()
        .filter(|(_, e)| e["event"] == "progress")
        .map(|(_, e)| e["data"].clone())
        .collect();
    assert_eq!(progress_events, vec![r#"{"stage":"started"}"#, "100"]);
    assert_eq!(
        metric(
            &prom,
            "drover_jobs_processed_total",
            &[
                ("queue", "images"),
                ("name", "resize"),
                ("outcome", "completed")
            ]
        ),
        1.0
    );
    pool.shutdown(CancellationToken::new()).await;
}

#[tokio::test]
async fn data_that_does_not_fit_fails_without_retries() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let mut handlers = HandlerRegistry::new();
    handlers.on("resize", |_ctx: JobContext, r: Resize| async move {
        Ok::<_, JobError>(r.width)
    });
    let s = settings(vec![queue_settings("images", 1)], Duration::from_secs(5));
    let (pool, _, _) = start(&conn, &s, handlers).await;
    let id = add(
        &conn,
        "images",
        "resize",
        json!({ "width": "wide" }),
        json!({ "attempts": 5 }),
    )
    .await;
    server.wait_in("images", "failed", &id).await;
    let h = server.job_hash("images", &id).await;
    assert_eq!(h["atm"], "1", "not retried");
    assert!(
        h["failedReason"].contains("does not fit handler \"resize\""),
        "{}",
        h["failedReason"]
    );
    pool.shutdown(CancellationToken::new()).await;
}

#[tokio::test]
async fn a_panicking_handler_fails_its_job_and_the_worker_lives_on() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let mut handlers = HandlerRegistry::new();
    handlers.on(
        "boom",
        |_ctx: JobContext, _: serde_json::Value| async move {
            if true {
                panic!("index out of bounds in the handler");
            }
            Ok::<_, JobError>(())
        },
    );
    handlers.on(
        "fine",
        |_ctx: JobContext, _: serde_json::Value| async move { Ok::<_, JobError>("fine") },
    );
    let s = settings(vec![queue_settings("p", 1)], Duration::from_secs(5));
    let (pool, _, prom) = start(&conn, &s, handlers).await;
    let boom = add(&conn, "p", "boom", json!({}), json!({ "attempts": 2 })).await;
    server.wait_in("p", "failed", &boom).await;
    let h = server.job_hash("p", &boom).await;
    assert_eq!(
        h["failedReason"],
        "handler panicked: index out of bounds in the handler"
    );
    assert_eq!(h["atm"], "2", "a panic is a failed attempt and is retried");
    let fine = add(&conn, "p", "fine", json!({}), json!({})).await;
    server.wait_in("p", "completed", &fine).await;
    assert_eq!(
        metric(
            &prom,
            "drover_jobs_processed_total",
            &[("name", "boom"), ("outcome", "failed")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &prom,
            "drover_jobs_processed_total",
            &[("name", "boom"), ("outcome", "retrying")]
        ),
        1.0
    );
    pool.shutdown(CancellationToken::new()).await;
}

#[tokio::test]
async fn timeouts_cancel_the_handler_and_fail_the_attempt() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let saw = saw_cancel.clone();
    let mut handlers = HandlerRegistry::new();
    handlers.register(
        "slow",
        typed("slow", move |ctx: JobContext, _: serde_json::Value| {
            let saw = saw.clone();
            async move {
                // Work spawned by the handler watches the job's token.
                let watcher = tokio::spawn({
                    let ctx = ctx.clone();
                    async move {
                        ctx.cancelled().await;
                        saw.store(true, Ordering::SeqCst);
                    }
                });
                tokio::time::sleep(Duration::from_secs(3600)).await;
                watcher.abort();
                Ok::<_, JobError>(())
            }
        }),
        HandlerOptions {
            timeout: Some(Duration::from_millis(150)),
        },
    );
    let s = settings(vec![queue_settings("t", 1)], Duration::from_secs(5));
    let (pool, _, _) = start(&conn, &s, handlers).await;
    let id = add(&conn, "t", "slow", json!({}), json!({ "attempts": 2 })).await;
    server.wait_in("t", "failed", &id).await;
    let h = server.job_hash("t", &id).await;
    assert_eq!(h["failedReason"], "job timed out after 150ms");
    assert_eq!(h["atm"], "2");
    assert!(
        saw_cancel.load(Ordering::SeqCst),
        "the job's token was cancelled"
    );
    pool.shutdown(CancellationToken::new()).await;
}

#[tokio::test]
async fn every_outcome_type_lands_as_bullmq_expects() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let mut handlers = HandlerRegistry::new();
    handlers.on(
        "unrecoverable",
        |_ctx: JobContext, _: serde_json::Value| async move {
            Err::<(), _>(JobError::unrecoverable("card declined"))
        },
    );
    handlers.on(
        "retry-after",
        |ctx: JobContext, _: serde_json::Value| async move {
            if ctx.attempt() == 1 {
                Err(JobError::retry_after(
                    Duration::from_millis(200),
                    "downstream busy",
                ))
            } else {
                Ok(ctx.attempt())
            }
        },
    );
    let looked = Arc::new(AtomicBool::new(false));
    handlers.on("later", move |ctx: JobContext, _: serde_json::Value| {
        let first_look = !looked.swap(true, Ordering::SeqCst);
        async move {
            // Not ready on the first look; no attempt is spent waiting.
            if first_look {
                return Err(JobError::delay_for(Duration::from_millis(100)));
            }
            Ok(ctx.attempt())
        }
    });
    handlers.on("io", |_ctx: JobContext, _: serde_json::Value| async move {
        std::fs::read("/definitely/not/here")?;
        Ok::<_, JobError>(())
    });
    let s = settings(vec![queue_settings("o", 4)], Duration::from_secs(5));
    let (pool, _, prom) = start(&conn, &s, handlers).await;
    let opts = json!({ "attempts": 3, "backoff": { "type": "fixed", "delay": 60000 } });
    let unrecoverable = add(&conn, "o", "unrecoverable", json!({}), opts.clone()).await;
    let retry_after = add(&conn, "o", "retry-after", json!({}), opts.clone()).await;
    let io = add(&conn, "o", "io", json!({}), json!({})).await;
    server.wait_in("o", "failed", &unrecoverable).await;
    server.wait_in("o", "failed", &io).await;
    server.wait_in("o", "completed", &retry_after).await;
    assert_eq!(server.job_hash("o", &unrecoverable).await["atm"], "1");
    let io_hash = server.job_hash("o", &io).await;
    let trace: Vec<String> = serde_json::from_str(&io_hash["stacktrace"]).unwrap();
    assert!(trace[0].starts_with("Error: No such file"), "{trace:?}");
    let h = server.job_hash("o", &retry_after).await;
    assert_eq!(
        h["returnvalue"], "2",
        "second attempt succeeded despite a 60s backoff"
    );
    assert_eq!(
        h["failedReason"], "downstream busy",
        "the failed attempt left its reason"
    );
    // Later: delayed once without spending an attempt.
    let later = add(&conn, "o", "later", json!({}), json!({ "attempts": 1 })).await;
    server.wait_in("o", "completed", &later).await;
    assert_eq!(server.job_hash("o", &later).await["returnvalue"], "1");
    assert_eq!(
        metric(
            &prom,
            "drover_jobs_processed_total",
            &[("name", "later"), ("outcome", "delayed")]
        ),
        1.0
    );
    pool.shutdown(CancellationToken::new()).await;
}

#[tokio::test]
async fn jobs_without_a_handler_fail_and_say_what_is_handled() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let mut handlers = HandlerRegistry::new();
    handlers.on(
        "known",
        |_ctx: JobContext, _: serde_json::Value| async move { Ok::<_, JobError>(()) },
    );
    let s = settings(vec![queue_settings("u", 1)], Duration::from_secs(5));
    let (pool, _, _) = start(&conn, &s, handlers).await;
    let id = add(&conn, "u", "mystery", json!({}), json!({ "attempts": 3 })).await;
    server.wait_in("u", "failed", &id).await;
    let h = server.job_hash("u", &id).await;
    assert_eq!(
        h["failedReason"],
        "no handler for job name \"mystery\" on this worker (it handles: known)"
    );
    assert_eq!(h["atm"], "1");
    pool.shutdown(CancellationToken::new()).await;
}

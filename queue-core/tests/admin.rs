//! Admin actions against a real Redis: each does what it says, refuses what
//! it must, and works in bounded batches.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use std::sync::Arc;
use std::time::Duration;

use queue_core::inspect;
use queue_core::{
    Consumer, ConsumerOptions, Disposition, ErrorKind, Failure, JobState, QueueError, admin,
};
use serde_json::{Value, json};
use support::*;
use testkit::{Check, RedisServer, wait_until};

async fn counts(conn: &queue_core::Connection, q: &queue_core::QueueName) -> inspect::QueueCounts {
    inspect::queue_counts(conn, std::slice::from_ref(q))
        .await
        .unwrap()
        .remove(0)
        .1
}

async fn run_to_failure(
    conn: &queue_core::Connection,
    q: &queue_core::QueueName,
    n: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(add(conn, q, "n", json!({ "i": i }), json!({})).await);
    }
    let consumer = Consumer::start(
        conn,
        ConsumerOptions::new(q.clone(), 4),
        Arc::new(FnProcessor(|_| {
            Box::pin(async { Disposition::Fail(Failure::new("broken")) })
                as futures::future::BoxFuture<'static, Disposition>
        })),
        Arc::new(Recorder::default()),
    )
    .await
    .unwrap();
    wait_until("all failed", Duration::from_secs(15), || async {
        match counts(conn, q).await.failed as usize {
            f if f == n => Check::Done(()),
            f => Check::NotYet(format!("{f} failed")),
        }
    })
    .await;
    consumer.stop_fetching();
    consumer.close(Duration::from_secs(5)).await;
    ids
}

#[tokio::test]
async fn actions_on_missing_queues_and_jobs_are_refused_without_creating_anything() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let typo = queue("typo");
    let err = admin::pause(&conn, &typo).await.unwrap_err();
    assert!(matches!(err, QueueError::QueueNotFound { .. }), "{err}");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut server.conn().await)
        .await
        .unwrap();
    assert!(keys.is_empty(), "nothing written: {keys:?}");

    let q = queue("real");
    add(&conn, &q, "n", json!({}), json!({})).await;
    for err in [
        admin::retry_job(&conn, &q, "404").await.unwrap_err(),
        admin::promote_job(&conn, &q, "404").await.unwrap_err(),
        admin::remove_job(&conn, &q, "404").await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    }
}

#[tokio::test]
async fn pause_and_resume_stop_and_restart_workers() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("pausing");
    add(&conn, &q, "first", json!({}), json!({})).await;
    admin::pause(&conn, &q).await.unwrap();
    assert!(counts(&conn, &q).await.paused);
    let consumer = Consumer::start(
        &conn,
        ConsumerOptions {
            drain_delay: Duration::from_secs(1),
            ..ConsumerOptions::new(q.clone(), 1)
        },
        Arc::new(FnProcessor(|_| {
            Box::pin(async { Disposition::Complete(Value::Null) })
                as futures::future::BoxFuture<'static, Disposition>
        })),
        Arc::new(Recorder::default()),
    )
    .await
    .unwrap();
    add(&conn, &q, "second", json!({}), json!({})).await;
    // While paused nothing is taken. To make that check mean something,
    // first wait until the worker has looked for work and gone to block on
    // the marker (BZPOPMIN), which it only does after finding none.
    server.wait_blocked_in("bzpopmin").await;
    let c = counts(&conn, &q).await;
    assert_eq!((c.waiting, c.completed), (2, 0));
    admin::resume(&conn, &q).await.unwrap();
    wait_until("both completed", Duration::from_secs(10), || async {
        match counts(&conn, &q).await.completed {
            2 => Check::Done(()),
            n => Check::NotYet(format!("{n} completed")),
        }
    })
    .await;
    consumer.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn retry_one_and_all_failed() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("retries");
    let ids = run_to_failure(&conn, &q, 5).await;
    admin::retry_job(&conn, &q, &ids[0]).await.unwrap();
    let c = counts(&conn, &q).await;
    assert_eq!((c.waiting, c.failed), (1, 4));
    // Retrying a waiting job is refused: it is not failed.
    let err = admin::retry_job(&conn, &q, &ids[0]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(admin::retry_all_failed(&conn, &q).await.unwrap(), 4);
    let c = counts(&conn, &q).await;
    assert_eq!((c.waiting, c.failed), (5, 0));
}

#[tokio::test]
async fn promote_one_and_all_delayed() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("promo");
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(add(&conn, &q, "n", json!({}), json!({ "delay": 600000 })).await);
    }
    admin::promote_job(&conn, &q, &ids[0]).await.unwrap();
    assert_eq!(counts(&conn, &q).await.waiting, 1);
    let err = admin::promote_job(&conn, &q, &ids[0]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(admin::promote_all_delayed(&conn, &q).await.unwrap(), 3);
    let c = counts(&conn, &q).await;
    assert_eq!((c.waiting, c.delayed), (4, 0));
}

#[tokio::test]
async fn remove_refuses_a_running_job() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("removal");
    let running = add(&conn, &q, "n", json!({}), json!({})).await;
    let consumer = Consumer::start(
        &conn,
        ConsumerOptions::new(q.clone(), 1),
        Arc::new(FnProcessor(|_| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Disposition::Complete(Value::Null)
            }) as futures::future::BoxFuture<'static, Disposition>
        })),
        Arc::new(Recorder::default()),
    )
    .await
    .unwrap();
    wait_until("job active", Duration::from_secs(10), || async {
        match consumer.in_flight() {
            1 => Check::Done(()),
            n => Check::NotYet(format!("{n} in flight")),
        }
    })
    .await;
    let err = admin::remove_job(&conn, &q, &running).await.unwrap_err();
    assert!(matches!(err, QueueError::JobLocked { .. }), "{err}");
    consumer.stop_fetching();
    let waiting = add(&conn, &q, "n", json!({}), json!({})).await;
    admin::remove_job(&conn, &q, &waiting).await.unwrap();
    assert!(server.job_hash("removal", &waiting).await.is_empty());
    consumer.abandon_in_flight();
    consumer.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn clean_respects_limit_and_grace_in_batches() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("cleaning");
    run_to_failure(&conn, &q, 30).await;
    // Everything failed just now: a long grace keeps them all.
    let kept = admin::clean(&conn, &q, JobState::Failed, Duration::from_secs(3600), None)
        .await
        .unwrap();
    assert_eq!(kept, 0);
    let removed = admin::clean(&conn, &q, JobState::Failed, Duration::ZERO, Some(12))
        .await
        .unwrap();
    assert_eq!(removed, 12);
    assert_eq!(counts(&conn, &q).await.failed, 18);
    let removed = admin::clean(&conn, &q, JobState::Failed, Duration::ZERO, None)
        .await
        .unwrap();
    assert_eq!(removed, 18);
    assert!(
        admin::clean(&conn, &q, JobState::WaitingChildren, Duration::ZERO, None)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn drain_removes_waiting_work_in_batches() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("draining");
    let jobs: Vec<queue_core::producer::NewJob> = (0..2500)
        .map(|i| queue_core::producer::NewJob {
            name: "n".into(),
            data: json!({ "i": i }),
            opts: Default::default(),
        })
        .collect();
    for chunk in jobs.chunks(queue_core::producer::MAX_BULK_JOBS) {
        queue_core::producer::enqueue_bulk(&conn, &q, chunk)
            .await
            .unwrap();
    }
    add(&conn, &q, "p", json!({}), json!({ "priority": 3 })).await;
    add(&conn, &q, "d", json!({}), json!({ "delay": 600000 })).await;
    assert_eq!(admin::drain(&conn, &q, false).await.unwrap(), 2501);
    let c = counts(&conn, &q).await;
    assert_eq!((c.waiting, c.prioritized, c.delayed), (0, 0, 1));
    assert_eq!(admin::drain(&conn, &q, true).await.unwrap(), 1);
    assert_eq!(counts(&conn, &q).await.delayed, 0);
}

#[tokio::test]
async fn obliterate_refuses_active_jobs_unless_forced() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("gone");
    for _ in 0..3 {
        add(&conn, &q, "n", json!({}), json!({})).await;
    }
    // Fake an active job the way a worker would hold one.
    redis::cmd("RPOPLPUSH")
        .arg("bull:gone:wait")
        .arg("bull:gone:active")
        .query_async::<()>(&mut server.conn().await)
        .await
        .unwrap();
    let err = admin::obliterate(&conn, &q, false).await.unwrap_err();
    assert!(
        matches!(err, QueueError::QueueHasActiveJobs { .. }),
        "{err}"
    );
    admin::obliterate(&conn, &q, true).await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("bull:gone:*")
        .query_async(&mut server.conn().await)
        .await
        .unwrap();
    assert!(keys.is_empty(), "left behind: {keys:?}");
    let err = admin::pause(&conn, &q).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

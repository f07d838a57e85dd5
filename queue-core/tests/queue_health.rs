//! The read models behind the dashboard's overview and confirmations,
//! against a real Redis: queue latency, throughput history from the
//! metrics a real consumer records, Redis's own figures, clean estimates,
//! job summaries without payloads, job state lookups, and discovery that
//! refreshes behind the caller's back.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use std::sync::Arc;
use std::time::Duration;

use queue_core::inspect::{self, Order, SeriesSource};
use queue_core::{
    Consumer, ConsumerOptions, Disposition, Failure, JobState, QueueDiscovery, now_ms,
};
use serde_json::json;
use support::*;
use testkit::{Check, RedisServer, wait_until};

#[tokio::test]
async fn head_of_line_is_the_next_job_and_its_ready_time() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let (fifo, prio, empty) = (queue("fifo"), queue("prio"), queue("empty"));
    let first = add(&conn, &fifo, "n", json!({}), json!({})).await;
    add(&conn, &fifo, "n", json!({}), json!({})).await;
    add(&conn, &prio, "n", json!({}), json!({ "priority": 3 })).await;
    add(&conn, &empty, "n", json!({}), json!({ "delay": 60_000 })).await;
    let heads = inspect::head_of_line(&conn, &[fifo.clone(), prio, empty])
        .await
        .unwrap();
    // The first job added is the next to run, and has waited since it was
    // added.
    assert_eq!(heads[0].job_id.as_deref(), Some(first.as_str()));
    let created: u64 = server.job_hash("fifo", &first).await["timestamp"]
        .parse()
        .unwrap();
    assert_eq!(heads[0].ready_since_ms, Some(created));
    assert!(heads[0].age_ms(now_ms()).is_some());
    assert!(heads[1].job_id.is_some(), "prioritized jobs wait too");
    assert_eq!(heads[2].job_id, None, "a delayed job is not waiting");
    assert_eq!(heads[2].age_ms(now_ms()), None);
}

#[tokio::test]
async fn throughput_comes_from_the_metrics_a_consumer_records() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("work");
    let consumer = Consumer::start(
        &conn,
        ConsumerOptions::new(q.clone(), 4),
        Arc::new(FnProcessor(|job: queue_core::ActiveJob| {
            let fail = job.data()["fail"].as_bool().unwrap_or(false);
            Box::pin(async move {
                if fail {
                    Disposition::Fail(Failure::new("planned"))
                } else {
                    Disposition::Complete(json!(null))
                }
            }) as futures::future::BoxFuture<'static, Disposition>
        })),
        Arc::new(Recorder::default()),
    )
    .await
    .unwrap();
    for i in 0..9 {
        add(&conn, &q, "n", json!({ "fail": i % 3 == 0 }), json!({})).await;
    }
    let t = wait_until(
        "9 finished jobs in the metrics",
        Duration::from_secs(20),
        || async {
            let t = inspect::throughput(&conn, std::slice::from_ref(&q), 60)
                .await
                .unwrap();
            let t = t.into_iter().next().unwrap();
            let seen = (t.completed.total(), t.failed.total());
            if seen == (6, 3) {
                Check::Done(t)
            } else {
                Check::NotYet(format!("{seen:?}"))
            }
        },
    )
    .await;
    consumer.close(Duration::from_secs(5)).await;
    assert_eq!(t.completed.source, SeriesSource::Metrics);
    assert_eq!(t.completed.counts.len(), 60);
    // Everything finished within the last minute or two.
    assert_eq!(t.completed.counts[..58].iter().sum::<u64>(), 0);
    assert!((t.failure_rate().unwrap() - 1.0 / 3.0).abs() < 1e-9);

    // A queue whose workers keep no metrics is counted from its finished
    // jobs (here, one completed job written with its finish time).
    let other = queue("nometrics");
    let id = add(&conn, &other, "n", json!({}), json!({})).await;
    let mut r = server.conn().await;
    let finished = now_ms();
    redis::pipe()
        .lrem("bull:nometrics:wait", 1, &id)
        .zadd("bull:nometrics:completed", &id, finished)
        .hset(format!("bull:nometrics:{id}"), "finishedOn", finished)
        .query_async::<()>(&mut r)
        .await
        .unwrap();
    let t = inspect::throughput(&conn, &[other], 5)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(t.completed.source, SeriesSource::RetainedJobs);
    assert_eq!(t.completed.counts, vec![0, 0, 0, 0, 1]);
    assert_eq!(t.failure_rate(), Some(0.0));
}

#[tokio::test]
async fn server_info_reads_memory_and_clients() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let info = inspect::server_info(&conn).await.unwrap();
    assert_eq!(info.nodes, 1);
    assert!(info.used_memory_bytes > 0);
    assert!(info.connected_clients >= 1);
    assert!(info.version.starts_with(char::is_numeric), "{info:?}");
}

#[tokio::test]
async fn clean_estimates_are_exact_by_finish_time_and_bounds_otherwise() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("c");
    let mut r = server.conn().await;
    let now = now_ms();
    // Three failed jobs: two finished an hour ago, one just now.
    for (id, at) in [
        ("old1", now - 3_600_000),
        ("old2", now - 3_600_000),
        ("new", now),
    ] {
        redis::cmd("ZADD")
            .arg("bull:c:failed")
            .arg(at)
            .arg(id)
            .query_async::<()>(&mut r)
            .await
            .unwrap();
    }
    add(&conn, &q, "n", json!({}), json!({})).await;
    add(&conn, &q, "n", json!({}), json!({})).await;
    let est = |state, secs| {
        let conn = conn.clone();
        let q = q.clone();
        async move {
            inspect::clean_estimate(&conn, &q, state, Duration::from_secs(secs))
                .await
                .unwrap()
        }
    };
    let e = est(JobState::Failed, 600).await;
    assert_eq!((e.count, e.exact), (2, true));
    assert_eq!(est(JobState::Failed, 0).await.count, 3);
    let e = est(JobState::Waiting, 600).await;
    assert_eq!((e.count, e.exact), (2, false));
}

#[tokio::test]
async fn summaries_leave_payloads_out_but_say_their_size() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("big");
    let blob = "x".repeat(200_000);
    let id = add(
        &conn,
        &q,
        "upload",
        json!({ "blob": blob }),
        json!({ "attempts": 3 }),
    )
    .await;
    let page = inspect::list_job_summaries(&conn, &q, JobState::Waiting, 0, 10, Order::NewestFirst)
        .await
        .unwrap();
    assert_eq!(page.total, 1);
    let job = &page.jobs[0];
    assert_eq!(
        (job.id.as_str(), job.name.as_str()),
        (id.as_str(), "upload")
    );
    assert_eq!(job.data, serde_json::Value::Null);
    assert_eq!(job.max_attempts, 3);
    assert!(page.data_bytes[0] > 200_000, "{:?}", page.data_bytes);
    // The full page still carries them.
    let full = inspect::list_jobs(&conn, &q, JobState::Waiting, 0, 10, Order::NewestFirst)
        .await
        .unwrap();
    assert_eq!(
        full.jobs[0].data["blob"].as_str().map(str::len),
        Some(200_000)
    );
    assert!(full.data_bytes.is_empty());
}

#[tokio::test]
async fn job_state_is_found_in_every_structure() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("s");
    let waiting = add(&conn, &q, "n", json!({}), json!({})).await;
    let delayed = add(&conn, &q, "n", json!({}), json!({ "delay": 60_000 })).await;
    let prio = add(&conn, &q, "n", json!({}), json!({ "priority": 2 })).await;
    let state = |id: String| {
        let conn = conn.clone();
        let q = q.clone();
        async move { inspect::job_detail(&conn, &q, &id).await.unwrap().state }
    };
    assert_eq!(state(waiting.clone()).await, Some(JobState::Waiting));
    assert_eq!(state(delayed).await, Some(JobState::Delayed));
    assert_eq!(state(prio).await, Some(JobState::Prioritized));
    // A job in the legacy paused list is waiting too.
    let mut r = server.conn().await;
    redis::pipe()
        .lrem("bull:s:wait", 1, &waiting)
        .lpush("bull:s:paused", &waiting)
        .query_async::<()>(&mut r)
        .await
        .unwrap();
    assert_eq!(state(waiting.clone()).await, Some(JobState::Waiting));
    // In no structure at all (mid-removal): no state, but still readable.
    redis::cmd("DEL")
        .arg("bull:s:paused")
        .query_async::<()>(&mut r)
        .await
        .unwrap();
    assert_eq!(state(waiting.clone()).await, None);
    // A caller that saw it waiting is not sent down the long lists again
    // (a job leaves wait only for a structure probed cheaply, or is
    // deleted) ...
    let since = |id: String, previous| {
        let conn = conn.clone();
        let q = q.clone();
        async move {
            inspect::job_detail_since(&conn, &q, &id, previous)
                .await
                .map(|d| d.state)
        }
    };
    assert_eq!(
        since(waiting.clone(), Some(JobState::Waiting))
            .await
            .unwrap(),
        Some(JobState::Waiting)
    );
    // ... but sees it wherever a cheap probe finds it, and sees it gone.
    redis::cmd("LPUSH")
        .arg("bull:s:active")
        .arg(&waiting)
        .query_async::<()>(&mut r)
        .await
        .unwrap();
    assert_eq!(
        since(waiting.clone(), Some(JobState::Waiting))
            .await
            .unwrap(),
        Some(JobState::Active)
    );
    redis::cmd("DEL")
        .arg(format!("bull:s:{waiting}"))
        .query_async::<()>(&mut r)
        .await
        .unwrap();
    assert!(since(waiting, Some(JobState::Waiting)).await.is_err());
}

#[tokio::test]
async fn discovery_answers_at_once_and_refreshes_in_the_background() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    add(&conn, &queue("one"), "n", json!({}), json!({})).await;
    let discovery = QueueDiscovery::new(conn.clone(), Duration::from_millis(50));
    assert_eq!(discovery.queues().await.unwrap().len(), 1);
    add(&conn, &queue("two"), "n", json!({}), json!({})).await;
    // Stale answers come back while a scan runs behind them; the new queue
    // shows up without anyone invalidating.
    wait_until(
        "the second queue to be discovered",
        Duration::from_secs(10),
        || async {
            let n = discovery.queues().await.unwrap().len();
            if n == 2 {
                Check::Done(())
            } else {
                Check::NotYet(format!("{n} queues"))
            }
        },
    )
    .await;
    // A queue a Drover process writes to is listed at once, stale scan or
    // not; one gone (removed by another client) is dropped at the next
    // scan.
    let three = queue("three");
    let other = connect(&server).await;
    add(&other, &three, "n", json!({}), json!({})).await;
    assert!(discovery.queues().await.unwrap().contains(&three));
    let slow = QueueDiscovery::new(conn.clone(), Duration::from_secs(3600));
    assert_eq!(slow.queues().await.unwrap().len(), 3);
    let four = queue("four");
    add(&other, &four, "n", json!({}), json!({})).await;
    assert!(
        slow.queues().await.unwrap().contains(&four),
        "registered, though the scan is an hour fresh"
    );
    let mut r = server.conn().await;
    redis::cmd("DEL")
        .arg("bull:four:meta")
        .arg("bull:four:id")
        .arg("bull:four:wait")
        .query_async::<()>(&mut r)
        .await
        .unwrap();
    let fresh = QueueDiscovery::new(conn.clone(), Duration::ZERO);
    assert!(!fresh.queues().await.unwrap().contains(&four));
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg("drover:bull:queues")
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(!members.contains(&"four".to_string()), "{members:?}");
}

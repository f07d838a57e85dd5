//! Discovery, counts, job pages and job details against a real Redis,
//! including data shaped the way other BullMQ clients leave it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use std::time::Duration;

use queue_core::inspect::{self, Order};
use queue_core::{JobState, QueueDiscovery};
use serde_json::json;
use support::*;
use testkit::RedisServer;

#[tokio::test]
async fn discovery_finds_queues_by_scan_and_caches() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let discovery = QueueDiscovery::new(conn.clone(), Duration::from_secs(3600));
    assert!(discovery.queues().await.unwrap().is_empty());
    // Queues only another client wrote (a bare id counter) wait for a
    // scan: cached, so still empty until invalidated.
    let mut raw = server.conn().await;
    for q in ["alpha", "{tagged}", "with space"] {
        redis::cmd("SET")
            .arg(format!("bull:{q}:id"))
            .arg(1)
            .query_async::<()>(&mut raw)
            .await
            .unwrap();
    }
    assert!(discovery.queues().await.unwrap().is_empty());
    discovery.invalidate().await;
    let names: Vec<String> = discovery
        .queues()
        .await
        .unwrap()
        .iter()
        .map(|q| q.to_string())
        .collect();
    assert_eq!(names, vec!["alpha", "with space", "{tagged}"]);
    // A queue that only has a meta hash (a Node `new Queue()` that never
    // added) is found too; other prefixes are not.
    let mut r = server.conn().await;
    redis::cmd("HSET")
        .arg("bull:metaonly:meta")
        .arg("opts.maxLenEvents")
        .arg(10000)
        .query_async::<()>(&mut r)
        .await
        .unwrap();
    redis::cmd("SET")
        .arg("other:q:id")
        .arg(1)
        .query_async::<()>(&mut r)
        .await
        .unwrap();
    let fresh = QueueDiscovery::new(conn, Duration::ZERO);
    let names: Vec<String> = fresh
        .queues()
        .await
        .unwrap()
        .iter()
        .map(|q| q.to_string())
        .collect();
    assert_eq!(names, vec!["alpha", "metaonly", "with space", "{tagged}"]);
}

#[tokio::test]
async fn counts_for_many_queues_in_one_call() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let (a, b, empty) = (queue("a"), queue("b"), queue("never-used"));
    for _ in 0..3 {
        add(&conn, &a, "n", json!({}), json!({})).await;
    }
    add(&conn, &a, "n", json!({}), json!({ "priority": 5 })).await;
    add(&conn, &a, "n", json!({}), json!({ "delay": 60000 })).await;
    add(&conn, &b, "n", json!({}), json!({})).await;
    queue_core::admin::pause(&conn, &b).await.unwrap();
    // A legacy 5.x paused list still counts as waiting.
    redis::cmd("LPUSH")
        .arg("bull:b:paused")
        .arg("legacy-1")
        .query_async::<()>(&mut server.conn().await)
        .await
        .unwrap();
    let counts = inspect::queue_counts(&conn, &[a.clone(), b.clone(), empty.clone()])
        .await
        .unwrap();
    let ca = &counts[0].1;
    assert_eq!(
        (ca.waiting, ca.prioritized, ca.delayed, ca.paused),
        (3, 1, 1, false)
    );
    let cb = &counts[1].1;
    assert_eq!((cb.waiting, cb.paused), (2, true));
    assert_eq!(counts[2].1, inspect::QueueCounts::default());
    assert_eq!(counts[0].0, a);
}

#[tokio::test]
async fn pages_walk_lists_and_sorted_sets_both_ways() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("pages");
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(add(&conn, &q, &format!("job-{i}"), json!({ "i": i }), json!({})).await);
    }
    // Newest first: the last added leads.
    let page = inspect::list_jobs(&conn, &q, JobState::Waiting, 0, 3, Order::NewestFirst)
        .await
        .unwrap();
    assert_eq!(page.total, 7);
    assert_eq!(
        page.jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        vec![&ids[6], &ids[5], &ids[4]]
    );
    // Oldest first, second page.
    let page = inspect::list_jobs(&conn, &q, JobState::Waiting, 3, 3, Order::OldestFirst)
        .await
        .unwrap();
    assert_eq!(
        page.jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        vec![&ids[3], &ids[4], &ids[5]]
    );
    // Past the end: empty, total still right.
    let page = inspect::list_jobs(&conn, &q, JobState::Waiting, 7, 3, Order::NewestFirst)
        .await
        .unwrap();
    assert!(page.jobs.is_empty());
    assert_eq!(page.total, 7);

    // Delayed is a sorted set by due time; oldest first = soonest due.
    let d = queue("delays");
    let late = add(&conn, &d, "late", json!({}), json!({ "delay": 90000 })).await;
    let soon = add(&conn, &d, "soon", json!({}), json!({ "delay": 30000 })).await;
    let page = inspect::list_jobs(&conn, &d, JobState::Delayed, 0, 10, Order::OldestFirst)
        .await
        .unwrap();
    assert_eq!(
        page.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        vec![soon.clone(), late.clone()]
    );
    assert!(
        inspect::list_jobs(&conn, &d, JobState::Delayed, 0, 0, Order::OldestFirst)
            .await
            .is_err()
    );
    assert!(
        inspect::list_jobs(&conn, &d, JobState::Delayed, 0, 1001, Order::OldestFirst)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn waiting_pages_continue_into_the_legacy_paused_list() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("legacy");
    let mut r = server.conn().await;
    // Newest first order of the virtual list: wait head..tail, then
    // paused head..tail.
    for (list, id) in [
        ("wait", "w1"),
        ("wait", "w2"),
        ("paused", "p1"),
        ("paused", "p2"),
    ] {
        redis::cmd("LPUSH")
            .arg(format!("bull:legacy:{list}"))
            .arg(id)
            .query_async::<()>(&mut r)
            .await
            .unwrap();
        redis::cmd("HSET")
            .arg(format!("bull:legacy:{id}"))
            .arg("name")
            .arg(id)
            .arg("data")
            .arg("{}")
            .query_async::<()>(&mut r)
            .await
            .unwrap();
    }
    let ids = |page: inspect::JobPage| page.jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let newest = inspect::list_jobs(&conn, &q, JobState::Waiting, 1, 2, Order::NewestFirst)
        .await
        .unwrap();
    assert_eq!(newest.total, 4);
    assert_eq!(ids(newest), vec!["w1", "p2"]);
    let oldest = inspect::list_jobs(&conn, &q, JobState::Waiting, 0, 3, Order::OldestFirst)
        .await
        .unwrap();
    assert_eq!(ids(oldest), vec!["p1", "p2", "w1"]);
}

#[tokio::test]
async fn job_detail_reads_state_logs_and_foreign_data() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("detail");
    let id = add(&conn, &q, "n", json!({ "x": 1 }), json!({ "attempts": 2 })).await;
    let mut r = server.conn().await;
    for i in 0..1005 {
        redis::cmd("RPUSH")
            .arg(format!("bull:detail:{id}:logs"))
            .arg(format!("line {i}"))
            .query_async::<()>(&mut r)
            .await
            .unwrap();
    }
    let detail = inspect::job_detail(&conn, &q, &id).await.unwrap();
    assert_eq!(detail.state, Some(JobState::Waiting));
    assert_eq!(detail.record.data, json!({ "x": 1 }));
    assert_eq!(detail.record.max_attempts, 2);
    assert_eq!(detail.logs_total, 1005);
    assert_eq!(detail.logs.len(), 1000);
    assert_eq!(detail.logs.first().unwrap(), "line 5");
    assert_eq!(detail.logs.last().unwrap(), "line 1004");

    // A job a foreign client wrote with broken JSON still shows, flagged.
    redis::cmd("HSET")
        .arg("bull:detail:broken")
        .arg("name")
        .arg("x")
        .arg("data")
        .arg("{oops")
        .query_async::<()>(&mut r)
        .await
        .unwrap();
    redis::cmd("ZADD")
        .arg("bull:detail:failed")
        .arg(1)
        .arg("broken")
        .query_async::<()>(&mut r)
        .await
        .unwrap();
    let broken = inspect::job_detail(&conn, &q, "broken").await.unwrap();
    assert_eq!(broken.state, Some(JobState::Failed));
    assert_eq!(broken.record.malformed, vec!["data"]);

    let missing = inspect::job_detail(&conn, &q, "nope").await.unwrap_err();
    assert_eq!(missing.kind(), queue_core::ErrorKind::NotFound);
}

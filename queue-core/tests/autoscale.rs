//! The autoscaler's Redis side: signals read from BullMQ's structures, the
//! leader lease with fencing, and the published records read back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use queue_core::autoscale::{
    self, Actuator, Decision, DesiredState, Direction, HistorySample, Lease, PolicySpec, Retention,
    SignalsView, Tick,
};
use queue_core::now_ms;
use serde_json::json;
use support::{add, connect, queue};
use testkit::RedisServer;

#[tokio::test]
async fn signals_count_prioritized_and_due_delayed_jobs_and_pauses() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let q = queue("sig");
    let first = add(&conn, &q, "a", json!({}), json!({})).await;
    add(&conn, &q, "a", json!({}), json!({})).await;
    add(&conn, &q, "a", json!({}), json!({"priority": 3})).await;
    add(&conn, &q, "a", json!({}), json!({"delay": 200})).await;
    add(&conn, &q, "a", json!({}), json!({"delay": 600_000})).await;
    let ts: u64 = redis::cmd("HGET")
        .arg(format!("bull:sig:{first}"))
        .arg("timestamp")
        .query_async(&mut server.conn().await)
        .await
        .unwrap();
    redis::cmd("HSET")
        .arg("bull:sig:meta")
        .arg("concurrency")
        .arg(7)
        .query_async::<()>(&mut server.conn().await)
        .await
        .unwrap();
    let now = now_ms();
    let s = &autoscale::read_samples(&conn, std::slice::from_ref(&q), now, 1_000)
        .await
        .unwrap()[0];
    assert_eq!(
        (s.waiting, s.prioritized, s.delayed, s.delayed_due),
        (2, 1, 2, 1)
    );
    assert_eq!(s.backlog(), 4, "{s:?}");
    assert_eq!(
        s.oldest_wait_ms,
        Some(now - ts),
        "age of the first job added"
    );
    assert_eq!(s.global_concurrency, Some(7));
    assert_eq!(s.added_total, 5);
    assert!(s.next_delayed_ms.unwrap() >= ts + 200);
    redis::cmd("HSET")
        .arg("bull:sig:meta")
        .arg("paused")
        .arg(1)
        .query_async::<()>(&mut server.conn().await)
        .await
        .unwrap();
    let s = &autoscale::read_samples(&conn, std::slice::from_ref(&q), now_ms(), 1_000)
        .await
        .unwrap()[0];
    assert!(s.paused);
    assert_eq!(s.backlog(), 0, "a paused queue has no backlog");
}

fn retention() -> Retention {
    Retention {
        lease_ttl: Duration::from_secs(5),
        decisions: 3,
        history_samples: 2,
        history_ttl: Duration::from_secs(60),
    }
}

fn tick(workers: u32, at_ms: u64) -> Tick {
    Tick {
        desired: vec![DesiredState {
            queue: "q".into(),
            actuator: Actuator::Concurrency,
            workers,
            assignments: BTreeMap::from([("w1".to_string(), workers)]),
            epoch: 0,
            at_ms,
        }],
        status: Vec::new(),
        decisions: vec![Decision {
            at_ms,
            queue: "q".into(),
            from: 1,
            to: workers,
            direction: Direction::Up,
            reason: "test".into(),
            signals: SignalsView::default(),
            epoch: 0,
        }],
        history: vec![(
            queue("q"),
            HistorySample {
                at_ms,
                desired: workers,
                actual: 1,
                recommended: workers,
            },
        )],
    }
}

#[tokio::test]
async fn one_leader_at_a_time_and_a_deposed_one_writes_nothing() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let ttl = Duration::from_secs(5);
    let a = Lease::try_acquire(&conn, "a", ttl, 1)
        .await
        .unwrap()
        .unwrap();
    assert!(
        Lease::try_acquire(&conn, "b", ttl, 2)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        autoscale::publish(&conn, &a, &tick(4, 10), &retention())
            .await
            .unwrap()
    );
    assert_eq!(autoscale::leader(&conn).await.unwrap().unwrap().holder, "a");

    // The lease expires (the leader died): b takes over with a new epoch.
    redis::cmd("DEL")
        .arg("drover:bull:{autoscale}:leader")
        .query_async::<()>(&mut server.conn().await)
        .await
        .unwrap();
    let b = Lease::try_acquire(&conn, "b", ttl, 3)
        .await
        .unwrap()
        .unwrap();
    assert!(b.epoch() > a.epoch());
    assert!(
        autoscale::publish(&conn, &b, &tick(6, 20), &retention())
            .await
            .unwrap()
    );
    // a comes back from a long pause: its write is refused whole.
    assert!(
        !autoscale::publish(&conn, &a, &tick(9, 30), &retention())
            .await
            .unwrap()
    );
    let desired = autoscale::desired_states(&conn, &[queue("q")])
        .await
        .unwrap();
    assert_eq!(desired[0].as_ref().unwrap().workers, 6);
    assert!(
        !a.clone().release(&conn).await.unwrap(),
        "not a's to release"
    );
    assert!(b.release(&conn).await.unwrap());
    assert!(autoscale::leader(&conn).await.unwrap().is_none());
}

#[tokio::test]
async fn decisions_and_history_are_bounded_and_read_back_in_order() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let lease = Lease::try_acquire(&conn, "a", Duration::from_secs(5), 1)
        .await
        .unwrap()
        .unwrap();
    for (i, workers) in [2, 3, 4, 5].into_iter().enumerate() {
        let t = tick(workers, 100 + i as u64);
        assert!(
            autoscale::publish(&conn, &lease, &t, &retention())
                .await
                .unwrap()
        );
    }
    let decisions = autoscale::recent_decisions(&conn, None, 100).await.unwrap();
    let tos: Vec<u32> = decisions.iter().map(|d| d.to).collect();
    assert_eq!(tos, [5, 4, 3], "newest first, three kept");
    let history = autoscale::worker_history(&conn, &queue("q"), 100)
        .await
        .unwrap();
    let desired: Vec<u32> = history.iter().map(|s| s.desired).collect();
    assert_eq!(desired, [4, 5], "oldest first, two kept");
    assert!(
        autoscale::recent_decisions(&conn, Some(&queue("other")), 100)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn bad_policies_are_refused_before_anything_is_written() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let bad: PolicySpec =
        serde_json::from_value(json!({"min_workers": 4, "max_workers": 2})).unwrap();
    let err = autoscale::put_policy(&conn, &queue("q"), &bad)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("min_workers"), "{err}");
    assert_eq!(server.dbsize().await, 0);
    let good: PolicySpec = serde_json::from_value(json!({"max_workers": 3})).unwrap();
    autoscale::put_policy(&conn, &queue("q"), &good)
        .await
        .unwrap();
    assert_eq!(autoscale::api_policies(&conn).await.unwrap()[0].1, good);
    assert!(autoscale::remove_policy(&conn, &queue("q")).await.unwrap());
}

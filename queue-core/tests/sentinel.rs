//! A `redis+sentinel://` connection follows a failover the Sentinels make
//! while the old master stays up (`SENTINEL FAILOVER`): the old master
//! stays up and later turns into a read-only replica, so connections to
//! it would not break by themselves; the relay moves them to the new master, and adds go on
//! through the same `Connection`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

use std::time::Duration;

use queue_core::producer::{self, JobOptions, NewJob};
use queue_core::{Connection, QueueName, RedisConfig};
use serde_json::json;
use testkit::{Check, SentinelGroup, wait_until};

#[tokio::test]
async fn a_connection_follows_a_failover_to_a_replica_while_the_old_master_lives() {
    let group = SentinelGroup::start(1).await;
    let conn = Connection::connect(
        RedisConfig {
            url: group.url(),
            ..RedisConfig::default()
        }
        .resolve()
        .unwrap(),
    )
    .await
    .unwrap();
    let first = conn.sentinel_master().unwrap();
    assert_eq!(first.port(), group.servers()[0].port());
    let q = QueueName::new("q").unwrap();
    producer::enqueue(&conn, &q, &job()).await.unwrap();

    group.failover().await;
    let new = group.wait_failover(0, Duration::from_secs(30)).await;
    let new_port = group.servers()[new].port();
    wait_until("the relay follows", Duration::from_secs(30), || async {
        match conn.sentinel_master() {
            Some(m) if m.port() == new_port => Check::Done(()),
            seen => Check::NotYet(format!("{seen:?}")),
        }
    })
    .await;
    adds_land_on(&conn, &group, new).await;
    // The old master never went down: only the relay moved the
    // connections (the Sentinels demote it to a replica later).
    let pong: String = redis::cmd("PING")
        .query_async(&mut group.servers()[0].conn().await)
        .await
        .unwrap();
    assert_eq!(pong, "PONG");
}

/// With a password on the data servers: the relay authenticates its
/// connections to the master (the password is in no URL a library logs),
/// follows a SIGKILL failover, and a wrong password fails at connect.
#[tokio::test]
async fn a_password_protected_group_is_followed_through_a_crash() {
    let mut group = SentinelGroup::start_with_password(1, Some("s3cr3t-pw")).await;
    let url = group
        .url()
        .replace("redis+sentinel://", "redis+sentinel://:s3cr3t-pw@");
    let settings = RedisConfig {
        url,
        ..RedisConfig::default()
    }
    .resolve()
    .unwrap();
    let conn = Connection::connect(settings).await.unwrap();
    let q = QueueName::new("q").unwrap();
    producer::enqueue(&conn, &q, &job()).await.unwrap();

    group.kill(0);
    let new = group.wait_failover(0, Duration::from_secs(30)).await;
    adds_land_on(&conn, &group, new).await;

    let wrong = RedisConfig {
        url: group
            .url()
            .replace("redis+sentinel://", "redis+sentinel://:nope@"),
        ..RedisConfig::default()
    }
    .resolve()
    .unwrap();
    let err = Connection::connect(wrong).await.unwrap_err().to_string();
    assert!(err.contains("credentials"), "{err}");
    assert!(!err.contains("nope"), "{err}");
}

/// Adds through `conn` succeed again (after the reconnect the first may
/// still fail), and land on data server `new`.
async fn adds_land_on(conn: &Connection, group: &SentinelGroup, new: usize) {
    let q = QueueName::new("q").unwrap();
    let id = wait_until(
        "an add on the new master",
        Duration::from_secs(30),
        || async {
            match producer::enqueue(conn, &q, &job()).await {
                Ok(id) => Check::Done(id),
                Err(e) => Check::NotYet(e.to_string()),
            }
        },
    )
    .await;
    let on_new: u64 = redis::cmd("EXISTS")
        .arg(format!("bull:q:{id}"))
        .query_async(&mut group.data_conn(new).await)
        .await
        .unwrap();
    assert_eq!(on_new, 1, "job {id} is on the new master");
}

fn job() -> NewJob {
    NewJob {
        name: "n".into(),
        data: json!({}),
        opts: JobOptions::default(),
    }
}

//! `[redis] wait_replicas`: an add is acknowledged only once a replica
//! holds it (Redis `WAIT`). Without a replica the add fails as retryable,
//! saying the job may exist on the master; right after, adds to that queue
//! fail at once and write nothing. With a replica in sync they succeed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

use queue_core::producer::{self, JobOptions, NewJob};
use queue_core::{Connection, QueueError, QueueName, RedisConfig};
use serde_json::json;
use testkit::{Check, RedisServer, wait_until};

async fn waiting_connection(server: &RedisServer) -> Connection {
    Connection::connect(
        RedisConfig {
            url: server.url(),
            wait_replicas: 1,
            wait_timeout_ms: 2_000,
            ..RedisConfig::default()
        }
        .resolve()
        .unwrap(),
    )
    .await
    .unwrap()
}

fn job() -> NewJob {
    NewJob {
        name: "n".into(),
        data: json!({}),
        opts: JobOptions::default(),
    }
}

async fn waiting(server: &RedisServer) -> u64 {
    redis::cmd("LLEN")
        .arg("bull:q:wait")
        .query_async(&mut server.conn().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn adds_wait_for_a_replica_and_fail_fast_without_one() {
    let alone = RedisServer::start().await;
    let conn = waiting_connection(&alone).await;
    let q = QueueName::new("q").unwrap();
    let err = producer::enqueue(&conn, &q, &job()).await.unwrap_err();
    assert!(
        matches!(
            err,
            QueueError::NotReplicated {
                acked: 0,
                wanted: 1,
                written: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_retryable());
    assert!(err.to_string().contains("Idempotency-Key"), "{err}");
    assert_eq!(waiting(&alone).await, 1, "the job is on the master");
    // Within the timeout after a shortfall: refused before any write.
    let err = producer::enqueue(&conn, &q, &job()).await.unwrap_err();
    assert!(
        matches!(err, QueueError::NotReplicated { written: false, .. }),
        "{err}"
    );
    assert!(err.is_retryable());
    assert_eq!(waiting(&alone).await, 1, "nothing more was written");

    let master = RedisServer::start().await;
    let port = master.port().to_string();
    let _replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]).await;
    wait_until(
        "the replica in sync",
        std::time::Duration::from_secs(30),
        || async {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut master.conn().await)
                .await
                .unwrap();
            if info.contains("state=online") {
                Check::Done(())
            } else {
                Check::NotYet(info)
            }
        },
    )
    .await;
    let conn = waiting_connection(&master).await;
    for _ in 0..3 {
        producer::enqueue(&conn, &q, &job()).await.unwrap();
    }
    assert_eq!(waiting(&master).await, 3);
}

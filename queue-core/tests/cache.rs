//! `queue_core::cache` against a real Redis: a swap replaces a target's
//! keys and counts what it removed, refuses reserved keys before writing,
//! keeps each target's keys apart, and is refused on a cluster with a
//! clear error; `get` reads a value with its TTL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use std::time::Duration;

use queue_core::ErrorKind;
use queue_core::cache::{self, Cached, SwapReport};
use support::*;
use testkit::{RedisCluster, RedisServer};

const TTL: Duration = Duration::from_secs(600);

fn entries(keys: &[&str], generation: u32) -> Vec<(String, String)> {
    keys.iter()
        .map(|k| ((*k).to_string(), format!("{{\"generation\":{generation}}}")))
        .collect()
}

#[tokio::test]
async fn a_swap_replaces_the_targets_keys_and_counts_the_stale_ones() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;

    let first = cache::swap(
        &conn,
        "t",
        &entries(&["cache:a", "cache:b", "cache:c"], 1),
        TTL,
    )
    .await
    .unwrap();
    assert_eq!(
        first,
        SwapReport {
            keys_written: 3,
            bytes: 3 * 16,
            stale_removed: 0
        }
    );
    // Another target's keys are its own: the next swap of `t` leaves them.
    cache::swap(&conn, "other", &entries(&["cache:z"], 1), TTL)
        .await
        .unwrap();

    // cache:c expires before the next run: it was stale, but is not
    // counted as removed.
    let mut redis = server.conn().await;
    let _: () = redis::cmd("DEL")
        .arg("cache:c")
        .query_async(&mut redis)
        .await
        .unwrap();
    let second = cache::swap(&conn, "t", &entries(&["cache:b", "cache:d"], 2), TTL)
        .await
        .unwrap();
    assert_eq!(second.keys_written, 2);
    assert_eq!(second.stale_removed, 1, "cache:a removed, cache:c was gone");
    let mut keys = server.keys("cache:*").await;
    keys.sort();
    assert_eq!(keys, ["cache:b", "cache:d", "cache:z"]);

    let got = cache::get(&conn, "cache:b").await.unwrap().unwrap();
    assert_eq!(got.value, "{\"generation\":2}");
    assert!(got.ttl_ms.is_some_and(|t| t > 0 && t <= 600_000));
    assert_eq!(cache::get(&conn, "cache:a").await.unwrap(), None);
    let _: () = redis::cmd("SET")
        .arg("cache:forever")
        .arg("x")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(
        cache::get(&conn, "cache:forever").await.unwrap(),
        Some(Cached {
            value: "x".into(),
            ttl_ms: None
        })
    );

    // An empty run empties the target.
    let empty = cache::swap(&conn, "t", &[], TTL).await.unwrap();
    assert_eq!(empty.stale_removed, 2);
    assert_eq!(server.keys("cache:*").await.len(), 2);
}

#[tokio::test]
async fn reserved_keys_are_refused_before_anything_is_written() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    for bad in ["bull:emails:meta", "drover:bull:workers", ""] {
        let mixed = vec![
            ("cache:fine".to_string(), "1".to_string()),
            (bad.to_string(), "1".to_string()),
        ];
        let err = cache::swap(&conn, "t", &mixed, TTL).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}: {err}");
    }
    assert_eq!(server.dbsize().await, 0);
}

#[tokio::test]
async fn a_swap_on_a_cluster_is_refused_clearly() {
    let cluster = RedisCluster::start(3).await;
    let conn = connect_cluster(&cluster).await;
    let err = cache::swap(&conn, "t", &entries(&["cache:a", "cache:b"], 1), TTL)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("single Redis server"), "{err}");
    for node in cluster.nodes() {
        assert_eq!(node.dbsize().await, 0);
    }
    // Reading works on a cluster.
    assert_eq!(cache::get(&conn, "cache:a").await.unwrap(), None);
}

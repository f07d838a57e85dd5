//! The `cache-warm` handler against real Redis, PostgreSQL, SQLite and an
//! HTTP server: 10,000 rows become 10,000 keys with a TTL in one atomic
//! swap; a later run removes the keys it no longer writes; a reader never
//! sees two generations at once; bad jobs fail clearly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use drover_worker::builtin::{CacheWarm, CacheWarmConfig};
use drover_worker::{HandlerOptions, HandlerRegistry};
use serde_json::{Value, json};
use sqlx::Connection as _;
use support::*;
use testkit::postgres::TestDatabase;
use testkit::{Check, RedisServer, wait_until};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(60);

fn config(text: &str) -> CacheWarmConfig {
    toml::from_str(text).unwrap()
}

async fn pool(conn: &queue_core::Connection, config: CacheWarmConfig) -> drover_worker::WorkerPool {
    let mut handlers = HandlerRegistry::new();
    handlers.fallback(CacheWarm::new(config).unwrap(), HandlerOptions::default());
    let s = settings(vec![queue_settings("cache", 2)], Duration::from_secs(5));
    start(conn, &s, handlers).await.0
}

/// Runs one warm job to its end; answers (state, return value or reason).
async fn warm(server: &RedisServer, conn: &queue_core::Connection, data: Value) -> (String, Value) {
    let (state, out, _) = warm_with(server, conn, data, json!({})).await;
    (state, out)
}

/// Runs one warm job with job options to its end; answers (state, return
/// value or reason, attempts made).
async fn warm_with(
    server: &RedisServer,
    conn: &queue_core::Connection,
    data: Value,
    opts: Value,
) -> (String, Value, u64) {
    let id = add(conn, "cache", "cache-warm", data, opts).await;
    wait_until("warm job finished", DEADLINE, || async {
        let h = server.job_hash("cache", &id).await;
        let attempts = h.get("atm").map_or(0, |a| a.parse().unwrap());
        match (
            h.get("returnvalue"),
            h.get("failedReason"),
            h.get("finishedOn"),
        ) {
            (Some(r), _, Some(_)) => Check::Done((
                "completed".to_string(),
                serde_json::from_str(r).unwrap(),
                attempts,
            )),
            (None, Some(f), Some(_)) => {
                Check::Done(("failed".to_string(), Value::String(f.clone()), attempts))
            }
            _ => Check::NotYet(format!("{h:?}")),
        }
    })
    .await
}

/// Asserts that `n` keys match `pattern`, each with a TTL of at most
/// `max_ms` (one pipeline of PTTLs).
async fn assert_keys_with_ttl(server: &RedisServer, pattern: &str, n: usize, max_ms: i64) {
    let keys = server.keys(pattern).await;
    assert_eq!(keys.len(), n, "keys matching {pattern}");
    let mut redis = server.conn().await;
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.pttl(k);
    }
    let ttls: Vec<i64> = pipe.query_async(&mut redis).await.unwrap();
    assert!(
        ttls.iter().all(|t| *t > 0 && *t <= max_ms),
        "every key has the target's TTL"
    );
}

async fn count_keys(server: &RedisServer, pattern: &str) -> usize {
    server.keys(pattern).await.len()
}

#[tokio::test]
async fn ten_thousand_postgres_rows_become_ten_thousand_keys_in_one_swap() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let db = TestDatabase::create().await;
    let mut pg = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("CREATE TABLE templates (id BIGINT PRIMARY KEY, name TEXT NOT NULL, uses BIGINT NOT NULL, score DOUBLE PRECISION, active BOOLEAN)")
        .execute(&mut pg)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO templates SELECT g, 'template ' || g, g % 97, g / 3.0, g % 2 = 0 FROM generate_series(1, 10000) g",
    )
    .execute(&mut pg)
    .await
    .unwrap();
    let cfg = config(&format!(
        "[sources.popular_templates]\ndatabase = \"{}\"\nquery = \"SELECT id, name, uses, score, active FROM templates ORDER BY id\"\n\
         [targets.templates]\nkey = \"cache:template:{{id}}\"\nttl_ms = 2700000\n",
        db.url
    ));
    let pool = pool(&conn, cfg).await;

    let (state, out) = warm(
        &server,
        &conn,
        json!({"source": "popular_templates", "target": "templates"}),
    )
    .await;
    assert_eq!(state, "completed", "{out}");
    assert_eq!(out["rows"], 10_000);
    assert_eq!(out["keys_written"], 10_000);
    assert_eq!(out["stale_removed"], 0);
    assert!(out["bytes"].as_u64().unwrap() > 10_000 * 40);
    assert!(out["duration_ms"].is_u64());
    eprintln!("warm run over 10,000 PostgreSQL rows: {out}");

    // Every key is there, with the row as JSON and a TTL.
    assert_keys_with_ttl(&server, "cache:template:*", 10_000, 2_700_000).await;
    let mut redis = server.conn().await;
    let one: String = redis::cmd("GET")
        .arg("cache:template:42")
        .query_async(&mut redis)
        .await
        .unwrap();
    let row: Value = serde_json::from_str(&one).unwrap();
    assert_eq!(
        row,
        json!({"id": 42, "name": "template 42", "uses": 42, "score": 14.0, "active": true})
    );

    // Fewer rows next time: the keys it no longer writes are removed in the
    // same swap.
    sqlx::query("DELETE FROM templates WHERE id > 9000")
        .execute(&mut pg)
        .await
        .unwrap();
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async::<()>(&mut redis)
        .await
        .unwrap();
    let (_, out) = warm(
        &server,
        &conn,
        json!({"source": "popular_templates", "target": "templates"}),
    )
    .await;
    assert_eq!(out["keys_written"], 9_000);
    assert_eq!(out["stale_removed"], 1_000);
    assert_eq!(count_keys(&server, "cache:template:*").await, 9_000);

    // One swap: that run's 9,000 SETs went through exactly one MULTI/EXEC
    // (nothing else here uses transactions: jobs move by Lua scripts; the
    // worker's own bookkeeping adds the odd SET of its own).
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut redis)
        .await
        .unwrap();
    let calls = |command: &str| {
        info.lines()
            .find(|l| l.starts_with(&format!("cmdstat_{command}:")))
            .and_then(|l| l.split("calls=").nth(1))
            .and_then(|v| v.split(',').next())
            .map_or(0, |v| v.parse::<u64>().unwrap())
    };
    assert!(calls("set") >= 9_000, "{info}");
    assert_eq!(calls("exec"), 1, "the keys went in through one transaction");
    pg.close().await.ok();
    pool.shutdown(CancellationToken::new()).await;
}

#[tokio::test]
async fn column_types_become_json_and_unreadable_ones_fail_with_a_hint() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let db = TestDatabase::create().await;
    let mut pg = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query(
        "CREATE TABLE t (id INT4 PRIMARY KEY, small INT2, ratio REAL, price NUMERIC(8, 2), \
         seen TIMESTAMPTZ, note TEXT, ok BOOLEAN)",
    )
    .execute(&mut pg)
    .await
    .unwrap();
    sqlx::query("INSERT INTO t VALUES (1, 2, 0.5, 9.99, '2026-01-02T03:04:05Z', NULL, false)")
        .execute(&mut pg)
        .await
        .unwrap();
    let cfg = config(&format!(
        "[sources.plain]\ndatabase = \"{url}\"\nquery = \"SELECT id, small, ratio, note, ok FROM t\"\n\
         [sources.cast]\ndatabase = \"{url}\"\nquery = \"SELECT id, price::float8 AS price, seen::text AS seen FROM t\"\n\
         [sources.raw]\ndatabase = \"{url}\"\nquery = \"SELECT id, price FROM t\"\n\
         [sources.capped]\ndatabase = \"{url}\"\nquery = \"SELECT g AS id FROM generate_series(1, 10) g\"\nmax_rows = 5\n\
         [targets.rows]\nkey = \"cache:t:{{id}}\"\nttl_ms = 60000\n",
        url = db.url
    ));
    let pool = pool(&conn, cfg).await;
    let mut redis = server.conn().await;
    let mut get = async |key: &str| -> Value {
        let v: String = redis::cmd("GET")
            .arg(key)
            .query_async(&mut redis)
            .await
            .unwrap();
        serde_json::from_str(&v).unwrap()
    };

    let (state, out) = warm(&server, &conn, json!({"source": "plain", "target": "rows"})).await;
    assert_eq!(state, "completed", "{out}");
    assert_eq!(
        get("cache:t:1").await,
        json!({"id": 1, "small": 2, "ratio": 0.5, "note": null, "ok": false})
    );
    let (state, out) = warm(&server, &conn, json!({"source": "cast", "target": "rows"})).await;
    assert_eq!(state, "completed", "{out}");
    assert_eq!(
        get("cache:t:1").await,
        json!({"id": 1, "price": 9.99, "seen": "2026-01-02 03:04:05+00"})
    );

    // NUMERIC as is: the Any driver cannot read it, however often tried.
    let (state, reason, attempts) = warm_with(
        &server,
        &conn,
        json!({"source": "raw", "target": "rows"}),
        json!({"attempts": 3}),
    )
    .await;
    assert_eq!((state.as_str(), attempts), ("failed", 1), "{reason}");
    assert!(
        reason.as_str().unwrap().contains("cast it in the query"),
        "{reason}"
    );

    // Past max_rows the run fails and writes nothing.
    let (state, reason, attempts) = warm_with(
        &server,
        &conn,
        json!({"source": "capped", "target": "rows"}),
        json!({"attempts": 3}),
    )
    .await;
    assert_eq!((state.as_str(), attempts), ("failed", 1), "{reason}");
    assert!(
        reason.as_str().unwrap().contains("more than max_rows (5)"),
        "{reason}"
    );
    assert_eq!(count_keys(&server, "cache:t:*").await, 1);
    pg.close().await.ok();
    pool.shutdown(CancellationToken::new()).await;
}

#[tokio::test]
async fn readers_never_see_two_generations_at_once() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.db");
    let url = format!("sqlite:{}?mode=rwc", file.display());
    {
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY, generation INTEGER NOT NULL)")
            .execute(&mut db)
            .await
            .unwrap();
        sqlx::query("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) INSERT INTO items SELECT i, 1 FROM n")
            .execute(&mut db)
            .await
            .unwrap();
    }
    let cfg = config(&format!(
        "[sources.items]\ndatabase = \"{url}\"\nquery = \"SELECT id, generation FROM items\"\n\
         [targets.items]\nkey = \"cache:item:{{id}}\"\nttl_ms = 600000\n"
    ));
    let pool = pool(&conn, cfg).await;
    let (state, out) = warm(
        &server,
        &conn,
        json!({"source": "items", "target": "items"}),
    )
    .await;
    assert_eq!(state, "completed", "{out}");
    assert_eq!(out["keys_written"], 2_000);
    assert_keys_with_ttl(&server, "cache:item:*", 2_000, 600_000).await;

    // A reader reads a spread of keys in one MGET, over and over, while
    // generation 2 is written; every read must be all 1 or all 2.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let mut redis = server.conn().await;
        tokio::spawn(async move {
            let keys: Vec<String> = (1..=2000)
                .step_by(97)
                .map(|i| format!("cache:item:{i}"))
                .collect();
            let (mut reads, mut mixed) = (0u64, 0u64);
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(Ordering::SeqCst) {
                let values: Vec<Option<String>> = redis::cmd("MGET")
                    .arg(&keys)
                    .query_async(&mut redis)
                    .await
                    .unwrap();
                let gens: std::collections::BTreeSet<i64> = values
                    .iter()
                    .map(|v| {
                        serde_json::from_str::<Value>(v.as_deref().unwrap()).unwrap()["generation"]
                            .as_i64()
                            .unwrap()
                    })
                    .collect();
                reads += 1;
                if gens.len() > 1 {
                    mixed += 1;
                }
                seen.extend(gens);
            }
            (reads, mixed, seen)
        })
    };
    {
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE items SET generation = 2")
            .execute(&mut db)
            .await
            .unwrap();
    }
    let (_, out) = warm(
        &server,
        &conn,
        json!({"source": "items", "target": "items"}),
    )
    .await;
    assert_eq!(out["keys_written"], 2_000);
    // Let the reader see the new generation too.
    wait_until("reader saw generation 2", DEADLINE, || async {
        let v: String = redis::cmd("GET")
            .arg("cache:item:1")
            .query_async(&mut server.conn().await)
            .await
            .unwrap();
        if v.contains("\"generation\":2") {
            Check::Done(())
        } else {
            Check::NotYet(v)
        }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let (reads, mixed, seen) = reader.await.unwrap();
    assert_eq!(mixed, 0, "{mixed} of {reads} reads saw two generations");
    assert!(
        seen.contains(&1) && seen.contains(&2),
        "{seen:?} over {reads} reads"
    );
    eprintln!("{reads} consistent reads across the swap");
    pool.shutdown(CancellationToken::new()).await;
}

#[tokio::test]
async fn an_http_source_fills_one_key_and_bad_jobs_fail_clearly() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let app = axum::Router::new()
        .route(
            "/stats",
            axum::routing::get(|| async {
                axum::Json(json!({"items": [{"id": "a", "n": 1}, {"id": "b", "n": 2}], "total": 3}))
            }),
        )
        .route("/broken", axum::routing::get(|| async { "not json" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let cfg = config(&format!(
        "[sources.stats]\nurl = \"http://{addr}/stats\"\n\
         [sources.items]\nurl = \"http://{addr}/stats\"\nrows = \"/items\"\n\
         [sources.broken]\nurl = \"http://{addr}/broken\"\n\
         [targets.dashboard]\nkey = \"cache:dashboard:stats\"\nttl_ms = 900000\n\
         [targets.per_item]\nkey = \"cache:item:{{id}}\"\nttl_ms = 900000\n\
         [targets.needs_missing]\nkey = \"cache:x:{{missing}}\"\nttl_ms = 900000\n"
    ));
    let pool = pool(&conn, cfg).await;
    let mut redis = server.conn().await;

    let (state, out) = warm(
        &server,
        &conn,
        json!({"source": "stats", "target": "dashboard"}),
    )
    .await;
    assert_eq!(state, "completed", "{out}");
    assert_eq!(out["keys_written"], 1);
    let v: String = redis::cmd("GET")
        .arg("cache:dashboard:stats")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(serde_json::from_str::<Value>(&v).unwrap()["total"], 3);
    let ttl: i64 = redis::cmd("PTTL")
        .arg("cache:dashboard:stats")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 900_000);

    let (state, out) = warm(
        &server,
        &conn,
        json!({"source": "items", "target": "per_item"}),
    )
    .await;
    assert_eq!(state, "completed", "{out}");
    assert_eq!(out["keys_written"], 2);
    let v: String = redis::cmd("GET")
        .arg("cache:item:b")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&v).unwrap(),
        json!({"id": "b", "n": 2})
    );

    for (data, why) in [
        (
            json!({"source": "nope", "target": "dashboard"}),
            "no cache-warm source \"nope\"",
        ),
        (
            json!({"source": "stats", "target": "nope"}),
            "no cache-warm target \"nope\"",
        ),
        (json!({"sql": "DROP TABLE x"}), "cache-warm jobs look like"),
        (
            json!({"source": "items", "target": "needs_missing"}),
            "no value for {missing}",
        ),
        (
            json!({"source": "stats", "target": "per_item"}),
            "gave no list of rows",
        ),
        (
            json!({"source": "broken", "target": "dashboard"}),
            "not JSON",
        ),
    ] {
        // Unrecoverable: one attempt of three.
        let (state, reason, attempts) =
            warm_with(&server, &conn, data.clone(), json!({"attempts": 3})).await;
        assert_eq!(state, "failed", "{data}");
        assert!(reason.as_str().unwrap().contains(why), "{data}: {reason}");
        assert_eq!(attempts, 1, "{data}: {reason}");
    }
    // The failed runs wrote nothing.
    assert_eq!(count_keys(&server, "cache:x:*").await, 0);
    pool.shutdown(CancellationToken::new()).await;
}

//! The durable store against real engines. Every test in `on_both_engines!`
//! runs twice: on a SQLite file in a fresh directory and on a fresh
//! PostgreSQL database (`testkit::TestDatabase`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

#[macro_use]
mod support;

use std::path::Path;
use std::time::Duration;

use queue_core::store::{ApiKey, AuditEntry, Scope, Store, StoreConfig};
use queue_core::{ErrorKind, QueueError, now_ms};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use sqlx::Row;
use support::engine::Engine;
use testkit::TestDatabase;

on_both_engines!(
    migrate_applies_pending_once,
    concurrent_migrations_apply_each_version_once,
    api_keys_lifecycle,
    stored_key_holds_no_token_in_clear,
    active_names_are_unique_and_reusable_after_revoke,
    racing_creates_of_one_name_make_one_key,
    revoke_by_id_is_idempotent_and_by_name_is_not,
    hostile_key_input_is_refused_before_the_store,
    audit_log_pages_newest_first,
    ping_and_pool_stats,
);

fn scopes(list: &[&str]) -> Vec<Scope> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

async fn migrate_applies_pending_once(engine: &Engine) {
    let store = engine.store().await;
    let all = store.pending_migrations().await.unwrap();
    assert_eq!(all.first(), Some(&1), "{all:?}");
    // Asking wrote nothing: still pending, and the schema is refused.
    assert_eq!(store.pending_migrations().await.unwrap(), all);
    let err = store.check_schema().await.unwrap_err();
    assert!(
        matches!(err, QueueError::StoreSchemaOutdated { pending } if pending == all.len()),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("drover migrate"), "{err}");

    assert_eq!(store.migrate().await.unwrap(), all);
    assert_eq!(store.migrate().await.unwrap(), Vec::<i64>::new());
    assert!(store.pending_migrations().await.unwrap().is_empty());
    store.check_schema().await.unwrap();

    // Another process opening the same database sees it up to date.
    let other = engine.store().await;
    other.check_schema().await.unwrap();
    assert_eq!(other.migrate().await.unwrap(), Vec::<i64>::new());
    other.close().await;
    store.close().await;
}

async fn concurrent_migrations_apply_each_version_once(engine: &Engine) {
    let (a, b, c) = tokio::join!(engine.store(), engine.store(), engine.store());
    let all = a.pending_migrations().await.unwrap();
    let (ra, rb, rc) = tokio::join!(a.migrate(), b.migrate(), c.migrate());
    let mut applied: Vec<i64> = [ra.unwrap(), rb.unwrap(), rc.unwrap()].concat();
    applied.sort_unstable();
    assert_eq!(applied, all);
    for store in [&a, &b, &c] {
        store.check_schema().await.unwrap();
    }
}

async fn api_keys_lifecycle(engine: &Engine) {
    let store = engine.migrated().await;
    assert!(store.list_api_keys(true).await.unwrap().is_empty());

    let before = now_ms();
    let created = store
        .create_api_key("shop", &scopes(&["enqueue:emails-*", "read"]), Some(50))
        .await
        .unwrap();
    let (key, token) = (created.key.clone(), created.token.clone());
    assert!(token.starts_with("drv_") && token.len() == 68, "{token}");
    assert!(
        token[4..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(key.token_prefix, token[..12]);
    assert!(uuid::Uuid::parse_str(&key.id).is_ok(), "{}", key.id);
    assert_eq!(key.name, "shop");
    assert_eq!(key.scopes, scopes(&["enqueue:emails-*", "read"]));
    assert_eq!(key.rate_limit_per_sec, Some(50));
    assert!(key.created_at_ms >= before && key.created_at_ms <= now_ms());
    assert_eq!(key.revoked_at_ms, None);
    assert!(!format!("{created:?}").contains(&token));

    // Serialized for the API and the CLI: scopes as strings, no secret.
    let json = serde_json::to_value(&key).unwrap();
    assert_eq!(json["scopes"], json!(["enqueue:emails-*", "read"]));
    assert!(!json.to_string().contains(&token));

    assert_eq!(store.list_api_keys(false).await.unwrap(), vec![key.clone()]);
    assert_eq!(store.authenticate(&token).await.unwrap(), Some(key.clone()));

    // A token of the right shape that was never issued, and garbage.
    let mut wrong = token.clone();
    let last = if wrong.ends_with('0') { "1" } else { "0" };
    wrong.replace_range(67.., last);
    assert_eq!(store.authenticate(&wrong).await.unwrap(), None);
    for garbage in [
        "",
        "drv_",
        "Bearer x",
        &token.to_uppercase(),
        &format!("{token} "),
    ] {
        assert_eq!(
            store.authenticate(garbage).await.unwrap(),
            None,
            "{garbage:?}"
        );
    }

    let other = store
        .create_api_key("ops", &[Scope::Admin], None)
        .await
        .unwrap();
    let listed = store.list_api_keys(false).await.unwrap();
    assert_eq!(listed, by_creation(vec![key.clone(), other.key.clone()]));

    let revoked = store.revoke_api_key("shop").await.unwrap();
    assert_eq!(revoked.id, key.id);
    let revoked_at = revoked.revoked_at_ms.unwrap();
    assert!(revoked_at >= key.created_at_ms);
    assert_eq!(store.authenticate(&token).await.unwrap(), None);
    assert_eq!(
        store.authenticate(&other.token).await.unwrap(),
        Some(other.key.clone())
    );
    assert_eq!(
        store.list_api_keys(false).await.unwrap(),
        vec![other.key.clone()]
    );
    let all = store.list_api_keys(true).await.unwrap();
    assert_eq!(all, by_creation(vec![revoked, other.key]));
}

/// The order `list_api_keys` promises: by creation time, then id (two keys
/// can be made in the same millisecond).
fn by_creation(mut keys: Vec<ApiKey>) -> Vec<ApiKey> {
    keys.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
    keys
}

async fn stored_key_holds_no_token_in_clear(engine: &Engine) {
    let store = engine.migrated().await;
    let created = store
        .create_api_key("billing", &scopes(&["enqueue:*"]), None)
        .await
        .unwrap();
    let raw = engine.raw().await;
    let rows = sqlx::query("SELECT id, name, token_hash, token_prefix, scopes FROM api_keys")
        .fetch_all(&raw)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    for column in ["id", "name", "token_hash", "token_prefix", "scopes"] {
        let value: String = row.try_get(column).unwrap();
        assert!(!value.contains(&created.token), "{column} holds the token");
        assert!(
            !value.contains(&created.token[12..]),
            "{column} holds the token's tail"
        );
    }
    let stored_hash: String = row.try_get("token_hash").unwrap();
    assert_eq!(stored_hash, sha256_hex(&created.token));
    let stored_scopes: String = row.try_get("scopes").unwrap();
    assert_eq!(stored_scopes, r#"["enqueue:*"]"#);
    raw.close().await;
}

async fn active_names_are_unique_and_reusable_after_revoke(engine: &Engine) {
    let store = engine.migrated().await;
    let first = store
        .create_api_key("shop", &[Scope::Read], None)
        .await
        .unwrap();
    let err = store
        .create_api_key("shop", &[Scope::Admin], None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, QueueError::ApiKeyNameTaken { name } if name == "shop"),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
    // Names are compared exactly.
    store
        .create_api_key("Shop", &[Scope::Read], None)
        .await
        .unwrap();

    store.revoke_api_key("shop").await.unwrap();
    let second = store
        .create_api_key("shop", &[Scope::Admin], None)
        .await
        .unwrap();
    assert_ne!(second.key.id, first.key.id);
    assert_eq!(
        store
            .authenticate(&second.token)
            .await
            .unwrap()
            .unwrap()
            .scopes,
        vec![Scope::Admin]
    );
    assert_eq!(store.authenticate(&first.token).await.unwrap(), None);
    let named_shop = store
        .list_api_keys(true)
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.name == "shop")
        .count();
    assert_eq!(named_shop, 2);
}

async fn racing_creates_of_one_name_make_one_key(engine: &Engine) {
    let store = engine.migrated().await;
    let attempts = (0..6).map(|_| store.create_api_key("racer", &[Scope::Read], None));
    let results = futures::future::join_all(attempts).await;
    let made = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(made, 1, "{results:?}");
    for result in results {
        if let Err(e) = result {
            assert!(matches!(e, QueueError::ApiKeyNameTaken { .. }), "{e}");
        }
    }
    assert_eq!(store.list_api_keys(true).await.unwrap().len(), 1);
}

async fn revoke_by_id_is_idempotent_and_by_name_is_not(engine: &Engine) {
    let store = engine.migrated().await;
    let by_id = store
        .create_api_key("by-id", &[Scope::Read], None)
        .await
        .unwrap();
    let by_name = store
        .create_api_key("by-name", &[Scope::Read], None)
        .await
        .unwrap();

    let once = store.revoke_api_key(&by_id.key.id).await.unwrap();
    assert!(once.revoked_at_ms.is_some());
    let twice = store.revoke_api_key(&by_id.key.id).await.unwrap();
    assert_eq!(
        twice, once,
        "a second revoke by id answers the key unchanged"
    );
    // An id in another spelling is the same id.
    let upper = store
        .revoke_api_key(&by_id.key.id.to_uppercase())
        .await
        .unwrap();
    assert_eq!(upper, once);

    store.revoke_api_key("by-name").await.unwrap();
    let err = store.revoke_api_key("by-name").await.unwrap_err();
    assert!(
        matches!(&err, QueueError::ApiKeyNotFound { key } if key == "by-name"),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(store.authenticate(&by_name.token).await.unwrap(), None);

    for unknown in [
        "nobody",
        "by-id",
        &uuid::Uuid::new_v4().to_string(),
        "",
        "' OR '1'='1",
    ] {
        let err = store.revoke_api_key(unknown).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{unknown:?}: {err}");
    }
}

async fn hostile_key_input_is_refused_before_the_store(engine: &Engine) {
    let store = engine.migrated().await;
    for name in [
        "x'; DROP TABLE api_keys;--",
        "o'brien",
        "a\"b",
        "",
        "new\nline",
        &"n".repeat(65),
        &uuid::Uuid::new_v4().to_string(),
    ] {
        let err = store
            .create_api_key(name, &[Scope::Read], None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, QueueError::InvalidApiKeyName { .. }),
            "{name:?}: {err}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
    let err = store.create_api_key("empty", &[], None).await.unwrap_err();
    assert!(matches!(err, QueueError::InvalidScope { .. }), "{err}");
    for scope in [
        "enqueue:a:b",
        "enqueue:",
        "enqueue:*\u{0}",
        "admin;",
        "read'--",
    ] {
        let err = scope.parse::<Scope>().unwrap_err();
        assert!(
            matches!(err, QueueError::InvalidScope { .. }),
            "{scope:?}: {err}"
        );
    }
    assert!(store.list_api_keys(true).await.unwrap().is_empty());

    // Quotes and spaces inside a valid pattern are data, stored as given.
    let odd = scopes(&["enqueue:o'brien *", "enqueue:a,b"]);
    let created = store.create_api_key("quotes", &odd, None).await.unwrap();
    let found = store.authenticate(&created.token).await.unwrap().unwrap();
    assert_eq!(found.scopes, odd);
    assert!(found.scopes[0].permits_enqueue("o'brien emails"));
    assert!(!found.scopes[0].permits_enqueue("obrien emails"));
}

async fn audit_log_pages_newest_first(engine: &Engine) {
    let store = engine.migrated().await;
    assert!(store.list_audit(100, None).await.unwrap().is_empty());
    let mut entries = Vec::new();
    for i in 0..5u64 {
        entries.push(AuditEntry {
            at_ms: 1_700_000_000_000 + i,
            actor: format!("key:ops-{i}"),
            action: if i % 2 == 0 {
                "queue.pause"
            } else {
                "job.retry"
            }
            .to_owned(),
            queue: (i != 4).then(|| format!("emails-{i}")),
            target: (i % 2 == 1).then(|| format!("job-{i}")),
            params: json!({"i": i, "nested": {"list": [1, "two", null]}, "quote": "it's"}),
            outcome: if i == 3 { "not_found" } else { "ok" }.to_owned(),
        });
    }
    let mut ids = Vec::new();
    for entry in &entries {
        ids.push(store.record_audit(entry).await.unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let page = store.list_audit(3, None).await.unwrap();
    let page_ids: Vec<i64> = page.iter().map(|r| r.id).collect();
    assert_eq!(page_ids, vec![ids[4], ids[3], ids[2]]);
    let newest = &page[0];
    assert_eq!(newest.at_ms, entries[4].at_ms);
    assert_eq!(newest.actor, entries[4].actor);
    assert_eq!(newest.action, entries[4].action);
    assert_eq!(newest.queue, None);
    assert_eq!(newest.target, None);
    assert_eq!(newest.params, entries[4].params);
    assert_eq!(newest.outcome, "ok");
    assert_eq!(page[1].target.as_deref(), Some("job-3"));
    assert_eq!(page[1].outcome, "not_found");

    let next = store.list_audit(3, Some(ids[2])).await.unwrap();
    let next_ids: Vec<i64> = next.iter().map(|r| r.id).collect();
    assert_eq!(next_ids, vec![ids[1], ids[0]]);
    assert!(store.list_audit(3, Some(ids[0])).await.unwrap().is_empty());

    // The limit is clamped to 1..=1000.
    assert_eq!(store.list_audit(0, None).await.unwrap().len(), 1);
    assert_eq!(store.list_audit(u32::MAX, None).await.unwrap().len(), 5);

    let json = serde_json::to_value(&page[1]).unwrap();
    assert_eq!(json["params"]["quote"], "it's");
    assert_eq!(json["queue"], "emails-3");
}

async fn ping_and_pool_stats(engine: &Engine) {
    let store = engine.migrated().await;
    let rtt = store.ping().await.unwrap();
    assert!(rtt < Duration::from_secs(5), "{rtt:?}");
    let stats = store.pool_stats();
    assert_eq!(stats.max, 10);
    assert!(stats.size >= 1 && stats.size <= stats.max, "{stats:?}");
    assert!(stats.idle <= stats.size, "{stats:?}");
    assert_eq!(store.backend(), engine.settings.backend());
    store.close().await;
    assert!(store.ping().await.is_err());
}

#[tokio::test]
async fn pool_size_follows_the_settings() {
    let config = StoreConfig {
        max_connections: 2,
        acquire_timeout_ms: 2_000,
        ..StoreConfig::default()
    };
    for engine in [
        Engine::sqlite_with(config.clone()).await,
        Engine::postgres_with(config.clone()).await,
    ] {
        let store = engine.migrated().await;
        let pings = (0..8).map(|_| store.ping());
        for ping in futures::future::join_all(pings).await {
            ping.unwrap();
        }
        let stats = store.pool_stats();
        assert_eq!(stats.max, 2);
        assert!(stats.size <= 2, "{stats:?}");
        store.close().await;
        engine.finish().await;
    }
}

#[tokio::test]
async fn sqlite_creates_its_directory_and_runs_in_wal_mode() {
    let engine = Engine::sqlite().await;
    let store = engine.migrated().await;
    assert!(engine.settings.describe().ends_with("/data/drover.db"));
    let file = engine.raw_url.trim_start_matches("sqlite://");
    assert!(Path::new(file).is_file(), "{file}");
    let raw = engine.raw().await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    raw.close().await;
    store.close().await;
}

#[tokio::test]
async fn an_explicit_sqlite_url_is_created_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nested/dir/keys.db");
    let settings = StoreConfig {
        url: Some(format!("sqlite:{}", file.display())),
        ..StoreConfig::default()
    }
    .resolve(Path::new("unused"))
    .unwrap();
    let store = Store::connect(&settings).await.unwrap();
    assert_eq!(store.migrate().await.unwrap().first(), Some(&1));
    assert!(file.is_file());
    store.close().await;
}

#[tokio::test]
async fn an_unreachable_postgres_is_unavailable_and_its_password_stays_hidden() {
    let settings = StoreConfig {
        url: Some("postgres://drover:s3cr3t-pw@127.0.0.1:1/drover".into()),
        acquire_timeout_ms: 2_000,
        ..StoreConfig::default()
    }
    .resolve(Path::new("unused"))
    .unwrap();
    let described = settings.describe();
    assert_eq!(described, "postgres://***@127.0.0.1:1/drover");
    assert!(!format!("{settings:?}").contains("s3cr3t-pw"));
    let err = Store::connect(&settings).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert!(!err.to_string().contains("s3cr3t-pw"), "{err}");
}

#[tokio::test]
async fn a_test_database_is_dropped_even_when_the_test_forgets() {
    let db = TestDatabase::create().await;
    let name = db.name().to_owned();
    let store_url = db.url.clone();
    assert!(store_url.ends_with(&name), "{store_url}");
    drop(db);
    sqlx::any::install_default_drivers();
    let admin = AnyPool::connect(&testkit::postgres::admin_url())
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(left, 0, "{name} is still there");
    admin.close().await;
}

//! Dashboard sessions in the store, on SQLite and PostgreSQL: a session
//! acts as its key, ends at its expiry, on sign-out, or when its key is
//! revoked, and only its token's hash is stored.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

#[macro_use]
mod support;

use std::time::Duration;

use queue_core::now_ms;
use queue_core::store::Scope;
use sqlx::Row;
use support::engine::Engine;

on_both_engines!(sessions_follow_their_key_and_expiry);

async fn sessions_follow_their_key_and_expiry(engine: &Engine) {
    let store = engine.migrated().await;
    let key = store
        .create_api_key("ops", &[Scope::Read], None)
        .await
        .unwrap()
        .key;
    let now = now_ms();
    let session = store
        .create_session(&key.id, now, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(session.token.starts_with("drs_"));
    assert_eq!(session.expires_at_ms, now + 60_000);
    assert!(
        !format!("{session:?}").contains(&session.token),
        "Debug hides the token"
    );

    let found = store.session(&session.token, now).await.unwrap().unwrap();
    assert_eq!(found.key, key);
    assert_eq!(found.created_at_ms, now);
    // Expired at its expiry; unknown and malformed tokens are nobody.
    assert!(
        store
            .session(&session.token, now + 60_000)
            .await
            .unwrap()
            .is_none()
    );
    let other = format!("drs_{}", "0".repeat(64));
    assert!(store.session(&other, now).await.unwrap().is_none());
    assert!(store.session("garbage", now).await.unwrap().is_none());

    // Only the hash is stored.
    let raw = engine.raw().await;
    let rows = sqlx::query("SELECT token_hash FROM dashboard_sessions")
        .fetch_all(&raw)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let stored: String = rows[0].try_get("token_hash").unwrap();
    assert_ne!(stored, session.token);
    assert!(!stored.contains(&session.token[4..]));

    // Signing out ends it.
    store.end_session(&session.token).await.unwrap();
    assert!(store.session(&session.token, now).await.unwrap().is_none());

    // Revoking the key ends its other sessions at once.
    let second = store
        .create_session(&key.id, now, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(store.session(&second.token, now).await.unwrap().is_some());
    store.revoke_api_key("ops").await.unwrap();
    assert!(store.session(&second.token, now).await.unwrap().is_none());

    // Expired sessions are purged.
    assert_eq!(store.purge_expired_sessions(now + 61_000).await.unwrap(), 1);
    raw.close().await;
    store.close().await;
}

//! `drover migrate`, `drover keys`, and opening the store for the
//! long-running commands.

use queue_core::store::{AuditEntry, Scope, Store, StoreSettings};
use tracing::info;

use crate::cli::{KeysCommand, KeysCreateArgs, KeysListArgs};
use crate::config::FileConfig;
use crate::exit::UsageError;
use crate::output::{self, Table};

/// Opens the store; with `migrate`, applies pending migrations, otherwise
/// refuses a store whose schema is behind this binary.
pub(crate) async fn open(settings: &StoreSettings, migrate: bool) -> anyhow::Result<Store> {
    let store = Store::connect(settings).await?;
    if migrate {
        let applied = store.migrate().await?;
        if !applied.is_empty() {
            info!(store = %settings.describe(), ?applied, "store migrated");
        }
    } else {
        store.check_schema().await?;
    }
    Ok(store)
}

/// `drover migrate`.
#[allow(clippy::print_stdout)] // the command's output
pub(crate) async fn migrate(config: &FileConfig) -> anyhow::Result<()> {
    let settings = config.store_settings()?;
    let store = Store::connect(&settings).await?;
    let applied = store.migrate().await?;
    if applied.is_empty() {
        println!("{} is up to date", settings.describe());
    } else {
        let list: Vec<String> = applied.iter().map(i64::to_string).collect();
        println!("{}: applied {}", settings.describe(), list.join(", "));
    }
    store.close().await;
    Ok(())
}

/// `drover keys ...`.
pub(crate) async fn keys(config: &FileConfig, command: &KeysCommand) -> anyhow::Result<()> {
    let store = open(&config.store_settings()?, false).await?;
    let result = match command {
        KeysCommand::Create(args) => create(&store, args).await,
        KeysCommand::List(args) => list(&store, args).await,
        KeysCommand::Revoke(args) => revoke(&store, &args.key).await,
    };
    store.close().await;
    result
}

#[allow(clippy::print_stdout, clippy::print_stderr)] // secret on stdout, note on stderr
async fn create(store: &Store, args: &KeysCreateArgs) -> anyhow::Result<()> {
    let scopes = args
        .scopes
        .iter()
        .map(|s| s.parse::<Scope>().map_err(|e| UsageError(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let created = store
        .create_api_key(&args.name, &scopes, args.rate_limit)
        .await;
    let params = serde_json::json!({
        "name": args.name,
        "scopes": args.scopes,
        "rateLimitPerSec": args.rate_limit,
    });
    audit(store, "keys-create", None, None, params, &created).await;
    let created = created?;
    if args.json {
        let mut value = serde_json::to_value(&created.key)?;
        value["token"] = created.token.clone().into();
        output::json(&value)?;
    } else {
        println!("{}", created.token);
        eprintln!(
            "created key {} ({}); the line above is its secret, shown only now",
            created.key.name, created.key.id
        );
    }
    Ok(())
}

async fn list(store: &Store, args: &KeysListArgs) -> anyhow::Result<()> {
    let keys = store.list_api_keys(args.all).await?;
    if args.json {
        return output::json(&keys);
    }
    let mut table = Table::new([
        "ID", "NAME", "PREFIX", "SCOPES", "RATE/S", "CREATED", "REVOKED",
    ]);
    for k in &keys {
        let scopes: Vec<String> = k.scopes.iter().map(ToString::to_string).collect();
        table.row(vec![
            k.id.clone(),
            k.name.clone(),
            k.token_prefix.clone(),
            scopes.join(","),
            k.rate_limit_per_sec.map_or("-".into(), |r| r.to_string()),
            output::timestamp(k.created_at_ms),
            output::maybe_timestamp(k.revoked_at_ms),
        ]);
    }
    table.print();
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn revoke(store: &Store, key: &str) -> anyhow::Result<()> {
    let revoked = store.revoke_api_key(key).await;
    audit(
        store,
        "keys-revoke",
        None,
        Some(key),
        serde_json::json!({}),
        &revoked,
    )
    .await;
    let revoked = revoked?;
    println!("revoked {} ({})", revoked.name, revoked.id);
    Ok(())
}

/// Who a change made from the command line is recorded as.
pub(crate) fn cli_actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

/// Records a change made from the command line in the audit log; a failed
/// write is a warning, the change itself already happened.
pub(crate) async fn audit<T>(
    store: &Store,
    action: &str,
    queue: Option<&str>,
    target: Option<&str>,
    params: serde_json::Value,
    result: &queue_core::Result<T>,
) {
    let entry = AuditEntry {
        at_ms: queue_core::now_ms(),
        actor: cli_actor(),
        action: action.to_string(),
        queue: queue.map(str::to_string),
        target: target.map(str::to_string),
        params,
        outcome: match result {
            Ok(_) => "ok".into(),
            Err(e) => e.kind().to_string(),
        },
    };
    if let Err(e) = store.record_audit(&entry).await {
        tracing::warn!(error = %e, action, "cannot write the audit log");
    }
}

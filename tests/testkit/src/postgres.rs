//! A fresh PostgreSQL database per test, on a server the machine already
//! runs (`.ci/run` installs and starts one when it is missing).
//!
//! The server is `DROVER_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/postgres`; that user must be allowed
//! to create databases. Each [`TestDatabase`] is `drover_test_<uuid>`,
//! dropped by [`TestDatabase::drop_database`] or, if the test ends first
//! (a failed assertion), when the value is dropped.

use std::thread;

use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor};

/// The variable naming the server tests create their databases on.
pub const POSTGRES_URL_VAR: &str = "DROVER_TEST_POSTGRES_URL";

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of its own for one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// A `postgres://` URL of the new database.
    pub url: String,
    name: String,
    admin_url: String,
    dropped: bool,
}

impl TestDatabase {
    /// Creates an empty database on the test server.
    pub async fn create() -> Self {
        let admin_url = admin_url();
        let name = format!("drover_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = connect(&admin_url).await;
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {admin_url}: {e}"));
        admin.close().await.ok();
        Self {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
            dropped: false,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database now, closing any connection still open to it.
    pub async fn drop_database(mut self) {
        drop_now(&self.admin_url, &self.name).await;
        self.dropped = true;
    }
}

impl Drop for TestDatabase {
    /// The test ended without [`TestDatabase::drop_database`] (it panicked,
    /// most likely): drop the database from a thread with its own runtime,
    /// since this may run inside the test's runtime, and wait for it so the
    /// process does not exit first. A failure is reported, not hidden.
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let cleanup = thread::spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(drop_now(&admin_url, &name)),
                Err(e) => eprintln!("testkit: database {name} left behind: no runtime: {e}"),
            }
        });
        if cleanup.join().is_err() {
            eprintln!("testkit: database {} may be left behind", self.name);
        }
    }
}

/// The server URL tests use.
pub fn admin_url() -> String {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach the test PostgreSQL server {url}: {e}; start one (`.ci/run` does) \
             or point {POSTGRES_URL_VAR} at one"
        )
    })
}

async fn drop_now(admin_url: &str, name: &str) {
    let result = async {
        let mut admin = PgConnection::connect(admin_url).await?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
            .await?;
        admin.close().await
    }
    .await;
    if let Err(e) = result {
        eprintln!("testkit: database {name} left behind: {e}");
    }
}

/// `url` with its database (the path) replaced by `name`, keeping the
/// user, host, port and query.
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map_or("", |i| &tail[i..]);
    format!("{scheme}://{authority}/{name}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_swapped_in_the_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "t1"),
            "postgresql://u:p@h/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
        assert_eq!(
            with_database("postgres://h?x=1", "t1"),
            "postgres://h/t1?x=1"
        );
    }
}

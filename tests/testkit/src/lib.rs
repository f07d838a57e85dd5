//! Test support shared by Drover's crates.
//!
//! Every integration test starts its own `redis-server` ([`RedisServer`]) so
//! tests never share state, waits for states with [`wait_until`] instead of
//! sleeping, and runs child processes ([`ChildGuard`]) that are killed when
//! the test ends, pass or fail. [`node`] drives the real BullMQ Node client in
//! `compat/`.
//!
//! This crate is a dev-dependency only: panicking is how it reports a broken
//! test environment, so the workspace's `unwrap`/`expect` lints are relaxed
//! here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod counts;
mod faults;
mod inspect;
mod process;
mod redis_cluster;
mod redis_server;
mod sentinel;
mod wait;

pub mod node;
pub mod pgbouncer;
pub mod postgres;
pub mod proxy;

pub use pgbouncer::PgBouncer;
pub use postgres::TestDatabase;
pub use process::{ChildGuard, workspace_root};
pub use redis_cluster::{CLUSTER_NODE_TIMEOUT_MS, RedisCluster};
pub use redis_server::RedisServer;
pub use sentinel::{DOWN_AFTER_MS, SENTINEL_MASTER, SentinelGroup};
pub use wait::{Check, wait_until};

//! Handlers usable without writing Rust: `echo` (a diagnostic handler that
//! returns its payload), `http` (pushes each job to an application over
//! HTTP) and `cache-warm` (fills Redis cache keys from a database query or
//! an HTTP GET).

mod breaker;
mod echo;
mod http;
mod signature;
mod warm;

pub use echo::Echo;
pub use http::{HttpHandler, HttpHandlerConfig, HttpHandlerSettings};
pub use warm::{CacheWarm, CacheWarmConfig, SourceConfig, TargetConfig};

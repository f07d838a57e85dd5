//! Handlers usable without writing Rust: `echo` (a diagnostic handler that
//! returns its payload) and `http` (pushes each job to an application over
//! HTTP).

mod breaker;
mod echo;
mod http;
mod signature;

pub use echo::Echo;
pub use http::{HttpHandler, HttpHandlerConfig, HttpHandlerSettings};

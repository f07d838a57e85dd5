//! Handlers and the registry that routes jobs to them by name.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::context::JobContext;
use crate::outcome::JobError;

/// Runs jobs of some name. Most handlers are async functions registered
/// with [`HandlerRegistry::on`]; implement this trait for handlers with
/// state of their own (clients, pools, circuit breakers).
pub trait Handler: Send + Sync + 'static {
    /// Runs one job; `Ok` completes it with that return value.
    fn call(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, JobError>>;
}

/// An async function `(JobContext, T) -> Result<R, JobError>` as a
/// [`Handler`]: the payload is decoded into `T` (a payload that does not
/// fit fails the job without retries) and `R` becomes the return value.
pub struct TypedHandler<T, R, F> {
    name: String,
    f: F,
    _types: PhantomData<fn(T) -> R>,
}

impl<T, R, F> fmt::Debug for TypedHandler<T, R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedHandler")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<T, R, F, Fut> Handler for TypedHandler<T, R, F>
where
    T: DeserializeOwned + Send + 'static,
    R: Serialize + 'static,
    F: Fn(JobContext, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, JobError>> + Send + 'static,
{
    fn call(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, JobError>> {
        let data = match T::deserialize(ctx.data()) {
            Ok(data) => data,
            Err(e) => {
                let msg = format!(
                    "job data does not fit handler {:?}: {e}; fix the producer, retrying will not help",
                    self.name
                );
                return Box::pin(async move { Err(JobError::Unrecoverable(msg)) });
            }
        };
        let fut = (self.f)(ctx, data);
        Box::pin(async move {
            let result = fut.await?;
            serde_json::to_value(result)
                .map_err(|e| JobError::Unrecoverable(format!("handler result is not JSON: {e}")))
        })
    }
}

/// Per-handler settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandlerOptions {
    /// Longest one attempt may run; overrides the queue's job timeout.
    pub timeout: Option<Duration>,
}

#[derive(Clone)]
pub(crate) struct Registered {
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) options: HandlerOptions,
}

/// Routes jobs to handlers by job name, with an optional fallback for
/// names without a handler of their own.
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    by_name: HashMap<String, Registered>,
    fallback: Option<Registered>,
}

impl fmt::Debug for HandlerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.by_name.keys().collect();
        names.sort();
        f.debug_struct("HandlerRegistry")
            .field("names", &names)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl HandlerRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an async function for jobs named `name`:
    ///
    /// ```no_run
    /// # use drover_worker::{HandlerRegistry, JobContext, JobError};
    /// #[derive(serde::Deserialize)]
    /// struct Email { to: String }
    ///
    /// let mut handlers = HandlerRegistry::new();
    /// handlers.on("send-email", |ctx: JobContext, email: Email| async move {
    ///     ctx.log(format!("sending to {}", email.to)).await?;
    ///     Ok::<_, JobError>(serde_json::json!({ "sent": true }))
    /// });
    /// ```
    pub fn on<T, R, F, Fut>(&mut self, name: &str, f: F) -> &mut Self
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize + 'static,
        F: Fn(JobContext, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, JobError>> + Send + 'static,
    {
        self.register(name, typed(name, f), HandlerOptions::default())
    }

    /// Registers a [`Handler`] for jobs named `name`, with options.
    pub fn register(
        &mut self,
        name: &str,
        handler: impl Handler,
        options: HandlerOptions,
    ) -> &mut Self {
        self.by_name.insert(
            name.to_string(),
            Registered {
                handler: Arc::new(handler),
                options,
            },
        );
        self
    }

    /// Registers a [`Handler`] for every job whose name has no handler of
    /// its own (the built-in `echo` and `http` handlers serve this way).
    pub fn fallback(&mut self, handler: impl Handler, options: HandlerOptions) -> &mut Self {
        self.fallback = Some(Registered {
            handler: Arc::new(handler),
            options,
        });
        self
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<&Registered> {
        self.by_name.get(name).or(self.fallback.as_ref())
    }

    /// The names with a handler of their own, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Whether any handler is registered.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty() && self.fallback.is_none()
    }
}

/// Wraps an async function as a [`Handler`] (see [`HandlerRegistry::on`]).
pub fn typed<T, R, F, Fut>(name: &str, f: F) -> TypedHandler<T, R, F>
where
    T: DeserializeOwned + Send + 'static,
    R: Serialize + 'static,
    F: Fn(JobContext, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, JobError>> + Send + 'static,
{
    TypedHandler {
        name: name.to_string(),
        f,
        _types: PhantomData,
    }
}

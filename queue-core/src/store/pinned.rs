//! How the store's statements reach PostgreSQL through a pooler in
//! transaction mode (PgBouncer `pool_mode = transaction`), where each
//! transaction may run on another server connection and nothing of a
//! session survives it.
//!
//! sqlx prepares every statement under a name (`sqlx_s_1`, ...) in one
//! round trip and runs it in a second: outside a transaction the pooler may
//! send those two to different server connections ("prepared statement
//! does not exist"), and a name left on a server connection collides with
//! the same name from another client ("already exists"). So, with
//! `[store] transaction_pooling = true`:
//!
//! - the statement cache is off (`statement-cache-capacity=0`), so sqlx
//!   never assumes a statement prepared earlier still exists;
//! - a statement run on the pool ([`StoreExecutor`]) runs alone in a
//!   transaction, as an unnamed statement: both round trips stay on one
//!   server connection, and the next unnamed statement replaces it;
//! - a transaction the store opens itself (`Store::begin_write`) starts
//!   with `DEALLOCATE ALL`, dropping names other clients left on that
//!   server connection before sqlx prepares its own.
//!
//! Direct connections (SQLite, PostgreSQL without a pooler) use the pool as
//! it is, with sqlx's statement cache.

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryFutureExt, TryStreamExt};
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::error::BoxDynError;
use sqlx::{Any, AnyPool, Describe, Either, Execute, Executor};

/// The executor the store's queries run on: the pool itself, or with
/// transaction pooling one pinned transaction per statement.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreExecutor<'p> {
    pub(crate) pool: &'p AnyPool,
    pub(crate) transaction_pooling: bool,
}

/// A query sent as an unnamed statement.
struct Unnamed<Q>(Q);

impl<'q, Q: Execute<'q, Any>> Execute<'q, Any> for Unnamed<Q> {
    fn sql(&self) -> &'q str {
        self.0.sql()
    }

    fn statement(&self) -> Option<&AnyStatement<'q>> {
        self.0.statement()
    }

    fn take_arguments(&mut self) -> Result<Option<sqlx::any::AnyArguments<'q>>, BoxDynError> {
        self.0.take_arguments()
    }

    fn persistent(&self) -> bool {
        false
    }
}

impl<'p> Executor<'p> for StoreExecutor<'p> {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Any>,
    {
        if !self.transaction_pooling {
            return self.pool.fetch_many(query);
        }
        let pool = self.pool;
        async move {
            let mut tx = pool.begin().await?;
            let steps: Vec<_> = (&mut *tx).fetch_many(Unnamed(query)).try_collect().await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(futures::stream::iter(steps.into_iter().map(Ok)))
        }
        .try_flatten_stream()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Any>,
    {
        if !self.transaction_pooling {
            return self.pool.fetch_optional(query);
        }
        let pool = self.pool;
        async move {
            let mut tx = pool.begin().await?;
            let row = (&mut *tx).fetch_optional(Unnamed(query)).await?;
            tx.commit().await?;
            Ok(row)
        }
        .boxed()
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>>
    where
        'p: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>>
    where
        'p: 'e,
    {
        self.pool.describe(sql)
    }
}

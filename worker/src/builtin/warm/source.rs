//! Reading a cache-warm source: an SQL query (rows as JSON objects) or an
//! HTTP GET (a JSON body).

use std::time::Duration;

use futures::TryStreamExt;
use queue_core::config::redact_url;
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Column, Row};

use crate::builtin::http::request_failure;
use crate::outcome::JobError;

/// Runs `query` and turns each row into a JSON object. Rows are streamed,
/// and reading stops at the first row past `max_rows`, so a query that
/// gives too many fails without holding them all.
pub(super) async fn query_rows(
    pool: &AnyPool,
    query: &str,
    max_rows: usize,
) -> Result<Vec<Value>, JobError> {
    let mut stream = sqlx::query(query).fetch(pool);
    let mut rows = Vec::new();
    while let Some(row) = stream.try_next().await.map_err(query_error)? {
        if rows.len() == max_rows {
            return Err(JobError::unrecoverable(format!(
                "the query gives more than max_rows ({max_rows}) rows; \
                 add a LIMIT or raise max_rows"
            )));
        }
        rows.push(row_json(&row)?);
    }
    Ok(rows)
}

const CAST_HINT: &str = "cast it in the query to text, an integer, a float or a boolean \
                         (e.g. created_at::text, amount::float8)";

/// A failed query: a column of a type the `Any` driver cannot read
/// (PostgreSQL's NUMERIC, timestamps, JSON, UUID…) fails every time, so it
/// is unrecoverable; anything else (the database down, a lock timeout, an
/// error in the query) is retried per the job's attempts.
fn query_error(e: sqlx::Error) -> JobError {
    match e {
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => JobError::unrecoverable(
            format!("the query gives a column cache-warm cannot read ({e}); {CAST_HINT}"),
        ),
        e => JobError::failed(format!("query failed: {e}")),
    }
}

/// One row as a JSON object: integers, floats, text, booleans and NULL by
/// their column type. SQLite has no boolean type, so its booleans arrive
/// as 0 and 1. Other types (bytes, and on PostgreSQL NUMERIC, dates and
/// times, JSON, UUID) fail the run with a hint to cast them.
fn row_json(row: &AnyRow) -> Result<Value, JobError> {
    let mut out = Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let value = if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else if let Ok(v) = row.try_get::<Option<f32>, _>(i) {
            v.map_or(Value::Null, |f| Value::from(f64::from(f)))
        } else if let Ok(v) = row.try_get::<Option<String>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else {
            return Err(JobError::unrecoverable(format!(
                "column {:?} has a type cache-warm cannot read; {CAST_HINT}",
                column.name()
            )));
        };
        out.insert(column.name().to_string(), value);
    }
    Ok(Value::Object(out))
}

/// GETs `url` and parses its body as JSON; `rows` (a JSON pointer) picks
/// a part of it. Timeouts, failed connections and 5xx/429 answers are
/// retried; other answers fail the job for good (as the `http` handler
/// does).
pub(super) async fn fetch(
    client: &reqwest::Client,
    url: &str,
    rows: Option<&str>,
    timeout: Duration,
) -> Result<Value, JobError> {
    // Failure reasons are stored in the job and shown by the API: no
    // credentials in them.
    let shown = redact_url(url);
    let response = client
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| request_failure("GET", &shown, e))?;
    let status = response.status();
    if !status.is_success() {
        let message = format!("GET {shown}: {status}");
        return Err(if status.is_server_error() || status.as_u16() == 429 {
            JobError::failed(message)
        } else {
            JobError::unrecoverable(message)
        });
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| JobError::failed(format!("GET {shown}: {}", e.without_url())))?;
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| JobError::unrecoverable(format!("GET {shown}: the body is not JSON: {e}")))?;
    match rows {
        None | Some("") => Ok(body),
        Some(pointer) => body.pointer(pointer).cloned().ok_or_else(|| {
            JobError::unrecoverable(format!("GET {shown}: nothing at {pointer} in the body"))
        }),
    }
}

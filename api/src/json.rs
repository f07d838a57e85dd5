//! Strict JSON request bodies: `application/json` only, a size limit
//! (`413`), a nesting-depth limit, bad JSON `400`, and well-formed JSON that
//! breaks the schema (unknown fields, wrong types) `422`; every rejection in
//! the API's one error shape, before anything is written.

use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// A parsed body, with its raw bytes kept for fingerprinting.
#[derive(Debug)]
pub(crate) struct StrictJson<T> {
    pub(crate) value: T,
    body: Bytes,
}

impl<T: DeserializeOwned> StrictJson<T> {
    /// Parses `body` (already read under the body limit by axum) as `T`.
    pub(crate) fn parse(
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
        max_depth: usize,
    ) -> Result<Self, ApiError> {
        let body = body.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is over the size limit; split it into smaller requests",
                )
            } else {
                ApiError::bad_request("unreadable_body", rejection.body_text())
            }
        })?;
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json")
                    || (v.starts_with("application/") && v.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        if let Some(depth) = depth_over(&body, max_depth) {
            return Err(ApiError::bad_request(
                "json_too_deep",
                format!("the JSON nests deeper than {max_depth} levels (found {depth})"),
            ));
        }
        let value = serde_json::from_slice(&body).map_err(|e| match e.classify() {
            Category::Data => ApiError::unprocessable("invalid_request", e.to_string()),
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
            }
        })?;
        Ok(Self { value, body })
    }

    /// A hex SHA-256 of the exact body, identifying the request for
    /// idempotency checks.
    pub(crate) fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(&self.body))
    }
}

/// The first nesting depth above `max`, scanning brackets outside strings
/// in one pass, so a hostile body never reaches the parser's recursion.
fn depth_over(body: &[u8], max: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some(depth);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings() {
        assert_eq!(depth_over(br#"{"a":[1,{"b":2}]}"#, 3), None);
        assert_eq!(depth_over(br#"{"a":[1,{"b":2}]}"#, 2), Some(3));
        assert_eq!(depth_over(br#"{"a":"[[[[[[\"[[["}"#, 1), None);
        assert_eq!(depth_over(&b"[".repeat(100_000), 64), Some(65));
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
    }

    fn parse(ct: &str, body: &'static [u8]) -> Result<StrictJson<Body>, ApiError> {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        StrictJson::parse(&h, Ok(Bytes::from_static(body)), 32)
    }

    #[test]
    fn statuses_for_each_kind_of_bad_body() {
        let status = |r: Result<StrictJson<Body>, ApiError>| r.unwrap_err().status();
        assert!(parse("application/json", br#"{"name":"x"}"#).is_ok());
        assert!(parse("application/json; charset=utf-8", br#"{"name":"x"}"#).is_ok());
        assert_eq!(
            status(parse("application/json", b"{")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(parse("application/json", b"nope")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(parse("application/json", br#"{"name":"x","extra":1}"#)),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status(parse("application/json", br#"{"name":7}"#)),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status(parse("text/plain", br#"{"name":"x"}"#)),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}

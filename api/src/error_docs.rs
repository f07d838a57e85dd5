//! Every operation's error answers in the OpenAPI document. Any route can
//! answer with the API's one error shape for reasons that belong to no one
//! handler (a bad query or path, a missing key, the rate limit, an
//! unavailable Redis); documenting them on each operation keeps the
//! document true to what is served (schemathesis checks it).

use utoipa::Modify;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder};

/// Errors any operation may answer.
const ANY: &[(&str, &str)] = &[
    (
        "400",
        "The request is malformed (query, path, header or JSON)",
    ),
    ("404", "No such queue, job or other resource"),
    ("422", "The request breaks a rule; nothing was done"),
    ("500", "Internal error; the cause is in the server's log"),
    (
        "503",
        "A backing service (Redis or the store) is unavailable, or the server is at its limit of requests in flight (code overloaded); retry after Retry-After",
    ),
];
/// Errors of operations that need an API key.
const SECURED: &[(&str, &str)] = &[
    ("401", "No API key, or an unknown or revoked one"),
    ("403", "The key's scopes do not cover this operation"),
    (
        "429",
        "The key is over its rate limit; retry after Retry-After",
    ),
];
/// Errors of operations that take a body.
const WITH_BODY: &[(&str, &str)] = &[
    ("413", "The body is larger than [api] max_body_bytes"),
    ("415", "The body is not application/json"),
];

/// Errors of operations that take an `Idempotency-Key` header.
const IDEMPOTENT: &[(&str, &str)] = &[(
    "409",
    "The Idempotency-Key was already used for a different request",
)];

/// Adds the error answers an operation lacks.
#[derive(Debug)]
pub(crate) struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, doc: &mut Document) {
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_errors(op);
            }
        }
    }
}

fn add_errors(op: &mut Operation) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut wanted: Vec<&(&str, &str)> = ANY.iter().collect();
    if secured {
        wanted.extend(SECURED);
    }
    if op.request_body.is_some() {
        wanted.extend(WITH_BODY);
    }
    let idempotent = op
        .parameters
        .iter()
        .flatten()
        .any(|p| p.name.eq_ignore_ascii_case("Idempotency-Key"));
    if idempotent {
        wanted.extend(IDEMPOTENT);
    }
    for (status, description) in wanted {
        op.responses
            .responses
            .entry((*status).to_string())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(*description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("ErrorBody")))
                                .build(),
                        )
                        .build(),
                )
            });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// Every operation that reads an Idempotency-Key documents the 409 it
    /// answers when a key is reused for another request (schemathesis
    /// found the bulk add answering an undocumented 409).
    #[test]
    fn idempotent_operations_document_the_conflict() {
        let doc = serde_json::to_value(crate::openapi()).unwrap();
        let mut seen = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let takes_key = op["parameters"].as_array().is_some_and(|ps| {
                    ps.iter().any(|p| {
                        p["name"]
                            .as_str()
                            .is_some_and(|n| n.eq_ignore_ascii_case("Idempotency-Key"))
                    })
                });
                if takes_key {
                    seen += 1;
                    assert!(
                        op["responses"].get("409").is_some(),
                        "{method} {path} takes an Idempotency-Key but documents no 409"
                    );
                }
            }
        }
        assert!(
            seen >= 2,
            "expected the single and the bulk add, saw {seen}"
        );
    }
}

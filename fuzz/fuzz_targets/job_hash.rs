//! A job hash as any client might have written it (fields missing, of the
//! wrong type, malformed JSON, huge values): BullMQ's decoding, which
//! Drover's workers run on every fetched job, and Drover's own decoding for
//! people (the CLI, the API, the dashboard) must not panic.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

/// The fields BullMQ and Drover read, each present or not, with any text;
/// plus arbitrary other fields.
#[derive(Debug, Arbitrary)]
struct Hash {
    id: String,
    known: Vec<(u8, String)>,
    other: Vec<(String, String)>,
}

const FIELDS: &[&str] = &[
    "name",
    "data",
    "opts",
    "timestamp",
    "delay",
    "priority",
    "processedOn",
    "finishedOn",
    "atm",
    "ats",
    "attemptsMade",
    "stc",
    "stalledCounter",
    "failedReason",
    "stacktrace",
    "returnvalue",
    "progress",
    "parentKey",
    "parent",
    "rjk",
    "deid",
    "pb",
    "defa",
    "nrjid",
];

fuzz_target!(|hash: Hash| {
    let mut fields: HashMap<String, String> = hash.other.into_iter().collect();
    for (i, value) in hash.known {
        fields.insert(FIELDS[usize::from(i) % FIELDS.len()].to_string(), value);
    }
    let _ = bullmq::Job::from_redis_hash(&hash.id, &fields);
    let _ = queue_core::JobRecord::from_hash(&hash.id, fields);
});

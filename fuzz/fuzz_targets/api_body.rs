//! Any bytes as the body of every API request that takes one: parsing and
//! the checks before a write must refuse bad input, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    drover_api::fuzzing::request_body(body);
});

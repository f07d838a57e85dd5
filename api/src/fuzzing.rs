//! Entry points for `cargo fuzz` (feature `fuzzing`, see `fuzz/`): every
//! request body the API takes, through the same parsing and checks its
//! routes run before anything is written, without Redis or a store. The
//! only thing they may do with hostile input is refuse it.

use axum::http::{HeaderMap, HeaderValue, header};
use bytes::Bytes;
use queue_core::QueueName;
use queue_core::autoscale::PolicySpec;
use queue_core::schedule::{Schedule, ScheduleSpec};
use queue_core::workflow::{Workflow, WorkflowDefinition};

use crate::config::ApiSettings;
use crate::json::StrictJson;
use crate::routes::enqueue::{BulkEnqueueRequest, EnqueueRequest};
use crate::routes::workflow_runs::StartRunRequest;

/// Parses `body` as each request body the API takes and checks what
/// parses, as the routes do.
pub fn request_body(body: &[u8]) {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let depth = ApiSettings::default().max_json_depth;
    let bytes = || Ok(Bytes::copy_from_slice(body));
    if let Ok(req) = StrictJson::<EnqueueRequest>::parse(&headers, bytes(), depth) {
        let _ = req.fingerprint();
        let _ = queue_core::producer::NewJob::from(req.value).validate();
    }
    if let Ok(req) = StrictJson::<BulkEnqueueRequest>::parse(&headers, bytes(), depth) {
        for job in req.value.into_jobs() {
            let _ = job.validate();
        }
    }
    if let Ok(req) = StrictJson::<ScheduleSpec>::parse(&headers, bytes(), depth) {
        if let Ok(queue) = QueueName::new("fuzz") {
            let _ = Schedule::new(queue, "fuzz", req.value);
        }
    }
    if let Ok(req) = StrictJson::<WorkflowDefinition>::parse(&headers, bytes(), depth) {
        let _ = Workflow::new("fuzz", req.value);
    }
    if let Ok(req) = StrictJson::<PolicySpec>::parse(&headers, bytes(), depth) {
        let _ = req.value.check();
    }
    let _ = StrictJson::<StartRunRequest>::parse(&headers, bytes(), depth);
}

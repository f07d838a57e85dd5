//! Workflow definitions: a DAG of steps, each a BullMQ job on some queue.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::template::{self, Root};
use crate::error::{QueueError, Result};
use crate::names::{QueueName, validate_job_name};
use crate::producer::{Backoff, MAX_ATTEMPTS};

/// Most steps one workflow may have.
pub const MAX_STEPS: usize = 200;
/// Most items one fan-out may have.
pub const MAX_FAN_OUT: usize = 10_000;
/// Longest id of a workflow type or a step, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// A workflow type as registered (`PUT /api/v1/workflows/{type}`, the CLI,
/// or `[[workflow]]` in the config file), JSON or TOML.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDefinition {
    /// The type's name; only in the config file (the API takes it from
    /// the path, and accepts it here only if it is the same).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The steps, in any order; `depends_on` makes the graph.
    pub steps: Vec<StepDefinition>,
    /// A run still unfinished after this long fails (its steps in flight
    /// are cancelled); unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// At most this many runs of the type are active at once; more wait
    /// (state `pending`) until one finishes. Unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_runs: Option<u32>,
}

/// One step: a job added to `queue` once the steps it depends on have
/// completed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDefinition {
    /// Unique within the workflow: letters, digits, `_` and `-`.
    pub id: String,
    /// The queue its job goes to (any worker of that queue runs it, Drover's
    /// or another BullMQ client's).
    pub queue: String,
    /// The job name (routes it to a handler); the step id when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The job's data, a template over the run input and upstream outputs.
    #[serde(default = "empty_object")]
    #[cfg_attr(feature = "openapi", schema(value_type = serde_json::Value))]
    pub input: Value,
    /// Steps that must complete first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Fan out: one job per element of the list this template names (e.g.
    /// `{{ steps.split.output.files }}`); `item` and `index` are then in
    /// scope, and the step's output is the list of the items' outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    /// Tries per job, the first included (BullMQ's `attempts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Wait between tries (BullMQ's `backoff`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Longest one try may run; passed to the handler as the job's
    /// timeout (Drover workers cancel it then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// A checked definition: ids unique, dependencies known, no cycle,
/// templates well-formed and referring only to upstream steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    kind: String,
    definition: WorkflowDefinition,
    /// Step ids in an order where every step comes after its dependencies.
    order: Vec<String>,
}

fn invalid(msg: String) -> QueueError {
    QueueError::InvalidWorkflow(msg)
}

/// Checks an id of a workflow type or step.
pub fn validate_id(what: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what} {id:?} must be 1 to {MAX_ID_BYTES} ASCII letters, digits, '_' or '-'"
        )))
    }
}

impl Workflow {
    /// Checks `definition` as the type `kind`; the error names the step.
    pub fn new(kind: &str, mut definition: WorkflowDefinition) -> Result<Self> {
        validate_id("workflow type", kind)?;
        if kind == "events" {
            // GET /api/v1/workflows/events is the events feed.
            return Err(invalid(
                "the workflow type name \"events\" is reserved".into(),
            ));
        }
        if definition.kind.as_deref().is_some_and(|k| k != kind) {
            return Err(invalid(format!(
                "the body names type {:?} but the path names {kind:?}",
                definition.kind.as_deref().unwrap_or_default()
            )));
        }
        definition.kind = None;
        let steps = &definition.steps;
        if steps.is_empty() {
            return Err(invalid("a workflow needs at least one step".into()));
        }
        if steps.len() > MAX_STEPS {
            return Err(invalid(format!("a workflow has at most {MAX_STEPS} steps")));
        }
        if definition.max_concurrent_runs == Some(0) {
            return Err(invalid("max_concurrent_runs must be at least 1".into()));
        }
        if definition.timeout_ms == Some(0) {
            return Err(invalid("timeout_ms must be at least 1".into()));
        }
        let mut by_id = BTreeMap::new();
        for step in steps {
            validate_id("step id", &step.id)?;
            if by_id.insert(step.id.as_str(), step).is_some() {
                return Err(invalid(format!("step {:?} is defined twice", step.id)));
            }
        }
        for step in steps {
            check_step(step, &by_id)?;
        }
        let order = topological_order(&by_id)?;
        // Templates may only read steps upstream of them.
        for step in steps {
            let upstream = ancestors(&step.id, &by_id);
            let mut paths = template::paths(&step.input)
                .map_err(|e| invalid(format!("step {:?}: input: {e}", step.id)))?;
            if let Some(each) = &step.for_each {
                let found = template::paths(&Value::String(each.clone()))
                    .map_err(|e| invalid(format!("step {:?}: for_each: {e}", step.id)))?;
                if found.len() != 1
                    || !each.trim().starts_with("{{")
                    || !each.trim().ends_with("}}")
                {
                    return Err(invalid(format!(
                        "step {:?}: for_each must be one {{{{ path }}}} naming a list",
                        step.id
                    )));
                }
                if matches!(found[0].root, Root::Item | Root::Index) {
                    return Err(invalid(format!(
                        "step {:?}: for_each cannot use item or index",
                        step.id
                    )));
                }
                paths.extend(found);
            }
            for path in paths {
                match &path.root {
                    Root::Step(id) if !upstream.contains(id.as_str()) => {
                        return Err(invalid(format!(
                            "step {:?}: {{{{ {path} }}}} reads step {id:?}, which is not among the steps it depends on",
                            step.id
                        )));
                    }
                    Root::Item | Root::Index if step.for_each.is_none() => {
                        return Err(invalid(format!(
                            "step {:?}: {{{{ {path} }}}} needs for_each (item and index exist only in fan-out steps)",
                            step.id
                        )));
                    }
                    _ => {}
                }
            }
        }
        Ok(Self {
            kind: kind.to_string(),
            definition,
            order,
        })
    }

    /// The type's name.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The checked definition.
    pub fn definition(&self) -> &WorkflowDefinition {
        &self.definition
    }

    /// Step ids, dependencies first.
    pub fn order(&self) -> &[String] {
        &self.order
    }

    /// The step `id`.
    pub fn step(&self, id: &str) -> Option<&StepDefinition> {
        self.definition.steps.iter().find(|s| s.id == id)
    }
}

impl StepDefinition {
    /// The job name of the step's jobs.
    pub fn job_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

fn check_step(step: &StepDefinition, by_id: &BTreeMap<&str, &StepDefinition>) -> Result<()> {
    let at = |e: &dyn std::fmt::Display| invalid(format!("step {:?}: {e}", step.id));
    QueueName::new(step.queue.as_str()).map_err(|e| at(&e))?;
    validate_job_name(step.job_name()).map_err(|e| at(&e))?;
    let mut seen = BTreeSet::new();
    for dep in &step.depends_on {
        if !by_id.contains_key(dep.as_str()) {
            return Err(at(&format!("depends on unknown step {dep:?}")));
        }
        if dep == &step.id {
            return Err(at(&"depends on itself"));
        }
        if !seen.insert(dep) {
            return Err(at(&format!("lists {dep:?} twice in depends_on")));
        }
    }
    if step.attempts.is_some_and(|a| a == 0 || a > MAX_ATTEMPTS) {
        return Err(at(&format!("attempts must be 1 to {MAX_ATTEMPTS}")));
    }
    if step.timeout_ms == Some(0) {
        return Err(at(&"timeout_ms must be at least 1"));
    }
    Ok(())
}

/// Kahn's algorithm; a cycle is reported with the steps on it.
fn topological_order(by_id: &BTreeMap<&str, &StepDefinition>) -> Result<Vec<String>> {
    let mut indegree: BTreeMap<&str, usize> = by_id
        .iter()
        .map(|(id, s)| (*id, s.depends_on.len()))
        .collect();
    let mut ready: Vec<&str> = indegree
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| *id)
        .collect();
    let mut order = Vec::with_capacity(by_id.len());
    while let Some(id) = ready.pop() {
        order.push(id.to_string());
        for (other, step) in by_id {
            if step.depends_on.iter().any(|d| d == id) {
                let n = indegree.get_mut(other).map(|n| {
                    *n -= 1;
                    *n
                });
                if n == Some(0) {
                    ready.push(other);
                }
            }
        }
    }
    if order.len() == by_id.len() {
        return Ok(order);
    }
    // What is left holds a cycle; walk dependencies until one repeats.
    let left: BTreeSet<&str> = indegree
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(id, _)| *id)
        .collect();
    let mut path = vec![*left.iter().next().unwrap_or(&"?")];
    loop {
        let last = path[path.len() - 1];
        let next = by_id[last]
            .depends_on
            .iter()
            .map(String::as_str)
            .find(|d| left.contains(d))
            .unwrap_or(last);
        if let Some(start) = path.iter().position(|p| *p == next) {
            let mut cycle: Vec<&str> = path[start..].to_vec();
            cycle.reverse();
            cycle.push(cycle[0]);
            return Err(invalid(format!(
                "steps form a cycle: {}",
                cycle.join(" → ")
            )));
        }
        path.push(next);
    }
}

/// Every step `id` depends on, directly or through others.
fn ancestors<'a>(id: &str, by_id: &BTreeMap<&'a str, &'a StepDefinition>) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<&str> = by_id
        .get(id)
        .map(|s| s.depends_on.iter().map(String::as_str).collect())
        .unwrap_or_default();
    while let Some(next) = stack.pop() {
        if let Some((key, step)) = by_id.get_key_value(next) {
            if seen.insert(*key) {
                stack.extend(step.depends_on.iter().map(String::as_str));
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workflow(steps: &Value) -> Result<Workflow> {
        let def: WorkflowDefinition = serde_json::from_value(json!({ "steps": steps }))
            .map_err(|e| invalid(e.to_string()))?;
        Workflow::new("etl", def)
    }

    #[test]
    fn a_dag_with_fan_out_and_fan_in_is_accepted_in_order() {
        let w = workflow(&json!([
            {"id": "notify", "queue": "mail", "depends_on": ["merge"],
             "input": {"count": "{{ steps.merge.output.count }}", "who": "{{ input.owner }}"}},
            {"id": "fetch", "queue": "etl", "input": {"url": "{{ input.url }}"}},
            {"id": "split", "queue": "etl", "depends_on": ["fetch"]},
            {"id": "each", "queue": "etl", "depends_on": ["split"],
             "for_each": "{{ steps.split.output.parts }}",
             "input": {"part": "{{ item }}", "n": "{{ index }}", "src": "{{ steps.fetch.output.url }}"}},
            {"id": "merge", "queue": "etl", "depends_on": ["each"],
             "input": {"results": "{{ steps.each.output }}"}},
        ]))
        .unwrap();
        let pos = |id: &str| w.order().iter().position(|s| s == id).unwrap();
        assert!(pos("fetch") < pos("split") && pos("split") < pos("each"));
        assert!(pos("each") < pos("merge") && pos("merge") < pos("notify"));
        assert_eq!(w.step("fetch").unwrap().job_name(), "fetch");
    }

    #[test]
    fn bad_definitions_name_the_step() {
        for (steps, needle) in [
            (json!([]), "at least one step"),
            (
                json!([{"id": "a", "queue": "q"}, {"id": "a", "queue": "q"}]),
                "\"a\" is defined twice",
            ),
            (
                json!([{"id": "a", "queue": "q", "depends_on": ["b"]}]),
                "step \"a\": depends on unknown step \"b\"",
            ),
            (
                json!([{"id": "a", "queue": "q", "depends_on": ["a"]}]),
                "depends on itself",
            ),
            (
                json!([{"id": "a", "queue": "q", "depends_on": ["c"]},
                    {"id": "b", "queue": "q", "depends_on": ["a"]},
                    {"id": "c", "queue": "q", "depends_on": ["b"]}]),
                "cycle",
            ),
            (
                json!([{"id": "a", "queue": "q", "input": {"x": "{{ steps.b.output }}"}},
                    {"id": "b", "queue": "q"}]),
                "step \"a\": {{ steps.b.output }} reads step \"b\"",
            ),
            (
                json!([{"id": "a", "queue": "q", "input": {"x": "{{ input.y"}}]),
                "step \"a\": input",
            ),
            (
                json!([{"id": "a", "queue": "q", "input": {"x": "{{ item }}"}}]),
                "needs for_each",
            ),
            (
                json!([{"id": "a", "queue": "q", "for_each": "items"}]),
                "for_each must be one",
            ),
            (json!([{"id": "a", "queue": "bad:queue"}]), "step \"a\""),
            (json!([{"id": "a b", "queue": "q"}]), "step id \"a b\""),
            (
                json!([{"id": "a", "queue": "q", "attempts": 0}]),
                "attempts must be",
            ),
        ] {
            let err = workflow(&steps).unwrap_err().to_string();
            assert!(err.contains(needle), "{steps}: {err}");
        }
    }

    #[test]
    fn a_cycle_is_shown_as_a_path() {
        let err = workflow(&json!([
            {"id": "x", "queue": "q"},
            {"id": "a", "queue": "q", "depends_on": ["x", "c"]},
            {"id": "b", "queue": "q", "depends_on": ["a"]},
            {"id": "c", "queue": "q", "depends_on": ["b"]},
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("a → b → c → a")
                || err.contains("b → c → a → b")
                || err.contains("c → a → b → c"),
            "{err}"
        );
    }
}

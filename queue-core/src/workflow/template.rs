//! The input templates of workflow steps.
//!
//! A step's `input` is any JSON value; every string in it is a template:
//!
//! - a string that is exactly one `{{ expr }}` becomes the value `expr`
//!   names, whatever its type (`"{{ input.ids }}"` → `[1, 2, 3]`);
//! - otherwise each `{{ expr }}` inside the string is replaced by the
//!   value's text (a string as it is, anything else as JSON):
//!   `"report {{ run.id }}.pdf"`;
//! - `{{` with no `}}` is an error; `\{{` is a literal `{{`.
//!
//! `expr` is a path: a root followed by `.field` and `[index]` segments.
//! Roots:
//!
//! | root | value |
//! |---|---|
//! | `input` | the run's input |
//! | `steps.<id>.output` | the output of an upstream step; for a fan-out step, the list of its items' outputs in item order (fan-in) |
//! | `item`, `index` | in a fan-out step: the element of the list it fans out over, and its position |
//! | `run.id`, `run.type` | the run's id and workflow type |
//!
//! A definition is checked when registered: templates must parse, roots
//! must exist, `steps.<id>` must name a step this one depends on (directly
//! or through others), and `item`/`index` appear only in fan-out steps. A
//! path that finds nothing at run time fails the step, naming the path.

use serde_json::Value;

/// One `{{ expr }}` of a template, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// The root: `input`, `item`, `index`, `run`, or `steps.<id>.output`.
    pub root: Root,
    /// What follows the root.
    pub segments: Vec<Segment>,
    text: String,
}

/// Where a path starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// The run's input.
    Input,
    /// An upstream step's output.
    Step(String),
    /// The fan-out element.
    Item,
    /// The fan-out position.
    Index,
    /// The run (`id`, `type`).
    Run,
}

/// One step down a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// `.name`
    Field(String),
    /// `[n]`
    Index(usize),
}

/// What a template is evaluated against.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    /// The run's input.
    pub input: &'a Value,
    /// Upstream outputs by step id (a fan-out step's is the list).
    pub outputs: &'a dyn Fn(&str) -> Option<Value>,
    /// The fan-out element and position, in a fan-out step.
    pub item: Option<(&'a Value, usize)>,
    /// The run id.
    pub run_id: &'a str,
    /// The workflow type.
    pub run_type: &'a str,
}

impl std::fmt::Debug for Scope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("run_id", &self.run_id)
            .field("run_type", &self.run_type)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A piece of a string template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Expr(Path),
}

fn parse_string(s: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("\\{{") {
            text.push_str("{{");
            rest = after;
        } else if let Some(after) = rest.strip_prefix("{{") {
            let end = after
                .find("}}")
                .ok_or_else(|| format!("{s:?} opens {{{{ without closing }}}}"))?;
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Expr(parse_path(after[..end].trim())?));
            rest = &after[end + 2..];
        } else {
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                text.push(c);
            }
            rest = chars.as_str();
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// Parses `input.a[0].b`, `steps.fetch.output.items`, `item`, `run.id`.
pub fn parse_path(expr: &str) -> Result<Path, String> {
    let bad = |why: &str| format!("{{{{ {expr} }}}}: {why}");
    let mut segments = Vec::new();
    let mut rest = expr;
    let mut first = true;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').ok_or_else(|| bad("'[' without ']'"))?;
            let n = after[..end]
                .trim()
                .parse::<usize>()
                .map_err(|_| bad("an index must be a number, as in items[0]"))?;
            segments.push(Segment::Index(n));
            rest = &after[end + 1..];
        } else {
            let body = if first {
                rest
            } else {
                rest.strip_prefix('.')
                    .ok_or_else(|| bad("expected '.' or '['"))?
            };
            let end = body.find(['.', '[']).unwrap_or(body.len());
            let name = &body[..end];
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(bad("names are letters, digits, '_' and '-'"));
            }
            segments.push(Segment::Field(name.to_string()));
            rest = &body[end..];
        }
        first = false;
    }
    let field = |i: usize| match segments.get(i) {
        Some(Segment::Field(f)) => Some(f.as_str()),
        _ => None,
    };
    let (root, skip) = match field(0) {
        Some("input") => (Root::Input, 1),
        Some("item") => (Root::Item, 1),
        Some("index") => (Root::Index, 1),
        Some("run") => match field(1) {
            Some("id" | "type") => (Root::Run, 1),
            _ => return Err(bad("run has only run.id and run.type")),
        },
        Some("steps") => match (field(1), field(2)) {
            (Some(id), Some("output")) => (Root::Step(id.to_string()), 3),
            _ => return Err(bad("a step's value is steps.<id>.output")),
        },
        _ => {
            return Err(bad(
                "paths start with input, steps.<id>.output, item, index or run",
            ));
        }
    };
    if root == Root::Index && segments.len() > 1 {
        return Err(bad("index is a number; it has no fields"));
    }
    Ok(Path {
        root,
        segments: segments.split_off(skip),
        text: expr.to_string(),
    })
}

/// Every path in a template value.
pub fn paths(template: &Value) -> Result<Vec<Path>, String> {
    let mut out = Vec::new();
    walk(template, &mut |s| {
        for piece in parse_string(s)? {
            if let Piece::Expr(p) = piece {
                out.push(p);
            }
        }
        Ok(())
    })?;
    Ok(out)
}

fn walk(v: &Value, f: &mut dyn FnMut(&str) -> Result<(), String>) -> Result<(), String> {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().try_for_each(|i| walk(i, f)),
        Value::Object(map) => map.values().try_for_each(|i| walk(i, f)),
        _ => Ok(()),
    }
}

fn lookup(path: &Path, scope: &Scope<'_>) -> Result<Value, String> {
    let start = match &path.root {
        Root::Input => scope.input.clone(),
        Root::Step(id) => (scope.outputs)(id)
            .ok_or_else(|| format!("{{{{ {path} }}}}: step {id:?} has no output yet"))?,
        Root::Item => scope
            .item
            .map(|(item, _)| item.clone())
            .ok_or_else(|| format!("{{{{ {path} }}}}: item exists only in a fan-out step"))?,
        Root::Index => scope
            .item
            .map(|(_, i)| Value::from(i))
            .ok_or_else(|| format!("{{{{ {path} }}}}: index exists only in a fan-out step"))?,
        Root::Run => match &path.segments.first() {
            Some(Segment::Field(f)) if f == "id" => Value::from(scope.run_id),
            _ => Value::from(scope.run_type),
        },
    };
    let segments = if path.root == Root::Run {
        &path.segments[1..]
    } else {
        &path.segments[..]
    };
    let mut at = &start;
    for seg in segments {
        let next = match seg {
            Segment::Field(f) => at.get(f.as_str()),
            Segment::Index(i) => at.get(*i),
        };
        at = next.ok_or_else(|| format!("{{{{ {path} }}}} finds nothing"))?;
    }
    Ok(at.clone())
}

/// Evaluates a template value against `scope`.
pub fn render(template: &Value, scope: &Scope<'_>) -> Result<Value, String> {
    Ok(match template {
        Value::String(s) => {
            let pieces = parse_string(s)?;
            match pieces.as_slice() {
                [Piece::Expr(p)] => lookup(p, scope)?,
                _ => {
                    let mut out = String::new();
                    for piece in pieces {
                        match piece {
                            Piece::Text(t) => out.push_str(&t),
                            Piece::Expr(p) => match lookup(&p, scope)? {
                                Value::String(s) => out.push_str(&s),
                                other => out.push_str(&other.to_string()),
                            },
                        }
                    }
                    Value::String(out)
                }
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render(i, scope))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render(v, scope)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope_render(template: &Value, item: Option<(&Value, usize)>) -> Result<Value, String> {
        let input = json!({"url": "http://x", "ids": [1, 2, 3], "user": {"name": "ada"}});
        let outputs = |id: &str| match id {
            "fetch" => Some(json!({"items": ["a", "b"], "n": 2})),
            "each" => Some(json!([{"r": 1}, {"r": 2}])),
            _ => None,
        };
        let scope = Scope {
            input: &input,
            outputs: &outputs,
            item,
            run_id: "run-1",
            run_type: "etl",
        };
        render(template, &scope)
    }

    #[test]
    fn whole_string_keeps_the_type_and_text_interpolates() {
        let out = scope_render(&json!({
                "ids": "{{ input.ids }}",
                "first": "{{input.ids[0]}}",
                "items": "{{ steps.fetch.output.items }}",
                "results": "{{ steps.each.output }}",
                "label": "user {{ input.user.name }} has {{ steps.fetch.output.n }} in {{ run.type }}/{{ run.id }}",
                "literal": "\\{{ not a template",
                "nested": [{"u": "{{ input.url }}"}, 5, true, null],
            }),
            None,
        )
        .unwrap();
        assert_eq!(out["ids"], json!([1, 2, 3]));
        assert_eq!(out["first"], json!(1));
        assert_eq!(out["items"], json!(["a", "b"]));
        assert_eq!(out["results"], json!([{"r": 1}, {"r": 2}]));
        assert_eq!(out["label"], "user ada has 2 in etl/run-1");
        assert_eq!(out["literal"], "{{ not a template");
        assert_eq!(out["nested"], json!([{"u": "http://x"}, 5, true, null]));
    }

    #[test]
    fn fan_out_items_and_indexes() {
        let item = json!({"id": 7});
        let out = scope_render(
            &json!({"id": "{{ item.id }}", "i": "{{ index }}"}),
            Some((&item, 3)),
        )
        .unwrap();
        assert_eq!(out, json!({"id": 7, "i": 3}));
        let err = scope_render(&json!("{{ item }}"), None).unwrap_err();
        assert!(err.contains("only in a fan-out step"), "{err}");
    }

    #[test]
    fn missing_values_and_bad_syntax_say_which_path() {
        let err = scope_render(&json!("{{ input.nope.deeper }}"), None).unwrap_err();
        assert!(
            err.contains("input.nope.deeper") && err.contains("finds nothing"),
            "{err}"
        );
        for (bad, why) in [
            ("{{ input.a", "without closing"),
            ("{{ inputs.a }}", "paths start with"),
            ("{{ steps.fetch.items }}", "steps.<id>.output"),
            ("{{ run.name }}", "run.id and run.type"),
            ("{{ input.a[x] }}", "must be a number"),
            ("{{ input..a }}", "names are"),
            ("{{ index.x }}", "no fields"),
        ] {
            let err = paths(&json!(bad)).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn paths_lists_every_reference() {
        let found =
            paths(&json!({"a": "{{ steps.x.output }} and {{ item.y }}", "b": ["{{ input }}"]}))
                .unwrap();
        let roots: Vec<Root> = found.into_iter().map(|p| p.root).collect();
        assert_eq!(roots, [Root::Step("x".into()), Root::Item, Root::Input]);
    }
}

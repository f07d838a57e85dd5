//! Key templates of cache-warm targets: text and `{column}` placeholders.

use serde_json::Value;

/// One piece of a key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    Text(String),
    Column(String),
}

/// A checked key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyTemplate {
    pieces: Vec<Piece>,
}

impl KeyTemplate {
    /// Parses `cache:template:{id}`: text, and placeholders that name a
    /// column (not empty, not nested, closed).
    pub(super) fn parse(template: &str) -> Result<Self, String> {
        if template.is_empty() {
            return Err("key must not be empty".into());
        }
        let mut pieces = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(format!("key {template:?} closes }} without opening {{"));
            }
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("key {template:?} opens {{ without closing }}"))?;
            let name = &after[..close];
            if name.is_empty() || name.contains('{') {
                return Err(format!(
                    "key {template:?} has an empty or nested placeholder"
                ));
            }
            pieces.push(Piece::Column(name.to_string()));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Self { pieces })
    }

    /// Whether the template writes one key per row (it has a placeholder).
    pub(super) fn is_per_row(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Column(_)))
    }

    /// The key of one row. A string column is used as is, other values as
    /// JSON (`42`, `true`); a missing or null column is an error.
    pub(super) fn render(&self, row: &Value) -> Result<String, String> {
        let mut key = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => key.push_str(t),
                Piece::Column(c) => match row.get(c.as_str()) {
                    Some(Value::String(s)) => key.push_str(s),
                    Some(Value::Null) | None => {
                        return Err(format!(
                            "a row has no value for {{{c}}} of the key template (its columns: {})",
                            columns(row)
                        ));
                    }
                    Some(other) => key.push_str(&other.to_string()),
                },
            }
        }
        Ok(key)
    }
}

/// The column names of a row, for error messages.
fn columns(row: &Value) -> String {
    match row {
        Value::Object(map) => map.keys().cloned().collect::<Vec<_>>().join(", "),
        _ => "none, it is not an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn placeholders_take_row_values() {
        let t = KeyTemplate::parse("cache:template:{id}:{lang}").unwrap();
        assert!(t.is_per_row());
        let row = json!({"id": 7, "lang": "en", "body": "x"});
        assert_eq!(t.render(&row).unwrap(), "cache:template:7:en");
        let err = t.render(&json!({"id": 7, "body": "x"})).unwrap_err();
        assert!(err.contains("{lang}") && err.contains("body, id"), "{err}");
        assert!(t.render(&json!({"id": 7, "lang": null})).is_err());
    }

    #[test]
    fn a_plain_key_is_one_key() {
        let t = KeyTemplate::parse("cache:stats").unwrap();
        assert!(!t.is_per_row());
        assert_eq!(t.render(&json!([1, 2])).unwrap(), "cache:stats");
    }

    #[test]
    fn malformed_templates_are_refused() {
        for (bad, why) in [
            ("", "empty"),
            ("cache:{id", "without closing"),
            ("cache:{}", "empty or nested"),
            ("cache:{a{b}}", "empty or nested"),
            ("cache:id}", "without opening"),
        ] {
            let err = KeyTemplate::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}

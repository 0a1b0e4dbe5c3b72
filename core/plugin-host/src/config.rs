//! Checks an installation's configuration against the JSON Schema in its manifest: the subset a
//! configuration form needs (an object of typed properties with ranges, choices and required
//! fields), in a few lines rather than a general validator.

use serde_json::Value;

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON pointer into the configuration (`/port`; `/` for the whole).
    pub pointer: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.pointer, self.message)
    }
}

/// Every problem with `value`.
pub fn check(schema: &Value, value: &Value) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    check_at(schema, value, "", &mut problems);
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

fn problem(pointer: &str, message: impl Into<String>) -> Problem {
    Problem {
        pointer: pointer.to_owned(),
        message: message.into(),
    }
}

fn check_at(schema: &Value, value: &Value, at: &str, problems: &mut Vec<Problem>) {
    let here = if at.is_empty() { "/" } else { at };
    let type_ok = match schema.get("type").and_then(Value::as_str) {
        Some("object") => value.is_object(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some("array") => value.is_array(),
        _ => true,
    };
    if !type_ok {
        let expected = schema.get("type").and_then(Value::as_str).unwrap_or("valid");
        problems.push(problem(here, format!("must be {expected}")));
        return;
    }
    if let Some(choices) = schema.get("enum").and_then(Value::as_array)
        && !choices.contains(value)
    {
        problems.push(problem(
            here,
            format!("must be one of {}", Value::Array(choices.clone())),
        ));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            problems.push(problem(here, format!("must be at least {min}")));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            problems.push(problem(here, format!("must be at most {max}")));
        }
    }
    if let Some(text) = value.as_str()
        && let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && text.chars().count() as u64 > max
    {
        problems.push(problem(here, format!("must be at most {max} characters")));
    }
    let Some(object) = value.as_object() else {
        return;
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
        if let Some(name) = required.as_str()
            && !object.contains_key(name)
        {
            problems.push(problem(&format!("{at}/{name}"), "is required"));
        }
    }
    for (name, item) in object {
        match properties.and_then(|p| p.get(name)) {
            Some(sub) => check_at(sub, item, &format!("{at}/{name}"), problems),
            None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                problems.push(problem(&format!("{at}/{name}"), "is not a setting of this plugin"));
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configurations_are_checked_against_the_schema() {
        let schema = json!({
            "type": "object", "additionalProperties": false, "required": ["host"],
            "properties": {
                "host": { "type": "string", "maxLength": 10 },
                "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
                "mode": { "enum": ["a", "b"] },
            }
        });
        assert_eq!(
            check(&schema, &json!({ "host": "pbx", "port": 5038, "mode": "a" })),
            Ok(())
        );
        let problems: Vec<String> = check(&schema, &json!({ "port": 0, "mode": "c", "extra": 1, }))
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            problems,
            vec![
                "/host: is required",
                "/extra: is not a setting of this plugin",
                "/mode: must be one of [\"a\",\"b\"]",
                "/port: must be at least 1",
            ]
        );
        let whole = check(&schema, &json!([])).unwrap_err();
        assert_eq!(
            (whole[0].pointer.as_str(), whole[0].message.as_str()),
            ("/", "must be object")
        );
        assert!(check(&schema, &json!({ "host": "a much too long name" })).is_err());
        assert!(check(&schema, &json!({ "host": "x", "port": 1.5 })).is_err());
    }
}

//! Lambda's event filtering (`FilterCriteria`) on stream records, for the local stream runner:
//! up to five patterns, ORed; a pattern matches when every field it names matches one of its
//! rules: an exact value, `{"prefix"}`, `{"anything-but"}` (values or a prefix), `{"numeric"}`
//! ranges and `{"exists"}`. Values in arrays match when any element does; DynamoDB numbers
//! (`{"N": "5"}`) count as numbers.

use serde::Deserialize;
use serde_json::Value;

/// The most patterns Lambda accepts per mapping (without a quota increase).
pub(super) const MAX_PATTERNS: usize = 5;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FilterCriteria {
    #[serde(default)]
    pub filters: Vec<Filter>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    /// The pattern as a JSON string, as in the template.
    pub pattern: String,
}

/// A filter pattern Lambda would refuse.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("{0} filter patterns; Lambda accepts at most {MAX_PATTERNS}")]
    TooMany(usize),
    #[error("filter pattern {pattern:?} is not a JSON object")]
    NotAnObject { pattern: String },
    #[error("filter pattern {pattern:?} is not JSON: {source}")]
    NotJson {
        pattern: String,
        source: serde_json::Error,
    },
}

/// Parsed patterns, ready to match.
#[derive(Debug, Clone, Default)]
pub struct Patterns(Vec<Value>);

impl Patterns {
    pub fn parse(criteria: &FilterCriteria) -> Result<Patterns, FilterError> {
        if criteria.filters.len() > MAX_PATTERNS {
            return Err(FilterError::TooMany(criteria.filters.len()));
        }
        criteria
            .filters
            .iter()
            .map(|f| match serde_json::from_str::<Value>(&f.pattern) {
                Ok(pattern @ Value::Object(_)) => Ok(pattern),
                Ok(_) => Err(FilterError::NotAnObject {
                    pattern: f.pattern.clone(),
                }),
                Err(source) => Err(FilterError::NotJson {
                    pattern: f.pattern.clone(),
                    source,
                }),
            })
            .collect::<Result<_, _>>()
            .map(Patterns)
    }

    /// No patterns let everything through.
    pub fn matches(&self, record: &Value) -> bool {
        self.0.is_empty()
            || self
                .0
                .iter()
                .any(|pattern| matches_object(pattern, Some(record)))
    }
}

fn matches_object(pattern: &Value, value: Option<&Value>) -> bool {
    let Value::Object(fields) = pattern else {
        return false;
    };
    fields.iter().all(|(name, rule)| {
        let field = value.and_then(|v| v.get(name));
        match rule {
            Value::Object(_) => matches_object(rule, field),
            Value::Array(rules) => rules.iter().any(|r| matches_rule(r, field)),
            _ => false,
        }
    })
}

/// Does one rule match the field (or, for an array field, any of its elements)?
fn matches_rule(rule: &Value, field: Option<&Value>) -> bool {
    if let Value::Object(operator) = rule {
        if let Some(exists) = operator.get("exists").and_then(Value::as_bool) {
            return field.is_some() == exists;
        }
    }
    let Some(field) = field else { return false };
    match field {
        Value::Array(items) => items.iter().any(|item| matches_value(rule, item)),
        _ => matches_value(rule, field),
    }
}

fn matches_value(rule: &Value, value: &Value) -> bool {
    match rule {
        Value::Object(operator) => {
            if let Some(prefix) = operator.get("prefix").and_then(Value::as_str) {
                value.as_str().is_some_and(|v| v.starts_with(prefix))
            } else if let Some(excluded) = operator.get("anything-but") {
                match excluded {
                    Value::Array(values) => !values.iter().any(|x| same(x, value)),
                    Value::Object(inner) => match inner.get("prefix").and_then(Value::as_str) {
                        Some(prefix) => value.as_str().is_some_and(|v| !v.starts_with(prefix)),
                        None => false,
                    },
                    single => !same(single, value),
                }
            } else if let Some(Value::Array(conditions)) = operator.get("numeric") {
                numeric(value).is_some_and(|n| in_range(n, conditions))
            } else {
                false
            }
        }
        literal => same(literal, value),
    }
}

/// Equal values; numbers compare by value, including DynamoDB's numbers held as text.
fn same(a: &Value, b: &Value) -> bool {
    match (numeric(a), numeric(b)) {
        (Some(x), Some(y)) if a.is_number() || b.is_number() => x == y,
        _ => a == b,
    }
}

fn numeric(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `[">", 0, "<=", 5]`: every comparison holds.
fn in_range(n: f64, conditions: &[Value]) -> bool {
    conditions.chunks(2).all(|pair| {
        match (
            pair.first().and_then(Value::as_str),
            pair.get(1).and_then(Value::as_f64),
        ) {
            (Some("="), Some(x)) => n == x,
            (Some("<"), Some(x)) => n < x,
            (Some("<="), Some(x)) => n <= x,
            (Some(">"), Some(x)) => n > x,
            (Some(">="), Some(x)) => n >= x,
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patterns(list: &[&str]) -> Patterns {
        let criteria = FilterCriteria {
            filters: list
                .iter()
                .map(|p| Filter {
                    pattern: p.to_string(),
                })
                .collect(),
        };
        Patterns::parse(&criteria).unwrap()
    }

    fn record(event: &str, sk: &str, status: Option<&str>, cost: &str) -> Value {
        let mut new = json!({ "SK": { "S": sk }, "Cost": { "N": cost } });
        if let Some(status) = status {
            new["Status"] = json!({ "S": status });
        }
        json!({ "eventName": event, "dynamodb": { "Keys": { "SK": { "S": sk } }, "NewImage": new } })
    }

    #[test]
    fn exact_values_prefixes_and_or_of_patterns() {
        let p = patterns(&[r#"{"eventName": ["INSERT", "MODIFY"]}"#]);
        assert!(p.matches(&record("INSERT", "A", None, "1")));
        assert!(!p.matches(&record("REMOVE", "A", None, "1")));
        let p = patterns(&[
            r#"{"dynamodb": {"Keys": {"SK": {"S": [{"prefix": "SERVER#"}]}}}}"#,
            r#"{"eventName": ["REMOVE"]}"#,
        ]);
        assert!(p.matches(&record("INSERT", "SERVER#1", None, "1")));
        assert!(
            p.matches(&record("REMOVE", "METADATA", None, "1")),
            "the second pattern"
        );
        assert!(!p.matches(&record("INSERT", "METADATA", None, "1")));
    }

    #[test]
    fn anything_but_numeric_and_exists() {
        let p = patterns(&[
            r#"{"dynamodb": {"Keys": {"SK": {"S": [{"anything-but": {"prefix": "AUDIT#"}}]}}}}"#,
        ]);
        assert!(p.matches(&record("INSERT", "SERVER#1", None, "1")));
        assert!(!p.matches(&record("INSERT", "AUDIT#2024", None, "1")));
        let p = patterns(&[r#"{"eventName": [{"anything-but": ["REMOVE"]}]}"#]);
        assert!(
            p.matches(&record("MODIFY", "A", None, "1"))
                && !p.matches(&record("REMOVE", "A", None, "1"))
        );
        let p = patterns(&[
            r#"{"dynamodb": {"NewImage": {"Cost": {"N": [{"numeric": [">", 100, "<=", 500]}]}}}}"#,
        ]);
        assert!(p.matches(&record("INSERT", "A", None, "247.42")));
        assert!(
            !p.matches(&record("INSERT", "A", None, "99.99"))
                && !p.matches(&record("INSERT", "A", None, "500.01"))
        );
        let p = patterns(&[r#"{"dynamodb": {"NewImage": {"Status": [{"exists": false}]}}}"#]);
        assert!(p.matches(&record("INSERT", "A", None, "1")));
        assert!(!p.matches(&record("INSERT", "A", Some("PENDING"), "1")));
    }

    #[test]
    fn no_patterns_let_everything_through_and_bad_ones_are_refused() {
        assert!(Patterns::default().matches(&json!({})));
        let six = FilterCriteria {
            filters: (0..6)
                .map(|_| Filter {
                    pattern: "{}".into(),
                })
                .collect(),
        };
        assert!(Patterns::parse(&six)
            .unwrap_err()
            .to_string()
            .contains("at most 5"));
        let bad = FilterCriteria {
            filters: vec![Filter {
                pattern: "{not json".into(),
            }],
        };
        assert!(Patterns::parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
    }
}

//! Data the application got wrong is not a failure of the worker: a reaction that meets an item
//! it cannot use leaves it out of its computation and names it in its result, under
//! `"skipped"`. The batch logs each one at WARN with the record it came with.

use serde::Serialize;

/// An item left out of a computation: which item, which attribute, what value it held.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub item: String,
    pub attribute: String,
    pub value: String,
}

impl Skipped {
    pub fn new(item: String, attribute: &str, value: &str) -> Skipped {
        Skipped {
            item,
            attribute: attribute.to_string(),
            value: value.to_string(),
        }
    }
}

/// `result` (a JSON object) with the skipped items added under `"skipped"`, when there are any.
pub fn with_skipped(
    mut result: serde_json::Value,
    skipped: impl IntoIterator<Item = Skipped>,
) -> serde_json::Value {
    let skipped: Vec<Skipped> = skipped.into_iter().collect();
    if !skipped.is_empty() {
        if let Some(object) = result.as_object_mut() {
            object.insert(
                "skipped".into(),
                serde_json::to_value(skipped).unwrap_or_default(),
            );
        }
    }
    result
}

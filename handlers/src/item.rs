//! DynamoDB items as the ports carry them, and the few helpers every reaction needs.
//!
//! Items are `serde_dynamo` values, which serialize as DynamoDB JSON (`{"S": "…"}`), so the
//! same type travels from the stream event through the reactions to the adapters.

use serde::{de::DeserializeOwned, Serialize};

pub use serde_dynamo::{AttributeValue, Item};

use crate::error::ReactionError;

/// The string value of attribute `name`, if it is a string.
pub fn get_str<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s),
        _ => None,
    }
}

/// `{PK=USER#1, SK=PROFILE}`: key attributes sorted by name, scalars shown plainly.
pub fn describe_keys(keys: &Item) -> String {
    let mut names: Vec<&String> = keys.keys().collect();
    names.sort();
    let parts: Vec<String> = names
        .into_iter()
        .map(|name| format!("{name}={}", scalar_text(&keys[name]).unwrap_or("…")))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// The text of a scalar attribute (S, N, BOOL as text is not borrowed so it is left out).
pub fn scalar_text(value: &AttributeValue) -> Option<&str> {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => Some(s),
        _ => None,
    }
}

/// A typed struct as an item (through serde_dynamo).
pub fn to_item<T: Serialize>(value: &T) -> Result<Item, ReactionError> {
    serde_dynamo::to_item(value).map_err(|e| ReactionError::Encode(e.to_string()))
}

/// An item as a typed struct (through serde_dynamo); `what` names it in the error.
pub fn from_item<T: DeserializeOwned>(item: Item, what: &str) -> Result<T, ReactionError> {
    serde_dynamo::from_item(item).map_err(|e| ReactionError::BadItem {
        what: what.to_string(),
        message: e.to_string(),
    })
}

/// Build a key item from `(name, string value)` pairs.
pub fn string_key(pairs: &[(&str, &str)]) -> Item {
    let map: std::collections::HashMap<String, AttributeValue> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), AttributeValue::S(v.to_string())))
        .collect();
    Item::from(map)
}

/// FNV-1a, 64 bits: a small hash that never changes between builds or platforms, for ids and
/// shard numbers that must be the same on every delivery of a record.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

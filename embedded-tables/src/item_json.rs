//! An item as the `items` table keeps it: DynamoDB JSON, written straight into one `String`.
//!
//! The same text `serde_json` makes of serde_dynamo's `Item` (attributes in the map's order,
//! strings escaped as `serde_json` escapes them), without serde's steps for every value: a
//! replay writes every item it stores this way, and the serde path cost three times as much.
//! Binary values (rare) still go through serde_json.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_dynamo::{AttributeValue, Item};

/// `item` as DynamoDB JSON text.
pub(crate) fn item_json(item: &Item) -> Result<String, serde_json::Error> {
    let mut out = String::with_capacity(256);
    write_map(&mut out, item)?;
    Ok(out)
}

fn write_map(
    out: &mut String,
    map: &HashMap<String, AttributeValue>,
) -> Result<(), serde_json::Error> {
    out.push('{');
    for (i, (name, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, name);
        out.push(':');
        write_value(out, value)?;
    }
    out.push('}');
    Ok(())
}

fn write_value(out: &mut String, value: &AttributeValue) -> Result<(), serde_json::Error> {
    match value {
        AttributeValue::S(text) => tagged(out, "S", |out| write_str(out, text)),
        AttributeValue::N(text) => tagged(out, "N", |out| write_str(out, text)),
        AttributeValue::Bool(b) => tagged(out, "BOOL", |out| out.push_str(bool_text(*b))),
        AttributeValue::Null(b) => tagged(out, "NULL", |out| out.push_str(bool_text(*b))),
        AttributeValue::Ss(texts) => tagged(out, "SS", |out| write_strs(out, texts)),
        AttributeValue::Ns(texts) => tagged(out, "NS", |out| write_strs(out, texts)),
        AttributeValue::M(map) => {
            out.push_str("{\"M\":");
            write_map(out, map)?;
            out.push('}');
        }
        AttributeValue::L(values) => {
            out.push_str("{\"L\":[");
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, value)?;
            }
            out.push_str("]}");
        }
        AttributeValue::B(_) | AttributeValue::Bs(_) => {
            out.push_str(&serde_json::to_string(value)?);
        }
    }
    Ok(())
}

/// `{"<tag>":<what write puts>}`.
fn tagged(out: &mut String, tag: &str, write: impl FnOnce(&mut String)) {
    out.push_str("{\"");
    out.push_str(tag);
    out.push_str("\":");
    write(out);
    out.push('}');
}

fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn write_strs(out: &mut String, texts: &[String]) {
    out.push('[');
    for (i, text) in texts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, text);
    }
    out.push(']');
}

/// The bytes a JSON string escapes: `"`, `\` and the control characters below U+0020 (a
/// table, as serde_json has: one look per byte).
const ESCAPED: [bool; 256] = {
    let mut escaped = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        escaped[byte] = true;
        byte += 1;
    }
    escaped[b'"' as usize] = true;
    escaped[b'\\' as usize] = true;
    escaped
};

/// `text` as a JSON string, escaped as serde_json escapes it (the usual control characters
/// by letter, the rest as `\u00XX`).
fn write_str(out: &mut String, text: &str) {
    out.push('"');
    let mut start = 0;
    for (i, &byte) in text.as_bytes().iter().enumerate() {
        if !ESCAPED[usize::from(byte)] {
            continue;
        }
        // `i` is at an ASCII byte, so both slices end on character boundaries.
        out.push_str(&text[start..i]);
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                let _ = write!(out, "\\u{byte:04x}");
            }
        }
        start = i + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = AttributeValue> {
        let text = prop_oneof![
            ".*",
            "[\\x00-\\x20\"\\\\a-z\u{7f}\u{e9}\u{2028}\u{1f600}]{0,12}"
        ];
        let leaf = prop_oneof![
            text.clone().prop_map(AttributeValue::S),
            "-?[0-9]{1,5}(\\.[0-9]{1,3})?".prop_map(AttributeValue::N),
            any::<bool>().prop_map(AttributeValue::Bool),
            Just(AttributeValue::Null(true)),
            prop::collection::vec(any::<u8>(), 0..8).prop_map(AttributeValue::B),
            prop::collection::vec(text.clone(), 1..4).prop_map(AttributeValue::Ss),
            prop::collection::vec("[0-9]{1,3}", 1..4).prop_map(AttributeValue::Ns),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 1..4), 1..3)
                .prop_map(AttributeValue::Bs),
        ];
        leaf.prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(AttributeValue::L),
                prop::collection::hash_map(".{0,6}", inner, 0..4).prop_map(AttributeValue::M),
            ]
        })
    }

    proptest! {
        /// Whatever the item holds, the text is serde_json's, byte for byte, and reads back
        /// as the same item.
        #[test]
        fn the_text_is_serde_jsons(map in prop::collection::hash_map(".{0,8}", value(), 0..6)) {
            let item = Item::from(map);
            let text = item_json(&item).unwrap();
            prop_assert_eq!(&text, &serde_json::to_string(&item).unwrap());
            let back: Item = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back, item);
        }
    }
}

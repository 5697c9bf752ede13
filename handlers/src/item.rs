//! DynamoDB items as the ports carry them, and the few helpers every reaction needs.
//!
//! Items are `serde_dynamo` values, which serialize as DynamoDB JSON (`{"S": "…"}`), so the
//! same type travels from the stream event through the reactions to the adapters.

use serde::ser::{SerializeMap, Serializer};
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

/// A partition of a table (its partition key's value), as `Reaction::partitions` names it and
/// the batch orders records by.
pub fn partition(table: &str, partition_key: &str) -> String {
    [table, "\u{0}", partition_key].concat()
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

/// A typed struct as an item (through serde_dynamo). Fields written with [`number`] become
/// exact DynamoDB numbers.
pub fn to_item<T: Serialize>(value: &T) -> Result<Item, ReactionError> {
    let mut item: Item =
        serde_dynamo::to_item(value).map_err(|e| ReactionError::Encode(e.to_string()))?;
    // In place: collecting the attributes again would hash every name twice more.
    item.values_mut().for_each(number::unmark);
    Ok(item)
}

/// An item as a typed struct (through serde_dynamo); `what` names it in the error. Number
/// fields must use [`number`] (or [`number::int`]), which read DynamoDB's exact text (and a
/// number an application wrote as a string). `NULL` reads as absent, at any depth: applications
/// write it for what is not known yet, and a reaction treats both alike.
pub fn from_item<T: DeserializeOwned>(
    item: Item,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<T, ReactionError> {
    let mut map = item.into_inner();
    map.retain(|_, value| !matches!(value, AttributeValue::Null(_)));
    map.values_mut().for_each(number::mark);
    // The path to the attribute that did not fit, so an error names it (`timestamp: …`).
    let deserializer = serde_dynamo::Deserializer::from_attribute_value(AttributeValue::M(map));
    serde_path_to_error::deserialize(deserializer).map_err(|e| ReactionError::BadItem {
        what: what.to_string(),
        message: match e.path().to_string().as_str() {
            "." | "" => e.inner().to_string(),
            path => format!("{path}: {}", e.inner()),
        },
    })
}

/// Exact numbers through serde_dynamo.
///
/// serde_dynamo reads a DynamoDB number through f64 and writes one only from Rust's number
/// types, so a `Decimal` would lose digits or be stored as a string. [`from_item`] therefore
/// hands every number to serde as marked text, which these field adapters parse exactly, and
/// [`to_item`] turns the marked text they write back into a number (`N`).
pub mod number {
    use rust_decimal::Decimal;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use super::AttributeValue;

    /// Prefix of a number carried as text; a control character no real string starts with.
    const MARK: &str = "\u{1}N:";

    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{MARK}{}", value.normalize()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).map_err(D::Error::custom)
    }

    fn parse(text: &str) -> Result<Decimal, String> {
        let digits = unmarked(text).trim();
        exact(digits).ok_or_else(|| {
            format!("{digits:?} is not a number this worker can hold exactly (28 significant digits, magnitude below 7.9E+28)")
        })
    }

    /// `text` as a `Decimal` only if it holds the number exactly: `Decimal`'s own parsers round
    /// what has more digits than it keeps, so 5.0000000000000000000000000000000000001 would be
    /// read as 5. Scientific notation is written out first; trailing zeros after the point are
    /// not digits that matter.
    pub fn exact(text: &str) -> Option<Decimal> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
            None => (unsigned, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let digits = format!("{int}{frac}");
        let digits = digits.trim_start_matches('0');
        if digits.is_empty() {
            return Some(Decimal::ZERO);
        }
        // The point sits `point` digits into `digits`; a number beyond Decimal's range in
        // either direction is refused before any long string is built.
        let leading_zeros = int.len() + frac.len() - digits.len();
        let point = int.len() as i64 - leading_zeros as i64 + exponent;
        if !(-40..=40).contains(&point) {
            return None;
        }
        let plain = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}", "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        let plain = match plain.contains('.') {
            true => plain
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string(),
            false => plain,
        };
        let value = Decimal::from_str_exact(&plain).ok()?;
        Some(if negative { -value } else { value })
    }

    /// The number in marked text (how [`from_item`](super::from_item) hands numbers to serde):
    /// None when `text` is not a number at all, Err(digits) when it is one no `Decimal` holds.
    pub fn marked(text: &str) -> Option<Result<Decimal, &str>> {
        let digits = text.strip_prefix(MARK)?;
        Some(parse(digits).map_err(|_| digits))
    }

    /// For `Option<Decimal>` fields (use with `#[serde(default)]`).
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            value: &Option<Decimal>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(v) => super::serialize(v, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Decimal>, D::Error> {
            Option::<String>::deserialize(deserializer)?
                .map(|text| parse(&text).map_err(D::Error::custom))
                .transpose()
        }
    }

    /// For `Option<String>` fields an application may write as text or as a number (a time
    /// in epoch milliseconds, an id): the text, or the number's digits (use with
    /// `#[serde(default, deserialize_with = "number::text_or_number")]`).
    pub fn text_or_number<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<String>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.map(|text| unmarked(&text).to_string()))
    }

    /// `text` without the mark [`from_item`](super::from_item) puts on numbers.
    fn unmarked(text: &str) -> &str {
        text.strip_prefix(MARK).unwrap_or(text)
    }

    /// For whole-number fields (`i64`: epoch seconds, versions).
    pub mod int {
        use super::*;

        pub fn serialize<S: Serializer>(value: &i64, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_str(&format!("{MARK}{value}"))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
            let text = String::deserialize(deserializer)?;
            let digits = unmarked(&text);
            digits
                .parse()
                .map_err(|_| D::Error::custom(format!("{digits:?} is not a whole number")))
        }
    }

    /// For `Option<i64>` fields (use with `#[serde(default)]`).
    pub mod option_int {
        use super::*;

        pub fn serialize<S: Serializer>(
            value: &Option<i64>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(v) => super::int::serialize(v, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<i64>, D::Error> {
            Option::<String>::deserialize(deserializer)?
                .map(|text| {
                    let digits = unmarked(&text);
                    digits
                        .parse()
                        .map_err(|_| D::Error::custom(format!("{digits:?} is not a whole number")))
                })
                .transpose()
        }
    }

    /// Numbers (at any depth) as marked text, for deserializing; a map's `NULL` attributes
    /// left out, so they read as absent.
    pub(super) fn mark(value: &mut AttributeValue) {
        match value {
            AttributeValue::N(n) => {
                n.insert_str(0, MARK);
                *value = AttributeValue::S(std::mem::take(n));
            }
            AttributeValue::M(m) => {
                m.retain(|_, value| !matches!(value, AttributeValue::Null(_)));
                m.values_mut().for_each(mark)
            }
            AttributeValue::L(l) => l.iter_mut().for_each(mark),
            _ => {}
        }
    }

    /// Marked text (at any depth) back to numbers, after serializing.
    pub(super) fn unmark(value: &mut AttributeValue) {
        match value {
            AttributeValue::S(s) if s.starts_with(MARK) => {
                s.drain(..MARK.len());
                *value = AttributeValue::N(std::mem::take(s));
            }
            AttributeValue::M(m) => m.values_mut().for_each(unmark),
            AttributeValue::L(l) => l.iter_mut().for_each(unmark),
            _ => {}
        }
    }
}

/// Build a key item from `(name, string value)` pairs.
pub fn string_key(pairs: &[(&str, &str)]) -> Item {
    // Not through `Item::from(HashMap)`, which collects (and hashes) every attribute again.
    let mut item = Item::default();
    item.extend(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), AttributeValue::S(v.to_string()))),
    );
    item
}

/// FNV-1a, 64 bits: a small hash that never changes between builds or platforms, for ids and
/// shard numbers that must be the same on every delivery of a record.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    std::hash::Hasher::write(&mut hasher, bytes);
    std::hash::Hasher::finish(&hasher)
}

/// An item that serializes with the attribute names in order at every level, as [`sorted`]
/// does, without building a `serde_json::Value` copy of it first (reports write many items).
pub struct SortedItem<'a>(pub &'a Item);

struct SortedValue<'a>(&'a AttributeValue);

fn sorted_map<'a, S: Serializer>(
    entries: impl Iterator<Item = (&'a String, &'a AttributeValue)>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut entries: Vec<_> = entries.collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut map = serializer.serialize_map(Some(entries.len()))?;
    for (name, value) in entries {
        map.serialize_entry(name, &SortedValue(value))?;
    }
    map.end()
}

impl Serialize for SortedItem<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        sorted_map(self.0.iter(), serializer)
    }
}

impl Serialize for SortedValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Members<'a>(&'a std::collections::HashMap<String, AttributeValue>);
        impl Serialize for Members<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                sorted_map(self.0.iter(), serializer)
            }
        }
        match self.0 {
            AttributeValue::M(members) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("M", &Members(members))?;
                map.end()
            }
            AttributeValue::L(list) => {
                let list: Vec<SortedValue> = list.iter().map(SortedValue).collect();
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("L", &list)?;
                map.end()
            }
            // Every other type has no names inside: its own form is already ordered.
            other => other.serialize(serializer),
        }
    }
}

/// The item as JSON with attributes in name order (readable, and identical across runs).
pub fn sorted(item: &Item) -> serde_json::Value {
    serde_json::to_value(item).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Priced {
        #[serde(with = "number")]
        cost: Decimal,
        #[serde(
            default,
            with = "number::option",
            skip_serializing_if = "Option::is_none"
        )]
        discount: Option<Decimal>,
        #[serde(with = "number::int")]
        version: i64,
        nested: Vec<Inner>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Inner {
        #[serde(with = "number")]
        amount: Decimal,
    }

    #[test]
    fn decimals_are_stored_as_exact_numbers_and_read_back_exactly() {
        let exact = "1234567890123456789.0123456789".parse().unwrap();
        let value = Priced {
            cost: exact,
            discount: Some("0.1".parse().unwrap()),
            version: 7,
            nested: vec![Inner {
                amount: "247.42".parse().unwrap(),
            }],
        };
        let item = to_item(&value).unwrap();
        assert_eq!(
            item["cost"],
            AttributeValue::N("1234567890123456789.0123456789".into())
        );
        assert_eq!(item["version"], AttributeValue::N("7".into()));
        match &item["nested"] {
            AttributeValue::L(l) => match &l[0] {
                AttributeValue::M(m) => assert_eq!(m["amount"], AttributeValue::N("247.42".into())),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        assert_eq!(from_item::<Priced>(item, "priced").unwrap(), value);
    }

    #[test]
    fn numbers_are_read_exactly_or_not_at_all() {
        use super::number::exact;
        let d = |t: &str| t.parse::<rust_decimal::Decimal>().unwrap();
        assert_eq!(exact("5"), Some(d("5")));
        assert_eq!(exact("-1.50"), Some(d("-1.5")));
        assert_eq!(exact("1.5e3"), Some(d("1500")));
        assert_eq!(exact("25E-1"), Some(d("2.5")));
        assert_eq!(exact("0.000"), Some(d("0")));
        assert_eq!(
            exact("5.000000000000000000000000000000000000"),
            Some(d("5"))
        );
        assert_eq!(exact("8E+28"), None, "beyond Decimal");
        assert_eq!(exact("1E+125"), None);
        assert_eq!(exact("1E-130"), None);
        assert_eq!(
            exact("5.0000000000000000000000000000000000001"),
            None,
            "would round to 5"
        );
        assert_eq!(exact("1e"), None);
        assert_eq!(exact("x"), None);
    }

    #[test]
    fn a_number_that_is_not_a_number_names_the_item() {
        let mut item = string_key(&[("cost", "x")]);
        item.insert("version".into(), AttributeValue::N("1".into()));
        item.insert("nested".into(), AttributeValue::L(vec![]));
        let err = from_item::<Priced>(item, "ESTIMATION#e1/METADATA").unwrap_err();
        assert!(
            err.to_string().starts_with("ESTIMATION#e1/METADATA:"),
            "{err}"
        );
    }

    #[test]
    fn a_sorted_item_is_written_as_its_sorted_json_value() {
        let item: Item = serde_json::from_value(serde_json::json!({
            "zeta": { "M": { "b": { "N": "2" }, "a": { "L": [ { "M": { "y": { "S": "1" }, "x": { "NULL": true } } }, { "BOOL": false } ] } } },
            "alpha": { "SS": ["b", "a"] },
            "mid": { "B": "AAE=" },
            "num": { "NS": ["1", "2"] },
        }))
        .unwrap();
        let written = serde_json::to_string(&SortedItem(&item)).unwrap();
        assert_eq!(written, serde_json::to_string(&sorted(&item)).unwrap());
        assert!(written.starts_with(r#"{"alpha":"#), "{written}");
        assert!(
            written.contains(r#"{"M":{"a":{"L":[{"M":{"x":"#),
            "{written}"
        );
    }
}

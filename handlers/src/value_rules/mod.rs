//! DynamoDB's rules for attribute values, checked as records come in: what DynamoDB refuses to
//! store, a stream never carries, so a record that breaks them was written by hand or by a
//! broken tool, and its values would fail later, far from the cause (or, on the embedded
//! state, be kept where DynamoDB would refuse them).
//!
//! Numbers: [`numbers`]. Sets: non-empty, without duplicates (numbers compared by
//! value). Nesting: at most 32 levels. Items: at most 400 KB (DynamoDB's size rule: names and
//! values in UTF-8 bytes, a number about one byte per two digits, 3 bytes per list or map plus
//! one per element). Keys: one or two attributes of type S, N or B, not empty, at most 2,048
//! bytes each (DynamoDB's partition key limit; its sort key limit is 1,024, but a record does
//! not say which attribute is which). Names: a record's sequence number and eventID, and table
//! names, as streams and DynamoDB give them.

use std::collections::HashSet;

pub mod numbers;

use crate::item::{AttributeValue, Item};

/// DynamoDB's largest item.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's deepest nesting of lists and maps.
pub const MAX_DEPTH: usize = 32;
/// DynamoDB's longest partition key value.
pub const MAX_KEY_BYTES: usize = 2048;
/// DynamoDB's longest sort key value.
pub const MAX_SORT_KEY_BYTES: usize = 1024;
/// DynamoDB's longest attribute name.
const MAX_NAME_BYTES: usize = 65_535;

/// eventIDs: what streams and the tools that write events use (32 hex digits from DynamoDB,
/// UUIDs from Kinesis, small numbers in samples), and nothing that could break a key or a line.
pub fn check_event_id(text: &str) -> Result<(), &'static str> {
    name_rule(
        text,
        1..=128,
        |b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'),
        "an eventID: 1 to 128 of A-Z a-z 0-9 . _ : -",
    )
}

/// DynamoDB's rule for table names.
pub fn check_table_name(text: &str) -> Result<(), &'static str> {
    name_rule(
        text,
        3..=255,
        |b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'),
        "a DynamoDB table name: 3 to 255 of A-Z a-z 0-9 _ . -",
    )
}

/// `text` is `lengths` bytes long, each `allowed`; else `rule`, which says so.
pub(crate) fn name_rule(
    text: &str,
    lengths: std::ops::RangeInclusive<usize>,
    allowed: fn(u8) -> bool,
    rule: &'static str,
) -> Result<(), &'static str> {
    match lengths.contains(&text.len()) && text.bytes().all(allowed) {
        true => Ok(()),
        false => Err(rule),
    }
}

/// A value that breaks a rule: its attribute path and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Broken {
    pub path: String,
    pub reason: String,
    /// When what broke is a number: its text and why it is not a DynamoDB number.
    pub number: Option<(String, &'static str)>,
}

fn broken(path: &str, reason: impl Into<String>) -> Option<Broken> {
    Some(Broken {
        path: path.to_string(),
        reason: reason.into(),
        number: None,
    })
}

/// `text` at `path`, if it is not a DynamoDB number.
fn broken_number(path: &str, text: &str) -> Option<Broken> {
    let why = numbers::check(text).err()?;
    Some(Broken {
        path: path.to_string(),
        reason: format!("{:?} is not a DynamoDB number: {why}", short(text)),
        number: Some((short(text), why)),
    })
}

/// The first value of `item` that DynamoDB would refuse, in a stable order (by name), or the
/// item itself when it is larger than DynamoDB stores. Linear in the item's size. Every record
/// and every embedded write is checked, and nearly all pass: a first walk neither sorts names
/// nor builds paths, and only an item that breaks a rule is walked again to name it.
pub fn first_broken(item: &Item) -> Option<Broken> {
    walk_item(item, Walk { naming: false })?;
    walk_item(item, Walk { naming: true })
}

/// How a walk goes: `naming` sorts names (a stable first) and builds the paths it reports.
#[derive(Clone, Copy)]
struct Walk {
    naming: bool,
}

impl Walk {
    /// A map's names and values, by name when naming (taken as they are met: no name is
    /// looked up again, which would hash it again), else as the map holds them, with nothing
    /// collected (every item written is walked so).
    fn entries<V>(
        self,
        map: &std::collections::HashMap<String, V>,
    ) -> impl Iterator<Item = (&String, &V)> {
        let by_name = self.naming.then(|| {
            let mut entries: Vec<(&String, &V)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            entries
        });
        let as_held = by_name.is_none().then(|| map.iter());
        by_name
            .into_iter()
            .flatten()
            .chain(as_held.into_iter().flatten())
    }

    fn path(self, build: impl FnOnce() -> String) -> String {
        match self.naming {
            true => build(),
            false => String::new(),
        }
    }
}

fn walk_item(item: &Item, walk: Walk) -> Option<Broken> {
    let mut size = 0usize;
    for (name, value) in walk.entries(item) {
        if name.is_empty() {
            return broken("\"\"", "an attribute name is empty");
        }
        if name.len() > MAX_NAME_BYTES {
            return broken(
                &short(name),
                "an attribute name is longer than 65,535 bytes",
            );
        }
        size += name.len();
        if let Some(broken) = check_value(value, name, 1, &mut size, walk) {
            return Some(broken);
        }
        if size > MAX_ITEM_BYTES {
            return broken(
                "(the item)",
                format!("the item is larger than DynamoDB's 400 KB ({MAX_ITEM_BYTES} bytes) by the time {} is counted", short(name)),
            );
        }
    }
    None
}

/// The first rule a record's `Keys` break: one or two attributes, each S, N or B, not empty, a
/// number one DynamoDB holds, at most [`MAX_KEY_BYTES`], and at most one of two longer than
/// [`MAX_SORT_KEY_BYTES`] (the other is the sort key; a record does not say which is which).
pub fn broken_key(keys: &Item) -> Option<Broken> {
    let found = broken_key_in(keys, None);
    if found.is_some() || keys.len() != 2 {
        return found;
    }
    let long = |value: &AttributeValue| scalar_bytes(value).unwrap_or(0) > MAX_SORT_KEY_BYTES;
    // Named by the later name, as the checks by name above go.
    let last = keys.keys().max().filter(|_| keys.values().all(long))?;
    broken(
        last,
        format!(
            "one of a key's two attributes is its sort key, at most {MAX_SORT_KEY_BYTES} \
             bytes; both of these are longer"
        ),
    )
}

/// The first rule a key of a table whose sort key is `sort_key` breaks: [`broken_key`]'s,
/// with the sort key at most [`MAX_SORT_KEY_BYTES`].
pub fn broken_key_in(keys: &Item, sort_key: Option<&str>) -> Option<Broken> {
    if keys.is_empty() {
        return broken(
            "Keys",
            "a stream record's Keys name its item; these are empty",
        );
    }
    if keys.len() > 2 {
        return broken(
            "Keys",
            format!("a key has one or two attributes; these have {}", keys.len()),
        );
    }
    let mut names: Vec<&String> = keys.keys().collect();
    names.sort();
    names
        .into_iter()
        .find_map(|name| broken_key_value(name, &keys[name], sort_key == Some(name.as_str())))
}

/// The first rule key attribute `name` with `value` breaks: an S, N or B value, not empty, a
/// number DynamoDB holds, at most [`MAX_SORT_KEY_BYTES`] for the sort key and
/// [`MAX_KEY_BYTES`] for the partition key (a key checked in place, where its table's schema
/// says which is which).
pub fn broken_key_value(name: &str, value: &AttributeValue, is_sort_key: bool) -> Option<Broken> {
    if let AttributeValue::N(text) = value {
        return broken_number(name, text);
    }
    let Some(bytes) = scalar_bytes(value) else {
        return broken(
            name,
            "a key attribute must be a string (S), number (N) or binary (B)",
        );
    };
    if bytes == 0 {
        return broken(name, "a key attribute must not be empty");
    }
    let (limit, role) = match is_sort_key {
        true => (MAX_SORT_KEY_BYTES, "a sort key"),
        false => (MAX_KEY_BYTES, "a key attribute"),
    };
    if bytes > limit {
        return broken(
            name,
            format!("{role} is at most {limit} bytes; this one has {bytes}"),
        );
    }
    None
}

/// The length of a string or binary value; None for any other type.
fn scalar_bytes(value: &AttributeValue) -> Option<usize> {
    match value {
        AttributeValue::S(text) | AttributeValue::N(text) => Some(text.len()),
        AttributeValue::B(bytes) => Some(bytes.len()),
        _ => None,
    }
}

fn check_value(
    value: &AttributeValue,
    path: &str,
    depth: usize,
    size: &mut usize,
    walk: Walk,
) -> Option<Broken> {
    let number = |text: &str, size: &mut usize| -> Option<Broken> {
        if let Some(broken) = broken_number(path, text) {
            return Some(broken);
        }
        *size += numbers::stored_bytes(text);
        None
    };
    match value {
        AttributeValue::S(text) => *size += text.len(),
        AttributeValue::B(bytes) => *size += bytes.len(),
        AttributeValue::N(text) => return number(text, size),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => *size += 1,
        AttributeValue::Ss(set) => {
            if let Some(broken) = set_rules(path, set.len(), || distinct(set.iter())) {
                return Some(broken);
            }
            *size += set.iter().map(String::len).sum::<usize>();
        }
        AttributeValue::Bs(set) => {
            if let Some(broken) = set_rules(path, set.len(), || distinct(set.iter())) {
                return Some(broken);
            }
            *size += set.iter().map(Vec::len).sum::<usize>();
        }
        AttributeValue::Ns(set) => {
            for text in set {
                if let Some(broken) = number(text, size) {
                    return Some(broken);
                }
            }
            let canonical = || distinct(set.iter().map(|text| numbers::canonical(text)));
            if let Some(broken) = set_rules(path, set.len(), canonical) {
                return Some(broken);
            }
        }
        AttributeValue::L(_) | AttributeValue::M(_) if depth >= MAX_DEPTH => {
            return broken(
                path,
                format!("lists and maps nest at most {MAX_DEPTH} levels deep"),
            );
        }
        AttributeValue::L(list) => {
            *size += 3 + list.len();
            for (i, element) in list.iter().enumerate() {
                let path = walk.path(|| format!("{path}[{i}]"));
                if let Some(broken) = check_value(element, &path, depth + 1, size, walk) {
                    return Some(broken);
                }
                if *size > MAX_ITEM_BYTES {
                    return None; // the item's own check names it
                }
            }
        }
        AttributeValue::M(map) => {
            *size += 3 + map.len();
            for (name, value) in walk.entries(map) {
                let path = walk.path(|| format!("{path}.{}", short(name)));
                *size += name.len();
                if let Some(broken) = check_value(value, &path, depth + 1, size, walk) {
                    return Some(broken);
                }
                if *size > MAX_ITEM_BYTES {
                    return None;
                }
            }
        }
    }
    None
}

/// A set must hold something, and nothing twice.
fn set_rules(path: &str, len: usize, distinct: impl FnOnce() -> bool) -> Option<Broken> {
    if len == 0 {
        broken(path, "a set (SS, NS, BS) must not be empty")
    } else if !distinct() {
        broken(
            path,
            "a set (SS, NS, BS) must not hold the same value twice",
        )
    } else {
        None
    }
}

fn distinct<T: std::hash::Hash + Eq>(values: impl Iterator<Item = T>) -> bool {
    let mut seen = HashSet::new();
    values.into_iter().all(|value| seen.insert(value))
}

/// At most [`crate::text::MESSAGE_CHARS`] characters of `text`, for a message (a value may
/// be 400 KB long).
pub fn short(text: &str) -> String {
    crate::text::cut(text, crate::text::MESSAGE_CHARS).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(value: serde_json::Value) -> Item {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn identities_follow_the_streams_rules() {
        for good in [
            "1",
            "c4ca4238a0b923820dcc509a6f75849b",
            "event-7",
            "a:b_c.d",
        ] {
            assert!(check_event_id(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "a b", "x\ny", &"e".repeat(129)] {
            assert!(check_event_id(bad).is_err(), "{bad}");
        }
        for bad in ["ab", "a\0bc", ".replay/x", &"t".repeat(256), "tab le"] {
            assert!(check_table_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_dynamodb_stores_pass() {
        let ok = item(json!({
            "s": {"S": ""}, "n": {"N": "1.5"}, "b": {"B": "AAE="},
            "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2"]}, "bs": {"BS": ["AA==", "AQ=="]},
            "l": {"L": [{"M": {"x": {"NULL": true}}}]}, "t": {"BOOL": true},
        }));
        assert_eq!(first_broken(&ok), None);
    }

    #[test]
    fn what_dynamodb_refuses_is_named_with_its_path() {
        let cases = [
            (json!({"a": {"SS": []}}), "a", "must not be empty"),
            (
                json!({"a": {"SS": ["x", "x"]}}),
                "a",
                "the same value twice",
            ),
            (
                json!({"a": {"NS": ["1", "1.0"]}}),
                "a",
                "the same value twice",
            ),
            (
                json!({"a": {"NS": ["1e999"]}}),
                "a",
                "not a DynamoDB number",
            ),
            (
                json!({"a": {"M": {"b": {"BS": []}}}}),
                "a.b",
                "must not be empty",
            ),
        ];
        for (value, path, reason) in cases {
            let found = first_broken(&item(value.clone())).unwrap_or_else(|| panic!("{value}"));
            assert_eq!(found.path, path, "{value}");
            assert!(found.reason.contains(reason), "{value}: {}", found.reason);
        }
    }

    #[test]
    fn a_bad_number_is_found_with_its_path_and_text() {
        let found = first_broken(&item(json!({
            "ok": {"N": "1"},
            "nested": {"M": {"list": {"L": [{"N": "2"}, {"NS": ["3", "1e999"]}]}}},
        })))
        .unwrap();
        assert_eq!(found.path, "nested.list[1]");
        assert_eq!(
            found.number,
            Some(("1e999".into(), "larger than DynamoDB's largest number, 9.9999999999999999999999999999999999999E+125"))
        );
        let key = broken_key(&item(json!({"PK": {"N": "NaN"}}))).unwrap();
        assert_eq!(key.number, Some(("NaN".into(), "not a number")));
    }

    #[test]
    fn nesting_and_size_are_bounded() {
        let mut deep = json!({"S": "x"});
        for _ in 0..MAX_DEPTH {
            deep = json!({"L": [deep]});
        }
        let found = first_broken(&item(json!({ "deep": deep }))).unwrap();
        assert!(found.reason.contains("32 levels"), "{found:?}");

        let big = "x".repeat(MAX_ITEM_BYTES);
        let found = first_broken(&item(json!({"a": {"S": big}}))).unwrap();
        assert!(found.reason.contains("400 KB"), "{found:?}");
        let fits = "x".repeat(MAX_ITEM_BYTES - 10);
        assert_eq!(first_broken(&item(json!({"a": {"S": fits}}))), None);
    }

    #[test]
    fn keys_are_one_or_two_non_empty_scalars() {
        assert_eq!(
            broken_key(&item(json!({"PK": {"S": "a"}, "SK": {"N": "1"}}))),
            None
        );
        for keys in [
            json!({}),
            json!({"PK": {"S": ""}}),
            json!({"PK": {"BOOL": true}}),
            json!({"PK": {"S": "x".repeat(MAX_KEY_BYTES + 1)}}),
            json!({"a": {"S": "1"}, "b": {"S": "2"}, "c": {"S": "3"}}),
            json!({"a": {"S": "x".repeat(MAX_SORT_KEY_BYTES + 1)}, "b": {"S": "y".repeat(MAX_SORT_KEY_BYTES + 1)}}),
        ] {
            assert!(broken_key(&item(keys.clone())).is_some(), "{keys}");
        }
    }

    #[test]
    fn a_sort_key_is_at_most_1024_bytes_and_a_partition_key_2048() {
        let keys = |pk: usize, sk: usize| {
            item(json!({"PK": {"S": "p".repeat(pk)}, "SK": {"S": "s".repeat(sk)}}))
        };
        assert_eq!(
            broken_key_in(&keys(MAX_KEY_BYTES, MAX_SORT_KEY_BYTES), Some("SK")),
            None
        );
        let found = broken_key_in(&keys(1, MAX_SORT_KEY_BYTES + 1), Some("SK")).unwrap();
        assert_eq!(found.path, "SK");
        assert!(
            found
                .reason
                .contains("sort key is at most 1024 bytes; this one has 1025"),
            "{found:?}"
        );
        let found = broken_key_in(&keys(MAX_KEY_BYTES + 1, 1), Some("SK")).unwrap();
        assert_eq!(found.path, "PK");
        // Roles unknown (a record's Keys): one long attribute may be the partition key.
        assert_eq!(broken_key(&keys(1, MAX_SORT_KEY_BYTES + 1)), None);
        assert!(broken_key(&keys(MAX_SORT_KEY_BYTES + 1, MAX_SORT_KEY_BYTES + 1)).is_some());
    }
}

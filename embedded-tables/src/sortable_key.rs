//! Key values as bytes that sort as DynamoDB sorts them, so that SQLite's own ordering of
//! BLOBs (memcmp) is a table's key order: strings by their UTF-8 bytes, binary by its bytes,
//! numbers by value.
//!
//! Each encoding starts with the value's type (`S`, `N`, `B`), so that values of different
//! types never meet as equal. A number is encoded as its sign, its decimal exponent and its
//! significant digits (without leading or trailing zeros), each arranged to compare the way
//! the values do: see [`number`].

use serde_dynamo::AttributeValue;

/// The sortable bytes of a key value: a non-empty string or binary, or a number. None for
/// anything else (a key attribute can hold nothing else).
pub fn encode(value: &AttributeValue) -> Option<Vec<u8>> {
    match value {
        AttributeValue::S(text) if !text.is_empty() => Some(tagged(b'S', text.as_bytes())),
        AttributeValue::B(bytes) if !bytes.is_empty() => Some(tagged(b'B', bytes)),
        AttributeValue::N(text) => number(text).map(|n| tagged(b'N', &n)),
        _ => None,
    }
}

fn tagged(tag: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 1);
    out.push(tag);
    out.extend_from_slice(bytes);
    out
}

/// The smallest bytes greater than every encoding that starts with `prefix` (for
/// `begins_with`): the prefix with its last byte below 0xFF raised by one. None when there is
/// no such bytes (every byte 0xFF), so there is no upper bound.
pub fn after_prefix(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut upper = prefix.to_vec();
    while let Some(last) = upper.pop() {
        if last < 0xFF {
            upper.push(last + 1);
            return Some(upper);
        }
    }
    None
}

/// The prefix bytes of a `begins_with` on a string or binary sort key (without the type's
/// end: a prefix of the value's bytes).
pub fn prefix(value: &AttributeValue) -> Option<Vec<u8>> {
    match value {
        AttributeValue::S(text) => Some(tagged(b'S', text.as_bytes())),
        AttributeValue::B(bytes) => Some(tagged(b'B', bytes)),
        _ => None,
    }
}

/// Largest decimal exponent taken (DynamoDB's own range is -130..=126).
const MAX_EXPONENT: i64 = 30_000;

/// A number as bytes in value order: `0x01` for a negative, `0x02` for zero, `0x03` for a
/// positive number; then, for a non-zero one, its exponent `e` (the value is
/// `0.d1d2… × 10^e` with `d1` not 0) as two big-endian bytes biased by 0x8000, and its
/// digits. A negative number's exponent and digits are inverted (larger magnitudes sort
/// first) and end with 0xFF, so that a shorter run of digits sorts after a longer one it
/// begins (-12 after -12.3). None for text that is not a decimal number.
fn number(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if integer.is_empty() && fraction.is_empty() {
        return None;
    }
    if !integer
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits: Vec<u8> = integer.bytes().chain(fraction.bytes()).collect();
    let leading = digits.iter().take_while(|&&d| d == b'0').count();
    if leading == digits.len() {
        return Some(vec![0x02]);
    }
    let significant = &digits[leading..];
    let trailing = significant.iter().rev().take_while(|&&d| d == b'0').count();
    let significant = &significant[..significant.len() - trailing];
    let point = i64::try_from(integer.len()).ok()? - i64::try_from(leading).ok()?;
    let exponent = point.checked_add(exponent)?;
    if exponent.abs() > MAX_EXPONENT {
        return None;
    }
    let biased = u16::try_from(exponent + 0x8000).ok()?;
    let mut out = Vec::with_capacity(significant.len() + 4);
    if negative {
        out.push(0x01);
        out.extend_from_slice(&(!biased).to_be_bytes());
        out.extend(significant.iter().map(|d| b'9' - d + b'0'));
        out.push(0xFF);
    } else {
        out.push(0x03);
        out.extend_from_slice(&biased.to_be_bytes());
        out.extend_from_slice(significant);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str) -> Vec<u8> {
        encode(&AttributeValue::N(text.into())).unwrap()
    }

    #[test]
    fn numbers_sort_by_value_whatever_their_spelling() {
        let ascending = [
            "-1e10", "-123", "-12.3", "-12", "-1.5", "-1", "-0.05", "0", "0.0001", "0.05", "1",
            "1.5", "9", "10", "12", "12.3", "123", "1e10",
        ];
        for pair in ascending.windows(2) {
            assert!(n(pair[0]) < n(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(n("12"), n("12.000"));
        assert_eq!(n("0"), n("-0.00"));
        assert_eq!(n("120"), n("1.2e2"));
        assert_eq!(n("+5"), n("5"));
    }

    #[test]
    fn strings_sort_by_bytes_and_types_never_meet() {
        let s = |t: &str| encode(&AttributeValue::S(t.into())).unwrap();
        assert!(s("SERVER#a") < s("SERVER#b"));
        assert!(s("a") < s("ab"));
        assert!(s("Z") < s("a"));
        assert_ne!(s("5"), n("5"));
        assert!(encode(&AttributeValue::S(String::new())).is_none());
        assert!(encode(&AttributeValue::Bool(true)).is_none());
        assert!(encode(&AttributeValue::N("1x".into())).is_none());
        assert!(encode(&AttributeValue::N("".into())).is_none());
        assert!(encode(&AttributeValue::N(".".into())).is_none());
    }

    #[test]
    fn a_prefix_bounds_every_value_it_begins() {
        let s = |t: &str| encode(&AttributeValue::S(t.into())).unwrap();
        let p = prefix(&AttributeValue::S("SERVER#".into())).unwrap();
        let upper = after_prefix(&p).unwrap();
        for inside in ["SERVER#", "SERVER#a", "SERVER#\u{10FFFF}"] {
            assert!(p <= s(inside) && s(inside) < upper, "{inside}");
        }
        for outside in ["SERVER", "SERVES", "STORAGE#a"] {
            assert!(!(p <= s(outside) && s(outside) < upper), "{outside}");
        }
        assert_eq!(after_prefix(&[0xFF, 0xFF]), None);
        assert_eq!(after_prefix(&[1, 0xFF]), Some(vec![2]));
    }
}

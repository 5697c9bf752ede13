//! DynamoDB's semantics for the operations the ports use, on items: number normalization,
//! condition evaluation and update application (key order is the `embedded-tables` crate's).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::str::FromStr;

use handlers::ports::{Comparison, Condition, Update};
use handlers::{AttributeValue, Item};
use rust_decimal::Decimal;

/// DynamoDB stores numbers without insignificant zeros: "8500.00" reads back as "8500".
/// Done on the digits, not through `Decimal`: DynamoDB keeps 38 significant digits and
/// `Decimal` only 28, so a round trip would round them away.
pub(super) fn normalize_number(text: &str) -> String {
    let text = text.trim();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let plain = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    if !plain {
        // Exponent forms and the like: Decimal's reading, or the text as it came.
        return Decimal::from_str(text)
            .map(|d| d.normalize().to_string())
            .unwrap_or_else(|_| text.to_string());
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let body = match (int.is_empty(), frac.is_empty()) {
        (true, true) => return "0".into(),
        (true, false) => format!("0.{frac}"),
        (false, true) => int.to_string(),
        (false, false) => format!("{int}.{frac}"),
    };
    if negative {
        format!("-{body}")
    } else {
        body
    }
}

/// The item with every number (and number set) normalized, as DynamoDB would store it.
/// In place: most numbers already are, and rebuilding the item would copy every attribute.
pub(super) fn normalize_item(mut item: Item) -> Item {
    item.values_mut().for_each(normalize_in_place);
    item
}

/// `item` normalized as [`normalize_item`] does, copied only if a number in it is not
/// normal already (most are).
pub(super) fn normalized_lent(item: &Item) -> Cow<'_, Item> {
    match item.values().all(is_normalized) {
        true => Cow::Borrowed(item),
        false => Cow::Owned(normalize_item(item.clone())),
    }
}

/// Whether every number in `value` is as [`normalize_number`] writes it.
fn is_normalized(value: &AttributeValue) -> bool {
    match value {
        AttributeValue::N(n) => is_normal(n),
        AttributeValue::Ns(ns) => ns.iter().all(|n| is_normal(n)),
        AttributeValue::M(m) => m.values().all(is_normalized),
        AttributeValue::L(l) => l.iter().all(is_normalized),
        _ => true,
    }
}

fn normalize_value(mut value: AttributeValue) -> AttributeValue {
    normalize_in_place(&mut value);
    value
}

fn normalize_in_place(value: &mut AttributeValue) {
    match value {
        AttributeValue::N(n) => normalize_text(n),
        AttributeValue::Ns(ns) => ns.iter_mut().for_each(normalize_text),
        AttributeValue::M(m) => m.values_mut().for_each(normalize_in_place),
        AttributeValue::L(l) => l.iter_mut().for_each(normalize_in_place),
        _ => {}
    }
}

fn normalize_text(number: &mut String) {
    if !is_normal(number) {
        *number = normalize_number(number);
    }
}

/// Whether `text` is a number as [`normalize_number`] writes it (plain digits, no sign but a
/// minus, no leading or trailing zero, no "-0"), so that it need not be written again.
fn is_normal(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (int, frac) = match unsigned.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (unsigned, None),
    };
    let int_normal = digits(int) && (int == "0" || !int.starts_with('0'));
    match frac {
        Some(frac) => int_normal && digits(frac) && !frac.ends_with('0'),
        // "-0" is "0".
        None => int_normal && !(int == "0" && unsigned.len() != text.len()),
    }
}

/// Whether `condition` holds on `item` (an absent item is an empty one).
pub(super) fn holds(condition: &Condition, item: Option<&Item>) -> bool {
    let get = |name: &str| item.and_then(|i| i.get(name));
    match condition {
        Condition::Exists(name) => get(name).is_some(),
        Condition::NotExists(name) => get(name).is_none(),
        Condition::Compare(name, op, value) => {
            let ordering = get(name).and_then(|actual| compare(actual, value));
            match (op, ordering) {
                (Comparison::Ne, None) => true,
                (_, None) => false,
                (Comparison::Eq, Some(o)) => o == Ordering::Equal,
                (Comparison::Ne, Some(o)) => o != Ordering::Equal,
                (Comparison::Lt, Some(o)) => o == Ordering::Less,
                (Comparison::Le, Some(o)) => o != Ordering::Greater,
                (Comparison::Gt, Some(o)) => o == Ordering::Greater,
                (Comparison::Ge, Some(o)) => o != Ordering::Less,
            }
        }
        Condition::And(all) => all.iter().all(|c| holds(c, item)),
        Condition::Or(any) => any.iter().any(|c| holds(c, item)),
    }
}

/// DynamoDB comparison: only values of the same type compare; `=` on other types compares
/// whole values (maps, lists, sets) for equality.
fn compare(a: &AttributeValue, b: &AttributeValue) -> Option<Ordering> {
    use AttributeValue as V;
    match (a, b) {
        (V::N(x), V::N(y)) => Some(Decimal::from_str(x).ok()?.cmp(&Decimal::from_str(y).ok()?)),
        (V::S(x), V::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (V::B(x), V::B(y)) => Some(x.cmp(y)),
        (V::Ss(x), V::Ss(y)) => same(set_of(x) == set_of(y)),
        (V::Ns(x), V::Ns(y)) => same(number_set(x) == number_set(y)),
        (V::Bs(x), V::Bs(y)) => same(set_of(x) == set_of(y)),
        (V::Bool(_), V::Bool(_))
        | (V::Null(_), V::Null(_))
        | (V::M(_), V::M(_))
        | (V::L(_), V::L(_)) => same(normalize_value(a.clone()) == normalize_value(b.clone())),
        _ => None,
    }
}

/// Equal, or "not equal" (only `=` and `<>` mean anything for such types).
fn same(equal: bool) -> Option<Ordering> {
    Some(if equal {
        Ordering::Equal
    } else {
        Ordering::Greater
    })
}

fn set_of<T: Ord + Clone>(values: &[T]) -> BTreeSet<T> {
    values.iter().cloned().collect()
}

fn number_set(values: &[String]) -> BTreeSet<String> {
    values.iter().map(|n| normalize_number(n)).collect()
}

/// Why an update cannot be applied (DynamoDB's ValidationException).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Invalid(pub String);

/// Apply `update` to `item` (which already holds the key), in DynamoDB's order of clauses.
pub(super) fn apply_update(
    item: &mut Item,
    update: &Update,
    key_names: &[&str],
) -> Result<(), Invalid> {
    let mut seen = BTreeSet::new();
    let names = update
        .set
        .iter()
        .map(|(n, _)| n)
        .chain(update.add.iter().map(|(n, _)| n))
        .chain(update.remove.iter());
    for name in names {
        if key_names.contains(&name.as_str()) {
            return Err(Invalid(format!(
                "Cannot update attribute {name}. This attribute is part of the key"
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(Invalid(format!(
                "Two document paths overlap: {name} appears twice in the update"
            )));
        }
    }
    for (name, value) in &update.set {
        item.insert(name.clone(), normalize_value(value.clone()));
    }
    for (name, value) in &update.add {
        let added = add(item.get(name), value).ok_or_else(|| {
            Invalid(format!(
                "An operand in the update expression has an incorrect data type: ADD {name}"
            ))
        })?;
        item.insert(name.clone(), added);
    }
    for name in &update.remove {
        item.remove(name);
    }
    Ok(())
}

/// ADD: numbers sum (missing counts as 0), sets unite; anything else is a type error.
fn add(current: Option<&AttributeValue>, value: &AttributeValue) -> Option<AttributeValue> {
    use AttributeValue as V;
    match (current, value) {
        (None, V::N(n)) => Some(V::N(normalize_number(n))),
        (Some(V::N(a)), V::N(b)) => {
            let sum = Decimal::from_str(a)
                .ok()?
                .checked_add(Decimal::from_str(b).ok()?)?;
            Some(V::N(sum.normalize().to_string()))
        }
        (None, V::Ss(_) | V::Ns(_) | V::Bs(_)) => Some(normalize_value(value.clone())),
        (Some(V::Ss(a)), V::Ss(b)) => Some(V::Ss(union(a, b))),
        (Some(V::Ns(a)), V::Ns(b)) => {
            let mut all = number_set(a);
            all.extend(number_set(b));
            Some(V::Ns(all.into_iter().collect()))
        }
        (Some(V::Bs(a)), V::Bs(b)) => Some(V::Bs(union(a, b))),
        _ => None,
    }
}

fn union<T: Ord + Clone>(a: &[T], b: &[T]) -> Vec<T> {
    let mut all = set_of(a);
    all.extend(b.iter().cloned());
    all.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.into())
    }

    #[test]
    fn numbers_normalize() {
        assert_eq!(normalize_number("8500.00"), "8500");
        assert_eq!(normalize_number("0.10"), "0.1");
        assert_eq!(normalize_number("-007.50"), "-7.5");
        assert_eq!(normalize_number("-0.000"), "0");
        assert_eq!(normalize_number("1E+2"), "100");
        // 38 significant digits survive (Decimal would round them to 28).
        for exact in [
            "12345678901234567890.123456789012345678",
            "99999999999999999999999999999999999999",
            "-0.00000000000000000000000000000000000001",
        ] {
            assert_eq!(normalize_number(exact), exact);
        }
    }

    proptest::proptest! {
        /// A number taken as already normal is left exactly as normalizing would write it.
        #[test]
        fn a_number_taken_as_normal_is_normal(text in "[-+ ]?[0-9]{0,4}(\\.[0-9]{0,4})?(E[0-9])?") {
            if is_normal(&text) {
                proptest::prop_assert_eq!(normalize_number(&text), text.clone());
            }
            let normalized = normalize_number(&text);
            let a_number = Decimal::from_str(text.trim()).is_ok();
            if a_number && normalized.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-') {
                proptest::prop_assert!(is_normal(&normalized), "{normalized}");
            }
        }
    }

    #[test]
    fn missing_attributes_fail_every_comparison_but_not_equal() {
        let item = Item::default();
        assert!(!holds(&Condition::eq("a", n("1")), Some(&item)));
        assert!(!holds(&Condition::lt("a", n("1")), Some(&item)));
        assert!(holds(
            &Condition::Compare("a".into(), Comparison::Ne, n("1")),
            None
        ));
    }

    #[test]
    fn add_sums_numbers_exactly_and_unites_sets() {
        let mut item = Item::default();
        let update = Update::default()
            .add("sum", n("0.1"))
            .add("tags", AttributeValue::Ss(vec!["b".into()]));
        apply_update(&mut item, &update, &[]).unwrap();
        apply_update(
            &mut item,
            &Update::default()
                .add("sum", n("0.2"))
                .add("tags", AttributeValue::Ss(vec!["a".into(), "b".into()])),
            &[],
        )
        .unwrap();
        assert_eq!(item.get("sum"), Some(&n("0.3")));
        assert_eq!(
            item.get("tags"),
            Some(&AttributeValue::Ss(vec!["a".into(), "b".into()]))
        );
    }

    #[test]
    fn key_attributes_cannot_be_updated() {
        let mut item = Item::default();
        let err =
            apply_update(&mut item, &Update::default().set("PK", n("1")), &["PK"]).unwrap_err();
        assert!(err.0.contains("part of the key"));
    }
}

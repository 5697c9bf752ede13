//! DynamoDB's rules for numbers, checked as records come in: at most 38 significant digits and
//! a magnitude from 1E-130 to 9.9999999999999999999999999999999999999E+125 (or zero). A real
//! stream never breaks them, so a record that does was written by hand or by a broken tool,
//! and its values would fail later, far from the cause.

/// Why `text` is not a DynamoDB number, if it is not.
pub fn check(text: &str) -> Result<(), &'static str> {
    let Parts {
        int,
        frac,
        exponent,
        ..
    } = Parts::of(text);
    let exponent: i64 = match exponent {
        Some(text) => text.parse().map_err(|_| "not a number")?,
        None => 0,
    };
    let digits_only = int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits_only {
        return Err("not a number");
    }
    let (leading_zeros, significant) = significant_digits(int, frac);
    if significant == 0 {
        return Ok(()); // zero, however written
    }
    if significant > 38 {
        return Err("more than 38 significant digits");
    }
    let magnitude = magnitude(int, leading_zeros, exponent);
    if magnitude > 125 {
        Err("larger than DynamoDB's largest number, 9.9999999999999999999999999999999999999E+125")
    } else if magnitude < -130 {
        Err("closer to zero than DynamoDB's smallest number, 1E-130")
    } else {
        Ok(())
    }
}

/// The number's value as (negative, significant digits, power of ten of the first digit), so
/// that `1`, `1.0` and `10E-1` compare equal (a number set must not hold one value twice).
/// Only for text [`check`] accepted.
pub fn canonical(text: &str) -> (bool, String, i64) {
    let parts = Parts::of(text);
    let exponent: i64 = parts.exponent.map_or(0, |e| e.parse().unwrap_or(0));
    let (leading, significant) = significant_digits(parts.int, parts.frac);
    if significant == 0 {
        return (false, String::new(), 0);
    }
    // Both cuts are next to a run of ASCII zeros, or the text's ends: char boundaries.
    let mut digits = [parts.int, parts.frac].concat();
    digits.truncate(leading + significant);
    digits.drain(..leading);
    (
        parts.negative,
        digits,
        magnitude(parts.int, leading, exponent),
    )
}

/// What DynamoDB counts for a number in an item's size: about one byte per two significant
/// digits, plus one. Only for text [`check`] accepted.
pub fn stored_bytes(text: &str) -> usize {
    let parts = Parts::of(text);
    significant_digits(parts.int, parts.frac).1.div_ceil(2) + 1
}

/// The power of ten of the first significant digit, with `leading` zeros before it. Saturated:
/// an exponent is any i64 a writer puts there (`12E9223372036854775807`), and past DynamoDB's
/// range in either direction is all [`check`] needs to know.
fn magnitude(int: &str, leading: usize, exponent: i64) -> i64 {
    let digits_before_point = i64::try_from(int.len()).unwrap_or(i64::MAX);
    let leading = i64::try_from(leading).unwrap_or(i64::MAX);
    (digits_before_point
        .saturating_sub(leading)
        .saturating_sub(1))
    .saturating_add(exponent)
}

/// A number's text in its parts, nothing checked: [`check`], [`canonical`] and
/// [`stored_bytes`] read it alike.
struct Parts<'t> {
    negative: bool,
    /// The mantissa's digits before the point and after it.
    int: &'t str,
    frac: &'t str,
    /// The exponent's text, after `e` or `E`, if there is one.
    exponent: Option<&'t str>,
}

impl Parts<'_> {
    fn of(text: &str) -> Parts<'_> {
        let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
            None => (unsigned, None),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        Parts {
            negative: text.starts_with('-'),
            int,
            frac,
            exponent,
        }
    }
}

/// Of a mantissa's digits (`int` then `frac`): how many zeros lead, and how many digits are
/// significant (none for zero). Counted in place: every number of every item written is
/// checked, and a copy of its digits each time was a tenth of the check.
fn significant_digits(int: &str, frac: &str) -> (usize, usize) {
    let all = int.len() + frac.len();
    let leading = int
        .bytes()
        .chain(frac.bytes())
        .take_while(|b| *b == b'0')
        .count();
    if leading == all {
        return (leading, 0);
    }
    let trailing = frac
        .bytes()
        .rev()
        .chain(int.bytes().rev())
        .take_while(|b| *b == b'0')
        .count();
    (leading, all - leading - trailing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamodb_numbers_are_accepted() {
        for text in [
            "0",
            "-0",
            "0.000",
            "00012",
            "123.456",
            "-1.5e-3",
            ".5",
            "7.",
            "1E+125",
            "9.9999999999999999999999999999999999999E+125",
            "-9.9999999999999999999999999999999999999E+125",
            "1E-130",
            "0.0001e-126",
            "99999999999999999999999999999999999999",
            "12345678901234567890.123456789012345678",
            "1000000000000000000000000000000000000000000",
        ] {
            assert_eq!(check(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        for (text, why) in [
            ("", "not a number"),
            ("-", "not a number"),
            ("not-a-number", "not a number"),
            ("NaN", "not a number"),
            ("Infinity", "not a number"),
            ("1.2.3", "not a number"),
            ("1e", "not a number"),
            ("0x10", "not a number"),
            ("1 000", "not a number"),
            ("1e126", "larger than DynamoDB's largest number, 9.9999999999999999999999999999999999999E+125"),
            ("10E+125", "larger than DynamoDB's largest number, 9.9999999999999999999999999999999999999E+125"),
            ("1e-131", "closer to zero than DynamoDB's smallest number, 1E-130"),
            ("0.0001e-127", "closer to zero than DynamoDB's smallest number, 1E-130"),
            ("1234567890123456789012345678901234567891", "more than 38 significant digits"),
            ("12E9223372036854775807", "larger than DynamoDB's largest number, 9.9999999999999999999999999999999999999E+125"),
            ("0.01E-9223372036854775808", "closer to zero than DynamoDB's smallest number, 1E-130"),
        ] {
            assert_eq!(check(text), Err(why), "{text}");
        }
    }

    proptest::proptest! {
        /// The digits counted in place are those of the number's canonical form: the size
        /// DynamoDB counts, and the refusal of more than 38 significant digits.
        #[test]
        fn significant_digits_are_the_canonical_forms(
            text in "[-+]?0{0,3}[0-9]{0,45}(\\.[0-9]{0,45}0{0,3})?([eE][-+]?[0-9]{1,3})?"
        ) {
            let (_, digits, _) = canonical(&text);
            if check(&text).is_ok() {
                proptest::prop_assert_eq!(stored_bytes(&text), digits.len().div_ceil(2) + 1);
            }
            let mantissa = text.trim_start_matches(['-', '+']).split(['e', 'E']).next().unwrap();
            if mantissa.bytes().any(|b| b.is_ascii_digit()) && check(&text) != Err("not a number") {
                proptest::prop_assert_eq!(
                    check(&text) == Err("more than 38 significant digits"),
                    digits.len() > 38
                );
            }
        }
    }
}

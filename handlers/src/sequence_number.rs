//! Stream sequence numbers: the one type that compares them, and the rule a stream's keep.
//! They are decimal digits of any length (DynamoDB's are 21 to 40; some sources pad with
//! zeros), so they compare as numbers: by length without leading zeros, then digit by digit.

use std::cmp::Ordering;

/// A sequence number as the record has it, compared as a number (`"0010" == "10"`).
#[derive(Debug, Clone, Copy)]
pub struct SequenceNumber<'a>(pub &'a str);

impl SequenceNumber<'_> {
    /// The rule a stream's sequence numbers keep: 21 to 40 decimal digits (DynamoDB Streams'
    /// API reference).
    pub fn check(text: &str) -> Result<(), &'static str> {
        crate::value_rules::name_rule(
            text,
            21..=40,
            |b| b.is_ascii_digit(),
            "a stream sequence number: 21 to 40 decimal digits (the AWS documentation's samples use short ones such as \"111\"; pad them with leading digits)",
        )
    }

    fn digits(&self) -> &str {
        self.0.trim_start_matches('0')
    }
}

impl Ord for SequenceNumber<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.digits(), other.digits());
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    }
}

impl PartialOrd for SequenceNumber<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for SequenceNumber<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for SequenceNumber<'_> {}

#[cfg(test)]
mod tests {
    use super::SequenceNumber as S;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(S("10") >= S("9"));
        assert!(S("0010") >= S("10"));
        assert!(S("9") < S("10"));
        assert!(S("000000000000000000099") < S("100"));
        assert!(S("900") < S("1000"));
        assert!(S("000123") < S("124"));
        assert!(S("500") == S("500"));
    }

    #[test]
    fn sequence_numbers_follow_the_streams_rule() {
        assert!(S::check("400000000000000000500").is_ok());
        assert!(S::check(&"9".repeat(40)).is_ok());
        for bad in [
            "",
            "111",
            "../../x",
            "4000000000000000005OO",
            &"9".repeat(41),
        ] {
            assert!(S::check(bad).is_err(), "{bad}");
        }
    }
}

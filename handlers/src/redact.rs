//! Redaction of personal data and secrets before they are written to an audit item or a log
//! line, and the pseudonyms audit keys carry instead of it.
//!
//! Two checks, neither of which ever alters an id: by attribute name ([`SensitiveNames`]: a
//! configurable list, by default the names of email addresses, phone numbers, people's names,
//! postal and IP addresses, tokens, passwords and other secrets), and by value, in any text:
//! email addresses, bearer tokens and JWTs, and phone numbers written in international form
//! (a `+`, then 7 to 15 digits, standing apart from other words). Digit runs alone are never
//! taken for phone numbers: ids, epoch times, account numbers and module paths are full of
//! them. Keys, ARNs, URLs and module paths are kept whole.

use std::sync::LazyLock;

use regex::Regex;

pub const REDACTED: &str = "[REDACTED]";

/// The attribute names redacted by default (`REDACTED_ATTRIBUTES`), compared without case and
/// without `_`, `-` and `.`: `*x` names ending in x, `x*` starting with it, `*x*` holding it.
pub const DEFAULT_SENSITIVE_NAMES: &str = "*email*, *phone*, mobile*, ip, ipaddress, sourceip, \
clientip, *address, name, fullname, firstname, lastname, displayname, *token, *password, passwd, \
*secret*, apikey, *credential*, authorization, ssn";

/// Attribute names whose values are personal data or secrets, whatever the value looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensitiveNames {
    patterns: Vec<NamePattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NamePattern {
    Is(String),
    EndsWith(String),
    StartsWith(String),
    Holds(String),
}

/// `Ip_Address` -> `ipaddress`.
fn folded(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

impl SensitiveNames {
    /// From a comma-separated list of patterns (see [`DEFAULT_SENSITIVE_NAMES`]).
    pub fn from_list(list: &str) -> Self {
        let patterns = list
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|pattern| {
                let (start, end) = (pattern.starts_with('*'), pattern.ends_with('*'));
                let word = folded(pattern.trim_matches('*'));
                match (start, end) {
                    (true, true) => NamePattern::Holds(word),
                    (true, false) => NamePattern::EndsWith(word),
                    (false, true) => NamePattern::StartsWith(word),
                    (false, false) => NamePattern::Is(word),
                }
            })
            .filter(|p| !matches!(p, NamePattern::Is(w) | NamePattern::EndsWith(w) | NamePattern::StartsWith(w) | NamePattern::Holds(w) if w.is_empty()))
            .collect();
        SensitiveNames { patterns }
    }

    /// Whether an attribute with this name holds data that must not reach the audit log.
    pub fn contains(&self, name: &str) -> bool {
        let name = folded(name);
        self.patterns.iter().any(|pattern| match pattern {
            NamePattern::Is(word) => name == *word,
            NamePattern::EndsWith(word) => name.ends_with(word.as_str()),
            NamePattern::StartsWith(word) => name.starts_with(word.as_str()),
            NamePattern::Holds(word) => name.contains(word.as_str()),
        })
    }

    /// The text to record for attribute `name` with text `value`.
    pub fn redact_attribute(&self, name: &str, value: &str) -> String {
        if self.contains(name) {
            REDACTED.to_string()
        } else {
            redact_text(value)
        }
    }
}

impl Default for SensitiveNames {
    fn default() -> Self {
        Self::from_list(DEFAULT_SENSITIVE_NAMES)
    }
}

static SENSITIVE_VALUE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(concat!(
        // email address
        r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}",
        // bearer tokens and JWTs
        r"|(?i:bearer\s+)[A-Za-z0-9._\-]+|\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*",
    ))
    .ok()
});

/// A phone number in international form: `+`, then digits with the separators phone numbers
/// use; checked to hold 7 to 15 digits (E.164) and to stand apart from other words.
static INTERNATIONAL_PHONE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\+\d[\d ().\-]{5,}\d").ok());

/// The value with every email address, international phone number and token replaced.
pub fn redact_text(value: &str) -> String {
    replace_personal(value, |_| REDACTED.to_string())
}

/// The value with every email address, international phone number and token replaced by a
/// stable pseudonym, `anon-` and 12 hex digits of a hash of it: the same person gets the same
/// pseudonym in every item (a user's audit history stays together under GSI1), and the text
/// itself is not stored. A pseudonym, not an anonymization: whoever can guess an address can
/// hash it and compare.
pub fn pseudonymize(value: &str) -> String {
    replace_personal(value, pseudonym)
}

/// `anon-` and 48 bits of a stable hash of `text`.
pub fn pseudonym(text: &str) -> String {
    format!(
        "anon-{:012x}",
        crate::item::stable_hash(text.as_bytes()) >> 16
    )
}

/// `value` with each piece of personal data (the patterns above) replaced by `with(piece)`.
fn replace_personal(value: &str, with: impl Fn(&str) -> String) -> String {
    let (Some(general), Some(phone)) = (SENSITIVE_VALUE.as_ref(), INTERNATIONAL_PHONE.as_ref())
    else {
        return with(value);
    };
    // Most values hold neither an `@`, a `+` nor a token: nothing to search.
    let first = general.replace_all(value, |caps: &regex::Captures| with(&caps[0]));
    if !first.contains('+') {
        return first.into_owned();
    }
    let mut out = String::with_capacity(first.len());
    let mut last = 0;
    for found in phone.find_iter(&first) {
        let digits = found.as_str().chars().filter(char::is_ascii_digit).count();
        // Apart from other words: not inside an id such as `a+1-555-0100x`.
        let before = first[..found.start()].chars().next_back();
        let after = first[found.end()..].chars().next();
        let apart = |c: Option<char>| {
            c.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '|' || c == '+'))
        };
        if (7..=15).contains(&digits) && apart(before) && apart(after) {
            out.push_str(&first[last..found.start()]);
            out.push_str(&with(found.as_str()));
            last = found.end();
        }
    }
    out.push_str(&first[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_hold_personal_data_are_redacted() {
        for name in [
            "Email",
            "email",
            "recipient_email",
            "phoneNumber",
            "IPAddress",
            "ip_address",
            "invite_token",
            "Password",
            "apiKey",
            "name",
            "lastName",
            "BillingAddress",
        ] {
            assert!(
                SensitiveNames::default().contains(name),
                "{name} should be sensitive"
            );
        }
        for name in [
            "ProjectName",
            "Status",
            "EstimatedMonthlyCost",
            "Description",
            "Tip",
            "SessionId",
            "TableName",
            "Ownership",
        ] {
            assert!(
                !SensitiveNames::default().contains(name),
                "{name} should not be sensitive"
            );
        }
    }

    #[test]
    fn values_that_look_like_personal_data_are_redacted_in_place() {
        assert_eq!(
            redact_text("mail john.doe@sagesoft.com now"),
            "mail [REDACTED] now"
        );
        assert_eq!(redact_text("call +1 (555) 010-2000"), "call [REDACTED]");
        assert_eq!(redact_text("call +1-555-0123"), "call [REDACTED]");
        assert_eq!(redact_text("Bearer abc.def-123"), "[REDACTED]");
    }

    #[test]
    fn ordinary_values_are_kept() {
        for value in [
            "version 1.2.3",
            "Client ABC Infrastructure",
            "2024-01-15T10:30:00Z",
            "10:30:00",
            "8500.00",
            "t3.xlarge",
            "APPROVED",
            // Digit runs are ids, times and accounts, not phone numbers.
            "call 555 010 2000",
            "be507341-934e-4224-b2ed-8b5fb999287a",
            "1796292287864-vrfx04v3",
            "booking_1796292287864_e9aea01c",
            "ddb_stream_worker::batch::record",
            "https://sqs.us-east-1.amazonaws.com/123456789012/failed-records",
            "arn:aws:dynamodb:us-east-1:123456789012:table/Bookings/stream/2026-12-03T10:00:00.000",
            "auth0|123456789",
            "a+1-555-0100x",
        ] {
            assert_eq!(redact_text(value), value);
        }
    }
}

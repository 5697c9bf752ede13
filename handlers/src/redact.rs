//! Redaction of personal data and secrets before they are written to an audit item or a log
//! line, and the pseudonyms audit keys carry instead of it.
//!
//! Two checks: by attribute name (anything that names an email, phone, IP address, token,
//! password, secret or key material) and by value (text that looks like an email address,
//! a phone number or an IP address, wherever it appears).

use std::sync::LazyLock;

use regex::Regex;

pub const REDACTED: &str = "[REDACTED]";

static SENSITIVE_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(e-?mail|phone|mobile|\bip\b|ip_?address|ipaddress|token|password|passwd|secret|api_?key|credential|authorization|session_?id|\bssn\b)",
    )
    .ok()
});

static SENSITIVE_VALUE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(concat!(
        // email address
        r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}",
        // bearer tokens and JWTs
        r"|(?i:bearer\s+)[A-Za-z0-9._\-]+|\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*",
    ))
    .ok()
});

/// Text that might be an IP address; kept only if the standard library parses it as one, so
/// times such as 10:30:00 and versions such as 1.2.3 survive.
static IP_CANDIDATE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?:\b\d{1,3}(?:\.\d{1,3}){3}\b)|(?:[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})")
        .ok()
});

/// Whether an attribute with this name holds data that must not reach the audit log.
pub fn is_sensitive_name(name: &str) -> bool {
    match SENSITIVE_NAME.as_ref() {
        Some(re) => re.is_match(name),
        // The pattern is a constant; if it ever failed to compile, redact everything.
        None => true,
    }
}

/// A run of digits with the separators phone numbers use. It is a phone number when it holds
/// 9 to 15 digits, or 7 to 15 when it starts with `+` or `(`; dates such as 2024-01-15 hold 8
/// digits and start with neither, so they are kept.
static PHONE_CANDIDATE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\+?\(?\d[\d\s().\-]{6,}\d").ok());

/// The value with every email address, phone number, IP address and token replaced.
pub fn redact_text(value: &str) -> String {
    replace_personal(value, |_| REDACTED.to_string())
}

/// The value with every email address, phone number, IP address and token replaced by a
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
    let (Some(general), Some(ip), Some(phone)) = (
        SENSITIVE_VALUE.as_ref(),
        IP_CANDIDATE.as_ref(),
        PHONE_CANDIDATE.as_ref(),
    ) else {
        return with(value);
    };
    let first = general.replace_all(value, |caps: &regex::Captures| with(&caps[0]));
    let second = ip.replace_all(&first, |caps: &regex::Captures| {
        if caps[0].parse::<std::net::IpAddr>().is_ok() {
            with(&caps[0])
        } else {
            caps[0].to_string()
        }
    });
    phone
        .replace_all(&second, |caps: &regex::Captures| {
            let digits = caps[0].chars().filter(char::is_ascii_digit).count();
            let marked = caps[0].starts_with(['+', '(']);
            if (if marked { 7 } else { 9 }..=15).contains(&digits) {
                with(&caps[0])
            } else {
                caps[0].to_string()
            }
        })
        .into_owned()
}

/// The text to record for attribute `name` with text `value`.
pub fn redact_attribute(name: &str, value: &str) -> String {
    if is_sensitive_name(name) {
        REDACTED.to_string()
    } else {
        redact_text(value)
    }
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
            "SessionId",
        ] {
            assert!(is_sensitive_name(name), "{name} should be sensitive");
        }
        for name in [
            "ProjectName",
            "Status",
            "EstimatedMonthlyCost",
            "Description",
            "Tip",
        ] {
            assert!(!is_sensitive_name(name), "{name} should not be sensitive");
        }
    }

    #[test]
    fn values_that_look_like_personal_data_are_redacted_in_place() {
        assert_eq!(
            redact_text("mail john.doe@sagesoft.com now"),
            "mail [REDACTED] now"
        );
        assert_eq!(redact_text("from 192.168.1.100"), "from [REDACTED]");
        assert_eq!(redact_text("call +1 (555) 010-2000"), "call [REDACTED]");
        assert_eq!(redact_text("call +1-555-0123"), "call [REDACTED]");
        assert_eq!(redact_text("call 555 010 2000"), "call [REDACTED]");
        assert_eq!(redact_text("Bearer abc.def-123"), "[REDACTED]");
        assert_eq!(redact_text("host fe80::1:2:3"), "host [REDACTED]");
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
        ] {
            assert_eq!(redact_text(value), value);
        }
    }
}

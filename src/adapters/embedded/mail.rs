//! Sent mail as RFC 5322 messages (`.eml`), so a person can open what the worker sent.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use chrono::{DateTime, Utc};
use handlers::item::stable_hash;
use handlers::ports::Mail;

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// The message id and the message text. `Mail::new` already refused line breaks in header
/// fields, so the headers below cannot be injected into.
pub(super) fn to_eml(mail: &Mail, date: DateTime<Utc>) -> (String, String) {
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let seed = format!(
        "{}\0{}\0{}\0{}\0{sequence}",
        date.timestamp_nanos_opt().unwrap_or_default(),
        mail.to.join(","),
        mail.subject,
        mail.text
    );
    // The sequence first, so that files sort in the order the mail was sent.
    let message_id = format!("{sequence:08x}{:016x}", stable_hash(seed.as_bytes()));
    let mut eml = String::new();
    let mut header = |name: &str, value: &str| {
        eml.push_str(name);
        eml.push_str(": ");
        eml.push_str(value);
        eml.push_str("\r\n");
    };
    header(
        "Message-ID",
        &format!("<{message_id}@ddb-stream-worker.local>"),
    );
    header("Date", &date.to_rfc2822());
    header("From", &mail.from);
    header("To", &mail.to.join(", "));
    header("Subject", &encode_header(&mail.subject));
    header("MIME-Version", "1.0");
    match &mail.html {
        None => {
            header("Content-Type", "text/plain; charset=utf-8");
            header("Content-Transfer-Encoding", "8bit");
            eml.push_str("\r\n");
            eml.push_str(&mail.text);
        }
        Some(html) => {
            let boundary = format!("=_{message_id}");
            header(
                "Content-Type",
                &format!("multipart/alternative; boundary=\"{boundary}\""),
            );
            eml.push_str("\r\n");
            for (kind, body) in [("text/plain", &mail.text), ("text/html", html)] {
                eml.push_str(&format!("--{boundary}\r\nContent-Type: {kind}; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"));
            }
            eml.push_str(&format!("--{boundary}--\r\n"));
        }
    }
    (message_id, eml)
}

/// RFC 2047 encoded-word for non-ASCII header text.
fn encode_header(text: &str) -> String {
    if text.is_ascii() {
        text.to_string()
    } else {
        format!(
            "=?utf-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }
}

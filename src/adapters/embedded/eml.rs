//! Sent mail as RFC 5322 messages (`.eml`), so a person can open what the worker sent.

use std::sync::atomic::{AtomicU64, Ordering};

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use handlers::item::stable_hash;
use handlers::ports::Mail;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::Message;

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// The message id and the message (RFC 5322, built by lettre). `Mail::new` already refused
/// every address that is not one plain mailbox and every subject with a line break.
pub(super) fn to_eml(mail: &Mail, date: DateTime<Utc>) -> Result<(String, Vec<u8>), String> {
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
    let mailbox = |address: &str| {
        address
            .parse::<Mailbox>()
            .map_err(|e| format!("{address:?}: {e}"))
    };
    let mut message = Message::builder()
        .message_id(Some(format!("<{message_id}@ddb-stream-worker.local>")))
        .date(SystemTime::from(date))
        .from(mailbox(&mail.from)?)
        .subject(mail.subject.clone());
    for to in &mail.to {
        message = message.to(mailbox(to)?);
    }
    let part = |kind: ContentType, text: &str| {
        // 8bit (lines end in CRLF, as RFC 5322 wants), so that the text reads as written and
        // a link stays on its line (lettre's own choice wraps at 76); what 8bit cannot carry
        // (a line over 998 bytes, a NUL, a lone CR) lettre encodes.
        let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
        let eight_bit = !crlf.contains(['\0'])
            && crlf
                .split("\r\n")
                .all(|line| line.len() <= 998 && !line.contains('\r'));
        let body = match eight_bit {
            true => {
                Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::EightBit)
            }
            false => Body::new(crlf),
        };
        SinglePart::builder().header(kind).body(body)
    };
    let message = match &mail.html {
        None => message.singlepart(part(ContentType::TEXT_PLAIN, &mail.text)),
        // A boundary of the message's own (lettre's default is random): a replay writes the
        // same bytes.
        Some(html) => message.multipart(
            MultiPart::alternative()
                .boundary(format!("=_{message_id}"))
                .singlepart(part(ContentType::TEXT_PLAIN, &mail.text))
                .singlepart(part(ContentType::TEXT_HTML, html)),
        ),
    }
    .map_err(|e| e.to_string())?;
    Ok((message_id, message.formatted()))
}

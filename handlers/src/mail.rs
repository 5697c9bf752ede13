//! Sending a templated message: who the sender is, and a rendered template sent without
//! letting an address the mail rules refuse block the stream.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::ReactionError;
use crate::ports::{Mail, Ports};
use crate::settings::{ConfigError, Settings};
use crate::templates;

#[derive(Debug, Clone)]
pub struct MailConfig {
    /// The (SES-verified) sender address.
    pub from: String,
    /// The name mail is signed with.
    pub sender_name: String,
    /// How long a proposal's download link works.
    pub link_expiry: Duration,
}

impl MailConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(MailConfig {
            from: s.text("MAIL_FROM", "notifications@sagesoft.com"),
            sender_name: s.text("MAIL_SENDER_NAME", "AWS Cost Estimation Platform"),
            link_expiry: Duration::from_secs(
                s.count("PROPOSAL_LINK_EXPIRY_SECONDS", 604_800)?
                    .unsigned_abs(),
            ),
        })
    }
}

/// Render `template` and send it to `to`, dated `at` (the record's time). A message the mail
/// rules refuse (an address that is not one plain address, a line break in the subject) is
/// not sent and says why, without failing the record: no retry could change it. Transport
/// errors fail the record.
pub async fn send<C: Serialize>(
    ports: Ports<'_>,
    config: &MailConfig,
    to: &str,
    template: &str,
    context: &C,
    at: DateTime<Utc>,
) -> Result<serde_json::Value, ReactionError> {
    match compose(config, to, template, context, at)? {
        Ok(mail) => deliver(ports, &mail).await,
        Err(refused) => Ok(refused),
    }
}

/// The message, dated `at`, or (Err) why the mail rules refuse it, as a result to report.
pub fn compose<C: Serialize>(
    config: &MailConfig,
    to: &str,
    template: &str,
    context: &C,
    at: DateTime<Utc>,
) -> Result<Result<Mail, serde_json::Value>, ReactionError> {
    let rendered = templates::mail(template, context)?;
    match Mail::new(
        &config.from,
        to,
        &crate::text::cut(&rendered.subject, crate::text::SUBJECT_CHARS),
        rendered.text,
        Some(rendered.html),
    ) {
        Ok(mail) => Ok(Ok(mail.dated(at))),
        Err(ReactionError::Rejected(reason)) => Ok(Err(serde_json::json!({ "not_sent": reason }))),
        Err(other) => Err(other),
    }
}

/// Send a composed message; the result names where it went and the service's message id.
pub async fn deliver(ports: Ports<'_>, mail: &Mail) -> Result<serde_json::Value, ReactionError> {
    let id = ports.mailer.send(mail).await?;
    Ok(serde_json::json!({ "sent_to": mail.to.join(", "), "message_id": id }))
}

/// Why a reaction's `result` says no mail went out (`"not_sent"`, at its top or under
/// `"mail"`), if it says so.
pub fn not_sent(result: &serde_json::Value) -> Option<&str> {
    result
        .get("not_sent")
        .or_else(|| result.get("mail").and_then(|mail| mail.get("not_sent")))
        .and_then(serde_json::Value::as_str)
}

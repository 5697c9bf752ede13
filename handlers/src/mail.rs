//! Sending a templated message: who the sender is, and a rendered template sent without
//! letting an address the mail rules refuse block the stream.

use std::time::Duration;

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

/// Render `template` and send it to `to`. A message the mail rules refuse (an address that is
/// not one plain address, a line break in the subject) is not sent and says why, without
/// failing the record: no retry could change it. Transport errors fail the record.
pub async fn send<C: Serialize>(
    ports: Ports<'_>,
    config: &MailConfig,
    to: &str,
    template: &str,
    context: &C,
) -> Result<serde_json::Value, ReactionError> {
    let rendered = templates::mail(template, context)?;
    let mail = match Mail::new(
        &config.from,
        vec![to.to_string()],
        &rendered.subject,
        rendered.text,
        Some(rendered.html),
    ) {
        Ok(mail) => mail,
        Err(ReactionError::Rejected(reason)) => {
            return Ok(serde_json::json!({ "not_sent": reason }))
        }
        Err(other) => return Err(other),
    };
    let id = ports.mailer.send(&mail).await?;
    Ok(serde_json::json!({ "sent_to": to, "message_id": id }))
}

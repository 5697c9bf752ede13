//! The Mailer port on aws-sdk-ses (SendEmail).

use async_trait::async_trait;
use aws_sdk_ses::types::{Body, Content, Destination, Message};
use aws_sdk_ses::Client;
use handlers::ports::{Mail, Mailer};
use handlers::PortError;

use super::classify;

pub struct SesMailer {
    client: Client,
}

impl SesMailer {
    pub fn new(client: Client) -> Self {
        SesMailer { client }
    }
}

fn utf8(text: &str) -> Result<Content, PortError> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|e| PortError::Permanent {
            operation: "SendEmail",
            target: "message".to_string(),
            message: e.to_string(),
        })
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail) -> Result<String, PortError> {
        let mut body = Body::builder().text(utf8(&mail.text)?);
        if let Some(html) = &mail.html {
            body = body.html(utf8(html)?);
        }
        let message = Message::builder()
            .subject(utf8(&mail.subject)?)
            .body(body.build())
            .build();
        let output = self
            .client
            .send_email()
            .source(&mail.from)
            .destination(
                Destination::builder()
                    .set_to_addresses(Some(mail.to.clone()))
                    .build(),
            )
            .message(message)
            .send()
            .await
            .map_err(|e| classify("SendEmail", &mail.to.join(", "), e))?;
        Ok(output.message_id)
    }
}

//! The Mailer port on aws-sdk-ses (SendEmail).

use async_trait::async_trait;
use aws_sdk_ses::types::{Body, Content, Destination, Message};
use aws_sdk_ses::Client;
use handlers::ports::{Mail, Mailer};
use handlers::PortError;

use std::sync::Arc;

use super::{classify, CallBudget};

pub struct SesMailer {
    client: Client,
    budget: Option<Arc<CallBudget>>,
}

impl SesMailer {
    pub fn new(client: Client) -> Self {
        SesMailer {
            client,
            budget: None,
        }
    }

    /// Calls cut their timeouts to what `budget` says is left.
    pub fn with_budget(self, budget: Arc<CallBudget>) -> Self {
        SesMailer {
            budget: Some(budget),
            ..self
        }
    }

    /// The configuration a call runs with: the client's, its timeouts cut to the budget.
    fn cut(&self) -> aws_sdk_ses::config::Builder {
        let mut builder = aws_sdk_ses::config::Builder::default();
        builder.set_timeout_config(self.budget.as_ref().and_then(|b| b.timeouts()));
        builder
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
            .customize()
            .config_override(self.cut())
            .send()
            .await
            .map_err(|e| classify("SendEmail", &mail.to.join(", "), e))?;
        Ok(output.message_id)
    }
}

//! The Parking port on the stack's failed-records queue (aws-sdk-sqs): one message per parked
//! record, the record itself in the body (an event file `replay` takes); a record larger than a
//! queue message may be goes to `parked/` in a bucket, and the message points at it.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use handlers::ports::{Object, Objects};
use handlers::PortError;
use serde_json::json;

use super::{classify, ParkedRecord, Parking};

/// SQS takes at most 256 KiB a message; a little is kept back for the attributes.
const LARGEST_BODY: usize = 250 * 1024;

pub struct SqsParking {
    client: Client,
    queue_url: String,
    /// Where records too large for a message go, and the bucket they go to.
    objects: Arc<dyn Objects>,
    bucket: String,
}

impl SqsParking {
    pub fn new(
        client: Client,
        queue_url: String,
        objects: Arc<dyn Objects>,
        bucket: String,
    ) -> Self {
        SqsParking {
            client,
            queue_url,
            objects,
            bucket,
        }
    }
}

#[async_trait]
impl Parking for SqsParking {
    async fn park(&self, record: &ParkedRecord<'_>) -> Result<String, PortError> {
        let event = record.to_event();
        let mut body = event.to_string();
        let mut location = self.queue_url.clone();
        if body.len() > LARGEST_BODY {
            let key = format!(
                "parked/{}/{}.json",
                record.table_folder(),
                record.file_stem()
            );
            self.objects
                .put(Object {
                    bucket: self.bucket.clone(),
                    key: key.clone(),
                    content_type: "application/json".into(),
                    body: body.into_bytes(),
                })
                .await?;
            location = format!("s3://{}/{key}", self.bucket);
            body = json!({ "parkedObject": location, "parked": event["parked"] }).to_string();
        }
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| classify("SendMessage", &self.queue_url, e))?;
        Ok(location)
    }
}

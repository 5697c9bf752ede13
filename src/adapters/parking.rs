//! Where a record goes that fails in a way no retry can fix, so that it costs only itself: it
//! is kept whole (as a Lambda stream record, with the reaction, the reason and when), the batch
//! goes on, and it can be replayed once the data or the code is fixed.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use handlers::item::SortedItem;
use handlers::{Change, PortError};
use serde_json::{json, Value};

/// A record parked by one of its reactions.
#[derive(Debug, Clone)]
pub struct ParkedRecord<'a> {
    pub change: &'a Change,
    pub reaction: &'static str,
    pub reason: String,
    pub parked_at: DateTime<Utc>,
}

impl ParkedRecord<'_> {
    /// The record as an event file `replay` takes (`{"Records": [...]}`, Lambda's format), with
    /// why and when it was parked beside it.
    pub fn to_event(&self) -> Value {
        let change = self.change;
        let mut dynamodb = json!({
            "ApproximateCreationDateTime": change.approximate_creation.timestamp(),
            "Keys": SortedItem(&change.keys),
            "SequenceNumber": change.sequence_number,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        });
        if let Some(new) = &change.new {
            dynamodb["NewImage"] = json!(SortedItem(new));
        }
        if let Some(old) = &change.old {
            dynamodb["OldImage"] = json!(SortedItem(old));
        }
        let mut record = json!({
            "eventID": change.event_id,
            "eventName": change.kind.as_str(),
            "eventSource": "aws:dynamodb",
            "eventSourceARN": format!("arn:aws:dynamodb:parked:000000000000:table/{}/stream/parked", change.table),
            "dynamodb": dynamodb,
        });
        if change.expired_by_ttl {
            record["userIdentity"] =
                json!({"type": "Service", "principalId": handlers::change::TTL_PRINCIPAL});
        }
        json!({
            "Records": [record],
            "parked": {
                "reaction": self.reaction,
                "reason": self.reason,
                "table": change.table,
                "parkedAt": self.parked_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            },
        })
    }
}

#[async_trait]
pub trait Parking: Send + Sync {
    /// Keep the record durably; returns where it went.
    async fn park(&self, record: &ParkedRecord<'_>) -> Result<String, PortError>;
}

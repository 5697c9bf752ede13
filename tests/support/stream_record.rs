//! The one builder of stream records in Lambda's JSON shape, for the tests and the benchmarks
//! (which include this file by path).

use serde_json::{json, Value};

/// One record: every field a stream gives, from these.
pub struct StreamRecord<'a> {
    pub table: &'a str,
    pub event_id: String,
    pub event_name: &'a str,
    pub sequence_number: String,
    /// ApproximateCreationDateTime, in epoch seconds.
    pub created: u64,
    pub keys: Value,
    pub new: Option<Value>,
    pub old: Option<Value>,
    /// A REMOVE by TTL: the userIdentity DynamoDB's own service gives it.
    pub by_ttl: bool,
}

impl StreamRecord<'_> {
    pub fn into_json(self) -> Value {
        let mut dynamodb = json!({
            "ApproximateCreationDateTime": self.created,
            "Keys": self.keys,
            "SequenceNumber": self.sequence_number,
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        });
        if let Some(new) = self.new {
            dynamodb["NewImage"] = new;
        }
        if let Some(old) = self.old {
            dynamodb["OldImage"] = old;
        }
        let mut record = json!({
            "eventID": self.event_id,
            "eventName": self.event_name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "eventSourceARN": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{}/stream/2024-01-15T00:00:00.000", self.table),
            "dynamodb": dynamodb,
        });
        if self.by_ttl {
            record["userIdentity"] =
                json!({ "type": "Service", "principalId": "dynamodb.amazonaws.com" });
        }
        record
    }
}

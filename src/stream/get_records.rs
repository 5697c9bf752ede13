//! DynamoDB Streams GetRecords output (aws-sdk-dynamodbstreams) written as Lambda delivers it:
//! what the filter criteria match, what `capture` saves, what an on-failure message's records
//! read back as, and a parked record's text. (Decoding reads the SDK's records themselves:
//! `decode::decode_stream_records`.)

use std::collections::HashMap;

use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, Record};
use handlers::{AttributeValue, Item};
use serde_json::{json, Map, Value};

/// One record in Lambda's JSON shape. `stream_arn` becomes eventSourceARN, as Lambda sets it.
pub fn lambda_record(record: &Record, stream_arn: &str) -> Value {
    let image = |values: Option<&HashMap<String, StreamValue>>| -> Option<Value> {
        let values = values?;
        let map: HashMap<String, AttributeValue> = values
            .iter()
            .map(|(k, v)| (k.clone(), AttributeValue::from(v.clone())))
            .collect();
        serde_json::to_value(Item::from(map)).ok()
    };
    let mut dynamodb = Map::new();
    if let Some(stream) = &record.dynamodb {
        if let Some(at) = stream.approximate_creation_date_time {
            // Lambda sends epoch seconds; keep the milliseconds the stream has.
            let seconds = at.as_secs_f64();
            dynamodb.insert(
                "ApproximateCreationDateTime".into(),
                json!((seconds * 1000.0).round() / 1000.0),
            );
        }
        for (name, values) in [
            ("Keys", stream.keys.as_ref()),
            ("NewImage", stream.new_image.as_ref()),
            ("OldImage", stream.old_image.as_ref()),
        ] {
            if let Some(value) = image(values) {
                dynamodb.insert(name.into(), value);
            }
        }
        if let Some(seq) = &stream.sequence_number {
            dynamodb.insert("SequenceNumber".into(), json!(seq));
        }
        dynamodb.insert("SizeBytes".into(), json!(stream.size_bytes.unwrap_or(0)));
        if let Some(view) = &stream.stream_view_type {
            dynamodb.insert("StreamViewType".into(), json!(view.as_str()));
        }
    }
    let mut out = json!({
        "eventID": record.event_id,
        "eventName": record.event_name.as_ref().map(|n| n.as_str()),
        "eventVersion": record.event_version,
        "eventSource": record.event_source.as_deref().unwrap_or("aws:dynamodb"),
        "awsRegion": record.aws_region.as_deref().unwrap_or(""),
        "eventSourceARN": stream_arn,
        "dynamodb": dynamodb,
    });
    if let Some(identity) = &record.user_identity {
        out["userIdentity"] =
            json!({ "type": identity.r#type, "principalId": identity.principal_id });
    }
    out
}

/// A whole batch: `{"Records": [...]}`.
pub fn lambda_event(records: &[Record], stream_arn: &str) -> Value {
    json!({ "Records": records.iter().map(|r| lambda_record(r, stream_arn)).collect::<Vec<_>>() })
}

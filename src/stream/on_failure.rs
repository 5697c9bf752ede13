//! Lambda's on-failure invocation record for stream sources: a shard and a sequence range
//! (`DDBStreamBatchInfo`), not the records. The local runner writes records it gives up on in
//! this shape, and `redrive` takes it from either: it reads the range back from the stream
//! (`AT_SEQUENCE_NUMBER`) while the stream still retains it (24 hours), and says so when not.

use chrono::{SecondsFormat, Utc};
use handlers::PortError;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};
use thiserror::Error;

use super::error::StreamError;

use super::get_records::lambda_event;
use super::reader::{sequence_number, ReadError, StreamReader};
use crate::decode::StreamRecord;

/// Why Lambda gave up on a batch (`requestContext.condition`).
#[derive(Debug, Clone, Copy)]
pub enum Condition {
    RetryAttemptsExhausted,
    RecordAgeExceeded,
}

/// `DDBStreamBatchInfo`: which records, as a range of one shard of one stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchInfo {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approximate_arrival_of_first_record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approximate_arrival_of_last_record: Option<String>,
    #[serde(default)]
    pub batch_size: usize,
    pub stream_arn: String,
}

/// An invocation record as Lambda sends it to an on-failure destination, for `records` (one
/// shard, in order) given up on after `attempts` invocations. Two fields Lambda does not send
/// are added for people reading the file: `reason` and each record's `eventID` and `keys`.
pub fn invocation_record(
    records: &[StreamRecord],
    stream_arn: &str,
    shard_id: &str,
    condition: Condition,
    attempts: i32,
    reason: &str,
) -> Value {
    let arrival = |record: Option<&StreamRecord>| {
        record.and_then(|r| r.change.as_ref().ok()).map(|c| {
            c.approximate_creation
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        })
    };
    let info = BatchInfo {
        shard_id: shard_id.to_string(),
        start_sequence_number: records
            .first()
            .map(|r| r.sequence_number.clone())
            .unwrap_or_default(),
        end_sequence_number: records
            .last()
            .map(|r| r.sequence_number.clone())
            .unwrap_or_default(),
        approximate_arrival_of_first_record: arrival(records.first()),
        approximate_arrival_of_last_record: arrival(records.last()),
        batch_size: records.len(),
        stream_arn: stream_arn.to_string(),
    };
    // Lambda's requestId is its invocation's; the runner has none, so the range names it.
    let request_id = format!("{shard_id}/{}", info.start_sequence_number);
    json!({
        "requestContext": {
            "requestId": request_id,
            "functionArn": "ddb-stream-worker stream",
            "condition": format!("{condition:?}"),
            "approximateInvokeCount": attempts,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "version": "1.0",
        "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "DDBStreamBatchInfo": info,
        "reason": reason,
        "records": records.iter().map(|r| json!({
            "eventID": r.event_id,
            "keys": handlers::item::describe_keys(&r.keys),
        })).collect::<Vec<_>>(),
    })
}

/// The range an invocation record names, if `message` is one.
pub fn batch_info(message: &Value) -> Option<Result<BatchInfo, serde_json::Error>> {
    let info = message.get("DDBStreamBatchInfo")?;
    Some(serde_json::from_value(info.clone()))
}

/// Why the records of an invocation record could not be read back.
#[derive(Debug, Error)]
pub enum FetchError {
    #[error(
        "records {start}..{end} of shard {shard} are no longer in {stream} (DynamoDB Streams \
         keeps records 24 hours): they cannot be redriven; the table holds their items' current \
         state{detail}"
    )]
    Trimmed {
        stream: String,
        shard: String,
        start: String,
        end: String,
        detail: String,
    },
    #[error(
        "{stream} or its shard {shard} does not exist (the table was deleted, or its stream \
         turned off and on): records {start}..{end} cannot be redriven"
    )]
    Gone {
        stream: String,
        shard: String,
        start: String,
        end: String,
    },
    #[error(transparent)]
    Service(#[from] PortError),
}

impl FetchError {
    /// Whether running again later can help (a service failure), or never (the records are gone).
    pub fn retryable(&self) -> bool {
        matches!(self, FetchError::Service(error) if error.is_retryable())
    }
}

/// The records `info` names, read from the stream, as a Lambda event (`{"Records": [...]}`).
pub async fn fetch(reader: &StreamReader, info: &BatchInfo) -> Result<Value, FetchError> {
    let trimmed = |detail: String| FetchError::Trimmed {
        stream: info.stream_arn.clone(),
        shard: info.shard_id.clone(),
        start: info.start_sequence_number.clone(),
        end: info.end_sequence_number.clone(),
        detail,
    };
    let records = reader
        .read_range(
            &info.stream_arn,
            &info.shard_id,
            &info.start_sequence_number,
            &info.end_sequence_number,
        )
        .await
        .map_err(|e| match e {
            ReadError::Trimmed { detail, .. } => trimmed(detail),
            ReadError::Gone(_) => FetchError::Gone {
                stream: info.stream_arn.clone(),
                shard: info.shard_id.clone(),
                start: info.start_sequence_number.clone(),
                end: info.end_sequence_number.clone(),
            },
            ReadError::Service(e) => FetchError::Service(e),
        })?;
    let first = records.first().map(sequence_number);
    let last = records.last().map(sequence_number);
    if first != Some(info.start_sequence_number.as_str())
        || last != Some(info.end_sequence_number.as_str())
    {
        return Err(trimmed(format!(
            " (read {} record(s), {}..{})",
            records.len(),
            first.unwrap_or("-"),
            last.unwrap_or("-")
        )));
    }
    Ok(lambda_event(&records, &info.stream_arn))
}

/// One JSON line in the on-failure file.
pub(super) fn append_failure(path: &Path, line: &serde_json::Value) -> Result<(), StreamError> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(StreamError::file(path))?;
    writeln!(file, "{line}").map_err(StreamError::file(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambdas_own_message_is_read() {
        let message: Value = serde_json::from_str(
            r#"{"requestContext": {"condition": "RetryAttemptsExhausted"}, "version": "1.0",
                "DDBStreamBatchInfo": {"shardId": "shardId-1", "startSequenceNumber": "800",
                "endSequenceNumber": "900", "batchSize": 2,
                "approximateArrivalOfFirstRecord": "2019-11-14T00:13:19Z",
                "streamArn": "arn:aws:dynamodb:us-east-2:123456789012:table/t/stream/x"}}"#,
        )
        .unwrap();
        let info = batch_info(&message).unwrap().unwrap();
        assert_eq!(info.shard_id, "shardId-1");
        assert_eq!(
            (
                info.start_sequence_number.as_str(),
                info.end_sequence_number.as_str()
            ),
            ("800", "900")
        );
        assert_eq!(info.batch_size, 2);
        assert!(batch_info(&json!({"Records": []})).is_none());
    }
}

//! Stream events in, typed changes out.
//!
//! Accepts what Lambda delivers for a DynamoDB stream (`{"Records": [...]}` with
//! eventSourceARN) and what DynamoDB Streams GetRecords returns (the same records without
//! eventSourceARN, plus `NextShardIterator`; the table then comes from `--table`). Errors that
//! make the whole input unusable are [`DecodeError`]s; a record that decodes but cannot be
//! reacted to (a KEYS_ONLY stream, an unknown eventName) becomes a [`RecordDefect`], so the
//! batch fails at that record and nothing before it is lost.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use chrono::{DateTime, Utc};
use handlers::{Change, ChangeKind, Item};
use serde_json::Value;
use thiserror::Error;

/// The whole input cannot be used; nothing was processed.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("{source_name}:{line}:{column}: malformed JSON: {message}")]
    Json {
        source_name: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{source_name}: not a DynamoDB stream event at `{path}`: {message}")]
    Shape {
        source_name: String,
        path: String,
        message: String,
    },
    #[error("{source_name}: record {index} (event {event_id}) has no eventSourceARN to take the table name from; pass --table NAME (GetRecords output does not carry it)")]
    NoTable {
        source_name: String,
        index: usize,
        event_id: String,
    },
    #[error("{source_name}: record {index} (event {event_id}) has no dynamodb.SequenceNumber; without it a failure could not be reported to Lambda")]
    NoSequenceNumber {
        source_name: String,
        index: usize,
        event_id: String,
    },
}

/// Why a decoded record cannot be reacted to. Not retryable: the record itself is wrong.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum RecordDefect {
    #[error("{event_name} record has no {missing}; the stream must use NEW_AND_OLD_IMAGES (this one is {view_type})")]
    MissingImage {
        event_name: String,
        missing: &'static str,
        view_type: String,
    },
    #[error("unknown eventName {0:?}: expected INSERT, MODIFY or REMOVE")]
    UnknownEventName(String),
}

/// One record of a batch: always identifiable, not always usable.
#[derive(Debug, Clone)]
pub struct StreamRecord {
    pub event_id: String,
    pub event_name: String,
    pub table: String,
    pub keys: Item,
    pub sequence_number: String,
    pub change: Result<Change, RecordDefect>,
}

/// Decode one event file's text. `source_name` names it in errors; `table` overrides (and,
/// for GetRecords output, supplies) the table name.
pub fn decode_event(
    text: &str,
    source_name: &str,
    table: Option<&str>,
) -> Result<Vec<StreamRecord>, DecodeError> {
    let value: Value = serde_json::from_str(text).map_err(|e| DecodeError::Json {
        source_name: source_name.to_string(),
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })?;
    decode_value(value, source_name, table)
}

/// Turn an already-parsed Lambda event into records (Lambda mode: the runtime parsed it).
pub fn decode_value(
    mut value: Value,
    source_name: &str,
    table: Option<&str>,
) -> Result<Vec<StreamRecord>, DecodeError> {
    let times = normalize(&mut value);
    let event: Event = serde_path_to_error::deserialize(value).map_err(|e| DecodeError::Shape {
        source_name: source_name.to_string(),
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })?;
    event
        .records
        .into_iter()
        .enumerate()
        .map(|(index, mut record)| {
            if let Some(Some(at)) = times.get(index) {
                record.change.approximate_creation_date_time = *at;
            }
            to_stream_record(record, index, source_name, table)
        })
        .collect()
}

/// Accept the spellings other tools print: the AWS CLI v2 prints ApproximateCreationDateTime
/// as an ISO-8601 string, and hand-written files often leave SizeBytes and awsRegion out
/// (the worker uses neither). Returns each record's creation time to the millisecond, which
/// aws_lambda_events loses for fractional seconds.
fn normalize(value: &mut Value) -> Vec<Option<DateTime<Utc>>> {
    let Some(records) = value.get_mut("Records").and_then(Value::as_array_mut) else {
        return Vec::new();
    };
    let mut times = Vec::with_capacity(records.len());
    for record in records {
        if let Some(fields) = record.as_object_mut() {
            fields.entry("awsRegion").or_insert(Value::from(""));
        }
        let Some(stream) = record.get_mut("dynamodb").and_then(Value::as_object_mut) else {
            times.push(None);
            continue;
        };
        let at = match stream.get("ApproximateCreationDateTime") {
            Some(Value::String(text)) => DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|at| at.with_timezone(&Utc)),
            Some(Value::Number(n)) => n
                .as_f64()
                .and_then(|s| DateTime::from_timestamp_millis((s * 1000.0).round() as i64)),
            _ => None,
        };
        if let Some(at) = at {
            stream.insert("ApproximateCreationDateTime".into(), at.timestamp().into());
        }
        stream.entry("SizeBytes").or_insert(Value::from(0));
        times.push(at);
    }
    times
}

fn to_stream_record(
    record: EventRecord,
    index: usize,
    source_name: &str,
    table_override: Option<&str>,
) -> Result<StreamRecord, DecodeError> {
    let event_id = record.event_id.clone();
    let table = match (table_override, record.event_source_arn.as_deref()) {
        (Some(table), _) => table.to_string(),
        (None, Some(arn)) => table_from_arn(arn).ok_or_else(|| DecodeError::Shape {
            source_name: source_name.to_string(),
            path: format!("Records[{index}].eventSourceARN"),
            message: format!("{arn:?} is not a DynamoDB table or stream ARN"),
        })?,
        (None, None) => {
            return Err(DecodeError::NoTable {
                source_name: source_name.to_string(),
                index,
                event_id,
            })
        }
    };
    let sequence_number = match record.change.sequence_number.as_deref() {
        Some(seq) if !seq.is_empty() => seq.to_string(),
        _ => {
            return Err(DecodeError::NoSequenceNumber {
                source_name: source_name.to_string(),
                index,
                event_id,
            })
        }
    };
    let keys = record.change.keys.clone();
    let change = to_change(&record, &table, &sequence_number);
    Ok(StreamRecord {
        event_id,
        event_name: record.event_name,
        table,
        keys,
        sequence_number,
        change,
    })
}

fn to_change(
    record: &EventRecord,
    table: &str,
    sequence_number: &str,
) -> Result<Change, RecordDefect> {
    let kind = match record.event_name.as_str() {
        "INSERT" => ChangeKind::Insert,
        "MODIFY" => ChangeKind::Modify,
        "REMOVE" => ChangeKind::Remove,
        other => return Err(RecordDefect::UnknownEventName(other.to_string())),
    };
    let stream = &record.change;
    let image = |item: &Item| (!item.is_empty()).then(|| item.clone());
    let (new, old) = (image(&stream.new_image), image(&stream.old_image));
    let missing = match kind {
        ChangeKind::Insert if new.is_none() => Some("NewImage"),
        ChangeKind::Modify if new.is_none() => Some("NewImage"),
        ChangeKind::Modify | ChangeKind::Remove if old.is_none() => Some("OldImage"),
        _ => None,
    };
    if let Some(missing) = missing {
        return Err(RecordDefect::MissingImage {
            event_name: record.event_name.clone(),
            missing,
            view_type: stream
                .stream_view_type
                .as_ref()
                .and_then(|v| serde_json::to_value(v).ok())
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "not stated".to_string()),
        });
    }
    let expired_by_ttl = kind == ChangeKind::Remove
        && record.user_identity.as_ref().is_some_and(|who| {
            who.type_ == "Service" && who.principal_id == handlers::audit::TTL_PRINCIPAL
        });
    Ok(Change {
        table: table.to_string(),
        kind,
        keys: stream.keys.clone(),
        old,
        new,
        expired_by_ttl,
        sequence_number: sequence_number.to_string(),
        event_id: record.event_id.clone(),
        approximate_creation: stream.approximate_creation_date_time,
    })
}

/// `arn:aws:dynamodb:REGION:ACCOUNT:table/NAME[/stream/LABEL]` -> `NAME`.
pub fn table_from_arn(arn: &str) -> Option<String> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let name = resource.strip_prefix("table/")?.split('/').next()?;
    (!name.is_empty()).then(|| name.to_string())
}

/// serde_json appends " at line L column C"; the error shows the position up front instead.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(cut) => message[..cut].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_name_comes_from_stream_or_table_arn() {
        assert_eq!(
            table_from_arn("arn:aws:dynamodb:us-east-1:123456789012:table/aws-cost-platform-enhanced/stream/2024-01-15T10:00:00.000").as_deref(),
            Some("aws-cost-platform-enhanced")
        );
        assert_eq!(
            table_from_arn("arn:aws:dynamodb:us-east-1:1:table/PilotForce-Assets").as_deref(),
            Some("PilotForce-Assets")
        );
        assert_eq!(table_from_arn("arn:aws:s3:::bucket"), None);
    }
}

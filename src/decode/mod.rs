//! Stream events in, typed changes out.
//!
//! Accepts what Lambda delivers for a DynamoDB stream (`{"Records": [...]}` with
//! eventSourceARN) and what DynamoDB Streams GetRecords returns (the same records without
//! eventSourceARN, plus `NextShardIterator`; the table then comes from `--table`). Errors that
//! make the whole input unusable are [`DecodeError`]s; a record that decodes but cannot be
//! reacted to (a KEYS_ONLY stream, an unknown eventName) becomes a [`RecordDefect`], so the
//! batch fails at that record and nothing before it is lost.

mod numbers;

use aws_lambda_events::event::dynamodb::EventRecord;
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
    #[error("{event_name} record has no {missing} (StreamViewType {view_type}): the stream must use NEW_AND_OLD_IMAGES and the record must keep both images")]
    MissingImage {
        event_name: String,
        missing: &'static str,
        view_type: String,
    },
    #[error("unknown eventName {0:?}: expected INSERT, MODIFY or REMOVE")]
    UnknownEventName(String),
    #[error("Keys.{name} does not match the {image}'s {name}: the record's key and image disagree (a stream never sends that; was the file edited?)")]
    KeysMismatch { image: &'static str, name: String },
    #[error("{image}.{path} = {value:?} is not a DynamoDB number: {reason}")]
    InvalidNumber {
        image: &'static str,
        path: String,
        value: String,
        reason: &'static str,
    },
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
    let mut records = Vec::new();
    for_each_record(text.as_bytes(), source_name, table, &mut |r| {
        records.push(r)
    })?;
    Ok(records)
}

/// Decode an event file record by record, handing each to `each`: memory holds one record's
/// JSON at a time, not the whole file's. Returns how many records there were.
pub fn for_each_record<R: std::io::Read>(
    reader: R,
    source_name: &str,
    table: Option<&str>,
    each: &mut dyn FnMut(StreamRecord),
) -> Result<usize, DecodeError> {
    for_each_value(reader, source_name, &mut |value, index| {
        each(record_from_value(value, index, source_name, table)?);
        Ok(())
    })
}

/// What [`for_each_record`] checks, without keeping the records: whether every record decodes,
/// and how many there are (a replay's first pass). The records are checked on a second thread
/// while this one parses the JSON; the error reported is still the earliest in the file.
pub fn check_records<R: std::io::Read>(
    reader: R,
    source_name: &str,
    table: Option<&str>,
) -> Result<usize, DecodeError> {
    const CHUNK: usize = 256;
    std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<(usize, Value)>>(4);
        let checker = scope.spawn(move || {
            for (index, value) in receiver.into_iter().flatten() {
                record_from_value(value, index, source_name, table)?;
            }
            Ok(())
        });
        let mut chunk = Vec::with_capacity(CHUNK);
        let hand_over = |chunk: &mut Vec<(usize, Value)>| {
            let full = std::mem::replace(chunk, Vec::with_capacity(CHUNK));
            // It fails only when the checker stopped at an unusable record: its error is
            // the one to report.
            sender.send(full).map_err(|_| stopped(source_name))
        };
        let mut parsed = for_each_value(reader, source_name, &mut |value, index| {
            chunk.push((index, value));
            if chunk.len() == CHUNK {
                hand_over(&mut chunk)?;
            }
            Ok(())
        });
        if parsed.is_ok() && !chunk.is_empty() {
            if let Err(e) = hand_over(&mut chunk) {
                parsed = Err(e);
            }
        }
        drop(sender); // the checker's loop ends with the last chunk
        let checked = checker.join().unwrap_or_else(|_| Err(stopped(source_name)));
        // A record the checker refused comes before anything the parser met after it.
        checked.and(parsed)
    })
}

fn stopped(source_name: &str) -> DecodeError {
    DecodeError::Shape {
        source_name: source_name.to_string(),
        path: "Records".to_string(),
        message: "checking the records stopped unexpectedly".to_string(),
    }
}

/// Parse an event file, handing each record's JSON and index to `each`; an error from it stops
/// the parse and is the one returned. Returns how many records there were.
fn for_each_value<R: std::io::Read>(
    reader: R,
    source_name: &str,
    each: &mut dyn FnMut(Value, usize) -> Result<(), DecodeError>,
) -> Result<usize, DecodeError> {
    let mut failure = None;
    let mut count = 0;
    let mut deserializer = serde_json::Deserializer::from_reader(std::io::BufReader::new(reader));
    let seed = EventSeed {
        each,
        failure: &mut failure,
        count: &mut count,
    };
    let parsed = serde::de::DeserializeSeed::deserialize(seed, &mut deserializer)
        .and_then(|()| deserializer.end());
    match (parsed, failure) {
        (_, Some(failure)) => Err(failure),
        (Err(e), None) => Err(DecodeError::Json {
            source_name: source_name.to_string(),
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
        }),
        (Ok(()), None) => Ok(count),
    }
}

/// Turn an already-parsed Lambda event into records (Lambda mode: the runtime parsed it).
pub fn decode_value(
    value: Value,
    source_name: &str,
    table: Option<&str>,
) -> Result<Vec<StreamRecord>, DecodeError> {
    let shape = |path: &str, message: &str| DecodeError::Shape {
        source_name: source_name.to_string(),
        path: path.to_string(),
        message: message.to_string(),
    };
    let Value::Object(mut event) = value else {
        return Err(shape(".", "expected an object with Records"));
    };
    let Some(Value::Array(records)) = event.remove("Records") else {
        return Err(shape(".", "missing field `Records`"));
    };
    records
        .into_iter()
        .enumerate()
        .map(|(index, record)| record_from_value(record, index, source_name, table))
        .collect()
}

/// The top-level object: `Records` is read element by element; other keys (GetRecords'
/// `NextShardIterator`) are skipped.
struct EventSeed<'a> {
    each: &'a mut dyn FnMut(Value, usize) -> Result<(), DecodeError>,
    failure: &'a mut Option<DecodeError>,
    count: &'a mut usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for EventSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for EventSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a DynamoDB stream event: an object with Records")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "Records" {
                map.next_value_seed(RecordsSeed {
                    each: &mut *self.each,
                    failure: &mut *self.failure,
                    count: &mut *self.count,
                })?;
                seen = true;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        if seen {
            Ok(())
        } else {
            Err(serde::de::Error::missing_field("Records"))
        }
    }
}

struct RecordsSeed<'a> {
    each: &'a mut dyn FnMut(Value, usize) -> Result<(), DecodeError>,
    failure: &'a mut Option<DecodeError>,
    count: &'a mut usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RecordsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of stream records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(value) = seq.next_element::<Value>()? {
            if let Err(e) = (self.each)(value, *self.count) {
                *self.failure = Some(e);
                return Err(serde::de::Error::custom("stopped at an unusable record"));
            }
            *self.count += 1;
        }
        Ok(())
    }
}

/// One record: normalized, checked against Lambda's record type, turned into a change.
fn record_from_value(
    mut value: Value,
    index: usize,
    source_name: &str,
    table: Option<&str>,
) -> Result<StreamRecord, DecodeError> {
    let at = normalize(&mut value);
    let mut record: EventRecord =
        serde_path_to_error::deserialize(value).map_err(|e| DecodeError::Shape {
            source_name: source_name.to_string(),
            path: format!("Records[{index}].{}", e.path())
                .trim_end_matches('.')
                .to_string(),
            message: e.inner().to_string(),
        })?;
    if let Some(at) = at {
        record.change.approximate_creation_date_time = at;
    }
    to_stream_record(record, index, source_name, table)
}

/// Accept the spellings other tools print: the AWS CLI v2 prints ApproximateCreationDateTime
/// as an ISO-8601 string, and hand-written files often leave SizeBytes and awsRegion out
/// (the worker uses neither). Returns the record's creation time to the millisecond, which
/// aws_lambda_events loses for fractional seconds.
fn normalize(record: &mut Value) -> Option<DateTime<Utc>> {
    if let Some(fields) = record.as_object_mut() {
        fields.entry("awsRegion").or_insert(Value::from(""));
    }
    let stream = record.get_mut("dynamodb").and_then(Value::as_object_mut)?;
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
    at
}

fn to_stream_record(
    mut record: EventRecord,
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
    let change = to_change(&mut record, &table, &sequence_number);
    Ok(StreamRecord {
        event_id,
        event_name: record.event_name,
        table,
        keys,
        sequence_number,
        change,
    })
}

/// The change, taking the images out of `record` (they are large; copying them is waste).
fn to_change(
    record: &mut EventRecord,
    table: &str,
    sequence_number: &str,
) -> Result<Change, RecordDefect> {
    let kind = match record.event_name.as_str() {
        "INSERT" => ChangeKind::Insert,
        "MODIFY" => ChangeKind::Modify,
        "REMOVE" => ChangeKind::Remove,
        other => return Err(RecordDefect::UnknownEventName(other.to_string())),
    };
    let stream = &mut record.change;
    let image = |item: &mut Item| (!item.is_empty()).then(|| std::mem::take(item));
    let (new, old) = (image(&mut stream.new_image), image(&mut stream.old_image));
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
    for (image, item) in [("NewImage", new.as_ref()), ("OldImage", old.as_ref())] {
        let Some(item) = item else { continue };
        if let Some(name) = stream
            .keys
            .iter()
            .find(|(name, value)| item.get(name.as_str()) != Some(value))
            .map(|(name, _)| name.clone())
        {
            return Err(RecordDefect::KeysMismatch { image, name });
        }
    }
    for (image, item) in [
        ("Keys", Some(&stream.keys)),
        ("NewImage", new.as_ref()),
        ("OldImage", old.as_ref()),
    ] {
        if let Some((path, value, reason)) = item.and_then(numbers::first_invalid) {
            return Err(RecordDefect::InvalidNumber {
                image,
                path,
                value,
                reason,
            });
        }
    }
    let expired_by_ttl = kind == ChangeKind::Remove
        && record.user_identity.as_ref().is_some_and(|who| {
            who.type_ == "Service" && who.principal_id == handlers::change::TTL_PRINCIPAL
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

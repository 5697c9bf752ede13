//! One stream record: what identifies it (read leniently, so that even a broken record can be
//! named and parked), then every rule a stream guarantees, then the typed change.
//!
//! A record that breaks a rule is not an error of the whole input: it becomes a
//! [`RecordDefect`], which the batch parks (kept whole, with the field and the rule) while the
//! records around it go on. Only what makes a whole input unusable is a `DecodeError`.

use std::sync::Arc;

use aws_sdk_dynamodbstreams::types::Record;
use chrono::{DateTime, Utc};
use handlers::sequence_number::SequenceNumber;
use handlers::{Change, ChangeKind, Item};
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use handlers::value_rules::{self as values, check_event_id, check_table_name, short};

use super::wire::{CreationTime, WireRecord};

/// Why a record cannot be reacted to. Not retryable: the record itself is wrong, so the batch
/// parks it and goes on.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum RecordDefect {
    #[error("not a DynamoDB stream record at `{path}`: {message}")]
    Shape { path: String, message: String },
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
    #[error("{image}.{path}: {reason} (DynamoDB refuses such a value, so no stream carries it)")]
    InvalidValue {
        image: &'static str,
        path: String,
        reason: String,
    },
    #[error("{field} is {value}: expected {rule}")]
    Identity {
        field: &'static str,
        value: String,
        rule: &'static str,
    },
    #[error("no table: the record has no eventSourceARN or tableName (GetRecords output does not carry one; pass --table NAME)")]
    NoTable,
    #[error("eventSourceARN names table {arn_table:?} but tableName says {table_name:?}")]
    TableMismatch {
        arn_table: String,
        table_name: String,
    },
    #[error("dynamodb.ApproximateCreationDateTime is {0}: every time the worker writes (audit timestamps and TTLs, mail dates, calculations) comes from it, and a stream always sends it; add it (epoch seconds, or an ISO-8601 time) to replay this record")]
    CreationTime(&'static str),
    #[error("eventID {event_id:?} already names record {first_index} of this input (sequence number {first_sequence_number:?}): a stream never gives two records one eventID, and the idempotency table would take the second for the first; give it its own eventID")]
    DuplicateEventId {
        event_id: String,
        first_index: usize,
        first_sequence_number: String,
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
    /// The record as it was delivered (its JSON text), so that a parked record is kept whole:
    /// every field, as it came.
    pub raw: Arc<str>,
    pub change: Result<Change, RecordDefect>,
}

impl StreamRecord {
    /// Whether the record's sequence number is one a stream gives (and so one Lambda can
    /// retry from).
    pub fn has_valid_sequence_number(&self) -> bool {
        SequenceNumber::check(&self.sequence_number).is_ok()
    }
}

/// `arn:PARTITION:dynamodb:REGION:ACCOUNT:table/NAME[/stream/LABEL]` -> `NAME`, if NAME is a
/// table name.
pub fn table_from_arn(arn: &str) -> Option<String> {
    let mut parts = arn.splitn(6, ':');
    let (scheme, _partition, service) = (parts.next()?, parts.next()?, parts.next()?);
    if scheme != "arn" || service != "dynamodb" {
        return None;
    }
    let resource = parts.nth(2)?;
    let name = resource.strip_prefix("table/")?.split('/').next()?;
    check_table_name(name).ok().map(|()| name.to_string())
}

/// One record's JSON, already parsed (Lambda mode): see [`record_from_wire`].
pub(super) fn record_from_value(value: Value, table: Option<&str>) -> StreamRecord {
    let raw: Arc<str> = value.to_string().into();
    match WireRecord::deserialize(&value) {
        Ok(wire) => record_from_wire(wire, raw, table),
        Err(_) => record_from_lenient(value, raw, table),
    }
}

/// One record's JSON text, as it came in a file, parsed once into the fields the worker uses:
/// see [`record_from_wire`].
pub(super) fn record_from_raw(
    raw: &serde_json::value::RawValue,
    table: Option<&str>,
) -> StreamRecord {
    let raw: Arc<str> = raw.get().into();
    match serde_json::from_str::<WireRecord>(&raw) {
        Ok(wire) => record_from_wire(wire, raw, table),
        Err(_) => {
            let value = serde_json::from_str(&raw).unwrap_or(Value::Null);
            record_from_lenient(value, raw, table)
        }
    }
}

/// One record as DynamoDB Streams' GetRecords returns it (the stream runner), converted
/// without JSON; `raw` is its text in Lambda's shape, kept for parking.
pub(super) fn record_from_sdk(record: &Record, stream_arn: &str, raw: Arc<str>) -> StreamRecord {
    record_from_wire(WireRecord::from_sdk(record, stream_arn), raw, None)
}

/// One record whose fields have the types a stream gives them: identified, checked, turned
/// into a change. `table` overrides (and, for GetRecords output, supplies) the table name;
/// the caller checked it is one.
fn record_from_wire(wire: WireRecord, raw: Arc<str>, table: Option<&str>) -> StreamRecord {
    let mut record = StreamRecord {
        event_id: wire.event_id.clone(),
        event_name: wire.event_name.clone(),
        table: String::new(),
        keys: wire.stream.keys.clone(),
        sequence_number: wire.stream.sequence_number.clone().unwrap_or_default(),
        raw,
        change: Err(RecordDefect::NoTable),
    };
    let named = wire.table_name.as_deref();
    match table_of(wire.event_source_arn.as_deref(), named, table) {
        Ok(name) => record.table = name,
        Err(defect) => {
            record.table = named.unwrap_or_default().to_string();
            record.change = Err(defect);
            return record;
        }
    }
    record.change = match identity_defect(&record) {
        Some(defect) => Err(defect),
        None => creation_time(wire.stream.created.as_ref())
            .and_then(|at| to_change(wire, &record.table, at)),
    };
    record
}

/// A record that does not have the types a stream gives (a hand-edited or broken one), read
/// leniently from its JSON so that it can still be named and parked: the same checks as
/// [`record_from_wire`], in the same order, then the first field of the wrong type, by path.
fn record_from_lenient(mut value: Value, raw: Arc<str>, table: Option<&str>) -> StreamRecord {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let dynamodb = value.get("dynamodb");
    let mut record = StreamRecord {
        event_id: text(value.get("eventID")),
        event_name: text(value.get("eventName")),
        table: String::new(),
        keys: dynamodb
            .and_then(|d| d.get("Keys"))
            .and_then(|keys| serde_json::from_value(keys.clone()).ok())
            .unwrap_or_default(),
        sequence_number: text(dynamodb.and_then(|d| d.get("SequenceNumber"))),
        raw,
        change: Err(RecordDefect::NoTable),
    };
    let arn = value.get("eventSourceARN").and_then(Value::as_str);
    let named = value.get("tableName").and_then(Value::as_str);
    match table_of(arn, named, table) {
        Ok(name) => record.table = name,
        Err(defect) => {
            // Named as the record names itself, for a person to find it.
            record.table = text(value.get("tableName"));
            record.change = Err(defect);
            return record;
        }
    }
    record.change = match identity_defect(&record) {
        Some(defect) => Err(defect),
        None => lenient_change(&mut value, &record.table),
    };
    record
}

fn lenient_change(value: &mut Value, table: &str) -> Result<Change, RecordDefect> {
    let Some(stream) = value.get_mut("dynamodb").and_then(Value::as_object_mut) else {
        return Err(RecordDefect::Shape {
            path: "dynamodb".into(),
            message: "missing or not an object".into(),
        });
    };
    let created = match stream.remove("ApproximateCreationDateTime") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(CreationTime::Text(text)),
        Some(Value::Number(n)) => Some(
            n.as_f64()
                .map_or(CreationTime::Other, CreationTime::Seconds),
        ),
        Some(_) => Some(CreationTime::Other),
    };
    let at = creation_time(created.as_ref())?;
    let wire: WireRecord =
        serde_path_to_error::deserialize(&*value).map_err(|e| RecordDefect::Shape {
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
    to_change(wire, table, at)
}

/// The table the record belongs to: the override, else its eventSourceARN's, else its
/// `tableName` (Kinesis Data Streams for DynamoDB and some tools write that); both present must
/// agree.
fn table_of(
    arn: Option<&str>,
    named: Option<&str>,
    table: Option<&str>,
) -> Result<String, RecordDefect> {
    if let Some(table) = table {
        return Ok(table.to_string());
    }
    let from_arn = match arn {
        Some(arn) => Some(table_from_arn(arn).ok_or_else(|| RecordDefect::Identity {
            field: "eventSourceARN",
            value: format!("{:?}", short(arn)),
            rule: "a DynamoDB table or stream ARN (arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL)",
        })?),
        None => None,
    };
    if let Some(named) = named {
        check_table_name(named).map_err(|rule| RecordDefect::Identity {
            field: "tableName",
            value: format!("{:?}", short(named)),
            rule,
        })?;
    }
    match (from_arn, named) {
        (Some(arn_table), Some(named)) if arn_table != named => Err(RecordDefect::TableMismatch {
            arn_table,
            table_name: named.to_string(),
        }),
        (Some(table), _) => Ok(table),
        (None, Some(named)) => Ok(named.to_string()),
        (None, None) => Err(RecordDefect::NoTable),
    }
}

/// What a stream guarantees of a record's identity: its sequence number and eventID.
fn identity_defect(record: &StreamRecord) -> Option<RecordDefect> {
    let seq = &record.sequence_number;
    if let Err(rule) = SequenceNumber::check(seq) {
        return Some(RecordDefect::Identity {
            field: "dynamodb.SequenceNumber",
            value: described(seq),
            rule,
        });
    }
    if let Err(rule) = check_event_id(&record.event_id) {
        return Some(RecordDefect::Identity {
            field: "eventID",
            value: described(&record.event_id),
            rule,
        });
    }
    None
}

fn described(value: &str) -> String {
    match value {
        "" => "missing".to_string(),
        value => format!("{:?}", short(value)),
    }
}

/// The record's creation time, to the millisecond: epoch seconds as a stream sends them, or
/// the ISO-8601 text the AWS CLI v2 prints.
fn creation_time(created: Option<&CreationTime>) -> Result<DateTime<Utc>, RecordDefect> {
    let at = match created {
        None => return Err(RecordDefect::CreationTime("missing")),
        Some(CreationTime::Text(text)) => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|at| at.with_timezone(&Utc)),
        Some(CreationTime::Seconds(s)) => Some(*s)
            .filter(|s| s.is_finite() && *s > 0.0 && *s < 253_402_300_800.0) // before year 10000
            .and_then(|s| DateTime::from_timestamp_millis((s * 1000.0).round() as i64)),
        Some(CreationTime::Other) => None,
    };
    at.filter(|at| at.timestamp() > 0 && at.timestamp() < 253_402_300_800)
        .ok_or(RecordDefect::CreationTime(
            "not a time from 1970 to 9999 (epoch seconds or ISO-8601)",
        ))
}

/// The change, taking the images out of `record` (they are large; copying them is waste).
fn to_change(
    mut record: WireRecord,
    table: &str,
    at: DateTime<Utc>,
) -> Result<Change, RecordDefect> {
    let kind = match record.event_name.as_str() {
        "INSERT" => ChangeKind::Insert,
        "MODIFY" => ChangeKind::Modify,
        "REMOVE" => ChangeKind::Remove,
        other => return Err(RecordDefect::UnknownEventName(short(other))),
    };
    let stream = &mut record.stream;
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
                .map_or_else(|| "not stated".to_string(), ToString::to_string),
        });
    }
    // One walk per image: DynamoDB's value rules, numbers among them.
    let defect = |image, broken: values::Broken| match broken.number {
        Some((value, reason)) => RecordDefect::InvalidNumber {
            image,
            path: broken.path,
            value,
            reason,
        },
        None => RecordDefect::InvalidValue {
            image,
            path: broken.path,
            reason: broken.reason,
        },
    };
    if let Some(broken) = values::broken_key(&stream.keys) {
        return Err(defect("Keys", broken));
    }
    for (image, item) in [("NewImage", new.as_ref()), ("OldImage", old.as_ref())] {
        let Some(item) = item else { continue };
        if let Some(broken) = values::first_broken(item) {
            return Err(defect(image, broken));
        }
        let mut names: Vec<&String> = stream.keys.keys().collect();
        names.sort();
        if let Some(name) = names
            .into_iter()
            .find(|name| item.get(name.as_str()) != stream.keys.get(name.as_str()))
        {
            return Err(RecordDefect::KeysMismatch {
                image,
                name: short(name),
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
        keys: std::mem::take(&mut stream.keys),
        old,
        new,
        expired_by_ttl,
        sequence_number: stream.sequence_number.take().unwrap_or_default(),
        event_id: record.event_id,
        approximate_creation: at,
    })
}

/// Checks that need the records before: a stream never gives two records one eventID, and
/// the idempotency table and the replay's bookkeeping key on it. The same record delivered
/// twice (same eventID and sequence number) is a re-delivery, which is fine.
#[derive(Default)]
pub(super) struct SeenEventIds {
    first: std::collections::HashMap<String, (usize, String)>,
}

impl SeenEventIds {
    pub(super) fn check(&mut self, index: usize, record: &mut StreamRecord) {
        let Ok(change) = &record.change else { return };
        match self.first.get(&change.event_id) {
            Some((first_index, first_seq)) if *first_seq != change.sequence_number => {
                record.change = Err(RecordDefect::DuplicateEventId {
                    event_id: change.event_id.clone(),
                    first_index: *first_index,
                    first_sequence_number: first_seq.clone(),
                });
            }
            Some(_) => {}
            None => {
                self.first.insert(
                    change.event_id.clone(),
                    (index, change.sequence_number.clone()),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record's fields as both readings give them.
    fn reading(record: &StreamRecord) -> impl PartialEq + std::fmt::Debug + '_ {
        (
            &record.event_id,
            &record.event_name,
            &record.table,
            &record.keys,
            &record.sequence_number,
            &record.change,
        )
    }

    /// The typed reading (one parse) and the lenient one (for records of the wrong types)
    /// agree on every shipped record and on broken variants of them: the typed reading is
    /// only ever a faster way to the same record.
    #[test]
    fn the_typed_and_the_lenient_reading_agree() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
        let mut records: Vec<Value> = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let event: Value = serde_json::from_str(&text).unwrap();
            records.extend(event["Records"].as_array().cloned().unwrap_or_default());
        }
        assert!(records.len() > 50);
        type Break = (&'static str, fn(&mut Value));
        let breaks: [Break; 12] = [
            ("as it is", |_| {}),
            ("eventID a number", |r| r["eventID"] = 7.into()),
            ("no dynamodb", |r| {
                drop(r.as_object_mut().map(|o| o.remove("dynamodb")))
            }),
            ("time as text", |r| {
                r["dynamodb"]["ApproximateCreationDateTime"] = "2024-01-15T10:00:00.123Z".into()
            }),
            ("time null", |r| {
                r["dynamodb"]["ApproximateCreationDateTime"] = Value::Null
            }),
            ("time a bool", |r| {
                r["dynamodb"]["ApproximateCreationDateTime"] = true.into()
            }),
            ("time with millis", |r| {
                r["dynamodb"]["ApproximateCreationDateTime"] = 1705312800.5.into()
            }),
            ("no region, no size", |r| {
                r.as_object_mut().map(|o| o.remove("awsRegion"));
                r["dynamodb"].as_object_mut().map(|o| o.remove("SizeBytes"));
            }),
            ("view type unknown", |r| {
                r["dynamodb"]["StreamViewType"] = "ALL".into()
            }),
            ("images null", |r| r["dynamodb"]["OldImage"] = Value::Null),
            ("a key of another type", |r| {
                r["dynamodb"]["Keys"] = serde_json::json!({"pk": {"Q": "x"}})
            }),
            ("tableName beside the ARN", |r| {
                r["tableName"] = "another-table".into()
            }),
        ];
        for (what, broken) in breaks {
            for record in &records {
                let mut record = record.clone();
                broken(&mut record);
                let text = record.to_string();
                let raw = serde_json::value::RawValue::from_string(text.clone()).unwrap();
                let typed = record_from_raw(&raw, None);
                let lenient = record_from_lenient(record.clone(), text.into(), None);
                assert_eq!(reading(&typed), reading(&lenient), "{what}: {record}");
                let parsed = record_from_value(record.clone(), None);
                assert_eq!(
                    reading(&parsed),
                    reading(&lenient),
                    "{what} (parsed): {record}"
                );
            }
        }
    }

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
        assert_eq!(
            table_from_arn("arn:aws:dynamodb:r:1:table/a\0b/stream/x"),
            None
        );
        assert_eq!(
            table_from_arn("arn:aws:dynamodb:r:1:table/../stream/x"),
            None
        );
    }
}

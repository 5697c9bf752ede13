//! Stream events in, typed changes out.
//!
//! Accepts what Lambda delivers for a DynamoDB stream (`{"Records": [...]}` with
//! eventSourceARN) and what DynamoDB Streams GetRecords returns (the same records without
//! eventSourceARN, plus `NextShardIterator`; the table then comes from `--table`, or a record's
//! `tableName`). Errors that make the whole input unusable (malformed JSON, JSON that is not an
//! event) are [`DecodeError`]s; a record that breaks a rule the stream guarantees (its
//! sequence number, eventID, table, DynamoDB's value rules: [`record`], [`values`]) becomes a
//! [`RecordDefect`] naming the field and the rule, so the batch parks it and goes on.
//!
//! The forms a record takes on its way to a [`StreamRecord`] (its typed `Change`, and its text
//! kept only for parking), by where it comes from. Every path meets in one typed form, the
//! fields the worker uses (`wire::WireRecord`), from which one function checks and builds the
//! record:
//! - a replayed file: checked whole first ([`check_records`], a scan that keeps nothing but a
//!   count, where each record's text is and the keys of tables with a two-attribute key: a
//!   malformed file changes nothing), then each record's text read from there
//!   ([`for_each_checked_record`]; `RawValue`, kept as `raw`) and parsed once into the typed form;
//! - Lambda: the event the runtime parsed ([`decode_value`]), read into the typed form, each
//!   record's text written from its value;
//! - the stream runner: the SDK's records converted into the typed form field by field
//!   ([`decode_stream_records`]), with no JSON in between; their Lambda-shaped text (which the
//!   filter criteria read anyway) is kept for parking.
//!
//! Only a record whose fields have other types than a stream gives them is read again, as a
//! `serde_json::Value`, so that it can still be named and parked with the field that is wrong.
//!
//! DynamoDB's value rules are checked on a record's keys and images here, once: the embedded
//! state applies a record's own change without walking its values again (it checks only the
//! key against the table's schema, which decoding does not know).

mod record;
mod wire;

use std::sync::Arc;

use serde_json::Value;
use thiserror::Error;

use handlers::value_rules::check_table_name;

use record::{record_from_raw, record_from_sdk, record_from_value, SeenEventIds};
pub use record::{table_from_arn, RecordDefect, StreamRecord};
use serde_json::value::RawValue;

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
    #[error("{source_name}: valid JSON, but {what}, not a stream event ({{\"Records\": [...]}}): {hint}")]
    NotAnEvent {
        source_name: String,
        what: &'static str,
        hint: &'static str,
    },
    #[error("{source_name}: no record names its table (record {index}, event {event_id:?}, has no eventSourceARN or tableName); pass --table NAME (GetRecords output does not carry it)")]
    NoTable {
        source_name: String,
        index: usize,
        event_id: String,
    },
    #[error("{source_name}: changed while it was replayed: record {index} is no longer where the first reading found it; the records before it were replayed, replay the file again once it is written")]
    Changed { source_name: String, index: usize },
    #[error("--table {table:?} is not {rule}")]
    Table { table: String, rule: &'static str },
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

/// Decode an event file record by record, handing each to `each`. Returns how many records
/// there were.
pub fn for_each_record(
    bytes: &[u8],
    source_name: &str,
    table: Option<&str>,
    each: &mut dyn FnMut(StreamRecord),
) -> Result<usize, DecodeError> {
    check_table_override(table)?;
    let mut seen = SeenEventIds::default();
    // Each record's text is kept as it came (a parked record is kept whole), not written again.
    let mut decode = |raw: &RawValue, index| {
        hand_over(raw, index, table, &mut seen, each);
        Ok(())
    };
    match std::str::from_utf8(bytes) {
        Ok(text) => for_each_value(
            serde_json::Deserializer::from_str(text),
            source_name,
            &mut |raw: &RawValue, index| decode(raw, index),
        ),
        // Read as far as it goes, for the error's line and column.
        Err(_) => for_each_value(
            deserializer_of(bytes),
            source_name,
            &mut |raw: Box<RawValue>, index| decode(&raw, index),
        ),
    }
}

/// Decode the records of a file [`check_records`] checked, read again from `reader` (the
/// file's bytes from its start), record by record: memory holds one record's text at a time,
/// not the whole file's. Each record is read from where the check found it, so its JSON is
/// parsed once more only as far as its own text goes. Returns how many records there were;
/// should the bytes no longer be what the check read (the file changed meanwhile), the records
/// before are handed over and the error says so.
pub fn for_each_checked_record<R: std::io::Read>(
    reader: R,
    checked: &CheckedFile,
    source_name: &str,
    table: Option<&str>,
    each: &mut dyn FnMut(StreamRecord),
) -> Result<usize, DecodeError> {
    use std::io::Read;
    check_table_override(table)?;
    let changed = |index: usize| DecodeError::Changed {
        source_name: source_name.to_string(),
        index,
    };
    let mut seen = SeenEventIds::default();
    let Some(spans) = &checked.spans else {
        // Spans not kept (a replay of very many records): the file parsed through again.
        return for_each_value(
            deserializer_of(reader),
            source_name,
            &mut |raw: Box<RawValue>, index| {
                hand_over(&raw, index, table, &mut seen, each);
                Ok(())
            },
        );
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 16, reader);
    let mut position = 0;
    let mut text = Vec::new();
    for (index, &start) in spans.starts.iter().enumerate() {
        let end = spans.starts.get(index + 1).copied().unwrap_or(spans.end);
        // The bytes before the record: the event's opening, or the comma between two records.
        let skip = start.checked_sub(position).ok_or_else(|| changed(index))?;
        let skipped = std::io::copy(&mut (&mut reader).take(skip), &mut std::io::sink());
        // The record's text, with the separator after it (parsed up to the record's end).
        let length = end.checked_sub(start).ok_or_else(|| changed(index))?;
        text.clear();
        let read = (&mut reader).take(length).read_to_end(&mut text);
        match (skipped, read) {
            (Ok(s), Ok(r)) if s == skip && r as u64 == length => position = end,
            _ => return Err(changed(index)),
        }
        let last = index + 1 == spans.starts.len();
        let raw = std::str::from_utf8(&text)
            .ok()
            .and_then(|text| record_in(text, last))
            .ok_or_else(|| changed(index))?;
        hand_over(raw, index, table, &mut seen, each);
    }
    Ok(spans.starts.len())
}

/// Record `index`'s text decoded, checked against the records before it (their eventIDs) and
/// handed to `each`.
fn hand_over(
    raw: &RawValue,
    index: usize,
    table: Option<&str>,
    seen: &mut SeenEventIds,
    each: &mut dyn FnMut(StreamRecord),
) {
    let mut record = record_from_raw(raw, table);
    seen.check(index, &mut record);
    each(record);
}

/// The record a span of a checked file holds: one JSON value, then (unless it is the last)
/// the comma before the next, with nothing else but whitespace. None when the span holds
/// anything else: the file is no longer the one checked.
fn record_in(span: &str, last: bool) -> Option<&RawValue> {
    let mut values = serde_json::Deserializer::from_str(span).into_iter::<&RawValue>();
    let raw = values.next()?.ok()?;
    let rest = span[values.byte_offset()..].trim_matches([' ', '\t', '\n', '\r']);
    let separator = match last {
        true => "",
        false => ",",
    };
    (rest == separator).then_some(raw)
}

/// What a replay's first pass learns of a file: how many records it has, and the key
/// attributes of each table whose records carry a key of two (the stream does not say which
/// is the partition key; the run needs a schema that does).
#[derive(Debug, Default)]
pub struct CheckedFile {
    pub records: usize,
    /// Table -> the names of the first two-attribute key seen of it.
    pub composite_keys: std::collections::BTreeMap<String, Vec<String>>,
    /// Where each record's text is in the file, for [`for_each_checked_record`] (None: not
    /// kept, see [`CheckedFile::forget_spans`]).
    spans: Option<RecordSpans>,
}

impl CheckedFile {
    /// Drops where the records are (8 bytes a record): [`for_each_checked_record`] then parses
    /// the file through again, more slowly, so that a replay of very many records keeps memory
    /// bounded.
    pub fn forget_spans(&mut self) {
        self.spans = None;
    }
}

/// Where the records' texts are in a file: record `i` starts at byte `starts[i]` and ends
/// before the next one starts (with the comma between them), the last before `end`. Eight
/// bytes a record, so that the second pass reads each record alone without a scan of its own.
#[derive(Debug, Default)]
struct RecordSpans {
    starts: Vec<u64>,
    end: u64,
}

/// What makes a whole file unusable, without decoding its records (a replay's first pass):
/// malformed JSON, JSON that is not an event, or records none of which names its table
/// (GetRecords output without `--table`; a single record without one is parked instead).
pub fn check_records(
    bytes: &[u8],
    source_name: &str,
    table: Option<&str>,
    probing: Probing,
) -> Result<CheckedFile, DecodeError> {
    check_table_override(table)?;
    let mut spans = RecordSpans::default();
    let mut span_of = |text: &str, raw: &RawValue| {
        // Where the record's text lies in the file's: a borrowed `RawValue` is a slice of it.
        let start = (raw.get().as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
        let end = start.wrapping_add(raw.get().len());
        if end > text.len() || start > end {
            return Err(DecodeError::Shape {
                source_name: source_name.to_string(),
                path: ".Records".to_string(),
                message: "a record's text is not where the parser found it".to_string(),
            });
        }
        spans.starts.push(start as u64);
        spans.end = end as u64;
        Ok(())
    };
    // Every value is parsed through (strings, escapes, nesting), so that everything the second
    // pass reads is valid JSON; from text, since a slice's strings would skip the UTF-8 check.
    let (count, probed) = match std::str::from_utf8(bytes) {
        Ok(text) if probing == Probing::InLine || text.len() < PROBE_BESIDE_FROM => {
            let mut probed = Probed::default();
            let count = for_each_value(
                serde_json::Deserializer::from_str(text),
                source_name,
                &mut |raw: &RawValue, _| {
                    span_of(text, raw)?;
                    probed.see(raw, table);
                    Ok(())
                },
            )?;
            (count, probed)
        }
        // A large file, with a core to spare: its records are probed on a thread of their own
        // while the file is parsed through.
        Ok(text) => std::thread::scope(|scope| {
            let (chunks, received) = std::sync::mpsc::sync_channel::<Vec<&RawValue>>(4);
            let prober = scope.spawn(move || {
                let mut probed = Probed::default();
                for raw in received.into_iter().flatten() {
                    probed.see(raw, table);
                }
                probed
            });
            let mut chunk = Vec::with_capacity(PROBE_CHUNK);
            let count = for_each_value(
                serde_json::Deserializer::from_str(text),
                source_name,
                &mut |raw: &RawValue, _| {
                    span_of(text, raw)?;
                    chunk.push(raw);
                    if chunk.len() == PROBE_CHUNK {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(PROBE_CHUNK));
                        // The prober only stops when this side does.
                        let _ = chunks.send(full);
                    }
                    Ok(())
                },
            );
            let _ = chunks.send(chunk);
            drop(chunks);
            let probed = prober
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            count.map(|count| (count, probed))
        })?,
        // Not text: parsed into values, whose strings are checked, for the error's line and
        // column (bytes that are not UTF-8 break a string or the syntax).
        Err(_) => for_each_value(deserializer_of(bytes), source_name, &mut |_: Value, _| {
            Ok(())
        })
        .and_then(|_| {
            Err(DecodeError::Shape {
                source_name: source_name.to_string(),
                path: ".".to_string(),
                message: "not UTF-8 text".to_string(),
            })
        })?,
    };
    match (table, probed.named, probed.first_event_id) {
        (None, false, Some(event_id)) => Err(DecodeError::NoTable {
            source_name: source_name.to_string(),
            index: 0,
            event_id,
        }),
        _ => Ok(CheckedFile {
            records: count,
            composite_keys: probed.composite_keys,
            spans: Some(spans),
        }),
    }
}

/// Where the first pass probes a file's records ([`check_records`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probing {
    /// As the file is parsed through.
    InLine,
    /// On a thread of their own beside the parse, for a file of [`PROBE_BESIDE_FROM`] bytes or
    /// more: where a core would wait otherwise (a replay's first pass is what every later step
    /// waits for, and a replay of one file checks it on one thread).
    Beside,
}

/// Files from this size on are probed beside their parse when asked ([`Probing::Beside`]); a
/// smaller one is done before a thread would start.
pub const PROBE_BESIDE_FROM: usize = 1 << 20;

/// Records handed to the prober at a time.
const PROBE_CHUNK: usize = 1024;

/// What the first pass learns of a file's records from their probes ([`RecordProbe`]).
#[derive(Default)]
struct Probed {
    /// Some record names its table.
    named: bool,
    first_event_id: Option<String>,
    /// Table -> the names of the first two-attribute key seen of it.
    composite_keys: std::collections::BTreeMap<String, Vec<String>>,
}

impl Probed {
    /// The next record, in file order.
    fn see(&mut self, raw: &RawValue, table: Option<&str>) {
        // Parsed again for what the first pass needs of it (anything reads as a probe).
        let probe = serde_json::from_str::<RecordProbe>(raw.get()).unwrap_or_default();
        self.named |= probe.names_table;
        self.first_event_id.get_or_insert(probe.event_id);
        if probe.keys.len() == 2 {
            if let Some(table) = table.map(str::to_string).or(probe.table) {
                self.composite_keys.entry(table).or_insert(probe.keys);
            }
        }
    }
}

fn check_table_override(table: Option<&str>) -> Result<(), DecodeError> {
    match table.map(|t| (t, check_table_name(t))) {
        Some((table, Err(rule))) => Err(DecodeError::Table {
            table: table.to_string(),
            rule,
        }),
        _ => Ok(()),
    }
}

/// Parse an event file, handing each record's JSON and index to `each`; an error from it stops
/// the parse and is the one returned. Returns how many records there were.
fn for_each_value<'de, R: serde_json::de::Read<'de>, T: serde::Deserialize<'de>>(
    mut deserializer: serde_json::Deserializer<R>,
    source_name: &str,
    each: &mut dyn FnMut(T, usize) -> Result<(), DecodeError>,
) -> Result<usize, DecodeError> {
    let mut failure = None;
    let mut count = 0;
    let seed = EventSeed {
        each,
        failure: &mut failure,
        count: &mut count,
        source_name,
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
    check_table_override(table)?;
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
    Ok(decode_with_table(records, table))
}

/// Records as DynamoDB Streams' GetRecords returned them (the stream runner), each with its
/// text in Lambda's shape (kept for parking): decoded from the SDK's types, without parsing
/// JSON, and checked against each other (eventIDs). Their table is the stream's.
pub fn decode_stream_records<'a>(
    records: impl IntoIterator<Item = (&'a aws_sdk_dynamodbstreams::types::Record, Arc<str>)>,
    stream_arn: &str,
) -> Vec<StreamRecord> {
    let mut seen = SeenEventIds::default();
    records
        .into_iter()
        .enumerate()
        .map(|(index, (record, raw))| {
            let mut record = record_from_sdk(record, stream_arn, raw);
            seen.check(index, &mut record);
            record
        })
        .collect()
}

fn decode_with_table(records: Vec<Value>, table: Option<&str>) -> Vec<StreamRecord> {
    let mut seen = SeenEventIds::default();
    records
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let mut record = record_from_value(value, table);
            seen.check(index, &mut record);
            record
        })
        .collect()
}

/// What a JSON document that is not an event is, from its top-level keys, and what to do.
fn not_an_event(source_name: &str, keys: &[String]) -> DecodeError {
    let has = |name: &str| keys.iter().any(|k| k == name);
    let (what, hint) = if has("DDBStreamBatchInfo") || has("requestContext") {
        (
            "a Lambda on-failure message (it names a shard and a sequence range, not records)",
            "`ddb-stream-worker redrive --file FILE` reads the records it names back from the stream",
        )
    } else if has("dynamodb") || has("eventName") {
        (
            "a single stream record",
            "wrap it as {\"Records\": [ <the record> ]}",
        )
    } else if has("StreamDescription") || has("Shards") {
        (
            "a stream description",
            "read its records with `aws dynamodbstreams get-records` and replay that output with --table",
        )
    } else if has("Items") || has("Item") {
        (
            "items (Scan, Query or GetItem output), not stream records",
            "replay takes stream records; `tables create` and an application write make them",
        )
    } else {
        (
            "an object without Records",
            "replay takes Lambda's event format or GetRecords output",
        )
    };
    DecodeError::NotAnEvent {
        source_name: source_name.to_string(),
        what,
        hint,
    }
}

/// The top-level object: `Records` is read element by element; other keys (GetRecords'
/// `NextShardIterator`) are skipped, and named when there is no `Records` (what the JSON is).
struct EventSeed<'a, T> {
    each: &'a mut dyn FnMut(T, usize) -> Result<(), DecodeError>,
    failure: &'a mut Option<DecodeError>,
    count: &'a mut usize,
    source_name: &'a str,
}

impl<'de, T: serde::Deserialize<'de>> serde::de::DeserializeSeed<'de> for EventSeed<'_, T> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for EventSeed<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a DynamoDB stream event: an object with Records")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        let mut keys = Vec::new();
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
                if keys.len() < 64 {
                    keys.push(key);
                }
            }
        }
        if seen {
            Ok(())
        } else {
            *self.failure = Some(not_an_event(self.source_name, &keys));
            Err(serde::de::Error::missing_field("Records"))
        }
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _seq: A) -> Result<(), A::Error> {
        *self.failure = Some(DecodeError::NotAnEvent {
            source_name: self.source_name.to_string(),
            what: "a JSON array",
            hint: "an event is an object: wrap the records as {\"Records\": [ ... ]}",
        });
        Err(serde::de::Error::custom("not an event"))
    }
}

struct RecordsSeed<'a, T> {
    each: &'a mut dyn FnMut(T, usize) -> Result<(), DecodeError>,
    failure: &'a mut Option<DecodeError>,
    count: &'a mut usize,
}

impl<'de, T: serde::Deserialize<'de>> serde::de::DeserializeSeed<'de> for RecordsSeed<'_, T> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for RecordsSeed<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of stream records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(value) = seq.next_element::<T>()? {
            if let Err(e) = (self.each)(value, *self.count) {
                *self.failure = Some(e);
                return Err(serde::de::Error::custom("stopped at an unusable record"));
            }
            *self.count += 1;
        }
        Ok(())
    }
}

fn deserializer_of<R: std::io::Read>(
    reader: R,
) -> serde_json::Deserializer<serde_json::de::IoRead<std::io::BufReader<R>>> {
    serde_json::Deserializer::from_reader(std::io::BufReader::new(reader))
}

/// What the first pass needs of a record: whether it names its table (a string
/// `eventSourceARN` or `tableName`), which (when it can tell), its eventID and the names of
/// its `dynamodb.Keys`. Anything else in it is parsed and dropped; a record that is not an
/// object names nothing (the second pass parks it).
#[derive(Default)]
struct RecordProbe {
    names_table: bool,
    table: Option<String>,
    event_id: String,
    keys: Vec<String>,
}

/// The attribute names of a record's `dynamodb.Keys` (none when it is not an object).
#[derive(Default)]
struct KeyNames(Vec<String>);

impl<'de> serde::Deserialize<'de> for KeyNames {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor {
            /// Inside `Keys` (collect the names) or inside `dynamodb` (look for `Keys`).
            in_keys: bool,
        }
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = KeyNames;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<KeyNames, A::Error> {
                let mut names = KeyNames::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if self.in_keys {
                        names.0.push(key.into_owned());
                        map.next_value::<serde::de::IgnoredAny>()?;
                    } else if key == "Keys" {
                        names = map.next_value_seed(Visitor { in_keys: true })?;
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(names)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<KeyNames, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(KeyNames::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<KeyNames, E> {
                Ok(KeyNames::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<KeyNames, E> {
                Ok(KeyNames::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<KeyNames, E> {
                Ok(KeyNames::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<KeyNames, E> {
                Ok(KeyNames::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<KeyNames, E> {
                Ok(KeyNames::default())
            }
            fn visit_unit<E>(self) -> Result<KeyNames, E> {
                Ok(KeyNames::default())
            }
        }
        impl<'de> serde::de::DeserializeSeed<'de> for Visitor {
            type Value = KeyNames;
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<KeyNames, D::Error> {
                d.deserialize_any(self)
            }
        }
        deserializer.deserialize_any(Visitor { in_keys: false })
    }
}

impl<'de> serde::Deserialize<'de> for RecordProbe {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RecordProbeVisitor)
    }
}

struct RecordProbeVisitor;

impl<'de> serde::de::Visitor<'de> for RecordProbeVisitor {
    type Value = RecordProbe;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a stream record")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RecordProbe, A::Error> {
        let mut probe = RecordProbe::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let value: Value = match key.as_ref() {
                "eventSourceARN" | "tableName" | "eventID" => map.next_value()?,
                "dynamodb" => {
                    probe.keys = map.next_value::<KeyNames>()?.0;
                    continue;
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    continue;
                }
            };
            match (key.as_ref(), value.as_str()) {
                ("eventID", id) => probe.event_id = id.unwrap_or_default().to_string(),
                ("eventSourceARN", Some(arn)) => {
                    probe.names_table = true;
                    // The ARN names the table before tableName does, as in the second pass.
                    if let Some(table) = table_from_arn(arn) {
                        probe.table = Some(table);
                    }
                }
                ("tableName", Some(table)) => {
                    probe.names_table = true;
                    probe.table.get_or_insert_with(|| table.to_string());
                }
                _ => {}
            }
        }
        Ok(probe)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RecordProbe, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(RecordProbe::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<RecordProbe, E> {
        Ok(RecordProbe::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<RecordProbe, E> {
        Ok(RecordProbe::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<RecordProbe, E> {
        Ok(RecordProbe::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<RecordProbe, E> {
        Ok(RecordProbe::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<RecordProbe, E> {
        Ok(RecordProbe::default())
    }
    fn visit_unit<E>(self) -> Result<RecordProbe, E> {
        Ok(RecordProbe::default())
    }
}

/// serde_json appends " at line L column C"; the error shows the position up front instead.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(cut) => message[..cut].to_string(),
        None => message.to_string(),
    }
}

//! Where a record goes that fails in a way no retry can fix, so that it costs only itself: it
//! is kept whole (the stream record exactly as delivered, with the reaction, the reason and
//! when), the batch goes on, and it can be replayed once the data or the code is fixed.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use handlers::item::stable_hash;
use handlers::PortError;
use serde_json::{json, Value};

use handlers::sequence_number::SequenceNumber;
use handlers::value_rules::check_table_name;

/// A record parked by one of its reactions (or by `decode` / `apply`, when the record itself
/// breaks a stream's rules or cannot be applied).
#[derive(Debug, Clone)]
pub struct ParkedRecord<'a> {
    /// The stream record's JSON, as delivered.
    pub raw: &'a str,
    /// Its table and sequence number as decoding read them (not necessarily valid ones).
    pub table: &'a str,
    pub sequence_number: &'a str,
    pub reaction: &'static str,
    pub reason: String,
    pub parked_at: DateTime<Utc>,
}

impl ParkedRecord<'_> {
    /// The record as an event file `replay` takes (`{"Records": [...]}`, Lambda's format): the
    /// record exactly as it came, with why and when it was parked beside it. A record that
    /// named its table only through `--table` gets a `tableName`, so it replays alone.
    pub fn to_event(&self) -> Value {
        let mut record: Value =
            serde_json::from_str(self.raw).unwrap_or_else(|_| Value::String(self.raw.to_string()));
        if let Some(fields) = record.as_object_mut() {
            let named = fields.contains_key("eventSourceARN") || fields.contains_key("tableName");
            if !named && check_table_name(self.table).is_ok() {
                fields.insert("tableName".into(), json!(self.table));
            }
        }
        json!({
            "Records": [record],
            "parked": {
                "reaction": self.reaction,
                "reason": self.reason,
                "table": self.table,
                "parkedAt": self.parked_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            },
        })
    }

    /// `<sequence number>-<reaction>`: a name for the parked record's file or object that no
    /// input can turn into a path. A record whose sequence number breaks the stream's rule is
    /// named by a hash of its text instead.
    pub fn file_stem(&self) -> String {
        let id = match SequenceNumber::check(self.sequence_number) {
            Ok(()) => self.sequence_number.to_string(),
            Err(_) => format!("record-{:016x}", stable_hash(self.raw.as_bytes())),
        };
        format!("{id}-{}", self.reaction)
    }

    /// The record's table, when it is a table name (the only text from input in an object key
    /// beside [`ParkedRecord::file_stem`]).
    pub fn table_folder(&self) -> &str {
        match check_table_name(self.table) {
            Ok(()) => self.table,
            Err(_) => "unknown-table",
        }
    }
}

#[async_trait]
pub trait Parking: Send + Sync {
    /// Keep the record durably; returns where it went.
    async fn park(&self, record: &ParkedRecord<'_>) -> Result<String, PortError>;
}

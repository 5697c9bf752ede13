//! Shared helpers for the black-box tests: stream records built like Lambda's, a worker on a
//! temporary embedded state, port wrappers (tables, objects, mail) that inject faults where
//! told, and a fixed clock. `services` has the DynamoDB Local / moto side, `faulty_http` the
//! fault-injecting HTTP client for the SDK adapters.
#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ddb_stream_worker::adapters::embedded::{EmbeddedState, StateError};
use ddb_stream_worker::batch::intercept::{Intercept, Intercepted, TableCall};
use ddb_stream_worker::batch::Adapters;
use ddb_stream_worker::catalog::Catalog;
use ddb_stream_worker::decode::{decode_event, StreamRecord};
use ddb_stream_worker::wiring;
use ddb_stream_worker::wiring::config::Config;
use handlers::ports::{Mail, Mailer, Object, Objects, Tables};
use handlers::PortError;
use serde_json::{json, Value};

pub mod cli;
pub mod contract;
pub mod faulty_http;
pub mod reviews;
pub mod runtime_api;
pub mod schedule;
pub mod services;
pub mod stream_record;

/// Items of one table, or of every table with items, as sorted DynamoDB JSON in key order: the
/// whole state in memory, for the tests' small states (the worker itself scans item by item).
pub fn dump(
    state: &EmbeddedState,
    table: Option<&str>,
) -> Result<Vec<(String, Vec<Value>)>, StateError> {
    let names = match table {
        Some(table) => vec![table.to_string()],
        None => (state.table_sizes()?.into_iter())
            .map(|(name, _)| name)
            .collect(),
    };
    let mut tables = Vec::new();
    for name in names {
        let mut items = Vec::new();
        state.scan_table(&name, &mut |item| {
            items.push(handlers::item::sorted(&item));
            Ok::<_, StateError>(())
        })?;
        tables.push((name, items));
    }
    Ok(tables)
}

pub const COST_TABLE: &str = "aws-cost-platform-enhanced";

/// A Lambda stream record for the cost platform table.
pub fn record(
    seq: u64,
    event_name: &str,
    keys: Value,
    new: Option<Value>,
    old: Option<Value>,
) -> Value {
    record_in(COST_TABLE, seq, event_name, keys, new, old)
}

/// A Lambda stream record for `table`.
pub fn record_in(
    table: &str,
    seq: u64,
    event_name: &str,
    keys: Value,
    new: Option<Value>,
    old: Option<Value>,
) -> Value {
    stream_record::StreamRecord {
        table,
        event_id: format!("event-{seq}"),
        event_name,
        sequence_number: format!("{seq:021}"),
        created: 1705312800 + seq,
        keys,
        new,
        old,
        by_ttl: false,
    }
    .into_json()
}

/// An INSERT of a user profile `USER#<id>`.
pub fn user_insert(seq: u64, id: &str) -> Value {
    let keys = json!({"PK": {"S": format!("USER#{id}")}, "SK": {"S": "PROFILE"}});
    let mut new = keys.clone();
    new["EntityType"] = json!({"S": "User"});
    new["UserId"] = json!({"S": id});
    record(seq, "INSERT", keys, Some(new), None)
}

/// What reaction `name` did with a record, from the record's report as JSON (`replay --json`
/// or a serialized `RecordReport`).
pub fn reaction<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["reactions"]
        .as_array()
        .and_then(|reactions| reactions.iter().find(|r| r["reaction"] == name))
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

pub fn decode(records: &[Value]) -> Vec<StreamRecord> {
    let text = json!({ "Records": records }).to_string();
    decode_event(&text, "test", None).expect("test records decode")
}

pub fn config() -> Config {
    Config::from_lookup(|_| None).expect("default config")
}

pub fn embedded(dir: &Path) -> (Arc<EmbeddedState>, Adapters) {
    let catalog = Catalog::with_seed_definitions();
    let state = Arc::new(EmbeddedState::open(dir, catalog.clone(), false).expect("state opens"));
    let adapters = wiring::embedded_adapters(state.clone(), catalog);
    (state, adapters)
}

/// Faults armed for the port wrappers below: the next `times` calls of `operation` whose
/// detail (table or bucket, and the item or message) contains `needle` fail with a transient
/// error, as a throttle or timeout would once the call's own retries are spent.
#[derive(Default)]
pub struct Faults {
    armed: Mutex<Option<(&'static str, String, usize)>>,
    /// Faults that fired, by needle.
    fired: Mutex<Vec<String>>,
}

impl Faults {
    pub fn fail_next(&self, operation: &'static str, needle: &str, times: usize) {
        *self.armed.lock().unwrap() = Some((operation, needle.to_string(), times));
    }

    pub fn disarm(&self) {
        *self.armed.lock().unwrap() = None;
    }

    /// How many faults fired whose needle was `needle`.
    pub fn fired(&self, needle: &str) -> usize {
        self.fired
            .lock()
            .unwrap()
            .iter()
            .filter(|n| *n == needle)
            .count()
    }

    fn enter(
        &self,
        operation: &'static str,
        detail: impl FnOnce() -> String,
    ) -> Result<(), PortError> {
        let mut armed = self.armed.lock().unwrap();
        let Some((op, needle, left)) = armed.as_mut() else {
            return Ok(());
        };
        if *op != operation || *left == 0 {
            return Ok(());
        }
        let detail = detail();
        if !detail.contains(needle.as_str()) {
            return Ok(());
        }
        *left -= 1;
        self.fired.lock().unwrap().push(needle.clone());
        Err(PortError::Transient {
            operation,
            target: detail.chars().take(80).collect(),
            message: "injected fault".into(),
        })
    }
}

/// Tables with [`Faults`] in front of them: every call passes on unless the faults say
/// otherwise. A put's detail is its table and item; any other call's, its table.
pub type FaultyTables = Intercepted<SharedFaults>;

/// Faults shared by the tables, objects and mailer wrappers of one test.
pub struct SharedFaults(pub Arc<Faults>);

#[async_trait]
impl Intercept for SharedFaults {
    type Pending = ();

    async fn before(&self, _inner: &dyn Tables, call: TableCall<'_>) -> Result<(), PortError> {
        self.0.enter(call.operation(), || match call {
            TableCall::Put { table, item, .. } => format!("{table} {item:?}"),
            other => other.table().to_string(),
        })
    }
}

pub fn faulty_tables(inner: Arc<dyn Tables>, faults: Arc<Faults>) -> Arc<FaultyTables> {
    Arc::new(Intercepted::new(inner, SharedFaults(faults)))
}

/// Objects that pass every call on unless [`Faults`] say otherwise.
pub struct FaultyObjects {
    pub inner: Arc<dyn Objects>,
    pub faults: Arc<Faults>,
}

#[async_trait]
impl Objects for FaultyObjects {
    async fn put(&self, object: Object) -> Result<(), PortError> {
        self.faults
            .enter("PutObject", || format!("{} {}", object.bucket, object.key))?;
        self.inner.put(object).await
    }
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), PortError> {
        self.faults
            .enter("DeleteObject", || format!("{bucket} {key}"))?;
        self.inner.delete(bucket, key).await
    }
    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        expires_in: std::time::Duration,
    ) -> Result<handlers::ports::Link, PortError> {
        self.inner.presign_get(bucket, key, expires_in).await
    }
}

/// A mailer that passes every message on unless [`Faults`] say otherwise, and keeps the
/// recipients and subject of every message sent.
pub struct FaultyMailer {
    pub inner: Arc<dyn Mailer>,
    pub faults: Arc<Faults>,
    pub sent: Mutex<Vec<(Vec<String>, String)>>,
}

#[async_trait]
impl Mailer for FaultyMailer {
    async fn send(&self, mail: &Mail) -> Result<String, PortError> {
        self.faults
            .enter("SendEmail", || format!("{:?} {}", mail.to, mail.subject))?;
        let id = self.inner.send(mail).await?;
        self.sent
            .lock()
            .unwrap()
            .push((mail.to.clone(), mail.subject.clone()));
        Ok(id)
    }
}

/// A clock that says the time the test set: fixed, so two runs write the same timestamps, or
/// moved on by the test.
pub struct ManualClock(pub Mutex<chrono::DateTime<chrono::Utc>>);

impl ManualClock {
    pub fn at(time: chrono::DateTime<chrono::Utc>) -> Self {
        ManualClock(Mutex::new(time))
    }
}

impl handlers::ports::Clock for ManualClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self.0.lock().unwrap()
    }
}

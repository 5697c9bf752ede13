//! The idempotency guard: at most one completed run of a guarded reaction per stream record.
//!
//! Records live in the marketplace seed's idempotency table (`idempotencyKey`, `result`, `ttl`)
//! with two more attributes: `status` (INPROGRESS / COMPLETED) and, on a lock,
//! `inProgressExpiry` (epoch ms). The lock is one conditional put that succeeds when there is
//! no record or when an INPROGRESS record outlived its expiry (a crashed attempt is taken
//! over). When the put fails, DynamoDB returns the existing record with it
//! (ReturnValuesOnConditionCheckFailure=ALL_OLD), so a COMPLETED duplicate costs one request.
//!
//! A record's `ttl` counts from the stream record's own time (ApproximateCreationDateTime), not
//! from the clock: a record can be delivered again only while it is in the stream (24 hours
//! from that time), which the default lifetime covers, and a replay writes the same items.
//! A COMPLETED record is a duplicate for as long as it is there, even past its `ttl` (TTL
//! deletion lags): it is the same event. Only the in-progress expiry, a lock's, reads the
//! clock.
//!
//! The same table holds completion notes for reactions that recompute from state (COMPLETED
//! records written after the fact, never locks), and a batch reads all its records' entries
//! with one BatchGetItem before it starts (`Guard::completed`), so a re-delivered batch skips
//! what was done without a request per record.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use handlers::item::{from_item, string_key, to_item};
use handlers::ports::{Condition, Tables};
use handlers::{AttributeValue, PortError, ReactionError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub struct IdempotencyConfig {
    pub table: String,
    /// Lifetime of a record (`ttl`), from the stream record's time.
    pub ttl_seconds: i64,
    /// In-progress expiry when there is no Lambda deadline (replay).
    pub default_in_progress: Duration,
    /// Check a batch's idempotency records with one BatchGetItem before it starts, and note
    /// each record a recomputing reaction is done with. It saves DynamoDB requests on
    /// re-delivery; on the embedded state, where requests cost nothing and every note is one
    /// more item to keep, a replay turns it off.
    pub completion_notes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockStatus {
    #[serde(rename = "INPROGRESS")]
    InProgress,
    #[serde(rename = "COMPLETED")]
    Completed,
}

/// One item of the idempotency table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    #[serde(rename = "idempotencyKey")]
    pub key: String,
    pub status: LockStatus,
    /// The reaction's result as JSON text (COMPLETED only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Epoch seconds after which TTL deletes the record: the stream record's time plus the
    /// configured lifetime.
    #[serde(with = "handlers::item::number::int")]
    pub ttl: i64,
    /// A lock's expiry (epoch ms): past it, another delivery takes the lock over. Only on
    /// INPROGRESS records; a COMPLETED one has no use for it.
    #[serde(
        rename = "inProgressExpiry",
        default,
        skip_serializing_if = "Option::is_none",
        with = "handlers::item::number::option_int"
    )]
    pub in_progress_expiry: Option<i64>,
}

/// The outcome of taking the lock.
#[derive(Debug, Clone, PartialEq)]
pub enum Acquired {
    /// This invocation runs the reaction.
    Locked,
    /// An earlier delivery completed it; here is what it reported.
    Duplicate { result: serde_json::Value },
}

/// `<reaction>#<eventID>`.
pub fn key_for(reaction: &str, event_id: &str) -> String {
    [reaction, "#", event_id].concat()
}

/// A stored result as JSON (null when absent or unreadable: it is for reports only).
fn parse_result(text: Option<String>) -> serde_json::Value {
    text.and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(serde_json::Value::Null)
}

pub struct Guard<'a> {
    pub tables: &'a dyn Tables,
    pub config: &'a IdempotencyConfig,
}

impl Guard<'_> {
    /// Take the lock for `key` (a record of `record_time`) until `in_progress_until`; `now` is
    /// the clock, for taking over a lock whose expiry has passed.
    pub async fn acquire(
        &self,
        key: &str,
        record_time: DateTime<Utc>,
        now: DateTime<Utc>,
        in_progress_until: DateTime<Utc>,
    ) -> Result<Acquired, ReactionError> {
        let record = IdempotencyRecord {
            key: key.to_string(),
            status: LockStatus::InProgress,
            result: None,
            ttl: self.ttl(record_time),
            in_progress_expiry: Some(in_progress_until.timestamp_millis()),
        };
        let number = |n: i64| AttributeValue::N(n.to_string());
        let takeable = Condition::Or(vec![
            Condition::NotExists("idempotencyKey".into()),
            Condition::And(vec![
                Condition::eq("status", AttributeValue::S("INPROGRESS".into())),
                Condition::lt("inProgressExpiry", number(now.timestamp_millis())),
            ]),
        ]);
        match self
            .tables
            .put(&self.config.table, to_item(&record)?, Some(&takeable))
            .await
        {
            Ok(()) => Ok(Acquired::Locked),
            Err(PortError::ConditionFailed {
                existing: Some(existing),
                ..
            }) => {
                let existing: IdempotencyRecord =
                    from_item(*existing, &format!("idempotency record {key}"))?;
                match existing.status {
                    LockStatus::Completed => Ok(Acquired::Duplicate {
                        result: parse_result(existing.result),
                    }),
                    LockStatus::InProgress => Err(ReactionError::InProgress {
                        expires_at_ms: existing.in_progress_expiry.unwrap_or_default(),
                    }),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Mark `key` (a record of `record_time`) completed with the reaction's result: the whole
    /// item is written from the record, so it is the same on every delivery and replay.
    pub async fn complete(
        &self,
        key: &str,
        result: &serde_json::Value,
        record_time: DateTime<Utc>,
    ) -> Result<(), ReactionError> {
        self.tables
            .put(
                &self.config.table,
                self.completion_note(key.to_string(), result, record_time)?,
                None,
            )
            .await?;
        Ok(())
    }

    /// Of `keys`, those whose reaction completed, with the result it stored: one BatchGetItem
    /// per 100 keys.
    pub async fn completed(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, serde_json::Value>, ReactionError> {
        let items = self
            .tables
            .batch_get(
                &self.config.table,
                keys.iter()
                    .map(|key| string_key(&[("idempotencyKey", key)]))
                    .collect(),
            )
            .await?;
        let mut completed = HashMap::new();
        for item in items {
            let record: IdempotencyRecord = from_item(item, "idempotency record")?;
            if record.status == LockStatus::Completed {
                completed.insert(record.key, parse_result(record.result));
            }
        }
        Ok(completed)
    }

    /// The COMPLETED record of `key`: a guarded reaction's completion, or the note that a
    /// recomputing reaction is done with a record (written after the fact, never a lock).
    pub fn completion_note(
        &self,
        key: String,
        result: &serde_json::Value,
        record_time: DateTime<Utc>,
    ) -> Result<handlers::Item, ReactionError> {
        to_item(&IdempotencyRecord {
            key,
            status: LockStatus::Completed,
            result: Some(result.to_string()),
            ttl: self.ttl(record_time),
            in_progress_expiry: None,
        })
    }

    fn ttl(&self, record_time: DateTime<Utc>) -> i64 {
        record_time.timestamp() + self.config.ttl_seconds
    }

    /// Drop the lock after a failed run, so the retry runs the reaction again.
    pub async fn release(&self, key: &str) -> Result<(), ReactionError> {
        self.tables
            .delete(
                &self.config.table,
                &string_key(&[("idempotencyKey", key)]),
                None,
            )
            .await?;
        Ok(())
    }
}

//! The idempotency guard: at most one completed run of a guarded reaction per stream record.
//!
//! Records live in the marketplace seed's idempotency table (`idempotencyKey`, `result`, `ttl`)
//! with two more attributes: `status` (INPROGRESS / COMPLETED) and `inProgressExpiry` (epoch
//! ms). The lock is one conditional put that succeeds when there is no record, when the record
//! has expired (its `ttl` passed: TTL deletion can lag up to 48 h, so the condition reclaims
//! it) or when an INPROGRESS record outlived its expiry (a crashed attempt is taken over). When
//! the put fails, DynamoDB returns the existing record with it
//! (ReturnValuesOnConditionCheckFailure=ALL_OLD), so a COMPLETED duplicate costs one request.
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
    /// Lifetime of a record (`ttl`), from the moment it is written.
    pub ttl_seconds: i64,
    /// In-progress expiry when there is no Lambda deadline (replay).
    pub default_in_progress: Duration,
    /// Check a batch's idempotency records with one BatchGetItem before it starts, and note
    /// each record a recomputing reaction is done with. It saves DynamoDB requests on
    /// re-delivery; on the embedded state, where requests cost nothing and every note is one
    /// more item to keep, a replay turns it off.
    pub completion_markers: bool,
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
    /// Epoch seconds after which the record no longer counts (and TTL deletes it).
    #[serde(with = "handlers::item::number::int")]
    pub ttl: i64,
    #[serde(rename = "inProgressExpiry", with = "handlers::item::number::int")]
    pub in_progress_expiry: i64,
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
    format!("{reaction}#{event_id}")
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
    /// Take the lock for `key` until `in_progress_until`.
    pub async fn acquire(
        &self,
        key: &str,
        now: DateTime<Utc>,
        in_progress_until: DateTime<Utc>,
    ) -> Result<Acquired, ReactionError> {
        let record = IdempotencyRecord {
            key: key.to_string(),
            status: LockStatus::InProgress,
            result: None,
            ttl: now.timestamp() + self.config.ttl_seconds,
            in_progress_expiry: in_progress_until.timestamp_millis(),
        };
        let number = |n: i64| AttributeValue::N(n.to_string());
        let takeable = Condition::Or(vec![
            Condition::NotExists("idempotencyKey".into()),
            Condition::lt("ttl", number(now.timestamp())),
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
                        expires_at_ms: existing.in_progress_expiry,
                    }),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Mark `key` completed with the reaction's result. The lock's in-progress expiry is kept
    /// as it was taken (it shows which invocation deadline the run had).
    pub async fn complete(
        &self,
        key: &str,
        result: &serde_json::Value,
        now: DateTime<Utc>,
        in_progress_until: DateTime<Utc>,
    ) -> Result<(), ReactionError> {
        let record = IdempotencyRecord {
            key: key.to_string(),
            status: LockStatus::Completed,
            result: Some(result.to_string()),
            ttl: now.timestamp() + self.config.ttl_seconds,
            in_progress_expiry: in_progress_until.timestamp_millis(),
        };
        self.tables
            .put(&self.config.table, to_item(&record)?, None)
            .await?;
        Ok(())
    }

    /// Of `keys`, those whose reaction completed (and whose record has not expired), with the
    /// result it stored: one BatchGetItem per 100 keys.
    pub async fn completed(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
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
            if record.status == LockStatus::Completed && record.ttl >= now.timestamp() {
                completed.insert(record.key, parse_result(record.result));
            }
        }
        Ok(completed)
    }

    /// The note that a recomputing reaction is done with a record (never a lock: it is
    /// written after the fact, with nothing in progress).
    pub fn completion_marker(
        &self,
        key: String,
        result: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<handlers::Item, ReactionError> {
        to_item(&IdempotencyRecord {
            key,
            status: LockStatus::Completed,
            result: Some(result.to_string()),
            ttl: now.timestamp() + self.config.ttl_seconds,
            in_progress_expiry: now.timestamp_millis(),
        })
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

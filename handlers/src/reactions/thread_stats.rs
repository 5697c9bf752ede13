//! The ACS email platform (seed: acs-email-platform.md): thread statistics kept in step with
//! the conversations. (Session expiry is audited by the audit reaction's configuration.)
//!
//! `thread-stats` recomputes from state: the conversation's messages are one partition of the
//! Conversations table (a consistent query), so a re-delivered or retried record changes
//! nothing, and a removed message is simply no longer counted. Everything it writes is a
//! function of the messages there are (and of the participants the application listed), never
//! of which changes it happened to see, so batching and retries cannot change the result. The
//! write is conditional on the thread's `stats_version` as read, so concurrent workers cannot
//! lose an update.

use async_trait::async_trait;
use chrono::SecondsFormat;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;

use super::{Idempotency, Reacted, Reaction};
use crate::change::Change;
use crate::error::{PortError, ReactionError};
use crate::item::{from_item, get_str, number, string_key, AttributeValue};
use crate::ports::{Condition, Ports, Query, Update};
use crate::settings::Settings;

const MAX_ATTEMPTS: u32 = 4;

#[derive(Debug, Clone)]
pub struct ThreadsConfig {
    pub conversations_table: String,
    pub threads_table: String,
}

impl ThreadsConfig {
    pub fn from_settings(s: &Settings) -> Self {
        ThreadsConfig {
            conversations_table: s.text("ACS_CONVERSATIONS_TABLE", "acsd2p-dev-Conversations"),
            threads_table: s.text("ACS_THREADS_TABLE", "acsd2p-dev-Threads"),
        }
    }
}

/// One message of a conversation, the fields the statistics use.
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub sender_email: Option<String>,
    #[serde(default)]
    pub recipient_email: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub response_id: Option<String>,
}

/// A thread's statistics, as stored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ThreadStats {
    #[serde(default, with = "number::option")]
    pub message_count: Option<Decimal>,
    #[serde(default)]
    pub last_message_at: Option<String>,
    #[serde(default)]
    pub participants: Vec<String>,
    /// Which of `participants` the worker added from messages (the rest the application
    /// listed), so an address leaves again when its messages do.
    #[serde(default)]
    pub message_participants: Vec<String>,
    #[serde(default, with = "number::option")]
    pub stats_version: Option<Decimal>,
}

pub struct ThreadStatistics {
    config: ThreadsConfig,
}

impl ThreadStatistics {
    pub fn new(config: ThreadsConfig) -> Self {
        ThreadStatistics { config }
    }
}

/// Participants: those the application listed on the thread, then every sender and recipient
/// of the messages, oldest message first, each once. Returns them all, and which came from
/// messages only.
pub fn participants(stored: &ThreadStats, messages: &[Message]) -> (Vec<String>, Vec<String>) {
    let mut all: Vec<String> = stored
        .participants
        .iter()
        .filter(|p| !stored.message_participants.contains(p))
        .cloned()
        .collect();
    let listed = all.len();
    let mut in_order: Vec<&Message> = messages.iter().collect();
    in_order.sort_by(|a, b| (&a.timestamp, &a.response_id).cmp(&(&b.timestamp, &b.response_id)));
    for address in in_order
        .iter()
        .flat_map(|m| [&m.sender_email, &m.recipient_email])
        .flatten()
    {
        if !address.is_empty() && !all.contains(address) {
            all.push(address.clone());
        }
    }
    let from_messages = all[listed..].to_vec();
    (all, from_messages)
}

#[async_trait]
impl Reaction for ThreadStatistics {
    fn name(&self) -> &'static str {
        "thread-stats"
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::Recomputed
    }

    fn applies(&self, change: &Change) -> bool {
        change.table == self.config.conversations_table
            && get_str(change.latest_image(), "conversation_id").is_some()
    }

    fn coalesce_key(&self, change: &Change) -> Option<String> {
        get_str(change.latest_image(), "conversation_id").map(str::to_string)
    }

    async fn react(&self, change: &Change, ports: Ports<'_>) -> Result<Reacted, ReactionError> {
        let conversation = get_str(change.latest_image(), "conversation_id")
            .unwrap_or_default()
            .to_string();
        let mut attempt = 1;
        loop {
            match self.recompute(&conversation, change, ports).await {
                Err(ReactionError::Port(PortError::ConditionFailed { .. }))
                    if attempt < MAX_ATTEMPTS =>
                {
                    attempt += 1
                }
                Err(ReactionError::Port(PortError::ConditionFailed { .. })) => {
                    return Err(ReactionError::Port(PortError::Transient {
                        operation: "UpdateItem",
                        target: format!("{} {conversation}", self.config.threads_table),
                        message: format!(
                            "the thread changed under {MAX_ATTEMPTS} recomputations in a row"
                        ),
                    }))
                }
                other => {
                    return other.map(|result| Reacted {
                        result,
                        deferred_writes: Vec::new(),
                    })
                }
            }
        }
    }
}

impl ThreadStatistics {
    async fn recompute(
        &self,
        conversation: &str,
        change: &Change,
        ports: Ports<'_>,
    ) -> Result<serde_json::Value, ReactionError> {
        let cfg = &self.config;
        let key = string_key(&[("conversation_id", conversation)]);
        let stored: ThreadStats = match ports.tables.get(&cfg.threads_table, &key).await? {
            Some(item) => from_item(item, &format!("{} {conversation}", cfg.threads_table))?,
            None => ThreadStats::default(),
        };
        let items = ports
            .tables
            .query(&Query {
                table: cfg.conversations_table.clone(),
                index: None,
                partition: (
                    "conversation_id".into(),
                    AttributeValue::S(conversation.to_string()),
                ),
                sort_key: None,
                ascending: true,
            })
            .await?;
        let messages: Vec<Message> = items
            .into_iter()
            .map(|item| {
                from_item(
                    item,
                    &format!("{} message of {conversation}", cfg.conversations_table),
                )
            })
            .collect::<Result<_, _>>()?;
        let count = Decimal::from(messages.len());
        // The latest message's time; none when no message is left.
        let last = messages.iter().filter_map(|m| m.timestamp.clone()).max();
        let (everyone, from_messages) = participants(&stored, &messages);
        let figures = json!({ "message_count": messages.len(), "last_message_at": last, "participants": everyone });
        if stored.message_count == Some(count)
            && stored.last_message_at == last
            && stored.participants == everyone
            && stored.message_participants == from_messages
        {
            return Ok(json!({ "unchanged": figures }));
        }
        let version = stored.stats_version.unwrap_or_default();
        let n = |d: Decimal| AttributeValue::N(d.normalize().to_string());
        let mut update = Update::default()
            .set("message_count", n(count))
            .set(
                "participants",
                AttributeValue::L(everyone.iter().cloned().map(AttributeValue::S).collect()),
            )
            .set(
                "message_participants",
                AttributeValue::L(from_messages.into_iter().map(AttributeValue::S).collect()),
            )
            // `updated_at` is the application's (the seed's thread metadata); the worker dates
            // its own figures, from the change's time.
            .set(
                "stats_updated_at",
                AttributeValue::S(
                    change
                        .approximate_creation
                        .to_rfc3339_opts(SecondsFormat::Secs, true),
                ),
            )
            .set("stats_version", n(version + Decimal::ONE));
        update = match &last {
            Some(last) => update.set("last_message_at", AttributeValue::S(last.clone())),
            None => update.remove("last_message_at"),
        };
        let as_read = match stored.stats_version {
            Some(v) => Condition::eq("stats_version", n(v)),
            None => Condition::NotExists("stats_version".into()),
        };
        ports
            .tables
            .update(&cfg.threads_table, &key, &update, Some(&as_read))
            .await?;
        Ok(json!({ "updated": figures }))
    }
}

//! `reconcile threads`: a thread's statistics and message state rebuilt from the Conversations
//! table, for what the stream did not show the worker (a bulk import, a restore, figures changed
//! by hand, the messages from before the worker kept state). Reads the whole conversation (a
//! cost paid only here) and writes what differed under the same version conditions as the
//! reaction, so a change folded meanwhile makes it start over.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::message_states::{partition, MessageState, ThreadState, THREAD_SORT_KEY};
use super::{Message, ThreadStatistics, ThreadStats};
use crate::error::ReactionError;
use crate::item::{from_item, to_item, AttributeValue};
use crate::ports::{Ports, Query};
use crate::reactions::folding::{
    state_key, state_version, Reconcilable, ReconcileRules, Reconciled,
};

/// `reconcile threads`.
pub const RECONCILE: Reconcilable = Reconcilable {
    command: "threads",
    about: "Threads' `message_count`, `last_message_at`, `participants` and message state, from their conversations",
    id_flag: "conversation",
    id_help: "A conversation to reconcile (repeatable)",
    source: "its messages say",
    rules: |config| Box::new(ThreadStatistics::new(config.threads.clone())),
};

#[async_trait]
impl ReconcileRules for ThreadStatistics {
    fn recomputed(&self) -> &'static str {
        "the thread"
    }

    /// The messages' conversation ids and the threads' keys.
    fn id_sources(&self) -> Vec<(String, String)> {
        let cfg = &self.config;
        vec![
            (
                cfg.conversations_table.clone(),
                cfg.names.of("conversation_id").to_string(),
            ),
            (
                cfg.threads_table.clone(),
                cfg.names.of("thread.conversation_id").to_string(),
            ),
        ]
    }

    /// Forgets the thread and its messages.
    fn forget_aggregate(&self, conversation: &str) {
        self.known_threads
            .remember([(conversation.to_string(), None)]);
        self.known_messages.retain(|(c, _)| c != conversation);
    }

    /// Rebuilds `conversation`'s statistics and message state from its messages.
    async fn recompute(
        &self,
        conversation: &str,
        ports: Ports<'_>,
    ) -> Result<Reconciled, ReactionError> {
        let cfg = &self.config;
        let what = |thing: &str| format!("{thing} of conversation {conversation}");
        let stored: Option<ThreadStats> = ports
            .tables
            .get(&cfg.threads_table, &self.thread_key(conversation))
            .await?
            .map(|item| from_item(item, &what(&cfg.threads_table)))
            .transpose()?;
        let in_table = ports
            .tables
            .query(&Query {
                table: cfg.conversations_table.clone(),
                index: None,
                partition: (
                    cfg.names.of("conversation_id").to_string(),
                    AttributeValue::S(conversation.to_string()),
                ),
                sort_key: None,
                ascending: true,
            })
            .await?;
        let known = self.stored_messages(conversation, ports).await?;
        let thread_was: Option<ThreadState> = ports
            .tables
            .get(
                &cfg.state_table,
                &state_key(&partition(conversation), THREAD_SORT_KEY),
            )
            .await?
            .map(|item| from_item(item, &what("the thread state")))
            .transpose()?;

        // Every message the state knows is absent unless the table has it; every message the
        // table has is as it is now, from sequence number 0 when the state did not know it.
        let mut expected: BTreeMap<String, MessageState> = known.clone();
        for message in expected.values_mut() {
            message.present = false;
        }
        for item in in_table {
            let Some(response_id) = cfg.ids(&item).1.map(str::to_string) else {
                continue;
            };
            // A message the worker cannot read counts, as in the reaction, without its fields.
            let message: Option<Message> =
                from_item(cfg.names.project(&item), &what("a message")).ok();
            let state = expected
                .entry(response_id.clone())
                .or_insert_with(|| MessageState::unseen(conversation, &response_id));
            if state.sequence_number.is_empty() {
                state.sequence_number = "0".into();
            }
            state.present = true;
            state.ttl = None;
            state.timestamp = message.as_ref().and_then(|m| m.timestamp.clone());
            state.sender_email = message.as_ref().and_then(|m| m.sender_email.clone());
            state.recipient_email = message.and_then(|m| m.recipient_email);
        }
        let mut thread = thread_was
            .clone()
            .unwrap_or_else(|| ThreadState::empty(conversation));
        thread.rebuild(expected.values());

        let mut fixed_state = 0;
        for (response_id, mut message) in expected {
            let was = known.get(&response_id);
            let same = was.is_some_and(|w| {
                (w.present, &w.timestamp, &w.sender_email, &w.recipient_email)
                    == (
                        message.present,
                        &message.timestamp,
                        &message.sender_email,
                        &message.recipient_email,
                    )
            });
            if same {
                continue;
            }
            let version = was.map_or(0, |w| w.version);
            message.version = version + 1;
            ports
                .tables
                .put(
                    &cfg.state_table,
                    to_item(&message)?,
                    Some(&state_version(version)),
                )
                .await?;
            fixed_state += 1;
        }
        let thread_version = thread_was.as_ref().map_or(0, |t| t.version);
        let unchanged = thread_was.as_ref().is_some_and(|was| {
            (was.message_count, &was.last_message_at, &was.participants)
                == (
                    thread.message_count,
                    &thread.last_message_at,
                    &thread.participants,
                )
        });
        if !unchanged && thread.is_empty() {
            // No message left: no thread state either, as the reaction keeps it.
            if let Some(was) = &thread_was {
                ports
                    .tables
                    .delete(
                        &cfg.state_table,
                        &state_key(&was.pk, &was.sk),
                        Some(&state_version(thread_version)),
                    )
                    .await?;
                fixed_state += 1;
            }
        } else if !unchanged {
            thread.version = thread_version + 1;
            ports
                .tables
                .put(
                    &cfg.state_table,
                    to_item(&thread)?,
                    Some(&state_version(thread_version)),
                )
                .await?;
            fixed_state += 1;
        }

        let stored_stats = stored.clone().unwrap_or_default();
        let computed = stored_stats.following(&thread);
        let fixed_aggregate = stored.as_ref() != Some(&computed);
        if fixed_aggregate {
            let (update, condition) = computed.update(stored_stats.stats_version);
            ports
                .tables
                .update(
                    &cfg.threads_table,
                    &self.thread_key(conversation),
                    &update,
                    Some(&condition),
                )
                .await?;
        }
        Ok(Reconciled {
            aggregate: conversation.to_string(),
            stored: stored.map(|s| s.figures()),
            computed: computed.figures(),
            fixed_aggregate,
            fixed_state,
        })
    }
}

//! The ACS email platform (`deploy/tables/acsd2p-dev-Threads.json`): thread statistics kept in step with
//! the conversations. (Session expiry is audited by the audit reaction's configuration.)
//!
//! `thread-stats` keeps a thread's `message_count`, `last_message_at` and `participants` (the
//! addresses the application listed, then every sender and recipient of the messages in order
//! of first appearance, each once; an address leaves with its last message) at a cost that
//! follows the change, not the conversation's length. It does not read the conversation: the
//! worker keeps an item per message and one per thread in its own aggregate-state table
//! ([`message_states`]), and a change moves the thread's figures by what it takes out and puts
//! in. A window's messages are folded at once: one BatchGetItem for the state this process
//! does not remember (`known_threads`, `known_messages`; a new message is taken as new), with the threads' items,
//! whose application-listed participants it keeps first, then one TransactWriteItems with
//! every changed state item and thread, each conditional on the version read or remembered, so
//! a concurrent worker's write makes it read and fold again rather than lose an update.
//! Each message's state carries the stream sequence number of its change, so a change delivered
//! again changes nothing. `reconcile threads` rebuilds both from the Conversations table.

pub mod message_states;
mod thread_reconcile;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::SecondsFormat;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;

use super::bounded_memory::BoundedMemory;
use super::contract::{Idempotency, Reacted, Reaction};
use super::folding::{
    aggregate_version, fold_window, next_aggregate_version, only, put_changed_states, put_state,
    read_all, state_key, state_version, FoldRules, ItemKey,
};
use crate::attribute_names::AttributeNames;
use crate::change::Change;
use crate::error::ReactionError;
use crate::item::{from_item, get_str, number, string_key, AttributeValue, Item};
use crate::ports::{Condition, Ports, TransactItem, Update};
use crate::sequence_number::SequenceNumber;
use crate::settings::{ConfigError, Settings};
use message_states::{Folded, MessageState, ThreadState, THREAD_SORT_KEY};
pub use thread_reconcile::RECONCILE;

#[derive(Debug, Clone)]
pub struct ThreadsConfig {
    pub conversations_table: String,
    pub threads_table: String,
    /// The worker's own table of message and thread state ([`message_states`]).
    pub state_table: String,
    /// The application's names of a message's attributes ([`MESSAGE_ATTRIBUTES`]) and of the
    /// threads table's key (`thread.conversation_id`).
    pub names: AttributeNames,
}

/// What the statistics read of a message, by the seed's names; `thread.conversation_id` is the
/// threads table's key.
pub const MESSAGE_ATTRIBUTES: &[&str] = &[
    "conversation_id",
    "response_id",
    "sender_email",
    "recipient_email",
    "timestamp",
    "thread.conversation_id",
];

impl ThreadsConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(ThreadsConfig {
            conversations_table: s.table("ACS_CONVERSATIONS_TABLE"),
            threads_table: s.table("ACS_THREADS_TABLE"),
            state_table: s.table("AGGREGATE_STATE_TABLE"),
            names: s.attribute_names("thread-stats", MESSAGE_ATTRIBUTES)?,
        })
    }

    /// A message's conversation and response ids, by the application's names.
    fn ids<'a>(&self, image: &'a Item) -> (Option<&'a str>, Option<&'a str>) {
        (
            self.names.text(image, "conversation_id"),
            self.names.text(image, "response_id"),
        )
    }
}

/// One message of a conversation, the fields the statistics use.
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub sender_email: Option<String>,
    #[serde(default)]
    pub recipient_email: Option<String>,
    /// Text or epoch numbers, compared as instants.
    #[serde(default, deserialize_with = "number::text_or_number")]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub response_id: Option<String>,
}

/// A thread's statistics, as stored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
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

impl ThreadStats {
    /// The figures `thread` gives, with the participants the application listed kept first.
    fn following(&self, thread: &ThreadState) -> ThreadStats {
        let listed: Vec<String> = self
            .participants
            .iter()
            .filter(|p| !self.message_participants.contains(p))
            .cloned()
            .collect();
        let from_messages: Vec<String> = thread
            .participants_in_order()
            .into_iter()
            .filter(|p| !listed.contains(p))
            .collect();
        ThreadStats {
            message_count: Some(Decimal::from(thread.message_count)),
            last_message_at: thread.last_message_at.clone(),
            participants: listed.into_iter().chain(from_messages.clone()).collect(),
            message_participants: from_messages,
            stats_version: self.stats_version,
        }
    }

    /// These figures as an update of the thread, on condition of the `stats_version` read.
    fn update(&self, version: Option<Decimal>) -> (Update, Condition) {
        let list =
            |l: &[String]| AttributeValue::L(l.iter().cloned().map(AttributeValue::S).collect());
        let count = self
            .message_count
            .unwrap_or_default()
            .normalize()
            .to_string();
        let (condition, next) = aggregate_version("stats_version", version);
        let update = Update::default()
            .set("message_count", AttributeValue::N(count))
            .set("participants", list(&self.participants))
            .set("message_participants", list(&self.message_participants))
            .set("stats_version", next);
        let update = match &self.last_message_at {
            Some(last) => update.set("last_message_at", AttributeValue::S(last.clone())),
            None => update.remove("last_message_at"),
        };
        (update, condition)
    }

    fn figures(&self) -> serde_json::Value {
        json!({
            "message_count": self.message_count.unwrap_or_default().to_string(),
            "last_message_at": self.last_message_at,
            "participants": self.participants,
        })
    }
}

pub struct ThreadStatistics {
    config: ThreadsConfig,
    /// Threads (their state and their item's figures) and messages as this process last read
    /// or wrote them, so that a window need not read them first (`FoldRules::remember`).
    known_threads: BoundedMemory<String, KnownThread>,
    known_messages: BoundedMemory<(String, String), MessageState>,
}

/// A thread as stored: its state item, and the figures of its item in the Threads table.
#[derive(Debug, Clone)]
struct KnownThread {
    state: ThreadState,
    stored: Option<ThreadStats>,
}

/// Bounds of what a process remembers (a full memory is emptied and starts again).
const KNOWN_THREADS: usize = 10_000;
const KNOWN_MESSAGES: usize = 20_000;

/// A message change, as the thread state sees it.
pub(crate) struct MessageChange<'a> {
    change: &'a Change,
    conversation: String,
    response_id: String,
    /// The message after the change; None when removed.
    now: Option<Message>,
    /// Why the new image is not a message the worker can read. Such a change fails (and is
    /// parked), unless the message's state is already at a later change: then it is one the
    /// application has fixed since, and is done.
    unreadable: Option<String>,
}

/// What folding one change did.
pub(crate) enum FoldedChange {
    Changed {
        /// The state did not know the message the change takes out.
        unknown: bool,
    },
    /// The message's state is already at this change or a later one.
    Stale,
    /// Not a message the worker can read (and not stale): why.
    Unreadable(String),
}

/// A window's threads as read, then as folded.
#[derive(Default)]
pub(crate) struct Folding {
    threads: BTreeMap<String, ThreadState>,
    messages: HashMap<(String, String), MessageState>,
    stored: BTreeMap<String, ThreadStats>,
    changed_messages: BTreeSet<(String, String)>,
    /// Threads with a changed message, with the time of the last such change: their figures
    /// are compared with the thread's item.
    changed_threads: BTreeMap<String, chrono::DateTime<chrono::Utc>>,
    /// Threads whose state a change moved (not only a message's: [`Folded::MessageOnly`]):
    /// their state item is written.
    moved_threads: BTreeSet<String>,
    rebuild: BTreeSet<String>,
    /// Each thread's figures as folded (`ThreadStats::following`), made once by `complete`
    /// for `writes`, `remember` and `results`.
    figures: BTreeMap<String, ThreadStats>,
}

impl Folding {
    /// `conversation`'s figures as folded, `thread` being its state.
    fn figures(&self, conversation: &str, thread: &ThreadState) -> Cow<'_, ThreadStats> {
        match self.figures.get(conversation) {
            Some(figures) => Cow::Borrowed(figures),
            None => Cow::Owned(self.stored_or_none(conversation).following(thread)),
        }
    }

    /// `conversation`'s figures as stored (none stored: all empty).
    fn stored_or_none(&self, conversation: &str) -> Cow<'_, ThreadStats> {
        self.stored
            .get(conversation)
            .map_or_else(|| Cow::Owned(ThreadStats::default()), Cow::Borrowed)
    }
}

impl ThreadStatistics {
    pub fn new(config: ThreadsConfig) -> Self {
        ThreadStatistics {
            config,
            known_threads: BoundedMemory::new(KNOWN_THREADS),
            known_messages: BoundedMemory::new(KNOWN_MESSAGES),
        }
    }

    pub fn config(&self) -> &ThreadsConfig {
        &self.config
    }

    fn thread_key(&self, conversation: &str) -> Item {
        string_key(&[(self.config.names.of("thread.conversation_id"), conversation)])
    }

    /// A thread's message items, by response id.
    async fn stored_messages(
        &self,
        conversation: &str,
        ports: Ports<'_>,
    ) -> Result<BTreeMap<String, MessageState>, ReactionError> {
        let items = ports
            .tables
            .query(&crate::ports::Query {
                table: self.config.state_table.clone(),
                index: None,
                partition: (
                    "pk".into(),
                    AttributeValue::S(message_states::partition(conversation)),
                ),
                sort_key: Some((
                    "sk".into(),
                    crate::ports::SortKey::BeginsWith("MESSAGE#".into()),
                )),
                ascending: true,
            })
            .await?;
        items
            .into_iter()
            .map(|item| {
                let message: MessageState =
                    from_item(item, &format!("{} message state", self.config.state_table))?;
                Ok((message.response_id().to_string(), message))
            })
            .collect()
    }

    /// The attributes a readable message lacks, by the application's names: without a sender
    /// and a recipient the participants cannot follow it, without a time `last_message_at`.
    fn unread(&self, message: &Message) -> Vec<String> {
        let names = &self.config.names;
        let mut unread = Vec::new();
        if message.sender_email.is_none() && message.recipient_email.is_none() {
            unread.push(names.of("sender_email").to_string());
            unread.push(names.of("recipient_email").to_string());
        }
        if message.timestamp.is_none() {
            unread.push(names.of("timestamp").to_string());
        }
        unread
    }
}

#[async_trait]
impl<'c> FoldRules<'c> for ThreadStatistics {
    type Seen = MessageChange<'c>;
    type State = Folding;
    type Folded = FoldedChange;

    const CONTESTED: &'static str = "a thread of this window";

    fn see(&self, change: &'c Change) -> Result<MessageChange<'c>, ReactionError> {
        let what = change.named_as(&self.config.conversations_table, "message");
        let names = &self.config.names;
        let (conversation, response_id) = self.config.ids(change.latest_image());
        let conversation = conversation.unwrap_or_default().to_string();
        let response_id = response_id
            .or_else(|| self.config.ids(&change.keys).1)
            .ok_or_else(|| ReactionError::BadItem {
                what: what.to_string(),
                message: format!("no {}", names.of("response_id")),
            })?
            .to_string();
        let (now, unreadable) = match change
            .new
            .as_ref()
            .map(|item| from_item::<Message>(names.project(item), &what))
        {
            Some(Err(e)) => (None, Some(e.to_string())),
            read => (read.and_then(Result::ok), None),
        };
        Ok(MessageChange {
            change,
            conversation,
            response_id,
            now,
            unreadable,
        })
    }

    fn keys_of(&self, c: &MessageChange<'_>) -> Vec<ItemKey<'_>> {
        // The message's state, the thread's state and the thread's item.
        let (state, thread) = (
            self.config.state_table.as_str(),
            message_states::partition(&c.conversation),
        );
        vec![
            ItemKey::state(
                state,
                &thread,
                &message_states::message_sort_key(&c.response_id),
            ),
            ItemKey::state(state, &thread, THREAD_SORT_KEY),
            ItemKey::partition_only(
                self.config.threads_table.as_str(),
                self.thread_key(&c.conversation),
            ),
        ]
    }

    /// Reads the state of `changes`' messages and threads, and the threads' items, at once.
    ///
    /// Not read: threads and messages this process remembers, and, on the first attempt
    /// (`fresh` false), a message the window's changes only insert, taken as new. Each is
    /// written on the condition of the version assumed (a new message's: that it does not
    /// exist), so a stale assumption fails the transaction whole and the window is read again.
    async fn read(
        &self,
        changes: &[MessageChange<'c>],
        fresh: bool,
        ports: Ports<'_>,
    ) -> Result<Folding, ReactionError> {
        let cfg = &self.config;
        let mut folding = Folding::default();
        let conversations: BTreeSet<&String> = changes.iter().map(|c| &c.conversation).collect();
        // Each message of the window, and whether its changes only insert it (readably).
        let mut message_keys: BTreeMap<(&String, &String), bool> = BTreeMap::new();
        for c in changes {
            let inserts = c.change.old.is_none() && c.unreadable.is_none();
            *message_keys
                .entry((&c.conversation, &c.response_id))
                .or_insert(true) &= inserts;
        }
        let mut state_keys = Vec::new();
        let mut thread_keys = Vec::new();
        for &conversation in &conversations {
            match self.known_threads.take(conversation).filter(|_| !fresh) {
                Some(known) => {
                    folding.threads.insert(conversation.clone(), known.state);
                    if let Some(stored) = known.stored {
                        folding.stored.insert(conversation.clone(), stored);
                    }
                }
                None => {
                    let partition = message_states::partition(conversation);
                    state_keys.push(state_key(&partition, THREAD_SORT_KEY));
                    thread_keys.push(self.thread_key(conversation));
                }
            }
        }
        for (&(conversation, response_id), &only_inserted) in &message_keys {
            let key = (conversation.clone(), response_id.clone());
            if let Some(known) = self.known_messages.take(&key).filter(|_| !fresh) {
                folding.messages.insert(key, known);
                continue;
            }
            if fresh || !only_inserted {
                state_keys.push(state_key(
                    &message_states::partition(conversation),
                    &message_states::message_sort_key(response_id),
                ));
            }
        }
        let (state, threads) = futures::future::try_join(
            read_all(ports, &cfg.state_table, state_keys),
            read_all(ports, &cfg.threads_table, thread_keys),
        )
        .await?;
        for item in state {
            let what = format!("{} thread state", cfg.state_table);
            let conversation = get_str(&item, "pk")
                .and_then(|pk| pk.strip_prefix("THREAD#"))
                .unwrap_or_default()
                .to_string();
            if get_str(&item, "sk") == Some(THREAD_SORT_KEY) {
                folding
                    .threads
                    .insert(conversation, from_item(item, &what)?);
            } else {
                let message: MessageState = from_item(item, &what)?;
                let response_id = message.response_id().to_string();
                folding
                    .messages
                    .insert((conversation, response_id), message);
            }
        }
        for item in threads {
            let conversation = cfg
                .names
                .text(&item, "thread.conversation_id")
                .unwrap_or_default()
                .to_string();
            let what = format!("{} {conversation}", cfg.threads_table);
            folding.stored.insert(conversation, from_item(item, &what)?);
        }
        for conversation in conversations {
            folding
                .threads
                .entry(conversation.clone())
                .or_insert_with(|| ThreadState::empty(conversation));
        }
        for (conversation, response_id) in message_keys.into_keys() {
            folding
                .messages
                .entry((conversation.clone(), response_id.clone()))
                .or_insert_with(|| MessageState::unseen(conversation, response_id));
        }
        Ok(folding)
    }

    /// Folds one change; returns whether it was stale and whether the state did not know the
    /// message it changes.
    fn fold(&self, folding: &mut Folding, change: &MessageChange<'_>) -> FoldedChange {
        let key = (change.conversation.clone(), change.response_id.clone());
        let (Some(thread), Some(message)) = (
            folding.threads.get_mut(&change.conversation),
            folding.messages.get_mut(&key),
        ) else {
            return FoldedChange::Stale;
        };
        let stale = !message.sequence_number.is_empty()
            && SequenceNumber(&message.sequence_number)
                >= SequenceNumber(&change.change.sequence_number);
        if stale {
            return FoldedChange::Stale;
        }
        if let Some(why) = &change.unreadable {
            return FoldedChange::Unreadable(why.clone());
        }
        let unknown = message.sequence_number.is_empty() && change.change.old.is_some();
        let at = change.change.approximate_creation;
        let folded = thread.fold(
            message,
            &change.change.sequence_number,
            change.now.as_ref(),
            at.timestamp(),
        );
        match folded {
            Folded::Stale => return FoldedChange::Stale,
            Folded::MessageOnly => {}
            Folded::Figures { rebuild } => {
                if rebuild {
                    folding.rebuild.insert(change.conversation.clone());
                }
                folding.moved_threads.insert(change.conversation.clone());
            }
        }
        folding.changed_messages.insert(key);
        folding
            .changed_threads
            .insert(change.conversation.clone(), at);
        FoldedChange::Changed { unknown }
    }

    /// Rebuilds the threads whose latest message or a participant's first was taken out, from
    /// their message items (those of this window as folded).
    async fn complete(&self, folding: &mut Folding, ports: Ports<'_>) -> Result<(), ReactionError> {
        for conversation in std::mem::take(&mut folding.rebuild) {
            let mut messages = self.stored_messages(&conversation, ports).await?;
            for ((c, response_id), message) in &folding.messages {
                if *c == conversation {
                    messages.insert(response_id.clone(), message.clone());
                }
            }
            if let Some(thread) = folding.threads.get_mut(&conversation) {
                thread.rebuild(messages.values());
            }
        }
        folding.figures = (folding.threads.iter())
            .map(|(conversation, thread)| {
                let figures = folding.stored_or_none(conversation).following(thread);
                (conversation.clone(), figures)
            })
            .collect();
        Ok(())
    }

    /// The writes of a folded segment, on condition of the versions read.
    fn writes(&self, folded: &Folding) -> Result<Vec<TransactItem>, ReactionError> {
        let cfg = &self.config;
        let mut writes = put_changed_states(
            &cfg.state_table,
            &folded.changed_messages,
            &folded.messages,
            |message| message.version,
        )?;
        for (conversation, at) in &folded.changed_threads {
            let Some(thread) = folded.threads.get(conversation) else {
                continue;
            };
            // A thread whose state no change moved keeps it as read; its figures are still
            // compared with its item below.
            let (moved, was) = (folded.moved_threads.contains(conversation), thread.version);
            if moved && thread.is_empty() && was > 0 {
                // No message left: no thread state either (its messages' items guard them).
                writes.push(TransactItem::Delete {
                    table: cfg.state_table.clone(),
                    key: state_key(&thread.pk, &thread.sk),
                    condition: Some(state_version(was)),
                });
            } else if moved && !thread.is_empty() {
                writes.push(put_state(&cfg.state_table, thread, was)?);
            }
            let stored = folded.stored_or_none(conversation);
            let now = folded.figures(conversation, thread);
            if *now == *stored {
                continue;
            }
            let (update, condition) = now.update(stored.stats_version);
            // `updated_at` is the application's (the seed's thread metadata); the worker dates
            // its own figures, from the change's time.
            let update = update.set(
                "stats_updated_at",
                AttributeValue::S(at.to_rfc3339_opts(SecondsFormat::Secs, true)),
            );
            writes.push(TransactItem::Update {
                table: cfg.threads_table.clone(),
                key: self.thread_key(conversation),
                update,
                condition: Some(condition),
            });
        }
        Ok(writes)
    }

    /// Remembers a window's threads and messages as `writes` stored them (so that a window need
    /// not read them first; a stale entry costs a failed condition and a read): a written state
    /// at the next version, a thread's figures as `following` made them.
    fn remember(&self, folded: Folding) {
        let Folding {
            threads,
            messages,
            mut stored,
            changed_messages,
            changed_threads,
            moved_threads,
            mut figures,
            ..
        } = folded;
        self.known_messages
            .remember(messages.into_iter().map(|(key, mut message)| {
                if changed_messages.contains(&key) {
                    message.version += 1;
                }
                (key, Some(message))
            }));
        self.known_threads
            .remember(threads.into_iter().map(|(conversation, mut thread)| {
                let stored = stored.remove(&conversation);
                if !changed_threads.contains_key(&conversation) {
                    let known = KnownThread {
                        state: thread,
                        stored,
                    };
                    return (conversation, Some(known));
                }
                // A thread left without messages was deleted (or never written): read it again.
                if thread.is_empty() {
                    return (conversation, None);
                }
                let stored = stored.unwrap_or_default();
                let mut now =
                    (figures.remove(&conversation)).unwrap_or_else(|| stored.following(&thread));
                if now != stored {
                    now.stats_version = Some(next_aggregate_version(stored.stats_version));
                }
                if moved_threads.contains(&conversation) {
                    thread.version += 1;
                }
                let known = KnownThread {
                    state: thread,
                    stored: Some(now),
                };
                (conversation, Some(known))
            }));
    }

    /// Forgets a window whose write failed: what it assumed is not known as stored.
    fn forget(&self, folded: &Folding) {
        self.known_messages
            .remember(folded.messages.keys().map(|key| (key.clone(), None)));
        self.known_threads
            .remember(folded.threads.keys().map(|c| (c.clone(), None)));
    }

    fn results(
        &self,
        folded: &Folding,
        changes: &[MessageChange<'_>],
        done: Vec<FoldedChange>,
    ) -> Vec<Result<serde_json::Value, ReactionError>> {
        changes
            .iter()
            .zip(&done)
            .map(|(change, seen)| {
                let (stale, unknown) = match seen {
                    FoldedChange::Stale => (true, false),
                    FoldedChange::Changed { unknown } => (false, *unknown),
                    FoldedChange::Unreadable(why) => {
                        return Err(ReactionError::BadItem {
                            what: change.change.named_as(&self.config.conversations_table, "message").to_string(),
                            message: why.clone(),
                        })
                    }
                };
                let conversation = &change.conversation;
                let figures = folded
                    .threads
                    .get(conversation)
                    .map(|thread| folded.figures(conversation, thread).figures())
                    .unwrap_or_default();
                let mut result = json!({ conversation.as_str(): figures });
                if stale {
                    result["alreadyApplied"] = json!(true);
                }
                let unread = change.now.as_ref().map(|m| self.unread(m)).unwrap_or_default();
                if !unread.is_empty() {
                    tracing::warn!(%conversation, response_id = %change.response_id, attributes = ?unread, "the message lacks attributes the statistics read (set ATTRIBUTE_NAMES if the application names them otherwise)");
                    result["unread"] = json!(unread);
                }
                if unknown {
                    tracing::warn!(%conversation, response_id = %change.response_id, "the message changed was not known to the worker's state (written before the worker kept it, or without a stream record): run `reconcile threads --conversation {conversation}`");
                    result["notInState"] = json!(format!(
                        "message {} was not known to {}: run `reconcile threads --conversation {conversation}`",
                        change.response_id, self.config.state_table
                    ));
                }
                Ok(result)
            })
            .collect()
    }
}

#[async_trait]
impl Reaction for ThreadStatistics {
    fn name(&self) -> &'static str {
        "thread-stats"
    }

    /// A change delivered again finds its message's state already at it.
    fn idempotency(&self) -> Idempotency {
        Idempotency::ByConstruction
    }

    fn applies(&self, change: &Change) -> bool {
        change.table == self.config.conversations_table
            && self.config.ids(change.latest_image()).0.is_some()
    }

    fn folds_windows(&self) -> bool {
        true
    }

    async fn react(&self, change: &Change, ports: Ports<'_>) -> Result<Reacted, ReactionError> {
        only(self.react_window(&[change], ports).await, change)
    }

    async fn react_window(
        &self,
        changes: &[&Change],
        ports: Ports<'_>,
    ) -> Vec<Result<Reacted, ReactionError>> {
        fold_window(self, changes, ports).await
    }
}

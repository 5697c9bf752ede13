//! The worker's own record of a conversation's messages, behind the incremental thread
//! statistics: one item per message (where it stands in the thread, who wrote to whom, and the
//! stream sequence number of the change it comes from) and one per thread (the count, the latest
//! time, and per participant how many of the messages name them and where they first appear).
//!
//! A message change moves the thread's figures by what it takes out and puts in. Only taking
//! out the thread's latest message, or a participant's first, needs more than the change: then
//! the thread is rebuilt from its message items (this table's, one Query), which hold the same
//! point of the stream as the figures, never from the Conversations table, which may already
//! be ahead of it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Message;
use crate::item::number;
use crate::reactions::folding::REMOVED_KEPT_SECONDS;
use crate::sequence_number::SequenceNumber;

/// The state items' partition key: a thread's items together.
pub fn partition(conversation: &str) -> String {
    format!("THREAD#{conversation}")
}

pub const THREAD_SORT_KEY: &str = "STATS";

pub fn message_sort_key(response_id: &str) -> String {
    format!("MESSAGE#{response_id}")
}

/// Where an address appears: its message's time and response id, then sender (0) before
/// recipient (1). The thread's participants are listed in this order of first appearance;
/// times compare as instants ([`crate::instant`]), whatever form each message's is in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    pub response_id: String,
    #[serde(with = "number::int")]
    pub role: i64,
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let time = match (&self.timestamp, &other.timestamp) {
            (Some(a), Some(b)) => crate::instant::compare(a, b),
            (a, b) => a.is_some().cmp(&b.is_some()),
        };
        time.then_with(|| self.response_id.cmp(&other.response_id))
            .then_with(|| self.role.cmp(&other.role))
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One message as the worker last saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageState {
    pub pk: String,
    pub sk: String,
    /// The stream sequence number of the change this state comes from; empty: never seen.
    #[serde(default)]
    pub sequence_number: String,
    #[serde(default)]
    pub present: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_email: Option<String>,
    #[serde(default, with = "number::int")]
    pub version: i64,
    /// Set once the message is removed (TTL, epoch seconds): it is then only a guard.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "number::option_int"
    )]
    pub ttl: Option<i64>,
}

impl MessageState {
    pub fn unseen(conversation: &str, response_id: &str) -> MessageState {
        MessageState {
            pk: partition(conversation),
            sk: message_sort_key(response_id),
            ..MessageState::default()
        }
    }

    pub fn response_id(&self) -> &str {
        self.sk.strip_prefix("MESSAGE#").unwrap_or(&self.sk)
    }

    /// The addresses the message names, with where: sender first.
    pub fn appearances(&self) -> Vec<(String, Position)> {
        if !self.present {
            return Vec::new();
        }
        [(0, &self.sender_email), (1, &self.recipient_email)]
            .into_iter()
            .filter_map(|(role, address)| {
                let address = address.as_deref().filter(|a| !a.is_empty())?;
                let at = Position {
                    timestamp: self.timestamp.clone(),
                    response_id: self.response_id().to_string(),
                    role,
                };
                Some((address.to_string(), at))
            })
            .collect()
    }
}

/// A participant: how many appearances the present messages give them, and the first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    #[serde(with = "number::int")]
    pub appearances: i64,
    pub first: Position,
}

/// A thread's figures as the worker keeps them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadState {
    pub pk: String,
    pub sk: String,
    #[serde(default, with = "number::int")]
    pub message_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message_at: Option<String>,
    #[serde(default)]
    pub participants: BTreeMap<String, Participant>,
    #[serde(default, with = "number::int")]
    pub version: i64,
}

/// What folding a change into a thread did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folded {
    /// The message's state is already at this change or a later one.
    Stale,
    /// The message's state moved to the change, the thread's figures did not: the message was
    /// and is present with the same sender, recipient and time (an edit of its text or its
    /// status), so taking it out and putting it in again would give them back as they were.
    MessageOnly,
    /// The figures moved too; `rebuild`: they must be rebuilt from the thread's messages (its
    /// latest message or a participant's first was taken out).
    Figures { rebuild: bool },
}

impl ThreadState {
    pub fn empty(conversation: &str) -> ThreadState {
        ThreadState {
            pk: partition(conversation),
            sk: THREAD_SORT_KEY.to_string(),
            ..ThreadState::default()
        }
    }

    /// No message is present.
    pub fn is_empty(&self) -> bool {
        self.message_count == 0 && self.participants.is_empty() && self.last_message_at.is_none()
    }

    /// Folds the message's change (`now`: its state after, None when removed) into `message`
    /// and the figures.
    pub fn fold(
        &mut self,
        message: &mut MessageState,
        sequence_number: &str,
        now: Option<&Message>,
        record_time_seconds: i64,
    ) -> Folded {
        if !message.sequence_number.is_empty()
            && SequenceNumber(&message.sequence_number) >= SequenceNumber(sequence_number)
        {
            return Folded::Stale;
        }
        let figures_stay = message.present
            && now.is_some_and(|now| {
                now.timestamp == message.timestamp
                    && now.sender_email == message.sender_email
                    && now.recipient_email == message.recipient_email
            });
        if figures_stay {
            message.sequence_number = sequence_number.to_string();
            message.ttl = None;
            return Folded::MessageOnly;
        }
        let mut rebuild = false;
        if message.present {
            self.message_count -= 1;
            rebuild |= message.timestamp.is_some() && message.timestamp == self.last_message_at;
            for (address, at) in message.appearances() {
                let Some(participant) = self.participants.get_mut(&address) else {
                    rebuild = true;
                    continue;
                };
                participant.appearances -= 1;
                if participant.appearances <= 0 {
                    self.participants.remove(&address);
                } else if participant.first == at {
                    rebuild = true;
                }
            }
        }
        message.sequence_number = sequence_number.to_string();
        message.present = now.is_some();
        if let Some(now) = now {
            message.timestamp = now.timestamp.clone();
            message.sender_email = now.sender_email.clone();
            message.recipient_email = now.recipient_email.clone();
        }
        message.ttl = match message.present {
            true => None,
            false => Some(record_time_seconds + REMOVED_KEPT_SECONDS),
        };
        if message.present {
            self.add(message);
        }
        Folded::Figures { rebuild }
    }

    fn add(&mut self, message: &MessageState) {
        self.message_count += 1;
        // The latest as an instant: applications write times in several forms.
        self.last_message_at =
            crate::instant::later(self.last_message_at.clone(), message.timestamp.clone());
        for (address, at) in message.appearances() {
            let participant = self
                .participants
                .entry(address)
                .or_insert_with(|| Participant {
                    appearances: 0,
                    first: at.clone(),
                });
            participant.appearances += 1;
            participant.first = participant.first.clone().min(at);
        }
    }

    /// The figures again from every message of the thread.
    pub fn rebuild<'a>(&mut self, messages: impl IntoIterator<Item = &'a MessageState>) {
        self.message_count = 0;
        self.last_message_at = None;
        self.participants.clear();
        for message in messages.into_iter().filter(|m| m.present) {
            self.add(message);
        }
    }

    /// The participants the messages name, in order of first appearance.
    pub fn participants_in_order(&self) -> Vec<String> {
        let mut in_order: Vec<(&Position, &String)> = self
            .participants
            .iter()
            .map(|(address, p)| (&p.first, address))
            .collect();
        in_order.sort();
        in_order.into_iter().map(|(_, a)| a.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(at: &str, from: &str, to: &str) -> Message {
        Message {
            sender_email: Some(from.into()),
            recipient_email: Some(to.into()),
            timestamp: Some(at.into()),
            response_id: None,
        }
    }

    #[test]
    fn taking_out_the_latest_message_asks_for_a_rebuild_and_a_repeat_changes_nothing() {
        let mut thread = ThreadState::empty("c");
        let mut m1 = MessageState::unseen("c", "r1");
        let mut m2 = MessageState::unseen("c", "r2");
        thread.fold(&mut m1, "1", Some(&message("09:00", "a@x.io", "b@x.io")), 0);
        thread.fold(&mut m2, "2", Some(&message("10:00", "b@x.io", "c@x.io")), 0);
        assert_eq!(thread.message_count, 2);
        assert_eq!(thread.last_message_at.as_deref(), Some("10:00"));
        assert_eq!(
            thread.participants_in_order(),
            ["a@x.io", "b@x.io", "c@x.io"]
        );
        assert_eq!(
            thread.fold(&mut m1, "1", Some(&message("09:00", "a@x.io", "b@x.io")), 0),
            Folded::Stale
        );
        // c leaves with their only message; the latest goes, so the thread is rebuilt.
        assert_eq!(
            thread.fold(&mut m2, "3", None, 0),
            Folded::Figures { rebuild: true }
        );
        thread.rebuild([&m1, &m2]);
        assert_eq!(thread.message_count, 1);
        assert_eq!(thread.last_message_at.as_deref(), Some("09:00"));
        assert_eq!(thread.participants_in_order(), ["a@x.io", "b@x.io"]);
        assert_eq!(m2.ttl, Some(REMOVED_KEPT_SECONDS));
    }

    #[test]
    fn an_edit_that_keeps_sender_recipient_and_time_leaves_the_figures() {
        let mut thread = ThreadState::empty("c");
        let mut m1 = MessageState::unseen("c", "r1");
        thread.fold(&mut m1, "1", Some(&message("09:00", "a@x.io", "b@x.io")), 0);
        let figures = thread.clone();
        assert_eq!(
            thread.fold(&mut m1, "2", Some(&message("09:00", "a@x.io", "b@x.io")), 0),
            Folded::MessageOnly
        );
        assert_eq!(thread, figures);
        assert_eq!(m1.sequence_number, "2");
        // Another recipient moves the figures.
        assert_eq!(
            thread.fold(&mut m1, "3", Some(&message("09:00", "a@x.io", "c@x.io")), 0),
            Folded::Figures { rebuild: true }
        );
        assert_eq!(thread.participants_in_order(), ["a@x.io", "c@x.io"]);
    }
}

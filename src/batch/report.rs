//! What a batch reports: per reaction ([`Outcome`], [`ReactionReport`]), per record
//! ([`RecordReport`]), the record it stopped at ([`RecordFailure`]) and the whole
//! ([`BatchOutcome`]). The CLI prints these and Lambda's response is built from them.

use aws_lambda_events::event::streams::DynamoDbEventResponse;
use handlers::Item;
use serde::Serialize;
use thiserror::Error;

use super::effects::{self, Effect};
use super::request_count::RequestCounts;
use crate::decode::StreamRecord;
/// What one reaction did with one record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Done {
        result: serde_json::Value,
    },
    DuplicateSkipped {
        result: serde_json::Value,
    },
    NotApplicable,
    /// It ran, but left out data it could not use, or lacked an attribute it reads
    /// (`skipped`, `unread` in its result, named there and at WARN).
    Skipped {
        result: serde_json::Value,
    },
    /// It ran, but no mail went out (no address, notifications off, an address the mail
    /// rules refuse): the result says why.
    NotSent {
        result: serde_json::Value,
    },
    /// A later record of this batch changes the same thing; the reaction runs once, there.
    Coalesced {
        into_record: usize,
    },
    Failed {
        reason: String,
        retryable: bool,
        /// Another invocation holds the record's idempotency lock (a duplicate delivery at
        /// the same time, or a crashed one whose lock has not expired).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        in_progress: bool,
    },
    /// Not retryable: the record was kept whole at `location`, and the batch went on.
    Parked {
        reason: String,
        location: String,
        /// The reaction panicked on the record (a bug, caught at the reaction's boundary).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        panicked: bool,
    },
}

impl Outcome {
    /// The outcome of a reaction that ran to the end with `result`, which `left_out` data it
    /// could not use or read: done, or done in part (what it skipped or could not send), so
    /// that no report reads "done" for it.
    pub fn completed(result: serde_json::Value, left_out: bool) -> Outcome {
        if handlers::mail::not_sent(&result).is_some() {
            Outcome::NotSent { result }
        } else if left_out {
            Outcome::Skipped { result }
        } else {
            Outcome::Done { result }
        }
    }

    /// How a completed outcome reads in the log (its name in reports).
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Skipped { .. } => "skipped",
            Outcome::NotSent { .. } => "not_sent",
            _ => "done",
        }
    }
}

/// The records of a batch that did not simply end "done": parked, with data skipped, or with
/// mail not sent (a record counts once, by the first of these that applies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotDone {
    pub parked: usize,
    pub skipped: usize,
    pub not_sent: usize,
}

impl std::ops::AddAssign for NotDone {
    fn add_assign(&mut self, other: NotDone) {
        self.parked += other.parked;
        self.skipped += other.skipped;
        self.not_sent += other.not_sent;
    }
}

impl NotDone {
    pub fn add(&mut self, report: &RecordReport) {
        let has = |f: fn(&Outcome) -> bool| report.reactions.iter().any(|r| f(&r.outcome));
        if has(|o| matches!(o, Outcome::Parked { .. })) {
            self.parked += 1;
        } else if has(|o| matches!(o, Outcome::Skipped { .. })) {
            self.skipped += 1;
        } else if has(|o| matches!(o, Outcome::NotSent { .. })) {
            self.not_sent += 1;
        }
    }

    /// `done` when nothing is counted; otherwise what is, first of parked, skipped, not sent.
    pub fn outcome(&self) -> &'static str {
        match (self.parked, self.skipped, self.not_sent) {
            (0, 0, 0) => "done",
            (1.., _, _) => "done_with_parked",
            (0, 1.., _) => "done_with_skipped",
            (0, 0, _) => "done_with_not_sent",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReactionReport {
    pub reaction: &'static str,
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<Effect>,
}

/// Everything the batch did with one record.
#[derive(Debug, Clone, Serialize)]
pub struct RecordReport {
    pub index: usize,
    #[serde(rename = "eventID")]
    pub event_id: String,
    #[serde(rename = "eventName")]
    pub event_name: String,
    pub table: String,
    #[serde(serialize_with = "effects::sorted_item")]
    pub keys: Item,
    #[serde(rename = "sequenceNumber")]
    pub sequence_number: String,
    /// The record's own change was applied to the embedded table first.
    pub applied: bool,
    /// It was not, because this very record was applied before: by an earlier replay of the
    /// state, or earlier in this run (a record repeated in the input).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub already_applied: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub applied_earlier_in_this_run: bool,
    pub reactions: Vec<ReactionReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The record the batch stopped at, and why.
#[derive(Debug, Clone, Default, Error, PartialEq)]
#[error("record {index} (event {event_id}, sequence number {sequence_number}) on {table} {keys}: {stage} failed ({}): {message}", if *.retryable { "retryable" } else { "not retryable" })]
pub struct RecordFailure {
    pub index: usize,
    pub event_id: String,
    pub sequence_number: String,
    pub table: String,
    pub keys: String,
    /// The reaction that failed, or `decode` / `apply`.
    pub stage: String,
    pub message: String,
    pub retryable: bool,
}

#[derive(Debug, Clone)]
pub struct BatchOutcome {
    /// Records that settled, i.e. were processed completely.
    pub settled: usize,
    pub failure: Option<RecordFailure>,
    pub response: DynamoDbEventResponse,
    /// DynamoDB requests the batch made, by operation (the apply step of a replay excluded).
    pub requests: RequestCounts,
}

impl RecordReport {
    /// The report of record `index` before anything ran.
    pub(super) fn new(index: usize, record: &StreamRecord) -> Self {
        RecordReport {
            index,
            event_id: record.event_id.clone(),
            event_name: record.event_name.clone(),
            table: record.table.clone(),
            keys: record.keys.clone(),
            sequence_number: record.sequence_number.clone(),
            applied: false,
            already_applied: false,
            applied_earlier_in_this_run: false,
            reactions: Vec::new(),
            error: None,
        }
    }

    /// The failure of this record at `stage` (a reaction, or `decode` / `apply` / `flush` /
    /// `deadline`).
    pub(super) fn failure(&self, stage: &str, message: String, retryable: bool) -> RecordFailure {
        RecordFailure {
            index: self.index,
            event_id: self.event_id.clone(),
            sequence_number: self.sequence_number.clone(),
            table: self.table.clone(),
            keys: handlers::item::describe_keys(&self.keys),
            stage: stage.to_string(),
            message,
            retryable,
        }
    }
}

/// Hand every settled report to the observer, in stream order; returns how many.
pub(super) fn hand_over(
    pending: &mut Vec<RecordReport>,
    on_settled: &mut dyn FnMut(RecordReport),
) -> usize {
    let count = pending.len();
    for report in pending.drain(..) {
        on_settled(report);
    }
    count
}

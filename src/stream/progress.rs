//! What the runner prints per batch: a line for people, or one JSON object with `--json`.

use serde::Serialize;

use crate::batch::NotDone;

/// What happened to one batch (or part of one): a line for people, or JSON with `--json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BatchLine<'a> {
    pub(super) shard: &'a str,
    /// Which of the shard's concurrent deliveries (with a `ParallelizationFactor` above 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) delivery: Option<usize>,
    /// done, failed, bisecting or not delivered (filtered or too old).
    pub(super) outcome: &'a str,
    pub(super) records: usize,
    pub(super) first: &'a str,
    pub(super) last: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) lag_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) attempt: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reason: Option<String>,
    /// When the delivery of a batch that is done started and finished (with `--json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) finished_at: Option<String>,
    /// Of a finished batch, the records not simply done (parked, data skipped, mail not
    /// sent), when there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) not_done: Option<NotDone>,
}

impl<'a> BatchLine<'a> {
    pub(super) fn new(
        shard: &'a str,
        outcome: &'a str,
        records: usize,
        first: &'a str,
        last: &'a str,
    ) -> Self {
        BatchLine {
            shard,
            delivery: None,
            outcome,
            records,
            first,
            last,
            lag_seconds: None,
            attempt: None,
            reason: None,
            started_at: None,
            finished_at: None,
            not_done: None,
        }
    }

    pub(super) fn print(&self, json: bool) {
        if json {
            println!("{}", serde_json::json!(self));
            return;
        }
        let delivery = self
            .delivery
            .map_or(String::new(), |d| format!(" delivery {d}"));
        let mut line = format!(
            "shard {}{delivery}: {} records ({}..{}) {}",
            self.shard, self.records, self.first, self.last, self.outcome
        );
        if let Some(attempt) = self.attempt {
            line += &format!(" (attempt {attempt})");
        }
        if let Some(lag) = self.lag_seconds {
            line += &format!(", lag {lag} s");
        }
        if let Some(n) = &self.not_done {
            line += &format!(
                " ({} parked, {} with data left out, {} without their mail)",
                n.parked, n.skipped, n.not_sent
            );
        }
        if let Some(reason) = &self.reason {
            line += &format!(": {reason}");
        }
        println!("{line}");
    }
}

//! CloudWatch Embedded Metric Format: one JSON line per reaction and one per batch, printed to
//! stdout in Lambda mode, which CloudWatch turns into metrics without any API call.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::batch::{BatchOutcome, Outcome, RecordReport};

pub(super) const NAMESPACE: &str = "ddb-stream-worker";

/// Per-reaction counts over the settled records of a batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct ReactionCounts {
    pub processed: u64,
    pub failed: u64,
    pub duplicates: u64,
    pub parked: u64,
    /// Records parked because the reaction panicked on them (a bug; counted in `parked` too).
    pub panics: u64,
}

/// Collects counts from the reports the batch hands out.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub by_reaction: BTreeMap<&'static str, ReactionCounts>,
}

impl Tally {
    pub(super) fn add(&mut self, report: &RecordReport) {
        for reaction in &report.reactions {
            let counts = self.by_reaction.entry(reaction.reaction).or_default();
            match reaction.outcome {
                Outcome::Done { .. } | Outcome::Coalesced { .. } => counts.processed += 1,
                Outcome::DuplicateSkipped { .. } => counts.duplicates += 1,
                Outcome::Failed { .. } => counts.failed += 1,
                Outcome::Parked { panicked, .. } => {
                    counts.parked += 1;
                    counts.panics += u64::from(panicked);
                }
                Outcome::NotApplicable => {}
            }
        }
    }

    /// The EMF documents for this batch.
    pub(super) fn documents(
        &self,
        records: usize,
        outcome: &BatchOutcome,
        elapsed: Duration,
        now_ms: i64,
    ) -> Vec<Value> {
        let header = |dimensions: Value, metrics: &[(&str, &str)]| {
            json!({
                "Timestamp": now_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": dimensions,
                    "Metrics": metrics.iter().map(|(name, unit)| json!({ "Name": name, "Unit": unit })).collect::<Vec<_>>(),
                }],
            })
        };
        let mut documents: Vec<Value> = self
            .by_reaction
            .iter()
            .map(|(reaction, counts)| {
                json!({
                    "_aws": header(json!([["Reaction"]]), &[("RecordsProcessed", "Count"), ("RecordsFailed", "Count"), ("DuplicatesSkipped", "Count"), ("RecordsParked", "Count"), ("ReactionPanics", "Count")]),
                    "Reaction": reaction,
                    "RecordsProcessed": counts.processed,
                    "RecordsFailed": counts.failed,
                    "DuplicatesSkipped": counts.duplicates,
                    "RecordsParked": counts.parked,
                    "ReactionPanics": counts.panics,
                })
            })
            .collect();
        documents.push(json!({
            "_aws": header(json!([[]]), &[("BatchRecords", "Count"), ("BatchFailures", "Count"), ("BatchDuration", "Milliseconds"), ("DynamoDBRequests", "Count")]),
            "BatchRecords": records,
            "BatchFailures": u8::from(outcome.failure.is_some()),
            "BatchDuration": elapsed.as_secs_f64() * 1000.0,
            "DynamoDBRequests": outcome.requests.values().sum::<u64>(),
            "DynamoDBRequestsByOperation": outcome.requests,
        }));
        documents
    }
}

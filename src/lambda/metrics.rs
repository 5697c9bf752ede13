//! CloudWatch Embedded Metric Format: one JSON line per reaction, one per batch and one per
//! event source of the batch, printed to stdout in Lambda mode, which CloudWatch turns into
//! metrics without any API call. [`EMITTED`] says what the documents hold (namespace,
//! dimension sets, metric names); the documents are built from it, and the deploy template's
//! alarms are checked against it (`tests/deploy_template.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::batch::{BatchOutcome, Outcome, RecordReport};
use crate::decode::StreamRecord;

pub const NAMESPACE: &str = "ddb-stream-worker";

/// The function's name: every metric has it, so two stacks in one account (dev and prod)
/// have series of their own and each stack's alarms watch only its own.
pub const FUNCTION: &str = "Function";
/// The reaction's name (`audit-log`, `provider-rating`, …; `decode` and `apply` for a record
/// no reaction could run on).
pub const REACTION: &str = "Reaction";
/// The table whose stream a batch came from: one per event source mapping.
pub const EVENT_SOURCE: &str = "EventSource";

/// One kind of document: the dimension sets its metrics are published under, and its
/// metrics with their units.
#[derive(Debug)]
pub struct MetricSet {
    pub dimensions: &'static [&'static [&'static str]],
    pub metrics: &'static [(&'static str, &'static str)],
}

/// Per reaction, and summed over the function's reactions.
pub const REACTION_METRICS: MetricSet = MetricSet {
    dimensions: &[&[FUNCTION, REACTION], &[FUNCTION]],
    metrics: &[
        ("RecordsProcessed", "Count"),
        ("RecordsFailed", "Count"),
        ("DuplicatesSkipped", "Count"),
        ("RecordsParked", "Count"),
        ("ReactionPanics", "Count"),
        // Retried because another invocation held the record's idempotency lock.
        ("RecordsInProgressElsewhere", "Count"),
        // Ran, but left out data the application wrote that it cannot use (or lacked an
        // attribute it reads): processed, and counted here too.
        ("RecordsWithDataSkipped", "Count"),
        // Ran, but no mail went out (no address, notifications off): counted here too.
        ("MailNotSent", "Count"),
    ],
};

/// Per batch.
pub const BATCH_METRICS: MetricSet = MetricSet {
    dimensions: &[&[FUNCTION]],
    metrics: &[
        ("BatchRecords", "Count"),
        ("BatchFailures", "Count"),
        ("BatchDuration", "Milliseconds"),
        ("DynamoDBRequests", "Count"),
    ],
};

/// Per event source mapping: Lambda's own IteratorAge is published per function only, and one
/// function follows several streams here. Measured as Lambda measures it: the age of the
/// batch's last record when the batch is done.
pub const EVENT_SOURCE_METRICS: MetricSet = MetricSet {
    dimensions: &[&[FUNCTION, EVENT_SOURCE]],
    metrics: &[
        ("IteratorAge", "Milliseconds"),
        ("EventSourceRecords", "Count"),
    ],
};

/// Every kind of document the worker writes.
pub const EMITTED: &[&MetricSet] = &[&REACTION_METRICS, &BATCH_METRICS, &EVENT_SOURCE_METRICS];

impl MetricSet {
    /// A document of this set at `now_ms`: its dimension values and metric values, in the
    /// set's order.
    fn document(&self, now_ms: i64, dimensions: &[&str], values: &[Value]) -> Value {
        let mut document = Map::new();
        document.insert(
            "_aws".into(),
            json!({
                "Timestamp": now_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": self.dimensions,
                    "Metrics": self.metrics.iter().map(|(name, unit)| json!({ "Name": name, "Unit": unit })).collect::<Vec<_>>(),
                }],
            }),
        );
        // The first set names every dimension; the others are subsets of it.
        let names = self.dimensions.first().copied().unwrap_or_default();
        for (name, value) in names.iter().zip(dimensions) {
            document.insert((*name).into(), json!(value));
        }
        for ((name, _), value) in self.metrics.iter().zip(values) {
            document.insert((*name).into(), value.clone());
        }
        Value::Object(document)
    }
}

/// Per-reaction counts over the settled records of a batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct ReactionCounts {
    pub processed: u64,
    pub failed: u64,
    pub duplicates: u64,
    pub parked: u64,
    /// Records parked because the reaction panicked on them (a bug; counted in `parked` too).
    pub panics: u64,
    /// Failed (retryable) because another invocation held the lock (counted in `failed` too).
    pub in_progress_elsewhere: u64,
    /// Processed with data left out (counted in `processed` too).
    pub skipped: u64,
    /// Processed without the mail going out (counted in `processed` too).
    pub not_sent: u64,
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
            match &reaction.outcome {
                Outcome::Done { .. } | Outcome::Coalesced { .. } => counts.processed += 1,
                Outcome::Skipped { .. } => {
                    counts.processed += 1;
                    counts.skipped += 1;
                }
                Outcome::NotSent { .. } => {
                    counts.processed += 1;
                    counts.not_sent += 1;
                }
                Outcome::DuplicateSkipped { .. } => counts.duplicates += 1,
                Outcome::Failed { in_progress, .. } => {
                    counts.failed += 1;
                    counts.in_progress_elsewhere += u64::from(*in_progress);
                }
                Outcome::Parked { panicked, .. } => {
                    counts.parked += 1;
                    counts.panics += u64::from(*panicked);
                }
                Outcome::NotApplicable => {}
            }
        }
    }

    /// The EMF documents for this batch of `function`.
    pub(super) fn documents(
        &self,
        function: &str,
        records: &[StreamRecord],
        outcome: &BatchOutcome,
        elapsed: Duration,
        now: DateTime<Utc>,
    ) -> Vec<Value> {
        let now_ms = now.timestamp_millis();
        let mut documents: Vec<Value> = self
            .by_reaction
            .iter()
            .map(|(reaction, counts)| {
                REACTION_METRICS.document(
                    now_ms,
                    &[function, reaction],
                    &[
                        json!(counts.processed),
                        json!(counts.failed),
                        json!(counts.duplicates),
                        json!(counts.parked),
                        json!(counts.panics),
                        json!(counts.in_progress_elsewhere),
                        json!(counts.skipped),
                        json!(counts.not_sent),
                    ],
                )
            })
            .collect();
        let mut batch = BATCH_METRICS.document(
            now_ms,
            &[function],
            &[
                json!(records.len()),
                json!(u8::from(outcome.failure.is_some())),
                json!(elapsed.as_secs_f64() * 1000.0),
                json!(outcome.requests.values().sum::<u64>()),
            ],
        );
        batch["DynamoDBRequestsByOperation"] = json!(outcome.requests);
        documents.push(batch);
        for (table, (count, last)) in by_event_source(records) {
            let age_ms = last.map(|at| (now - at).num_milliseconds().max(0));
            documents.push(EVENT_SOURCE_METRICS.document(
                now_ms,
                &[function, table],
                &[json!(age_ms), json!(count)],
            ));
        }
        documents
    }
}

/// Per table the records came from: how many, and when the stream took in the last of them.
fn by_event_source(records: &[StreamRecord]) -> BTreeMap<&str, (usize, Option<DateTime<Utc>>)> {
    let mut sources: BTreeMap<&str, (usize, Option<DateTime<Utc>>)> = BTreeMap::new();
    for record in records {
        let source = sources.entry(record.table.as_str()).or_default();
        source.0 += 1;
        if let Ok(change) = &record.change {
            source.1 = Some(change.approximate_creation);
        }
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_holds_every_dimension_and_metric_its_set_declares() {
        let document = REACTION_METRICS.document(
            1,
            &["fn", "audit-log"],
            &[
                json!(1),
                json!(0),
                json!(0),
                json!(2),
                json!(0),
                json!(0),
                json!(1),
                json!(0),
            ],
        );
        for name in REACTION_METRICS.dimensions.iter().flat_map(|d| d.iter()) {
            assert!(document[name].is_string(), "{name}: {document}");
        }
        for (name, _) in REACTION_METRICS.metrics {
            assert!(document[name].is_number(), "{name}: {document}");
        }
        assert_eq!(document["RecordsParked"], 2);
        assert_eq!(
            document["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function", "Reaction"], ["Function"]])
        );
    }
}

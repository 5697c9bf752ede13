//! One batch of stream records: every applicable reaction per record, idempotency for guarded
//! reactions, and Lambda's partial batch failure response.
//!
//! Records run in windows of [`WINDOW`]. Within a window, records that share a partition (their
//! own item's, or one a reaction names: [`lanes`]) run in stream order, one lane each, and up
//! to `max_concurrency` lanes run at once, so a batch does not wait for one round trip after
//! another when its records concern different items. The lowest failing (or, near the
//! deadline, not started) record is the one reported in `batchItemFailures`, and Lambda
//! retries from it; no record after it starts once it failed, and those already running are
//! safe to run again (idempotent or guarded). Deferred writes (the audit items) are grouped
//! into BatchWriteItem calls per window, stored while the window folds; a record counts as
//! settled only once its deferred writes are stored, so a failed write moves the reported
//! failure back to the earliest record whose writes were not stored. Reactions that fold a
//! window (`Reaction::folds_windows`: the incremental ratings and thread statistics) get the
//! window's changes at once, in stream order, once its lanes ran, and write them in a few
//! requests.

pub mod effects;
pub mod idempotency;
pub mod intercept;
mod lanes;
mod request_count;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use std::panic::AssertUnwindSafe;

use futures::stream::{self, StreamExt};
use futures::FutureExt;

use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::{DateTime, Utc};
use handlers::ports::{Clock, Mailer, Objects, Ports, Tables, WriteRequest};
use handlers::skipped::Skipped;
use handlers::{Change, Idempotency, Item, Reaction, ReactionError};
use serde::Serialize;
use thiserror::Error;
use tracing::Instrument;

use crate::adapters::{Applied, CallBudget, ChangeApplier, ParkedRecord, Parking};
use crate::catalog::Catalog;
use crate::decode::StreamRecord;
use effects::{Effect, Recorder};
use idempotency::{key_for, Acquired, Guard, IdempotencyConfig};
use intercept::Intercepted;
use request_count::{difference, CountingTables, RequestCounter, RequestCounts};

/// A WARN line for every item a reaction left out because the application wrote something it
/// cannot use (`"skipped"` anywhere in its result: a reaction of several aggregates reports
/// per aggregate), within the reaction's span, so the line names the record and reaction too.
fn warn_of_skipped(result: &serde_json::Value) {
    match result {
        serde_json::Value::Object(fields) => {
            for (name, value) in fields {
                if name == "skipped" {
                    for entry in value.as_array().into_iter().flatten() {
                        tracing::warn!(
                            item = %entry["item"].as_str().unwrap_or_default(),
                            attribute = %entry["attribute"].as_str().unwrap_or_default(),
                            value = %entry["value"].as_str().unwrap_or_default(),
                            "left out of the computation: the application wrote a value the worker cannot use"
                        );
                    }
                } else {
                    warn_of_skipped(value);
                }
            }
        }
        serde_json::Value::Array(values) => values.iter().for_each(warn_of_skipped),
        _ => {}
    }
}

/// BatchWriteItem takes 25 requests; completion notes are written at that size.
const FLUSH_AT: usize = 25;

/// Records per window: a Lambda batch of the default size is one window; a long replay file
/// is reported, flushed and noted window by window.
pub const WINDOW: usize = 100;

/// Lanes that run at once by default (`MAX_CONCURRENCY`): measured at 5 ms per request in
/// BENCHMARKS.md ("Throughput at production latency").
pub const DEFAULT_MAX_CONCURRENCY: usize = 16;

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
    /// A later record of this batch changes the same thing; the reaction runs once, there.
    Coalesced {
        into_record: usize,
    },
    Failed {
        reason: String,
        retryable: bool,
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
    /// Reactions that fold windows whose places in `reactions` await the window's fold.
    #[serde(skip)]
    pending_folds: Vec<usize>,
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

#[derive(Debug, Clone, Copy, Default)]
pub struct BatchOptions {
    /// When this invocation must be done (Lambda's deadline); bounds the idempotency lock.
    pub deadline: Option<DateTime<Utc>>,
    /// Apply each record's own change to the tables before reacting (embedded replay only).
    pub apply_own_change: bool,
    /// No record starts at or after this time: the first one not started fails, retryable,
    /// so Lambda delivers the rest again. Running into the invocation's timeout instead would
    /// make Lambda deliver the whole batch again, the finished records included.
    pub stop_before: Option<DateTime<Utc>>,
}

/// The adapters a worker runs on.
#[derive(Clone)]
pub struct Adapters {
    pub tables: Arc<dyn Tables>,
    pub objects: Arc<dyn Objects>,
    pub mailer: Arc<dyn Mailer>,
    pub clock: Arc<dyn Clock>,
    pub catalog: Catalog,
    /// Where a replay applies each record's own write first (the embedded state); None on AWS,
    /// where the write already happened.
    pub applier: Option<Arc<dyn ChangeApplier>>,
    /// What the SDK adapters cut their timeouts to; the batch sets the invocation's deadline.
    pub call_budget: Option<Arc<CallBudget>>,
    /// Where a record goes that a reaction can never succeed with (not retryable), so the
    /// batch goes on; None: such a record stops the batch, as a retryable one does.
    pub parking: Option<Arc<dyn Parking>>,
}

pub struct Worker {
    reactions: Vec<Box<dyn Reaction>>,
    /// The adapters, with `tables` counting every request.
    adapters: Adapters,
    counter: Arc<CountingTables>,
    idempotency: IdempotencyConfig,
    /// Lanes of a window that run at once; 1 runs every record in stream order.
    max_concurrency: usize,
}

/// What one record came to in its lane.
struct LaneRecord {
    report: RecordReport,
    deferred: Vec<Deferred>,
    failure: Option<RecordFailure>,
}

/// A write waiting for the next BatchWriteItem, and whose it is.
struct Deferred {
    record: usize,
    reaction: usize,
    table: String,
    write: WriteRequest,
}

impl Worker {
    pub fn new(
        reactions: Vec<Box<dyn Reaction>>,
        mut adapters: Adapters,
        idempotency: IdempotencyConfig,
    ) -> Self {
        let counter = Arc::new(Intercepted::new(
            adapters.tables.clone(),
            RequestCounter::default(),
        ));
        adapters.tables = counter.clone();
        Worker {
            reactions,
            adapters,
            counter,
            idempotency,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
        }
    }

    /// At most `lanes` lanes of a window at once (at least 1: every record in stream order).
    pub fn with_max_concurrency(mut self, lanes: usize) -> Self {
        self.max_concurrency = lanes.max(1);
        self
    }

    /// What the batch knows before it starts: which reactions earlier deliveries completed,
    /// and where each coalescing reaction runs.
    async fn plan(&self, records: &[StreamRecord]) -> Plan {
        let completed = self.completed_before(records).await;
        // For each (reaction, coalescing key), the last record of the batch the reaction
        // applies to with that key (a record it does not apply to, or is already done with,
        // must not absorb the others' work).
        let mut run_at = HashMap::new();
        for (index, record) in records.iter().enumerate() {
            let Ok(change) = &record.change else { continue };
            for (r, reaction) in self.reactions.iter().enumerate() {
                let done = || completed.contains_key(&key_for(reaction.name(), &change.event_id));
                if let Some(key) = reaction
                    .coalesce_key(change)
                    .filter(|_| reaction.applies(change) && !done())
                {
                    run_at.insert((r, key), index);
                }
            }
        }
        Plan { completed, run_at }
    }

    /// The idempotency records of this batch's records that say a reaction completed them:
    /// one BatchGetItem for the batch instead of a lock attempt (guarded reactions) or a
    /// recomputation (recomputing ones) per record. Only a saving: when the read fails, every
    /// reaction runs and a guarded one still meets its lock.
    async fn completed_before(
        &self,
        records: &[StreamRecord],
    ) -> HashMap<String, serde_json::Value> {
        if !self.idempotency.completion_markers {
            return HashMap::new();
        }
        let mut keys: Vec<String> = records
            .iter()
            .filter_map(|record| record.change.as_ref().ok())
            .flat_map(|change| {
                self.reactions
                    .iter()
                    .filter(|r| r.idempotency() != Idempotency::ByConstruction && r.applies(change))
                    .map(|r| key_for(r.name(), &change.event_id))
            })
            .collect();
        if keys.is_empty() {
            return HashMap::new();
        }
        keys.sort();
        keys.dedup();
        match self.guard().completed(&keys).await {
            Ok(completed) => completed,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the batch's idempotency records; every reaction runs");
                HashMap::new()
            }
        }
    }

    /// Notes for the settled `reports` that their recomputing reactions are done with them
    /// (a record that failed gets none: its retry must run them).
    fn completion_markers(
        &self,
        reports: &[RecordReport],
        records: &[StreamRecord],
    ) -> Vec<WriteRequest> {
        if !self.idempotency.completion_markers {
            return Vec::new();
        }
        let mut markers = Vec::new();
        for report in reports {
            let failed = |r: &ReactionReport| matches!(r.outcome, Outcome::Failed { .. });
            if report.error.is_some() || report.reactions.iter().any(failed) {
                continue;
            }
            for (reaction, ran) in self.reactions.iter().zip(&report.reactions) {
                if reaction.idempotency() != Idempotency::Recomputed {
                    continue;
                }
                let result = match &ran.outcome {
                    Outcome::Done { result } => result.clone(),
                    // The later record's run covers this one: it reads the state after it.
                    Outcome::Coalesced { into_record } => serde_json::json!({
                        "coalescedInto": records.get(*into_record).map(|r| r.event_id.as_str()),
                    }),
                    _ => continue,
                };
                let Some(Ok(change)) = records.get(report.index).map(|r| &r.change) else {
                    continue;
                };
                let key = key_for(reaction.name(), &report.event_id);
                match self
                    .guard()
                    .completion_marker(key, &result, change.approximate_creation)
                {
                    Ok(item) => markers.push(WriteRequest::Put(item)),
                    Err(e) => tracing::warn!(error = %e, "could not build a completion note"),
                }
            }
        }
        markers
    }

    /// Store completion notes. A failure loses only the saving: the records are recomputed
    /// if they come again.
    async fn write_markers(&self, markers: &mut Vec<WriteRequest>) {
        let markers = std::mem::take(markers);
        if markers.is_empty() {
            return;
        }
        if let Err(e) = self
            .adapters
            .tables
            .batch_write(&self.idempotency.table, markers)
            .await
        {
            tracing::warn!(error = %e, "could not store completion notes; those records are recomputed if delivered again");
        }
    }

    /// Ports on the adapters that record what the reactions write, for their reports.
    fn recorder(&self) -> Recorder {
        let a = &self.adapters;
        Recorder::new(
            a.tables.clone(),
            a.objects.clone(),
            a.mailer.clone(),
            a.catalog.clone(),
        )
    }

    fn guard(&self) -> Guard<'_> {
        Guard {
            tables: self.adapters.tables.as_ref(),
            config: &self.idempotency,
        }
    }

    pub fn adapters(&self) -> &Adapters {
        &self.adapters
    }

    /// Process `records`, each partition's in stream order. `on_settled` sees each record's
    /// report once the record is complete (its deferred writes stored), in stream order.
    pub async fn process_batch(
        &self,
        records: &[StreamRecord],
        options: BatchOptions,
        on_settled: &mut dyn FnMut(&RecordReport),
    ) -> BatchOutcome {
        if let Some(budget) = &self.adapters.call_budget {
            budget.until(options.deadline);
        }
        let requests_before = self.counter.hook.snapshot();
        let plan = self.plan(records).await;
        let mut markers: Vec<WriteRequest> = Vec::new();
        let mut failure: Option<RecordFailure> = None;
        let mut settled = 0;

        for start in (0..records.len()).step_by(WINDOW) {
            let window = start..(start + WINDOW).min(records.len());
            let (mut pending, mut failed, stored) =
                self.run_window(records, window, options, &plan).await;
            // An earlier record whose writes fail to store takes the failure's place.
            if let Some(f) = stored.settle(&mut pending) {
                failed = Some(f);
            }
            markers.extend(self.completion_markers(&pending, records));
            let reported = usize::from(failed.is_some());
            settled += emit(&mut pending, on_settled).saturating_sub(reported);
            if failed.is_some() {
                failure = failed;
                break;
            }
            if markers.len() >= FLUSH_AT {
                self.write_markers(&mut markers).await;
            }
        }
        self.write_markers(&mut markers).await;

        let mut response = DynamoDbEventResponse::default();
        if let Some(f) = &failure {
            let mut item = DynamoDbBatchItemFailure::default();
            // Never an empty or invalid identifier (Lambda would read it as "all failed",
            // silently): a failed record without a sequence number a stream gives is retried
            // from the last valid one before it (running records again is safe), or, if none,
            // with the whole batch.
            let valid_at_or_before = records[..=f.index.min(records.len().saturating_sub(1))]
                .iter()
                .rev()
                .find(|r| r.has_valid_sequence_number())
                .or(records.first())
                .map(|r| r.sequence_number.clone());
            item.item_identifier = valid_at_or_before;
            response.batch_item_failures.push(item);
        }
        BatchOutcome {
            settled,
            failure,
            response,
            requests: difference(&self.counter.hook.snapshot(), &requests_before),
        }
    }

    /// Run the records of `window`, lane by lane, up to `max_concurrency` lanes at once, then
    /// fold it while the lanes' deferred writes are stored. Returns the reports up to and
    /// including the lowest failing (or not started) record, in stream order, that failure,
    /// and what storing the window's deferred writes came to.
    async fn run_window(
        &self,
        records: &[StreamRecord],
        window: Range<usize>,
        options: BatchOptions,
        plan: &Plan,
    ) -> (Vec<RecordReport>, Option<RecordFailure>, Stored) {
        let lanes: Vec<Vec<usize>> = if self.max_concurrency == 1 {
            vec![window.clone().collect()]
        } else {
            lanes::lanes(
                &records[window.clone()],
                &self.reactions,
                &self.adapters.catalog,
            )
            .into_iter()
            .map(|lane| lane.into_iter().map(|i| i + window.start).collect())
            .collect()
        };
        // The lowest index that failed or was not started: no record after it starts.
        let stop_after = AtomicUsize::new(usize::MAX);
        let mut ran: Vec<LaneRecord> = stream::iter(lanes)
            .map(|lane| self.run_lane(records, lane, options, plan, &stop_after))
            .buffer_unordered(self.max_concurrency)
            .collect::<Vec<Vec<LaneRecord>>>()
            .await
            .into_iter()
            .flatten()
            .collect();
        ran.sort_by_key(|r| r.report.index);
        // The lanes' writes (audit items) are stored while the window folds: no folding
        // reaction reads them, and the writes of records after a failure the fold meets are
        // stored again when Lambda delivers those records again (whole-item puts and deletes).
        let lanes_failed_at = ran
            .iter()
            .filter_map(|r| r.failure.as_ref().map(|f| f.index))
            .min()
            .unwrap_or(usize::MAX);
        let lane_writes: Vec<Deferred> = ran
            .iter_mut()
            .filter(|r| r.report.index <= lanes_failed_at)
            .flat_map(|r| std::mem::take(&mut r.deferred))
            .collect();
        let ((), mut stored) = futures::join!(
            self.fold_window(records, &mut ran),
            self.store(records, lane_writes)
        );
        let failure = ran
            .iter()
            .filter_map(|r| r.failure.clone())
            .min_by_key(|f| f.index);
        // Records after the failure are delivered again: their reports and writes are dropped.
        let cut = failure.as_ref().map_or(usize::MAX, |f| f.index);
        let mut reports = Vec::new();
        let mut fold_writes = Vec::new();
        for r in ran.into_iter().filter(|r| r.report.index <= cut) {
            reports.push(r.report);
            fold_writes.extend(r.deferred);
        }
        // The folds' own deferred writes, once they ran (today's folds defer none).
        stored.add(self.store(records, fold_writes).await);
        (reports, failure, stored)
    }

    /// Runs the reactions that fold a window ([`Reaction::folds_windows`]) once its lanes ran,
    /// on the records before the first that failed (those after it are delivered again): as in
    /// Lambda, where the application's writes precede the stream, a replay has then applied
    /// each record's own change. Their results take the places the lanes kept for them, and a
    /// fold that fails a record makes it the window's failure.
    async fn fold_window(&self, records: &[StreamRecord], ran: &mut [LaneRecord]) {
        let failed_at = ran
            .iter()
            .filter_map(|r| r.failure.as_ref().map(|f| f.index))
            .min()
            .unwrap_or(usize::MAX);
        for (r, reaction) in self.reactions.iter().enumerate() {
            if !reaction.folds_windows() {
                continue;
            }
            for lane_record in ran.iter_mut().filter(|l| l.report.index >= failed_at) {
                if lane_record.report.pending_folds.contains(&r) {
                    if let Some(place) = lane_record.report.reactions.get_mut(r) {
                        place.outcome = Outcome::Failed {
                            reason: "not run: this or an earlier record of the batch failed; it runs when the batch is delivered again".into(),
                            retryable: true,
                        };
                    }
                }
            }
            let waiting: Vec<usize> = (0..ran.len())
                .filter(|&i| {
                    ran[i].report.index < failed_at && ran[i].report.pending_folds.contains(&r)
                })
                .collect();
            let changes: Vec<&Change> = waiting
                .iter()
                .filter_map(|&i| records[ran[i].report.index].change.as_ref().ok())
                .collect();
            if changes.is_empty() {
                continue;
            }
            let recorder = self.recorder();
            let ports = Ports {
                tables: &recorder.tables,
                objects: &recorder,
                mailer: &recorder,
            };
            let span = tracing::info_span!(
                "reaction",
                reaction = reaction.name(),
                records = changes.len()
            );
            let mut results = fold_caught(reaction.as_ref(), &changes, ports)
                .instrument(span)
                .await
                .into_iter();
            // The window's writes are shared by its records: reported at the last one run.
            let mut effects = recorder.take();
            let last = results.len();
            for (n, (&i, change)) in waiting.iter().zip(&changes).enumerate() {
                let run = match results.next() {
                    Some(result) => result.map(|reacted| Ran::Done {
                        result: reacted.result,
                        deferred: reacted.deferred_writes,
                    }),
                    // An earlier record of the window failed in this reaction, which then stopped.
                    None => Err(ReactionError::NotAttempted(format!(
                        "not attempted: an earlier record of this batch failed in {}; it runs when the batch is delivered again",
                        reaction.name()
                    ))),
                };
                let effects = match n + 1 == last {
                    true => std::mem::take(&mut effects),
                    false => Vec::new(),
                };
                let lane_record = &mut ran[i];
                let span = tracing::info_span!("reaction", event_id = %change.event_id, sequence_number = %change.sequence_number, reaction = reaction.name());
                let settled = self
                    .settle(
                        r,
                        &records[lane_record.report.index],
                        lane_record.report.index,
                        run,
                        effects,
                        reaction.unusable_data(change),
                    )
                    .instrument(span)
                    .await;
                lane_record.report.pending_folds.retain(|&p| p != r);
                lane_record.deferred.extend(settled.deferred);
                if let Some(place) = lane_record.report.reactions.get_mut(r) {
                    *place = settled.report;
                }
                if let Some((reason, retryable)) = settled.failed {
                    let failure =
                        failure_of(&lane_record.report, reaction.name(), reason, retryable);
                    lane_record
                        .report
                        .error
                        .get_or_insert_with(|| failure.message.clone());
                    lane_record.failure.get_or_insert(failure);
                }
            }
        }
    }

    /// The records of one lane, in stream order, until one fails, the deadline's reserve is
    /// reached, or another lane failed at an earlier record.
    async fn run_lane(
        &self,
        records: &[StreamRecord],
        lane: Vec<usize>,
        options: BatchOptions,
        plan: &Plan,
        stop_after: &AtomicUsize,
    ) -> Vec<LaneRecord> {
        let a = &self.adapters;
        let recorder = self.recorder();
        let mut ran = Vec::new();
        for index in lane {
            if index > stop_after.load(Ordering::SeqCst) {
                break;
            }
            let record = &records[index];
            let mut report = new_report(index, record);
            // The first record always starts: an invocation that starts none makes no progress,
            // and Lambda would deliver the same batch again, and again.
            if index > 0
                && options
                    .stop_before
                    .is_some_and(|stop| a.clock.now() >= stop)
            {
                let message = "not started: the invocation is too close to its deadline; \
                               Lambda delivers the records from here again"
                    .to_string();
                report.error = Some(message.clone());
                let failure = failure_of(&report, "deadline", message, true);
                stop_after.fetch_min(index, Ordering::SeqCst);
                ran.push(LaneRecord {
                    report,
                    deferred: Vec::new(),
                    failure: Some(failure),
                });
                break;
            }
            let mut deferred = Vec::new();
            let failure = self
                .process_record(record, &mut report, &recorder, options, plan, &mut deferred)
                .await
                .err();
            if failure.is_some() {
                stop_after.fetch_min(index, Ordering::SeqCst);
            }
            let stop = failure.is_some();
            ran.push(LaneRecord {
                report,
                deferred,
                failure,
            });
            if stop {
                break;
            }
        }
        ran
    }

    async fn process_record(
        &self,
        record: &StreamRecord,
        report: &mut RecordReport,
        recorder: &Recorder,
        options: BatchOptions,
        plan: &Plan,
        buffer: &mut Vec<Deferred>,
    ) -> Result<(), RecordFailure> {
        let change = match &record.change {
            Ok(change) => change,
            // It breaks a rule every stream record keeps: no retry changes it, so it is parked
            // whole and the batch goes on.
            Err(defect) => {
                return self
                    .park_whole(record, report, "decode", defect.to_string(), false)
                    .await
            }
        };
        if let (true, Some(applier)) = (options.apply_own_change, &self.adapters.applier) {
            self.adapters.catalog.learn(&change.table, &change.keys);
            match applier.apply(change).await {
                Ok(Applied::Now) => report.applied = true,
                Ok(Applied::Before { in_this_run }) => {
                    report.already_applied = true;
                    report.applied_earlier_in_this_run = in_this_run;
                }
                // Reactions must not run on a state without the record's own change.
                Err(e) => {
                    let retryable = e.is_retryable();
                    return self
                        .park_whole(record, report, "apply", e.to_string(), retryable)
                        .await;
                }
            }
        }
        let ports = Ports {
            tables: &recorder.tables,
            objects: recorder,
            mailer: recorder,
        };
        for (r, reaction) in self.reactions.iter().enumerate() {
            let name = reaction.name();
            if !reaction.applies(change) {
                report.reactions.push(ReactionReport {
                    reaction: name,
                    outcome: Outcome::NotApplicable,
                    effects: Vec::new(),
                });
                continue;
            }
            if let Some(result) = plan.completed.get(&key_for(name, &change.event_id)) {
                tracing::info!(reaction = name, event_id = %change.event_id, outcome = "duplicate_skipped");
                report.reactions.push(ReactionReport {
                    reaction: name,
                    outcome: Outcome::DuplicateSkipped {
                        result: result.clone(),
                    },
                    effects: Vec::new(),
                });
                continue;
            }
            // A record whose own item is unusable runs itself, so that it can be parked.
            let unusable = reaction.unusable_data(change);
            let coalesce_key = reaction.coalesce_key(change).filter(|_| unusable.is_none());
            if let Some(key) = coalesce_key {
                let last = plan.run_at.get(&(r, key)).copied().unwrap_or(report.index);
                if last > report.index {
                    report.reactions.push(ReactionReport {
                        reaction: name,
                        outcome: Outcome::Coalesced { into_record: last },
                        effects: Vec::new(),
                    });
                    continue;
                }
            }
            let span = tracing::info_span!("reaction", event_id = %change.event_id, sequence_number = %change.sequence_number, reaction = name);
            let _enter = span.enter();
            if reaction.folds_windows() {
                // Its place, filled once the window's records ran (`fold_window`).
                report.reactions.push(ReactionReport {
                    reaction: name,
                    outcome: Outcome::NotApplicable,
                    effects: Vec::new(),
                });
                report.pending_folds.push(r);
                continue;
            }
            let run = self
                .run_reaction(reaction.as_ref(), change, ports, options)
                .await;
            let settled = self
                .settle(r, record, report.index, run, recorder.take(), unusable)
                .await;
            buffer.extend(settled.deferred);
            report.reactions.push(settled.report);
            if let Some((reason, retryable)) = settled.failed {
                return Err(failure_of(report, name, reason, retryable));
            }
        }
        if report.pending_folds.is_empty()
            && report
                .reactions
                .iter()
                .all(|r| r.outcome == Outcome::NotApplicable)
        {
            // Not a failure: a table the worker was not built for (a shared stream, a filter
            // left wide), or an item kind no reaction needs.
            tracing::info!(table = %change.table, event_id = %change.event_id, sequence_number = %change.sequence_number, "no reaction applies to this record; skipped");
        }
        Ok(())
    }

    /// Park a record whose own item holds data the application got wrong, once `reaction` ran
    /// without it: (reason, location), or why it could not be parked. None when the item is
    /// fine or this worker has nowhere to park (the skipped item is in the result either way).
    /// What a reaction's run on record `record` comes to: its report (parked where no retry can
    /// fix it, or where the record wrote data the reaction cannot use), the writes it deferred,
    /// and the record's failure if any (reason, retryable).
    async fn settle(
        &self,
        r: usize,
        stream_record: &StreamRecord,
        record: usize,
        run: Result<Ran, ReactionError>,
        mut effects: Vec<Effect>,
        unusable: Option<Skipped>,
    ) -> Settled {
        let name = self.reactions[r].name();
        let mut deferred_writes = Vec::new();
        match run {
            Ok(Ran::Done { result, deferred }) => {
                for (table, write) in deferred {
                    if let WriteRequest::Put(item) = &write {
                        effects.push(Effect::put(&self.adapters.catalog, &table, item));
                    }
                    deferred_writes.push(Deferred {
                        record,
                        reaction: r,
                        table,
                        write,
                    });
                }
                warn_of_skipped(&result);
                let outcome = match self.park_bad_data(name, stream_record, unusable).await {
                    None => {
                        tracing::info!(outcome = "done");
                        Outcome::Done { result }
                    }
                    Some(Ok((reason, location))) => {
                        tracing::warn!(outcome = "parked", %location, error = %reason);
                        Outcome::Parked {
                            reason,
                            location,
                            panicked: false,
                        }
                    }
                    // Nothing is dropped silently: unparked, the record fails for a retry.
                    Some(Err(reason)) => {
                        tracing::warn!(outcome = "failed", retryable = true, error = %reason);
                        return Settled {
                            report: ReactionReport {
                                reaction: name,
                                outcome: Outcome::Failed {
                                    reason: reason.clone(),
                                    retryable: true,
                                },
                                effects,
                            },
                            deferred: deferred_writes,
                            failed: Some((reason, true)),
                        };
                    }
                };
                Settled {
                    report: ReactionReport {
                        reaction: name,
                        outcome,
                        effects,
                    },
                    deferred: deferred_writes,
                    failed: None,
                }
            }
            Ok(Ran::Duplicate { result }) => {
                tracing::info!(outcome = "duplicate_skipped");
                Settled {
                    report: ReactionReport {
                        reaction: name,
                        outcome: Outcome::DuplicateSkipped { result },
                        effects,
                    },
                    deferred: deferred_writes,
                    failed: None,
                }
            }
            Err(e) => {
                let panicked = matches!(e, ReactionError::Panicked(_));
                let (outcome, failed) = self
                    .park_or_fail(
                        stream_record,
                        name,
                        e.to_string(),
                        e.is_retryable(),
                        panicked,
                    )
                    .await;
                Settled {
                    report: ReactionReport {
                        reaction: name,
                        outcome,
                        effects,
                    },
                    deferred: deferred_writes,
                    failed,
                }
            }
        }
    }

    /// What no retry can fix is parked, so that it costs only itself; the rest fails, and so
    /// does what cannot be parked (retryable: nothing is dropped silently). The outcome to
    /// report for `stage` (a reaction, or `decode` / `apply`), and the failure if any.
    async fn park_or_fail(
        &self,
        record: &StreamRecord,
        stage: &'static str,
        reason: String,
        retryable: bool,
        panicked: bool,
    ) -> (Outcome, Option<(String, bool)>) {
        let parked = match retryable {
            true => None,
            false => self.park(record, stage, &reason).await,
        };
        let (reason, retryable) = match parked {
            Some(Ok(location)) => {
                tracing::warn!(stage, outcome = "parked", %location, error = %reason);
                let outcome = Outcome::Parked {
                    reason,
                    location,
                    panicked,
                };
                return (outcome, None);
            }
            Some(Err(park)) => (
                format!("{reason}; and it could not be parked: {park}"),
                true,
            ),
            None => (reason, retryable),
        };
        tracing::warn!(stage, outcome = "failed", retryable, error = %reason);
        let outcome = Outcome::Failed {
            reason: reason.clone(),
            retryable,
        };
        (outcome, Some((reason, retryable)))
    }

    /// A record no reaction can run on (`stage`: it breaks a stream's rules, or its own change
    /// cannot be applied): parked whole, and reported as that stage's outcome, unless a retry
    /// can help or there is nowhere to park; then it fails.
    async fn park_whole(
        &self,
        record: &StreamRecord,
        report: &mut RecordReport,
        stage: &'static str,
        reason: String,
        retryable: bool,
    ) -> Result<(), RecordFailure> {
        let (outcome, failed) = self
            .park_or_fail(record, stage, reason, retryable, false)
            .await;
        report.reactions.push(ReactionReport {
            reaction: stage,
            outcome,
            effects: Vec::new(),
        });
        match failed {
            None => Ok(()),
            Some((reason, retryable)) => {
                report.error = Some(reason.clone());
                Err(failure_of(report, stage, reason, retryable))
            }
        }
    }

    async fn park_bad_data(
        &self,
        reaction: &'static str,
        record: &StreamRecord,
        unusable: Option<Skipped>,
    ) -> Option<Result<(String, String), String>> {
        let skipped = unusable?;
        let reason = format!(
            "the application wrote {} = {} in {}, which {} cannot use: left out of its \
             computation, which went on",
            skipped.attribute, skipped.value, skipped.item, reaction
        );
        Some(match self.park(record, reaction, &reason).await? {
            Ok(location) => Ok((reason, location)),
            Err(e) => Err(format!("{reason}; and it could not be parked: {e}")),
        })
    }

    /// Park `record` for `reaction`; None when this worker has nowhere to park.
    async fn park(
        &self,
        record: &StreamRecord,
        reaction: &'static str,
        reason: &str,
    ) -> Option<Result<String, handlers::PortError>> {
        let parking = self.adapters.parking.as_ref()?;
        let record = ParkedRecord {
            raw: &record.raw,
            table: &record.table,
            sequence_number: &record.sequence_number,
            reaction,
            reason: reason.to_string(),
            parked_at: self.adapters.clock.now(),
        };
        Some(parking.park(&record).await)
    }

    async fn run_reaction(
        &self,
        reaction: &dyn Reaction,
        change: &Change,
        ports: Ports<'_>,
        options: BatchOptions,
    ) -> Result<Ran, ReactionError> {
        if reaction.idempotency() != Idempotency::Guarded {
            let reacted = react_caught(reaction, change, ports).await?;
            return Ok(Ran::Done {
                result: reacted.result,
                deferred: reacted.deferred_writes,
            });
        }
        let guard = self.guard();
        let key = key_for(reaction.name(), &change.event_id);
        let now = self.adapters.clock.now();
        let until = options.deadline.unwrap_or_else(|| {
            now + chrono::Duration::from_std(self.idempotency.default_in_progress)
                .unwrap_or(chrono::Duration::seconds(60))
        });
        let acquired = guard
            .acquire(&key, change.approximate_creation, now, until)
            .await?;
        if let Acquired::Duplicate { result } = acquired {
            return Ok(Ran::Duplicate { result });
        }
        let outcome = async {
            let reacted = react_caught(reaction, change, ports).await?;
            // A guarded reaction's writes must be stored before it is marked completed.
            for (table, writes) in group_by_table(reacted.deferred_writes) {
                ports.tables.batch_write(&table, writes).await?;
            }
            Ok::<_, ReactionError>(reacted.result)
        }
        .await;
        match outcome {
            Ok(result) => {
                guard
                    .complete(&key, &result, change.approximate_creation)
                    .await?;
                Ok(Ran::Done {
                    result,
                    deferred: Vec::new(),
                })
            }
            Err(e) => {
                if let Err(release) = guard.release(&key).await {
                    // The lock then ends at its in-progress expiry and a later retry takes it over.
                    tracing::warn!(error = %release, "could not release idempotency lock {key}");
                }
                Err(e)
            }
        }
    }

    /// Store `deferred` writes, stopping at the first that fails for a retry.
    /// A write the service will never accept (an item over 400 KB) fails its whole request
    /// without saying which it is, so then they are stored one at a time and only the records
    /// whose writes are refused are parked (stored writes are puts and deletes of whole items:
    /// storing one twice changes nothing).
    async fn store(&self, records: &[StreamRecord], deferred: Vec<Deferred>) -> Stored {
        let mut stored = Stored::default();
        let Some(first) = deferred.first().map(|d| (d.record, d.reaction)) else {
            return stored;
        };
        let writes = deferred
            .iter()
            .map(|d| (d.table.clone(), d.write.clone()))
            .collect();
        let mut refused = None;
        for (table, writes) in group_by_table(writes) {
            if let Err(e) = self.adapters.tables.batch_write(&table, writes).await {
                refused = Some(e);
                break;
            }
        }
        match refused {
            None => return stored,
            Some(e) if e.is_retryable() => {
                stored.failed = Some((first, e.to_string(), true));
                return stored;
            }
            Some(_) => {}
        }
        for d in deferred {
            let Err(e) = self
                .adapters
                .tables
                .batch_write(&d.table, vec![d.write])
                .await
            else {
                continue;
            };
            let record = records.get(d.record);
            let name = self.reactions.get(d.reaction).map(|r| r.name());
            let parked = match (e.is_retryable(), record, name) {
                (false, Some(record), Some(name)) => {
                    let reason = format!("storing its writes failed: {e}");
                    self.park(record, name, &reason)
                        .await
                        .map(|parked| parked.map(|location| (reason, location)))
                }
                _ => None,
            };
            let whose = (d.record, d.reaction);
            match parked {
                Some(Ok((reason, location))) => {
                    tracing::warn!(outcome = "parked", %location, error = %reason);
                    stored.parked.push((whose, reason, location));
                }
                // Nothing is dropped silently: unparked, the record fails for a retry.
                Some(Err(park)) => {
                    let error = format!("{e}; and it could not be parked: {park}");
                    stored.failed = Some((whose, error, true));
                    return stored;
                }
                None => {
                    stored.failed = Some((whose, e.to_string(), e.is_retryable()));
                    return stored;
                }
            }
        }
        stored
    }
}

/// What storing deferred writes came to, by (record, reaction).
#[derive(Default)]
struct Stored {
    /// Records parked because the service refuses their write for good: reason, location.
    parked: Vec<((usize, usize), String, String)>,
    /// The first write not stored: whose, why, and whether a retry can help.
    failed: Option<((usize, usize), String, bool)>,
}

impl Stored {
    /// Adds what storing more writes came to; the failure kept is the earliest record's.
    fn add(&mut self, more: Stored) {
        self.parked.extend(more.parked);
        self.failed = (self.failed.take().into_iter())
            .chain(more.failed)
            .min_by_key(|((record, _), ..)| *record);
    }

    /// Marks the parked records in `pending`, and fails the first record whose writes were not
    /// stored (returned), dropping the reports after it (Lambda delivers those records again).
    /// Records no longer pending (after the window's failure: delivered again) are left alone.
    fn settle(self, pending: &mut Vec<RecordReport>) -> Option<RecordFailure> {
        for ((record, reaction), reason, location) in self.parked {
            if let Some(report) = pending
                .iter_mut()
                .find(|p| p.index == record)
                .and_then(|p| p.reactions.get_mut(reaction))
            {
                report.outcome = Outcome::Parked {
                    reason,
                    location,
                    panicked: false,
                };
            }
        }
        let (whose, error, retryable) = self.failed?;
        pending
            .last()
            .is_some_and(|last| whose.0 <= last.index)
            .then(|| fail_flush(whose, &error, retryable, pending))
    }
}

/// The failure of `record`, whose `reaction`'s writes could not be stored; the reports after
/// it are dropped (Lambda delivers those records again).
fn fail_flush(
    (record, reaction): (usize, usize),
    error: &dyn std::fmt::Display,
    retryable: bool,
    pending: &mut Vec<RecordReport>,
) -> RecordFailure {
    // Reports still pending start at the first unsettled record of the batch.
    let position = record - pending.first().map_or(record, |p| p.index);
    pending.truncate(position + 1);
    let reason = format!("storing its writes failed: {error}");
    let Some(report) = pending.get_mut(position) else {
        return RecordFailure {
            index: record,
            stage: "flush".to_string(),
            message: reason,
            retryable,
            ..RecordFailure::default()
        };
    };
    let mut stage = "flush";
    if let Some(reaction_report) = report.reactions.get_mut(reaction) {
        reaction_report.outcome = Outcome::Failed {
            reason: reason.clone(),
            retryable,
        };
        stage = reaction_report.reaction;
    }
    failure_of(report, stage, reason, retryable)
}

/// What the batch knows before it starts.
struct Plan {
    /// Idempotency keys (`<reaction>#<eventID>`) an earlier delivery completed, with results.
    completed: HashMap<String, serde_json::Value>,
    /// Where each coalescing reaction runs: (reaction, coalescing key) -> record index.
    run_at: HashMap<(usize, String), usize>,
}

/// What a reaction's run came to for its record.
struct Settled {
    report: ReactionReport,
    deferred: Vec<Deferred>,
    /// The record fails: why, and whether a retry can help.
    failed: Option<(String, bool)>,
}

enum Ran {
    Done {
        result: serde_json::Value,
        deferred: Vec<(String, WriteRequest)>,
    },
    Duplicate {
        result: serde_json::Value,
    },
}

/// `reaction.react`, with a panic inside it caught and turned into the record's error (not
/// retryable: the record is parked), so that one record's data cannot take the process down.
async fn react_caught(
    reaction: &dyn Reaction,
    change: &Change,
    ports: Ports<'_>,
) -> Result<handlers::Reacted, ReactionError> {
    match AssertUnwindSafe(reaction.react(change, ports))
        .catch_unwind()
        .await
    {
        Ok(result) => result,
        Err(panic) => Err(panicked(reaction.name(), panic)),
    }
}

/// `reaction.react_window`, with a panic caught: then each change is folded alone, so only the
/// changes that panic by themselves fail (and are parked). Folding a change again is safe:
/// each state item carries the sequence number of its change.
async fn fold_caught(
    reaction: &dyn Reaction,
    changes: &[&Change],
    ports: Ports<'_>,
) -> Vec<Result<handlers::Reacted, ReactionError>> {
    if let Ok(results) = AssertUnwindSafe(reaction.react_window(changes, ports))
        .catch_unwind()
        .await
    {
        return results;
    }
    let mut results = Vec::with_capacity(changes.len());
    for change in changes {
        let alone = AssertUnwindSafe(reaction.react_window(std::slice::from_ref(change), ports))
            .catch_unwind()
            .await;
        let result = match alone {
            Ok(mut one) if one.len() == 1 => one.remove(0),
            Ok(_) => Err(ReactionError::NotAttempted(format!(
                "{} gave no result for the change",
                reaction.name()
            ))),
            Err(panic) => Err(panicked(reaction.name(), panic)),
        };
        results.push(result);
    }
    results
}

/// The error a caught panic becomes, with its message; a WARN line says which reaction.
fn panicked(reaction: &'static str, panic: Box<dyn std::any::Any + Send>) -> ReactionError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|m| m.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string());
    tracing::warn!(reaction, panic = %message, "a reaction panicked; its record is parked");
    ReactionError::Panicked(message)
}

/// Group writes by table, keeping first-seen table order and each table's write order.
fn group_by_table(writes: Vec<(String, WriteRequest)>) -> Vec<(String, Vec<WriteRequest>)> {
    let mut groups: Vec<(String, Vec<WriteRequest>)> = Vec::new();
    for (table, write) in writes {
        match groups.iter_mut().find(|(t, _)| *t == table) {
            Some((_, group)) => group.push(write),
            None => groups.push((table, vec![write])),
        }
    }
    groups
}

fn new_report(index: usize, record: &StreamRecord) -> RecordReport {
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
        pending_folds: Vec::new(),
    }
}

fn failure_of(
    report: &RecordReport,
    stage: &str,
    message: String,
    retryable: bool,
) -> RecordFailure {
    RecordFailure {
        index: report.index,
        event_id: report.event_id.clone(),
        sequence_number: report.sequence_number.clone(),
        table: report.table.clone(),
        keys: handlers::item::describe_keys(&report.keys),
        stage: stage.to_string(),
        message,
        retryable,
    }
}

/// Hand every pending report to the observer; returns how many.
fn emit(pending: &mut Vec<RecordReport>, on_settled: &mut dyn FnMut(&RecordReport)) -> usize {
    let count = pending.len();
    for report in pending.drain(..) {
        on_settled(&report);
    }
    count
}

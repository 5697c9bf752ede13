//! Scheduling one window of a batch: its records dealt into lanes ([`super::lanes`]) that run
//! at once up to `max_concurrency`, each lane in stream order until a record fails; then the
//! window's folds (`Reaction::folds_windows`) while the lanes' deferred writes are stored.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::stream::{self, StreamExt};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;

use handlers::ports::Ports;
use handlers::{Change, Reaction, ReactionError};
use tracing::Instrument;

use super::deferred::{Deferred, Stored};
use super::plan::Plan;
use super::report::{Outcome, RecordFailure, RecordReport};
use super::run::{panicked, ReactionRun};
use super::{lanes, BatchOptions, Worker};
use crate::decode::StreamRecord;
use crate::stages::{measure_async, Stage};
/// What one record came to in its lane.
struct LaneRecord {
    report: RecordReport,
    deferred: Vec<Deferred>,
    failure: Option<RecordFailure>,
}

impl Worker {
    /// Run the records of `window`, lane by lane, up to `max_concurrency` lanes at once, then
    /// fold it while the lanes' deferred writes are stored. Returns the reports up to and
    /// including the lowest failing (or not started) record, in stream order, that failure,
    /// and what storing the window's deferred writes came to.
    pub(super) async fn run_window(
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
            measure_async(Stage::Folds, self.fold_window(records, &mut ran)),
            measure_async(Stage::DeferredWrites, self.store(records, lane_writes))
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
        stored.add(measure_async(Stage::DeferredWrites, self.store(records, fold_writes)).await);
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
                            in_progress: false,
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
                    Some(result) => result.map(|reacted| ReactionRun::Done {
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
                    .conclude(
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
                    let failure = lane_record
                        .report
                        .failure(reaction.name(), reason, retryable);
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
            let mut report = RecordReport::new(index, record);
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
                let failure = report.failure("deadline", message, true);
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

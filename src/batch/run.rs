//! Step 3, run: a window's lanes, up to `max_concurrency` at once, each in stream order until
//! a record fails. A record's own change is applied first (a replay); then each reaction that
//! applies to it runs (a guarded one under its idempotency lock, a panic caught) and is
//! settled, or, if it folds windows, awaits the fold ([`Slot::AwaitsFold`]). Gives a
//! [`RecordRun`] per record started, in stream order.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::stream::{self, StreamExt};
use futures::FutureExt;
use handlers::ports::Ports;
use handlers::{Change, Idempotency, Reaction, ReactionError};

use super::effects::Recorder;
use super::idempotency::{key_for, Acquired, Guard};
use super::plan::Plan;
use super::report::{Outcome, ReactionReport, RecordFailure, RecordReport};
use super::settle::{group_by_table, panicked, Deferred, ReactionRun, Settle, Whose};
use super::{Adapters, BatchOptions};
use crate::adapters::Applied;
use crate::decode::StreamRecord;
use crate::stages::{measure_async, Stage};

/// A reaction's place in a record's report, in the worker's order of reactions.
pub(super) enum Slot {
    /// Settled in the run: done, not applicable, a duplicate, coalesced, parked or failed.
    Settled(ReactionReport),
    /// A reaction that folds windows (the reaction's place): settled by the fold step.
    AwaitsFold(usize),
}

/// What one record came to in its lane.
pub(super) struct RecordRun {
    /// The record's report, but for its reactions (`slots`, settled by the conclude step).
    pub(super) report: RecordReport,
    pub(super) slots: Vec<Slot>,
    /// The writes its reactions deferred (audit items).
    pub(super) deferred: Vec<Deferred>,
    pub(super) failure: Option<RecordFailure>,
}

impl RecordRun {
    /// Whether reaction `reaction` (its place) awaits the fold.
    pub(super) fn awaits_fold(&self, reaction: usize) -> bool {
        self.slots
            .iter()
            .any(|slot| matches!(slot, Slot::AwaitsFold(r) if *r == reaction))
    }
}

/// The writes the run deferred for the records up to the lowest that failed, taken out of
/// `runs`: they are stored while the window folds (no folding reaction reads them; the writes
/// of records after a failure the fold meets are stored again when Lambda delivers those
/// records again: whole-item puts and deletes).
pub(super) fn take_writes(runs: &mut [RecordRun]) -> Vec<Deferred> {
    let failed_at = failed_at(runs);
    (runs.iter_mut())
        .filter(|r| r.report.index <= failed_at)
        .flat_map(|r| std::mem::take(&mut r.deferred))
        .collect()
}

/// The index of the lowest record of `runs` that failed (or was not started); none after it
/// started.
pub(super) fn failed_at(runs: &[RecordRun]) -> usize {
    (runs.iter())
        .filter_map(|r| r.failure.as_ref().map(|f| f.index))
        .min()
        .unwrap_or(usize::MAX)
}

/// Runs lanes of records.
pub(super) struct Run<'a> {
    pub(super) reactions: &'a [Box<dyn Reaction>],
    pub(super) adapters: &'a Adapters,
    pub(super) guard: Guard<'a>,
    pub(super) settle: &'a Settle<'a>,
    pub(super) plan: &'a Plan,
    pub(super) options: BatchOptions,
    /// Lanes that run at once.
    pub(super) max_concurrency: usize,
}

impl Run<'_> {
    /// Run `lanes` (indexes into `records`), up to `max_concurrency` at once: every record
    /// started, in stream order. No record after the lowest one that failed (or was not
    /// started) starts.
    pub(super) async fn lanes(
        &self,
        records: &[StreamRecord],
        lanes: Vec<Vec<usize>>,
    ) -> Vec<RecordRun> {
        let stop_after = AtomicUsize::new(usize::MAX);
        let mut ran: Vec<RecordRun> = stream::iter(lanes)
            .map(|lane| self.lane(records, lane, &stop_after))
            .buffer_unordered(self.max_concurrency)
            .collect::<Vec<Vec<RecordRun>>>()
            .await
            .into_iter()
            .flatten()
            .collect();
        ran.sort_by_key(|r| r.report.index);
        ran
    }

    /// The records of one lane, in stream order, until one fails, the deadline's reserve is
    /// reached, or another lane failed at an earlier record.
    async fn lane(
        &self,
        records: &[StreamRecord],
        lane: Vec<usize>,
        stop_after: &AtomicUsize,
    ) -> Vec<RecordRun> {
        let recorder = self.adapters.recorder();
        let mut ran = Vec::new();
        for index in lane {
            if index > stop_after.load(Ordering::SeqCst) {
                break;
            }
            let record = &records[index];
            let mut run = RecordRun {
                report: RecordReport::new(index, record),
                slots: Vec::new(),
                deferred: Vec::new(),
                failure: None,
            };
            // The first record always starts: an invocation that starts none makes no progress,
            // and Lambda would deliver the same batch again, and again.
            if index > 0
                && (self.options.stop_before).is_some_and(|stop| self.adapters.clock.now() >= stop)
            {
                let message = "not started: the invocation is too close to its deadline; \
                               Lambda delivers the records from here again"
                    .to_string();
                run.report.error = Some(message.clone());
                run.failure = Some(run.report.failure("deadline", message, true));
                stop_after.fetch_min(index, Ordering::SeqCst);
                ran.push(run);
                break;
            }
            run.failure = self.record(record, &mut run, &recorder).await.err();
            let stop = run.failure.is_some();
            if stop {
                stop_after.fetch_min(index, Ordering::SeqCst);
            }
            ran.push(run);
            if stop {
                break;
            }
        }
        ran
    }

    /// Apply `record`'s own change (a replay), then run every reaction that applies to it;
    /// the window's folds only get their slots. Stops at the first reaction that fails.
    async fn record(
        &self,
        record: &StreamRecord,
        run: &mut RecordRun,
        recorder: &Recorder,
    ) -> Result<(), RecordFailure> {
        let change = match &record.change {
            Ok(change) => change,
            // It breaks a rule every stream record keeps: no retry changes it, so it is parked
            // whole and the batch goes on.
            Err(defect) => {
                return self
                    .park_whole(record, run, "decode", defect.to_string(), false)
                    .await
            }
        };
        if let (true, Some(applier)) = (self.options.apply_own_change, &self.adapters.applier) {
            self.adapters.catalog.learn(&change.table, &change.keys);
            match measure_async(Stage::OwnChange, applier.apply(change)).await {
                Ok(Applied::Now) => run.report.applied = true,
                Ok(Applied::Before { in_this_run }) => {
                    run.report.already_applied = true;
                    run.report.applied_earlier_in_this_run = in_this_run;
                }
                // Reactions must not run on a state without the record's own change.
                Err(e) => {
                    let retryable = e.is_retryable();
                    return self
                        .park_whole(record, run, "apply", e.to_string(), retryable)
                        .await;
                }
            }
        }
        let ports = Ports {
            tables: &recorder.tables,
            objects: recorder,
            mailer: recorder,
        };
        let index = run.report.index;
        for (r, reaction) in self.reactions.iter().enumerate() {
            let name = reaction.name();
            let settled = |outcome| {
                Slot::Settled(ReactionReport {
                    reaction: name,
                    outcome,
                    effects: Vec::new(),
                })
            };
            if !reaction.applies(change) {
                run.slots.push(settled(Outcome::NotApplicable));
                continue;
            }
            if let Some(result) = self.plan.completed.get(&key_for(name, &change.event_id)) {
                tracing::info!(reaction = name, event_id = %change.event_id, outcome = "duplicate_skipped");
                run.slots.push(settled(Outcome::DuplicateSkipped {
                    result: result.clone(),
                }));
                continue;
            }
            // A record whose own item is unusable runs itself, so that it can be parked. A
            // reaction that folds windows, and does not coalesce, is asked by the fold, which
            // settles its records (reading an item for it costs as much as the reaction).
            let coalesce_key = reaction.coalesce_key(change);
            let unusable = match coalesce_key.is_none() && reaction.folds_windows() {
                true => None,
                false => reaction.unusable_data(change),
            };
            let coalesce_key = coalesce_key.filter(|_| unusable.is_none());
            if let Some(key) = coalesce_key {
                let last = self.plan.run_at.get(&(r, key)).copied().unwrap_or(index);
                if last > index {
                    run.slots
                        .push(settled(Outcome::Coalesced { into_record: last }));
                    continue;
                }
            }
            if reaction.folds_windows() {
                run.slots.push(Slot::AwaitsFold(r));
                continue;
            }
            let span = tracing::info_span!("reaction", event_id = %change.event_id, sequence_number = %change.sequence_number, reaction = name);
            let _enter = span.enter();
            let whose = Whose {
                record: index,
                reaction: r,
            };
            let settled = measure_async(Stage::Reactions, async {
                let ran = self.reaction(reaction.as_ref(), change, ports).await;
                (self.settle)
                    .run(whose, record, ran, recorder.take(), unusable)
                    .await
            })
            .await;
            run.deferred.extend(settled.deferred);
            run.slots.push(Slot::Settled(settled.report));
            if let Some(failed) = settled.failed {
                return Err(run.report.failure(name, failed.reason, failed.retryable));
            }
        }
        if run
            .slots
            .iter()
            .all(|slot| matches!(slot, Slot::Settled(r) if r.outcome == Outcome::NotApplicable))
        {
            // Not a failure: a table the worker was not built for (a shared stream, a filter
            // left wide), or an item kind no reaction needs.
            tracing::info!(table = %change.table, event_id = %change.event_id, sequence_number = %change.sequence_number, "no reaction applies to this record; skipped");
        }
        Ok(())
    }

    /// A record no reaction can run on (`stage`: it breaks a stream's rules, or its own change
    /// cannot be applied): parked whole, and reported as that stage's outcome, unless a retry
    /// can help or there is nowhere to park; then it fails.
    async fn park_whole(
        &self,
        record: &StreamRecord,
        run: &mut RecordRun,
        stage: &'static str,
        reason: String,
        retryable: bool,
    ) -> Result<(), RecordFailure> {
        let (outcome, failed) = (self.settle)
            .park_or_fail(record, stage, reason, retryable, false)
            .await;
        run.slots.push(Slot::Settled(ReactionReport {
            reaction: stage,
            outcome,
            effects: Vec::new(),
        }));
        match failed {
            None => Ok(()),
            Some(failed) => {
                run.report.error = Some(failed.reason.clone());
                Err(run.report.failure(stage, failed.reason, failed.retryable))
            }
        }
    }

    /// Run one reaction on `change`: a guarded one under its idempotency lock, its writes
    /// stored before the lock says it completed.
    async fn reaction(
        &self,
        reaction: &dyn Reaction,
        change: &Change,
        ports: Ports<'_>,
    ) -> Result<ReactionRun, ReactionError> {
        if reaction.idempotency() != Idempotency::Guarded {
            let reacted = react_caught(reaction, change, ports).await?;
            return Ok(ReactionRun::Done {
                result: reacted.result,
                deferred: reacted.deferred_writes,
            });
        }
        let guard = &self.guard;
        let key = key_for(reaction.name(), &change.event_id);
        let now = self.adapters.clock.now();
        let until = self.options.deadline.unwrap_or_else(|| {
            now + chrono::Duration::from_std(guard.config.default_in_progress)
                .unwrap_or(chrono::Duration::seconds(60))
        });
        let acquired = guard
            .acquire(&key, change.approximate_creation, now, until)
            .await?;
        if let Acquired::Duplicate { result } = acquired {
            return Ok(ReactionRun::Duplicate { result });
        }
        let outcome = async {
            let reacted = react_caught(reaction, change, ports).await?;
            // A guarded reaction's writes must be stored before it is marked completed.
            for (table, writes) in group_by_table(reacted.deferred_writes) {
                ports.tables.batch_write(&table, &writes).await?;
            }
            Ok::<_, ReactionError>(reacted.result)
        }
        .await;
        match outcome {
            // Nothing done at all (a mail with no address yet): the lock is let go rather than
            // kept as done, so a later delivery may still send it.
            Ok(result)
                if reaction.nothing_done_when_not_sent()
                    && handlers::mail::not_sent(&result).is_some() =>
            {
                if let Err(release) = guard.release(&key).await {
                    tracing::warn!(error = %release, "could not release idempotency lock {key}");
                }
                Ok(ReactionRun::Done {
                    result,
                    deferred: Vec::new(),
                })
            }
            Ok(result) => {
                guard
                    .complete(&key, &result, change.approximate_creation)
                    .await?;
                Ok(ReactionRun::Done {
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

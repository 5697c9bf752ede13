//! One record's work in its lane: its own change applied first (a replay), then each
//! applicable reaction run (guarded ones under their idempotency lock, a panic caught), and
//! what each run concludes to: done, a duplicate, or parked where no retry can help.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use handlers::ports::{Ports, WriteRequest};
use handlers::skipped::Skipped;
use handlers::{Change, Idempotency, Reaction, ReactionError};

use super::deferred::{group_by_table, Deferred};
use super::effects::{Effect, Recorder};
use super::idempotency::{key_for, Acquired};
use super::plan::Plan;
use super::report::{Outcome, ReactionReport, RecordFailure, RecordReport};
use super::{BatchOptions, Worker};
use crate::adapters::{Applied, ParkedRecord};
use crate::decode::StreamRecord;
use crate::stages::{measure_async, Stage};
/// What a reaction's run came to for its record.
pub(super) struct Concluded {
    pub(super) report: ReactionReport,
    pub(super) deferred: Vec<Deferred>,
    /// The record fails: why, and whether a retry can help.
    pub(super) failed: Option<(String, bool)>,
}

pub(super) enum ReactionRun {
    Done {
        result: serde_json::Value,
        deferred: Vec<(String, WriteRequest)>,
    },
    Duplicate {
        result: serde_json::Value,
    },
}

impl Worker {
    /// Apply `record`'s own change (a replay), then run every reaction that applies to it;
    /// the window's folds only get their places. Stops at the first reaction that fails.
    pub(super) async fn process_record(
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
            match measure_async(Stage::OwnChange, applier.apply(change)).await {
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
            let settled = measure_async(Stage::Reactions, async {
                let run = self
                    .run_reaction(reaction.as_ref(), change, ports, options)
                    .await;
                self.conclude(r, record, report.index, run, recorder.take(), unusable)
                    .await
            })
            .await;
            buffer.extend(settled.deferred);
            report.reactions.push(settled.report);
            if let Some((reason, retryable)) = settled.failed {
                return Err(report.failure(name, reason, retryable));
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

    /// What a reaction's run on record `record` comes to: its report (parked where no retry can
    /// fix it, or where the record wrote data the reaction cannot use), the writes it deferred,
    /// and the record's failure if any (reason, retryable).
    pub(super) async fn conclude(
        &self,
        r: usize,
        stream_record: &StreamRecord,
        record: usize,
        run: Result<ReactionRun, ReactionError>,
        mut effects: Vec<Effect>,
        unusable: Option<Skipped>,
    ) -> Concluded {
        let name = self.reactions[r].name();
        let mut deferred_writes = Vec::new();
        let (outcome, failed) = match run {
            Ok(ReactionRun::Done { result, deferred }) => {
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
                let left_out = warn_of_skipped(&result);
                match self.park_bad_data(name, stream_record, unusable).await {
                    None => {
                        let outcome = Outcome::completed(result, left_out);
                        tracing::info!(outcome = outcome.name());
                        (outcome, None)
                    }
                    Some(Ok((reason, location))) => {
                        tracing::warn!(outcome = "parked", %location, error = %reason);
                        let parked = Outcome::Parked {
                            reason,
                            location,
                            panicked: false,
                        };
                        (parked, None)
                    }
                    // Nothing is dropped silently: unparked, the record fails for a retry.
                    Some(Err(reason)) => retry_later(reason, false),
                }
            }
            Ok(ReactionRun::Duplicate { result }) => {
                tracing::info!(outcome = "duplicate_skipped");
                (Outcome::DuplicateSkipped { result }, None)
            }
            // Retried, and counted apart: it says another invocation has this record now.
            Err(e @ ReactionError::InProgress { .. }) => retry_later(e.to_string(), true),
            Err(e) => {
                let panicked = matches!(e, ReactionError::Panicked(_));
                self.park_or_fail(
                    stream_record,
                    name,
                    e.to_string(),
                    e.is_retryable(),
                    panicked,
                )
                .await
            }
        };
        Concluded {
            report: ReactionReport {
                reaction: name,
                outcome,
                effects,
            },
            deferred: deferred_writes,
            failed,
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
            in_progress: false,
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
                Err(report.failure(stage, reason, retryable))
            }
        }
    }

    /// Park a record whose own item holds data the application got wrong, once `reaction` ran
    /// without it: (reason, location), or why it could not be parked. None when the item is
    /// fine or this worker has nowhere to park (the skipped item is in the result either way).
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
    pub(super) async fn park(
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
    ) -> Result<ReactionRun, ReactionError> {
        if reaction.idempotency() != Idempotency::Guarded {
            let reacted = react_caught(reaction, change, ports).await?;
            return Ok(ReactionRun::Done {
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
            return Ok(ReactionRun::Duplicate { result });
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

/// The error a caught panic becomes, with its message; a WARN line says which reaction.
pub(super) fn panicked(
    reaction: &'static str,
    panic: Box<dyn std::any::Any + Send>,
) -> ReactionError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|m| m.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string());
    tracing::warn!(reaction, panic = %message, "a reaction panicked; its record is parked");
    ReactionError::Panicked(message)
}

/// A WARN line for every item a reaction left out because the application wrote something it
/// cannot use (`"skipped"` anywhere in its result: a reaction of several aggregates reports
/// per aggregate), within the reaction's span, so the line names the record and reaction too.
/// Returns whether the result names anything left out: such items, or attributes it could not
/// read (`"unread"`, which the reaction logs itself). A `"skipped"` that is text is a
/// reaction's word for "nothing to do", not data left out.
fn warn_of_skipped(result: &serde_json::Value) -> bool {
    match result {
        serde_json::Value::Object(fields) => {
            let mut left_out = false;
            for (name, value) in fields {
                match (name.as_str(), value) {
                    ("skipped", serde_json::Value::Array(entries)) => {
                        left_out = true;
                        for entry in entries {
                            tracing::warn!(
                                item = %entry["item"].as_str().unwrap_or_default(),
                                attribute = %entry["attribute"].as_str().unwrap_or_default(),
                                value = %entry["value"].as_str().unwrap_or_default(),
                                "left out of the computation: the application wrote a value the worker cannot use"
                            );
                        }
                    }
                    ("skipped", _) => {}
                    ("unread", value) => left_out |= !value.is_null(),
                    (_, value) => left_out |= warn_of_skipped(value),
                }
            }
            left_out
        }
        serde_json::Value::Array(values) => {
            // Every entry, for its WARN lines: not `any`, which would stop at the first.
            let mut left_out = false;
            for value in values {
                left_out |= warn_of_skipped(value);
            }
            left_out
        }
        _ => false,
    }
}

/// A reaction's outcome that a retry can change (`in_progress`: another invocation holds the
/// record's lock), and the failure it makes of the record.
fn retry_later(reason: String, in_progress: bool) -> (Outcome, Option<(String, bool)>) {
    tracing::warn!(outcome = "failed", retryable = true, error = %reason);
    let failed = Outcome::Failed {
        reason: reason.clone(),
        retryable: true,
        in_progress,
    };
    (failed, Some((reason, true)))
}

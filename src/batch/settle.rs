//! What a reaction's run on one record comes to ([`Settled`]): done, a duplicate, parked where
//! no retry can help (or where the record holds data the reaction cannot use), or failed; and
//! parking a record ([`Settle::park`]). The run, the fold and the store steps all end a
//! reaction's work here, so a record is parked or failed the same way whichever step met it.

use std::sync::Arc;

use handlers::ports::{Clock, WriteRequest};
use handlers::skipped::Skipped;
use handlers::{Reaction, ReactionError};

use super::effects::Effect;
use super::report::{Outcome, ReactionReport};
use crate::adapters::{ParkedRecord, Parking};
use crate::catalog::Catalog;
use crate::decode::StreamRecord;

/// A write waiting for the next BatchWriteItem, and whose it is.
pub(super) struct Deferred {
    pub(super) whose: Whose,
    pub(super) table: String,
    pub(super) write: WriteRequest,
}

/// A record of the batch (its index) and one of the worker's reactions (its place).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Whose {
    pub(super) record: usize,
    pub(super) reaction: usize,
}

/// What a reaction's run gave, before it is settled.
pub(super) enum ReactionRun {
    Done {
        result: serde_json::Value,
        deferred: Vec<(String, WriteRequest)>,
    },
    Duplicate {
        result: serde_json::Value,
    },
}

/// Why a record fails, and whether a retry can help.
#[derive(Debug, Clone)]
pub(super) struct Failed {
    pub(super) reason: String,
    pub(super) retryable: bool,
}

/// What a reaction's run came to for its record.
pub(super) struct Settled {
    pub(super) report: ReactionReport,
    pub(super) deferred: Vec<Deferred>,
    /// The record fails.
    pub(super) failed: Option<Failed>,
}

/// Settling reactions' runs, and parking records.
pub(super) struct Settle<'a> {
    pub(super) reactions: &'a [Box<dyn Reaction>],
    pub(super) catalog: &'a Catalog,
    pub(super) parking: Option<&'a Arc<dyn Parking>>,
    pub(super) clock: &'a dyn Clock,
}

impl Settle<'_> {
    /// What the run of reaction `whose.reaction` on `record` comes to: its report (parked
    /// where no retry can fix it, or where the record wrote data the reaction cannot use),
    /// the writes it deferred, and the record's failure if any.
    pub(super) async fn run(
        &self,
        whose: Whose,
        record: &StreamRecord,
        run: Result<ReactionRun, ReactionError>,
        mut effects: Vec<Effect>,
        unusable: Option<Skipped>,
    ) -> Settled {
        let name = self.reactions[whose.reaction].name();
        let mut deferred_writes = Vec::new();
        let (outcome, failed) = match run {
            Ok(ReactionRun::Done { result, deferred }) => {
                for (table, write) in deferred {
                    if let WriteRequest::Put(item) = &write {
                        effects.push(Effect::put(self.catalog, &table, item));
                    }
                    deferred_writes.push(Deferred {
                        whose,
                        table,
                        write,
                    });
                }
                let left_out = warn_of_skipped(&result);
                match self.park_bad_data(name, record, unusable).await {
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
                self.park_or_fail(record, name, e.to_string(), e.is_retryable(), panicked)
                    .await
            }
        };
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

    /// What no retry can fix is parked, so that it costs only itself; the rest fails, and so
    /// does what cannot be parked (retryable: nothing is dropped silently). The outcome to
    /// report for `stage` (a reaction, or `decode` / `apply`), and the failure if any.
    pub(super) async fn park_or_fail(
        &self,
        record: &StreamRecord,
        stage: &'static str,
        reason: String,
        retryable: bool,
        panicked: bool,
    ) -> (Outcome, Option<Failed>) {
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
        (outcome, Some(Failed { reason, retryable }))
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
        let parking = self.parking?;
        let record = ParkedRecord {
            raw: &record.raw,
            table: &record.table,
            sequence_number: &record.sequence_number,
            reaction,
            reason: reason.to_string(),
            parked_at: self.clock.now(),
        };
        Some(parking.park(&record).await)
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
fn retry_later(reason: String, in_progress: bool) -> (Outcome, Option<Failed>) {
    tracing::warn!(outcome = "failed", retryable = true, error = %reason);
    let failed = Outcome::Failed {
        reason: reason.clone(),
        retryable: true,
        in_progress,
    };
    (
        failed,
        Some(Failed {
            reason,
            retryable: true,
        }),
    )
}

/// Group writes by table, keeping first-seen table order and each table's write order.
pub(super) fn group_by_table(
    writes: Vec<(String, WriteRequest)>,
) -> Vec<(String, Vec<WriteRequest>)> {
    let mut groups: Vec<(String, Vec<WriteRequest>)> = Vec::new();
    for (table, write) in writes {
        match groups.iter_mut().find(|(t, _)| *t == table) {
            Some((_, group)) => group.push(write),
            None => groups.push((table, vec![write])),
        }
    }
    groups
}

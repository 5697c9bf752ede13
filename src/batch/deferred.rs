//! Deferred writes (the audit items): gathered per window, stored in BatchWriteItem calls while
//! the window folds, one at a time where the service refuses a request for good, so that only
//! the records whose writes are refused are parked. A record settles only once they are stored.

use handlers::ports::WriteRequest;

use super::report::{Outcome, RecordFailure, RecordReport};
use super::Worker;
use crate::decode::StreamRecord;
/// A write waiting for the next BatchWriteItem, and whose it is.
pub(super) struct Deferred {
    pub(super) record: usize,
    pub(super) reaction: usize,
    pub(super) table: String,
    pub(super) write: WriteRequest,
}

impl Worker {
    /// Store `deferred` writes, stopping at the first that fails for a retry.
    /// A write the service will never accept (an item over 400 KB) fails its whole request
    /// without saying which it is, so then they are stored one at a time and only the records
    /// whose writes are refused are parked (stored writes are puts and deletes of whole items:
    /// storing one twice changes nothing).
    pub(super) async fn store(&self, records: &[StreamRecord], deferred: Vec<Deferred>) -> Stored {
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
pub(super) struct Stored {
    /// Records parked because the service refuses their write for good: reason, location.
    parked: Vec<((usize, usize), String, String)>,
    /// The first write not stored: whose, why, and whether a retry can help.
    failed: Option<((usize, usize), String, bool)>,
}

impl Stored {
    /// Adds what storing more writes came to; the failure kept is the earliest record's.
    pub(super) fn add(&mut self, more: Stored) {
        self.parked.extend(more.parked);
        self.failed = (self.failed.take().into_iter())
            .chain(more.failed)
            .min_by_key(|((record, _), ..)| *record);
    }

    /// Marks the parked records in `pending`, and fails the first record whose writes were not
    /// stored (returned), dropping the reports after it (Lambda delivers those records again).
    /// Records no longer pending (after the window's failure: delivered again) are left alone.
    pub(super) fn mark_reports(self, pending: &mut Vec<RecordReport>) -> Option<RecordFailure> {
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
            .then(|| fail_unstored(whose, &error, retryable, pending))
    }
}

/// The failure of `record`, whose `reaction`'s writes could not be stored; the reports after
/// it are dropped (Lambda delivers those records again).
fn fail_unstored(
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
            in_progress: false,
        };
        stage = reaction_report.reaction;
    }
    report.failure(stage, reason, retryable)
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

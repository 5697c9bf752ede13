//! Step 5, deferred: the deferred writes (the audit items), gathered per window and stored in
//! BatchWriteItem calls while the window folds, one at a time where the service refuses a
//! request for good, so that only the records whose writes are refused are parked. A record
//! settles only once they are stored ([`Stored::mark_reports`]).

use handlers::ports::Tables;
use handlers::Reaction;

use super::report::{Outcome, RecordFailure, RecordReport};
use handlers::ports::WriteRequest;

use super::settle::{Deferred, Settle, Whose};
use crate::decode::StreamRecord;

/// Stores deferred writes.
pub(super) struct Store<'a> {
    pub(super) tables: &'a dyn Tables,
    pub(super) reactions: &'a [Box<dyn Reaction>],
    pub(super) settle: &'a Settle<'a>,
}

impl Store<'_> {
    /// Store `deferred` writes, stopping at the first that fails for a retry.
    /// A write the service will never accept (an item over 400 KB) fails its whole request
    /// without saying which it is, so then they are stored one at a time and only the records
    /// whose writes are refused are parked (stored writes are puts and deletes of whole items:
    /// storing one twice changes nothing).
    pub(super) async fn writes(&self, records: &[StreamRecord], deferred: Vec<Deferred>) -> Stored {
        let mut stored = Stored::default();
        let Some(first) = deferred.first().map(|d| d.whose) else {
            return stored;
        };
        let (groups, order) = by_table(deferred);
        let mut refused = None;
        for group in &groups {
            if let Err(e) = self.tables.batch_write(&group.table, &group.writes).await {
                refused = Some(e);
                break;
            }
        }
        match refused {
            None => return stored,
            Some(e) if e.is_retryable() => {
                stored.failed = Some(Unstored {
                    whose: first,
                    error: e.to_string(),
                    retryable: true,
                });
                return stored;
            }
            Some(_) => {}
        }
        for (group, at) in order {
            let (group, whose) = (&groups[group], groups[group].whose[at]);
            let one = std::slice::from_ref(&group.writes[at]);
            let Err(e) = self.tables.batch_write(&group.table, one).await else {
                continue;
            };
            let record = records.get(whose.record);
            let name = self.reactions.get(whose.reaction).map(|r| r.name());
            let parked = match (e.is_retryable(), record, name) {
                (false, Some(record), Some(name)) => {
                    let reason = format!("storing its writes failed: {e}");
                    (self.settle.park(record, name, &reason).await)
                        .map(|parked| parked.map(|location| (reason, location)))
                }
                _ => None,
            };
            match parked {
                Some(Ok((reason, location))) => {
                    tracing::warn!(outcome = "parked", %location, error = %reason);
                    stored.parked.push(ParkedWrite {
                        whose,
                        reason,
                        location,
                    });
                }
                // Nothing is dropped silently: unparked, the record fails for a retry.
                Some(Err(park)) => {
                    stored.failed = Some(Unstored {
                        whose,
                        error: format!("{e}; and it could not be parked: {park}"),
                        retryable: true,
                    });
                    return stored;
                }
                None => {
                    stored.failed = Some(Unstored {
                        whose,
                        error: e.to_string(),
                        retryable: e.is_retryable(),
                    });
                    return stored;
                }
            }
        }
        stored
    }
}

/// One table's deferred writes, in their order, and whose each is.
struct TableWrites {
    table: String,
    writes: Vec<WriteRequest>,
    whose: Vec<Whose>,
}

/// `deferred` moved into one list per table (each lent whole to the store, never copied),
/// with where each write went, in `deferred`'s order: after a refusal they are stored one at a
/// time in the records' order, so that the first failure is the earliest record's.
fn by_table(deferred: Vec<Deferred>) -> (Vec<TableWrites>, Vec<(usize, usize)>) {
    let mut groups: Vec<TableWrites> = Vec::new();
    let mut order = Vec::with_capacity(deferred.len());
    for d in deferred {
        let group = match groups.iter().position(|g| g.table == d.table) {
            Some(group) => group,
            None => {
                groups.push(TableWrites {
                    table: d.table,
                    writes: Vec::new(),
                    whose: Vec::new(),
                });
                groups.len() - 1
            }
        };
        order.push((group, groups[group].writes.len()));
        groups[group].writes.push(d.write);
        groups[group].whose.push(d.whose);
    }
    (groups, order)
}

/// What storing deferred writes came to.
#[derive(Default)]
pub(super) struct Stored {
    /// Records parked because the service refuses their write for good.
    parked: Vec<ParkedWrite>,
    /// The first write not stored.
    failed: Option<Unstored>,
}

/// A record parked because the service refuses its reaction's write for good.
struct ParkedWrite {
    whose: Whose,
    reason: String,
    location: String,
}

/// A write not stored: whose, why, and whether a retry can help.
struct Unstored {
    whose: Whose,
    error: String,
    retryable: bool,
}

impl Stored {
    /// Adds what storing more writes came to; the failure kept is the earliest record's.
    pub(super) fn add(&mut self, more: Stored) {
        self.parked.extend(more.parked);
        self.failed = (self.failed.take().into_iter())
            .chain(more.failed)
            .min_by_key(|unstored| unstored.whose.record);
    }

    /// Marks the parked records in `pending`, and fails the first record whose writes were not
    /// stored (returned), dropping the reports after it (Lambda delivers those records again).
    /// Records no longer pending (after the window's failure: delivered again) are left alone.
    pub(super) fn mark_reports(self, pending: &mut Vec<RecordReport>) -> Option<RecordFailure> {
        for ParkedWrite {
            whose,
            reason,
            location,
        } in self.parked
        {
            if let Some(report) = pending
                .iter_mut()
                .find(|p| p.index == whose.record)
                .and_then(|p| p.reactions.get_mut(whose.reaction))
            {
                report.outcome = Outcome::Parked {
                    reason,
                    location,
                    panicked: false,
                };
            }
        }
        let unstored = self.failed?;
        pending
            .last()
            .is_some_and(|last| unstored.whose.record <= last.index)
            .then(|| fail_unstored(unstored, pending))
    }
}

/// The failure of `record`, whose `reaction`'s writes could not be stored; the reports after
/// it are dropped (Lambda delivers those records again).
fn fail_unstored(unstored: Unstored, pending: &mut Vec<RecordReport>) -> RecordFailure {
    let Unstored {
        whose: Whose { record, reaction },
        error,
        retryable,
    } = unstored;
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

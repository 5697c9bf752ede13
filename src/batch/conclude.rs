//! Step 6, conclude: a window's reports, each record's reactions in the worker's order (what
//! the run settled and what the fold did), up to the window's first failure: the records after
//! it are delivered again, so their reports and writes are dropped. Gives that failure too, and
//! the writes the folds deferred.

use handlers::Reaction;

use super::fold::Folded;
use super::report::{Outcome, ReactionReport, RecordFailure, RecordReport};
use super::run::{RecordRun, Slot};
use super::settle::{Deferred, Whose};

/// A window's reports, up to its first failure.
pub(super) struct Concluded {
    pub(super) reports: Vec<RecordReport>,
    pub(super) failure: Option<RecordFailure>,
    /// What the folds deferred for the records reported (today's folds defer none).
    pub(super) fold_writes: Vec<Deferred>,
}

/// The reports of `runs` (in stream order), the folds' results in their slots.
pub(super) fn conclude(
    runs: Vec<RecordRun>,
    mut folded: Folded,
    reactions: &[Box<dyn Reaction>],
) -> Concluded {
    let mut concluded = Concluded {
        reports: Vec::with_capacity(runs.len()),
        failure: None,
        fold_writes: Vec::new(),
    };
    for mut run in runs {
        let index = run.report.index;
        let mut reaction_reports = Vec::with_capacity(run.slots.len());
        for slot in run.slots {
            let reaction = match slot {
                Slot::Settled(report) => {
                    reaction_reports.push(report);
                    continue;
                }
                Slot::AwaitsFold(reaction) => reaction,
            };
            let name = reactions[reaction].name();
            let Some(settled) = folded.settled.remove(&Whose {
                record: index,
                reaction,
            }) else {
                // Not folded: this or an earlier record failed in its lane.
                reaction_reports.push(ReactionReport {
                    reaction: name,
                    outcome: Outcome::Failed {
                        reason: "not run: this or an earlier record of the batch failed; it runs when the batch is delivered again".into(),
                        retryable: true,
                        in_progress: false,
                    },
                    effects: Vec::new(),
                });
                continue;
            };
            concluded.fold_writes.extend(settled.deferred);
            if let Some(failed) = settled.failed {
                let failure = run.report.failure(name, failed.reason, failed.retryable);
                run.report
                    .error
                    .get_or_insert_with(|| failure.message.clone());
                run.failure.get_or_insert(failure);
            }
            reaction_reports.push(settled.report);
        }
        run.report.reactions = reaction_reports;
        concluded.reports.push(run.report);
        // In stream order, the first record that failed is the window's failure: the records
        // after it are delivered again, so their reports and writes are dropped.
        if run.failure.is_some() {
            concluded.failure = run.failure;
            break;
        }
    }
    concluded
}

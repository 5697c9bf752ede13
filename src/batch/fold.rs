//! Step 4, fold: the reactions that fold windows (`Reaction::folds_windows`: the incremental
//! ratings and thread statistics) get the window's changes at once, in stream order, once its
//! lanes ran, and write them in a few requests. Only the records before the first that failed
//! in its lane are folded (those after it are delivered again): as in Lambda, where the
//! application's writes precede the stream, a replay has then applied each record's own
//! change. Gives what each fold came to per record ([`Folded`]).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use handlers::ports::Ports;
use handlers::{Change, Reaction, ReactionError};
use tracing::Instrument;

use super::run::{failed_at, RecordRun};
use super::settle::{panicked, ReactionRun, Settle, Settled, Whose};
use super::Adapters;
use crate::decode::StreamRecord;

/// What the window's folds came to, per record and folding reaction.
pub(super) struct Folded {
    /// None for the records from the lowest that failed in its lane on: not folded.
    pub(super) settled: HashMap<Whose, Settled>,
}

/// Folds a window.
pub(super) struct Fold<'a> {
    pub(super) reactions: &'a [Box<dyn Reaction>],
    pub(super) adapters: &'a Adapters,
    pub(super) settle: &'a Settle<'a>,
}

impl Fold<'_> {
    /// Each folding reaction over the records of `runs` that await it, before the lowest that
    /// failed in its lane.
    pub(super) async fn window(&self, records: &[StreamRecord], runs: &[RecordRun]) -> Folded {
        let failed_at = failed_at(runs);
        let mut settled = HashMap::new();
        for (r, reaction) in self.reactions.iter().enumerate() {
            if !reaction.folds_windows() {
                continue;
            }
            let waiting: Vec<(usize, &Change)> = runs
                .iter()
                .filter(|run| run.report.index < failed_at && run.awaits_fold(r))
                .filter_map(|run| {
                    let index = run.report.index;
                    Some((index, records[index].change.as_ref().ok()?))
                })
                .collect();
            if waiting.is_empty() {
                continue;
            }
            let changes: Vec<&Change> = waiting.iter().map(|(_, change)| *change).collect();
            let recorder = self.adapters.recorder();
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
            for (n, &(index, change)) in waiting.iter().enumerate() {
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
                let whose = Whose {
                    record: index,
                    reaction: r,
                };
                let span = tracing::info_span!("reaction", event_id = %change.event_id, sequence_number = %change.sequence_number, reaction = reaction.name());
                let result = (self.settle)
                    .run(
                        whose,
                        &records[index],
                        run,
                        effects,
                        reaction.unusable_data(change),
                    )
                    .instrument(span)
                    .await;
                settled.insert(whose, result);
            }
        }
        Folded { settled }
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

//! The contract every reaction follows ([`Reaction`]): what it is told (a change and the
//! ports), what it answers ([`Reacted`]), and how it stays correct when a record arrives
//! again ([`Idempotency`]). The batch engine knows reactions only by this.

use async_trait::async_trait;

use crate::change::Change;
use crate::error::ReactionError;
use crate::ports::{Ports, WriteRequest};
use crate::skipped::Skipped;

/// How a reaction stays correct when a record arrives again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Repeating it changes nothing (deterministic keys, conditional writes): the batch runs
    /// it without the idempotency table.
    ByConstruction,
    /// Repeating it changes nothing either (it recomputes from state), but costs reads: once a
    /// record has settled, the batch notes in the idempotency table that the reaction is done
    /// with it, and skips it when the record comes again. The note is only a saving: without
    /// it the reaction runs again, harmlessly.
    Recomputed,
    /// It has effects that must happen once (an ADD, a mail): the batch takes a lock in the
    /// idempotency table before and records the result after.
    Guarded,
}

/// What a reaction did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reacted {
    /// A short JSON summary, stored as the idempotency record's `result` for guarded reactions.
    pub result: serde_json::Value,
    /// Unconditional writes the batch may group into BatchWriteItem calls with other records'.
    /// Only [`Idempotency::ByConstruction`] reactions should use this: the batch flushes a
    /// guarded reaction's deferred writes before it records completion.
    pub deferred_writes: Vec<(String, WriteRequest)>,
}

#[async_trait]
pub trait Reaction: Send + Sync {
    /// Stable name: part of the idempotency key and of every report line.
    fn name(&self) -> &'static str;
    fn idempotency(&self) -> Idempotency;
    /// Whether this change concerns the reaction at all (cheap, no I/O).
    fn applies(&self, change: &Change) -> bool;
    /// For reactions that recompute from state: what the change affects (an estimation id).
    /// Within one batch the reaction then runs once per key, at the last record with that key,
    /// since by then the state includes every earlier change.
    fn coalesce_key(&self, _change: &Change) -> Option<String> {
        None
    }
    /// Partitions other than the record's own ([`crate::item::partition`]: table and partition key) that
    /// the reaction reads or writes for `change`: the profile a mail goes to. Within a batch, records that share a partition keep stream
    /// order; the others run at once. A partition left out here could be read before an
    /// earlier record of the batch changed it.
    fn partitions(&self, _change: &Change) -> Vec<String> {
        Vec::new()
    }
    /// Data the application got wrong in this record's own item (its new image), which the
    /// reaction leaves out of its computation. The batch runs the reaction all the same (never
    /// coalesced away), then parks the record: kept whole and counted, for a person to see and
    /// to redrive once the application fixed the item. Nothing fails because of it.
    fn unusable_data(&self, _change: &Change) -> Option<Skipped> {
        None
    }
    async fn react(&self, change: &Change, ports: Ports<'_>) -> Result<Reacted, ReactionError>;
    /// Whether a result of this (guarded) reaction that says no mail went out (`not_sent`,
    /// [`crate::mail::not_sent`]) means it did nothing at all: then the batch lets its
    /// idempotency lock go instead of recording it done, so the mail spends no idempotency item
    /// and a later delivery, once the address is there, may send it. False for a reaction
    /// that has other effects before its mail (a rendered proposal, a claimed share).
    fn nothing_done_when_not_sent(&self) -> bool {
        false
    }
    /// Whether the batch hands this reaction a window's changes at once
    /// ([`Reaction::react_window`]) instead of one record at a time: for a reaction that folds
    /// changes into aggregates and writes a window's worth in a few requests. Such a reaction
    /// keeps stream order itself, so it names no [`Reaction::partitions`].
    fn folds_windows(&self) -> bool {
        false
    }
    /// The changes of one window this reaction applies to, in stream order. One result per
    /// change, in the same order; a change may fail alone. The results end early when the
    /// reaction stopped at a failure: the changes after it were not attempted. The default
    /// runs [`Reaction::react`] on each in turn and stops at the first error.
    async fn react_window(
        &self,
        changes: &[&Change],
        ports: Ports<'_>,
    ) -> Vec<Result<Reacted, ReactionError>> {
        let mut results = Vec::new();
        for change in changes {
            let result = self.react(change, ports).await;
            let failed = result.is_err();
            results.push(result);
            if failed {
                break;
            }
        }
        results
    }
}

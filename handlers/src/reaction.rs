//! The contract every reaction follows.

use async_trait::async_trait;

use crate::change::Change;
use crate::error::ReactionError;
use crate::ports::{Ports, WriteRequest};

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
    async fn react(&self, change: &Change, ports: Ports<'_>) -> Result<Reacted, ReactionError>;
}

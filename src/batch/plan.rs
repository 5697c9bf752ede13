//! Step 1, plan: what a batch knows before it starts ([`Plan`]): the reactions earlier
//! deliveries completed (their completion notes, read in one BatchGetItem), and where each
//! coalescing reaction runs.

use std::collections::HashMap;

use handlers::{Idempotency, Reaction};

use super::idempotency::{key_for, Guard};
use crate::decode::StreamRecord;

/// What the batch knows before it starts.
pub(super) struct Plan {
    /// Idempotency keys (`<reaction>#<eventID>`) an earlier delivery completed, with results.
    pub(super) completed: HashMap<String, serde_json::Value>,
    /// Where each coalescing reaction runs: (reaction, coalescing key) -> record index.
    pub(super) run_at: HashMap<(usize, String), usize>,
}

impl Plan {
    /// What the batch of `records` knows before it starts: which of `reactions` earlier
    /// deliveries completed, and where each coalescing reaction runs.
    pub(super) async fn make(
        reactions: &[Box<dyn Reaction>],
        guard: &Guard<'_>,
        records: &[StreamRecord],
    ) -> Plan {
        let completed = completed_before(reactions, guard, records).await;
        // For each (reaction, coalescing key), the last record of the batch the reaction
        // applies to with that key (a record it does not apply to, or is already done with,
        // must not absorb the others' work).
        let mut run_at = HashMap::new();
        for (index, record) in records.iter().enumerate() {
            let Ok(change) = &record.change else { continue };
            for (r, reaction) in reactions.iter().enumerate() {
                let done = || completed.contains_key(&key_for(reaction.name(), &change.event_id));
                if let Some(key) = reaction
                    .coalesce_key(change)
                    .filter(|_| reaction.applies(change) && !done())
                {
                    run_at.insert((r, key), index);
                }
            }
        }
        Plan { completed, run_at }
    }
}

/// The idempotency records of this batch's records that say a reaction completed them:
/// one BatchGetItem for the batch instead of a lock attempt (guarded reactions) or a
/// recomputation (recomputing ones) per record. Only a saving: when the read fails, every
/// reaction runs and a guarded one still meets its lock.
async fn completed_before(
    reactions: &[Box<dyn Reaction>],
    guard: &Guard<'_>,
    records: &[StreamRecord],
) -> HashMap<String, serde_json::Value> {
    if !guard.config.completion_notes {
        return HashMap::new();
    }
    let mut keys: Vec<String> = records
        .iter()
        .filter_map(|record| record.change.as_ref().ok())
        .flat_map(|change| {
            reactions
                .iter()
                .filter(|r| r.idempotency() != Idempotency::ByConstruction && r.applies(change))
                .map(|r| key_for(r.name(), &change.event_id))
        })
        .collect();
    if keys.is_empty() {
        return HashMap::new();
    }
    keys.sort();
    keys.dedup();
    match guard.completed(&keys).await {
        Ok(completed) => completed,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the batch's idempotency records; every reaction runs");
            HashMap::new()
        }
    }
}

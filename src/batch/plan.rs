//! What a batch knows before it starts ([`Plan`]: the reactions earlier deliveries completed,
//! and where each coalescing reaction runs) and the completion notes it leaves for the next
//! delivery of the same records.

use std::collections::HashMap;

use handlers::ports::WriteRequest;
use handlers::Idempotency;

use super::idempotency::key_for;
use super::report::{Outcome, ReactionReport, RecordReport};
use super::Worker;
use crate::decode::StreamRecord;
/// BatchWriteItem takes 25 requests; completion notes are written at that size.
const FLUSH_AT: usize = 25;

/// What the batch knows before it starts.
pub(super) struct Plan {
    /// Idempotency keys (`<reaction>#<eventID>`) an earlier delivery completed, with results.
    pub(super) completed: HashMap<String, serde_json::Value>,
    /// Where each coalescing reaction runs: (reaction, coalescing key) -> record index.
    pub(super) run_at: HashMap<(usize, String), usize>,
}

impl Worker {
    /// What the batch knows before it starts: which reactions earlier deliveries completed,
    /// and where each coalescing reaction runs.
    pub(super) async fn plan(&self, records: &[StreamRecord]) -> Plan {
        let completed = self.completed_before(records).await;
        // For each (reaction, coalescing key), the last record of the batch the reaction
        // applies to with that key (a record it does not apply to, or is already done with,
        // must not absorb the others' work).
        let mut run_at = HashMap::new();
        for (index, record) in records.iter().enumerate() {
            let Ok(change) = &record.change else { continue };
            for (r, reaction) in self.reactions.iter().enumerate() {
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

    /// The idempotency records of this batch's records that say a reaction completed them:
    /// one BatchGetItem for the batch instead of a lock attempt (guarded reactions) or a
    /// recomputation (recomputing ones) per record. Only a saving: when the read fails, every
    /// reaction runs and a guarded one still meets its lock.
    async fn completed_before(
        &self,
        records: &[StreamRecord],
    ) -> HashMap<String, serde_json::Value> {
        if !self.idempotency.completion_notes {
            return HashMap::new();
        }
        let mut keys: Vec<String> = records
            .iter()
            .filter_map(|record| record.change.as_ref().ok())
            .flat_map(|change| {
                self.reactions
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
        match self.guard().completed(&keys).await {
            Ok(completed) => completed,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the batch's idempotency records; every reaction runs");
                HashMap::new()
            }
        }
    }

    /// Notes for the settled `reports` that their recomputing reactions are done with them
    /// (a record that failed gets none: its retry must run them).
    pub(super) fn completion_notes(
        &self,
        reports: &[RecordReport],
        records: &[StreamRecord],
    ) -> Vec<WriteRequest> {
        if !self.idempotency.completion_notes {
            return Vec::new();
        }
        let mut notes = Vec::new();
        for report in reports {
            let failed = |r: &ReactionReport| matches!(r.outcome, Outcome::Failed { .. });
            if report.error.is_some() || report.reactions.iter().any(failed) {
                continue;
            }
            for (reaction, ran) in self.reactions.iter().zip(&report.reactions) {
                if reaction.idempotency() != Idempotency::Recomputed {
                    continue;
                }
                let result = match &ran.outcome {
                    Outcome::Done { result } | Outcome::Skipped { result } => result.clone(),
                    // The later record's run covers this one: it reads the state after it.
                    Outcome::Coalesced { into_record } => serde_json::json!({
                        "coalescedInto": records.get(*into_record).map(|r| r.event_id.as_str()),
                    }),
                    _ => continue,
                };
                let Some(Ok(change)) = records.get(report.index).map(|r| &r.change) else {
                    continue;
                };
                let key = key_for(reaction.name(), &report.event_id);
                match self
                    .guard()
                    .completion_note(key, &result, change.approximate_creation)
                {
                    Ok(item) => notes.push(WriteRequest::Put(item)),
                    Err(e) => tracing::warn!(error = %e, "could not build a completion note"),
                }
            }
        }
        notes
    }

    /// Store completion notes once there are enough for a BatchWriteItem.
    pub(super) async fn write_completion_notes_when_full(&self, notes: &mut Vec<WriteRequest>) {
        if notes.len() >= FLUSH_AT {
            self.write_completion_notes(notes).await;
        }
    }

    /// Store completion notes. A failure loses only the saving: the records are recomputed
    /// if they come again.
    pub(super) async fn write_completion_notes(&self, notes: &mut Vec<WriteRequest>) {
        let notes = std::mem::take(notes);
        if notes.is_empty() {
            return;
        }
        if let Err(e) = self
            .adapters
            .tables
            .batch_write(&self.idempotency.table, notes)
            .await
        {
            tracing::warn!(error = %e, "could not store completion notes; those records are recomputed if delivered again");
        }
    }
}

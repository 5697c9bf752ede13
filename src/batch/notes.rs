//! Step 7, notes: for each settled record, a completion note per recomputing reaction that is
//! done with it, so that the next delivery of the same records skips them (read by the plan
//! step). Written in BatchWriteItem calls of 25; a failure loses only the saving.

use handlers::ports::WriteRequest;
use handlers::{Idempotency, Reaction};

use super::idempotency::{key_for, Guard};
use super::report::{Outcome, ReactionReport, RecordReport};
use crate::decode::StreamRecord;

/// BatchWriteItem takes 25 requests; completion notes are written at that size.
const FLUSH_AT: usize = 25;

/// Completion notes gathered and not yet written.
pub(super) struct Notes<'a> {
    pub(super) reactions: &'a [Box<dyn Reaction>],
    pub(super) guard: Guard<'a>,
    pub(super) pending: Vec<WriteRequest>,
}

impl Notes<'_> {
    /// Notes for the settled `reports` that their recomputing reactions are done with them
    /// (a record that failed gets none: its retry must run them), written once there are
    /// enough for a BatchWriteItem.
    pub(super) async fn note(&mut self, reports: &[RecordReport], records: &[StreamRecord]) {
        if !self.guard.config.completion_notes {
            return;
        }
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
                match (self.guard).completion_note(key, &result, change.approximate_creation) {
                    Ok(item) => self.pending.push(WriteRequest::Put(item)),
                    Err(e) => tracing::warn!(error = %e, "could not build a completion note"),
                }
            }
        }
        if self.pending.len() >= FLUSH_AT {
            self.write().await;
        }
    }

    /// Store the notes gathered. A failure loses only the saving: the records are recomputed
    /// if they come again.
    pub(super) async fn write(&mut self) {
        let notes = std::mem::take(&mut self.pending);
        if notes.is_empty() {
            return;
        }
        let table = &self.guard.config.table;
        if let Err(e) = self.guard.tables.batch_write(table, &notes).await {
            tracing::warn!(error = %e, "could not store completion notes; those records are recomputed if delivered again");
        }
    }
}

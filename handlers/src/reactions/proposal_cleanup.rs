//! `proposal-cleanup`: a proposal's PDF goes when its document goes. A REMOVE of a
//! `DOCUMENT#` item (by the application, or by the document's own TTL) deletes the object the
//! item names, when it is one the worker stored: under `proposals/` in the documents bucket.
//!
//! Idempotent by construction: deleting an object that is already gone succeeds, so a
//! re-delivered REMOVE does nothing new.

use async_trait::async_trait;
use serde_json::json;

use super::contract::{Idempotency, Reacted, Reaction};
use super::proposal_pdf::ProposalConfig;
use crate::change::{Change, ChangeKind};
use crate::error::ReactionError;
use crate::item::get_str;
use crate::ports::Ports;

/// Where `proposal-pdf` stores every proposal; nothing outside it is ever deleted.
pub const PROPOSALS_PREFIX: &str = "proposals/";

pub struct ProposalCleanup {
    table: String,
    bucket: String,
}

impl ProposalCleanup {
    pub fn new(config: &ProposalConfig) -> Self {
        ProposalCleanup {
            table: config.estimation.table.clone(),
            bucket: config.bucket.clone(),
        }
    }

    /// The object a removed document names, if the worker stored it.
    fn object_of<'a>(&'a self, change: &'a Change) -> Option<(&'a str, &'a str)> {
        let old = change.old.as_ref()?;
        let key = get_str(old, "S3Key").filter(|k| k.starts_with(PROPOSALS_PREFIX))?;
        // A document completed by the worker names its bucket; an older one may not.
        let bucket = get_str(old, "S3Bucket").unwrap_or(&self.bucket);
        (bucket == self.bucket).then_some((bucket, key))
    }
}

#[async_trait]
impl Reaction for ProposalCleanup {
    fn name(&self) -> &'static str {
        "proposal-cleanup"
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::ByConstruction
    }

    fn applies(&self, change: &Change) -> bool {
        change.table == self.table
            && change.kind == ChangeKind::Remove
            && get_str(&change.keys, "SK").is_some_and(|sk| sk.starts_with("DOCUMENT#"))
            && self.object_of(change).is_some()
    }

    async fn react(&self, change: &Change, ports: Ports<'_>) -> Result<Reacted, ReactionError> {
        let Some((bucket, key)) = self.object_of(change) else {
            return Ok(Reacted::default());
        };
        ports.objects.delete(bucket, key).await?;
        Ok(Reacted {
            result: json!({
                "deleted": format!("s3://{bucket}/{key}"),
                "because": if change.expired_by_ttl { "the document expired" } else { "the document was removed" },
            }),
            deferred_writes: Vec::new(),
        })
    }
}

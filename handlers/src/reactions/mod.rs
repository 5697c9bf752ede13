//! The reactions: the contract every reaction follows ([`Reaction`]), one module per reaction
//! named after its [`Reaction::name`], and the [`registry`] that builds them all from plain
//! configuration. `docs/adding-a-reaction.md` walks through adding one.

pub mod asset_cleanup;
pub mod audit_log;
pub mod booking_mail;
pub mod estimation_totals;
pub mod folding;
pub mod memory;
pub mod optimistic;
pub mod proposal_cleanup;
pub mod proposal_pdf;
pub mod provider_rating;
pub mod share_notification;
pub mod thread_stats;

use std::sync::Arc;

use async_trait::async_trait;

use crate::change::Change;
use crate::cost::savings::SavingsRatesCache;
use crate::error::ReactionError;
use crate::ports::{Ports, WriteRequest};
use crate::settings::{ConfigError, Settings};
use crate::skipped::Skipped;
use asset_cleanup::{AssetCleanup, AssetsConfig};
use audit_log::{AuditConfig, AuditLog};
use booking_mail::{BookingMail, BookingMailConfig, System};
use estimation_totals::{EstimationTotals, TotalsConfig};
use proposal_cleanup::ProposalCleanup;
use proposal_pdf::{ProposalConfig, ProposalPdf};
use provider_rating::{ProviderRatings, RatingsConfig};
use share_notification::ShareNotification;
use thread_stats::{ThreadStatistics, ThreadsConfig};

/// The configuration of every reaction, one field per reaction.
#[derive(Debug, Clone)]
pub struct ReactionsConfig {
    pub audit: AuditConfig,
    pub totals: TotalsConfig,
    pub proposals: ProposalConfig,
    pub ratings: RatingsConfig,
    pub marketplace_bookings: BookingMailConfig,
    pub pilotforce_bookings: BookingMailConfig,
    pub assets: AssetsConfig,
    pub threads: ThreadsConfig,
}

impl ReactionsConfig {
    /// Each reaction reads its own variables; all have defaults matching the seed systems.
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(ReactionsConfig {
            audit: AuditConfig::from_settings(s)?,
            totals: TotalsConfig::from_settings(s)?,
            proposals: ProposalConfig::from_settings(s)?,
            ratings: RatingsConfig::from_settings(s),
            marketplace_bookings: BookingMailConfig::from_settings(System::Marketplace, s)?,
            pilotforce_bookings: BookingMailConfig::from_settings(System::PilotForce, s)?,
            assets: AssetsConfig::from_settings(s),
            threads: ThreadsConfig::from_settings(s),
        })
    }
}

/// Every reaction the worker has, in the order they run on a record.
pub fn registry(config: &ReactionsConfig) -> Vec<Box<dyn Reaction>> {
    // One savings-rates cache for every reaction that prices an estimation.
    let tips = Arc::new(SavingsRatesCache::new(config.totals.table.clone()));
    vec![
        Box::new(AuditLog::new(config.audit.clone())),
        Box::new(EstimationTotals::new(config.totals.clone(), tips.clone())),
        Box::new(ProposalPdf::new(config.proposals.clone(), tips)),
        Box::new(ProposalCleanup::new(&config.proposals)),
        Box::new(ShareNotification::new(
            config.proposals.estimation.table.clone(),
            config.proposals.mail.clone(),
        )),
        Box::new(ProviderRatings::new(config.ratings.clone())),
        Box::new(BookingMail::new(config.marketplace_bookings.clone())),
        Box::new(BookingMail::new(config.pilotforce_bookings.clone())),
        Box::new(AssetCleanup::new(config.assets.clone())),
        Box::new(ThreadStatistics::new(config.threads.clone())),
    ]
}

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

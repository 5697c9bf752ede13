//! The reactions: the contract every reaction follows ([`contract`]), one module per reaction
//! named after its [`Reaction::name`], and the [`registry`] that builds them all from plain
//! configuration. `docs/adding-a-reaction.md` walks through adding one.

pub mod asset_cleanup;
pub mod audit_log;
pub mod booking_mail;
pub mod bounded_memory;
pub mod contract;
pub mod estimation_totals;
pub mod folding;
pub mod optimistic;
pub mod proposal_cleanup;
pub mod proposal_pdf;
pub mod provider_rating;
pub mod renamed;
pub mod share_notification;
pub mod thread_stats;

use std::sync::Arc;

use crate::attribute_names::AttributeNames;
use crate::cost::savings::SavingsRatesCache;
use crate::settings::{ConfigError, Settings};
use asset_cleanup::{AssetCleanup, AssetsConfig};
use audit_log::{AuditConfig, AuditLog};
use booking_mail::{BookingMail, BookingMailConfig, System};
pub use contract::{Idempotency, Reacted, Reaction};
use estimation_totals::{EstimationTotals, TotalsConfig};
use proposal_cleanup::ProposalCleanup;
use proposal_pdf::{ProposalConfig, ProposalPdf};
use provider_rating::{ProviderRatings, RatingsConfig};
use renamed::{Renamed, Renaming, COST_PLATFORM, COST_PLATFORM_ATTRIBUTES};
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
    /// The application's names of the cost platform's attributes, for every reaction on its
    /// table ([`renamed`]).
    pub cost_names: AttributeNames,
}

impl ReactionsConfig {
    /// Each reaction reads its own variables; all have defaults matching the seed systems.
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(ReactionsConfig {
            audit: AuditConfig::from_settings(s)?,
            totals: TotalsConfig::from_settings(s)?,
            proposals: ProposalConfig::from_settings(s)?,
            ratings: RatingsConfig::from_settings(s)?,
            marketplace_bookings: BookingMailConfig::from_settings(System::Marketplace, s)?,
            pilotforce_bookings: BookingMailConfig::from_settings(System::PilotForce, s)?,
            assets: AssetsConfig::from_settings(s)?,
            threads: ThreadsConfig::from_settings(s)?,
            cost_names: s.attribute_names(COST_PLATFORM, COST_PLATFORM_ATTRIBUTES)?,
        })
        .and_then(|config| {
            // Every reaction has asked for its attributes: what is left names none.
            s.check_attribute_names()?;
            Ok(config)
        })
    }
}

/// Every aggregate `reconcile` recomputes, one subcommand each.
pub const RECONCILABLE: &[folding::Reconcilable] =
    &[provider_rating::RECONCILE, thread_stats::RECONCILE];

/// Every reaction the worker has, in the order they run on a record.
pub fn registry(config: &ReactionsConfig) -> Vec<Box<dyn Reaction>> {
    // One savings-rates cache for every reaction that prices an estimation.
    let tips = Arc::new(SavingsRatesCache::new(config.totals.table.clone()));
    // The cost platform's reactions read the seed's names; an application's are renamed
    // between them and the table.
    let cost_names = || Renaming::new(&config.totals.table, &config.cost_names);
    vec![
        Renamed::writes_only(AuditLog::new(config.audit.clone()), cost_names()),
        Renamed::boxed(
            EstimationTotals::new(config.totals.clone(), tips.clone()),
            cost_names(),
        ),
        Renamed::boxed(
            ProposalPdf::new(config.proposals.clone(), tips),
            cost_names(),
        ),
        Renamed::boxed(ProposalCleanup::new(&config.proposals), cost_names()),
        Renamed::boxed(
            ShareNotification::new(
                config.proposals.estimation.table.clone(),
                config.proposals.mail.clone(),
            ),
            cost_names(),
        ),
        Box::new(ProviderRatings::new(config.ratings.clone())),
        Box::new(BookingMail::new(config.marketplace_bookings.clone())),
        Box::new(BookingMail::new(config.pilotforce_bookings.clone())),
        Box::new(AssetCleanup::new(config.assets.clone())),
        Box::new(ThreadStatistics::new(config.threads.clone())),
    ]
}

//! `provider-rating`: keeps each provider's `ratingSum`, `reviewCount` and `rating` exact as
//! reviews come, change and go, at a cost that follows the change, not the provider's history.
//!
//! The rules: only the earliest review of a booking counts (by `createdAt`, then `reviewId`);
//! when it is removed, the next one counts; a review moves between providers with its
//! `providerId`; a review without a usable rating (1 to 5) or without `createdAt` does not
//! count; `rating` is the average to two decimals, half up. [`aggregate`] states them over a
//! set of reviews, and `reconcile` recomputes a provider by them from its reviews.
//!
//! The reaction itself does not read the provider's reviews. It keeps, per provider and
//! booking, which reviews the booking has ([`booking_slots`], in the worker's own
//! aggregate-state table), so a change moves the provider's sum and count by the difference
//! it makes to its booking's counted review. A window of changes (a Lambda batch) is folded at
//! once: one BatchGetItem for its slots (but those this process remembers, and new reviews'
//! slots, taken as new) and the providers this process does not remember, then one
//! TransactWriteItems holding every changed slot and provider, each conditional on
//! the version read, so a concurrent worker's write makes the whole transaction fail and be
//! redone from a fresh read rather than lose an update. A change delivered again finds its
//! review's slot already at that change (sequence numbers) and changes nothing.
//!
//! Cost per review is constant; what it gives up is repair by recomputation: an aggregate
//! changed behind the worker's back, or reviews written without a stream record (a bulk
//! import, a restore), stay off until `reconcile` recomputes them.

pub mod booking_slots;
mod rating_fold;
mod rating_memory;
mod rating_reconcile;
mod rules;

use async_trait::async_trait;

use super::bounded_memory::BoundedMemory;
use super::contract::{Idempotency, Reacted, Reaction};
use super::folding::{fold_window, only};
use crate::attribute_names::AttributeNames;
use crate::change::Change;
use crate::error::ReactionError;
use crate::item::{from_item, Item};
use crate::ports::Ports;
use crate::settings::{ConfigError, Settings};
use crate::skipped::Skipped;
use booking_slots::{BookingSlot, SlotKey};
pub use rating_reconcile::RECONCILE;
pub use rules::{aggregate, average, Aggregate, ProviderRating, Rating, Review};
#[derive(Debug, Clone)]
pub struct RatingsConfig {
    pub reviews_table: String,
    pub providers_table: String,
    /// The reviews GSI keyed by providerId (read by `reconcile` only).
    pub provider_index: String,
    /// The worker's own table of booking slots ([`booking_slots`]).
    pub state_table: String,
    /// The application's names of a review's attributes and of the providers table's key
    /// ([`REVIEW_ATTRIBUTES`]).
    pub names: AttributeNames,
}

/// What the ratings read of a review, by the seed's names; `provider.providerId` is the
/// providers table's key.
pub const REVIEW_ATTRIBUTES: &[&str] = &[
    "reviewId",
    "bookingId",
    "providerId",
    "createdAt",
    "rating",
    "provider.providerId",
];

impl RatingsConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(RatingsConfig {
            reviews_table: s.table("MARKETPLACE_REVIEWS_TABLE"),
            providers_table: s.table("MARKETPLACE_PROVIDERS_TABLE"),
            provider_index: s.text(
                "MARKETPLACE_REVIEWS_PROVIDER_INDEX",
                "providerReviews-index",
            ),
            state_table: s.table("AGGREGATE_STATE_TABLE"),
            names: s.attribute_names("provider-rating", REVIEW_ATTRIBUTES)?,
        })
    }

    /// A review image under the seed's names (what [`Review`] reads).
    pub(super) fn review(
        &self,
        image: &Item,
        what: &(impl std::fmt::Display + ?Sized),
    ) -> Result<Review, ReactionError> {
        from_item(self.names.project(image), what)
    }

    /// A review image's rating alone, read as [`RatingsConfig::review`] reads it; None when
    /// it does not read (nor would the whole review).
    fn rating(&self, image: &Item) -> Option<Rating> {
        /// The field of [`Review`] this reads.
        #[derive(serde::Deserialize)]
        struct RatingOnly {
            #[serde(default)]
            rating: Rating,
        }
        from_item::<RatingOnly>(self.names.project_only(image, &["rating"]), "review")
            .ok()
            .map(|only| only.rating)
    }
}

pub struct ProviderRatings {
    config: RatingsConfig,
    /// The aggregate as this process last read or wrote it, per provider: the version a
    /// conditional write can assume without reading the provider first. A stale entry costs
    /// nothing but a failed condition, after which the window is read again.
    known: BoundedMemory<String, ProviderRating>,
    /// The booking slots this process last read or wrote, the same way: a slot only ever
    /// learns later changes, so a change the remembered slot already holds is done, and a
    /// write on a remembered version that is no longer stored fails and is read again.
    known_slots: BoundedMemory<SlotKey, BookingSlot>,
}

/// Slots remembered before that memory is cleared (a bound, not a cache policy).
const KNOWN_SLOTS: usize = 20_000;

/// Providers remembered before the memory is cleared (a bound, not a cache policy).
const KNOWN_PROVIDERS: usize = 10_000;

/// The providers a change touches: before and after (two when a review moves).
fn providers_of(names: &AttributeNames, change: &Change) -> Vec<String> {
    let mut ids: Vec<String> = [change.old.as_ref(), change.new.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|image| names.text(image, "providerId"))
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

impl ProviderRatings {
    pub fn new(config: RatingsConfig) -> Self {
        ProviderRatings {
            config,
            known: BoundedMemory::new(KNOWN_PROVIDERS),
            known_slots: BoundedMemory::new(KNOWN_SLOTS),
        }
    }

    pub fn config(&self) -> &RatingsConfig {
        &self.config
    }

    /// The review's rating, when the application wrote one the worker cannot use.
    fn unusable_rating(&self, review: &Review) -> Option<Skipped> {
        match &review.rating {
            Rating::Unusable(value) => Some(Skipped::new(
                format!(
                    "{} reviewId={}",
                    self.config.reviews_table, review.review_id
                ),
                "rating",
                value,
            )),
            _ => None,
        }
    }
}

#[async_trait]
impl Reaction for ProviderRatings {
    fn name(&self) -> &'static str {
        "provider-rating"
    }

    /// A change delivered again finds its review's slot already at it.
    fn idempotency(&self) -> Idempotency {
        Idempotency::ByConstruction
    }

    fn applies(&self, change: &Change) -> bool {
        change.table == self.config.reviews_table
            && !providers_of(&self.config.names, change).is_empty()
    }

    fn folds_windows(&self) -> bool {
        true
    }

    fn unusable_data(&self, change: &Change) -> Option<Skipped> {
        let image = change.new.as_ref()?;
        // The rating alone says whether there is anything to name; most are usable, so the
        // whole review (for its id) is read only for one that is not.
        if !matches!(self.config.rating(image)?, Rating::Unusable(_)) {
            return None;
        }
        self.unusable_rating(&self.config.review(image, "review").ok()?)
    }

    async fn react(&self, change: &Change, ports: Ports<'_>) -> Result<Reacted, ReactionError> {
        only(self.react_window(&[change], ports).await, change)
    }

    async fn react_window(
        &self,
        changes: &[&Change],
        ports: Ports<'_>,
    ) -> Vec<Result<Reacted, ReactionError>> {
        fold_window(self, changes, ports).await
    }
}

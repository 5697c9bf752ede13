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
mod reconcile;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::SecondsFormat;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;
use serde_json::json;

use super::folding::{
    aggregate_version, fold_in_segments, later_or_same, next_aggregate_version, only, put_state,
    SegmentResults, MAX_ATTEMPTS,
};
use super::{Idempotency, Reacted, Reaction};
use crate::change::Change;
use crate::error::{PortError, ReactionError};
use crate::item::{from_item, get_str, number, string_key, AttributeValue, Item};
use crate::ports::{Condition, Ports, TransactItem, Update};
use crate::settings::{Settings, AGGREGATE_STATE_TABLE};
use crate::skipped::{with_skipped, Skipped};
use booking_slots::{Applied, BookingSlot, SlotKey, SlotReview};

#[derive(Debug, Clone)]
pub struct RatingsConfig {
    pub reviews_table: String,
    pub providers_table: String,
    /// The reviews GSI keyed by providerId (read by `reconcile` only).
    pub provider_index: String,
    /// The worker's own table of booking slots ([`booking_slots`]).
    pub state_table: String,
}

impl RatingsConfig {
    pub fn from_settings(s: &Settings) -> Self {
        RatingsConfig {
            reviews_table: s.text("MARKETPLACE_REVIEWS_TABLE", "marketplace-dev-reviews-table"),
            providers_table: s.text(
                "MARKETPLACE_PROVIDERS_TABLE",
                "marketplace-dev-providers-table",
            ),
            provider_index: s.text(
                "MARKETPLACE_REVIEWS_PROVIDER_INDEX",
                "providerReviews-index",
            ),
            state_table: s.text("AGGREGATE_STATE_TABLE", AGGREGATE_STATE_TABLE),
        }
    }
}

/// A review, the fields the aggregate uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    pub review_id: String,
    #[serde(default)]
    pub booking_id: Option<String>,
    #[serde(default)]
    pub provider_id: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub rating: Rating,
}

/// A review's `rating` as the item has it. Only a number from 1 to 5 counts; anything else
/// the application wrote is not a failure of the worker: the review is left out and named.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Rating {
    #[default]
    Missing,
    Usable(Decimal),
    /// What the item holds instead, as text (`"five"`, `7`, `true`).
    Unusable(String),
}

impl Rating {
    pub fn usable(&self) -> Option<Decimal> {
        match self {
            Rating::Usable(rating) => Some(*rating),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Rating {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Rating, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let range = Decimal::ONE..=Decimal::from(5);
        Ok(match &value {
            serde_json::Value::Null => Rating::Missing,
            serde_json::Value::String(text) => match number::marked(text) {
                Some(Ok(rating)) if range.contains(&rating) => Rating::Usable(rating),
                Some(Ok(rating)) => Rating::Unusable(format!("{rating} (not 1 to 5)")),
                Some(Err(digits)) => Rating::Unusable(digits.to_string()),
                None => Rating::Unusable(format!("{text:?} (text, not a number)")),
            },
            other => Rating::Unusable(other.to_string()),
        })
    }
}

/// A provider's aggregate, as stored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRating {
    #[serde(default, with = "number::option")]
    pub rating_sum: Option<Decimal>,
    #[serde(default, with = "number::option")]
    pub review_count: Option<Decimal>,
    #[serde(default, with = "number::option")]
    pub rating: Option<Decimal>,
    #[serde(default, with = "number::option")]
    pub aggregate_version: Option<Decimal>,
}

/// The aggregate of a set of reviews.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub rating_sum: Decimal,
    pub review_count: Decimal,
    /// The average, to two decimals, half up; 0 with no reviews.
    pub rating: Decimal,
    /// Reviews left out: a second review of the same booking, or no usable rating.
    pub not_counted: Vec<String>,
    /// Reviews whose `rating` the application wrote as something else: (reviewId, value).
    pub unusable: Vec<(String, String)>,
}

/// The average as stored: two decimals, half up (4.125 -> 4.13).
pub fn average(sum: Decimal, count: Decimal) -> Decimal {
    if count.is_zero() {
        Decimal::ZERO
    } else {
        (sum / count).round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
    }
}

/// Which reviews count, and their aggregate. Pure, so tests recompute it from any review set.
pub fn aggregate(reviews: &[Review]) -> Aggregate {
    let mut counted: BTreeMap<String, &Review> = BTreeMap::new();
    let mut not_counted = Vec::new();
    let order = |r: &Review| {
        (
            r.created_at.clone().unwrap_or_default(),
            r.review_id.clone(),
        )
    };
    let mut unusable = Vec::new();
    for review in reviews {
        if review.rating.usable().is_none() {
            if let Rating::Unusable(value) = &review.rating {
                unusable.push((review.review_id.clone(), value.clone()));
            }
            not_counted.push(review.review_id.clone());
            continue;
        }
        // A review without a booking stands alone.
        let slot = review
            .booking_id
            .clone()
            .filter(|booking| !booking.is_empty())
            .unwrap_or_else(|| format!("\0{}", review.review_id));
        match counted.get(&slot) {
            Some(current) if order(current) <= order(review) => {
                not_counted.push(review.review_id.clone())
            }
            Some(current) => {
                not_counted.push(current.review_id.clone());
                counted.insert(slot, review);
            }
            None => {
                counted.insert(slot, review);
            }
        }
    }
    let rating_sum: Decimal = counted.values().filter_map(|r| r.rating.usable()).sum();
    let review_count = Decimal::from(counted.len());
    not_counted.sort();
    Aggregate {
        rating_sum,
        review_count,
        rating: average(rating_sum, review_count),
        not_counted,
        unusable,
    }
}

pub struct ProviderRatings {
    config: RatingsConfig,
    /// The aggregate as this process last read or wrote it, per provider: the version a
    /// conditional write can assume without reading the provider first. A stale entry costs
    /// nothing but a failed condition, after which the window is read again.
    known: Mutex<HashMap<String, ProviderRating>>,
    /// The booking slots this process last read or wrote, the same way: a slot only ever
    /// learns later changes, so a change the remembered slot already holds is done, and a
    /// write on a remembered version that is no longer stored fails and is read again.
    known_slots: Mutex<HashMap<SlotKey, BookingSlot>>,
}

/// Puts each entry in `memory` (None: takes it out), clearing the memory when it holds `bound`.
fn remember_in<K: std::hash::Hash + Eq, V>(
    memory: &Mutex<HashMap<K, V>>,
    bound: usize,
    entries: impl Iterator<Item = (K, Option<V>)>,
) {
    let Ok(mut known) = memory.lock() else {
        return;
    };
    for (key, stored) in entries {
        match stored {
            Some(value) => {
                if known.len() >= bound {
                    known.clear();
                }
                known.insert(key, value);
            }
            None => {
                known.remove(&key);
            }
        }
    }
}

/// `keys` of `table` read at once; no keys, no request.
async fn read_all(ports: Ports<'_>, table: &str, keys: Vec<Item>) -> Result<Vec<Item>, PortError> {
    match keys.is_empty() {
        true => Ok(Vec::new()),
        false => ports.tables.batch_get(table, keys).await,
    }
}

/// Slots remembered before that memory is cleared (a bound, not a cache policy).
const KNOWN_SLOTS: usize = 20_000;

/// Providers remembered before the memory is cleared (a bound, not a cache policy).
const KNOWN_PROVIDERS: usize = 10_000;

/// A provider's three figures as an update, on condition of the aggregate version read.
fn figures_update(figures: &ProviderRating, version: Option<Decimal>) -> (Update, Condition) {
    let n = |d: Option<Decimal>| AttributeValue::N(d.unwrap_or_default().normalize().to_string());
    let (condition, next) = aggregate_version("aggregateVersion", version);
    let update = Update::default()
        .set("ratingSum", n(figures.rating_sum))
        .set("reviewCount", n(figures.review_count))
        .set("rating", n(figures.rating))
        .set("aggregateVersion", next);
    (update, condition)
}

/// The providers a change touches: before and after (two when a review moves).
fn providers_of(change: &Change) -> Vec<String> {
    let mut ids: Vec<String> = [change.old.as_ref(), change.new.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|image| get_str(image, "providerId"))
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// A change as the slots see it: the slot its review leaves and the one it is in afterwards.
struct SlotChange<'a> {
    change: &'a Change,
    review_id: String,
    /// The review's state in the slot it leaves (removed there), when it moves or goes.
    leaves: Option<(SlotKey, SlotReview)>,
    /// The review's state in its slot afterwards.
    enters: Option<(SlotKey, SlotReview)>,
    /// The slot its old image places it in: that slot must know the review, or its old state
    /// cannot be taken out.
    was_in: Option<SlotKey>,
    /// Why the new image is not a review the worker can read, and the slot its keys name. Such
    /// a change fails (and is parked) unless that slot already holds a later change of the
    /// review: then the application has fixed it since, and it is done.
    unreadable: Option<(String, Option<SlotKey>)>,
    /// The rating the new image holds that the worker cannot use, named for the result.
    skipped: Option<Skipped>,
}

impl SlotChange<'_> {
    fn slots(&self) -> impl Iterator<Item = &(SlotKey, SlotReview)> {
        self.leaves.iter().chain(self.enters.iter())
    }
}

/// The window's state as read, then as folded: slots and providers, with what changed.
#[derive(Default, Clone)]
struct Folding {
    slots: HashMap<SlotKey, BookingSlot>,
    providers: HashMap<String, ProviderRating>,
    changed_slots: BTreeSet<SlotKey>,
    /// Changed providers, with the time of the last change that moved them.
    changed_providers: BTreeMap<String, chrono::DateTime<chrono::Utc>>,
}

impl ProviderRatings {
    pub fn new(config: RatingsConfig) -> Self {
        ProviderRatings {
            config,
            known: Mutex::new(HashMap::new()),
            known_slots: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &RatingsConfig {
        &self.config
    }

    fn known(&self, provider: &str) -> Option<ProviderRating> {
        self.known.lock().ok()?.get(provider).cloned()
    }

    fn known_slot(&self, key: &SlotKey) -> Option<BookingSlot> {
        self.known_slots.lock().ok()?.get(key).cloned()
    }

    /// Remembers `slots` as stored (or, with None, forgets them).
    fn remember_slots<'a>(&self, slots: impl Iterator<Item = (&'a SlotKey, Option<BookingSlot>)>) {
        remember_in(
            &self.known_slots,
            KNOWN_SLOTS,
            slots.map(|(k, s)| (k.clone(), s)),
        );
    }

    /// Forgets the slots and providers of a window whose write failed: not known as stored.
    fn forget(&self, folded: &Folding) {
        for provider in folded.providers.keys() {
            self.remember(provider, None);
        }
        self.remember_slots(folded.slots.keys().map(|key| (key, None)));
    }

    fn remember(&self, provider: &str, stored: Option<ProviderRating>) {
        remember_in(
            &self.known,
            KNOWN_PROVIDERS,
            std::iter::once((provider.to_string(), stored)),
        );
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

    fn provider_key(provider: &str) -> Item {
        string_key(&[("providerId", provider)])
    }

    fn slot_key(key: &SlotKey) -> Item {
        string_key(&[
            ("pk", &SlotKey::partition(&key.provider)),
            ("sk", &key.slot),
        ])
    }

    /// The review's slots before and after `change`, from its images.
    fn slot_change<'a>(&self, change: &'a Change) -> Result<SlotChange<'a>, ReactionError> {
        let what = format!("{} review {}", self.config.reviews_table, change.describe());
        let review = |image: &Option<Item>| {
            image
                .clone()
                .map(|item| from_item::<Review>(item, &what))
                .transpose()
        };
        let new = match review(&change.new) {
            Ok(new) => new,
            Err(e) => {
                let image = change.latest_image();
                let probe = get_str(image, "providerId")
                    .zip(get_str(image, "reviewId"))
                    .map(|(provider, review_id)| {
                        SlotKey::new(provider, get_str(image, "bookingId"), review_id)
                    });
                return Ok(SlotChange {
                    change,
                    review_id: get_str(image, "reviewId").unwrap_or_default().to_string(),
                    leaves: None,
                    enters: None,
                    was_in: None,
                    unreadable: Some((e.to_string(), probe)),
                    skipped: None,
                });
            }
        };
        let old = review(&change.old)?;
        let review_id = match (&new, &old) {
            (Some(r), _) | (None, Some(r)) => r.review_id.clone(),
            (None, None) => {
                return Err(ReactionError::BadItem {
                    what,
                    message: "no image".into(),
                })
            }
        };
        let sequence_number = change.sequence_number.clone();
        let place = |r: &Review| {
            let provider = r.provider_id.as_deref().filter(|p| !p.is_empty())?;
            Some(SlotKey::new(
                provider,
                r.booking_id.as_deref(),
                &r.review_id,
            ))
        };
        // Only a review with `createdAt` is in the provider index, so only such a one counts.
        let enters = new.as_ref().and_then(|r| {
            let state = SlotReview {
                sequence_number: sequence_number.clone(),
                created_at: r.created_at.clone(),
                rating: r.created_at.as_ref().and(r.rating.usable()),
            };
            Some((place(r)?, state))
        });
        let was_in = old.as_ref().and_then(place);
        let leaves = old
            .as_ref()
            .and_then(|r| place(r).map(|key| (key, r)))
            .filter(|(key, _)| enters.as_ref().is_none_or(|(to, _)| to != key))
            .map(|(key, r)| {
                let removed = SlotReview {
                    sequence_number,
                    created_at: r.created_at.clone(),
                    rating: None,
                };
                (key, removed)
            });
        Ok(SlotChange {
            change,
            review_id,
            leaves,
            enters,
            was_in,
            unreadable: None,
            skipped: new.as_ref().and_then(|r| self.unusable_rating(r)),
        })
    }

    /// Reads the slots of `changes` and the providers this process does not remember (all of
    /// them when `fresh`), at once.
    async fn read(
        &self,
        changes: &[SlotChange<'_>],
        fresh: bool,
        ports: Ports<'_>,
    ) -> Result<Folding, ReactionError> {
        let cfg = &self.config;
        // Not read: slots this process remembers, and, on the first attempt, a slot that the
        // window's changes only enter (a booking's new review), taken as new. Either is written
        // on the condition of the version assumed (for a new slot: that it does not exist), so
        // if it is stale the transaction fails whole and the window is read again. A window of
        // new reviews then costs no read (one round trip less); one delivered again to another
        // process costs a cancelled transaction before the read.
        let read_unless_known: BTreeSet<&SlotKey> = changes
            .iter()
            .flat_map(|c| {
                let probe = c.unreadable.as_ref().and_then(|(_, probe)| probe.as_ref());
                c.leaves
                    .iter()
                    .map(|(key, _)| key)
                    .chain(c.was_in.iter())
                    .chain(probe)
            })
            .collect();
        let entered = changes.iter().filter_map(|c| c.enters.as_ref());
        let slot_keys: BTreeSet<&SlotKey> = (read_unless_known.iter().copied())
            .chain(entered.map(|(key, _)| key))
            .collect();
        let mut folding = Folding::default();
        let mut unknown = Vec::new();
        for provider in slot_keys
            .iter()
            .map(|key| &key.provider)
            .collect::<BTreeSet<_>>()
        {
            match self.known(provider).filter(|_| !fresh) {
                Some(known) => {
                    folding.providers.insert(provider.clone(), known);
                }
                None => unknown.push(Self::provider_key(provider)),
            }
        }
        let mut to_read = Vec::new();
        for &key in &slot_keys {
            match self.known_slot(key).filter(|_| !fresh) {
                Some(slot) => {
                    folding.slots.insert(key.clone(), slot);
                }
                None if fresh || read_unless_known.contains(key) => {
                    to_read.push(Self::slot_key(key))
                }
                None => {}
            }
        }
        let (slots, providers) = futures::future::try_join(
            read_all(ports, &cfg.state_table, to_read),
            read_all(ports, &cfg.providers_table, unknown),
        )
        .await?;
        for item in slots {
            let slot: BookingSlot = from_item(item, &format!("{} booking slot", cfg.state_table))?;
            let provider = slot
                .pk
                .strip_prefix("PROVIDER#")
                .unwrap_or_default()
                .to_string();
            folding.slots.insert(
                SlotKey {
                    provider,
                    slot: slot.sk.clone(),
                },
                slot,
            );
        }
        for item in providers {
            let id = get_str(&item, "providerId").unwrap_or_default().to_string();
            let stored: ProviderRating = from_item(item, &format!("{} {id}", cfg.providers_table))?;
            folding.providers.insert(id, stored);
        }
        for key in slot_keys {
            folding
                .slots
                .entry(key.clone())
                .or_insert_with(|| BookingSlot::empty(key));
            folding.providers.entry(key.provider.clone()).or_default();
        }
        Ok(folding)
    }

    /// Folds one change into `folding`; returns its result.
    fn fold(
        &self,
        folding: &mut Folding,
        change: &SlotChange<'_>,
    ) -> Result<serde_json::Value, ReactionError> {
        let cfg = &self.config;
        if let Some((why, probe)) = &change.unreadable {
            let fixed_since = probe
                .as_ref()
                .and_then(|key| folding.slots.get(key))
                .and_then(|slot| slot.reviews.get(&change.review_id))
                .is_some_and(|known| {
                    later_or_same(&known.sequence_number, &change.change.sequence_number)
                });
            return match fixed_since {
                true => Ok(json!({ "alreadyApplied": true })),
                false => Err(ReactionError::BadItem {
                    what: format!("{} review {}", cfg.reviews_table, change.change.describe()),
                    message: why.clone(),
                }),
            };
        }
        let at = change.change.approximate_creation;
        let mut stale = true;
        let unknown_to_state = change
            .was_in
            .as_ref()
            .filter(|key| {
                folding
                    .slots
                    .get(key)
                    .is_some_and(|s| !s.knows(&change.review_id))
            })
            .map(|key| key.provider.clone());
        for (key, state) in change.slots() {
            let Some(slot) = folding.slots.get_mut(key) else {
                continue;
            };
            let before = slot.counted().map(|(_, rating)| rating);
            if slot.apply(&change.review_id, state.clone(), at.timestamp()) == Applied::Stale {
                continue;
            }
            stale = false;
            folding.changed_slots.insert(key.clone());
            let after = slot.counted().map(|(_, rating)| rating);
            if before == after {
                continue;
            }
            let figures = folding.providers.entry(key.provider.clone()).or_default();
            let count = |r: Option<Decimal>| Decimal::from(u8::from(r.is_some()));
            let sum = figures.rating_sum.unwrap_or_default() - before.unwrap_or_default()
                + after.unwrap_or_default();
            let reviews = figures.review_count.unwrap_or_default() - count(before) + count(after);
            figures.rating_sum = Some(sum);
            figures.review_count = Some(reviews);
            figures.rating = Some(average(sum, reviews));
            folding.changed_providers.insert(key.provider.clone(), at);
        }
        let mut result = serde_json::Map::new();
        for provider in providers_of(change.change) {
            let figures = folding
                .providers
                .get(&provider)
                .cloned()
                .unwrap_or_default();
            let text = |d: Option<Decimal>| d.unwrap_or_default().normalize().to_string();
            result.insert(
                provider,
                json!({
                    "ratingSum": text(figures.rating_sum),
                    "reviewCount": text(figures.review_count),
                    "rating": text(figures.rating),
                }),
            );
        }
        if stale {
            result.insert("alreadyApplied".into(), json!(true));
        }
        if let Some(provider) = unknown_to_state {
            tracing::warn!(review = %change.review_id, %provider, "the review changed was not known to the worker's state (written before the worker kept it, or without a stream record): its old state is not taken out; run `reconcile ratings --provider {provider}`");
            result.insert(
                "notInState".into(),
                json!(format!(
                    "review {} was not known to {}: run `reconcile ratings --provider {provider}`",
                    change.review_id, cfg.state_table
                )),
            );
        }
        Ok(with_skipped(
            serde_json::Value::Object(result),
            change.skipped.clone(),
        ))
    }

    /// The writes of a folded segment: each changed slot and provider, on condition of the
    /// version read.
    fn writes(&self, read: &Folding, folded: &Folding) -> Result<Vec<TransactItem>, ReactionError> {
        let cfg = &self.config;
        let mut writes = Vec::new();
        for key in &folded.changed_slots {
            let Some(slot) = folded.slots.get(key) else {
                continue;
            };
            let was = read.slots.get(key).map_or(0, |s| s.version);
            writes.push(put_state(&cfg.state_table, slot, was)?);
        }
        for (provider, at) in &folded.changed_providers {
            let figures = folded.providers.get(provider).cloned().unwrap_or_default();
            let version = read
                .providers
                .get(provider)
                .and_then(|p| p.aggregate_version);
            let (update, condition) = figures_update(&figures, version);
            // The time of the review change, not of the worker's run: a replay writes the same.
            let update = update.set(
                "ratingUpdatedAt",
                AttributeValue::S(at.to_rfc3339_opts(SecondsFormat::Millis, true)),
            );
            writes.push(TransactItem::Update {
                table: cfg.providers_table.clone(),
                key: Self::provider_key(provider),
                update,
                condition: Some(condition),
            });
        }
        Ok(writes)
    }

    /// Folds a segment (changes whose slots and providers fit one transaction) and writes it;
    /// read again and redone when another worker wrote one of its items first.
    async fn fold_segment(&self, changes: &[SlotChange<'_>], ports: Ports<'_>) -> SegmentResults {
        let mut attempt = 1;
        loop {
            let read = self.read(changes, attempt > 1, ports).await?;
            let mut folded = read.clone();
            let results: Vec<_> = changes.iter().map(|c| self.fold(&mut folded, c)).collect();
            let writes = self.writes(&read, &folded)?;
            let written = match writes.is_empty() {
                true => Ok(()),
                false => ports.tables.transact_write(writes).await,
            };
            match written {
                Ok(()) => {
                    // Every provider of the segment as it now stands, so the next window need
                    // not read it: the changed ones one version on.
                    for (provider, figures) in &folded.providers {
                        let mut now = figures.clone();
                        if folded.changed_providers.contains_key(provider) {
                            let was = read
                                .providers
                                .get(provider)
                                .and_then(|p| p.aggregate_version);
                            now.aggregate_version = Some(next_aggregate_version(was));
                        }
                        self.remember(provider, Some(now));
                    }
                    // Every slot as it now stands too, the written ones one version on.
                    self.remember_slots(folded.slots.iter().map(|(key, slot)| {
                        let mut now = slot.clone();
                        if folded.changed_slots.contains(key) {
                            now.version = read.slots.get(key).map_or(0, |s| s.version) + 1;
                        }
                        (key, Some(now))
                    }));
                    return Ok(results);
                }
                Err(PortError::ConditionFailed { target, .. }) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(%target, attempt, "another worker changed a slot or provider of this window first; reading it again");
                    self.forget(&folded);
                    attempt += 1;
                }
                Err(e) => {
                    self.forget(&folded);
                    return Err(e.into());
                }
            }
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
        change.table == self.config.reviews_table && !providers_of(change).is_empty()
    }

    fn folds_windows(&self) -> bool {
        true
    }

    fn unusable_data(&self, change: &Change) -> Option<Skipped> {
        self.unusable_rating(&from_item(change.new.clone()?, "review").ok()?)
    }

    async fn react(&self, change: &Change, ports: Ports<'_>) -> Result<Reacted, ReactionError> {
        only(self.react_window(&[change], ports).await, change)
    }

    async fn react_window(
        &self,
        changes: &[&Change],
        ports: Ports<'_>,
    ) -> Vec<Result<Reacted, ReactionError>> {
        fold_in_segments(
            changes,
            |change| self.slot_change(change),
            |c: &SlotChange| {
                c.slots()
                    .flat_map(|(key, _)| {
                        [
                            format!("{}\0{}", key.provider, key.slot),
                            key.provider.clone(),
                        ]
                    })
                    .collect()
            },
            |segment| Box::pin(self.fold_segment(segment, ports)),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(id: &str, booking: Option<&str>, at: &str, rating: &str) -> Review {
        Review {
            review_id: id.into(),
            booking_id: booking.map(str::to_string),
            provider_id: Some("p".into()),
            created_at: Some(at.into()),
            rating: rating
                .parse()
                .map_or(Rating::Unusable(rating.into()), Rating::Usable),
        }
    }

    #[test]
    fn one_review_per_booking_counts_the_earliest() {
        let reviews = [
            review("r2", Some("b1"), "2025-01-02", "1"),
            review("r1", Some("b1"), "2025-01-01", "5"),
            review("r3", Some("b2"), "2025-01-03", "4"),
            review("r4", None, "2025-01-04", "3"),
            review("r5", None, "2025-01-05", "x"),
        ];
        let totals = aggregate(&reviews);
        assert_eq!(totals.rating_sum, Decimal::from(12));
        assert_eq!(totals.review_count, Decimal::from(3));
        assert_eq!(totals.rating, "4".parse::<Decimal>().unwrap());
        assert_eq!(totals.not_counted, ["r2", "r5"]);
        // The counted one removed: the other review of b1 takes its place.
        let without_r1: Vec<Review> = reviews
            .iter()
            .filter(|r| r.review_id != "r1")
            .cloned()
            .collect();
        assert_eq!(aggregate(&without_r1).rating_sum, Decimal::from(8));
    }

    #[test]
    fn averages_round_half_up_to_two_decimals() {
        assert_eq!(
            average(Decimal::from(14), Decimal::from(3)),
            "4.67".parse::<Decimal>().unwrap()
        );
        assert_eq!(
            average("8.25".parse().unwrap(), Decimal::from(2)),
            "4.13".parse::<Decimal>().unwrap()
        );
        assert_eq!(average(Decimal::ZERO, Decimal::ZERO), Decimal::ZERO);
    }
}

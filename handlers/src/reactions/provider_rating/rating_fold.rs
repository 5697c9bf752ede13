//! The window fold: a window's reviews as changes of their booking slots, the slots and the
//! providers this process does not remember read at once, each change folded in stream order,
//! and every changed slot and provider written in one conditional transaction per segment.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::SecondsFormat;
use rust_decimal::Decimal;
use serde_json::json;

use super::booking_slots::{Applied, BookingSlot, SlotKey, SlotReview};
use super::{average, providers_of, ProviderRating, ProviderRatings, Review};
use crate::change::Change;
use crate::error::ReactionError;
use crate::item::{from_item, string_key, AttributeValue, Item};
use crate::ports::{Condition, Ports, TransactItem, Update};
use crate::reactions::folding::{
    aggregate_version, next_aggregate_version, put_changed_states, read_all, state_key, FoldRules,
    ItemKey,
};
use crate::sequence_number::SequenceNumber;
use crate::skipped::{with_skipped, Skipped};

/// A provider's three figures as an update, on condition of the aggregate version read.
pub(super) fn figures_update(
    figures: &ProviderRating,
    version: Option<Decimal>,
) -> (Update, Condition) {
    let n = |d: Option<Decimal>| AttributeValue::N(d.unwrap_or_default().normalize().to_string());
    let (condition, next) = aggregate_version("aggregateVersion", version);
    let update = Update::default()
        .set("ratingSum", n(figures.rating_sum))
        .set("reviewCount", n(figures.review_count))
        .set("rating", n(figures.rating))
        .set("aggregateVersion", next);
    (update, condition)
}

/// A change as the slots see it: the slot its review leaves and the one it is in afterwards.
pub(crate) struct SlotChange<'a> {
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
    pub(super) fn slots(&self) -> impl Iterator<Item = &(SlotKey, SlotReview)> {
        self.leaves.iter().chain(self.enters.iter())
    }
}

/// The window's state as read, then as folded: slots and providers, with what changed.
#[derive(Default)]
pub(crate) struct Folding {
    pub(super) slots: HashMap<SlotKey, BookingSlot>,
    pub(super) providers: HashMap<String, ProviderRating>,
    changed_slots: BTreeSet<SlotKey>,
    /// Changed providers, with the time of the last change that moved them.
    changed_providers: BTreeMap<String, chrono::DateTime<chrono::Utc>>,
}

impl ProviderRatings {
    pub(super) fn provider_key(&self, provider: &str) -> Item {
        string_key(&[(self.config.names.of("provider.providerId"), provider)])
    }

    /// A provider item without the worker's version was never written by the worker, or
    /// was put again whole by the application without the worker's attributes. If the
    /// worker's state holds slots of the provider, the figures are those slots' (the
    /// application's copy is gone); otherwise they are left as the item has them. One query
    /// of the provider's slots, only in that case.
    async fn figures_from_slots(
        &self,
        provider: &str,
        stored: &mut ProviderRating,
        ports: Ports<'_>,
    ) -> Result<(), ReactionError> {
        let slots = self.stored_slots(provider, ports).await?;
        if slots.is_empty() {
            return Ok(());
        }
        let mut sum = Decimal::ZERO;
        let mut count = Decimal::ZERO;
        for slot in slots {
            if let Some((_, rating)) = slot.counted() {
                sum += rating;
                count += Decimal::ONE;
            }
        }
        stored.rating_sum = Some(sum);
        stored.review_count = Some(count);
        stored.rating = Some(average(sum, count));
        Ok(())
    }

    /// Every booking slot of `provider` in the worker's state (one partition, all pages).
    pub(super) async fn stored_slots(
        &self,
        provider: &str,
        ports: Ports<'_>,
    ) -> Result<Vec<BookingSlot>, ReactionError> {
        let cfg = &self.config;
        ports
            .tables
            .query(&crate::ports::Query {
                table: cfg.state_table.clone(),
                index: None,
                partition: ("pk".into(), AttributeValue::S(SlotKey::partition(provider))),
                sort_key: None,
                ascending: true,
            })
            .await?
            .into_iter()
            .map(|item| from_item(item, &format!("{} booking slot", cfg.state_table)))
            .collect()
    }

    pub(super) fn slot_key(key: &SlotKey) -> Item {
        state_key(&SlotKey::partition(&key.provider), &key.slot)
    }
}

#[async_trait]
impl<'c> FoldRules<'c> for ProviderRatings {
    type Seen = SlotChange<'c>;
    type State = Folding;
    type Folded = Result<serde_json::Value, ReactionError>;

    const CONTESTED: &'static str = "a slot or provider of this window";

    /// The review's slots before and after `change`, from its images.
    fn see(&self, change: &'c Change) -> Result<SlotChange<'c>, ReactionError> {
        let what = change.named_as(&self.config.reviews_table, "review");
        let names = &self.config.names;
        let review = |image: &Option<Item>| {
            image
                .as_ref()
                .map(|item| self.config.review(item, &what))
                .transpose()
        };
        let new = match review(&change.new) {
            Ok(new) => new,
            Err(e) => {
                let image = change.latest_image();
                let probe = names
                    .text(image, "providerId")
                    .zip(names.text(image, "reviewId"))
                    .map(|(provider, review_id)| {
                        SlotKey::new(provider, names.text(image, "bookingId"), review_id)
                    });
                return Ok(SlotChange {
                    change,
                    review_id: names
                        .text(image, "reviewId")
                        .unwrap_or_default()
                        .to_string(),
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
                    what: what.to_string(),
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

    fn keys_of(&self, c: &SlotChange<'_>) -> Vec<ItemKey<'_>> {
        // Each slot the review leaves, enters or is looked for in, and its provider.
        let cfg = &self.config;
        let probe = c.unreadable.as_ref().and_then(|(_, probe)| probe.as_ref());
        c.slots()
            .map(|(key, _)| key)
            .chain(c.was_in.iter())
            .chain(probe)
            .flat_map(|key| {
                [
                    ItemKey::state(
                        &cfg.state_table,
                        &SlotKey::partition(&key.provider),
                        &key.slot,
                    ),
                    ItemKey::partition_only(&cfg.providers_table, self.provider_key(&key.provider)),
                ]
            })
            .collect()
    }

    /// Reads the slots of `changes` and the providers this process does not remember (all of
    /// them when `fresh`), at once.
    async fn read(
        &self,
        changes: &[SlotChange<'c>],
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
                None => unknown.push(self.provider_key(provider)),
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
            let id = cfg
                .names
                .text(&item, "provider.providerId")
                .unwrap_or_default()
                .to_string();
            let mut stored: ProviderRating =
                from_item(item, &format!("{} {id}", cfg.providers_table))?;
            if stored.aggregate_version.is_none() {
                self.figures_from_slots(&id, &mut stored, ports).await?;
            }
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
                    SequenceNumber(&known.sequence_number)
                        >= SequenceNumber(&change.change.sequence_number)
                });
            return match fixed_since {
                true => Ok(json!({ "alreadyApplied": true })),
                false => Err(ReactionError::BadItem {
                    what: change
                        .change
                        .named_as(&cfg.reviews_table, "review")
                        .to_string(),
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
        for provider in providers_of(&self.config.names, change.change) {
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
        // A rating the application wrote as a numeric string counts as that number: named.
        // (Text that is no number is named under `skipped` instead.)
        let names = &cfg.names;
        let rating = change
            .change
            .new
            .as_ref()
            .and_then(|new| names.get(new, "rating"));
        if let Some(AttributeValue::S(text)) = rating {
            if crate::item::number::exact(text.trim()).is_some() {
                result.insert("numbersFromText".into(), json!([names.of("rating")]));
            }
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
    fn writes(&self, folded: &Folding) -> Result<Vec<TransactItem>, ReactionError> {
        let cfg = &self.config;
        let mut writes = put_changed_states(
            &cfg.state_table,
            &folded.changed_slots,
            &folded.slots,
            |slot| slot.version,
        )?;
        let none = ProviderRating::default();
        for (provider, at) in &folded.changed_providers {
            let figures = folded.providers.get(provider).unwrap_or(&none);
            let (update, condition) = figures_update(figures, figures.aggregate_version);
            // The time of the review change, not of the worker's run: a replay writes the same.
            let update = update.set(
                "ratingUpdatedAt",
                AttributeValue::S(at.to_rfc3339_opts(SecondsFormat::Millis, true)),
            );
            writes.push(TransactItem::Update {
                table: cfg.providers_table.clone(),
                key: self.provider_key(provider),
                update,
                condition: Some(condition),
            });
        }
        Ok(writes)
    }

    /// Every provider of the segment as it now stands, so the next window need not read it,
    /// and every slot: the changed ones one version on.
    fn remember(&self, folded: Folding) {
        let Folding {
            slots,
            providers,
            changed_slots,
            changed_providers,
        } = folded;
        self.remember_providers(providers.into_iter().map(|(provider, mut now)| {
            if changed_providers.contains_key(&provider) {
                now.aggregate_version = Some(next_aggregate_version(now.aggregate_version));
            }
            (provider, Some(now))
        }));
        self.remember_slots(slots.into_iter().map(|(key, mut now)| {
            if changed_slots.contains(&key) {
                now.version += 1;
            }
            (key, Some(now))
        }));
    }

    /// Forgets the slots and providers of a window whose write failed: not known as stored.
    fn forget(&self, folded: &Folding) {
        self.remember_providers((folded.providers.keys()).map(|provider| (provider.clone(), None)));
        self.remember_slots(folded.slots.keys().map(|key| (key.clone(), None)));
    }

    /// A change's result is what folding it gave.
    fn results(
        &self,
        _folded: &Folding,
        _changes: &[SlotChange<'_>],
        done: Vec<Result<serde_json::Value, ReactionError>>,
    ) -> Vec<Result<serde_json::Value, ReactionError>> {
        done
    }
}

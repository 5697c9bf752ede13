//! `reconcile`: a provider's aggregate and booking slots recomputed from its reviews, the
//! repair for what the incremental path cannot see: an aggregate changed behind the worker's
//! back, reviews written without a stream record (a bulk import, a restore), or the reviews
//! there were before the worker kept its slots.
//!
//! Reads the provider's reviews through `providerReviews-index` (a cost that grows with the
//! provider's history, paid only here) and its slots, says what differed, and writes what did
//! under the same version conditions as the reaction, so a change the reaction folds meanwhile
//! makes it start over rather than be overwritten.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rust_decimal::Decimal;

use super::booking_slots::{BookingSlot, SlotKey, SlotReview};
use super::rating_fold::figures_update;
use super::{aggregate, ProviderRating, ProviderRatings, Review};
use crate::error::ReactionError;
use crate::item::{from_item, to_item, AttributeValue};
use crate::ports::{Ports, Query};
use crate::reactions::folding::{state_version, Reconcilable, ReconcileRules, Reconciled};

fn figures(sum: Decimal, count: Decimal, rating: Decimal) -> serde_json::Value {
    let text = |d: Decimal| d.normalize().to_string();
    serde_json::json!({ "ratingSum": text(sum), "reviewCount": text(count), "rating": text(rating) })
}

/// `reconcile ratings`.
pub const RECONCILE: Reconcilable = Reconcilable {
    command: "ratings",
    about: "Providers' `ratingSum`, `reviewCount`, `rating` and booking slots, from their reviews",
    id_flag: "provider",
    id_help: "A provider to reconcile (repeatable)",
    source: "its reviews say",
    rules: |config| Box::new(ProviderRatings::new(config.ratings.clone())),
};

#[async_trait]
impl ReconcileRules for ProviderRatings {
    fn recomputed(&self) -> &'static str {
        "the provider"
    }

    /// The reviews' provider ids and the providers' keys.
    fn id_sources(&self) -> Vec<(String, String)> {
        let cfg = &self.config;
        vec![
            (
                cfg.reviews_table.clone(),
                cfg.names.of("providerId").to_string(),
            ),
            (
                cfg.providers_table.clone(),
                cfg.names.of("provider.providerId").to_string(),
            ),
        ]
    }

    fn forget_aggregate(&self, provider: &str) {
        self.remember_providers(std::iter::once((provider.to_string(), None)));
    }

    /// Recomputes `provider` from its reviews and repairs its aggregate and slots.
    async fn recompute(
        &self,
        provider: &str,
        ports: Ports<'_>,
    ) -> Result<Reconciled, ReactionError> {
        let cfg = &self.config;
        let what = |thing: &str| format!("{thing} of provider {provider}");
        let stored: Option<ProviderRating> = ports
            .tables
            .get(&cfg.providers_table, &self.provider_key(provider))
            .await?
            .map(|item| from_item(item, &what(&cfg.providers_table)))
            .transpose()?;
        let query = |table: &str, index: Option<&str>, name: &str, value: String| Query {
            table: table.to_string(),
            index: index.map(str::to_string),
            partition: (name.to_string(), AttributeValue::S(value)),
            sort_key: None,
            ascending: true,
        };
        let reviews: Vec<Review> = ports
            .tables
            .query(&query(
                &cfg.reviews_table,
                Some(&cfg.provider_index),
                cfg.names.of("providerId"),
                provider.to_string(),
            ))
            .await?
            .into_iter()
            .map(|item| cfg.review(&item, &what("a review")))
            .collect::<Result<_, _>>()?;
        let slots: BTreeMap<String, BookingSlot> = self
            .stored_slots(provider, ports)
            .await?
            .into_iter()
            .map(|slot| (slot.sk.clone(), slot))
            .collect();

        // The slots as the reviews say: every review the slots know and the index no longer
        // shows is absent (its sequence number kept, as a guard); every review the index
        // shows is as it is now, from sequence number 0 when the slots did not know it.
        let mut expected = slots.clone();
        for slot in expected.values_mut() {
            for review in slot.reviews.values_mut() {
                review.rating = None;
            }
        }
        for review in &reviews {
            let key = SlotKey::new(provider, review.booking_id.as_deref(), &review.review_id);
            let slot = expected
                .entry(key.slot.clone())
                .or_insert_with(|| BookingSlot::empty(&key));
            let sequence_number = slots
                .values()
                .find_map(|s| s.reviews.get(&review.review_id))
                .map_or_else(|| "0".to_string(), |r| r.sequence_number.clone());
            slot.reviews.insert(
                review.review_id.clone(),
                SlotReview {
                    sequence_number,
                    created_at: review.created_at.clone(),
                    rating: review.created_at.as_ref().and(review.rating.usable()),
                },
            );
        }
        let mut fixed_slots = 0;
        for (sk, mut slot) in expected {
            let was = slots.get(&sk);
            let present = slot.reviews.values().any(|r| r.rating.is_some());
            slot.ttl = match present {
                true => None,
                false => was.and_then(|s| s.ttl),
            };
            if was.is_some_and(|was| was.reviews == slot.reviews && was.ttl == slot.ttl) {
                continue;
            }
            let version = was.map_or(0, |s| s.version);
            slot.version = version + 1;
            let condition = state_version(version);
            ports
                .tables
                .put(&cfg.state_table, to_item(&slot)?, Some(&condition))
                .await?;
            fixed_slots += 1;
        }

        let totals = aggregate(&reviews);
        let computed = figures(totals.rating_sum, totals.review_count, totals.rating);
        let stored_figures = stored.as_ref().and_then(|s| {
            Some(figures(
                s.rating_sum?,
                s.review_count?,
                s.rating.unwrap_or_default(),
            ))
        });
        let fixed_aggregate = stored_figures.as_ref() != Some(&computed);
        if fixed_aggregate {
            let recomputed = ProviderRating {
                rating_sum: Some(totals.rating_sum),
                review_count: Some(totals.review_count),
                rating: Some(totals.rating),
                aggregate_version: None,
            };
            let version = stored.as_ref().and_then(|s| s.aggregate_version);
            let (update, condition) = figures_update(&recomputed, version);
            ports
                .tables
                .update(
                    &cfg.providers_table,
                    &self.provider_key(provider),
                    &update,
                    Some(&condition),
                )
                .await?;
        }
        Ok(Reconciled {
            aggregate: provider.to_string(),
            stored: stored_figures,
            computed,
            fixed_aggregate,
            fixed_state: fixed_slots,
        })
    }
}

//! `provider-rating`: keeps each provider's `ratingSum`, `reviewCount` and `rating` exact as
//! reviews come, change and go.
//!
//! Recomputed from state, so re-delivery and retries change nothing: the provider's reviews
//! are read through `providerReviews-index` and only one review per booking counts (the
//! earliest by `createdAt`, then `reviewId`; when it is removed, the next one counts). The
//! write is conditional on the provider's `aggregateVersion` as read, so two workers on the same
//! provider cannot lose each other's update: the later one re-reads and recomputes. Because the
//! index is eventually consistent, the triggering review's state in the table (a consistent
//! read) must match what the index shows, or the record is retried.
//!
//! The version need not be read first: the worker remembers each provider's aggregate as it
//! last read or wrote it, and writes on condition of that version (versions only grow, so if
//! it still holds, nobody wrote since). A stale memory costs one failed condition, which
//! returns the current item to start over from. When the recomputed figures equal the
//! remembered ones, the table is read to confirm before nothing is written, so an aggregate
//! changed elsewhere is still repaired. That makes a changed provider one Query and one
//! UpdateItem instead of a GetItem more.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::SecondsFormat;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;
use serde_json::json;

use super::{Idempotency, Reacted, Reaction};
use crate::change::Change;
use crate::error::{PortError, ReactionError};
use crate::item::{from_item, get_str, number, partition, string_key, AttributeValue, Item};
use crate::ports::{Condition, Ports, Query, Update};
use crate::settings::Settings;
use crate::skipped::{with_skipped, Skipped};

const MAX_ATTEMPTS: u32 = 4;

#[derive(Debug, Clone)]
pub struct RatingsConfig {
    pub reviews_table: String,
    pub providers_table: String,
    /// The reviews GSI keyed by providerId.
    pub provider_index: String,
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
    /// nothing but a failed condition, which returns the current item.
    known: Mutex<HashMap<String, ProviderRating>>,
}

/// Providers remembered before the memory is cleared (a bound, not a cache policy).
const KNOWN_PROVIDERS: usize = 10_000;

impl ProviderRatings {
    pub fn new(config: RatingsConfig) -> Self {
        ProviderRatings {
            config,
            known: Mutex::new(HashMap::new()),
        }
    }

    fn known(&self, provider: &str) -> Option<ProviderRating> {
        self.known.lock().ok()?.get(provider).cloned()
    }

    fn remember(&self, provider: &str, stored: Option<ProviderRating>) {
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        match stored {
            Some(stored) => {
                if known.len() >= KNOWN_PROVIDERS {
                    known.clear();
                }
                known.insert(provider.to_string(), stored);
            }
            None => {
                known.remove(provider);
            }
        }
    }
}

/// Where `recompute` takes the stored aggregate from.
enum Stored {
    /// Read now, before the reviews: its version guards the write.
    Read(ProviderRating),
    /// Remembered from an earlier read or write: its version guards the write just as well
    /// (versions only grow, so if it still holds nobody wrote since), but "unchanged" must be
    /// confirmed by a read.
    Remembered(ProviderRating),
}

enum Recomputed {
    Done(serde_json::Value),
    /// The table holds a newer aggregate than the one remembered: recompute from it.
    StartOver(ProviderRating),
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

#[async_trait]
impl Reaction for ProviderRatings {
    fn name(&self) -> &'static str {
        "provider-rating"
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::Recomputed
    }

    fn applies(&self, change: &Change) -> bool {
        change.table == self.config.reviews_table && !providers_of(change).is_empty()
    }

    fn coalesce_key(&self, change: &Change) -> Option<String> {
        Some(providers_of(change).join("|"))
    }

    fn partitions(&self, change: &Change) -> Vec<String> {
        providers_of(change)
            .iter()
            .map(|provider| partition(&self.config.providers_table, provider))
            .collect()
    }

    fn unusable_data(&self, change: &Change) -> Option<Skipped> {
        let review: Review = from_item(change.new.clone()?, "review").ok()?;
        match review.rating {
            Rating::Unusable(value) => Some(Skipped::new(
                format!(
                    "{} reviewId={}",
                    self.config.reviews_table, review.review_id
                ),
                "rating",
                &value,
            )),
            _ => None,
        }
    }

    async fn react(&self, change: &Change, ports: Ports<'_>) -> Result<Reacted, ReactionError> {
        let mut results = serde_json::Map::new();
        for provider in providers_of(change) {
            let mut attempt = 1;
            let mut stored = self.known(&provider).map(Stored::Remembered);
            let result = loop {
                let current = match self
                    .recompute(&provider, stored.take(), change, ports)
                    .await
                {
                    Ok(Recomputed::Done(result)) => break result,
                    Ok(Recomputed::StartOver(current)) => current,
                    // The failed condition returned the item as it is now: the next attempt
                    // starts from it instead of reading it again.
                    Err(ReactionError::Port(PortError::ConditionFailed { existing, .. })) => {
                        existing
                            .map(|item| {
                                from_item(
                                    *item,
                                    &format!("{} {provider}", self.config.providers_table),
                                )
                            })
                            .transpose()?
                            .unwrap_or_default()
                    }
                    Err(e) => return Err(e),
                };
                if attempt == MAX_ATTEMPTS {
                    return Err(ReactionError::Port(PortError::Transient {
                        operation: "UpdateItem",
                        target: format!("{} {provider}", self.config.providers_table),
                        message: format!("the provider's aggregate changed under {MAX_ATTEMPTS} recomputations in a row"),
                    }));
                }
                attempt += 1;
                stored = Some(Stored::Read(current));
            };
            results.insert(provider, result);
        }
        Ok(Reacted {
            result: serde_json::Value::Object(results),
            deferred_writes: Vec::new(),
        })
    }
}

impl ProviderRatings {
    /// Recompute `provider` from its reviews and write the aggregate if it changed, on
    /// condition that its version is still the one `stored` had (read now when `None`).
    async fn recompute(
        &self,
        provider: &str,
        stored: Option<Stored>,
        change: &Change,
        ports: Ports<'_>,
    ) -> Result<Recomputed, ReactionError> {
        let cfg = &self.config;
        let key = string_key(&[("providerId", provider)]);
        let read = || async {
            let item = ports.tables.get(&cfg.providers_table, &key).await?;
            let stored: ProviderRating = match item {
                Some(item) => from_item(item, &format!("{} {provider}", cfg.providers_table))?,
                None => ProviderRating::default(),
            };
            Ok::<_, ReactionError>(stored)
        };
        let (stored, remembered) = match stored {
            Some(Stored::Read(stored)) => (stored, false),
            Some(Stored::Remembered(stored)) => (stored, true),
            None => (read().await?, false),
        };
        let items = ports
            .tables
            .query(&Query {
                table: cfg.reviews_table.clone(),
                index: Some(cfg.provider_index.clone()),
                partition: ("providerId".into(), AttributeValue::S(provider.to_string())),
                sort_key: None,
                ascending: true,
            })
            .await?;
        let reviews: Vec<Review> = items
            .into_iter()
            .map(|item| {
                from_item(
                    item,
                    &format!("{} review of provider {provider}", cfg.reviews_table),
                )
            })
            .collect::<Result<_, _>>()?;
        self.check_index_caught_up(provider, change, &reviews, ports)
            .await?;
        let totals = aggregate(&reviews);
        let unchanged = |stored: &ProviderRating| {
            stored.rating_sum == Some(totals.rating_sum)
                && stored.review_count == Some(totals.review_count)
                && stored.rating == Some(totals.rating)
        };
        let figures = json!({
            "ratingSum": totals.rating_sum.normalize().to_string(),
            "reviewCount": totals.review_count.to_string(),
            "rating": totals.rating.normalize().to_string(),
            "notCounted": totals.not_counted,
        });
        let figures = with_skipped(
            figures,
            totals.unusable.iter().map(|(review, value)| {
                Skipped::new(
                    format!("{} reviewId={review}", cfg.reviews_table),
                    "rating",
                    value,
                )
            }),
        );
        if unchanged(&stored) {
            if !remembered {
                self.remember(provider, Some(stored));
                return Ok(Recomputed::Done(json!({ "unchanged": figures })));
            }
            // What this process remembers agrees; the table must too. Read after the reviews,
            // the item may show a newer write: then start over from it rather than write.
            let current = read().await?;
            self.remember(provider, Some(current.clone()));
            if unchanged(&current) {
                return Ok(Recomputed::Done(json!({ "unchanged": figures })));
            }
            return Ok(Recomputed::StartOver(current));
        }
        let version = stored.aggregate_version.unwrap_or_default();
        let n = |d: Decimal| AttributeValue::N(d.normalize().to_string());
        let update = Update::default()
            .set("ratingSum", n(totals.rating_sum))
            .set("reviewCount", n(totals.review_count))
            .set("rating", n(totals.rating))
            .set("aggregateVersion", n(version + Decimal::ONE))
            // The time of the review change, not of the worker's run: a replay writes the same.
            .set(
                "ratingUpdatedAt",
                AttributeValue::S(
                    change
                        .approximate_creation
                        .to_rfc3339_opts(SecondsFormat::Millis, true),
                ),
            );
        let as_read = match stored.aggregate_version {
            Some(v) => Condition::eq("aggregateVersion", n(v)),
            None => Condition::NotExists("aggregateVersion".into()),
        };
        let written = ports
            .tables
            .update(&cfg.providers_table, &key, &update, Some(&as_read))
            .await;
        match written {
            Ok(item) => {
                let now_stored = from_item(item, &format!("{} {provider}", cfg.providers_table))?;
                self.remember(provider, Some(now_stored));
                Ok(Recomputed::Done(json!({ "updated": figures })))
            }
            Err(e) => {
                self.remember(provider, None);
                Err(e.into())
            }
        }
    }

    /// The index must show the triggering review as it is now. The record's own image settles
    /// it without a read when the index shows exactly that; otherwise the table is read
    /// consistently (the review may have changed again since this record).
    async fn check_index_caught_up(
        &self,
        provider: &str,
        change: &Change,
        reviews: &[Review],
        ports: Ports<'_>,
    ) -> Result<(), ReactionError> {
        let Some(review_id) = get_str(change.latest_image(), "reviewId") else {
            return Ok(());
        };
        // Only a review with the index's keys (providerId and createdAt) is in the index.
        let as_indexed = |item: Item| -> Result<Option<Rating>, ReactionError> {
            let indexed = get_str(&item, "providerId") == Some(provider)
                && get_str(&item, "createdAt").is_some();
            if indexed {
                Ok(Some(from_item::<Review>(item, "review")?.rating))
            } else {
                Ok(None)
            }
        };
        let index_rating = reviews
            .iter()
            .find(|r| r.review_id == review_id)
            .map(|r| r.rating.clone());
        let streamed = change.new.clone().map(as_indexed).transpose()?.flatten();
        if streamed == index_rating {
            return Ok(());
        }
        let key = string_key(&[("reviewId", review_id)]);
        let in_table = ports.tables.get(&self.config.reviews_table, &key).await?;
        let table_rating = in_table.map(as_indexed).transpose()?.flatten();
        if table_rating == index_rating {
            Ok(())
        } else {
            Err(ReactionError::Port(PortError::Transient {
                operation: "Query",
                target: format!("{} {}", self.config.reviews_table, self.config.provider_index),
                message: format!("the index does not show review {review_id} as the table has it yet (eventual consistency); retrying"),
            }))
        }
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

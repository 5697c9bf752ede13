//! The rating rules, pure: which reviews of a provider count (the earliest of each booking,
//! with a usable rating) and their aggregate, to two decimals. The window fold keeps to them
//! change by change, `reconcile` recomputes by them, and the property tests check the one
//! against the other.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;

use crate::item::number;

/// A review, the fields the aggregate uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    pub review_id: String,
    #[serde(default)]
    pub booking_id: Option<String>,
    #[serde(default)]
    pub provider_id: Option<String>,
    /// Text or epoch numbers, compared as instants.
    #[serde(default, deserialize_with = "number::text_or_number")]
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
                // A number the application wrote as a string (`"4"`) is that number.
                None => match number::exact(text.trim()) {
                    Some(rating) if range.contains(&rating) => Rating::Usable(rating),
                    Some(rating) => Rating::Unusable(format!("{rating} (not 1 to 5)")),
                    None => Rating::Unusable(format!("{text:?} (text, not a number)")),
                },
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
    // The earlier review of a booking counts: by `createdAt` as an instant (applications
    // write several forms), then by id.
    let order = |a: &Review, b: &Review| {
        crate::instant::compare(
            a.created_at.as_deref().unwrap_or_default(),
            b.created_at.as_deref().unwrap_or_default(),
        )
        .then_with(|| a.review_id.cmp(&b.review_id))
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
            Some(current) if order(current, review).is_le() => {
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

//! The worker's own record of a provider's reviews, one item per booking: what lets a review
//! change its provider's aggregate from the change alone, without reading the provider's other
//! reviews.
//!
//! Only the earliest review of a booking counts (by `createdAt`, then `reviewId`), and the
//! next one counts when it is removed, so a booking's reviews are kept together: the slot
//! knows which of them counts before and after a change, and the difference is what the change
//! does to the provider's sum and count. A review without a booking has a slot of its own.
//!
//! Each review in a slot carries the stream sequence number of the change its state comes
//! from, and removed reviews stay as such, so a change delivered again, late or redriven
//! changes nothing once a later change of the same review is in: the slot, not an idempotency
//! record, makes the reaction safe to repeat.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::item::number;
use crate::reactions::folding::REMOVED_KEPT_SECONDS;
use crate::sequence_number::SequenceNumber;

/// Where a review counts: its provider and booking.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotKey {
    pub provider: String,
    /// `BOOKING#<bookingId>`, or `REVIEW#<reviewId>` for a review without a booking.
    pub slot: String,
}

impl SlotKey {
    pub fn new(provider: &str, booking: Option<&str>, review_id: &str) -> SlotKey {
        let slot = match booking.filter(|b| !b.is_empty()) {
            Some(booking) => ["BOOKING#", booking].concat(),
            None => ["REVIEW#", review_id].concat(),
        };
        SlotKey {
            provider: provider.to_string(),
            slot,
        }
    }

    /// The state item's partition key: all of one provider's slots are one partition, which
    /// `reconcile` queries.
    pub fn partition(provider: &str) -> String {
        format!("PROVIDER#{provider}")
    }
}

/// One slot as stored in the aggregate-state table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BookingSlot {
    pub pk: String,
    pub sk: String,
    /// Every review the slot has seen, by reviewId.
    #[serde(default)]
    pub reviews: BTreeMap<String, SlotReview>,
    /// Raised by every write; a write is conditional on the version read (0: not stored yet).
    #[serde(default, with = "number::int")]
    pub version: i64,
    /// Set while no review is present (TTL, epoch seconds): the slot is then only a guard
    /// against its removed reviews' older changes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "number::option_int"
    )]
    pub ttl: Option<i64>,
}

/// A review as the slot last saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotReview {
    /// The stream sequence number of the change this state comes from.
    pub sequence_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// The rating when the review is present, counts toward the provider and is usable;
    /// absent when it was removed, moved away, or holds no usable rating.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "number::option"
    )]
    pub rating: Option<Decimal>,
}

/// What a change did to a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed,
    /// The slot already holds this or a later change of the review.
    Stale,
}

impl BookingSlot {
    pub fn empty(key: &SlotKey) -> BookingSlot {
        BookingSlot {
            pk: SlotKey::partition(&key.provider),
            sk: key.slot.clone(),
            ..BookingSlot::default()
        }
    }

    /// The review that counts, and its rating.
    pub fn counted(&self) -> Option<(&str, Decimal)> {
        self.reviews
            .iter()
            .filter_map(|(id, review)| Some((id, review.rating?, review)))
            .min_by(|(a_id, _, a), (b_id, _, b)| {
                // By `createdAt` as an instant, whatever its form, then by id.
                crate::instant::compare(
                    a.created_at.as_deref().unwrap_or_default(),
                    b.created_at.as_deref().unwrap_or_default(),
                )
                .then_with(|| a_id.cmp(b_id))
            })
            .map(|(id, rating, _)| (id.as_str(), rating))
    }

    /// Whether the slot knows the review at all (present or removed).
    pub fn knows(&self, review_id: &str) -> bool {
        self.reviews.contains_key(review_id)
    }

    /// The review's state after the change with `sequence_number`, unless the slot holds a
    /// later one. `rating` None: removed, moved away, or not usable.
    pub fn apply(
        &mut self,
        review_id: &str,
        state: SlotReview,
        record_time_seconds: i64,
    ) -> Applied {
        if let Some(known) = self.reviews.get(review_id) {
            if SequenceNumber(&known.sequence_number) >= SequenceNumber(&state.sequence_number) {
                return Applied::Stale;
            }
        }
        self.reviews.insert(review_id.to_string(), state);
        let anything_present = self.reviews.values().any(|r| r.rating.is_some());
        self.ttl = match anything_present {
            true => None,
            false => Some(record_time_seconds + REMOVED_KEPT_SECONDS),
        };
        Applied::Changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(seq: &str, at: &str, rating: Option<i64>) -> SlotReview {
        SlotReview {
            sequence_number: seq.into(),
            created_at: Some(at.into()),
            rating: rating.map(Decimal::from),
        }
    }

    #[test]
    fn the_earliest_review_counts_and_an_older_change_changes_nothing() {
        let mut slot = BookingSlot::empty(&SlotKey::new("p", Some("b1"), "r1"));
        assert_eq!(
            slot.apply("r2", state("2", "2025-01-02", Some(1)), 0),
            Applied::Changed
        );
        assert_eq!(
            slot.apply("r1", state("3", "2025-01-01", Some(5)), 0),
            Applied::Changed
        );
        assert_eq!(slot.counted(), Some(("r1", Decimal::from(5))));
        // r1 removed: r2 counts.
        assert_eq!(
            slot.apply("r1", state("4", "2025-01-01", None), 0),
            Applied::Changed
        );
        assert_eq!(slot.counted(), Some(("r2", Decimal::ONE)));
        // r1's insert delivered again: the removal is later.
        assert_eq!(
            slot.apply("r1", state("3", "2025-01-01", Some(5)), 0),
            Applied::Stale
        );
        assert_eq!(slot.counted(), Some(("r2", Decimal::ONE)));
        assert_eq!(slot.ttl, None);
        slot.apply("r2", state("5", "2025-01-02", None), 100);
        assert_eq!(slot.counted(), None);
        assert_eq!(slot.ttl, Some(100 + REMOVED_KEPT_SECONDS));
    }
}

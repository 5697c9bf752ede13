//! What a provider-rating worker remembers between windows: providers and booking slots as it
//! last read or wrote them (`reactions::bounded_memory::BoundedMemory`), so a window need not read
//! them first.

use super::booking_slots::{BookingSlot, SlotKey};
use super::{ProviderRating, ProviderRatings};

impl ProviderRatings {
    /// The provider as remembered, taken out of the memory (the fold remembers it again).
    pub(super) fn known(&self, provider: &str) -> Option<ProviderRating> {
        self.known.take(provider)
    }

    /// The slot as remembered, taken out of the memory (the fold remembers it again).
    pub(super) fn known_slot(&self, key: &SlotKey) -> Option<BookingSlot> {
        self.known_slots.take(key)
    }

    /// Remembers `slots` as stored (or, with None, forgets them).
    pub(super) fn remember_slots(
        &self,
        slots: impl Iterator<Item = (SlotKey, Option<BookingSlot>)>,
    ) {
        self.known_slots.remember(slots);
    }

    /// Remembers `providers` as stored (or, with None, forgets them), under one lock.
    pub(super) fn remember_providers(
        &self,
        providers: impl Iterator<Item = (String, Option<ProviderRating>)>,
    ) {
        self.known.remember(providers);
    }
}

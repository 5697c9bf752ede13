//! What a provider-rating worker remembers between windows: providers and booking slots as it
//! last read or wrote them (`reactions::bounded_memory::BoundedMemory`), so a window need not read
//! them first.

use super::booking_slots::{BookingSlot, SlotKey};
use super::{ProviderRating, ProviderRatings};

impl ProviderRatings {
    pub(super) fn known(&self, provider: &str) -> Option<ProviderRating> {
        self.known.get(provider)
    }

    pub(super) fn known_slot(&self, key: &SlotKey) -> Option<BookingSlot> {
        self.known_slots.get(key)
    }

    /// Remembers `slots` as stored (or, with None, forgets them).
    pub(super) fn remember_slots<'a>(
        &self,
        slots: impl Iterator<Item = (&'a SlotKey, Option<BookingSlot>)>,
    ) {
        self.known_slots
            .remember(slots.map(|(k, s)| (k.clone(), s)));
    }

    /// Remembers `providers` as stored (or, with None, forgets them), under one lock.
    pub(super) fn remember_providers<'a>(
        &self,
        providers: impl Iterator<Item = (&'a str, Option<ProviderRating>)>,
    ) {
        self.known
            .remember(providers.map(|(id, figures)| (id.to_string(), figures)));
    }
}

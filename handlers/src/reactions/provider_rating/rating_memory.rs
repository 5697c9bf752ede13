//! What a provider-rating worker remembers between windows: providers and booking slots as it
//! last read or wrote them (`reactions::bounded_memory::BoundedMemory`), so a window need not read
//! them first.

use super::booking_slots::{BookingSlot, SlotKey};
use super::rating_fold::Folding;
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

    /// Forgets the slots and providers of a window whose write failed: not known as stored.
    pub(super) fn forget_segment(&self, folded: &Folding) {
        self.remember_providers(
            folded
                .providers
                .keys()
                .map(|provider| (provider.as_str(), None)),
        );
        self.remember_slots(folded.slots.keys().map(|key| (key, None)));
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

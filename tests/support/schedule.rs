//! The one way the property tests draw a delivery schedule: how a history of records is cut
//! into batches, which earlier batch is delivered again before each, and which fault each
//! batch meets (an index into the test's own list of faults).

use proptest::prelude::*;

#[derive(Debug, Clone)]
pub struct Schedule {
    /// Batch boundaries (sizes).
    pub sizes: Vec<usize>,
    /// For each batch: deliver an earlier batch again first (index into those sent).
    pub redeliver: Vec<Option<usize>>,
    /// For each batch: the fault it meets, by index.
    pub fault: Vec<usize>,
}

/// Batches of `1..max_size` records, up to `max_batches` of them (a plan for each of
/// `plans` batches), each preceded by a re-delivery with `redeliver` probability, and faults
/// drawn from `0..faults`.
pub fn schedule(
    max_size: usize,
    max_batches: usize,
    plans: usize,
    redeliver: f64,
    faults: usize,
) -> impl Strategy<Value = Schedule> {
    (
        proptest::collection::vec(1usize..max_size, 1..max_batches),
        proptest::collection::vec(proptest::option::weighted(redeliver, 0usize..plans), plans),
        proptest::collection::vec(0usize..faults, plans),
    )
        .prop_map(|(sizes, redeliver, fault)| Schedule {
            sizes,
            redeliver,
            fault,
        })
}

/// One batch as the schedule delivers it.
pub struct Delivery<'a, T> {
    pub batch: &'a [T],
    /// The earlier batch delivered again first, if any.
    pub again: Option<&'a [T]>,
    /// The fault the batch meets, by index, if the schedule planned one.
    pub fault: Option<usize>,
}

impl Schedule {
    /// `records` cut into the schedule's batches (5 records each past its plan), in order,
    /// each with what comes before it.
    pub fn deliveries<'a, T>(&self, records: &'a [T]) -> Vec<Delivery<'a, T>> {
        let mut deliveries: Vec<Delivery<'a, T>> = Vec::new();
        let mut rest = records;
        for batch_no in 0.. {
            if rest.is_empty() {
                break;
            }
            let size = self
                .sizes
                .get(batch_no)
                .copied()
                .unwrap_or(5)
                .min(rest.len());
            let (batch, tail) = rest.split_at(size);
            rest = tail;
            let again = match (self.redeliver.get(batch_no), deliveries.len()) {
                (Some(Some(earlier)), sent) if sent > 0 => Some(deliveries[earlier % sent].batch),
                _ => None,
            };
            deliveries.push(Delivery {
                batch,
                again,
                fault: self.fault.get(batch_no).copied(),
            });
        }
        deliveries
    }
}

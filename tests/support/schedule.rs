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

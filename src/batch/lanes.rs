//! Which records of a batch must keep stream order, and which may run at once.
//!
//! A record touches its own item's partition (table and partition key: an estimation's
//! METADATA, line items and documents are one partition, a conversation's messages another)
//! and whatever partitions its reactions name besides (`Reaction::partitions`: the user profile
//! a proposal mails). Records that share a partition,
//! directly or through a chain of others, form one lane and run in stream order; different
//! lanes run at once. Coalescing stays within a lane: records with the same coalescing key
//! share that key's partition.

use std::collections::HashMap;

use handlers::item::partition;
use handlers::Reaction;

use crate::catalog::Catalog;
use crate::decode::StreamRecord;

/// The lanes of `records`: each a list of indexes into `records`, ascending; the lanes in the
/// order of their first record.
pub(crate) fn lanes(
    records: &[StreamRecord],
    reactions: &[Box<dyn Reaction>],
    catalog: &Catalog,
) -> Vec<Vec<usize>> {
    let mut sets = DisjointSets::new(records.len());
    let mut owner: HashMap<String, usize> = HashMap::new();
    for (index, record) in records.iter().enumerate() {
        for key in partitions_of(record, reactions, catalog) {
            match owner.get(&key) {
                Some(&other) => sets.join(other, index),
                None => {
                    owner.insert(key, index);
                }
            }
        }
    }
    let mut lanes: Vec<Vec<usize>> = Vec::new();
    let mut lane_of_root: HashMap<usize, usize> = HashMap::new();
    for index in 0..records.len() {
        let root = sets.root(index);
        let lane = *lane_of_root.entry(root).or_insert_with(|| {
            lanes.push(Vec::new());
            lanes.len() - 1
        });
        lanes[lane].push(index);
    }
    lanes
}

/// The partitions a record touches: its own, and those its reactions name.
fn partitions_of(
    record: &StreamRecord,
    reactions: &[Box<dyn Reaction>],
    catalog: &Catalog,
) -> Vec<String> {
    let own_hash_key = catalog
        .schema(&record.table)
        .map(|schema| schema.key.hash)
        .and_then(|hash| record.keys.get(&hash).cloned());
    let own = match own_hash_key {
        // A binary partition key reads as "…": all such records share a lane, which is safe.
        Some(value) => partition(
            &record.table,
            handlers::item::scalar_text(&value).unwrap_or("…"),
        ),
        // A table the catalog does not know: the whole key, which is at least the partition.
        None => partition(&record.table, &handlers::item::describe_keys(&record.keys)),
    };
    let mut keys = vec![own];
    if let Ok(change) = &record.change {
        for reaction in reactions.iter().filter(|r| r.applies(change)) {
            keys.extend(reaction.partitions(change));
        }
    }
    keys
}

/// Union-find over record indexes.
struct DisjointSets {
    parent: Vec<usize>,
}

impl DisjointSets {
    fn new(size: usize) -> Self {
        DisjointSets {
            parent: (0..size).collect(),
        }
    }

    fn root(&mut self, mut at: usize) -> usize {
        while self.parent[at] != at {
            // Path halving keeps the trees flat.
            self.parent[at] = self.parent[self.parent[at]];
            at = self.parent[at];
        }
        at
    }

    fn join(&mut self, a: usize, b: usize) {
        let (a, b) = (self.root(a), self.root(b));
        if a != b {
            self.parent[a.max(b)] = a.min(b);
        }
    }
}

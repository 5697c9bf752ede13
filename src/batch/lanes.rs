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
use std::ops::Range;

use handlers::item::partition;
use handlers::Reaction;

use crate::catalog::Catalog;
use crate::decode::StreamRecord;

/// Step 2, lanes: the lanes of the records of `window`: each a list of indexes into
/// `records`, ascending; the lanes in the order of their first record.
pub(super) fn lanes(
    records: &[StreamRecord],
    window: Range<usize>,
    reactions: &[Box<dyn Reaction>],
    catalog: &Catalog,
) -> Vec<Vec<usize>> {
    let offset = window.start;
    let records = &records[window];
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
        lanes[lane].push(offset + index);
    }
    lanes
}

/// The partitions a record touches: its own, and those its reactions name.
fn partitions_of(
    record: &StreamRecord,
    reactions: &[Box<dyn Reaction>],
    catalog: &Catalog,
) -> Vec<String> {
    // The records' keys settle a table under the application's names before it is used.
    catalog.learn(&record.table, &record.keys);
    let schema = catalog.schema(&record.table);
    let own = match &schema {
        // Which key attribute is the partition key was guessed: the whole table is one lane
        // (and so is every partition of it a reaction names), which is safe.
        Some(schema) if schema.guessed => whole_table(&record.table),
        Some(schema) => match record.keys.get(&schema.key.hash) {
            // A binary partition key reads as "…": all such records share a lane, which is safe.
            Some(value) => partition(
                &record.table,
                handlers::item::scalar_text(value).unwrap_or("…"),
            ),
            None => partition(&record.table, &handlers::item::describe_keys(&record.keys)),
        },
        // A table the catalog does not know: the whole key, which is at least the partition.
        None => partition(&record.table, &handlers::item::describe_keys(&record.keys)),
    };
    let mut keys = vec![own];
    if let Ok(change) = &record.change {
        for reaction in reactions.iter().filter(|r| r.applies(change)) {
            keys.extend(reaction.partitions(change).into_iter().map(|named| {
                match named.split_once('\u{0}') {
                    Some((table, _)) if catalog.guessed(table) => whole_table(table),
                    _ => named,
                }
            }));
        }
    }
    keys
}

/// The lane of every record of `table`.
fn whole_table(table: &str) -> String {
    partition(table, "\u{0}whole table")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode_event;
    use serde_json::json;

    fn insert(seq: u64, table: &str, keys: serde_json::Value) -> serde_json::Value {
        json!({
            "eventID": format!("e{seq}"),
            "eventName": "INSERT",
            "eventSource": "aws:dynamodb",
            "eventSourceARN": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2026-01-01T00:00:00.000"),
            "dynamodb": {
                "ApproximateCreationDateTime": 1_764_700_000,
                "Keys": keys.clone(),
                "NewImage": keys,
                "SequenceNumber": format!("{seq:021}"),
                "SizeBytes": 10,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
        })
    }

    #[test]
    fn a_table_whose_partition_key_was_guessed_is_one_lane_and_others_by_partition() {
        let s = |t: &str| json!({ "S": t });
        let event = json!({ "Records": [
            // Two key attributes nothing explains: `a` or `b` may be the partition.
            insert(1, "Guessed", json!({"a": s("x"), "b": s("1")})),
            insert(2, "Guessed", json!({"a": s("y"), "b": s("1")})),
            insert(3, "Single", json!({"id": s("1")})),
            insert(4, "Single", json!({"id": s("2")})),
            insert(5, "Single", json!({"id": s("1")})),
        ]});
        let records = decode_event(&event.to_string(), "test", None).unwrap();
        let lanes = lanes(&records, 0..records.len(), &[], &Catalog::default());
        assert_eq!(lanes, vec![vec![0, 1], vec![2, 4], vec![3]]);
    }
}

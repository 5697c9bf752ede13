//! Concurrency across keys, order within a key, with the interleavings forced: every table call
//! and every record's own write is held a different time per partition, so records of
//! different lanes overtake each other, one batch of 300 records at the default concurrency.
//! Each item's changes must still be applied in stream order (and end as the stream's last
//! image), and every provider's rating and every thread's statistics must end exact.
//! (Every record in a lane of its own makes it fail: the same item's changes overtake each
//! other.)

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ddb_stream_worker::adapters::{Applied, ChangeApplier};
use ddb_stream_worker::batch::intercept::{Intercept, Intercepted, TableCall};
use ddb_stream_worker::batch::{BatchOptions, DEFAULT_MAX_CONCURRENCY};
use ddb_stream_worker::wiring;
use handlers::ports::Tables;
use handlers::{Change, PortError};
use serde_json::{json, Value};
use support::{config, embedded, record_in};

const REVIEWS: &str = "marketplace-dev-reviews-table";
const PROVIDERS: &str = "marketplace-dev-providers-table";
const CONVERSATIONS: &str = "acsd2p-dev-Conversations";
const THREADS: &str = "acsd2p-dev-Threads";

/// A delay for `key` from 0 to 3 ms: the same key always waits as long, different keys not.
fn delay_for(key: &str) -> Duration {
    let hash = key
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    Duration::from_micros(hash % 3000)
}

/// Holds every table call for its partition's delay.
struct Delays;

#[async_trait]
impl Intercept for Delays {
    type Pending = ();

    async fn before(&self, _inner: &dyn Tables, call: TableCall<'_>) -> Result<(), PortError> {
        tokio::time::sleep(delay_for(&format!("{call:?}"))).await;
        Ok(())
    }
}

/// Applies each record's own change after its item's delay, and notes the order per item.
struct OrderedApplier {
    inner: Arc<dyn ChangeApplier>,
    applied: Mutex<BTreeMap<String, Vec<String>>>,
}

#[async_trait]
impl ChangeApplier for OrderedApplier {
    async fn apply(&self, change: &Change) -> Result<Applied, PortError> {
        let item = format!(
            "{} {}",
            change.table,
            handlers::item::describe_keys(&change.keys)
        );
        tokio::time::sleep(delay_for(&change.sequence_number)).await;
        let applied = self.inner.apply(change).await?;
        self.applied
            .lock()
            .unwrap()
            .entry(item)
            .or_default()
            .push(change.sequence_number.clone());
        Ok(applied)
    }
}

/// 300 changes: reviews r0..r29 of providers p0..p4 (inserted, re-rated, moved, removed) and
/// messages of conversations c0..c3, interleaved as a stream would carry them.
fn history() -> Vec<Value> {
    let mut items: BTreeMap<String, Value> = BTreeMap::new();
    let mut records = Vec::new();
    for step in 0u64..300 {
        let seq = step + 1;
        let (table, keys, image) = if step % 2 == 0 {
            let id = (step * 7) % 30;
            let keys = json!({"reviewId": {"S": format!("r{id}")}});
            let mut image = keys.clone();
            image["providerId"] = json!({"S": format!("p{}", (step / 3) % 5)});
            image["bookingId"] = json!({"S": format!("b{id}")});
            image["rating"] = json!({"N": (1 + step % 5).to_string()});
            image["createdAt"] = json!({"S": format!("2025-01-01T00:00:{id:02}Z")});
            (REVIEWS, keys, image)
        } else {
            let keys = json!({"conversation_id": {"S": format!("c{}", (step / 2) % 4)}, "response_id": {"S": format!("m{}", (step * 5) % 40)}});
            let mut image = keys.clone();
            image["sender_email"] = json!({"S": format!("s{}@example.com", step % 3)});
            image["timestamp"] = json!({"S": format!("2025-11-17T09:{:02}:00Z", step % 60)});
            (CONVERSATIONS, keys, image)
        };
        let slot = format!("{table} {keys}");
        let old = items.get(&slot).cloned();
        let remove = step % 11 == 5 && old.is_some();
        let (event, new) = match (remove, &old) {
            (true, _) => ("REMOVE", None),
            (false, None) => ("INSERT", Some(image)),
            (false, Some(_)) => ("MODIFY", Some(image)),
        };
        match &new {
            Some(new) => items.insert(slot, new.clone()),
            None => items.remove(&slot),
        };
        records.push(record_in(table, seq, event, keys, new, old));
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_one_key_keep_stream_order_while_lanes_overtake_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let (state, mut adapters) = embedded(dir.path());
    adapters.tables = Arc::new(Intercepted::new(adapters.tables.clone(), Delays));
    let applier = Arc::new(OrderedApplier {
        inner: adapters
            .applier
            .clone()
            .expect("the embedded state applies"),
        applied: Mutex::new(BTreeMap::new()),
    });
    adapters.applier = Some(applier.clone());
    let worker = wiring::worker(&config(), adapters).with_max_concurrency(DEFAULT_MAX_CONCURRENCY);

    let records = history();
    let text = json!({ "Records": &records }).to_string();
    let batch = ddb_stream_worker::decode::decode_event(&text, "ordering", None).unwrap();
    let mut settled = Vec::new();
    let outcome = worker
        .process_batch(
            &batch,
            BatchOptions {
                apply_own_change: true,
                ..BatchOptions::default()
            },
            &mut |report| settled.push(report.index),
        )
        .await;
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    assert_eq!(
        settled,
        (0..records.len()).collect::<Vec<_>>(),
        "reports in stream order"
    );

    // Every item's changes in stream order.
    for (item, order) in applier.applied.lock().unwrap().iter() {
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, &sorted, "{item}: applied out of stream order");
    }

    // The end state the stream implies: items, ratings, thread statistics.
    let mut last: BTreeMap<String, Option<Value>> = BTreeMap::new();
    for record in &records {
        let table = if record["eventSourceARN"].as_str().unwrap().contains(REVIEWS) {
            REVIEWS
        } else {
            CONVERSATIONS
        };
        let slot = format!("{table} {}", record["dynamodb"]["Keys"]);
        last.insert(slot, record["dynamodb"].get("NewImage").cloned());
    }
    let dump = support::dump(&state, None).unwrap();
    let table = |name: &str| -> Vec<Value> {
        dump.iter()
            .find(|(t, _)| t == name)
            .map(|(_, items)| items.clone())
            .unwrap_or_default()
    };
    let mut ratings: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut messages: BTreeMap<String, u64> = BTreeMap::new();
    for (slot, image) in &last {
        let Some(image) = image else { continue };
        if slot.starts_with(REVIEWS) {
            let provider = image["providerId"]["S"].as_str().unwrap().to_string();
            let rating: u64 = image["rating"]["N"].as_str().unwrap().parse().unwrap();
            let entry = ratings.entry(provider).or_default();
            entry.0 += rating;
            entry.1 += 1;
        } else {
            let conversation = image["conversation_id"]["S"].as_str().unwrap().to_string();
            *messages.entry(conversation).or_default() += 1;
        }
    }
    for (name, prefix) in [(REVIEWS, REVIEWS), (CONVERSATIONS, CONVERSATIONS)] {
        let mut want: Vec<String> = last
            .iter()
            .filter(|(slot, _)| slot.starts_with(prefix))
            .filter_map(|(_, image)| image.as_ref().map(Value::to_string))
            .collect();
        let mut got: Vec<String> = table(name).iter().map(Value::to_string).collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{name} ends as the stream's last images");
    }
    for provider in table(PROVIDERS) {
        let id = provider["providerId"]["S"].as_str().unwrap();
        let (sum, count) = ratings.get(id).copied().unwrap_or_default();
        assert_eq!(
            (
                provider["ratingSum"]["N"].as_str(),
                provider["reviewCount"]["N"].as_str()
            ),
            (
                Some(sum.to_string().as_str()),
                Some(count.to_string().as_str())
            ),
            "provider {id}"
        );
    }
    for provider in ratings.keys() {
        assert!(
            table(PROVIDERS)
                .iter()
                .any(|p| p["providerId"]["S"] == provider.as_str()),
            "provider {provider} has an aggregate"
        );
    }
    for thread in table(THREADS) {
        let id = thread["conversation_id"]["S"].as_str().unwrap();
        assert_eq!(
            thread["message_count"]["N"].as_str(),
            Some(messages.get(id).copied().unwrap_or(0).to_string().as_str()),
            "thread {id}"
        );
    }
    println!(
        "{} records in one batch at concurrency {DEFAULT_MAX_CONCURRENCY}, delays per partition: \
         every item in stream order, {} providers and {} threads exact",
        records.len(),
        ratings.len(),
        messages.len()
    );
}

//! Provider ratings under the delivery schedules streams produce: random histories of review
//! inserts, edits (rating, provider, booking) and removes, delivered in random batches, with
//! old batches delivered again and transient failures at random points followed by Lambda's
//! retry from the reported sequence number. Every provider must end equal to a recomputation
//! from the final set of reviews, written here independently of the worker's own code.
//!
//! `PROPTEST_CASES=1000 cargo test --test ratings_properties` runs a longer search.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use ddb_stream_worker::batch::{Adapters, BatchOptions, Worker};
use ddb_stream_worker::decode::decode_event;
use ddb_stream_worker::wiring::config::Config;
use handlers::reactions::provider_rating::ProviderRatings;
use proptest::prelude::*;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Value};
use support::schedule::{schedule, Schedule};
use support::stream_record::StreamRecord;
use support::{embedded, faulty_tables, Faults};

const REVIEWS: &str = "marketplace-dev-reviews-table";
const PROVIDERS: &str = "marketplace-dev-providers-table";

#[derive(Debug, Clone)]
enum Op {
    Insert {
        review: u8,
        booking: u8,
        provider: u8,
        half_stars: u8,
    },
    Rate {
        review: u8,
        half_stars: u8,
    },
    Move {
        review: u8,
        provider: u8,
    },
    Rebook {
        review: u8,
        booking: u8,
    },
    Remove {
        review: u8,
        ttl: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..8, 0u8..5, 0u8..3, 2u8..=10).prop_map(|(review, booking, provider, half_stars)| Op::Insert { review, booking, provider, half_stars }),
        2 => (0u8..8, 2u8..=10).prop_map(|(review, half_stars)| Op::Rate { review, half_stars }),
        1 => (0u8..8, 0u8..3).prop_map(|(review, provider)| Op::Move { review, provider }),
        1 => (0u8..8, 0u8..5).prop_map(|(review, booking)| Op::Rebook { review, booking }),
        2 => (0u8..8, any::<bool>()).prop_map(|(review, ttl)| Op::Remove { review, ttl }),
    ]
}

/// The table's reviews as a person would keep them, and the stream records of each change.
fn history(ops: &[Op]) -> (BTreeMap<String, Value>, Vec<Value>) {
    let mut table: BTreeMap<String, Value> = BTreeMap::new();
    let mut records = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let seq = format!("{:021}", i + 1);
        let id = |review: &u8| format!("rev-{review}");
        let stars = |half: &u8| json!({ "N": Decimal::new(i64::from(*half) * 5, 1).normalize().to_string() });
        let (name, old, new, ttl) = match op {
            Op::Insert {
                review,
                booking,
                provider,
                half_stars,
            } => {
                let new = json!({
                    "reviewId": { "S": id(review) }, "bookingId": { "S": format!("bk-{booking}") },
                    "providerId": { "S": format!("prov-{provider}") }, "rating": stars(half_stars),
                    "createdAt": { "S": format!("2025-01-01T00:00:{:02}.{:03}Z", i / 1000, i % 1000) },
                });
                let old = table.insert(id(review), new.clone());
                (
                    if old.is_some() { "MODIFY" } else { "INSERT" },
                    old,
                    Some(new),
                    false,
                )
            }
            Op::Rate { review, .. } | Op::Move { review, .. } | Op::Rebook { review, .. } => {
                let Some(old) = table.get(&id(review)).cloned() else {
                    continue;
                };
                let mut new = old.clone();
                match op {
                    Op::Rate { half_stars, .. } => new["rating"] = stars(half_stars),
                    Op::Move { provider, .. } => {
                        new["providerId"] = json!({ "S": format!("prov-{provider}") })
                    }
                    Op::Rebook { booking, .. } => {
                        new["bookingId"] = json!({ "S": format!("bk-{booking}") })
                    }
                    _ => unreachable!(),
                }
                table.insert(id(review), new.clone());
                ("MODIFY", Some(old), Some(new), false)
            }
            Op::Remove { review, ttl } => {
                let Some(old) = table.remove(&id(review)) else {
                    continue;
                };
                ("REMOVE", Some(old), None, *ttl)
            }
        };
        let image = new.as_ref().or(old.as_ref()).unwrap();
        let keys = json!({ "reviewId": image["reviewId"] });
        records.push(
            StreamRecord {
                table: REVIEWS,
                event_id: format!("ev-{i}"),
                event_name: name,
                sequence_number: seq,
                created: 1_735_689_600 + i as u64,
                keys,
                new,
                old,
                by_ttl: ttl,
            }
            .into_json(),
        );
    }
    (table, records)
}

/// The expected aggregate per provider: of a provider's reviews, for each booking the earliest
/// (by createdAt, then reviewId) counts; the rating is the average, two decimals, half up.
fn expected(table: &BTreeMap<String, Value>) -> BTreeMap<String, (Decimal, Decimal, Decimal)> {
    let mut first_per_booking: BTreeMap<(String, String), (String, String, Decimal)> =
        BTreeMap::new();
    for review in table.values() {
        let text = |name: &str| review[name]["S"].as_str().unwrap().to_string();
        let rating: Decimal = review["rating"]["N"].as_str().unwrap().parse().unwrap();
        let slot = (text("providerId"), text("bookingId"));
        let candidate = (text("createdAt"), text("reviewId"), rating);
        let keep = first_per_booking
            .get(&slot)
            .is_none_or(|current| (&candidate.0, &candidate.1) < (&current.0, &current.1));
        if keep {
            first_per_booking.insert(slot, candidate);
        }
    }
    // A booking's reviews belong with its provider; should edits leave reviews of one booking
    // with two providers, each provider counts its own earliest one.
    let mut totals: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    for ((provider, _), (_, _, rating)) in first_per_booking {
        let entry = totals.entry(provider).or_default();
        entry.0 += rating;
        entry.1 += Decimal::ONE;
    }
    totals
        .into_iter()
        .map(|(p, (sum, count))| {
            (
                p,
                (
                    sum,
                    count,
                    (sum / count).round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero),
                ),
            )
        })
        .collect()
}

/// A worker with only the ratings reaction.
fn ratings_worker(adapters: &Adapters) -> Worker {
    let config = Config::from_lookup(|_| None).unwrap();
    Worker::new(
        vec![Box::new(ProviderRatings::new(
            config.reactions.ratings.clone(),
        ))],
        adapters.clone(),
        config.idempotency,
    )
}

/// As a replay on the embedded state: each record's own change is applied first.
const REPLAYED: BatchOptions = BatchOptions {
    deadline: None,
    apply_own_change: true,
    stop_before: None,
};

async fn deliver(ops: Vec<Op>, plan: Schedule) -> Result<(), TestCaseError> {
    let (table, records) = history(&ops);
    let dir = tempfile::tempdir().unwrap();
    let (_state, mut adapters) = embedded(dir.path());
    let faults = Arc::new(Faults::default());
    let faulty = faulty_tables(adapters.tables.clone(), faults.clone());
    adapters.tables = faulty.clone();
    let worker = ratings_worker(&adapters);
    let options = REPLAYED;

    for planned in plan.deliveries(&records) {
        if let Some(earlier) = planned.again {
            run_until_done(&worker, earlier, options).await;
        }
        match planned.fault.unwrap_or(0) {
            1 => faults.fail_next("Query", "", 1),
            2 => faults.fail_next("GetItem", "", 1),
            3 => faults.fail_next("UpdateItem", "", 1),
            _ => {}
        }
        run_until_done(&worker, planned.batch, options).await;
    }

    let want = expected(&table);
    for provider in 0..3 {
        let id = format!("prov-{provider}");
        let key = handlers::item::string_key(&[("providerId", &id)]);
        // Read past the fault injector: a fault armed for a call the worker never made must
        // not hit the check.
        let stored = faulty.inner.get(PROVIDERS, &key).await.unwrap();
        let number = |item: &handlers::Item, name: &str| match item.get(name) {
            Some(handlers::AttributeValue::N(n)) => n.parse::<Decimal>().unwrap(),
            other => panic!("{name}: {other:?}"),
        };
        let got = stored.map(|item| {
            (
                number(&item, "ratingSum"),
                number(&item, "reviewCount"),
                number(&item, "rating"),
            )
        });
        let wanted = want.get(&id).copied().unwrap_or_default();
        match got {
            Some(got) => prop_assert_eq!(got, wanted, "provider {} after {:?}", id, ops),
            // Never reviewed: no item is fine; otherwise the aggregate must be there.
            None => prop_assert_eq!(
                wanted,
                (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO),
                "provider {} has no item",
                id
            ),
        }
    }
    Ok(())
}

/// Deliver `records` as Lambda does: on a failure, again from the reported sequence number.
async fn run_until_done(worker: &Worker, records: &[Value], options: BatchOptions) {
    let mut from = 0;
    for _ in 0..10 {
        let text = json!({ "Records": &records[from..] }).to_string();
        let decoded = decode_event(&text, "schedule", None).unwrap();
        let outcome = worker.process_batch(&decoded, options, &mut |_| {}).await;
        let Some(failed) = outcome
            .response
            .batch_item_failures
            .first()
            .and_then(|f| f.item_identifier.clone())
        else {
            return;
        };
        from += records[from..]
            .iter()
            .position(|r| r["dynamodb"]["SequenceNumber"] == failed.as_str())
            .expect("the reported record is in the batch");
    }
    panic!("the batch did not complete after 10 deliveries");
}

proptest! {
    // PROPTEST_CASES overrides the default of 96 (an explicit count here would ignore it).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(96),
        ..ProptestConfig::default()
    })]

    #[test]
    fn ratings_are_exact_under_duplicates_and_retries(ops in proptest::collection::vec(op(), 1..30), plan in schedule(6, 40, 40, 0.5, 4)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(deliver(ops, plan))?;
    }
}

//! DynamoDB requests per record against DynamoDB Local (counted by the worker's adapter, per
//! operation) and the capacity units DynamoDB Local reports for them, delivered in Lambda
//! batches of 100, first and again (a full re-delivery). After both deliveries every
//! provider's aggregate is checked against the sum and count of its generated reviews. Then
//! the cost of a batch of 10 new reviews for a provider with 10 and with 10,000 earlier ones,
//! beside what reading its reviews (the recomputing version's way) costs. Needs
//! `scripts/services start` (scripts/bench does it). Prints figures; never fails on them.
//! Run: `cargo bench --bench requests`.

#[path = "support/capacity.rs"]
mod capacity;
#[path = "support/local.rs"]
mod local;
#[path = "support/mix.rs"]
mod mix;

use std::collections::BTreeMap;

use capacity::Capacity;
use ddb_stream_worker::adapters::dynamodb::DynamoDbTables;
use ddb_stream_worker::batch::{BatchOptions, Worker};
use ddb_stream_worker::catalog::Catalog;
use ddb_stream_worker::cli::tables;
use ddb_stream_worker::decode::decode_event;
use ddb_stream_worker::wiring;
use ddb_stream_worker::wiring::config::Config;
use handlers::item::AttributeValue;
use handlers::ports::Query;
use handlers::ports::Tables;
use mix::{Kind, Mix};
use rust_decimal::Decimal;
use serde_json::json;

/// Deliver `records` in batches of 100. With `app`, each batch's writes are first made in
/// DynamoDB Local (as the application would, and not counted), so the reactions see real state.
async fn deliver(
    worker: &Worker,
    records: &[serde_json::Value],
    app: Option<&dyn Tables>,
) -> BTreeMap<&'static str, u64> {
    let mut total = BTreeMap::new();
    for chunk in records.chunks(100) {
        let text = json!({ "Records": chunk }).to_string();
        let batch = decode_event(&text, "bench", None).expect("generated records decode");
        if let Some(app) = app {
            local::write_as_the_application(app, &batch).await;
        }
        let outcome = worker
            .process_batch(&batch, BatchOptions::default(), &mut |_| {})
            .await;
        assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
        for (op, n) in outcome.requests {
            *total.entry(op).or_default() += n;
        }
    }
    total
}

/// Requests and capacity units per record, and the requests by operation.
fn show(
    label: &str,
    records: usize,
    counts: &BTreeMap<&'static str, u64>,
    (read, write): (Decimal, Decimal),
) {
    let total: u64 = counts.values().sum();
    let each: Vec<String> = counts.iter().map(|(op, n)| format!("{op} {n}")).collect();
    let per = |units: Decimal| (units / Decimal::from(records)).round_dp(3);
    println!(
        "  {label}: {total} requests for {records} records = {} per record ({}); {} read and {} write capacity units per record",
        per(Decimal::from(total)),
        each.join(", "),
        per(read),
        per(write),
    );
}

/// A worker whose DynamoDB answers report their capacity units into `capacity`.
fn worker_counting(sdk: &aws_config::SdkConfig, capacity: &Capacity) -> Worker {
    let counted = sdk.to_builder().http_client(capacity.clone()).build();
    wiring::worker(
        &Config::from_lookup(|_| None).unwrap(),
        wiring::sdk_adapters(&counted, Catalog::with_seed_definitions()),
    )
}

/// A batch of 10 new reviews (or messages) for one provider (or conversation) that has
/// `earlier` ones already (delivered through the worker before, in batches of 100): the
/// worker's requests and capacity units per change, and what one read of all of them costs
/// (what the recomputing version did on every batch).
async fn with_history(
    sdk: &aws_config::SdkConfig,
    app: &DynamoDbTables,
    tag: String,
    kind: Kind,
    earlier: usize,
) {
    let mix = Mix {
        tag,
        kinds: vec![kind],
        providers: 1,
        estimations: 1,
        conversations: 1,
    };
    let capacity = Capacity::new();
    let worker = worker_counting(sdk, &capacity);
    let history = mix.records(earlier, 0);
    deliver(&worker, &history, Some(app)).await;
    let new = mix.records(10, earlier);
    let before = capacity.snapshot();
    let counts = deliver(&worker, &new, Some(app)).await;
    let what = match kind {
        Kind::Review => "reviews",
        _ => "messages",
    };
    show(
        &format!("10 new {what}, {earlier} earlier"),
        new.len(),
        &counts,
        capacity.since(&before),
    );
    let all: Vec<_> = history.into_iter().chain(new).collect();
    local::check_ratings(app, &all).await;

    let reader = DynamoDbTables::new(
        aws_sdk_dynamodb::Client::new(&sdk.to_builder().http_client(capacity.clone()).build()),
        Catalog::with_seed_definitions(),
    );
    let before = capacity.snapshot();
    let image = &all[0]["dynamodb"]["NewImage"];
    let (table, index, key, how) = match kind {
        Kind::Review => (
            "marketplace-dev-reviews-table",
            Some("providerReviews-index".to_string()),
            "providerId",
            "the provider's reviews through providerReviews-index",
        ),
        _ => (
            "acsd2p-dev-Conversations",
            None,
            "conversation_id",
            "the conversation's messages (consistent)",
        ),
    };
    let items = reader
        .query(&Query {
            table: table.into(),
            index,
            partition: (
                key.into(),
                AttributeValue::S(image[key]["S"].as_str().unwrap().to_string()),
            ),
            sort_key: None,
            ascending: true,
        })
        .await
        .expect("query the history");
    let (read, _) = capacity.since(&before);
    println!(
        "    reading {how}, {} of them (the recomputing version, every batch): {} read capacity units",
        items.len(),
        read.round_dp(1)
    );
}

#[tokio::main]
async fn main() {
    let (endpoint, _) = local::dynamodb_local("requests per record");
    let sdk = local::sdk(&endpoint).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    tables::create_tables(&client, &[])
        .await
        .expect("create the seed tables");
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 0xffffff
    );
    let cases = [
        (
            "50/50 user-profile changes (audited) and reviews, 5 providers",
            vec![Kind::Profile, Kind::Review],
            5,
        ),
        (
            "50/50 user-profile changes (audited) and reviews, 25 providers",
            vec![Kind::Profile, Kind::Review],
            25,
        ),
        (
            "50/50 user-profile changes (audited) and reviews, 50 providers",
            vec![Kind::Profile, Kind::Review],
            50,
        ),
        (
            "mix of profiles, line items, reviews and messages",
            vec![Kind::Profile, Kind::LineItem, Kind::Review, Kind::Message],
            20,
        ),
    ];
    for (i, (label, kinds, providers)) in cases.into_iter().enumerate() {
        let mix = Mix {
            tag: format!("{run}{i}"),
            kinds,
            providers,
            estimations: 20,
            conversations: 30,
        };
        let records = mix.records(2_000, 0);
        let capacity = Capacity::new();
        let worker = worker_counting(&sdk, &capacity);
        let app = DynamoDbTables::new(client.clone(), Catalog::with_seed_definitions());
        println!("{label} (2,000 records, batches of 100):");
        let before = capacity.snapshot();
        let first = deliver(&worker, &records, Some(&app)).await;
        show(
            "first delivery",
            records.len(),
            &first,
            capacity.since(&before),
        );
        let before = capacity.snapshot();
        let again = deliver(&worker, &records, None).await;
        show(
            "re-delivery",
            records.len(),
            &again,
            capacity.since(&before),
        );
        let checked = local::check_ratings(&app, &records).await;
        println!("  every aggregate exact: {checked} providers checked against their reviews");
    }
    let app = DynamoDbTables::new(client.clone(), Catalog::with_seed_definitions());
    println!("a provider's history (reviews, each of its own booking) and a conversation's:");
    for (i, (kind, earlier)) in [
        (Kind::Review, 10),
        (Kind::Review, 10_000),
        (Kind::Message, 10),
        (Kind::Message, 10_000),
    ]
    .into_iter()
    .enumerate()
    {
        with_history(&sdk, &app, format!("{run}h{i}"), kind, earlier).await;
    }
}

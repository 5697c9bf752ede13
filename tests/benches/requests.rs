//! DynamoDB requests per record against DynamoDB Local (counted by the worker's adapter, per
//! operation), delivered in Lambda batches of 100, first and again (a full re-delivery).
//! After both deliveries every provider's aggregate is checked against the sum and count of
//! its generated reviews. Needs `scripts/services start` (scripts/bench does it). Prints
//! figures; never fails on them.
//! Run: `cargo bench --bench requests`.

#[path = "support/local.rs"]
mod local;
#[path = "support/mix.rs"]
mod mix;

use std::collections::BTreeMap;
use std::net::TcpStream;

use aws_config::{BehaviorVersion, Region};
use ddb_stream_worker::adapters::dynamodb::DynamoDbTables;
use ddb_stream_worker::batch::{BatchOptions, Worker};
use ddb_stream_worker::catalog::Catalog;
use ddb_stream_worker::cli::tables;
use ddb_stream_worker::decode::decode_event;
use ddb_stream_worker::wiring;
use ddb_stream_worker::wiring::config::Config;
use handlers::ports::Tables;
use mix::{Kind, Mix};
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

fn show(label: &str, records: usize, counts: &BTreeMap<&'static str, u64>) {
    let total: u64 = counts.values().sum();
    let each: Vec<String> = counts.iter().map(|(op, n)| format!("{op} {n}")).collect();
    println!(
        "  {label}: {total} requests for {records} records = {:.3} per record ({})",
        total as f64 / records as f64,
        each.join(", ")
    );
}

#[tokio::main]
async fn main() {
    // The endpoint `scripts/services env` exports, as the tests take it.
    let endpoint =
        std::env::var("DSW_DYNAMODB_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8000".into());
    let address = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    if TcpStream::connect(&address).is_err() {
        eprintln!(
            "requests per record: cannot run: nothing answers at {endpoint} (DSW_DYNAMODB_ENDPOINT). \
             Start DynamoDB Local with `scripts/services start` and `eval \"$(scripts/services env)\"`."
        );
        std::process::exit(2);
    }
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "bench", "bench", None, None, "bench",
        ))
        .load()
        .await;
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
        let worker = wiring::worker(
            &Config::from_lookup(|_| None).unwrap(),
            wiring::sdk_adapters(&sdk, Catalog::with_seed_definitions()),
        );
        let app = DynamoDbTables::new(client.clone(), Catalog::with_seed_definitions());
        println!("{label} (2,000 records, batches of 100):");
        show(
            "first delivery",
            records.len(),
            &deliver(&worker, &records, Some(&app)).await,
        );
        show(
            "re-delivery",
            records.len(),
            &deliver(&worker, &records, None).await,
        );
        let checked = local::check_ratings(&app, &records).await;
        println!("  every aggregate exact: {checked} providers checked against their reviews");
    }
}

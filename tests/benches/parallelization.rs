//! Records per second of one shard by `ParallelizationFactor`, at production latency: `stream
//! --once` (the local event source mapping, as a person runs it) drains a stream of 1,000
//! marketplace reviews over 50 providers through a proxy that delays every DynamoDB request
//! (`LATENCY_MS`, default 5), with the factor at 1, 2, 4 and 10 (`PARALLEL_FACTORS=1,4`
//! chooses others), each on a fresh table of its own (DynamoDB Local gives it one shard).
//! Batches of 100 with ReportBatchItemFailures, as the template's mappings. Every provider's
//! aggregate is checked afterwards. This is how the template's factor was chosen
//! (BENCHMARKS.md). Needs `scripts/services start`. Never fails on figures.
//! Run: `cargo bench --bench parallelization`.

#[path = "support/delaying_proxy.rs"]
mod delaying_proxy;
// Not all that the benches share is used here (the reviews go to a table of their own).
#[allow(dead_code)]
#[path = "support/local.rs"]
mod local;
#[allow(dead_code)]
#[path = "support/mix.rs"]
mod mix;

use std::time::{Duration, Instant};

use ddb_stream_worker::adapters::dynamodb::DynamoDbTables;
use ddb_stream_worker::catalog::{seed_definitions, Catalog};
use ddb_stream_worker::cli::tables;
use delaying_proxy::delaying_proxy;
use futures::StreamExt;
use mix::{Kind, Mix};
use serde_json::json;

const RECORDS: usize = 1_000;
const PROVIDERS: usize = 50;

/// A new reviews table (the seed's definition, stream included) under a name of its own.
async fn fresh_reviews_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    let mut definition = seed_definitions()
        .into_iter()
        .find(|d| d.table_name == "marketplace-dev-reviews-table")
        .expect("the reviews table's definition");
    definition.table_name = name.to_string();
    tables::create_one(client, &definition)
        .await
        .expect("create the reviews table");
}

/// The reviews as the application writes them (directly, not through the proxy).
async fn write_reviews(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    records: &[serde_json::Value],
) {
    futures::stream::iter(records)
        .map(|record| async move {
            let item: handlers::Item =
                serde_json::from_value(record["dynamodb"]["NewImage"].clone()).expect("an item");
            client
                .put_item()
                .table_name(table)
                .set_item(Some(item.into()))
                .send()
                .await
                .expect("write a review");
        })
        .buffered(16)
        .collect::<Vec<_>>()
        .await;
}

/// `stream --once` over `table` with `factor` deliveries per shard, through `endpoint`.
fn drain(table: &str, endpoint: &str, factor: u32, dir: &std::path::Path) -> Duration {
    let config = dir.join(format!("mapping-{factor}.json"));
    let settings = json!({
        "ParallelizationFactor": factor, "BatchSize": 100,
        "FunctionResponseTypes": ["ReportBatchItemFailures"], "MaximumRetryAttempts": 5,
    });
    std::fs::write(&config, settings.to_string()).expect("write the mapping's settings");
    let started = Instant::now();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ddb-stream-worker"))
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AUDITED_TABLES", "")
        .env("MARKETPLACE_REVIEWS_TABLE", table)
        .args([
            "stream",
            "--table",
            table,
            "--once",
            "--endpoint-url",
            endpoint,
        ])
        .arg("--config")
        .arg(&config)
        .arg("--checkpoints")
        .arg(dir.join(format!("checkpoints-{factor}.json")))
        .arg("--on-failure")
        .arg(dir.join(format!("failures-{factor}.jsonl")))
        .output()
        .expect("run stream");
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "stream failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    elapsed
}

#[tokio::main]
async fn main() {
    let (endpoint, upstream) = local::dynamodb_local("parallelization");
    let delay_ms: u64 = std::env::var("LATENCY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(5);
    let factors: Vec<u32> = std::env::var("PARALLEL_FACTORS")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![1, 2, 4, 10]);
    let client = aws_sdk_dynamodb::Client::new(&local::sdk(&endpoint).await);
    tables::create_tables(&client, &[])
        .await
        .expect("create the seed tables");
    let app = DynamoDbTables::new(client.clone(), Catalog::with_seed_definitions());
    let proxy = delaying_proxy(upstream, Duration::from_millis(delay_ms)).await;
    let dir = tempfile::tempdir().expect("a directory for checkpoints");
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() % 0xffffff)
        .unwrap_or(0);
    println!(
        "stream --once, one shard, {RECORDS} reviews over {PROVIDERS} providers, batches of 100, \
         DynamoDB Local + {delay_ms} ms per request:"
    );
    // The first run warms DynamoDB Local up (its JIT) and is not measured.
    for (round, factor) in std::iter::once(1)
        .chain(factors.iter().copied())
        .enumerate()
    {
        let tag = format!("par{run_id:x}r{round}");
        let records = Mix {
            tag: tag.clone(),
            kinds: vec![Kind::Review],
            providers: PROVIDERS,
            estimations: 1,
            conversations: 1,
        }
        .records(RECORDS, 0);
        let table = format!("bench-reviews-{tag}");
        fresh_reviews_table(&client, &table).await;
        write_reviews(&client, &table, &records).await;
        let elapsed = drain(&table, &proxy, factor, dir.path());
        let checked = local::check_ratings(&app, &records).await;
        if round == 0 {
            continue;
        }
        println!(
            "  ParallelizationFactor {factor:>2}: {:>6.0} records/s per shard ({:.2} s; {checked} \
             providers exact)",
            RECORDS as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64()
        );
    }
}

//! Throughput at production latency: DynamoDB Local behind a proxy that adds a delay to every
//! request (`LATENCY_MS`, default 5: with DynamoDB Local's own ~2 ms, about what a Lambda
//! function sees from DynamoDB in its region). 2,000 records, half cost-platform profile
//! changes (audited), half marketplace reviews over 5, 25 and 50 providers, delivered in Lambda
//! batches of 100 by the worker at concurrency 1 (every record in stream order, one round trip
//! after another) and at the default. Prints records/s, requests per record, and the bound the
//! dependent round trips of a batch allow; checks every provider's aggregate afterwards.
//! Then the same on the embedded tables with the delay's round trip held on every call, which
//! shows the batch's own design without DynamoDB Local's throughput (its store does the work of
//! every item on one thread, and holds every other request back while a transaction runs).
//! Last, what DynamoDB Local itself spends on a write in a transaction and in a batch, and on
//! the writes a per-record implementation makes for a batch at 50 providers (no proxy), with
//! and without the one idempotency record per review that counting each review once takes:
//! what bounds the first part on DynamoDB Local.
//! One unmeasured run first warms DynamoDB Local up (its JIT). Wants a DynamoDB Local of its own
//! (scripts/bench restarts the one it started): it says so when the store was used before.
//! Needs `scripts/services start` (scripts/bench does it). Never fails on figures.
//! Run: `cargo bench --bench latency` (`LATENCY_MS`, `LATENCY_PROVIDERS=5,50` and
//! `LATENCY_CONCURRENCY=1,16,64` change the delay, the provider counts and the settings).

// Two of the mix's kinds are used here.
#[path = "support/delaying_proxy.rs"]
mod delaying_proxy;
#[path = "support/local.rs"]
mod local;
#[allow(dead_code)]
#[path = "support/mix.rs"]
mod mix;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use ddb_stream_worker::adapters::dynamodb::DynamoDbTables;
use ddb_stream_worker::adapters::embedded::EmbeddedState;
use ddb_stream_worker::batch::intercept::{Intercept, Intercepted, TableCall};
use ddb_stream_worker::batch::{BatchOptions, DEFAULT_MAX_CONCURRENCY};
use ddb_stream_worker::catalog::Catalog;
use ddb_stream_worker::cli::tables;
use ddb_stream_worker::decode::decode_event;
use ddb_stream_worker::wiring;
use ddb_stream_worker::wiring::config::Config;
use delaying_proxy::delaying_proxy;
use futures::StreamExt;
use handlers::ports::{Condition, Tables, TransactItem, WriteRequest};
use handlers::AttributeValue;
use mix::{Kind, Mix};
use serde_json::json;

const RECORDS: usize = 2_000;
const BATCH: usize = 100;

/// Per operation: calls, items they carried, and the time spent waiting for them, summed over
/// the calls (calls at once add up).
#[derive(Clone, Default)]
struct Timed(Arc<std::sync::Mutex<BTreeMap<&'static str, Waited>>>);

/// Calls, items, time.
type Waited = (u64, u64, Duration);

impl Timed {
    fn summary(&self) -> String {
        let Ok(times) = self.0.lock() else {
            return String::new();
        };
        let parts: Vec<String> = times
            .iter()
            .map(|(op, (calls, items, spent))| {
                let ms = spent.as_secs_f64() * 1000.0;
                format!("{op} {calls}× {items} items {ms:.0} ms")
            })
            .collect();
        parts.join(", ")
    }
}

#[async_trait::async_trait]
impl Intercept for Timed {
    type Pending = (&'static str, u64, Instant);

    async fn before(
        &self,
        _inner: &dyn Tables,
        call: TableCall<'_>,
    ) -> Result<Self::Pending, handlers::PortError> {
        let items = match call {
            TableCall::BatchGet { keys, .. } => keys.len(),
            TableCall::BatchWrite { writes, .. } => writes.len(),
            TableCall::TransactWrite(items) => items.len(),
            _ => 1,
        } as u64;
        Ok((call.operation(), items, Instant::now()))
    }

    fn after(&self, (operation, items, started): Self::Pending) {
        if let Ok(mut times) = self.0.lock() {
            let entry = times.entry(operation).or_default();
            entry.0 += 1;
            entry.1 += items;
            entry.2 += started.elapsed();
        }
    }
}

/// What one run measured.
struct Run {
    timed: Timed,
    seconds: f64,
    requests: BTreeMap<&'static str, u64>,
    /// Requests per batch the batch must wait for one after another, whatever the concurrency:
    /// its BatchGetItems, then its transactions, with which its audit writes go at once.
    dependent_per_batch: f64,
}

async fn run(
    slow: &SdkConfig,
    app: &dyn Tables,
    records: &[serde_json::Value],
    concurrency: usize,
) -> Run {
    let config = Config::from_lookup(|_| None).expect("default config");
    let mut adapters = wiring::sdk_adapters(slow, Catalog::with_seed_definitions());
    let timed = Timed::default();
    adapters.tables = Arc::new(Intercepted::new(adapters.tables.clone(), timed.clone()));
    let worker = wiring::worker(&config, adapters).with_max_concurrency(concurrency);
    let mut requests = BTreeMap::new();
    let mut seconds = 0.0;
    let mut dependent = 0.0;
    let mut batches = 0.0;
    for chunk in records.chunks(BATCH) {
        let text = json!({ "Records": chunk }).to_string();
        let batch = decode_event(&text, "bench", None).expect("generated records decode");
        local::write_as_the_application(app, &batch).await;
        let started = Instant::now();
        let outcome = worker
            .process_batch(&batch, BatchOptions::default(), &mut |_| {})
            .await;
        seconds += started.elapsed().as_secs_f64();
        assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
        let count = |op: &str| outcome.requests.get(op).copied().unwrap_or(0) as f64;
        dependent += count("BatchGetItem")
            + count("TransactWriteItems").max(count("BatchWriteItem").min(1.0));
        batches += 1.0;
        for (op, n) in outcome.requests {
            *requests.entry(op).or_default() += n;
        }
    }
    Run {
        timed,
        seconds,
        requests,
        dependent_per_batch: dependent / batches,
    }
}

/// Holds every table call for its duration: a round trip to a store that answers at once.
struct RoundTrip(Duration);

#[async_trait::async_trait]
impl Intercept for RoundTrip {
    type Pending = ();

    async fn before(
        &self,
        _inner: &dyn Tables,
        _call: TableCall<'_>,
    ) -> Result<(), handlers::PortError> {
        tokio::time::sleep(self.0).await;
        Ok(())
    }
}

/// Records/s of `records` on fresh embedded tables whose every call takes `rtt`, and the
/// requests per record.
async fn embedded_run(
    records: &[serde_json::Value],
    rtt: Duration,
    concurrency: usize,
) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("a state directory");
    let catalog = Catalog::with_seed_definitions();
    let state = Arc::new(
        EmbeddedState::open(dir.path(), catalog.clone(), false).expect("the embedded state"),
    );
    let mut adapters = wiring::embedded_adapters(state, catalog);
    adapters.tables = Arc::new(Intercepted::new(adapters.tables.clone(), RoundTrip(rtt)));
    let config = Config::from_lookup(|_| None).expect("default config");
    let worker = wiring::worker(&config, adapters).with_max_concurrency(concurrency);
    let (mut seconds, mut requests) = (0.0, 0);
    for chunk in records.chunks(BATCH) {
        let text = json!({ "Records": chunk }).to_string();
        let batch = decode_event(&text, "bench", None).expect("generated records decode");
        let started = Instant::now();
        let outcome = worker
            .process_batch(
                &batch,
                BatchOptions {
                    apply_own_change: true,
                    ..BatchOptions::default()
                },
                &mut |_| {},
            )
            .await;
        seconds += started.elapsed().as_secs_f64();
        assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
        requests += outcome.requests.values().sum::<u64>();
    }
    (
        records.len() as f64 / seconds,
        requests as f64 / records.len() as f64,
    )
}

/// The median time of one GetItem through the proxy: one dependent round trip.
async fn round_trip(slow: &SdkConfig) -> Duration {
    let client = aws_sdk_dynamodb::Client::new(slow);
    let mut times = Vec::new();
    for _ in 0..21 {
        let started = Instant::now();
        client
            .get_item()
            .table_name("marketplace-dev-providers-table")
            .key(
                "providerId",
                aws_sdk_dynamodb::types::AttributeValue::S("none".into()),
            )
            .send()
            .await
            .expect("a GetItem through the proxy");
        times.push(started.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

/// Times DynamoDB Local's own work for 100 puts: in one TransactWriteItems, in four of 25 at
/// once, and in BatchWriteItem (25 a request, sent at once), each the median of 5 rounds.
async fn local_write_cost(app: &DynamoDbTables, run: u128) {
    const STATE: &str = "ddb-stream-worker-aggregate-state";
    const PROVIDERS: &str = "marketplace-dev-providers-table";
    const AUDIT: &str = "aws-cost-platform-enhanced";
    const IDEMPOTENCY: &str = "marketplace-dev-idempotency-table";
    let item = |round: usize, way: usize, i: usize| {
        handlers::item::string_key(&[
            ("pk", &format!("COST#{run}#{round}#{way}#{i}")),
            ("sk", "PROBE"),
        ])
    };
    let put = |round, way, i| TransactItem::Put {
        table: STATE.into(),
        item: item(round, way, i),
        condition: None,
    };
    // What a per-record implementation of the two reactions writes for a batch at 50 providers:
    // each provider's figures (the seed's providers table, three indexes) and 50 audit items;
    // one that counts each review once (`exact`) also writes at least one conditional put per
    // review (an idempotency record: Powertools writes two, the lock and its completion).
    let provider =
        |i: usize| handlers::item::string_key(&[("providerId", &format!("COST#{run}#{i}"))]);
    let figures = |round: usize| {
        let n = |v: usize| AttributeValue::N(v.to_string());
        handlers::ports::Update::default()
            .set("serviceType", AttributeValue::S("cleaning".into()))
            .set("serviceArea", AttributeValue::S("north".into()))
            .set("isAvailable", AttributeValue::S("true".into()))
            .set("responseTime", n(3))
            .set("ratingSum", n(4 * round + 4))
            .set("reviewCount", n(round + 1))
            .set("rating", AttributeValue::N(format!("4.{round}")))
    };
    let audit = |round: usize, i: usize| {
        let mut item = handlers::item::string_key(&[
            ("PK", &format!("AUDIT#COST#{run}#{round}#{i}")),
            ("SK", "EVENT#2026-11-25T00:00:00Z"),
            ("GSI1PK", "AUDIT#PROFILE"),
            ("GSI1SK", &format!("{run}#{round}#{i}")),
        ]);
        item.insert("detail".into(), AttributeValue::S("d".repeat(300)));
        item
    };
    let per_record = |round: usize, exact: bool| async move {
        let updates = futures::stream::iter(0..50)
            .map(|i| {
                let (key, update) = (provider(i), figures(round));
                async move { app.update(PROVIDERS, &key, &update, None).await }
            })
            .buffer_unordered(DEFAULT_MAX_CONCURRENCY)
            .collect::<Vec<_>>();
        let once = Condition::NotExists("idempotencyKey".into());
        let idempotency_records = futures::stream::iter(if exact { 0..50 } else { 0..0 })
            .map(|i| {
                let key = format!("provider-rating#COST#{run}#{round}#{i}");
                let record = handlers::item::string_key(&[("idempotencyKey", &key)]);
                let once = &once;
                async move { app.put(IDEMPOTENCY, record, Some(once)).await }
            })
            .buffer_unordered(DEFAULT_MAX_CONCURRENCY)
            .collect::<Vec<_>>();
        let audit_items: Vec<_> = (0..50)
            .map(|i| WriteRequest::Put(audit(round, i)))
            .collect();
        let audits = app.batch_write(AUDIT, &audit_items);
        let (updated, recorded, audited) = futures::join!(updates, idempotency_records, audits);
        for done in updated {
            done.expect("a provider's figures");
        }
        for done in recorded {
            done.expect("an idempotency record");
        }
        audited.expect("50 audit items");
    };
    per_record(0, false).await; // the providers exist from here on
    let mut times: [Vec<Duration>; 5] = Default::default();
    for round in 0..5 {
        let started = Instant::now();
        per_record(2 * round + 1, false).await;
        times[3].push(started.elapsed());
        let started = Instant::now();
        per_record(2 * round + 2, true).await;
        times[4].push(started.elapsed());
        let started = Instant::now();
        app.transact_write((0..100).map(|i| put(round, 0, i)).collect())
            .await
            .expect("a transaction of 100");
        times[0].push(started.elapsed());
        let started = Instant::now();
        let quarters = (0..4)
            .map(|q| app.transact_write((0..25).map(|i| put(round, 1, q * 25 + i)).collect()));
        for done in futures::future::join_all(quarters).await {
            done.expect("a transaction of 25");
        }
        times[1].push(started.elapsed());
        let started = Instant::now();
        let writes: Vec<_> = (0..100)
            .map(|i| WriteRequest::Put(item(round, 2, i)))
            .collect();
        app.batch_write(STATE, &writes)
            .await
            .expect("a batch write of 100");
        times[2].push(started.elapsed());
    }
    let median = |t: &mut Vec<Duration>| {
        t.sort();
        t[t.len() / 2].as_secs_f64() * 1000.0
    };
    println!(
        "DynamoDB Local's own work for 100 puts (no proxy, median of 5): one TransactWriteItems \
         {:.0} ms; four of 25 at once {:.0} ms; BatchWriteItem, 4 requests at once {:.0} ms",
        median(&mut times[0]),
        median(&mut times[1]),
        median(&mut times[2]),
    );
    let floor = median(&mut times[3]);
    println!(
        "the writes a per-record implementation makes for a batch at 50 providers (50 providers' figures, \
         {DEFAULT_MAX_CONCURRENCY} at once, and 50 audit items, no proxy, median of 5): {floor:.0} \
         ms, at most {:.0} records/s before any read, state or round trip",
        BATCH as f64 * 1000.0 / floor
    );
    let exact = median(&mut times[4]);
    println!(
        "the same and one conditional put per review (the least that counts each review once): \
         {exact:.0} ms, at most {:.0} records/s",
        BATCH as f64 * 1000.0 / exact
    );
}

/// The workload: `RECORDS` records, half audited profile changes, half reviews over
/// `providers`, with ids of their own (`tag`) so that runs on one DynamoDB Local do not mix.
fn profiles_and_reviews(tag: String, providers: usize) -> Vec<serde_json::Value> {
    Mix {
        tag,
        kinds: vec![Kind::Profile, Kind::Review],
        providers,
        estimations: 20,
        conversations: 30,
    }
    .records(RECORDS, 0)
}

#[tokio::main]
async fn main() {
    let (endpoint, upstream) = local::dynamodb_local("latency");
    let delay_ms: u64 = std::env::var("LATENCY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(5);
    let direct = local::sdk(&endpoint).await;
    let client = aws_sdk_dynamodb::Client::new(&direct);
    // On each write to a table with a stream, DynamoDB Local walks every stream record it stored
    // before that table's first one (BENCHMARKS.md, "DynamoDB Local's stream history"): on a
    // store that was used before, the audit writes cost what its history costs.
    let earlier_tables = client
        .list_tables()
        .send()
        .await
        .map(|listed| listed.table_names().len())
        .unwrap_or(0);
    if earlier_tables > 0 {
        println!(
            "note: this DynamoDB Local already held {earlier_tables} tables, so perhaps stream \
             records, which slow every write to a table with a stream (BENCHMARKS.md); for \
             figures comparable with BENCHMARKS.md start it afresh: scripts/services stop && \
             scripts/services start"
        );
    }
    tables::create_tables(&client, &[])
        .await
        .expect("create the seed tables");
    let app = DynamoDbTables::new(client, Catalog::with_seed_definitions());
    let proxy = delaying_proxy(upstream, Duration::from_millis(delay_ms)).await;
    let slow = local::sdk(&proxy).await;
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() % 0xffffff)
        .unwrap_or(0);
    // DynamoDB Local compiles its hot paths during its first minute of work (its JIT took
    // about 11 s of CPU in a fresh one's first run, on a 2-core machine): a run before the
    // measured ones, so that the first setting is not measured against a cold server.
    let warm_up = profiles_and_reviews(format!("warm{run_id:x}"), 50);
    run(&slow, &app, &warm_up, DEFAULT_MAX_CONCURRENCY).await;
    let rtt = round_trip(&slow).await;
    println!(
        "DynamoDB Local + {delay_ms} ms per request (one GetItem: {:.1} ms median); {RECORDS} \
         records, 50/50 profile changes (audited) and reviews, batches of {BATCH}:",
        rtt.as_secs_f64() * 1000.0
    );
    // `LATENCY_CONCURRENCY=1,8,32` compares other settings (how the default was chosen).
    let settings: Vec<usize> = std::env::var("LATENCY_CONCURRENCY")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![1, DEFAULT_MAX_CONCURRENCY]);
    let providers_list: Vec<usize> = std::env::var("LATENCY_PROVIDERS")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![5, 25, 50]);
    for &providers in &providers_list {
        for &concurrency in &settings {
            // Records of their own for every run: the idempotency table outlives a run.
            let records = profiles_and_reviews(
                format!("lat{run_id:x}p{providers}c{concurrency}"),
                providers,
            );
            let measured = run(&slow, &app, &records, concurrency).await;
            let total: u64 = measured.requests.values().sum();
            let batches = RECORDS.div_ceil(BATCH) as f64;
            let bound =
                RECORDS as f64 / (batches * measured.dependent_per_batch * rtt.as_secs_f64());
            let checked = local::check_ratings(&app, &records).await;
            println!(
                "  {providers:>2} providers, concurrency {concurrency:>2}: {:>6.0} records/s, \
                 {:.3} requests per record; bound from {:.1} dependent round trips per batch: \
                 {:.0} records/s; {checked} providers exact",
                RECORDS as f64 / measured.seconds,
                total as f64 / RECORDS as f64,
                measured.dependent_per_batch,
                bound,
            );
            println!(
                "      waiting (summed over calls): {}",
                measured.timed.summary()
            );
        }
    }
    println!(
        "embedded tables, every call held {:.1} ms (the round trip above, without DynamoDB \
         Local's throughput limit):",
        rtt.as_secs_f64() * 1000.0
    );
    for &providers in &providers_list {
        for &concurrency in &settings {
            let records = profiles_and_reviews(
                format!("emb{run_id:x}p{providers}c{concurrency}"),
                providers,
            );
            let (per_second, per_record) = embedded_run(&records, rtt, concurrency).await;
            println!(
                "  {providers:>2} providers, concurrency {concurrency:>2}: {per_second:>6.0} \
                 records/s, {per_record:.3} requests per record"
            );
        }
    }
    local_write_cost(&app, run_id).await;
}

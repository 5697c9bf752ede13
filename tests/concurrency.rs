//! Two workers at once, as two Lambda invocations on two shards, on DynamoDB Local: the
//! records of one provider's reviews, one thread's messages and one estimation's line items
//! are split between them, and they process while the tables are still being written; then,
//! for each aggregate, the race that loses an update is forced (one worker's write held until
//! the other has read, written and finished). Every aggregate is recomputed and written under a
//! condition on the version read, so the late writer must re-read; no update may be lost, and
//! each forced race is checked to have happened (the late write met a newer version). With the
//! version conditions taken off (a test-only wrapper around the tables port), the same forced
//! races must end wrong: that is what the conditions are for.
//! Needs `scripts/services start`.

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue as V;
use ddb_stream_worker::batch::{BatchOptions, Worker};
use ddb_stream_worker::wiring;
use ddb_stream_worker::wiring::config::Config;
use handlers::ports::Tables as TablesPort;
use handlers::ports::{Condition, Query, TransactItem, Update, WriteRequest};
use handlers::{Item, PortError};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Value};
use support::faulty_http::{FaultyHttp, Gate, Plan};
use support::{decode, record_in, services};
use tokio::sync::mpsc;

/// Changes per aggregate; each worker gets half of them.
const CHANGES: u64 = 24;

struct Tables {
    reviews: String,
    providers: String,
    conversations: String,
    threads: String,
    cost: String,
    /// The records' eventIDs repeat from run to run: their idempotency records must not.
    idempotency: String,
    /// Nor the reviews' booking slots.
    aggregate_state: String,
}

fn s(v: &str) -> V {
    V::S(v.into())
}

fn n(v: &str) -> V {
    V::N(v.into())
}

/// A worker on its own clients, as another Lambda instance would have; `http` may slow it;
/// `unconditional` takes the version conditions off its aggregate writes.
async fn worker(tables: &Tables, http: Option<&FaultyHttp>, unconditional: bool) -> Worker {
    let config = Config::from_lookup(|name| {
        let table = match name {
            "AUDITED_TABLES" => return Some(String::new()),
            "MARKETPLACE_REVIEWS_TABLE" => &tables.reviews,
            "MARKETPLACE_PROVIDERS_TABLE" => &tables.providers,
            "ACS_CONVERSATIONS_TABLE" => &tables.conversations,
            "ACS_THREADS_TABLE" => &tables.threads,
            "COST_TABLE" => &tables.cost,
            "IDEMPOTENCY_TABLE" => &tables.idempotency,
            "AGGREGATE_STATE_TABLE" => &tables.aggregate_state,
            _ => return None,
        };
        Some(table.clone())
    })
    .unwrap();
    let mut adapters = services::local_adapters(
        &[
            (&tables.reviews, "marketplace-dev-reviews-table"),
            (&tables.providers, "marketplace-dev-providers-table"),
            (&tables.conversations, "acsd2p-dev-Conversations"),
            (&tables.threads, "acsd2p-dev-Threads"),
            (&tables.cost, "aws-cost-platform-enhanced"),
            (&tables.aggregate_state, "ddb-stream-worker-aggregate-state"),
        ],
        http.map(FaultyHttp::client),
    )
    .await;
    if unconditional {
        adapters.tables = Arc::new(WithoutConditions {
            inner: adapters.tables.clone(),
            tables: vec![
                tables.providers.clone(),
                tables.aggregate_state.clone(),
                tables.threads.clone(),
                tables.cost.clone(),
            ],
        });
    }
    wiring::worker(&config, adapters)
}

/// The tables port with the conditions taken off updates and transactions on `tables` (the
/// aggregates'): what the worker would be without its version checks. Test-only.
struct WithoutConditions {
    inner: Arc<dyn TablesPort>,
    tables: Vec<String>,
}

impl WithoutConditions {
    fn strip<'a>(&self, table: &str, condition: Option<&'a Condition>) -> Option<&'a Condition> {
        condition.filter(|_| !self.tables.iter().any(|t| t == table))
    }
}

#[async_trait]
impl TablesPort for WithoutConditions {
    async fn get(&self, table: &str, key: &Item) -> Result<Option<Item>, PortError> {
        self.inner.get(table, key).await
    }
    async fn put(
        &self,
        table: &str,
        item: Item,
        condition: Option<&Condition>,
    ) -> Result<(), PortError> {
        self.inner.put(table, item, condition).await
    }
    async fn update(
        &self,
        table: &str,
        key: &Item,
        update: &Update,
        condition: Option<&Condition>,
    ) -> Result<Item, PortError> {
        let condition = self.strip(table, condition);
        self.inner.update(table, key, update, condition).await
    }
    async fn delete(
        &self,
        table: &str,
        key: &Item,
        condition: Option<&Condition>,
    ) -> Result<Option<Item>, PortError> {
        self.inner.delete(table, key, condition).await
    }
    async fn batch_get(&self, table: &str, keys: Vec<Item>) -> Result<Vec<Item>, PortError> {
        self.inner.batch_get(table, keys).await
    }
    async fn query(&self, query: &Query) -> Result<Vec<Item>, PortError> {
        self.inner.query(query).await
    }
    async fn batch_write(&self, table: &str, writes: &[WriteRequest]) -> Result<(), PortError> {
        self.inner.batch_write(table, writes).await
    }
    async fn transact_write(&self, mut items: Vec<TransactItem>) -> Result<(), PortError> {
        for item in &mut items {
            let (TransactItem::Put {
                table, condition, ..
            }
            | TransactItem::Update {
                table, condition, ..
            }
            | TransactItem::Delete {
                table, condition, ..
            }) = item
            else {
                continue;
            };
            if self.tables.contains(table) {
                *condition = None;
            }
        }
        self.inner.transact_write(items).await
    }
}

/// The METADATA item and line item `i` of estimation `id`.
fn estimation(id: &str) -> Value {
    json!({"PK": {"S": format!("ESTIMATION#{id}")}, "SK": {"S": "METADATA"}, "Version": {"N": "1"}})
}

fn line_item(id: &str, i: u64) -> Value {
    json!({
        "PK": {"S": format!("ESTIMATION#{id}")}, "SK": {"S": format!("SERVER#{i:03}")},
        "EstimatedMonthlyCost": {"N": format!("{}.25", 100 + i)},
    })
}

/// One change to one of the three aggregates.
#[derive(Debug, Clone, Copy)]
enum Aggregate {
    /// A review of provider p1.
    Provider,
    /// A message in thread conv1.
    Thread,
    /// A line item of estimation e1.
    Estimation,
}

/// Write change `i` to `aggregate`'s table; return its stream record.
async fn write(
    db: &aws_sdk_dynamodb::Client,
    tables: &Tables,
    aggregate: Aggregate,
    i: u64,
) -> Value {
    let (table, item, keys): (&str, Value, &[&str]) = match aggregate {
        Aggregate::Provider => (
            &tables.reviews,
            json!({
                "reviewId": {"S": format!("r{i}")}, "bookingId": {"S": format!("b{i}")},
                "providerId": {"S": "p1"}, "rating": {"N": (1 + i % 5).to_string()},
                "createdAt": {"S": format!("2025-01-01T00:00:{i:02}Z")},
            }),
            &["reviewId"],
        ),
        Aggregate::Thread => (
            &tables.conversations,
            json!({
                "conversation_id": {"S": "conv1"}, "response_id": {"S": format!("m{i:03}")},
                "sender_email": {"S": format!("sender{}@example.com", i % 3)},
                "recipient_email": {"S": "owner@example.com"},
                "timestamp": {"S": format!("2025-11-17T09:00:{i:02}Z")},
            }),
            &["conversation_id", "response_id"],
        ),
        Aggregate::Estimation => (&tables.cost, line_item("e1", i), &["PK", "SK"]),
    };
    services::put(db, table, item.clone()).await;
    let keys = keys
        .iter()
        .map(|k| (k.to_string(), item[k].clone()))
        .collect();
    record_in(
        table,
        i + 1,
        "INSERT",
        Value::Object(keys),
        Some(item),
        None,
    )
}

const ALL: [Aggregate; 3] = [
    Aggregate::Provider,
    Aggregate::Thread,
    Aggregate::Estimation,
];

/// What one worker did.
#[derive(Default)]
struct Ran {
    /// Deliveries that failed (a record whose aggregate kept changing under it) and were
    /// delivered again from that record.
    failed_deliveries: usize,
    /// Conditional writes of aggregates tried (UpdateItem and TransactWriteItems).
    writes_tried: u64,
}

impl std::ops::Add for Ran {
    type Output = Ran;
    fn add(self, other: Ran) -> Ran {
        Ran {
            failed_deliveries: self.failed_deliveries + other.failed_deliveries,
            writes_tried: self.writes_tried + other.writes_tried,
        }
    }
}

/// One worker: each batch as Lambda delivers it, again from a failed record until done.
async fn run(worker: &Worker, mut batches: mpsc::Receiver<Vec<Value>>) -> Ran {
    let mut ran = Ran::default();
    while let Some(batch) = batches.recv().await {
        let mut records = decode(&batch);
        let mut deliveries = 0;
        loop {
            let outcome = worker
                .process_batch(&records, BatchOptions::default(), &mut |_| {})
                .await;
            ran.writes_tried += ["UpdateItem", "TransactWriteItems"]
                .iter()
                .filter_map(|op| outcome.requests.get(*op))
                .sum::<u64>();
            let Some(failure) = outcome.failure else {
                break;
            };
            assert!(failure.retryable, "{failure:?}");
            deliveries += 1;
            assert!(
                deliveries < 20,
                "a record was given up after 20 deliveries: {failure:?}"
            );
            ran.failed_deliveries += 1;
            records.drain(..failure.index);
        }
    }
    ran
}

/// The race that loses updates without conditional writes, forced for each aggregate: A reads
/// change `first`, B writes and processes change `first` + 1 while A's write waits, then A's
/// write (of a state without B's change) arrives. Returns what each race's A and B did, and
/// the HTTP status A's held write got (400: its condition failed).
async fn force_races(
    db: &aws_sdk_dynamodb::Client,
    tables: &Tables,
    (a, b): (&Worker, &Worker),
    slow: &FaultyHttp,
    first: u64,
) -> Vec<(Aggregate, Ran, Ran, Vec<u16>)> {
    let mut races = Vec::new();
    for aggregate in ALL {
        let gate = Gate::new();
        let operation: &'static [&'static str] = match aggregate {
            Aggregate::Estimation | Aggregate::Provider | Aggregate::Thread => {
                &["TransactWriteItems"]
            }
        };
        slow.set_plan(Plan::Hold {
            operations: operation,
            gate: gate.clone(),
        });
        let record = write(db, tables, aggregate, first).await;
        let (to_a, from_a) = mpsc::channel(1);
        let (to_b, from_b) = mpsc::channel(1);
        to_a.send(vec![record]).await.unwrap();
        drop(to_a);
        let meanwhile = async {
            tokio::time::timeout(std::time::Duration::from_secs(30), gate.arrived())
                .await
                .unwrap_or_else(|_| {
                    panic!("{aggregate:?}: worker A's {operation:?} never reached the gate")
                });
            to_b.send(vec![write(db, tables, aggregate, first + 1).await])
                .await
                .unwrap();
            drop(to_b);
            let ran = run(b, from_b).await;
            gate.open();
            ran
        };
        let (ran_a, ran_b) = tokio::join!(run(a, from_a), meanwhile);
        races.push((aggregate, ran_a, ran_b, gate.answers()));
    }
    slow.set_plan(Plan::Nothing);
    races
}

async fn fresh_tables() -> Tables {
    Tables {
        reviews: services::fresh_table("marketplace-dev-reviews-table").await,
        providers: services::fresh_table("marketplace-dev-providers-table").await,
        conversations: services::fresh_table("acsd2p-dev-Conversations").await,
        threads: services::fresh_table("acsd2p-dev-Threads").await,
        cost: services::fresh_table("aws-cost-platform-enhanced").await,
        idempotency: services::fresh_table("marketplace-dev-idempotency-table").await,
        aggregate_state: services::fresh_table("ddb-stream-worker-aggregate-state").await,
    }
}

/// Fresh tables with estimation e1, and two workers: A's aggregate writes can be held at a
/// gate, B's never are; `unconditional` takes the version conditions off both.
struct Race {
    tables: Tables,
    db: aws_sdk_dynamodb::Client,
    slow: FaultyHttp,
    a: Worker,
    b: Worker,
}

impl Race {
    async fn set_up(unconditional: bool) -> Race {
        services::require();
        let tables = fresh_tables().await;
        let db = services::dynamodb().await;
        services::put(&db, &tables.cost, estimation("e1")).await;
        let slow = FaultyHttp::new(Plan::Nothing);
        let a = worker(&tables, Some(&slow), unconditional).await;
        let b = worker(&tables, None, unconditional).await;
        Race {
            tables,
            db,
            slow,
            a,
            b,
        }
    }
}

#[tokio::test]
async fn two_workers_on_the_same_provider_thread_and_estimation_lose_no_update() {
    let Race {
        tables,
        db,
        slow,
        a,
        b,
    } = Race::set_up(false).await;

    // Free-running: the writer runs ahead of the workers, change i goes to worker i % 2 once
    // written, and the three run interleaved on this task.
    let (to_a, from_a) = mpsc::channel(4);
    let (to_b, from_b) = mpsc::channel(4);
    let writer = async {
        for i in 0..CHANGES {
            let mut records = Vec::new();
            for aggregate in ALL {
                records.push(write(&db, &tables, aggregate, i).await);
            }
            let to = if i % 2 == 0 { &to_a } else { &to_b };
            to.send(records).await.unwrap();
        }
        drop((to_a, to_b));
    };
    let ((), ran_a, ran_b) = tokio::join!(writer, run(&a, from_a), run(&b, from_b));
    let mut ran = ran_a + ran_b;

    for (aggregate, ran_a, ran_b, answers) in
        force_races(&db, &tables, (&a, &b), &slow, CHANGES).await
    {
        // A's held write met the version B had moved on: the race happened, and was caught.
        assert_eq!(
            answers.first(),
            Some(&400),
            "{aggregate:?}: A's held write did not fail its condition: {answers:?}"
        );
        ran = ran + ran_a + ran_b;
    }
    const TOTAL: u64 = CHANGES + 2;

    // The provider: every review counted once.
    let provider = services::item(&tables.providers, &[("providerId", "p1")])
        .await
        .unwrap();
    let sum: u64 = (0..TOTAL).map(|i| 1 + i % 5).sum();
    let average = (Decimal::from(sum) / Decimal::from(TOTAL))
        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    assert_eq!(
        (
            &provider["ratingSum"],
            &provider["reviewCount"],
            &provider["rating"]
        ),
        (
            &n(&sum.to_string()),
            &n(&TOTAL.to_string()),
            &n(&average.normalize().to_string())
        )
    );

    // The thread: every message counted, the latest time.
    let thread = services::item(&tables.threads, &[("conversation_id", "conv1")])
        .await
        .unwrap();
    assert_eq!(thread["message_count"], n(&TOTAL.to_string()));
    assert_eq!(
        thread["last_message_at"],
        s(&format!("2025-11-17T09:00:{:02}Z", TOTAL - 1))
    );

    // The estimation: its summary equals that of a copy with the same line items, written
    // first and then delivered to one worker in one batch.
    services::put(&db, &tables.cost, estimation("e2")).await;
    let mut copy = Vec::new();
    for i in 0..TOTAL {
        let line = line_item("e2", i);
        services::put(&db, &tables.cost, line.clone()).await;
        let keys = json!({"PK": line["PK"], "SK": line["SK"]});
        copy.push(record_in(
            &tables.cost,
            1000 + i,
            "INSERT",
            keys,
            Some(line),
            None,
        ));
    }
    let outcome = worker(&tables, None, false)
        .await
        .process_batch(&decode(&copy), BatchOptions::default(), &mut |_| {})
        .await;
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    let metadata = |pk: &'static str| async {
        services::item(&tables.cost, &[("PK", pk), ("SK", "METADATA")])
            .await
            .unwrap()
    };
    let metadata_e1 = metadata("ESTIMATION#e1").await;
    let mut concurrent = metadata_e1["EstimationSummary"].clone();
    let mut sequential = metadata("ESTIMATION#e2").await["EstimationSummary"].clone();
    for summary in [&mut concurrent, &mut sequential] {
        if let V::M(fields) = summary {
            fields.remove("LastCalculatedAt");
        }
    }
    assert_eq!(concurrent, sequential);

    // Each successful aggregate write raised its version by one; the writes tried beyond
    // those met a version another worker had already moved on: the conflicts.
    let version = |item: &std::collections::HashMap<String, V>, name: &str| -> u64 {
        item[name].as_n().unwrap().parse().unwrap()
    };
    let written = version(&provider, "aggregateVersion")
        + version(&thread, "stats_version")
        + version(&metadata_e1, "SummaryVersion");
    let conflicts = ran.writes_tried - written;
    assert!(
        conflicts >= 3,
        "one conflict per forced race at least: {conflicts}"
    );

    println!(
        "two workers, {TOTAL} changes each to one provider, thread and estimation (3 forced \
         races): exact; {written} aggregate writes, {} conditional conflicts retried, {} \
         deliveries failed and were delivered again",
        conflicts, ran.failed_deliveries
    );
}

#[tokio::test]
async fn without_the_version_conditions_the_forced_races_lose_updates() {
    let Race {
        tables,
        db,
        slow,
        a,
        b,
    } = Race::set_up(true).await;
    // Change 0 first, then the races on changes 1 and 2: three changes per aggregate.
    let (to_b, from_b) = mpsc::channel(1);
    let records = first_changes(&db, &tables).await;
    to_b.send(records).await.unwrap();
    drop(to_b);
    run(&b, from_b).await;
    for (aggregate, _, _, answers) in force_races(&db, &tables, (&a, &b), &slow, 1).await {
        assert_eq!(answers, [200], "{aggregate:?}: A's late write went through");
    }

    // Each aggregate counts two of its three changes: A's late write put back a state without
    // B's change.
    let provider = services::item(&tables.providers, &[("providerId", "p1")])
        .await
        .unwrap();
    assert_eq!(
        provider["reviewCount"],
        n("2"),
        "the provider lost an update"
    );
    let thread = services::item(&tables.threads, &[("conversation_id", "conv1")])
        .await
        .unwrap();
    assert_eq!(thread["message_count"], n("2"), "the thread lost an update");
    let metadata = services::item(&tables.cost, &[("PK", "ESTIMATION#e1"), ("SK", "METADATA")])
        .await
        .unwrap();
    let V::M(summary) = &metadata["EstimationSummary"] else {
        panic!("no summary: {metadata:?}");
    };
    assert_eq!(
        summary["LineItemCount"],
        n("2"),
        "the estimation lost an update"
    );
}

/// Change 0 of every aggregate, written; their records.
async fn first_changes(db: &aws_sdk_dynamodb::Client, tables: &Tables) -> Vec<Value> {
    let mut records = Vec::new();
    for aggregate in ALL {
        records.push(write(db, tables, aggregate, 0).await);
    }
    records
}

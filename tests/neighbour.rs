//! The worker as a neighbour, on DynamoDB Local: a simulated application runs the seeds' own
//! write patterns while the worker follows the tables' real streams (`stream`, as Lambda's
//! event source mapping would), for a bounded run. Then:
//!
//! - the application's conditional writes that failed because of the worker: must be none.
//!   Each estimation, provider and thread has one application writer, so any failed
//!   condition is someone else's write, and the worker is the only other writer;
//! - every aggregate the worker keeps is exact for the final table contents, and the
//!   application's own attributes (`Version`, `UpdatedAt`, `updated_at`) are as the application
//!   left them.
//!
//! The application's patterns: versioned METADATA edits (`Version` as the lock, `UpdatedAt` set), one of them changing the business rules; line-item
//! puts and deletes; reviews written and removed; provider profile updates; messages; thread
//! updates locked on the thread's own `updated_at`. It prints its figures.

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue as V;
use aws_sdk_dynamodb::Client;
use handlers::cost::model::{BusinessRules, LineItem};
use handlers::cost::pricing::{price, SavingsRates};
use handlers::item::from_item;
use rust_decimal::{Decimal, RoundingStrategy};
use support::services;

const ESTIMATIONS: usize = 3;
const PROVIDERS: usize = 3;
const THREADS: usize = 2;
/// Changes each application writer makes.
const ROUNDS: usize = 20;

fn s(v: impl Into<String>) -> V {
    V::S(v.into())
}

fn n(v: impl ToString) -> V {
    V::N(v.to_string())
}

/// What the application saw.
#[derive(Default)]
struct Tally {
    writes: AtomicUsize,
    /// Conditional writes that failed: with one application writer per item, each one is a
    /// write of the worker's that the application's condition read.
    conflicts: AtomicUsize,
}

impl Tally {
    /// Count a conditional write; Ok(false) when its condition failed.
    fn count<T, E>(
        &self,
        result: Result<T, aws_sdk_dynamodb::error::SdkError<E>>,
        conditional: impl Fn(&E) -> bool,
    ) -> bool
    where
        E: std::fmt::Debug,
    {
        self.writes.fetch_add(1, Ordering::SeqCst);
        match result {
            Ok(_) => true,
            Err(e) if e.as_service_error().is_some_and(&conditional) => {
                self.conflicts.fetch_add(1, Ordering::SeqCst);
                false
            }
            Err(e) => panic!("application write failed: {e:?}"),
        }
    }
}

struct Tables {
    cost: String,
    reviews: String,
    providers: String,
    conversations: String,
    threads: String,
    aggregate_state: String,
}

fn is_condition_failure_update(
    e: &aws_sdk_dynamodb::operation::update_item::UpdateItemError,
) -> bool {
    e.is_conditional_check_failed_exception()
}

/// §4.2: read METADATA's Version, then write on condition that it is unchanged.
async fn versioned_edit(
    db: &Client,
    tables: &Tables,
    tally: &Tally,
    e: usize,
    round: usize,
) -> bool {
    let pk = format!("ESTIMATION#n{e}");
    let read = services::item(&tables.cost, &[("PK", &pk), ("SK", "METADATA")])
        .await
        .unwrap();
    let version: i64 = read["Version"].as_n().unwrap().parse().unwrap();
    let mut update = db
        .update_item()
        .table_name(&tables.cost)
        .key("PK", s(&pk))
        .key("SK", s("METADATA"))
        .update_expression("SET #data = :data, #version = :new, #updated = :at")
        .condition_expression("#version = :current")
        .expression_attribute_names("#data", "Description")
        .expression_attribute_names("#version", "Version")
        .expression_attribute_names("#updated", "UpdatedAt")
        .expression_attribute_values(":data", s(format!("edit {round}")))
        .expression_attribute_values(":new", n(version + 1))
        .expression_attribute_values(":current", n(version))
        .expression_attribute_values(":at", s(format!("2026-01-01T00:00:{round:02}Z")));
    if round == ROUNDS / 2 {
        // Half-way, the application turns the support plan off for this estimation.
        update = update
            .update_expression(
                "SET #data = :data, #version = :new, #updated = :at, BusinessRules = :rules",
            )
            .expression_attribute_values(
                ":rules",
                V::M(
                    [
                        ("BufferPercentage".to_string(), n(10)),
                        ("VolumeDiscounts".to_string(), V::Bool(true)),
                        ("SupportPlanIncluded".to_string(), V::Bool(false)),
                    ]
                    .into(),
                ),
            );
    }
    tally.count(update.send().await, is_condition_failure_update)
}

async fn estimation_writer(db: Client, tables: Arc<Tables>, tally: Arc<Tally>, e: usize) -> i64 {
    let pk = format!("ESTIMATION#n{e}");
    services::put(
        &db,
        &tables.cost,
        serde_json::json!({
            "PK": {"S": pk}, "SK": {"S": "METADATA"}, "EntityType": {"S": "Estimation"},
            "EstimationId": {"S": format!("n{e}")}, "UserId": {"S": format!("user{e}")},
            "Version": {"N": "1"}, "UpdatedAt": {"S": "2026-01-01T00:00:00Z"},
        }),
    )
    .await;
    let mut version = 1;
    for round in 0..ROUNDS {
        match fastrand::usize(..3) {
            0 | 1 => {
                let sk = format!("SERVER#s{}", fastrand::usize(..4));
                let cost = Decimal::new(fastrand::i64(1_000..500_000), 2);
                db.put_item()
                    .table_name(&tables.cost)
                    .item("PK", s(&pk))
                    .item("SK", s(sk))
                    .item("EstimatedMonthlyCost", V::N(cost.to_string()))
                    .item("UpdatedBy", s(format!("user{e}")))
                    .send()
                    .await
                    .unwrap();
                tally.writes.fetch_add(1, Ordering::SeqCst);
            }
            _ => {
                db.delete_item()
                    .table_name(&tables.cost)
                    .key("PK", s(&pk))
                    .key("SK", s(format!("SERVER#s{}", fastrand::usize(..4))))
                    .send()
                    .await
                    .unwrap();
                tally.writes.fetch_add(1, Ordering::SeqCst);
            }
        }
        if versioned_edit(&db, &tables, &tally, e, round).await {
            version += 1;
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(20..120))).await;
    }
    version
}

async fn marketplace_writer(db: Client, tables: Arc<Tables>, tally: Arc<Tally>, p: usize) {
    let provider = format!("prov{p}");
    services::put(
        &db,
        &tables.providers,
        serde_json::json!({"providerId": {"S": provider}, "serviceType": {"S": "cleaning"},
                           "isAvailable": {"S": "true"}, "responseTime": {"N": "10"}}),
    )
    .await;
    for round in 0..ROUNDS {
        let review = format!("rev-{p}-{}", fastrand::usize(..5));
        if fastrand::usize(..4) == 0 {
            db.delete_item()
                .table_name(&tables.reviews)
                .key("reviewId", s(&review))
                .send()
                .await
                .unwrap();
        } else {
            db.put_item()
                .table_name(&tables.reviews)
                .item("reviewId", s(&review))
                .item("providerId", s(&provider))
                .item("bookingId", s(format!("booking-{review}")))
                .item("rating", n(fastrand::u8(1..=5)))
                .item("createdAt", s(format!("2026-01-01T00:{round:02}:00Z")))
                .send()
                .await
                .unwrap();
        }
        tally.writes.fetch_add(1, Ordering::SeqCst);
        // A profile update, as the marketplace makes it.
        let updated = db
            .update_item()
            .table_name(&tables.providers)
            .key("providerId", s(&provider))
            .update_expression("SET responseTime = :t, isAvailable = :a")
            .condition_expression("attribute_exists(providerId)")
            .expression_attribute_values(":t", n(10 + round))
            .expression_attribute_values(":a", s(if round % 2 == 0 { "true" } else { "false" }))
            .send()
            .await;
        tally.count(updated, is_condition_failure_update);
        tokio::time::sleep(Duration::from_millis(fastrand::u64(20..120))).await;
    }
}

/// Messages, and thread updates locked on the thread's own `updated_at`.
async fn acs_writer(db: Client, tables: Arc<Tables>, tally: Arc<Tally>, t: usize) -> String {
    let conversation = format!("conv{t}");
    let mut updated_at = "2026-01-01T00:00:00Z".to_string();
    services::put(
        &db,
        &tables.threads,
        serde_json::json!({"conversation_id": {"S": conversation}, "status": {"S": "active"},
                           "updated_at": {"S": updated_at}}),
    )
    .await;
    for round in 0..ROUNDS {
        db.put_item()
            .table_name(&tables.conversations)
            .item("conversation_id", s(&conversation))
            .item("response_id", s(format!("msg{round:02}")))
            .item(
                "sender_email",
                s(format!("sender{}@example.com", round % 3)),
            )
            .item("timestamp", s(format!("2026-01-01T01:{round:02}:00Z")))
            .send()
            .await
            .unwrap();
        tally.writes.fetch_add(1, Ordering::SeqCst);
        let next = format!("2026-01-01T02:{round:02}:00Z");
        let written = db
            .update_item()
            .table_name(&tables.threads)
            .key("conversation_id", s(&conversation))
            .update_expression("SET #status = :s, updated_at = :next")
            .condition_expression("updated_at = :read")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":s", s(if round % 2 == 0 { "active" } else { "open" }))
            .expression_attribute_values(":next", s(&next))
            .expression_attribute_values(":read", s(&updated_at))
            .send()
            .await;
        if tally.count(written, is_condition_failure_update) {
            updated_at = next;
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(20..120))).await;
    }
    updated_at
}

fn worker(tables: &Tables, dir: &std::path::Path) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("ddb-stream-worker"))
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL_S3", services::moto_endpoint())
        .env("AWS_ENDPOINT_URL_SES", services::moto_endpoint())
        .env("COST_TABLE", &tables.cost)
        .env("AUDITED_TABLES", &tables.cost)
        .env("AUDIT_TABLE", &tables.cost)
        .env("MARKETPLACE_REVIEWS_TABLE", &tables.reviews)
        .env("MARKETPLACE_PROVIDERS_TABLE", &tables.providers)
        .env("AGGREGATE_STATE_TABLE", &tables.aggregate_state)
        .env("ACS_CONVERSATIONS_TABLE", &tables.conversations)
        .env("ACS_THREADS_TABLE", &tables.threads)
        .args(["stream", "--endpoint-url", &services::dynamodb_endpoint()])
        .args(["--table", &tables.cost])
        .args(["--table", &tables.reviews])
        .args(["--table", &tables.conversations])
        .arg("--checkpoints")
        .arg(dir.join("checkpoints.json"))
        .arg("--on-failure")
        .arg(dir.join("failures.jsonl"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the worker starts")
}

async fn items(db: &Client, table: &str, pk: (&str, &str)) -> Vec<handlers::Item> {
    db.query()
        .table_name(table)
        .key_condition_expression("#pk = :pk")
        .expression_attribute_names("#pk", pk.0)
        .expression_attribute_values(":pk", s(pk.1))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
        .into_iter()
        .map(handlers::Item::from)
        .collect()
}

async fn get(table: &str, key: (&str, &str)) -> handlers::Item {
    services::item(table, &[key])
        .await
        .map(handlers::Item::from)
        .unwrap_or_default()
}

fn number(item: &handlers::Item, name: &str) -> Option<Decimal> {
    match item.get(name) {
        Some(handlers::AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

fn text<'a>(item: &'a handlers::Item, name: &str) -> Option<&'a str> {
    handlers::item::get_str(item, name)
}

/// What is not yet as the tables say it should be (empty: every aggregate exact).
async fn discrepancies(
    db: &Client,
    tables: &Tables,
    versions: &[i64],
    thread_updates: &[String],
) -> Vec<String> {
    let mut wrong = Vec::new();
    for (e, version) in versions.iter().enumerate() {
        let all = items(db, &tables.cost, ("PK", &format!("ESTIMATION#n{e}"))).await;
        let metadata = all
            .iter()
            .find(|i| text(i, "SK") == Some("METADATA"))
            .unwrap();
        let lines: Vec<LineItem> = all
            .iter()
            .filter(|i| text(i, "SK").is_some_and(|sk| sk.starts_with("SERVER#")))
            .map(|i| from_item(i.clone(), "line").unwrap())
            .collect();
        let rules = match metadata.get("BusinessRules") {
            Some(_) => BusinessRules {
                buffer_percentage: Decimal::TEN,
                volume_discounts: true,
                support_plan_included: false,
            },
            None => BusinessRules {
                buffer_percentage: Decimal::TEN,
                volume_discounts: true,
                support_plan_included: true,
            },
        };
        let expected = price(&lines, &rules, &SavingsRates::default())
            .expect("prices")
            .total_monthly;
        let summary = match metadata.get("EstimationSummary") {
            Some(handlers::AttributeValue::M(m)) => match m.get("TotalMonthlyCost") {
                Some(handlers::AttributeValue::N(v)) => v.parse().ok(),
                _ => None,
            },
            _ => None,
        };
        let expected = (!lines.is_empty() || summary.is_some()).then_some(expected);
        if summary != expected {
            wrong.push(format!(
                "estimation n{e}: summary {summary:?}, lines say {expected:?}"
            ));
        }
        if number(metadata, "Version") != Some(Decimal::from(*version)) {
            wrong.push(format!(
                "estimation n{e}: Version {:?}, the application wrote {version}",
                number(metadata, "Version")
            ));
        }
    }
    for p in 0..PROVIDERS {
        let provider = format!("prov{p}");
        let reviews = db
            .scan()
            .table_name(&tables.reviews)
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default();
        let ratings: Vec<Decimal> = reviews
            .iter()
            .filter(|r| r["providerId"].as_s().is_ok_and(|id| *id == provider))
            .map(|r| r["rating"].as_n().unwrap().parse().unwrap())
            .collect();
        let stored = get(&tables.providers, ("providerId", &provider)).await;
        let sum: Decimal = ratings.iter().sum();
        let count = Decimal::from(ratings.len());
        let rating = if ratings.is_empty() {
            Decimal::ZERO
        } else {
            (sum / count).round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
        };
        let seen = (
            number(&stored, "ratingSum").unwrap_or_default(),
            number(&stored, "reviewCount").unwrap_or_default(),
            number(&stored, "rating").unwrap_or_default(),
        );
        if seen != (sum, count, rating) {
            wrong.push(format!(
                "{provider}: {seen:?}, reviews say {:?}",
                (sum, count, rating)
            ));
        }
    }
    for (t, updated_at) in thread_updates.iter().enumerate() {
        let conversation = format!("conv{t}");
        let messages = items(
            db,
            &tables.conversations,
            ("conversation_id", &conversation),
        )
        .await;
        let thread = get(&tables.threads, ("conversation_id", &conversation)).await;
        if number(&thread, "message_count") != Some(Decimal::from(messages.len())) {
            wrong.push(format!(
                "{conversation}: message_count {:?}, {} messages",
                number(&thread, "message_count"),
                messages.len()
            ));
        }
        if text(&thread, "updated_at") != Some(updated_at.as_str()) {
            wrong.push(format!(
                "{conversation}: updated_at is not the application's"
            ));
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_application_never_fails_because_of_the_worker_and_every_aggregate_ends_exact() {
    services::require();
    let tables = Arc::new(Tables {
        cost: services::fresh_table("aws-cost-platform-enhanced").await,
        reviews: services::fresh_table("marketplace-dev-reviews-table").await,
        providers: services::fresh_table("marketplace-dev-providers-table").await,
        aggregate_state: services::fresh_table("ddb-stream-worker-aggregate-state").await,
        conversations: services::fresh_table("acsd2p-dev-Conversations").await,
        threads: services::fresh_table("acsd2p-dev-Threads").await,
    });
    let db = services::dynamodb().await;
    let dir = tempfile::tempdir().unwrap();
    let mut worker = worker(&tables, dir.path());
    let tally = Arc::new(Tally::default());
    let started = Instant::now();

    let estimations: Vec<_> = (0..ESTIMATIONS)
        .map(|e| {
            tokio::spawn(estimation_writer(
                db.clone(),
                tables.clone(),
                tally.clone(),
                e,
            ))
        })
        .collect();
    let marketplace: Vec<_> = (0..PROVIDERS)
        .map(|p| {
            tokio::spawn(marketplace_writer(
                db.clone(),
                tables.clone(),
                tally.clone(),
                p,
            ))
        })
        .collect();
    let acs: Vec<_> = (0..THREADS)
        .map(|t| tokio::spawn(acs_writer(db.clone(), tables.clone(), tally.clone(), t)))
        .collect();
    let mut versions = Vec::new();
    for task in estimations {
        versions.push(task.await.unwrap());
    }
    for task in marketplace {
        task.await.unwrap();
    }
    let mut thread_updates = Vec::new();
    for task in acs {
        thread_updates.push(task.await.unwrap());
    }
    let writing = started.elapsed();

    // The worker catches up with the streams; a bounded wait.
    let mut wrong = discrepancies(&db, &tables, &versions, &thread_updates).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while !wrong.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        wrong = discrepancies(&db, &tables, &versions, &thread_updates).await;
    }
    let caught_up = started.elapsed() - writing;
    let _ = worker.kill();
    let _ = worker.wait();

    let writes = tally.writes.load(Ordering::SeqCst);
    let conflicts = tally.conflicts.load(Ordering::SeqCst);
    println!(
        "neighbour: {writes} application writes ({ESTIMATIONS} estimations, {PROVIDERS} providers, \
         {THREADS} threads) over {:.1} s beside the worker; application conditional-check \
         failures caused by the worker: {conflicts}; aggregates exact {:.1} s after the last \
         write",
        writing.as_secs_f64(),
        caught_up.as_secs_f64()
    );
    let failures = std::fs::read_to_string(dir.path().join("failures.jsonl")).unwrap_or_default();
    assert!(
        failures.is_empty(),
        "the worker gave up on records: {failures}"
    );
    assert_eq!(
        conflicts, 0,
        "application writes failed because of the worker"
    );
    assert!(wrong.is_empty(), "after 90 s: {wrong:#?}");
}

//! Every system's reactions under the delivery schedules streams produce. A generated change
//! history (cost platform users, line items and proposal documents; marketplace reviews and
//! bookings; ACS conversation messages; removes, some of them by TTL; several changes of one
//! item within a batch) is delivered twice on fresh embedded states: once plainly, in order,
//! and once under a generated schedule of random batch sizes, earlier batches delivered again
//! (duplicates), a fault drawn for every batch (a transient failure of a port call, followed by
//! Lambda's retry from the reported sequence number, or a crash between a reaction's effects
//! and the write that marks it completed, after which the worker and all it holds in memory
//! are dropped and a fresh one carries on, on the same tables).
//!
//! After every schedule the aggregates equal a model computed from the history alone (provider
//! ratings from the final reviews, estimation totals from the final line items by the seed's
//! rules, thread statistics from the final messages), the tables equal the plain run's
//! (documents, audit items: no audit item twice), the same objects exist, and every mail of the
//! plain run went out exactly once, except that each crash may add one repeat of a mail (the
//! crash window docs/guarantees.md documents). A failing case is saved in
//! `tests/delivery_schedules.proptest-regressions` and runs first from then on.
//!
//! `SCHEDULES=2000 cargo test --release --test delivery_schedules -- --nocapture` runs a longer
//! search; the default is short.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::TimeZone;
use ddb_stream_worker::batch::{BatchOptions, Worker};
use ddb_stream_worker::catalog::Catalog;
use ddb_stream_worker::decode::decode_event;
use ddb_stream_worker::wiring;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, FileFailurePersistence, TestRunner};
use serde_json::{json, Value};
use support::schedule::{schedule, Schedule};
use support::{
    config, embedded, faulty_tables, record_in, Faults, FaultyMailer, FaultyObjects, ManualClock,
};

const COST: &str = "aws-cost-platform-enhanced";
const REVIEWS: &str = "marketplace-dev-reviews-table";
const BOOKINGS: &str = "marketplace-dev-bookings-table";
const USERS: &str = "marketplace-dev-users-table";
const CONVERSATIONS: &str = "acsd2p-dev-Conversations";
const IDEMPOTENCY: &str = "marketplace-dev-idempotency-table";

/// What a change is about; `key` picks the item, `variant` its contents.
#[derive(Debug, Clone, Copy)]
enum Kind {
    UserProfile,
    LineItem,
    Document,
    Review,
    Booking,
    Message,
}

#[derive(Debug, Clone, Copy)]
struct Op {
    kind: Kind,
    key: u8,
    variant: u8,
    remove: bool,
    /// A remove made by DynamoDB's TTL process (the record names the service).
    by_ttl: bool,
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        2 => Just(Kind::UserProfile),
        4 => Just(Kind::LineItem),
        1 => Just(Kind::Document),
        4 => Just(Kind::Review),
        2 => Just(Kind::Booking),
        3 => Just(Kind::Message),
    ];
    (
        kind,
        0u8..4,
        0u8..12,
        proptest::bool::weighted(0.2),
        proptest::bool::ANY,
    )
        .prop_map(|(kind, key, variant, remove, by_ttl)| Op {
            kind,
            key,
            variant,
            remove,
            by_ttl,
        })
}

/// The item `op` writes: its table, key attribute names and image.
fn item(op: &Op) -> (&'static str, &'static [&'static str], Value) {
    let (k, v) = (op.key, op.variant);
    match op.kind {
        Kind::UserProfile => (
            COST,
            &["PK", "SK"],
            json!({
                "PK": {"S": format!("USER#u{k}")}, "SK": {"S": "PROFILE"}, "EntityType": {"S": "User"},
                "UserId": {"S": format!("u{k}")}, "FirstName": {"S": format!("Name {v}")},
                "LastName": {"S": "Doe"}, "Email": {"S": format!("u{k}@example.com")},
            }),
        ),
        Kind::LineItem => (
            COST,
            &["PK", "SK"],
            json!({
                "PK": {"S": format!("ESTIMATION#e{}", k % 2)}, "SK": {"S": format!("SERVER#s{k}")},
                "ServerName": {"S": format!("Server {k}")},
                "EstimatedMonthlyCost": {"N": format!("{}.{:02}", 100 * (1 + u32::from(v)), v)},
            }),
        ),
        Kind::Document => (
            COST,
            &["PK", "SK"],
            json!({
                "PK": {"S": "ESTIMATION#e0"}, "SK": {"S": format!("DOCUMENT#d{k}")},
                "DocumentType": {"S": "PDF_PROPOSAL"}, "Status": {"S": "PENDING"},
                "FileName": {"S": format!("Proposal {k}.pdf")}, "GeneratedBy": {"S": "u0"},
            }),
        ),
        Kind::Review => {
            // Eight reviews; those of one booking differ in rating, so which one counts shows,
            // and a provider's averages need rounding.
            let id = k + 4 * (v % 2);
            (
                REVIEWS,
                &["reviewId"],
                json!({
                    "reviewId": {"S": format!("r{id}")}, "bookingId": {"S": format!("b{}", v % 5)},
                    "providerId": {"S": format!("p{}", v % 3)}, "rating": {"N": (1 + (v + id) % 5).to_string()},
                    "createdAt": {"S": format!("2025-01-01T00:00:0{id}Z")},
                }),
            )
        }
        Kind::Booking => (
            BOOKINGS,
            &["bookingId"],
            json!({
                "bookingId": {"S": format!("bk{k}")}, "customerId": {"S": "c1"}, "providerId": {"S": "p1"},
                "scheduledDate": {"S": "2025-11-20T14:30:00Z"},
                "status": {"S": (["pending", "confirmed", "cancelled"][usize::from(v % 3)])},
                "createdAt": {"S": "2025-11-17T09:00:00Z"},
            }),
        ),
        Kind::Message => (
            CONVERSATIONS,
            &["conversation_id", "response_id"],
            json!({
                "conversation_id": {"S": format!("conv{}", k % 2)}, "response_id": {"S": format!("m{k}")},
                "sender_email": {"S": format!("sender{}@example.com", v % 3)},
                "recipient_email": {"S": "owner@example.com"},
                "timestamp": {"S": format!("2025-11-17T09:{:02}:00Z", v)},
            }),
        ),
    }
}

/// What exists before the history: estimations, the user proposals go to, the booking's
/// customer and provider. Delivered as the first records, so the embedded state holds them.
fn setup() -> Vec<(&'static str, &'static [&'static str], Value)> {
    let mut items: Vec<(&'static str, &'static [&'static str], Value)> = (0..2)
        .map(|e| {
            (
                COST,
                &["PK", "SK"][..],
                json!({"PK": {"S": format!("ESTIMATION#e{e}")}, "SK": {"S": "METADATA"}, "EntityType": {"S": "Estimation"},
                       "ProjectName": {"S": format!("Project {e}")}, "Version": {"N": "1"}}),
            )
        })
        .collect();
    items.push(item(&Op {
        kind: Kind::UserProfile,
        key: 0,
        variant: 0,
        remove: false,
        by_ttl: false,
    }));
    for (id, email) in [
        ("c1", "customer@example.com"),
        ("p1", "provider@example.com"),
    ] {
        items.push((
            USERS,
            &["userId"],
            json!({"userId": {"S": id}, "email": {"S": email}}),
        ));
    }
    items
}

/// The application's items once the history is over: (table, item).
type FinalItems = Vec<(&'static str, Value)>;

/// The stream records of the setup and the history, as one shard would carry them, and the
/// items the history leaves.
fn records(ops: &[Op]) -> (Vec<Value>, FinalItems) {
    let mut table: BTreeMap<String, (&'static str, Value)> = BTreeMap::new();
    let mut records = Vec::new();
    // (item, remove, by TTL, written once): a proposal is requested once; its document is then
    // the worker's to update.
    let writes = setup()
        .into_iter()
        .map(|w| (w, false, false, false))
        .chain(ops.iter().map(|op| {
            let once = matches!(op.kind, Kind::Document);
            (item(op), op.remove, op.by_ttl, once)
        }));
    for ((name, key_names, image), remove, by_ttl, once) in writes {
        let keys = Value::Object(
            key_names
                .iter()
                .map(|k| (k.to_string(), image[*k].clone()))
                .collect(),
        );
        let slot = format!("{name} {keys}");
        if once && (remove || table.contains_key(&slot)) {
            continue;
        }
        let old = table.get(&slot).map(|(_, item)| item.clone());
        let (event, new) = match (remove, &old) {
            (true, None) => continue,
            (true, Some(_)) => ("REMOVE", None),
            (false, None) => ("INSERT", Some(image)),
            (false, Some(_)) => ("MODIFY", Some(image)),
        };
        match &new {
            Some(new) => table.insert(slot, (name, new.clone())),
            None => table.remove(&slot),
        };
        let seq = records.len() as u64 + 1;
        let mut record = record_in(name, seq, event, keys, new, old);
        if remove && by_ttl {
            record["userIdentity"] =
                json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
        }
        records.push(record);
    }
    (records, table.into_values().collect())
}

/// A fault for one batch: the operation and what its detail must contain.
const FAULTS: &[(&str, &str)] = &[
    ("Query", ""),
    ("GetItem", ""),
    ("UpdateItem", ""),
    ("PutItem", ""),
    ("BatchWriteItem", ""),
    ("TransactWriteItems", ""),
    ("PutObject", ""),
    ("DeleteObject", ""),
    ("SendEmail", ""),
    // A crash after a reaction's effects, before it is marked completed.
    ("PutItem", "COMPLETED"),
];
const CRASH: &str = "COMPLETED";

/// Batches a schedule plans for: more than a history's records, so every batch has a plan.
const MAX_BATCHES: usize = 64;

/// What a run leaves behind.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// Every table but the idempotency table's, without what depends on how often an
    /// aggregate was rewritten (versions, the CALCULATION# history).
    tables: Vec<(String, Vec<Value>)>,
    objects: Vec<String>,
    mail: BTreeMap<(Vec<String>, String), usize>,
}

struct Run {
    worker: Worker,
    faults: Arc<Faults>,
    mailer: Arc<FaultyMailer>,
    state: Arc<ddb_stream_worker::adapters::embedded::EmbeddedState>,
    _dir: tempfile::TempDir,
}

impl Run {
    fn on_fresh_state() -> Run {
        let dir = tempfile::tempdir().unwrap();
        let (state, adapters) = embedded(dir.path());
        let faults = Arc::new(Faults::default());
        let mailer = Arc::new(FaultyMailer {
            inner: adapters.mailer.clone(),
            faults: faults.clone(),
            sent: Mutex::new(Vec::new()),
        });
        let mut run = Run {
            worker: wiring::worker(&config(), adapters),
            faults,
            mailer,
            state,
            _dir: dir,
        };
        run.restart();
        run
    }

    /// A fresh worker on the same tables, objects and mail outbox, as after a crash: nothing
    /// the previous one held in memory (the providers' aggregates it remembered, its savings
    /// rates) survives.
    fn restart(&mut self) {
        let mut adapters =
            wiring::embedded_adapters(self.state.clone(), Catalog::with_seed_definitions());
        adapters.tables = faulty_tables(adapters.tables.clone(), self.faults.clone());
        adapters.objects = Arc::new(FaultyObjects {
            inner: adapters.objects.clone(),
            faults: self.faults.clone(),
        });
        adapters.mailer = self.mailer.clone();
        adapters.clock = Arc::new(ManualClock::at(now()));
        self.worker = wiring::worker(&config(), adapters);
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc
        .with_ymd_and_hms(2025, 11, 17, 12, 0, 0)
        .unwrap()
}

/// Lambda's options, with locks that have already expired: a retry after a crash takes the
/// lock over at once, as it would once the crashed invocation's deadline had passed.
fn options() -> BatchOptions {
    BatchOptions {
        deadline: Some(now() - chrono::Duration::seconds(1)),
        apply_own_change: true,
        stop_before: None,
    }
}

/// Deliver `records` as Lambda does: on a failure, again from the reported sequence number,
/// by a fresh worker when the failure was a crash.
async fn until_done(run: &mut Run, records: &[Value]) -> Result<usize, TestCaseError> {
    let mut from = 0;
    let mut last = None;
    for delivery in 1..=10 {
        let text = json!({ "Records": &records[from..] }).to_string();
        let decoded = decode_event(&text, "schedule", None).unwrap();
        let crashes = run.faults.fired(CRASH);
        let outcome = run
            .worker
            .process_batch(&decoded, options(), &mut |_| {})
            .await;
        let Some(failure) = outcome.failure else {
            return Ok(delivery);
        };
        prop_assert!(failure.retryable, "{:?}", failure);
        prop_assert_eq!(
            outcome.response.batch_item_failures[0]
                .item_identifier
                .as_deref(),
            Some(failure.sequence_number.as_str())
        );
        if run.faults.fired(CRASH) > crashes {
            run.restart();
        }
        from += failure.index;
        last = Some(failure);
    }
    Err(TestCaseError::fail(format!(
        "a batch was not done after 10 deliveries: {last:?}"
    )))
}

fn outcome(run: &Run) -> Outcome {
    // Versions count writes, which coalescing makes schedule-dependent, and the worker dates
    // a recomputation by the record it ran at, which the batching decides; a PDF's size
    // varies from render to render (printpdf names its resources at random).
    let volatile = [
        "SummaryVersion",
        "aggregateVersion",
        "stats_version",
        // A booking slot's: the slots of a window are written once per window.
        "version",
        "ratingUpdatedAt",
        "stats_updated_at",
        "FileSize",
    ];
    let tables = support::dump(&run.state, None)
        .expect("the state reads")
        .into_iter()
        .filter(|(name, _)| name != IDEMPOTENCY)
        .map(|(name, items)| {
            let items = items
                .into_iter()
                .filter(|item| {
                    !item["SK"]["S"]
                        .as_str()
                        .is_some_and(|sk| sk.starts_with("CALCULATION#"))
                })
                .map(|mut item| {
                    for name in volatile {
                        item.as_object_mut().map(|o| o.remove(name));
                    }
                    if let Some(summary) = item["EstimationSummary"]["M"].as_object_mut() {
                        summary.remove("LastCalculatedAt");
                    }
                    item
                })
                .collect();
            (name, items)
        })
        .collect();
    let mut objects: Vec<String> = walk(&run.state.root().join("objects"));
    objects.sort();
    let mut mail = BTreeMap::new();
    for sent in run.mailer.sent.lock().unwrap().iter() {
        *mail.entry(sent.clone()).or_default() += 1;
    }
    Outcome {
        tables,
        objects,
        mail,
    }
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            if e.path().is_dir() {
                walk(&e.path())
            } else {
                vec![e.path().display().to_string()]
            }
        })
        .map(|p| p.rsplit("objects").next().unwrap_or_default().to_string())
        .collect()
}

/// The items only one of two runs has, table by table: what a failure needs to show.
fn table_difference(want: &[(String, Vec<Value>)], got: &[(String, Vec<Value>)]) -> String {
    let index = |tables: &[(String, Vec<Value>)]| -> std::collections::BTreeSet<String> {
        tables
            .iter()
            .flat_map(|(name, items)| items.iter().map(move |item| format!("{name}: {item}")))
            .collect()
    };
    let (want, got) = (index(want), index(got));
    let mut text = String::from("the tables differ from the plain run's\n");
    for item in want.difference(&got).take(3) {
        text.push_str(&format!("  only in the plain run: {item}\n"));
    }
    for item in got.difference(&want).take(3) {
        text.push_str(&format!("  only under the schedule: {item}\n"));
    }
    text
}

/// Figures over all schedules run.
#[derive(Default)]
struct Figures {
    schedules: AtomicUsize,
    records: AtomicUsize,
    deliveries: AtomicUsize,
    faults: AtomicUsize,
    crashes: AtomicUsize,
    repeated_mail: AtomicUsize,
}

async fn check(ops: Vec<Op>, plan: Schedule, figures: &Figures) -> Result<(), TestCaseError> {
    let (records, final_items) = records(&ops);

    let mut plain = Run::on_fresh_state();
    for batch in records.chunks(10) {
        until_done(&mut plain, batch).await?;
    }
    let want = outcome(&plain);

    let mut run = Run::on_fresh_state();
    prop_assert!(records.len() <= MAX_BATCHES, "a batch without a plan");
    let mut deliveries = 0;
    for planned in plan.deliveries(&records) {
        if let Some(earlier) = planned.again {
            deliveries += until_done(&mut run, earlier).await?;
        }
        if let Some((operation, needle)) = planned.fault.and_then(|f| FAULTS.get(f)) {
            run.faults.fail_next(operation, needle, 1);
        }
        deliveries += until_done(&mut run, planned.batch).await?;
        run.faults.disarm();
    }
    let got = outcome(&run);
    let crashes = run.faults.fired(CRASH);
    // The model first: the plain run is the same code, so a bug that does not depend on the
    // schedule would pass the comparison with it.
    model::check(
        &final_items,
        &support::dump(&run.state, None).expect("the state reads"),
    )?;
    model::check(
        &final_items,
        &support::dump(&plain.state, None).expect("the state reads"),
    )?;

    if got.tables != want.tables {
        return Err(TestCaseError::fail(table_difference(
            &want.tables,
            &got.tables,
        )));
    }
    prop_assert_eq!(&got.objects, &want.objects);
    // Every mail of the plain run, once; a crash may repeat one.
    let mut repeats = 0;
    for (message, times) in &got.mail {
        let wanted = want.mail.get(message).copied().unwrap_or(0);
        prop_assert!(wanted > 0, "unexpected mail {:?}", message);
        prop_assert!(
            *times >= wanted,
            "{:?} sent {} times, not {}",
            message,
            times,
            wanted
        );
        repeats += times - wanted;
    }
    prop_assert_eq!(got.mail.len(), want.mail.len(), "a mail was never sent");
    prop_assert!(
        repeats <= crashes,
        "{} repeated mails, {} crashes",
        repeats,
        crashes
    );

    figures.schedules.fetch_add(1, Ordering::Relaxed);
    figures.records.fetch_add(records.len(), Ordering::Relaxed);
    figures.deliveries.fetch_add(deliveries, Ordering::Relaxed);
    figures
        .faults
        .fetch_add(run.faults.fired(""), Ordering::Relaxed);
    figures.crashes.fetch_add(crashes, Ordering::Relaxed);
    figures.repeated_mail.fetch_add(repeats, Ordering::Relaxed);
    Ok(())
}

#[test]
fn every_system_ends_exact_under_random_delivery_schedules() {
    let cases = std::env::var("SCHEDULES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let figures = Figures::default();
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/delivery_schedules.proptest-regressions",
        ))),
        ..RunnerConfig::default()
    });
    let result = runner.run(
        &(
            proptest::collection::vec(op(), 1..40),
            schedule(8, 30, MAX_BATCHES, 0.3, FAULTS.len()),
        ),
        |(ops, plan)| runtime.block_on(check(ops, plan, &figures)),
    );
    let count = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    println!(
        "{} schedules passed: {} records, {} deliveries, {} port faults, {} crashes before completion, {} mails repeated by those crashes",
        count(&figures.schedules),
        count(&figures.records),
        count(&figures.deliveries),
        count(&figures.faults),
        count(&figures.crashes),
        count(&figures.repeated_mail),
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

/// The aggregates the history alone implies, computed here from the application's final items
/// by the rules the seeds and docs/reactions.md state, with none of the worker's code.
mod model {
    use std::collections::BTreeMap;
    use std::str::FromStr;

    use proptest::prelude::*;
    use rust_decimal::{Decimal, RoundingStrategy};
    use serde_json::Value;

    use super::{FinalItems, CONVERSATIONS, COST, REVIEWS};

    const PROVIDERS: &str = "marketplace-dev-providers-table";
    const THREADS: &str = "acsd2p-dev-Threads";

    fn number(value: &Value) -> Option<Decimal> {
        Decimal::from_str(value["N"].as_str()?).ok()
    }

    fn text(value: &Value) -> &str {
        value["S"].as_str().unwrap_or_default()
    }

    fn cents(value: Decimal) -> Decimal {
        value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
    }

    /// The final items of `table`.
    fn items<'a>(
        final_items: &'a FinalItems,
        table: &'a str,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        final_items
            .iter()
            .filter(move |(name, _)| *name == table)
            .map(|(_, item)| item)
    }

    pub fn check(
        final_items: &FinalItems,
        dump: &[(String, Vec<Value>)],
    ) -> Result<(), TestCaseError> {
        let stored = |name: &str| -> &[Value] {
            dump.iter()
                .find(|(table, _)| table == name)
                .map_or(&[], |(_, items)| items.as_slice())
        };
        ratings(final_items, stored(PROVIDERS))?;
        threads(final_items, stored(THREADS))?;
        totals(final_items, stored(COST))
    }

    /// Per provider: one review per booking counts, the earliest by (createdAt, reviewId);
    /// `ratingSum` and `reviewCount` exact, `rating` their average to two decimals, half up.
    fn ratings(final_items: &FinalItems, providers: &[Value]) -> Result<(), TestCaseError> {
        let mut counted: BTreeMap<String, BTreeMap<String, (String, String, Decimal)>> =
            BTreeMap::new();
        for review in items(final_items, REVIEWS) {
            let candidate = (
                text(&review["createdAt"]).to_string(),
                text(&review["reviewId"]).to_string(),
                number(&review["rating"]).expect("the history writes numeric ratings"),
            );
            let bookings = counted
                .entry(text(&review["providerId"]).to_string())
                .or_default();
            let booking = text(&review["bookingId"]).to_string();
            match bookings.get(&booking) {
                Some(current) if (&current.0, &current.1) <= (&candidate.0, &candidate.1) => {}
                _ => {
                    bookings.insert(booking, candidate);
                }
            }
        }
        let mut names: Vec<String> = counted.keys().cloned().collect();
        names.extend(providers.iter().map(|p| text(&p["providerId"]).to_string()));
        names.sort();
        names.dedup();
        for provider in names {
            let reviews = counted.get(&provider);
            let sum: Decimal = reviews.into_iter().flatten().map(|(_, r)| r.2).sum();
            let count = Decimal::from(reviews.map_or(0, BTreeMap::len));
            let item = providers
                .iter()
                .find(|p| text(&p["providerId"]) == provider);
            let Some(item) = item else {
                prop_assert!(
                    count.is_zero(),
                    "provider {} has no aggregate; model: {} reviews summing to {}",
                    provider,
                    count,
                    sum
                );
                continue;
            };
            let got = (
                number(&item["ratingSum"]),
                number(&item["reviewCount"]),
                number(&item["rating"]),
            );
            let average = if count.is_zero() {
                Decimal::ZERO
            } else {
                cents(sum / count)
            };
            prop_assert_eq!(
                got,
                (Some(sum), Some(count), Some(average)),
                "provider {}: (ratingSum, reviewCount, rating) against the model",
                provider
            );
        }
        Ok(())
    }

    /// Per conversation: how many messages, the latest timestamp, and every sender and
    /// recipient once, oldest message (timestamp, then response_id) first.
    fn threads(final_items: &FinalItems, threads: &[Value]) -> Result<(), TestCaseError> {
        let mut conversations: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for message in items(final_items, CONVERSATIONS) {
            conversations
                .entry(text(&message["conversation_id"]).to_string())
                .or_default()
                .push(message);
        }
        let mut names: Vec<String> = conversations.keys().cloned().collect();
        names.extend(
            threads
                .iter()
                .map(|t| text(&t["conversation_id"]).to_string()),
        );
        names.sort();
        names.dedup();
        for conversation in names {
            let mut messages = conversations
                .get(&conversation)
                .cloned()
                .unwrap_or_default();
            messages.sort_by_key(|m| (text(&m["timestamp"]), text(&m["response_id"])));
            let mut participants: Vec<&str> = Vec::new();
            for message in &messages {
                for address in [
                    text(&message["sender_email"]),
                    text(&message["recipient_email"]),
                ] {
                    if !address.is_empty() && !participants.contains(&address) {
                        participants.push(address);
                    }
                }
            }
            let last = messages.last().map(|m| text(&m["timestamp"]));
            let thread = threads
                .iter()
                .find(|t| text(&t["conversation_id"]) == conversation);
            let Some(thread) = thread else {
                prop_assert!(
                    messages.is_empty(),
                    "conversation {} has no statistics; model: {} messages",
                    conversation,
                    messages.len()
                );
                continue;
            };
            let stored_participants: Vec<&str> = thread["participants"]["L"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            prop_assert_eq!(
                (
                    number(&thread["message_count"]),
                    thread["last_message_at"]["S"].as_str(),
                    stored_participants
                ),
                (Some(Decimal::from(messages.len())), last, participants),
                "conversation {}: (message_count, last_message_at, participants) against the model",
                conversation
            );
        }
        Ok(())
    }

    /// Per estimation, from its SERVER# line items, by the default rules (10 % buffer, volume
    /// discount from 10,000, Business Support at 10 % of the first 10,000, at least 100): the
    /// line-item count, Compute, Support and the totals.
    fn totals(final_items: &FinalItems, cost: &[Value]) -> Result<(), TestCaseError> {
        for metadata in cost.iter().filter(|i| text(&i["SK"]) == "METADATA") {
            let pk = text(&metadata["PK"]);
            let costs: Vec<Decimal> = items(final_items, COST)
                .filter(|i| text(&i["PK"]) == pk && text(&i["SK"]).starts_with("SERVER#"))
                .map(|i| number(&i["EstimatedMonthlyCost"]).expect("numeric cost"))
                .collect();
            let summary = &metadata["EstimationSummary"]["M"];
            if summary.is_null() {
                prop_assert!(
                    costs.is_empty(),
                    "{} has no summary; model: {} line items",
                    pk,
                    costs.len()
                );
                continue;
            }
            let compute = cents(costs.iter().sum::<Decimal>() * Decimal::new(11, 1));
            prop_assume!(
                compute < Decimal::from(10_000),
                "the model covers no discount"
            );
            let support = if compute.is_zero() {
                Decimal::ZERO
            } else {
                cents(compute / Decimal::TEN).max(Decimal::ONE_HUNDRED)
            };
            let monthly = compute + support;
            let breakdown = &summary["CostBreakdown"]["M"];
            prop_assert_eq!(
                (
                    number(&summary["LineItemCount"]),
                    number(&breakdown["Compute"]),
                    number(&breakdown["Support"]),
                    number(&summary["TotalMonthlyCost"]),
                    number(&summary["TotalAnnualCost"]),
                ),
                (
                    Some(Decimal::from(costs.len())),
                    Some(compute),
                    Some(support),
                    Some(monthly),
                    Some(monthly * Decimal::from(12)),
                ),
                "{}: (LineItemCount, Compute, Support, TotalMonthlyCost, TotalAnnualCost) against the model",
                pk
            );
        }
        Ok(())
    }
}

//! Every system's reactions under the delivery schedules streams produce. A generated change
//! history (cost platform users, line items and proposal documents; marketplace reviews and
//! bookings; ACS conversation messages) is delivered twice on fresh embedded states: once
//! plainly, in order, and once under a generated schedule of random batch sizes, earlier
//! batches delivered again (duplicates), a transient failure of a random port call followed by
//! Lambda's retry from the reported sequence number, and crashes between a reaction's effects
//! and the write that marks it completed.
//!
//! After every schedule the tables equal the plain run's (totals, ratings, thread counts,
//! documents, audit items: no audit item twice), the same objects exist, and every mail of the
//! plain run went out exactly once, except that each crash may add one repeat of a mail (the
//! crash window docs/guarantees.md documents).
//!
//! `SCHEDULES=2000 cargo test --release --test delivery_schedules -- --nocapture` runs a longer
//! search; the default is short.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::TimeZone;
use ddb_stream_worker::batch::{BatchOptions, Worker};
use ddb_stream_worker::decode::decode_event;
use ddb_stream_worker::wiring;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde_json::{json, Value};
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
    (kind, 0u8..4, 0u8..12, proptest::bool::weighted(0.2)).prop_map(
        |(kind, key, variant, remove)| Op {
            kind,
            key,
            variant,
            remove,
        },
    )
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
        Kind::Review => (
            REVIEWS,
            &["reviewId"],
            json!({
                "reviewId": {"S": format!("r{k}")}, "bookingId": {"S": format!("b{}", v % 5)},
                "providerId": {"S": format!("p{}", v % 3)}, "rating": {"N": (1 + v % 5).to_string()},
                "createdAt": {"S": format!("2025-01-01T00:00:0{k}Z")},
            }),
        ),
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

/// The stream records of the setup and the history, as one shard would carry them.
fn records(ops: &[Op]) -> Vec<Value> {
    let mut table: BTreeMap<String, Value> = BTreeMap::new();
    let mut records = Vec::new();
    // (item, remove, written once): a proposal is requested once; its document is then the
    // worker's to update.
    let writes = setup().into_iter().map(|w| (w, false, false)).chain(
        ops.iter()
            .map(|op| (item(op), op.remove, matches!(op.kind, Kind::Document))),
    );
    for ((name, key_names, image), remove, once) in writes {
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
        let old = table.get(&slot).cloned();
        let (event, new) = match (remove, &old) {
            (true, None) => continue,
            (true, Some(_)) => ("REMOVE", None),
            (false, None) => ("INSERT", Some(image)),
            (false, Some(_)) => ("MODIFY", Some(image)),
        };
        match &new {
            Some(new) => table.insert(slot, new.clone()),
            None => table.remove(&slot),
        };
        let seq = records.len() as u64 + 1;
        records.push(record_in(name, seq, event, keys, new, old));
    }
    records
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

#[derive(Debug, Clone)]
struct Schedule {
    sizes: Vec<usize>,
    /// Per batch: deliver an earlier batch again first.
    redeliver: Vec<Option<usize>>,
    /// Per batch: a fault from [`FAULTS`] (out of range: none).
    fault: Vec<usize>,
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (
        proptest::collection::vec(1usize..8, 1..30),
        proptest::collection::vec(proptest::option::weighted(0.3, 0usize..30), 30),
        proptest::collection::vec(0usize..FAULTS.len() * 2, 30),
    )
        .prop_map(|(sizes, redeliver, fault)| Schedule {
            sizes,
            redeliver,
            fault,
        })
}

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

fn run_on_fresh_state() -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (state, mut adapters) = embedded(dir.path());
    let faults = Arc::new(Faults::default());
    adapters.tables = faulty_tables(adapters.tables.clone(), faults.clone());
    adapters.objects = Arc::new(FaultyObjects {
        inner: adapters.objects.clone(),
        faults: faults.clone(),
    });
    let mailer = Arc::new(FaultyMailer {
        inner: adapters.mailer.clone(),
        faults: faults.clone(),
        sent: Mutex::new(Vec::new()),
    });
    adapters.mailer = mailer.clone();
    adapters.clock = Arc::new(ManualClock::at(now()));
    Run {
        worker: wiring::worker(&config(), adapters),
        faults,
        mailer,
        state,
        _dir: dir,
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

/// Deliver `records` as Lambda does: on a failure, again from the reported sequence number.
async fn until_done(worker: &Worker, records: &[Value]) -> Result<usize, TestCaseError> {
    let mut from = 0;
    let mut last = None;
    for delivery in 1..=10 {
        let text = json!({ "Records": &records[from..] }).to_string();
        let decoded = decode_event(&text, "schedule", None).unwrap();
        let outcome = worker.process_batch(&decoded, options(), &mut |_| {}).await;
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
        "ratingUpdatedAt",
        "stats_updated_at",
        "FileSize",
    ];
    let tables = run
        .state
        .dump(None)
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
    let records = records(&ops);

    let plain = run_on_fresh_state();
    for batch in records.chunks(10) {
        until_done(&plain.worker, batch).await?;
    }
    let want = outcome(&plain);

    let run = run_on_fresh_state();
    let mut sent: Vec<&[Value]> = Vec::new();
    let mut rest = records.as_slice();
    let mut deliveries = 0;
    for batch_no in 0.. {
        if rest.is_empty() {
            break;
        }
        let size = plan
            .sizes
            .get(batch_no)
            .copied()
            .unwrap_or(5)
            .min(rest.len());
        let (batch, tail) = rest.split_at(size);
        rest = tail;
        if let (Some(Some(earlier)), false) = (plan.redeliver.get(batch_no), sent.is_empty()) {
            deliveries += until_done(&run.worker, sent[earlier % sent.len()]).await?;
        }
        if let Some((operation, needle)) = plan.fault.get(batch_no).and_then(|f| FAULTS.get(*f)) {
            run.faults.fail_next(operation, needle, 1);
        }
        deliveries += until_done(&run.worker, batch).await?;
        run.faults.disarm();
        sent.push(batch);
    }
    let got = outcome(&run);
    let crashes = run.faults.fired(CRASH);

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
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let result = runner.run(
        &(proptest::collection::vec(op(), 1..40), schedule()),
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

//! Batch semantics through the library: order, stop at the first failure, the partial batch
//! response, idempotency, and deferred audit writes.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use ddb_stream_worker::batch::idempotency::{IdempotencyRecord, LockStatus};
use ddb_stream_worker::batch::{Adapters, BatchOptions, Outcome, RecordReport, Worker};
use ddb_stream_worker::wiring;
use handlers::item::{from_item, string_key, to_item};
use handlers::ports::{Ports, Tables, Update};
use handlers::{AttributeValue, Change, Idempotency, Reacted, Reaction, ReactionError};
use support::*;

/// Fails (retryably) on one eventID; does nothing otherwise.
struct FailOn(&'static str);

#[async_trait]
impl Reaction for FailOn {
    fn name(&self) -> &'static str {
        "fail-on"
    }
    fn idempotency(&self) -> Idempotency {
        Idempotency::ByConstruction
    }
    fn applies(&self, _: &Change) -> bool {
        true
    }
    async fn react(&self, change: &Change, _: Ports<'_>) -> Result<Reacted, ReactionError> {
        if change.event_id == self.0 {
            Err(ReactionError::Port(handlers::PortError::Transient {
                operation: "Test",
                target: "t".into(),
                message: "boom".into(),
            }))
        } else {
            Ok(Reacted::default())
        }
    }
}

/// A guarded reaction with an effect that must happen once: ADD 1 to a counter item.
#[derive(Clone)]
struct Counter(Arc<CounterState>);

struct CounterState {
    runs: AtomicUsize,
    fail_first: AtomicUsize,
}

impl std::ops::Deref for Counter {
    type Target = CounterState;
    fn deref(&self) -> &CounterState {
        &self.0
    }
}

impl Counter {
    fn new(fail_first: usize) -> Self {
        Counter(Arc::new(CounterState {
            runs: AtomicUsize::new(0),
            fail_first: AtomicUsize::new(fail_first),
        }))
    }
}

#[async_trait]
impl Reaction for Counter {
    fn name(&self) -> &'static str {
        "counter"
    }
    fn idempotency(&self) -> Idempotency {
        Idempotency::Guarded
    }
    fn applies(&self, _: &Change) -> bool {
        true
    }
    async fn react(&self, change: &Change, ports: Ports<'_>) -> Result<Reacted, ReactionError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if self.fail_first.load(Ordering::SeqCst) > 0 {
            self.fail_first.fetch_sub(1, Ordering::SeqCst);
            // A failure a retry can fix (one no retry can fix is parked: tests/parking.rs).
            return Err(ReactionError::Port(handlers::PortError::Transient {
                operation: "PutItem",
                target: "counter".into(),
                message: "first attempt fails".into(),
            }));
        }
        let key = string_key(&[("PK", "COUNTER#test"), ("SK", "TOTAL")]);
        let after = ports
            .tables
            .update(
                COST_TABLE,
                &key,
                &Update::default().add("Count", AttributeValue::N("1".into())),
                None,
            )
            .await?;
        Ok(Reacted {
            result: serde_json::json!({ "event": change.event_id, "count": format!("{:?}", after.get("Count")) }),
            deferred_writes: vec![],
        })
    }
}

fn worker(reactions: Vec<Box<dyn Reaction>>, adapters: Adapters) -> Worker {
    Worker::new(reactions, adapters, config().idempotency)
}

async fn run(
    worker: &Worker,
    records: &[serde_json::Value],
) -> (ddb_stream_worker::batch::BatchOutcome, Vec<RecordReport>) {
    let mut reports = Vec::new();
    let outcome = worker
        .process_batch(
            &decode(records),
            BatchOptions {
                deadline: None,
                apply_own_change: true,
                stop_before: None,
            },
            &mut |r| reports.push(r.clone()),
        )
        .await;
    (outcome, reports)
}

fn counter_value(tables: &dyn Tables) -> Option<AttributeValue> {
    let key = string_key(&[("PK", "COUNTER#test"), ("SK", "TOTAL")]);
    futures_lite(tables.get(COST_TABLE, &key))
        .unwrap()
        .and_then(|item| item.get("Count").cloned())
}

/// Run a future to completion on the current runtime (tests are already async).
fn futures_lite<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

fn audit_items(
    state: &ddb_stream_worker::adapters::embedded::EmbeddedState,
) -> Vec<serde_json::Value> {
    dump(state, Some(COST_TABLE))
        .unwrap()
        .into_iter()
        .flat_map(|(_, items)| items)
        .filter(|i| i["EntityType"]["S"] == "AuditLog")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_batch_reports_an_empty_failure_list() {
    let dir = tempfile::tempdir().unwrap();
    let (state, adapters) = embedded(dir.path());
    let worker = wiring::worker(&config(), adapters);
    let (outcome, reports) = run(&worker, &[user_insert(1, "u1"), user_insert(2, "u2")]).await;
    assert_eq!(
        serde_json::to_string(&outcome.response).unwrap(),
        r#"{"batchItemFailures":[]}"#
    );
    assert_eq!(outcome.settled, 2);
    assert_eq!(reports.len(), 2);
    assert_eq!(audit_items(&state).len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_failing_record_stops_the_batch_and_is_reported_by_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let (state, adapters) = embedded(dir.path());
    let mut reactions = wiring::reactions(&config());
    reactions.push(Box::new(FailOn("event-2")));
    let worker = worker(reactions, adapters);
    let (outcome, reports) = run(
        &worker,
        &[
            user_insert(1, "u1"),
            user_insert(2, "u2"),
            user_insert(3, "u3"),
        ],
    )
    .await;

    let failure = outcome.failure.expect("batch fails");
    assert_eq!(failure.sequence_number, format!("{:021}", 2));
    assert!(failure.retryable);
    assert_eq!(failure.stage, "fail-on");
    assert_eq!(
        serde_json::to_value(&outcome.response).unwrap(),
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": format!("{:021}", 2)}]})
    );
    assert_eq!(outcome.settled, 1);
    assert_eq!(
        reports.len(),
        2,
        "the failing record is reported, the one after it is not"
    );
    assert!(matches!(
        reports[1].reactions.last().unwrap().outcome,
        Outcome::Failed { .. }
    ));
    // Record 3 was not touched at all: neither applied nor audited.
    let u3 = string_key(&[("PK", "USER#u3"), ("SK", "PROFILE")]);
    assert!(state.as_ref().get(COST_TABLE, &u3).await.unwrap().is_none());
    assert!(audit_items(&state)
        .iter()
        .all(|a| a["Details"]["M"]["EventId"]["S"] != "event-3"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_completed_duplicate_is_skipped_in_one_request_with_its_stored_result() {
    // The batch reads its records' idempotency records at once before it starts.
    completed_duplicate_is_skipped(true, [("BatchGetItem", 1)]).await;
    // Without that (or when the read failed), the lock's conditional put finds the record.
    completed_duplicate_is_skipped(false, [("PutItem", 1)]).await;
}

async fn completed_duplicate_is_skipped(batch_check: bool, requests: [(&str, u64); 1]) {
    let dir = tempfile::tempdir().unwrap();
    let (_state, adapters) = embedded(dir.path());
    let counter = Counter::new(0);
    let mut idempotency = config().idempotency;
    idempotency.completion_notes = batch_check;
    let worker = Worker::new(
        vec![Box::new(counter.clone())],
        adapters.clone(),
        idempotency,
    );

    let (first, first_reports) = run(&worker, &[user_insert(1, "u1")]).await;
    assert!(first.failure.is_none());
    let Outcome::Done {
        result: first_result,
    } = &first_reports[0].reactions[0].outcome
    else {
        panic!("first run is done")
    };

    let (second, reports) = run(&worker, &[user_insert(1, "u1")]).await;
    assert!(second.failure.is_none());
    // The batch counts the worker's own requests (not the replay's apply step).
    assert_eq!(
        second.requests,
        requests.into_iter().collect(),
        "one request, nothing else"
    );
    assert_eq!(
        reports[0].reactions[0].outcome,
        Outcome::DuplicateSkipped {
            result: first_result.clone()
        }
    );
    assert_eq!(counter.runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        counter_value(adapters.tables.as_ref()),
        Some(AttributeValue::N("1".into()))
    );
}

async fn put_lock(tables: &dyn Tables, status: LockStatus, ttl: i64, in_progress_expiry: i64) {
    let record = IdempotencyRecord {
        key: "counter#event-1".into(),
        status,
        result: Some("{}".into()),
        ttl,
        in_progress_expiry: Some(in_progress_expiry),
    };
    tables
        .put(&config().idempotency.table, to_item(&record).unwrap(), None)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_in_progress_elsewhere_fails_as_retryable() {
    let dir = tempfile::tempdir().unwrap();
    let (_state, adapters) = embedded(dir.path());
    let now = chrono::Utc::now();
    put_lock(
        adapters.tables.as_ref(),
        LockStatus::InProgress,
        now.timestamp() + 3600,
        now.timestamp_millis() + 60_000,
    )
    .await;
    let counter = Counter::new(0);
    let worker = worker(vec![Box::new(counter.clone())], adapters);
    let (outcome, _) = run(&worker, &[user_insert(1, "u1")]).await;
    let failure = outcome.failure.expect("in progress fails the record");
    assert!(failure.retryable);
    assert!(
        failure.message.contains("in progress"),
        "{}",
        failure.message
    );
    assert_eq!(counter.runs.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_lock_is_taken_over_and_a_completed_record_counts_even_past_its_ttl() {
    // (status, ttl offset s, in-progress expiry offset ms, runs expected)
    for (status, ttl_offset, expiry_offset_ms, runs) in [
        // TTL passed, not yet deleted by DynamoDB: still the same event, done before.
        (LockStatus::Completed, -10, -10_000, 0),
        // A crashed attempt's lock outlived its expiry: taken over.
        (LockStatus::InProgress, 3600, -1_000, 1),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (_state, adapters) = embedded(dir.path());
        let now = chrono::Utc::now();
        put_lock(
            adapters.tables.as_ref(),
            status,
            now.timestamp() + ttl_offset,
            now.timestamp_millis() + expiry_offset_ms,
        )
        .await;
        let counter = Counter::new(0);
        let worker = worker(vec![Box::new(counter.clone())], adapters.clone());
        let (outcome, _) = run(&worker, &[user_insert(1, "u1")]).await;
        assert!(
            outcome.failure.is_none(),
            "{status:?}: {:?}",
            outcome.failure
        );
        assert_eq!(counter.runs.load(Ordering::SeqCst), runs, "{status:?}");
        if runs == 0 {
            continue;
        }
        let key = string_key(&[("idempotencyKey", "counter#event-1")]);
        let stored = adapters
            .tables
            .get(&config().idempotency.table, &key)
            .await
            .unwrap()
            .unwrap();
        let stored: IdempotencyRecord = from_item(stored, "lock").unwrap();
        assert_eq!(stored.status, LockStatus::Completed);
        // 24 h from the record's own time (ApproximateCreationDateTime 1705312800 + 1), not
        // from the clock; a completed record keeps no lock expiry.
        assert_eq!(stored.ttl, 1_705_312_801 + 86_400);
        assert_eq!(stored.in_progress_expiry, None);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reaction_error_releases_the_lock_so_the_retry_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (_state, adapters) = embedded(dir.path());
    let counter = Counter::new(1);
    let worker = worker(vec![Box::new(counter.clone())], adapters.clone());
    let (first, _) = run(&worker, &[user_insert(1, "u1")]).await;
    let failure = first.failure.expect("first attempt fails");
    assert!(failure.retryable);
    let key = string_key(&[("idempotencyKey", "counter#event-1")]);
    assert!(
        adapters
            .tables
            .get(&config().idempotency.table, &key)
            .await
            .unwrap()
            .is_none(),
        "lock released"
    );

    let (second, _) = run(&worker, &[user_insert(1, "u1")]).await;
    assert!(second.failure.is_none());
    assert_eq!(counter.runs.load(Ordering::SeqCst), 2);
    assert_eq!(
        counter_value(adapters.tables.as_ref()),
        Some(AttributeValue::N("1".into()))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_writes_are_batched_and_a_failed_flush_fails_the_earliest_unstored_record() {
    let dir = tempfile::tempdir().unwrap();
    let (state, mut adapters) = embedded(dir.path());
    let faults = Arc::new(Faults::default());
    adapters.tables = faulty_tables(adapters.tables.clone(), faults.clone());
    let worker = wiring::worker(&config(), adapters);
    let records: Vec<_> = (1..=30).map(|i| user_insert(i, &format!("u{i}"))).collect();

    faults.fail_next("BatchWriteItem", "", 1);
    let (outcome, reports) = run(&worker, &records).await;
    let failure = outcome.failure.expect("the flush fails");
    assert_eq!(
        failure.sequence_number,
        format!("{:021}", 1),
        "the first record's audit write was in the failed flush"
    );
    assert_eq!(failure.stage, "audit-log");
    assert_eq!(outcome.settled, 0);
    assert_eq!(reports.len(), 1);
    assert!(audit_items(&state).is_empty());

    let (retry, _) = run(&worker, &records).await;
    assert!(retry.failure.is_none());
    assert_eq!(audit_items(&state).len(), 30);
    // 30 audit items in two BatchWriteItem calls (25 + 5), not 30 puts.
    assert_eq!(
        retry.requests,
        [("BatchWriteItem", 2)].into_iter().collect()
    );
}

/// Moves the clock an hour on when it runs on `event-2`: the invocation's time runs out there.
struct SlowOn(Arc<ManualClock>);

#[async_trait]
impl Reaction for SlowOn {
    fn name(&self) -> &'static str {
        "slow-on"
    }
    fn idempotency(&self) -> Idempotency {
        Idempotency::ByConstruction
    }
    fn applies(&self, _: &Change) -> bool {
        true
    }
    async fn react(&self, change: &Change, _: Ports<'_>) -> Result<Reacted, ReactionError> {
        if change.event_id == "event-2" {
            *self.0 .0.lock().unwrap() += chrono::Duration::hours(1);
        }
        Ok(Reacted::default())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn records_are_not_started_past_the_stop_time_and_lambda_retries_from_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let (state, mut adapters) = embedded(dir.path());
    let start = chrono::Utc::now();
    // The batch reads the clock before each record.
    let clock = Arc::new(ManualClock::at(start));
    adapters.clock = clock.clone();
    let mut reactions = wiring::reactions(&config());
    reactions.push(Box::new(SlowOn(clock)));
    let worker = worker(reactions, adapters);
    let records = [
        user_insert(1, "u1"),
        user_insert(2, "u2"),
        user_insert(3, "u3"),
    ];
    let mut reports = Vec::new();
    let outcome = worker
        .process_batch(
            &decode(&records),
            BatchOptions {
                deadline: None,
                apply_own_change: true,
                stop_before: Some(start + chrono::Duration::minutes(1)),
            },
            &mut |r| reports.push(r.clone()),
        )
        .await;
    let failure = outcome.failure.expect("the third record is not started");
    assert_eq!(failure.sequence_number, format!("{:021}", 3));
    assert_eq!(failure.stage, "deadline");
    assert!(failure.retryable);
    assert_eq!(outcome.settled, 2, "the first two are done");
    assert_eq!(audit_items(&state).len(), 2, "and only they were audited");
    assert_eq!(
        serde_json::to_value(&outcome.response).unwrap(),
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": format!("{:021}", 3)}]})
    );
}

/// A recomputing reaction: coalesces per item key and counts its runs.
#[derive(Clone, Default)]
struct Recount(Arc<AtomicUsize>);

#[async_trait]
impl Reaction for Recount {
    fn name(&self) -> &'static str {
        "recount"
    }
    fn idempotency(&self) -> Idempotency {
        Idempotency::Recomputed
    }
    fn applies(&self, _: &Change) -> bool {
        true
    }
    fn coalesce_key(&self, change: &Change) -> Option<String> {
        handlers::item::get_str(&change.keys, "PK").map(str::to_string)
    }
    async fn react(&self, change: &Change, _: Ports<'_>) -> Result<Reacted, ReactionError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Reacted {
            result: serde_json::json!({ "recounted": change.event_id }),
            deferred_writes: vec![],
        })
    }
}

fn outcomes(reports: &[RecordReport], reaction: usize) -> Vec<Outcome> {
    reports
        .iter()
        .map(|r| r.reactions[reaction].outcome.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recomputing_reaction_is_noted_done_and_skipped_when_its_records_come_again() {
    let dir = tempfile::tempdir().unwrap();
    let (_state, adapters) = embedded(dir.path());
    let recount = Recount::default();
    let worker = worker(vec![Box::new(recount.clone())], adapters.clone());
    let records = [
        user_insert(1, "a"),
        user_insert(2, "a"),
        user_insert(3, "b"),
    ];

    let (first, reports) = run(&worker, &records).await;
    assert!(first.failure.is_none());
    assert_eq!(recount.0.load(Ordering::SeqCst), 2, "once per key");
    let done = |event: &str| Outcome::Done {
        result: serde_json::json!({ "recounted": event }),
    };
    assert_eq!(
        outcomes(&reports, 0),
        [
            Outcome::Coalesced { into_record: 1 },
            done("event-2"),
            done("event-3")
        ]
    );

    let (again, reports) = run(&worker, &records).await;
    assert!(again.failure.is_none());
    assert_eq!(recount.0.load(Ordering::SeqCst), 2, "nothing recomputed");
    assert_eq!(again.requests, [("BatchGetItem", 1)].into_iter().collect());
    let skipped = |result| Outcome::DuplicateSkipped { result };
    assert_eq!(
        outcomes(&reports, 0),
        [
            skipped(serde_json::json!({ "coalescedInto": "event-2" })),
            skipped(serde_json::json!({ "recounted": "event-2" })),
            skipped(serde_json::json!({ "recounted": "event-3" })),
        ]
    );

    // Without the batch check (the embedded replay's setting) the notes are not consulted.
    let mut idempotency = config().idempotency;
    idempotency.completion_notes = false;
    let unchecked = Worker::new(vec![Box::new(recount.clone())], adapters, idempotency);
    run(&unchecked, &records).await;
    assert_eq!(recount.0.load(Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_that_failed_is_not_noted_so_its_retry_recomputes() {
    let dir = tempfile::tempdir().unwrap();
    let (_state, adapters) = embedded(dir.path());
    let recount = Recount::default();
    let failing = worker(
        vec![Box::new(recount.clone()), Box::new(FailOn("event-2"))],
        adapters.clone(),
    );
    let records = [
        user_insert(1, "a"),
        user_insert(2, "b"),
        user_insert(3, "c"),
    ];
    let (first, _) = run(&failing, &records).await;
    assert_eq!(first.failure.expect("record 2 fails").index, 1);
    assert_eq!(recount.0.load(Ordering::SeqCst), 2, "records 1 and 2");

    // Lambda's retry starts at record 2; a full re-delivery would also bring record 1.
    let healthy = worker(vec![Box::new(recount.clone())], adapters);
    let (retry, reports) = run(&healthy, &records).await;
    assert!(retry.failure.is_none());
    assert!(matches!(
        outcomes(&reports, 0)[..],
        [
            Outcome::DuplicateSkipped { .. },
            Outcome::Done { .. },
            Outcome::Done { .. }
        ]
    ));
    assert_eq!(recount.0.load(Ordering::SeqCst), 4);
}

/// A guarded reaction that reads its own lock while it runs.
struct LockWatcher(Arc<std::sync::Mutex<Option<IdempotencyRecord>>>);

#[async_trait]
impl Reaction for LockWatcher {
    fn name(&self) -> &'static str {
        "watcher"
    }
    fn idempotency(&self) -> Idempotency {
        Idempotency::Guarded
    }
    fn applies(&self, _: &Change) -> bool {
        true
    }
    async fn react(&self, change: &Change, ports: Ports<'_>) -> Result<Reacted, ReactionError> {
        let key = string_key(&[("idempotencyKey", &format!("watcher#{}", change.event_id))]);
        let lock = ports
            .tables
            .get(&config().idempotency.table, &key)
            .await?
            .map(|item| from_item(item, "lock"))
            .transpose()?;
        *self.0.lock().unwrap() = lock;
        Ok(Reacted::default())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_expires_at_the_invocation_deadline_and_the_completed_record_keeps_no_clock() {
    let dir = tempfile::tempdir().unwrap();
    let (_state, adapters) = embedded(dir.path());
    let seen = Arc::new(std::sync::Mutex::new(None));
    let worker = worker(vec![Box::new(LockWatcher(seen.clone()))], adapters.clone());
    let deadline = chrono::Utc::now() + chrono::Duration::seconds(600);
    let outcome = worker
        .process_batch(
            &decode(&[user_insert(1, "u1")]),
            BatchOptions {
                deadline: Some(deadline),
                apply_own_change: true,
                stop_before: None,
            },
            &mut |_| {},
        )
        .await;
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    let lock = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the lock, read while running");
    assert_eq!(lock.status, LockStatus::InProgress);
    assert_eq!(lock.in_progress_expiry, Some(deadline.timestamp_millis()));
    let key = string_key(&[("idempotencyKey", "watcher#event-1")]);
    let done: IdempotencyRecord = from_item(
        adapters
            .tables
            .get(&config().idempotency.table, &key)
            .await
            .unwrap()
            .unwrap(),
        "completed",
    )
    .unwrap();
    assert_eq!(done.status, LockStatus::Completed);
    assert_eq!(done.in_progress_expiry, None);
    assert_eq!(done.ttl, 1_705_312_801 + 86_400, "from the record's time");
}

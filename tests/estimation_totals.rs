//! Estimation totals: the shipped scenarios replayed through the CLI, coalescing and its
//! request counts, no write when nothing changed, and optimistic locking under conflict.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use ddb_stream_worker::batch::intercept::{Intercept, Intercepted, TableCall};
use ddb_stream_worker::batch::{BatchOptions, Outcome};
use ddb_stream_worker::wiring;
use handlers::item::string_key;
use handlers::ports::{Query, Tables, Update};
use handlers::{AttributeValue, PortError};
use serde_json::Value;
use support::{cli, *};

/// Replay `files` (totals only: the audit log is switched off to count just its requests).
fn replay(state: &Path, files: &[&str]) -> Vec<Value> {
    cli::replay(state, files, &[("AUDITED_TABLES", "")])
}

fn items(state: &Path) -> Vec<Value> {
    cli::table(state, COST_TABLE)
}

fn item<'a>(items: &'a [Value], pk: &str, sk: &str) -> Option<&'a Value> {
    items
        .iter()
        .find(|i| i["PK"]["S"] == pk && i["SK"]["S"] == sk)
}

fn n(value: &Value) -> &str {
    value["N"]
        .as_str()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

fn totals_outcomes(lines: &[Value]) -> Vec<String> {
    cli::outcomes(lines, "estimation-totals")
}

#[test]
fn an_estimation_built_from_scratch_gets_its_summary_to_the_cent() {
    let dir = tempfile::tempdir().unwrap();
    let lines = replay(dir.path(), &["cost-platform-estimation-from-scratch.json"]);
    assert_eq!(
        totals_outcomes(&lines),
        [
            "not_applicable",
            "coalesced",
            "coalesced",
            "coalesced",
            "done"
        ],
        "METADATA itself is not a line item; four line items, one recomputation"
    );
    let all = items(dir.path());
    let metadata = item(&all, "ESTIMATION#est456", "METADATA").unwrap();
    let summary = &metadata["EstimationSummary"]["M"];
    let breakdown = &summary["CostBreakdown"]["M"];
    // 247.42, 45.00, 1800.00, 800.00 with the 10% buffer, Business Support, no discount.
    assert_eq!(
        [
            n(&breakdown["Compute"]),
            n(&breakdown["Storage"]),
            n(&breakdown["Database"]),
            n(&breakdown["Network"]),
            n(&breakdown["Security"]),
            n(&breakdown["Support"])
        ],
        ["272.16", "49.5", "1980", "880", "0", "318.17"]
    );
    assert_eq!(n(&summary["TotalMonthlyCost"]), "3499.83");
    assert_eq!(n(&summary["TotalAnnualCost"]), "41997.96");
    assert_eq!(n(&summary["LineItemCount"]), "4");
    assert_eq!(
        n(&metadata["SummaryVersion"]),
        "1",
        "one update, under the worker's own lock"
    );
    assert_eq!(
        n(&metadata["Version"]),
        "1",
        "the application's lock is the application's: never written"
    );
    let calculations: Vec<&Value> = all
        .iter()
        .filter(|i| i["SK"]["S"].as_str().unwrap().starts_with("CALCULATION#"))
        .collect();
    assert_eq!(calculations.len(), 1);
    let calculation = calculations[0];
    assert_eq!(calculation["GSI1PK"]["S"], "CALCULATION#est456");
    assert_eq!(n(&calculation["TotalMonthlyCost"]), "3499.83");
    let compute = &calculation["DetailedCosts"]["M"]["Compute"]["M"];
    assert_eq!(compute["Items"]["L"][0]["M"]["Name"]["S"], "Web Server 1");
    assert_eq!(n(&compute["Items"]["L"][0]["M"]["MonthlyCost"]), "247.42");
    assert_eq!(
        calculation["BusinessRulesApplied"]["M"]["BufferPercentage"]["N"],
        "10"
    );
}

#[test]
fn changes_renames_removals_and_a_deleted_estimation() {
    let dir = tempfile::tempdir().unwrap();
    replay(dir.path(), &["cost-platform-estimation-from-scratch.json"]);
    let changed = replay(
        dir.path(),
        &[
            "cost-platform-server-cost-changed.json",
            "cost-platform-storage-removed.json",
        ],
    );
    assert_eq!(totals_outcomes(&changed), ["done", "done"]);
    let renamed = replay(dir.path(), &["cost-platform-server-renamed.json"]);
    assert_eq!(
        totals_outcomes(&renamed),
        ["not_applicable"],
        "a rename changes no cost"
    );
    assert_eq!(
        renamed[renamed.len() - 2]["batch"]["requests"],
        serde_json::json!({}),
        "and costs no request"
    );

    let all = items(dir.path());
    let summary = &item(&all, "ESTIMATION#est456", "METADATA").unwrap()["EstimationSummary"]["M"];
    // Server 300.00 -> 330.00, storage gone, 1980 + 880; support 10% of 3190.
    assert_eq!(n(&summary["TotalMonthlyCost"]), "3509");
    assert_eq!(n(&summary["TotalAnnualCost"]), "42108");
    assert_eq!(n(&summary["CostBreakdown"]["M"]["Storage"]), "0");
    assert_eq!(
        all.iter()
            .filter(|i| i["SK"]["S"].as_str().unwrap().starts_with("CALCULATION#"))
            .count(),
        3
    );

    let deleted = replay(dir.path(), &["cost-platform-estimation-deleted.json"]);
    assert_eq!(
        totals_outcomes(&deleted),
        ["not_applicable", "coalesced", "done"]
    );
    let result = &deleted[2]["reactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["reaction"] == "estimation-totals")
        .unwrap()["result"];
    assert!(
        result["skipped"].as_str().unwrap().contains("deleted"),
        "{result}"
    );
    assert!(
        !items(dir.path())
            .iter()
            .any(|i| i["PK"]["S"] == "ESTIMATION#est777"),
        "nothing written for a deleted estimation"
    );
}

#[test]
fn fifty_changes_to_one_estimation_cost_one_recomputation() {
    let dir = tempfile::tempdir().unwrap();
    let lines = replay(dir.path(), &["cost-platform-fifty-changes.json"]);
    let outcomes = totals_outcomes(&lines);
    assert_eq!(outcomes.len(), 51);
    assert_eq!(outcomes[0], "not_applicable", "the METADATA insert");
    assert_eq!(outcomes.iter().filter(|o| *o == "done").count(), 1);
    assert_eq!(
        outcomes.last().unwrap(),
        "done",
        "at the estimation's last record"
    );
    // One partition read, one read of the optimization tips, one transaction.
    assert_eq!(
        lines[lines.len() - 2]["batch"]["requests"],
        serde_json::json!({"Query": 2, "TransactWriteItems": 1})
    );
    let all = items(dir.path());
    let summary = &item(&all, "ESTIMATION#est900", "METADATA").unwrap()["EstimationSummary"]["M"];
    // 25 servers repriced to 201.35 ... 225.35: sum 5333.75, buffered 5867.125 -> 5867.13.
    assert_eq!(n(&summary["CostBreakdown"]["M"]["Compute"]), "5867.13");
    assert_eq!(n(&summary["LineItemCount"]), "25");
}

#[test]
fn an_unchanged_summary_is_not_written_again() {
    let dir = tempfile::tempdir().unwrap();
    replay(
        dir.path(),
        &[
            "cost-platform-estimation-from-scratch.json",
            "cost-platform-server-cost-changed.json",
        ],
    );
    let before = items(dir.path());
    let again = replay(dir.path(), &["cost-platform-server-cost-changed.json"]);
    assert_eq!(totals_outcomes(&again), ["done"]);
    assert!(
        again[0]["reactions"][1]["result"]["unchanged"].is_object(),
        "{}",
        again[0]
    );
    assert_eq!(
        again[1]["batch"]["requests"],
        serde_json::json!({"Query": 2}),
        "reads, no write"
    );
    assert_eq!(items(dir.path()), before);
}

/// Another writer bumps METADATA's `bump` attribute (the application's `Version`, or the
/// worker's own `SummaryVersion` as a second worker would) and edits the project name just
/// before each of the worker's first `conflicts` transactions.
struct ConcurrentEditor {
    conflicts: AtomicUsize,
    bump: &'static str,
}

#[async_trait]
impl Intercept for ConcurrentEditor {
    type Pending = ();

    async fn before(&self, inner: &dyn Tables, call: TableCall<'_>) -> Result<(), PortError> {
        let transaction = matches!(call, TableCall::TransactWrite(_));
        if transaction && self.conflicts.load(Ordering::SeqCst) > 0 {
            self.conflicts.fetch_sub(1, Ordering::SeqCst);
            let key = string_key(&[("PK", "ESTIMATION#est456"), ("SK", "METADATA")]);
            let bump = Update::default()
                .add(self.bump, AttributeValue::N("1".into()))
                .set("ProjectName", AttributeValue::S("Edited meanwhile".into()));
            inner.update(COST_TABLE, &key, &bump, None).await?;
        }
        Ok(())
    }
}

/// The estimation's METADATA item as stored.
async fn metadata_of(tables: &dyn Tables) -> handlers::Item {
    tables
        .get(
            COST_TABLE,
            &string_key(&[("PK", "ESTIMATION#est456"), ("SK", "METADATA")]),
        )
        .await
        .unwrap()
        .unwrap()
}

async fn run_with_conflicts(
    conflicts: usize,
    bump: &'static str,
) -> (
    ddb_stream_worker::batch::BatchOutcome,
    Vec<Outcome>,
    Arc<dyn Tables>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let (_state, mut adapters) = embedded(dir.path());
    let raw = adapters.tables.clone();
    adapters.tables = Arc::new(Intercepted::new(
        raw.clone(),
        ConcurrentEditor {
            conflicts: AtomicUsize::new(conflicts),
            bump,
        },
    ));
    let config = ddb_stream_worker::wiring::config::Config::from_lookup(|name| {
        (name == "AUDITED_TABLES").then(String::new)
    })
    .unwrap();
    let worker = wiring::worker(&config, adapters);
    let text =
        std::fs::read_to_string(cli::event("cost-platform-estimation-from-scratch.json")).unwrap();
    let records = ddb_stream_worker::decode::decode_event(&text, "scratch", None).unwrap();
    let mut outcomes = Vec::new();
    let outcome = worker
        .process_batch(
            &records,
            BatchOptions {
                deadline: None,
                apply_own_change: true,
                stop_before: None,
            },
            &mut |r| {
                outcomes.extend(
                    r.reactions
                        .iter()
                        .filter(|x| x.reaction == "estimation-totals")
                        .map(|x| x.outcome.clone()),
                )
            },
        )
        .await;
    (outcome, outcomes, raw, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_application_edit_meanwhile_neither_fails_nor_is_lost() {
    // The application edits METADATA under its own lock (Version) between the worker's read
    // and its write: the worker's write does not depend on Version, so it goes through first
    // time, and the application's edit stays.
    let (outcome, _, tables, _dir) = run_with_conflicts(1, "Version").await;
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    assert_eq!(outcome.requests.get("TransactWriteItems"), Some(&1));
    let metadata = metadata_of(tables.as_ref()).await;
    assert_eq!(
        metadata["Version"],
        AttributeValue::N("2".into()),
        "1, then the application's 2"
    );
    assert_eq!(
        metadata["ProjectName"],
        AttributeValue::S("Edited meanwhile".into())
    );
    assert_eq!(metadata["SummaryVersion"], AttributeValue::N("1".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_summary_conflict_is_retried_with_a_fresh_read() {
    let (outcome, outcomes, tables, _dir) = run_with_conflicts(1, "SummaryVersion").await;
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    assert!(matches!(outcomes.last(), Some(Outcome::Done { .. })));
    // Read, conflict, read again, write: two partition queries and two transactions.
    assert_eq!(outcome.requests.get("TransactWriteItems"), Some(&2));
    assert_eq!(
        outcome.requests.get("Query"),
        Some(&3),
        "two partition reads and one tips read"
    );
    let metadata = metadata_of(tables.as_ref()).await;
    assert_eq!(
        metadata["SummaryVersion"],
        AttributeValue::N("2".into()),
        "the other writer's 1, then ours"
    );
    assert_eq!(
        metadata["ProjectName"],
        AttributeValue::S("Edited meanwhile".into()),
        "the other writer's change survives"
    );
    assert!(metadata.contains_key("EstimationSummary"));
}

#[tokio::test(flavor = "multi_thread")]
async fn conflicts_that_never_end_fail_the_record_for_a_retry() {
    let (outcome, _, tables, _dir) = run_with_conflicts(100, "SummaryVersion").await;
    let failure = outcome.failure.expect("gives up after bounded retries");
    assert!(failure.retryable);
    assert_eq!(failure.stage, "estimation-totals");
    assert!(
        failure.message.contains("SummaryVersion conflicts"),
        "{}",
        failure.message
    );
    assert_eq!(outcome.requests.get("TransactWriteItems"), Some(&4));
    let metadata = metadata_of(tables.as_ref()).await;
    assert!(
        !metadata.contains_key("EstimationSummary"),
        "nothing half-written"
    );
    let calculations = tables
        .query(&Query {
            table: COST_TABLE.into(),
            index: None,
            partition: ("PK".into(), AttributeValue::S("ESTIMATION#est456".into())),
            sort_key: Some((
                "SK".into(),
                handlers::ports::SortKey::BeginsWith("CALCULATION#".into()),
            )),
            ascending: true,
        })
        .await
        .unwrap();
    assert!(
        calculations.is_empty(),
        "the calculation record is in the same transaction"
    );
}

#[test]
fn a_rename_after_a_cost_change_in_the_same_batch_does_not_swallow_the_recomputation() {
    let dir = tempfile::tempdir().unwrap();
    replay(dir.path(), &["cost-platform-estimation-from-scratch.json"]);
    let read = |name: &str| -> Vec<Value> {
        let text = std::fs::read_to_string(cli::event(name)).unwrap();
        serde_json::from_str::<Value>(&text).unwrap()["Records"]
            .as_array()
            .unwrap()
            .clone()
    };
    let mut records = read("cost-platform-server-cost-changed.json");
    records.extend(read("cost-platform-server-renamed.json"));
    let file = dir.path().join("change-then-rename.json");
    std::fs::write(&file, serde_json::json!({ "Records": records }).to_string()).unwrap();
    let output = cli::worker()
        .env("AUDITED_TABLES", "")
        .arg("replay")
        .arg(&file)
        .arg("--state")
        .arg(dir.path())
        .arg("--json")
        .output()
        .unwrap();
    assert!(output.status.success());
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        totals_outcomes(&lines),
        ["done", "not_applicable"],
        "the rename does not apply, so it cannot absorb the change"
    );
    let all = items(dir.path());
    let summary = &item(&all, "ESTIMATION#est456", "METADATA").unwrap()["EstimationSummary"]["M"];
    assert_eq!(
        n(&summary["CostBreakdown"]["M"]["Compute"]),
        "330",
        "300.00 with the buffer"
    );
}

//! `reconcile ratings` and `reconcile threads`: what the incremental aggregates cannot see from
//! the stream (figures changed behind the worker's back, items written without a stream
//! record) is recomputed from the source items and repaired, under the same version conditions.

mod support;

use std::path::Path;
use std::process::Output;

use handlers::{AttributeValue, Item};
use serde_json::{json, Value};
use support::cli::{self, table};

const PROVIDERS: &str = "marketplace-dev-providers-table";

fn provider(state: &Path, id: &str) -> Value {
    table(state, PROVIDERS)
        .into_iter()
        .find(|p| p["providerId"]["S"] == id)
        .unwrap_or_else(|| panic!("no provider {id}"))
}

fn figures(state: &Path, id: &str) -> [String; 3] {
    let p = provider(state, id);
    ["ratingSum", "reviewCount", "rating"].map(|name| p[name]["N"].as_str().unwrap().to_string())
}

fn reconcile(state: &Path, args: &[&str]) -> Output {
    cli::worker()
        .args(["reconcile", "ratings", "--state"])
        .arg(state)
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes to the embedded tables directly, as an application (or a bulk import) would, with
/// no stream record for the worker.
fn write_behind_the_worker(state: &Path, table: &str, item: Item) {
    let (embedded, adapters) = support::embedded(state);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(adapters.tables.put(table, item, None))
        .unwrap();
    embedded.sync().unwrap();
}

fn item(value: Value) -> Item {
    serde_json::from_value(value).unwrap()
}

#[test]
fn an_aggregate_changed_behind_the_workers_back_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    cli::replay(
        state,
        &["marketplace-reviews", "marketplace-review-moved"],
        &[],
    );
    let exact = figures(state, "prov-plumb");
    assert_eq!(exact, ["10.5", "3", "3.5"]);

    // Someone writes a wrong aggregate, with a newer version.
    let mut tampered = item(provider(state, "prov-plumb"));
    let n = |v: &str| AttributeValue::N(v.into());
    tampered.insert("ratingSum".into(), n("1"));
    tampered.insert("rating".into(), n("1"));
    tampered.insert("aggregateVersion".into(), n("9"));
    write_behind_the_worker(state, PROVIDERS, tampered);

    let output = reconcile(state, &["--all"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        stdout.contains(
            "prov-plumb: rating 1 ratingSum 1 reviewCount 3; its reviews say rating 3.5 ratingSum 10.5 reviewCount 3: fixed\n"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("prov-elec: as its reviews say"), "{stdout}");
    assert!(text(&output.stderr).contains("2 reconciled: 1 fixed, 0 failed, 1 already right"));
    assert_eq!(figures(state, "prov-plumb"), exact);
    // Written on condition of the version it read: one more than the tampered one.
    assert_eq!(
        provider(state, "prov-plumb")["aggregateVersion"],
        json!({"N": "10"})
    );

    // Nothing left to repair; and the reviews that follow count from the repaired figures.
    let again = reconcile(state, &["--provider", "prov-plumb", "--json"]);
    let line: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(line["fixedAggregate"], false, "{line}");
    assert_eq!(line["fixedState"], 0, "{line}");
    cli::replay(state, &["marketplace-duplicate-review"], &[]);
    assert_eq!(figures(state, "prov-plumb"), ["6.5", "3", "2.17"]);
}

#[test]
fn a_review_written_without_a_stream_record_is_counted_and_can_then_be_removed() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    cli::replay(state, &["marketplace-reviews"], &[]);
    let review = json!({
        "reviewId": {"S": "imported-1"}, "bookingId": {"S": "bk-import"},
        "providerId": {"S": "prov-elec"}, "rating": {"N": "4.5"},
        "createdAt": {"S": "2025-10-01T00:00:00Z"},
    });
    write_behind_the_worker(state, "marketplace-dev-reviews-table", item(review.clone()));
    assert_eq!(figures(state, "prov-elec"), ["3.5", "1", "3.5"]);

    let output = reconcile(state, &["--provider", "prov-elec"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains(
            "its reviews say rating 4 ratingSum 8 reviewCount 2: fixed, and 1 state item(s)"
        ),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(figures(state, "prov-elec"), ["8", "2", "4"]);

    // Its removal now comes through the stream: the rebuilt slot knows what to take out.
    let remove = support::record_in(
        "marketplace-dev-reviews-table",
        9_000,
        "REMOVE",
        json!({"reviewId": {"S": "imported-1"}}),
        None,
        Some(review),
    );
    let (code, lines, log) = cli::replay_records(&dir.path().join("remove.json"), state, &[remove]);
    assert_eq!(code, 0, "{log}");
    let replayed = serde_json::to_string(&lines).unwrap();
    assert!(!replayed.contains("notInState"), "{replayed}");
    assert_eq!(figures(state, "prov-elec"), ["3.5", "1", "3.5"]);
}

#[test]
fn a_thread_changed_behind_the_workers_back_and_an_imported_message_are_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    cli::replay(state, &["acs-conversation-messages"], &[]);
    let thread = || {
        table(state, "acsd2p-dev-Threads")
            .into_iter()
            .next()
            .expect("the thread")
    };
    let before = thread();
    assert_eq!(before["message_count"]["N"], "2");
    let conversation = before["conversation_id"]["S"].as_str().unwrap().to_string();

    // A message imported without a stream record, from a new address, the latest; and the
    // count changed by hand.
    let message = json!({
        "conversation_id": {"S": conversation}, "response_id": {"S": "imported-1"},
        "sender_email": {"S": "late@example.com"}, "recipient_email": {"S": "support@example.com"},
        "timestamp": {"S": "2025-11-18T08:00:00Z"},
    });
    write_behind_the_worker(state, "acsd2p-dev-Conversations", item(message));
    let mut tampered = item(before.clone());
    tampered.insert("message_count".into(), AttributeValue::N("7".into()));
    write_behind_the_worker(state, "acsd2p-dev-Threads", tampered);

    let output = reconcile_threads(state, &["--all", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let line: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(line["fixedAggregate"], true, "{line}");
    assert_eq!(line["stored"]["message_count"], "7", "{line}");
    assert_eq!(line["computed"]["message_count"], "3", "{line}");
    let after = thread();
    assert_eq!(after["message_count"]["N"], "3");
    assert_eq!(after["last_message_at"]["S"], "2025-11-18T08:00:00Z");
    let participants: Vec<&str> = after["participants"]["L"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["S"].as_str().unwrap())
        .collect();
    assert_eq!(
        participants[participants.len() - 2..],
        ["late@example.com", "support@example.com"],
        "the imported message's sender and recipient, last: {participants:?}"
    );

    // Again: nothing to fix.
    let again = reconcile_threads(state, &["--conversation", &conversation]);
    assert!(
        text(&again.stdout).contains("as its messages say"),
        "{}",
        text(&again.stdout)
    );
}

fn reconcile_threads(state: &Path, args: &[&str]) -> Output {
    cli::worker()
        .args(["reconcile", "threads", "--state"])
        .arg(state)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn without_providers_or_state_it_says_what_to_give() {
    let dir = tempfile::tempdir().unwrap();
    let output = reconcile(&dir.path().join("none"), &["--all"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("no state at"),
        "{}",
        text(&output.stderr)
    );
    let output = reconcile(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("--provider"),
        "{}",
        text(&output.stderr)
    );
}

/// An id holds whatever an application wrote: its line of the report is one line, its control
/// characters escaped, so it can neither forge a line nor repaint the terminal.
#[test]
fn an_id_with_control_characters_is_reported_escaped_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    cli::replay(state, &["marketplace-reviews"], &[]);
    let output = reconcile(state, &["--provider", "p\u{1b}[2J\nprov-plumb: fixed"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("p\\u{1b}[2J\\u{a}prov-plumb: fixed: "),
        "{stdout}"
    );
}

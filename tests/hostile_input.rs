//! Hostile and odd real-world input, replayed as a user would (issue 29): each test here is a
//! defect the previous main had, and each asserts what a user checks afterwards: the exit
//! status, the state directory, the outbox and the output.

mod support;

use std::path::Path;

use serde_json::{json, Value};
use support::cli::{event, replay_file, replay_records, table, worker};
use support::{reaction, record, record_in, user_insert};

const REVIEWS: &str = "marketplace-dev-reviews-table";
const PROVIDERS: &str = "marketplace-dev-providers-table";

fn review(seq: u64, id: &str, rating: &str) -> Value {
    let keys = json!({"reviewId": {"S": id}});
    let mut image = keys.clone();
    image["providerId"] = json!({"S": "prov-1"});
    image["bookingId"] = json!({"S": format!("bk-{id}")});
    image["rating"] = json!({"N": rating});
    image["createdAt"] = json!({"S": "2025-01-01T00:00:00Z"});
    record_in(REVIEWS, seq, "INSERT", keys, Some(image), None)
}

fn provider_figures(state: &Path) -> (String, String) {
    let providers = table(state, PROVIDERS);
    let p = providers
        .iter()
        .find(|p| p["providerId"]["S"] == "prov-1")
        .cloned()
        .unwrap_or_default();
    let n = |name: &str| p[name]["N"].as_str().unwrap_or("none").to_string();
    (n("ratingSum"), n("reviewCount"))
}

/// The INSERT of estimation `id`'s METADATA, and of its server `server` with `attributes`.
fn metadata(seq: u64, id: &str) -> Value {
    let keys = json!({"PK": {"S": format!("ESTIMATION#{id}")}, "SK": {"S": "METADATA"}});
    let mut image = keys.clone();
    image["EstimationId"] = json!({"S": id});
    record(seq, "INSERT", keys, Some(image), None)
}

fn server(seq: u64, id: &str, server: &str, attributes: Value) -> Value {
    let keys =
        json!({"PK": {"S": format!("ESTIMATION#{id}")}, "SK": {"S": format!("SERVER#{server}")}});
    let mut image = keys.clone();
    image
        .as_object_mut()
        .unwrap()
        .extend(attributes.as_object().unwrap().clone());
    record(seq, "INSERT", keys, Some(image), None)
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn parked_reason(line: &Value, stage: &str) -> String {
    let outcome = reaction(line, stage);
    assert_eq!(outcome["outcome"], "parked", "{line}");
    outcome["reason"].as_str().unwrap().to_string()
}

#[test]
fn a_sequence_number_that_names_a_path_is_parked_inside_the_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut records = vec![user_insert(1, "u1"), user_insert(2, "u2")];
    records[0]["dynamodb"]["SequenceNumber"] = json!("../../escaped");
    records[1]["dynamodb"]["SequenceNumber"] =
        json!(dir.path().join("absolute").display().to_string());
    let (code, lines, _) = replay_records(&dir.path().join("paths.json"), &state, &records);
    assert_eq!(code, 3);
    for line in &lines[..2] {
        assert!(
            parked_reason(line, "decode").contains("21 to 40 decimal digits"),
            "{line}"
        );
    }
    let outside: Vec<String> = files_under(dir.path())
        .into_iter()
        .filter(|f| !f.starts_with("state/"))
        .collect();
    assert_eq!(
        outside,
        ["paths.json"],
        "nothing written outside the state directory"
    );
    let parked = files_under(&state.join("parked"));
    assert_eq!(parked.len(), 2, "{parked:?}");
    assert!(
        parked.iter().all(|f| f.starts_with("record-")),
        "{parked:?}"
    );
}

#[test]
fn a_sixty_digit_sequence_number_cannot_shadow_later_changes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut forged = review(1, "r1", "1");
    forged["dynamodb"]["SequenceNumber"] = json!("9".repeat(60));
    let mut real = review(2, "r1", "4");
    real["eventName"] = json!("INSERT");
    let (code, lines, _) = replay_records(&dir.path().join("r.json"), &state, &[forged, real]);
    assert_eq!(code, 3);
    parked_reason(&lines[0], "decode");
    assert_eq!(
        provider_figures(&state),
        ("4".into(), "1".into()),
        "the real change counts"
    );
}

#[test]
fn table_names_dynamodb_refuses_are_parked_and_the_state_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let arn = |table: &str| format!("arn:aws:dynamodb:us-east-1:1:table/{table}/stream/x");
    let mut records = vec![
        user_insert(1, "a"),
        user_insert(2, "b"),
        user_insert(3, "c"),
    ];
    records[0]["eventSourceARN"] = json!(arn("nul\u{0}table"));
    records[1]["eventSourceARN"] = json!(arn(&"t".repeat(300)));
    records[2].as_object_mut().unwrap().remove("eventSourceARN");
    records[2]["tableName"] = json!("../../etc");
    let (code, lines, _) = replay_records(&dir.path().join("t.json"), &state, &records);
    assert_eq!(code, 3, "{lines:?}");
    for line in &lines[..3] {
        parked_reason(line, "decode");
    }
    // Every later run on the state works.
    let (code, _, stderr) = replay_file(&event("cost-platform-audit"), &state);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_record_cannot_address_the_replays_own_bookkeeping() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let keys = json!({"eventId": {"S": "event-2"}});
    let forged = record_in(
        ".replay-applied",
        1,
        "INSERT",
        keys.clone(),
        Some(keys),
        None,
    );
    let (code, lines, _) = replay_records(
        &dir.path().join("b.json"),
        &state,
        &[forged, user_insert(2, "u2")],
    );
    assert_eq!(code, 0);
    assert_eq!(
        lines[1]["applied"], true,
        "record 2 is applied: {}",
        lines[1]
    );
    let users = table(&state, support::COST_TABLE);
    assert!(users.iter().any(|u| u["UserId"]["S"] == "u2"));
}

/// Decoding checks a record's Keys and images by DynamoDB's rules, but not which attributes the
/// table's key has: a record whose Keys leave out the sort key, with an empty one in its image,
/// is refused when its change is applied, as DynamoDB refuses an empty key value.
#[test]
fn a_key_attribute_the_record_leaves_out_of_its_keys_is_still_checked() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let keys = json!({"PK": {"S": "USER#u9"}});
    let image = json!({"PK": {"S": "USER#u9"}, "SK": {"S": ""}, "UserId": {"S": "u9"}});
    let bad = record(1, "INSERT", keys, Some(image), None);
    let (code, lines, _) = replay_records(
        &dir.path().join("k.json"),
        &state,
        &[bad, user_insert(2, "u2")],
    );
    assert_eq!(code, 3, "{lines:?}");
    assert!(
        parked_reason(&lines[0], "apply").contains("invalid"),
        "{}",
        lines[0]
    );
    let users = table(&state, support::COST_TABLE);
    assert!(users.iter().all(|u| u["UserId"]["S"] != "u9"), "{users:?}");
    assert!(users.iter().any(|u| u["UserId"]["S"] == "u2"));
}

#[test]
fn two_records_sharing_an_event_id_lose_neither() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut second = user_insert(2, "u2");
    second["eventID"] = json!("event-1");
    let (code, lines, _) = replay_records(
        &dir.path().join("d.json"),
        &state,
        &[user_insert(1, "u1"), second],
    );
    assert_eq!(code, 3);
    let reason = parked_reason(&lines[1], "decode");
    assert!(reason.contains("already names record 0"), "{reason}");
    let location = reaction(&lines[1], "decode")["location"]
        .as_str()
        .unwrap()
        .to_string();
    let parked: Value = serde_json::from_str(&std::fs::read_to_string(location).unwrap()).unwrap();
    assert_eq!(
        parked["Records"][0]["dynamodb"]["NewImage"]["UserId"]["S"],
        "u2"
    );

    // Across runs too: a new file reusing an applied eventID is refused, not skipped.
    let mut reused = user_insert(9, "u9");
    reused["eventID"] = json!("event-1");
    let (code, lines, _) = replay_records(&dir.path().join("e.json"), &state, &[reused]);
    assert_eq!(code, 3);
    assert!(parked_reason(&lines[0], "apply").contains("applied before for another record"));
}

#[test]
fn a_record_repeated_in_one_fresh_replay_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("twice.json");
    let once = user_insert(1, "u1");
    std::fs::write(
        &file,
        json!({ "Records": [once.clone(), once] }).to_string(),
    )
    .unwrap();
    let output = worker()
        .args(["replay", "--state"])
        .arg(dir.path().join("state"))
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("already applied earlier in this run"),
        "{stdout}"
    );
    assert!(!stdout.contains("by an earlier replay"), "{stdout}");
}

#[test]
fn a_record_without_a_creation_time_is_parked_not_dated_1970() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut undated = user_insert(1, "u1");
    undated["dynamodb"]
        .as_object_mut()
        .unwrap()
        .remove("ApproximateCreationDateTime");
    let (code, lines, _) = replay_records(&dir.path().join("u.json"), &state, &[undated]);
    assert_eq!(code, 3);
    assert!(parked_reason(&lines[0], "decode").contains("ApproximateCreationDateTime is missing"));
    let items = table(&state, support::COST_TABLE);
    assert!(
        !items.iter().any(|i| i.to_string().contains("1970")),
        "{items:?}"
    );
}

#[test]
fn json_that_is_not_an_event_says_what_it_is_and_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            json!({"requestContext": {"condition": "RetryAttemptsExhausted"}, "DDBStreamBatchInfo": {"shardId": "s"}}),
            "redrive --file",
        ),
        (user_insert(1, "u1"), "wrap it as {\"Records\""),
        (json!([user_insert(1, "u1")]), "a JSON array"),
    ];
    for (i, (value, says)) in cases.into_iter().enumerate() {
        let file = dir.path().join(format!("{i}.json"));
        std::fs::write(&file, value.to_string()).unwrap();
        let output = worker()
            .args(["replay", "--json", "--state"])
            .arg(dir.path().join("state"))
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(
            stderr.contains(says) && !stderr.contains("malformed JSON"),
            "{stderr}"
        );
        // --json: the error is JSON on stdout too.
        let stdout = String::from_utf8(output.stdout).unwrap();
        let error: Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(error["exitCode"], 2);
        assert!(error["error"].as_str().unwrap().contains(says), "{error}");
    }
}

#[test]
fn a_records_table_name_names_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut named = user_insert(1, "u1");
    named.as_object_mut().unwrap().remove("eventSourceARN");
    named["tableName"] = json!(support::COST_TABLE);
    let mut disagreeing = user_insert(2, "u2");
    disagreeing["tableName"] = json!("another-table");
    let (code, lines, _) =
        replay_records(&dir.path().join("n.json"), &state, &[named, disagreeing]);
    assert_eq!(code, 3);
    assert_eq!(lines[0]["table"], support::COST_TABLE);
    assert_eq!(reaction(&lines[0], "audit-log")["outcome"], "done");
    assert!(parked_reason(&lines[1], "decode").contains("tableName says \"another-table\""));
}

/// Costs within DynamoDB's range but beyond `rust_decimal` when summed (or multiplied)
/// panicked in pricing: exit 101, no batch response.
#[test]
fn costs_beyond_what_the_worker_computes_are_skipped_and_parked_without_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cost = |cost: &str| json!({"EstimatedMonthlyCost": {"N": cost}});
    let records = [
        metadata(1, "big"),
        server(2, "big", "a", cost("40000000000000000000000000000")),
        server(3, "big", "b", cost("40000000000000000000000000000")),
        server(4, "big", "c", cost("1E+28")),
        server(5, "big", "d", cost("100")),
    ];
    let (code, lines, _) = replay_records(&dir.path().join("c.json"), &state, &records);
    assert_eq!(code, 3, "{lines:?}");
    assert_eq!(lines.last().unwrap(), &json!({"batchItemFailures": []}));
    for line in &lines[1..4] {
        assert_eq!(
            reaction(line, "estimation-totals")["outcome"],
            "parked",
            "{line}"
        );
    }
    let summary = table(&state, support::COST_TABLE)
        .into_iter()
        .find(|i| i["SK"]["S"] == "METADATA")
        .unwrap();
    // Only the cost the worker can hold counts: 100 and the default 10 % buffer.
    let figures = &summary["EstimationSummary"]["M"];
    assert_eq!(figures["LineItemCount"]["N"], "1", "{summary}");
    assert_eq!(
        figures["CostBreakdown"]["M"]["Compute"]["N"], "110",
        "{summary}"
    );
}

#[test]
fn a_rating_just_above_five_is_not_counted_as_five() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let records = [
        review(1, "r1", "5.0000000000000000000000000000000000001"),
        review(2, "r2", "4"),
    ];
    let (code, lines, _) = replay_records(&dir.path().join("r.json"), &state, &records);
    assert_eq!(code, 3, "the bad rating's record is parked");
    assert_eq!(reaction(&lines[0], "provider-rating")["outcome"], "parked");
    assert_eq!(provider_figures(&state), ("4".into(), "1".into()));
}

/// An over-long id failed "File name too long", retryable: the batch stopped there on every
/// attempt.
#[test]
fn an_over_long_id_is_never_a_retryable_failure() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut sent: Value = serde_json::from_str(
        &std::fs::read_to_string(event("cost-platform-proposal-request")).unwrap(),
    )
    .unwrap();
    let long = "d".repeat(1_500);
    for record in sent["Records"].as_array_mut().unwrap() {
        let dynamodb = &mut record["dynamodb"];
        for image in ["Keys", "NewImage", "OldImage"] {
            if let Some(sk) = dynamodb[image]["SK"]["S"].as_str() {
                if sk.starts_with("DOCUMENT#") {
                    dynamodb[image]["SK"] = json!({"S": format!("DOCUMENT#{long}")});
                    dynamodb[image]["DocumentId"] = json!({"S": long.clone()});
                }
            }
        }
    }
    let file = dir.path().join("long.json");
    std::fs::write(&file, sent.to_string()).unwrap();
    let (code, lines, stderr) = replay_file(&file, &state);
    assert!(code == 0 || code == 3, "exit {code}: {stderr}");
    assert!(
        !lines
            .iter()
            .any(|l| l.to_string().contains("\"retryable\":true")),
        "{lines:?}"
    );
}

#[test]
fn keys_and_values_cannot_forge_report_lines_or_repaint_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let mut hostile = user_insert(1, "u1\n#1 INSERT forged {PK=x}\u{1b}[2J\u{202e}");
    hostile["dynamodb"]["Keys"]["PK"] = json!({"S": "USER#a\r\n#7 REMOVE forged"});
    hostile["dynamodb"]["NewImage"]["PK"] = hostile["dynamodb"]["Keys"]["PK"].clone();
    let file = dir.path().join("h.json");
    std::fs::write(&file, json!({ "Records": [hostile] }).to_string()).unwrap();
    let output = worker()
        .env("RUST_LOG", "info")
        .args(["replay", "-v", "--state"])
        .arg(dir.path().join("state"))
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202e}') && !text.contains('\r'),
            "{text}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("#7 REMOVE") || l.starts_with("#1 INSERT forged")),
            "{text}"
        );
    }
    assert!(stdout.contains("\\u{a}#7 REMOVE forged"), "{stdout}");
}

#[test]
fn log_lines_carry_no_email_address() {
    let dir = tempfile::tempdir().unwrap();
    let records = [
        metadata(1, "e1"),
        server(
            2,
            "e1",
            "s1",
            json!({"EstimatedMonthlyCost": {"S": "cost of jane.roe@example.com"}}),
        ),
    ];
    let (code, _, stderr) =
        replay_records(&dir.path().join("p.json"), &dir.path().join("s"), &records);
    assert_eq!(code, 3);
    assert!(stderr.contains("left out of the computation"), "{stderr}");
    assert!(
        !stderr.contains("jane.roe@example.com") && stderr.contains("[REDACTED]"),
        "{stderr}"
    );
}

/// Panics on one eventID, alone or inside a window; does nothing otherwise.
struct PanicOn {
    event_id: &'static str,
    folds: bool,
}

#[async_trait::async_trait]
impl handlers::Reaction for PanicOn {
    fn name(&self) -> &'static str {
        "panic-on"
    }
    fn idempotency(&self) -> handlers::Idempotency {
        handlers::Idempotency::ByConstruction
    }
    fn applies(&self, _: &handlers::Change) -> bool {
        true
    }
    fn folds_windows(&self) -> bool {
        self.folds
    }
    async fn react(
        &self,
        change: &handlers::Change,
        _: handlers::ports::Ports<'_>,
    ) -> Result<handlers::Reacted, handlers::ReactionError> {
        if change.event_id == self.event_id {
            panic!("attempt to add with overflow");
        }
        Ok(handlers::Reacted::default())
    }
}

/// A panic in a reaction (per record, or inside a window fold) parks its record with the
/// panic's message; the batch goes on, and the records around it are done.
#[tokio::test]
async fn a_panicking_reaction_parks_its_record_and_the_batch_goes_on() {
    use ddb_stream_worker::batch::{BatchOptions, Outcome, Worker};
    for folds in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (_, adapters) = support::embedded(dir.path());
        let worker = Worker::new(
            vec![Box::new(PanicOn {
                event_id: "event-2",
                folds,
            })],
            adapters,
            support::config().idempotency,
        );
        let records = support::decode(&[
            user_insert(1, "a"),
            user_insert(2, "b"),
            user_insert(3, "c"),
        ]);
        let mut reports = Vec::new();
        let outcome = worker
            .process_batch(&records, BatchOptions::default(), &mut |r| reports.push(r))
            .await;
        assert!(
            outcome.failure.is_none(),
            "folds {folds}: {:?}",
            outcome.failure
        );
        assert!(outcome.response.batch_item_failures.is_empty());
        let outcomes: Vec<&Outcome> = reports.iter().map(|r| &r.reactions[0].outcome).collect();
        assert!(matches!(outcomes[0], Outcome::Done { .. }), "{outcomes:?}");
        assert!(matches!(outcomes[2], Outcome::Done { .. }), "{outcomes:?}");
        match outcomes[1] {
            Outcome::Parked {
                reason,
                panicked: true,
                ..
            } => {
                assert!(reason.contains("attempt to add with overflow"), "{reason}")
            }
            other => panic!("folds {folds}: {other:?}"),
        }
    }
}

/// The embedded tables refused nothing DynamoDB refuses: items over 400 KB, empty sets and
/// duplicate set members were stored.
#[tokio::test]
async fn the_embedded_tables_refuse_what_dynamodb_refuses() {
    use handlers::ports::Tables;
    let dir = tempfile::tempdir().unwrap();
    let (state, _) = support::embedded(dir.path());
    let item = |extra: Value| {
        let mut item = json!({"PK": {"S": "USER#x"}, "SK": {"S": "PROFILE"}});
        item.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value::<handlers::Item>(item).unwrap()
    };
    for extra in [
        json!({"Tags": {"SS": []}}),
        json!({"Tags": {"SS": ["a", "a"]}}),
        json!({"Scores": {"NS": ["1", "1.0"]}}),
        json!({"Bio": {"S": "x".repeat(410_000)}}),
    ] {
        let refused = state
            .put(support::COST_TABLE, item(extra.clone()), None)
            .await;
        match refused {
            Err(e @ handlers::PortError::Permanent { .. }) => {
                assert!(e.to_string().contains("invalid"), "{e}")
            }
            other => panic!("{extra}: {other:?}"),
        }
    }
    assert!(state
        .put(
            support::COST_TABLE,
            item(json!({"Tags": {"SS": ["a"]}})),
            None
        )
        .await
        .is_ok());
}

/// Found by the item-size benchmark: a line item named with 390 KB made the calculation
/// item, which copied the name, larger than DynamoDB stores, so the totals were never written.
#[test]
fn a_line_item_of_nearly_400_kb_still_gets_its_totals() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let name = "n".repeat(390 * 1024);
    let records = [
        metadata(1, "big"),
        server(
            2,
            "big",
            "s1",
            json!({"ServerName": {"S": name}, "EstimatedMonthlyCost": {"N": "100"}}),
        ),
    ];
    let (code, lines, stderr) = replay_records(&dir.path().join("big.json"), &state, &records);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        reaction(&lines[1], "estimation-totals")["outcome"],
        "done",
        "{}",
        lines[1]
    );
    let items = table(&state, support::COST_TABLE);
    let calculation = items
        .iter()
        .find(|i| {
            i["SK"]["S"]
                .as_str()
                .unwrap_or_default()
                .starts_with("CALCULATION#")
        })
        .expect("the calculation item");
    assert!(calculation.to_string().len() < 10_000);
}

/// A message of conversation `c-1` with `id`, sent at second `second`.
fn message(seq: u64, id: &str, second: u64) -> Value {
    let keys = json!({"conversation_id": {"S": "c-1"}, "response_id": {"S": id}});
    let mut image = keys.clone();
    image["sender_email"] = json!({"S": "a@x.example"});
    image["recipient_email"] = json!({"S": "b@x.example"});
    image["timestamp"] = json!({"S": format!("2026-12-03T10:00:{second:02}Z")});
    record_in(
        "acsd2p-dev-Conversations",
        seq,
        "INSERT",
        keys,
        Some(image),
        None,
    )
}

/// A response id that fits the messages table's sort key (1,024 bytes) but not the key of the
/// worker's state item built from it (`MESSAGE#` before it): DynamoDB refuses a sort key over
/// 1,024 bytes, and would refuse the window's whole transaction with it. That message fails
/// alone, for good; the others of its thread are counted.
#[test]
fn a_message_id_too_long_for_the_state_key_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let long = "r".repeat(1_020);
    let records = [
        message(1, "r-1", 1),
        message(2, &long, 2),
        message(3, "r-3", 3),
    ];
    let (code, lines, _) = replay_records(&dir.path().join("m.json"), &state, &records);
    assert_eq!(code, 3, "{lines:?}");
    let reason = parked_reason(&lines[1], "thread-stats");
    assert!(
        reason.contains("sort key is at most 1024 bytes; this one has 1028"),
        "{reason}"
    );
    for line in [&lines[0], &lines[2]] {
        assert_eq!(reaction(line, "thread-stats")["outcome"], "done", "{line}");
    }
    let counted = &reaction(&lines[2], "thread-stats")["result"]["c-1"];
    assert_eq!(counted["message_count"], "2", "{counted}");
}

//! One bad record costs only itself: a record a reaction can never succeed with (not
//! retryable) is parked whole, with the reaction, the reason and the time, and the batch goes
//! on; when parking itself fails, the record fails retryable, so nothing is dropped. On the
//! embedded default a parked record is an event file under `parked/`, which `replay` takes
//! again once the data is fixed.

mod support;

use std::path::Path;

use serde_json::{json, Value};
use support::cli::{self, table};
use support::record_in;

const CONVERSATIONS: &str = "acsd2p-dev-Conversations";
const THREADS: &str = "acsd2p-dev-Threads";

fn s(v: &str) -> Value {
    json!({ "S": v })
}

/// A message of `conversation`; `timestamp` as the application wrote it.
fn message(seq: u64, conversation: &str, timestamp: Value) -> Value {
    let keys = json!({"conversation_id": s(conversation), "response_id": s(&format!("m{seq}"))});
    let mut new = keys.clone();
    new["sender_email"] = s("a@example.com");
    new["timestamp"] = timestamp;
    record_in(CONVERSATIONS, seq, "INSERT", keys, Some(new), None)
}

/// The batch of three conversations whose middle one has a message the thread statistics
/// cannot read (a timestamp written as a boolean).
fn batch(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("messages.json");
    let records = [
        message(1, "conv-a", s("2026-01-01T00:00:01Z")),
        message(2, "conv-b", json!({"BOOL": true})),
        message(3, "conv-c", s("2026-01-01T00:00:03Z")),
    ];
    std::fs::write(&file, json!({ "Records": records }).to_string()).unwrap();
    file
}

fn message_count(state: &Path, conversation: &str) -> Option<String> {
    table(state, THREADS)
        .into_iter()
        .find(|t| t["conversation_id"]["S"] == conversation)
        .and_then(|t| t["message_count"]["N"].as_str().map(str::to_string))
}

#[test]
fn a_record_no_retry_can_fix_is_parked_whole_and_the_batch_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (code, lines, stderr) = cli::replay_file(&batch(dir.path()), &state);
    assert_eq!(code, 3, "completed, with parked records: {stderr}");
    assert_eq!(lines.last().unwrap(), &json!({"batchItemFailures": []}));
    assert_eq!(message_count(&state, "conv-a").as_deref(), Some("1"));
    assert_eq!(
        message_count(&state, "conv-c").as_deref(),
        Some("1"),
        "the record after it ran"
    );
    assert_eq!(message_count(&state, "conv-b"), None);

    let stats = support::reaction(&lines[1], "thread-stats");
    assert_eq!(stats["outcome"], "parked", "{stats}");
    let location = stats["location"].as_str().unwrap();
    assert!(
        stats["reason"].as_str().unwrap().contains("timestamp"),
        "{stats}"
    );

    // Kept whole: the record as Lambda delivers it, and why, by which reaction, when.
    let parked: Value = serde_json::from_str(&std::fs::read_to_string(location).unwrap()).unwrap();
    let record = &parked["Records"][0];
    assert_eq!(record["eventID"], "event-2");
    assert_eq!(record["eventName"], "INSERT");
    assert_eq!(record["dynamodb"]["SequenceNumber"], format!("{:021}", 2));
    assert_eq!(
        record["dynamodb"]["NewImage"]["timestamp"],
        json!({"BOOL": true})
    );
    assert_eq!(parked["parked"]["reaction"], "thread-stats");
    assert_eq!(parked["parked"]["table"], CONVERSATIONS);
    assert!(parked["parked"]["parkedAt"].is_string());

    // `state show` says what is parked.
    let shown = cli::worker()
        .args(["state", "show", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&shown.stderr).contains("# parked: 1 record(s)"));

    // The application fixes the message; the parked file, replayed, now goes through.
    let fix = dir.path().join("fix.json");
    let mut fixed = message(2, "conv-b", s("2026-01-01T00:00:02Z"));
    fixed["eventID"] = json!("fix-1");
    fixed["eventName"] = json!("MODIFY");
    fixed["dynamodb"]["SequenceNumber"] = json!(format!("{:021}", 4));
    fixed["dynamodb"]["OldImage"] = fixed["dynamodb"]["NewImage"].clone();
    fixed["dynamodb"]["OldImage"]["timestamp"] = json!({"BOOL": true});
    std::fs::write(&fix, json!({ "Records": [fixed] }).to_string()).unwrap();
    let (code, _, stderr) = cli::replay_file(&fix, &state);
    assert_eq!(code, 0, "{stderr}");
    let redrive = || {
        cli::worker()
            .args(["redrive", "--state"])
            .arg(&state)
            .output()
            .unwrap()
    };
    let output = redrive();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "redriven after the fix: {stderr}"
    );
    assert!(stderr.contains("1 record(s) went through"), "{stderr}");
    assert!(
        !Path::new(location).exists(),
        "done with, so no longer parked"
    );
    assert_eq!(message_count(&state, "conv-b").as_deref(), Some("1"));
    // Redriving again has nothing left to do, and changes nothing.
    let before = table(&state, THREADS);
    let output = redrive();
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stderr).contains("0 record(s) went through"));
    assert_eq!(table(&state, THREADS), before);
}

#[test]
fn when_parking_fails_the_record_fails_for_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    // `parked` is a file, so nothing can be parked under it.
    std::fs::write(state.join("parked"), "not a folder").unwrap();
    let (code, lines, stderr) = cli::replay_file(&batch(dir.path()), &state);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        lines.last().unwrap(),
        &json!({"batchItemFailures": [{"itemIdentifier": format!("{:021}", 2)}]})
    );
    let stats = support::reaction(&lines[1], "thread-stats");
    assert_eq!(stats["outcome"], "failed");
    assert_eq!(stats["retryable"], true, "{stats}");
    assert!(stats["reason"]
        .as_str()
        .unwrap()
        .contains("could not be parked"));
}

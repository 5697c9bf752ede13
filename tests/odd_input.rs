//! Input a stream can carry that the reactions did not plan for: every attribute type, numbers
//! at DynamoDB's 38-digit precision, tables nobody reacts to, eventNames that do not exist.
//! Each is replayed through the CLI as a user would.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::cli::{event, outcomes, replay, table, worker};

/// The first record of the odd-attribute scenario, changed by `edit`, written alone to
/// `dir/name`: how a person would hand-make a bad file.
fn edited_record(dir: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let mut sent: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(event("odd-attribute-types-and-unknown-table")).unwrap(),
    )
    .unwrap();
    let record = &mut sent["Records"][0];
    edit(record);
    let file = dir.join(name);
    std::fs::write(
        &file,
        serde_json::json!({ "Records": [record] }).to_string(),
    )
    .unwrap();
    file
}

/// Replays `file` on `state` and asserts the record was parked: exit 3, the report names its
/// sequence number and `why`, the batch went on (nothing reported to Lambda), and the parked
/// file holds the record as it was sent. Returns the parked file's event.
fn replay_parks(file: &Path, state: &Path, seq: &str, why: &str) -> serde_json::Value {
    let output = &replay_file(file, state);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stdout}{stderr}");
    assert!(
        stdout.contains(seq) && stdout.contains("PARKED") && stdout.contains(why),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"batch response: {"batchItemFailures":[]}"#),
        "{stdout}"
    );
    let parked = std::fs::read_dir(state.join("parked"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(seq))
        .unwrap_or_else(|| panic!("no parked file for {seq}"));
    serde_json::from_str(&std::fs::read_to_string(parked).unwrap()).unwrap()
}

/// `replay FILE --state STATE`, human output.
fn replay_file(file: &Path, state: &Path) -> Output {
    worker()
        .arg("replay")
        .arg(file)
        .arg("--state")
        .arg(state)
        .output()
        .unwrap()
}

#[test]
fn every_attribute_type_and_38_digit_numbers_are_kept_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let file = event("odd-attribute-types-and-unknown-table");
    let lines = replay(dir.path(), &["odd-attribute-types-and-unknown-table"], &[]);
    let sent: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let image = &sent["Records"][0]["dynamodb"]["NewImage"];

    // The item the record's own change produced equals the image, attribute for attribute.
    let items = table(dir.path(), "aws-cost-platform-enhanced");
    let user = items.iter().find(|i| i["SK"]["S"] == "PROFILE").unwrap();
    for name in [
        "Balance", "Big", "Tiny", "Avatar", "Tags", "Scores", "Blobs", "History", "Prefs",
        "Nothing",
    ] {
        assert_eq!(user[name], image[name], "{name}");
    }
    // The audit item records the numbers exactly too.
    let audit = items
        .iter()
        .find(|i| i["EntityType"]["S"] == "AuditLog")
        .unwrap();
    let changes = &audit["Details"]["M"]["Changes"]["M"];
    assert_eq!(
        changes["Big"]["M"]["New"]["S"],
        "99999999999999999999999999999999999999"
    );
    assert_eq!(
        changes["Tiny"]["M"]["New"]["S"],
        "-0.00000000000000000000000000000000000001"
    );
    assert_eq!(outcomes(&lines, "audit-log"), ["done", "not_applicable"]);

    // A table no reaction knows is not a failure: every reaction says not_applicable.
    let unknown = &lines[1];
    assert_eq!(unknown["table"], "some-other-team-table", "{unknown}");
    let reactions = unknown["reactions"].as_array().unwrap();
    assert!(!reactions.is_empty());
    assert!(
        reactions.iter().all(|r| r["outcome"] == "not_applicable"),
        "{unknown}"
    );
    assert_eq!(
        lines.last().unwrap(),
        &serde_json::json!({"batchItemFailures": []})
    );
    // ... and it says so in the log.
    let logged = worker()
        .env("RUST_LOG", "info")
        .arg("replay")
        .arg(&file)
        .arg("--state")
        .arg(dir.path().join("again"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&logged.stderr);
    assert!(
        stderr.contains("no reaction applies to this record; skipped")
            && stderr.contains("some-other-team-table"),
        "{stderr}"
    );
}

#[test]
fn an_event_name_that_does_not_exist_parks_its_record_by_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let parked = replay_parks(
        &event("odd-event-name"),
        dir.path(),
        "900000000000000000003",
        r#"unknown eventName "UPSERT": expected INSERT, MODIFY or REMOVE"#,
    );
    assert_eq!(parked["Records"][0]["eventName"], "UPSERT");
    assert_eq!(parked["parked"]["reaction"], "decode");
}

#[test]
fn a_record_that_lost_its_image_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let file = edited_record(dir.path(), "no-image.json", |record| {
        record["dynamodb"]
            .as_object_mut()
            .unwrap()
            .remove("NewImage");
    });
    let state = dir.path().join("state");
    replay_parks(
        &file,
        &state,
        "900000000000000000001",
        "INSERT record has no NewImage (StreamViewType NEW_AND_OLD_IMAGES)",
    );
}

#[test]
fn bytes_that_are_not_utf8_are_malformed_json_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read(event("odd-event-name")).unwrap();
    let at = text.windows(6).position(|w| w == b"\"John\"").unwrap() + 2;
    let mut bytes = text.clone();
    bytes.insert(at, 0xff);
    let file = dir.path().join("not-utf8.json");
    std::fs::write(&file, bytes).unwrap();
    let output = replay_file(&file, &dir.path().join("state"));
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = text[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    assert!(
        stderr.contains(&format!("not-utf8.json:{line}:")) && stderr.contains("malformed JSON"),
        "{stderr}"
    );
    assert!(!dir.path().join("state").exists(), "nothing applied");
}

#[test]
fn an_item_near_400_kb_is_kept_whole_and_audited_in_a_small_audit_item() {
    let dir = tempfile::tempdir().unwrap();
    // DynamoDB's item limit is 400 KB; this one is just under it.
    let bio = "é".repeat(199_000);
    let file = edited_record(dir.path(), "big-item.json", |record| {
        record["dynamodb"]["NewImage"]["Bio"] = serde_json::json!({ "S": bio });
    });
    let state = dir.path().join("state");
    let output = replay_file(&file, &state);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let items = table(&state, "aws-cost-platform-enhanced");
    let user = items.iter().find(|i| i["SK"]["S"] == "PROFILE").unwrap();
    assert_eq!(
        user["Bio"]["S"].as_str().unwrap().len(),
        398_000,
        "kept whole"
    );
    let audit = items
        .iter()
        .find(|i| i["EntityType"]["S"] == "AuditLog")
        .unwrap();
    let size = audit.to_string().len();
    assert!(size < 8_000, "the audit item is {size} bytes");
    let logged = audit["Details"]["M"]["Changes"]["M"]["Bio"]["M"]["New"]["S"]
        .as_str()
        .unwrap();
    assert!(logged.chars().count() <= 300, "{}", logged.len());
}

#[test]
fn a_number_dynamodb_could_not_hold_parks_its_record_naming_the_attribute() {
    let dir = tempfile::tempdir().unwrap();
    let file = edited_record(dir.path(), "bad-number.json", |record| {
        record["dynamodb"]["NewImage"]["Prefs"]["M"]["limit"] = serde_json::json!({ "N": "1e126" });
    });
    let state = dir.path().join("state");
    replay_parks(
        &file,
        &state,
        "900000000000000000001",
        r#"NewImage.Prefs.limit = "1e126" is not a DynamoDB number"#,
    );
    assert!(
        table(&state, "aws-cost-platform-enhanced").is_empty(),
        "nothing applied"
    );
}

#[test]
fn keys_that_disagree_with_the_image_park_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let file = edited_record(dir.path(), "edited.json", |record| {
        record["dynamodb"]["Keys"]["PK"] = serde_json::json!({ "S": "USER#someone-else" });
    });
    let state = dir.path().join("state");
    replay_parks(
        &file,
        &state,
        "900000000000000000001",
        "Keys.PK does not match the NewImage's PK",
    );
}

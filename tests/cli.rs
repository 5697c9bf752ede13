//! The command line, black box: `replay` and `state show` as a user runs them.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::cli::{event, worker};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Run `replay --json`; returns (exit code, JSON lines).
fn replay_json(state: &Path, files: &[PathBuf], extra: &[&str]) -> (i32, Vec<Value>) {
    let output = worker()
        .arg("replay")
        .args(files)
        .arg("--state")
        .arg(state)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    let lines = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect();
    (output.status.code().unwrap(), lines)
}

fn state_show(state: &Path) -> Vec<Value> {
    let output = worker()
        .args(["state", "show", "--state"])
        .arg(state)
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn audit_items(state: &Path) -> Vec<Value> {
    state_show(state)
        .into_iter()
        .filter(|i| i["EntityType"]["S"] == "AuditLog")
        .collect()
}

fn text(item: &Value, name: &str) -> String {
    item[name]["S"].as_str().unwrap_or_default().to_string()
}

#[test]
fn replay_writes_one_audit_item_per_change_and_reports_each_record() {
    let dir = tempfile::tempdir().unwrap();
    let (code, lines) = replay_json(dir.path(), &[event("cost-platform-audit.json")], &[]);
    assert_eq!(code, 0);
    assert_eq!(
        lines.len(),
        6,
        "four records, the batch summary and the batch response"
    );
    assert_eq!(
        lines[4],
        serde_json::json!({"batch": {"records": 4, "settled": 4, "requests": {"BatchWriteItem": 1, "GetItem": 1, "PutItem": 2}}}),
        "four audit items in one BatchWriteItem; the share takes an idempotency lock, looks up the recipient (none), completes"
    );
    assert_eq!(lines[5], serde_json::json!({"batchItemFailures": []}));
    for record in &lines[..4] {
        assert_eq!(record["applied"], true);
        assert_eq!(record["reactions"][0]["reaction"], "audit-log");
        assert_eq!(record["reactions"][0]["outcome"], "done");
        assert_eq!(record["reactions"][0]["effects"][0]["effect"], "item_put");
    }
    let audits = audit_items(dir.path());
    let mut actions: Vec<String> = audits.iter().map(|a| text(a, "Action")).collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            "ESTIMATION_UPDATED",
            "SHARED_ESTIMATION_CREATED",
            "SHARED_ESTIMATION_DELETED",
            "USER_CREATED"
        ]
    );
    let update = audits
        .iter()
        .find(|a| text(a, "Action") == "ESTIMATION_UPDATED")
        .unwrap();
    assert_eq!(text(update, "UserId"), "user123");
    // The changed item, named fully.
    assert_eq!(text(update, "ResourceId"), "est456/METADATA");
    assert_eq!(text(update, "ResourceType"), "Estimation");
    assert_eq!(text(update, "GSI1PK"), "USER#user123");
    assert_eq!(text(update, "Timestamp"), "2024-01-15T10:30:00.000Z");
    assert!(text(update, "PK").starts_with("AUDIT#2024-01-15#"));
    assert!(text(update, "SK").starts_with("LOG#user123#10:30:00.000Z#"));
    let changes = &update["Details"]["M"]["Changes"]["M"];
    assert_eq!(
        changes["Status"],
        serde_json::json!({"M": {"Old": {"S": "DRAFT"}, "New": {"S": "ACTIVE"}}})
    );
    let changed: Vec<&str> = update["Details"]["M"]["ChangedAttributes"]["L"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["S"].as_str().unwrap())
        .collect();
    assert_eq!(
        changed,
        ["Description", "Status", "Tags", "UpdatedAt", "UpdatedBy"]
    );
    // One year of retention from the change itself, so a re-delivery writes the same TTL.
    assert_eq!(update["TTL"]["N"], (1705314600 + 365 * 86400).to_string());
}

#[test]
fn personal_data_never_reaches_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    replay_json(dir.path(), &[event("cost-platform-audit.json")], &[]);
    let audits = serde_json::to_string(&audit_items(dir.path())).unwrap();
    for secret in ["jane.smith@abc.com", "john.doe@sagesoft.com", "555-0123"] {
        assert!(
            !audits.contains(secret),
            "{secret} leaked into the audit log"
        );
    }
    assert!(audits.contains("[REDACTED]"));
    assert!(
        audits.contains("Call Jane on [REDACTED] or [REDACTED]"),
        "the rest of the text is kept"
    );
}

/// Issue 29: an email address used as a user id landed in clear in the audit item's SK,
/// GSI1PK, UserId and ResourceId while Details redacted it.
#[test]
fn an_email_used_as_a_user_id_becomes_a_stable_pseudonym_in_audit_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys =
        serde_json::json!({"PK": {"S": "USER#jane.roe@example.com"}, "SK": {"S": "PROFILE"}});
    let image = |name: &str| {
        let mut image = keys.clone();
        image["UpdatedBy"] = serde_json::json!({"S": "jane.roe@example.com"});
        image["Name"] = serde_json::json!({"S": name});
        image
    };
    let records = vec![
        support::record(1, "INSERT", keys.clone(), Some(image("Jane")), None),
        support::record(
            2,
            "MODIFY",
            keys.clone(),
            Some(image("Jane R.")),
            Some(image("Jane")),
        ),
    ];
    let file = dir.path().join("email-user.json");
    std::fs::write(&file, serde_json::json!({ "Records": records }).to_string()).unwrap();
    let (code, _) = replay_json(&dir.path().join("s"), &[file], &[]);
    assert_eq!(code, 0);
    let audits = audit_items(&dir.path().join("s"));
    assert_eq!(audits.len(), 2);
    for audit in &audits {
        let whole = audit.to_string();
        assert!(!whole.contains("jane.roe"), "{whole}");
        for key in ["SK", "GSI1PK", "UserId", "ResourceId"] {
            assert!(text(audit, key).contains("anon-"), "{key}: {whole}");
        }
    }
    // Stable: both changes are under the same user in the user index.
    assert_eq!(text(&audits[0], "GSI1PK"), text(&audits[1], "GSI1PK"));
}

#[test]
fn a_ttl_delete_is_audited_as_an_expiry_by_dynamodb() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _) = replay_json(dir.path(), &[event("cost-platform-ttl-delete.json")], &[]);
    assert_eq!(code, 0);
    let audits = audit_items(dir.path());
    assert_eq!(audits.len(), 1);
    assert_eq!(text(&audits[0], "Action"), "DOCUMENT_EXPIRED");
    assert_eq!(text(&audits[0], "UserId"), "dynamodb.amazonaws.com");
    assert_eq!(text(&audits[0], "GSI1PK"), "USER#dynamodb.amazonaws.com");
}

#[test]
fn a_poison_record_mid_batch_is_parked_whole_and_the_batch_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let output = worker()
        .arg("replay")
        .arg(event("cost-platform-poison-mid-batch.json"))
        .arg("--state")
        .arg(dir.path())
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "parked records: exit 3");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        5,
        "three records, the batch summary and the response"
    );
    assert_eq!(lines[4], serde_json::json!({"batchItemFailures": []}));
    let decode = support::reaction(&lines[1], "decode");
    assert_eq!(decode["outcome"], "parked");
    let reason = decode["reason"].as_str().unwrap();
    assert!(
        reason.contains("NEW_AND_OLD_IMAGES") && reason.contains("KEYS_ONLY"),
        "{reason}"
    );
    // Kept whole: every field as it was sent, not rebuilt from the decoded change.
    let sent: Value = serde_json::from_str(
        &std::fs::read_to_string(event("cost-platform-poison-mid-batch.json")).unwrap(),
    )
    .unwrap();
    let location = decode["location"].as_str().unwrap();
    let parked: Value = serde_json::from_str(&std::fs::read_to_string(location).unwrap()).unwrap();
    assert_eq!(parked["Records"][0], sent["Records"][1]);
    assert_eq!(parked["parked"]["reaction"], "decode");
    // Record 2 (REMOVE of the user) went on: the profile is gone, and both changes audited.
    let items = state_show(dir.path());
    assert!(!items
        .iter()
        .any(|i| text(i, "PK") == "USER#user123" && text(i, "SK") == "PROFILE"));
    assert_eq!(audit_items(dir.path()).len(), 2);
}

#[test]
fn replaying_the_same_file_twice_leaves_the_state_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        event("cost-platform-audit.json"),
        event("cost-platform-ttl-delete.json"),
    ];
    assert_eq!(replay_json(dir.path(), &files, &[]).0, 0);
    let first = state_show(dir.path());
    assert_eq!(replay_json(dir.path(), &files, &[]).0, 0);
    assert_eq!(state_show(dir.path()), first);
    assert_eq!(audit_items(dir.path()).len(), 5);
}

/// A file of more records than Lambda's largest batch (10,000) runs as consecutive batches of
/// that size while the next is decoded: every record once, in file order, each batch whole.
#[test]
fn a_file_larger_than_a_batch_runs_as_consecutive_batches_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<Value> = (1..=20_500u64)
        .map(|seq| {
            let keys = serde_json::json!({"id": {"S": format!("item-{seq}")}});
            support::record_in("plain-table", seq, "INSERT", keys.clone(), Some(keys), None)
        })
        .collect();
    let file = dir.path().join("large.json");
    std::fs::write(&file, serde_json::json!({ "Records": records }).to_string()).unwrap();
    let (code, lines) = replay_json(&dir.path().join("state"), &[file], &[]);
    assert_eq!(code, 0);
    let batches: Vec<u64> = (lines.iter())
        .filter_map(|l| l["batch"]["records"].as_u64())
        .collect();
    assert_eq!(batches, [10_000, 10_000, 500]);
    let sequence: Vec<u64> = (lines.iter())
        .filter_map(|l| l["sequenceNumber"].as_str()?.parse().ok())
        .collect();
    assert_eq!(sequence, (1..=20_500).collect::<Vec<u64>>());
    assert!(lines
        .iter()
        .all(|l| l.get("index").is_none() || l["applied"] == true));
}

/// Many small files are batches of their own, whose writes are committed together (up to a
/// batch's worth of records, sooner when the next file is not decoded yet): each batch's
/// records and then its end, in file order; and every batch is on disk at the end, so a second
/// replay finds each record applied before.
#[test]
fn many_small_files_report_each_batch_in_order_and_keep_every_one() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = (0..40u64)
        .map(|file| {
            let records: Vec<Value> = (1..=5)
                .map(|n| {
                    let seq = file * 5 + n;
                    let keys = serde_json::json!({"id": {"S": format!("item-{seq}")}});
                    support::record_in("plain-table", seq, "INSERT", keys.clone(), Some(keys), None)
                })
                .collect();
            let path = dir.path().join(format!("small-{file:02}.json"));
            std::fs::write(&path, serde_json::json!({ "Records": records }).to_string()).unwrap();
            path
        })
        .collect();
    let state = dir.path().join("state");
    let (code, lines) = replay_json(&state, &files, &[]);
    assert_eq!(code, 0);
    assert_eq!(
        lines.len(),
        40 * 7,
        "five records, the batch and its response per file"
    );
    for (file, batch) in lines.chunks(7).enumerate() {
        let sequence: Vec<u64> = (batch[..5].iter())
            .filter_map(|l| l["sequenceNumber"].as_str()?.parse().ok())
            .collect();
        let first = file as u64 * 5 + 1;
        assert_eq!(sequence, (first..first + 5).collect::<Vec<u64>>());
        assert_eq!(batch[5]["batch"]["records"], 5, "{}", batch[5]);
        assert_eq!(batch[6], serde_json::json!({"batchItemFailures": []}));
    }
    let (code, again) = replay_json(&state, &files, &[]);
    assert_eq!(code, 0);
    let records: Vec<&Value> = again.iter().filter(|l| l.get("index").is_some()).collect();
    assert_eq!(records.len(), 200);
    assert!(
        records.iter().all(|l| l["already_applied"] == true),
        "every batch of the first run was committed"
    );
}

#[test]
fn a_reader_that_stops_reading_ends_the_replay_with_an_error_not_a_panic() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    // Far more output than a pipe holds, so the replay is still writing when the reader goes.
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(event("cost-platform-audit.json")).unwrap())
            .unwrap();
    let records: Vec<Value> = (0..500)
        .flat_map(|_| file["Records"].as_array().unwrap().clone())
        .collect();
    let many = dir.path().join("many.json");
    std::fs::write(&many, serde_json::json!({ "Records": records }).to_string()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ddb-stream-worker"))
        .arg("replay")
        .arg(&many)
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg("--json")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with('{'), "{first}");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot write the output"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn fresh_empties_the_state_first() {
    let dir = tempfile::tempdir().unwrap();
    replay_json(dir.path(), &[event("cost-platform-audit.json")], &[]);
    replay_json(
        dir.path(),
        &[event("cost-platform-ttl-delete.json")],
        &["--fresh"],
    );
    assert_eq!(audit_items(dir.path()).len(), 1);
}

#[test]
fn getrecords_output_needs_the_table_and_works_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = worker()
        .arg("replay")
        .arg(fixture("getrecords-cost-platform.json"))
        .arg("--state")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--table"), "{stderr}");
    assert!(state_show(dir.path()).is_empty(), "nothing was processed");

    let (code, lines) = replay_json(
        dir.path(),
        &[fixture("getrecords-cost-platform.json")],
        &["--table", "aws-cost-platform-enhanced"],
    );
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 4);
    let audits = audit_items(dir.path());
    assert!(
        audits
            .iter()
            .any(|a| text(a, "Timestamp") == "2024-01-15T10:30:00.250Z"),
        "ISO timestamps of the AWS CLI keep their milliseconds"
    );
}

#[test]
fn malformed_json_names_file_line_and_column_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        "{\n  \"Records\": [\n    {\"eventID\": \"1\",, }\n  ]\n}\n",
    )
    .unwrap();
    let state = dir.path().join("state");
    // A replay of `files` that must stop before anything runs: its error.
    let unusable = |files: &[&Path]| {
        let output = worker()
            .arg("replay")
            .args(files)
            .arg("--state")
            .arg(&state)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        assert!(!state.exists(), "no file is processed when any is unusable");
        String::from_utf8(output.stderr).unwrap()
    };
    let good = event("cost-platform-audit.json");
    let stderr = unusable(&[&good, &bad]);
    assert!(
        stderr.contains(&format!("{}:3:21", bad.display())),
        "{stderr}"
    );

    // Files are checked several at a time, but the first unusable one in their order is the
    // one named, whichever is checked first.
    let worse = dir.path().join("worse.json");
    std::fs::write(&worse, "{\"Records\": [").unwrap();
    let missing = dir.path().join("missing.json");
    let stderr = unusable(&[&good, &bad, &worse, &missing]);
    assert!(
        stderr.contains(&format!("{}:3:21", bad.display())),
        "{stderr}"
    );
    assert!(
        !stderr.contains("worse.json") && !stderr.contains("missing.json"),
        "{stderr}"
    );
    let stderr = unusable(&[&missing, &bad]);
    assert!(
        stderr.contains("missing.json") && !stderr.contains("bad.json"),
        "{stderr}"
    );
    // A large file broken at its end, before a small broken one that is checked first when
    // there are two cores: still the large one is named.
    let large = dir.path().join("large.json");
    let records = vec![r#"{"eventID": "x"}"#; 200_000].join(",\n");
    std::fs::write(&large, format!("{{\"Records\": [\n{records},,\n]}}")).unwrap();
    let stderr = unusable(&[&large, &bad]);
    assert!(
        stderr.contains(&format!("{}:200001:", large.display())) && !stderr.contains("bad.json"),
        "{stderr}"
    );
}

#[test]
fn a_record_without_sequence_number_is_parked_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("noseq.json");
    let mut event: Value = serde_json::from_str(
        &std::fs::read_to_string(event("cost-platform-ttl-delete.json")).unwrap(),
    )
    .unwrap();
    event["Records"][0]["dynamodb"]
        .as_object_mut()
        .unwrap()
        .remove("SequenceNumber");
    std::fs::write(&file, event.to_string()).unwrap();
    let output = worker()
        .arg("replay")
        .arg(&file)
        .arg("--state")
        .arg(dir.path().join("s"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("decode: PARKED")
            && stdout
                .contains("dynamodb.SequenceNumber is missing: expected a stream sequence number"),
        "{stdout}"
    );
    assert!(stdout.contains(r#"{"batchItemFailures":[]}"#), "{stdout}");
}

#[test]
fn human_output_names_each_reaction_outcome_and_effect() {
    let dir = tempfile::tempdir().unwrap();
    let output = worker()
        .arg("replay")
        .arg(event("cost-platform-ttl-delete.json"))
        .arg("--state")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains(
            "REMOVE aws-cost-platform-enhanced {PK=ESTIMATION#est456, SK=DOCUMENT#doc789}"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("audit-log: done"));
    assert!(stdout.contains("put aws-cost-platform-enhanced {PK=AUDIT#2024-02-15#"));
    assert!(stdout
        .trim_end()
        .ends_with(r#"batch response: {"batchItemFailures":[]}"#));
}

#[test]
fn human_output_shows_the_reactions_that_applied_and_verbose_shows_all() {
    let human = |extra: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let output = worker()
            .arg("replay")
            .arg(event("odd-attribute-types-and-unknown-table.json"))
            .arg("--state")
            .arg(dir.path())
            .args(extra)
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    let plain = human(&[]);
    assert!(!plain.contains("not applicable"), "{plain}");
    assert!(plain.contains("audit-log: done"), "{plain}");
    // The record of a table no reaction knows says so in one line.
    assert!(
        plain.contains("no reaction applies (-v lists them)"),
        "{plain}"
    );
    let verbose = human(&["-v"]);
    assert!(
        verbose.contains("thread-stats: not applicable"),
        "{verbose}"
    );
    assert!(!verbose.contains("no reaction applies"), "{verbose}");
}

#[test]
fn state_show_without_a_state_exits_2_and_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let output = worker()
        .args(["state", "show", "--state"])
        .arg(dir.path().join("never-replayed"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("run `ddb-stream-worker replay FILE` first"),
        "{stderr}"
    );
}

#[test]
fn state_show_filters_by_table_and_prints_dynamodb_json() {
    let dir = tempfile::tempdir().unwrap();
    replay_json(dir.path(), &[event("cost-platform-audit.json")], &[]);
    let output = worker()
        .args([
            "state",
            "show",
            "--table",
            "marketplace-dev-bookings-table",
            "--state",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(output.stdout.is_empty());
    // Without --table: every table's items (cost platform items and idempotency records),
    // never the replay's own bookkeeping.
    let items = state_show(dir.path());
    assert!(
        items
            .iter()
            .all(|i| (i["PK"]["S"].is_string() && i["SK"]["S"].is_string())
                || i["idempotencyKey"]["S"].is_string()),
        "{items:?}"
    );
    assert!(items.iter().all(|i| i.get("eventId").is_none()));
}

#[test]
fn audited_tables_come_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let output = worker()
        .env("AUDITED_TABLES", "some-other-table")
        .arg("replay")
        .arg(event("cost-platform-audit.json"))
        .arg("--state")
        .arg(dir.path())
        .arg("--json")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains(r#""outcome":"not_applicable""#));
    assert!(audit_items(dir.path()).is_empty());
}

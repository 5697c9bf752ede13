//! The worker beside the applications that own the tables, on the embedded default: it leaves
//! their attributes alone (an estimation held at Version 7 stays at 7), writes only what the
//! records say (a replay on a fresh state is byte for byte the same), keeps each document's PDF
//! its own, links where the application says, and keeps the audit log's facts. The same
//! against DynamoDB Local with an application writing concurrently: `tests/neighbour.rs`.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::cli::{self, outbox, outcomes, table};
use support::{record, COST_TABLE};

/// An event file in `dir` holding `records`.
fn event_file(dir: &Path, name: &str, records: &[Value]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, json!({ "Records": records }).to_string()).unwrap();
    path.display().to_string()
}

fn s(v: &str) -> Value {
    json!({ "S": v })
}

fn n(v: &str) -> Value {
    json!({ "N": v })
}

fn item<'a>(items: &'a [Value], pk: &str, sk: &str) -> &'a Value {
    items
        .iter()
        .find(|i| i["PK"]["S"] == pk && i["SK"]["S"] == sk)
        .unwrap_or_else(|| panic!("{pk} {sk} not in {items:#?}"))
}

/// METADATA as the application left it (Version 7, its UpdatedAt), then a server.
fn estimation_at_version_7() -> Vec<Value> {
    let meta_keys = json!({"PK": s("ESTIMATION#est7"), "SK": s("METADATA")});
    let mut metadata = meta_keys.clone();
    for (name, value) in [
        ("EntityType", s("Estimation")),
        ("EstimationId", s("est7")),
        ("UserId", s("user7")),
        ("Version", n("7")),
        ("UpdatedAt", s("2024-01-15T09:00:00Z")),
    ] {
        metadata[name] = value;
    }
    let server_keys = json!({"PK": s("ESTIMATION#est7"), "SK": s("SERVER#srv001")});
    let mut server = server_keys.clone();
    server["EstimatedMonthlyCost"] = n("1234567.89");
    server["UpdatedBy"] = s("user7");
    vec![
        record(1, "INSERT", meta_keys, Some(metadata), None),
        record(2, "INSERT", server_keys, Some(server), None),
    ]
}

#[test]
fn the_applications_version_and_updated_at_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = event_file(dir.path(), "est7.json", &estimation_at_version_7());
    let state = dir.path().join("state");
    cli::replay(&state, &[&file], &[]);
    let items = table(&state, COST_TABLE);
    let metadata = item(&items, "ESTIMATION#est7", "METADATA");
    assert_eq!(metadata["Version"], n("7"), "the application's lock");
    assert_eq!(metadata["UpdatedAt"], s("2024-01-15T09:00:00Z"));
    assert_eq!(metadata["SummaryVersion"], n("1"), "the worker's own");
    assert_eq!(
        metadata["EstimationSummary"]["M"]["LastCalculatedAt"],
        s("2024-01-15T10:00:02.000Z"),
        "dated by the record, not the clock"
    );
}

#[test]
fn a_change_of_business_rules_moves_the_totals_and_the_summary_write_does_not_loop() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = estimation_at_version_7();
    // The application turns the support plan off (and bumps its Version, as §4.2 does).
    let keys = json!({"PK": s("ESTIMATION#est7"), "SK": s("METADATA")});
    let old = records[0]["dynamodb"]["NewImage"].clone();
    let mut new = old.clone();
    new["Version"] = n("8");
    new["BusinessRules"] = json!({"M": {
        "BufferPercentage": n("10"), "VolumeDiscounts": {"BOOL": true},
        "SupportPlanIncluded": {"BOOL": false}}});
    records.push(record(
        3,
        "MODIFY",
        keys.clone(),
        Some(new.clone()),
        Some(old),
    ));
    let first = event_file(dir.path(), "rules.json", &records);
    let state = dir.path().join("state");
    let lines = cli::replay(&state, &[&first], &[]);
    assert_eq!(
        outcomes(&lines, "estimation-totals"),
        ["not_applicable", "coalesced", "done"],
        "METADATA's creation changes no rule; the rules change is the estimation's last record: it recomputes there"
    );
    let items = table(&state, COST_TABLE);
    let summary = &item(&items, "ESTIMATION#est7", "METADATA")["EstimationSummary"]["M"];
    assert_eq!(
        summary["CostBreakdown"]["M"]["Support"],
        n("0"),
        "no support plan"
    );

    // The worker's own summary write, as the stream delivers it, changes no rule: ignored.
    let mut summarized = new.clone();
    summarized["EstimationSummary"] = json!({"M": {}});
    summarized["SummaryVersion"] = n("1");
    let own = event_file(
        dir.path(),
        "own.json",
        &[record(4, "MODIFY", keys, Some(summarized), Some(new))],
    );
    let lines = cli::replay(&state, &[&own], &[]);
    assert_eq!(outcomes(&lines, "estimation-totals"), ["not_applicable"]);
}

/// Every file under `dir`, relative path to bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .file_name()
                .is_some_and(|n| n == "state.sqlite-wal" || n == "state.sqlite-shm")
            {
                // The database's log and its index, read with it below.
            } else if path.file_name().is_some_and(|n| n == "state.sqlite") {
                // The database's pages are laid out as the writes came; what it holds is
                // what must not differ: every item of every table, in key order.
                files.insert(PathBuf::from("state.sqlite"), tables_of(&path));
            } else if path.file_name().is_some_and(|n| n != ".lock") {
                let bytes = std::fs::read(&path).unwrap();
                files.insert(path.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    files
}

/// Every item of every application table in the database, table by table in key order.
fn tables_of(database: &Path) -> Vec<u8> {
    let db = rusqlite::Connection::open(database).unwrap();
    let mut statement = db
        .prepare(
            "SELECT tables.name, items.item FROM items JOIN tables ON tables.id = items.table_id \
             WHERE tables.name NOT LIKE '#%' ORDER BY tables.name, items.pk, items.sk",
        )
        .unwrap();
    let rows = statement
        .query_map([], |row| {
            // Attributes in name order: the stored text keeps them as the item had them.
            let item: Value = serde_json::from_str(&row.get::<_, String>(1)?).unwrap();
            Ok(format!("{} {item}\n", row.get::<_, String>(0)?))
        })
        .unwrap();
    rows.map(Result::unwrap).collect::<String>().into_bytes()
}

#[test]
fn replaying_the_same_files_on_a_fresh_state_writes_the_same_bytes() {
    let files = [
        "cost-platform-estimation-from-scratch.json",
        "cost-platform-server-cost-changed.json",
        "cost-platform-proposal-request.json",
        "cost-platform-share.json",
        "marketplace-reviews.json",
        "marketplace-booking-cancelled.json",
        "pilotforce-bookings.json",
        "acs-conversation-messages.json",
        "acs-session-expired.json",
    ];
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let run = || {
        let output = cli::worker()
            .arg("replay")
            .arg("--fresh")
            .args(files.iter().map(|f| cli::event(f)))
            .arg("--state")
            .arg(&state)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        tree(&state)
    };
    let first = run();
    // A second later, so that anything read from the clock would differ.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = run();
    assert!(
        first.keys().any(|p| p.starts_with("objects")),
        "a PDF was stored"
    );
    assert!(
        first.keys().any(|p| p.starts_with("outbox")),
        "mail was sent"
    );
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        second.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &first {
        assert!(
            second[path] == *bytes,
            "{} differs between two replays of the same files",
            path.display()
        );
    }
}

/// The proposal scenario with a second document of the same estimation and file name.
fn two_documents_one_file_name() -> Vec<Value> {
    let text = std::fs::read_to_string(cli::event("cost-platform-proposal-request.json")).unwrap();
    let mut event: Value = serde_json::from_str(&text).unwrap();
    let records = event["Records"].as_array_mut().unwrap();
    let mut second = records.last().unwrap().clone();
    second["eventID"] = json!("second-document");
    second["dynamodb"]["SequenceNumber"] = json!("600000000000000090800");
    for image in ["Keys", "NewImage"] {
        second["dynamodb"][image]["SK"] = s("DOCUMENT#doc124");
    }
    second["dynamodb"]["NewImage"]["DocumentId"] = s("doc124");
    records.push(second);
    records.clone()
}

#[test]
fn two_documents_with_one_file_name_get_an_object_each() {
    let dir = tempfile::tempdir().unwrap();
    let file = event_file(dir.path(), "two.json", &two_documents_one_file_name());
    let state = dir.path().join("state");
    cli::replay(&state, &[&file], &[]);
    let items = table(&state, COST_TABLE);
    let keys: Vec<String> = ["DOCUMENT#doc123", "DOCUMENT#doc124"]
        .iter()
        .map(|sk| {
            item(&items, "ESTIMATION#est456", sk)["S3Key"]["S"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        keys,
        [
            "proposals/est456/doc123/ABC_Corporation_AWS_Proposal.pdf",
            "proposals/est456/doc124/ABC_Corporation_AWS_Proposal.pdf"
        ]
    );
    for key in &keys {
        let object = state
            .join("objects/aws-cost-estimation-documents")
            .join(key);
        assert!(
            object.is_file(),
            "{} was replaced or never stored",
            object.display()
        );
    }
}

#[test]
fn the_mail_links_to_the_applications_page_when_it_has_one() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    cli::replay(
        &state,
        &["cost-platform-proposal-request.json"],
        &[(
            "PROPOSAL_LINK_URL",
            "https://app.example.com/estimations/{EstimationId}/documents/{DocumentId}",
        )],
    );
    let mail = outbox(&state).join("\n");
    assert!(
        mail.contains("https://app.example.com/estimations/est456/documents/doc123"),
        "{mail}"
    );
    assert!(!mail.contains("file://"), "{mail}");
    assert!(
        !mail.contains("the link works until"),
        "the page does not expire: {mail}"
    );
}

#[test]
fn a_link_template_that_is_not_a_url_is_refused_before_anything_runs() {
    let output = cli::worker()
        .env("PROPOSAL_LINK_URL", "javascript:alert(1)")
        .arg("replay")
        .arg(cli::event("cost-platform-audit.json"))
        .arg("--state")
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PROPOSAL_LINK_URL"), "{stderr}");
}

fn audit_of(items: &[Value], resource: &str, action: &str) -> Value {
    items
        .iter()
        .find(|i| {
            i["EntityType"]["S"] == "AuditLog"
                && i["ResourceId"]["S"] == resource
                && i["Action"]["S"] == action
        })
        .cloned()
        .unwrap_or_else(|| panic!("no {action} audit item for {resource}"))
}

#[test]
fn the_audit_log_keeps_numbers_names_the_item_and_spreads_unknown_actors() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = estimation_at_version_7();
    // A cost change of the server, and a document with an epoch TTL and no known actor.
    let server_keys = json!({"PK": s("ESTIMATION#est7"), "SK": s("SERVER#srv001")});
    let old = records[1]["dynamodb"]["NewImage"].clone();
    let mut new = old.clone();
    new["EstimatedMonthlyCost"] = n("7654321.5");
    records.push(record(3, "MODIFY", server_keys, Some(new), Some(old)));
    let doc_keys = json!({"PK": s("ESTIMATION#est7"), "SK": s("DOCUMENT#d9")});
    let mut doc = doc_keys.clone();
    doc["TTL"] = n("1708002000");
    doc["ContactPhone"] = n("15550123456");
    records.push(record(4, "INSERT", doc_keys, Some(doc), None));
    let file = event_file(dir.path(), "audit.json", &records);
    let state = dir.path().join("state");
    cli::replay(&state, &[&file], &[]);
    let items = table(&state, COST_TABLE);

    let change = audit_of(&items, "est7/SERVER#srv001", "ESTIMATION_UPDATED");
    let cost = &change["Details"]["M"]["Changes"]["M"]["EstimatedMonthlyCost"]["M"];
    assert_eq!(cost["Old"], s("1234567.89"), "a seven-digit cost is a fact");
    assert_eq!(cost["New"], s("7654321.5"));
    assert_eq!(change["GSI1PK"], s("USER#user7"));

    let document = audit_of(&items, "est7/DOCUMENT#d9", "ESTIMATION_CREATED");
    let changes = &document["Details"]["M"]["Changes"]["M"];
    assert_eq!(changes["TTL"]["M"]["New"], s("1708002000"), "an epoch TTL");
    assert_eq!(
        changes["ContactPhone"]["M"]["New"],
        s("[REDACTED]"),
        "a number named as personal data is still redacted"
    );
    assert_eq!(document["UserId"], s("unknown"));
    assert!(
        document.get("GSI1PK").is_none() && document.get("GSI1SK").is_none(),
        "no shared USER#unknown index partition: {document}"
    );
}

/// Deliver `records` as Lambda would: from the reported failure on, until the batch is clean.
async fn deliver_until_clean(
    worker: &ddb_stream_worker::batch::Worker,
    records: &[ddb_stream_worker::decode::StreamRecord],
) -> usize {
    let mut from = 0;
    for deliveries in 1..=5 {
        let outcome = worker
            .process_batch(
                &records[from..],
                ddb_stream_worker::batch::BatchOptions {
                    deadline: None,
                    apply_own_change: true,
                    stop_before: None,
                },
                &mut |_| {},
            )
            .await;
        match outcome.failure {
            None => return deliveries,
            Some(failure) => from += failure.index,
        }
    }
    panic!("not clean after 5 deliveries");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_share_is_mailed_once_whichever_step_fails() {
    use std::sync::{Arc, Mutex};
    use support::{embedded, faulty_tables, Faults, FaultyMailer};

    for failing in ["UpdateItem", "SendEmail"] {
        let dir = tempfile::tempdir().unwrap();
        let (_state, mut adapters) = embedded(dir.path());
        let faults = Arc::new(Faults::default());
        adapters.tables = faulty_tables(adapters.tables.clone(), faults.clone());
        let mailer = Arc::new(FaultyMailer {
            inner: adapters.mailer.clone(),
            faults: faults.clone(),
            sent: Mutex::new(Vec::new()),
        });
        adapters.mailer = mailer.clone();
        // The claim (the share's one UpdateItem), or SES, fails once.
        faults.fail_next(failing, "", 1);
        let worker = ddb_stream_worker::wiring::worker(&support::config(), adapters);
        let text = std::fs::read_to_string(cli::event("cost-platform-share.json")).unwrap();
        let records = ddb_stream_worker::decode::decode_event(&text, "share", None).unwrap();
        let deliveries = deliver_until_clean(&worker, &records).await;
        assert_eq!(deliveries, 2, "{failing}: failed once, then retried");
        assert_eq!(faults.fired(""), 1, "{failing}");
        let sent = mailer.sent.lock().unwrap();
        assert_eq!(sent.len(), 1, "{failing}: one mail: {sent:?}");
    }
}

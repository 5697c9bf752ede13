//! Marketplace, PilotForce and ACS reactions replayed on the embedded default: exact rating
//! aggregates, booking mail, asset cleanup, thread statistics and session expiry.

mod support;

use std::path::Path;

use serde_json::Value;
use support::cli::{self, outbox, outcomes, table};

fn replay(state: &Path, files: &[&str]) -> Vec<Value> {
    cli::replay(state, files, &[])
}

fn provider(state: &Path, id: &str) -> (String, String, String) {
    let items = table(state, "marketplace-dev-providers-table");
    let p = items
        .iter()
        .find(|p| p["providerId"]["S"] == id)
        .unwrap_or_else(|| panic!("provider {id} in {items:?}"));
    let n = |name: &str| p[name]["N"].as_str().unwrap().to_string();
    (n("ratingSum"), n("reviewCount"), n("rating"))
}

#[test]
fn ratings_follow_reviews_through_edits_moves_duplicates_and_removals() {
    let dir = tempfile::tempdir().unwrap();
    replay(dir.path(), &["marketplace-reviews"]);
    // prov-plumb: 5 and 4, then 4 edited to 2; prov-elec: 3.5.
    assert_eq!(
        provider(dir.path(), "prov-plumb"),
        ("7".into(), "2".into(), "3.5".into())
    );
    assert_eq!(
        provider(dir.path(), "prov-elec"),
        ("3.5".into(), "1".into(), "3.5".into())
    );

    replay(dir.path(), &["marketplace-review-moved"]);
    assert_eq!(
        provider(dir.path(), "prov-plumb"),
        ("10.5".into(), "3".into(), "3.5".into()),
        "the review moved in"
    );
    assert_eq!(
        provider(dir.path(), "prov-elec"),
        ("0".into(), "0".into(), "0".into()),
        "and out"
    );

    // A second review of booking bk-001 does not count; when the counted one goes, it does.
    let lines = replay(dir.path(), &["marketplace-duplicate-review"]);
    assert_eq!(outcomes(&lines, "provider-rating"), ["done", "done"]);
    let second = support::reaction(&lines[0], "provider-rating");
    assert_eq!(
        second["result"]["prov-plumb"]["reviewCount"], "3",
        "the second review of bk-001 did not count: {second}"
    );
    assert_eq!(
        provider(dir.path(), "prov-plumb"),
        ("6.5".into(), "3".into(), "2.17".into()),
        "2 + 3.5 + 1 over 3, half up"
    );

    // A review removed by TTL in the same batch it arrived: no trace.
    replay(dir.path(), &["marketplace-review-ttl-removed"]);
    assert_eq!(
        provider(dir.path(), "prov-elec"),
        ("0".into(), "0".into(), "0".into())
    );
}

#[test]
fn replaying_review_histories_again_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        "marketplace-reviews",
        "marketplace-review-moved",
        "marketplace-duplicate-review",
        "marketplace-review-ttl-removed",
    ];
    replay(dir.path(), &files);
    let before = table(dir.path(), "marketplace-dev-providers-table");
    let again = replay(dir.path(), &files);
    assert!(outcomes(&again, "provider-rating")
        .iter()
        .all(|o| o != "failed"));
    assert_eq!(table(dir.path(), "marketplace-dev-providers-table"), before);
}

#[test]
fn a_review_for_a_provider_with_no_item_creates_the_rating_attributes() {
    let dir = tempfile::tempdir().unwrap();
    replay(dir.path(), &["marketplace-reviews"]);
    let providers = table(dir.path(), "marketplace-dev-providers-table");
    let plumber = providers
        .iter()
        .find(|p| p["providerId"]["S"] == "prov-plumb")
        .unwrap();
    let mut names: Vec<&str> = plumber
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "aggregateVersion",
            "providerId",
            "rating",
            "ratingSum",
            "ratingUpdatedAt",
            "reviewCount"
        ]
    );
}

#[test]
fn marketplace_bookings_mail_the_provider_then_the_customer_once_each() {
    let dir = tempfile::tempdir().unwrap();
    replay(dir.path(), &["marketplace-booking-cancelled"]);
    let mails = outbox(dir.path());
    assert_eq!(mails.len(), 3);
    let to = |mail: &str| {
        mail.lines()
            .find(|l| l.starts_with("To: "))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        to(&mails[0]),
        "To: pat.plumber@example.com",
        "a new booking goes to the provider"
    );
    assert!(mails[0].contains("Subject: New booking bk-100 for 2025-11-20"));
    assert_eq!(to(&mails[1]), "To: carla.customer@example.com");
    assert!(mails[1].contains("Subject: Your booking bk-100 is confirmed"));
    assert!(mails[2].contains("Subject: Your booking bk-100 is cancelled"));
    assert!(
        mails[2].contains("Date: 2025-11-20") && mails[2].contains("Time: 14:30 UTC"),
        "{}",
        mails[2]
    );
    assert!(mails[2].contains("(it was confirmed)"));

    let again = replay(dir.path(), &["marketplace-booking-cancelled"]);
    assert_eq!(
        outcomes(&again, "marketplace-booking-mail")
            .iter()
            .filter(|o| *o == "duplicate_skipped")
            .count(),
        3
    );
    assert_eq!(
        outbox(dir.path()).len(),
        3,
        "one mail per status change under re-delivery"
    );
}

#[test]
fn pilotforce_bookings_mail_the_user_unless_notifications_are_off() {
    let dir = tempfile::tempdir().unwrap();
    let lines = replay(dir.path(), &["pilotforce-bookings"]);
    let mails = outbox(dir.path());
    assert_eq!(
        mails.len(),
        3,
        "received, confirmed, completed; nothing for the user who turned mail off"
    );
    assert!(mails
        .iter()
        .all(|m| m.contains("To: john.pilot@example.com")));
    assert!(mails[1].contains("Subject: Your booking bk_12345 is confirmed"));
    assert!(mails[1].contains("Date: 2025-12-15") && mails[1].contains("Time: 14:30"));
    assert!(lines
        .iter()
        .any(|l| l.to_string().contains("turned notifications off")));
}

const ASSETS: (&str, &str) = ("PILOTFORCE_ASSETS_BUCKET", "pilotforce-user-assets");

#[test]
fn removing_an_asset_deletes_its_object_and_a_second_time_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let object = dir
        .path()
        .join("objects/pilotforce-user-assets/training/cessna_training_12345.jpg");
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    std::fs::write(&object, b"jpeg").unwrap();
    let lines = cli::replay(dir.path(), &["pilotforce-asset-removed"], &[ASSETS]);
    assert!(!object.exists());
    assert_eq!(
        outcomes(&lines, "asset-cleanup"),
        ["not_applicable", "done"]
    );
    // Re-delivered: the object is already gone, which is success.
    let again = cli::replay(dir.path(), &["pilotforce-asset-removed"], &[ASSETS]);
    assert_eq!(
        outcomes(&again, "asset-cleanup"),
        ["not_applicable", "done"]
    );
}

/// Issue 29: with the default configuration, an asset whose `s3Url` named the documents bucket
/// deleted a proposal PDF there. Now nothing is deleted without a configured assets bucket, and
/// with one, nothing outside it.
#[test]
fn asset_cleanup_deletes_only_in_the_assets_bucket_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir
        .path()
        .join("objects/aws-cost-estimation-documents/proposals/est456/doc123/p.pdf");
    std::fs::create_dir_all(pdf.parent().unwrap()).unwrap();
    std::fs::write(&pdf, b"%PDF").unwrap();
    let file = dir.path().join("hostile-asset.json");
    let mut event: Value = serde_json::from_str(
        &std::fs::read_to_string(cli::event("pilotforce-asset-removed")).unwrap(),
    )
    .unwrap();
    let old = &mut event["Records"][1]["dynamodb"]["OldImage"];
    old.as_object_mut().unwrap().remove("s3Key");
    old["s3Url"] = serde_json::json!({"S": "https://aws-cost-estimation-documents.s3.amazonaws.com/proposals/est456/doc123/p.pdf"});
    std::fs::write(&file, event.to_string()).unwrap();
    let run = |state: &Path, env: &[(&str, &str)]| {
        let mut cmd = cli::worker();
        for (name, value) in env {
            cmd.env(name, value);
        }
        cmd.arg("replay")
            .arg(&file)
            .arg("--state")
            .arg(state)
            .arg("--json")
            .output()
            .unwrap()
    };

    // Default configuration: nothing is deleted, and the result says why.
    let output = run(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("no assets bucket is configured"),
        "{stdout}"
    );
    assert!(pdf.exists(), "the proposal PDF is still there");

    // An assets bucket configured: the other bucket is refused, the record parked.
    let output = run(&dir.path().join("configured"), &[ASSETS]);
    assert_eq!(output.status.code(), Some(3));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout
            .contains("names bucket \\\"aws-cost-estimation-documents\\\", not the assets bucket"),
        "{stdout}"
    );
    assert!(pdf.exists());
}

#[test]
fn thread_statistics_follow_the_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let lines = replay(dir.path(), &["acs-conversation-messages"]);
    assert_eq!(
        outcomes(&lines, "thread-stats"),
        ["not_applicable", "done", "done", "done", "done"]
    );
    let threads = table(dir.path(), "acsd2p-dev-Threads");
    let thread = &threads[0];
    assert_eq!(
        thread["message_count"]["N"], "2",
        "three messages, one removed"
    );
    assert_eq!(thread["last_message_at"]["S"], "2025-11-17T10:30:00Z");
    let participants: Vec<&str> = thread["participants"]["L"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["S"].as_str().unwrap())
        .collect();
    assert_eq!(participants, ["owner@acme.example", "client@buyer.example"]);
    assert_eq!(
        thread["subject"]["S"], "Quote request",
        "the rest of the thread is kept"
    );
    let again = replay(dir.path(), &["acs-conversation-messages"]);
    // Each message's state is already at its change: nothing is folded twice.
    assert!(again
        .iter()
        .filter(|l| l["reactions"].is_array())
        .map(|l| support::reaction(l, "thread-stats"))
        .filter(|r| r["outcome"] == "done")
        .all(|r| r["result"]["alreadyApplied"] == true));
    assert_eq!(table(dir.path(), "acsd2p-dev-Threads"), threads);
}

/// An application that updates a message's status (read, delivered) changes no figure: the
/// message's state moves to the change, the thread's state and its item stay as they were.
#[test]
fn a_status_update_of_a_message_writes_only_the_messages_state() {
    let dir = tempfile::tempdir().unwrap();
    replay(dir.path(), &["acs-conversation-messages"]);
    let state_table = "ddb-stream-worker-aggregate-state";
    let thread_state = |state: &Path| {
        table(state, state_table)
            .into_iter()
            .find(|item| item["sk"]["S"] == "STATS")
            .expect("the thread's state")
    };
    let (threads, stats) = (
        table(dir.path(), "acsd2p-dev-Threads"),
        thread_state(dir.path()),
    );
    let events: Value = serde_json::from_str(
        &std::fs::read_to_string(cli::event("acs-conversation-messages")).unwrap(),
    )
    .unwrap();
    // r1, still in the thread, read by its recipient.
    let mut record = events["Records"][1].clone();
    assert_eq!(record["dynamodb"]["Keys"]["response_id"]["S"], "r1");
    record["eventName"] = "MODIFY".into();
    record["eventID"] = "status-update-of-r1".into();
    record["dynamodb"]["SequenceNumber"] = "700000000000000202800".into();
    record["dynamodb"]["OldImage"] = record["dynamodb"]["NewImage"].clone();
    record["dynamodb"]["NewImage"]["status"] = serde_json::json!({ "S": "read" });
    let (code, lines, _) =
        cli::replay_records(&dir.path().join("status.json"), dir.path(), &[record]);
    assert_eq!(code, 0, "{lines:?}");
    let result = &support::reaction(&lines[0], "thread-stats");
    assert_eq!(result["outcome"], "done", "{result}");
    assert!(result["result"]["alreadyApplied"].is_null(), "{result}");
    assert_eq!(table(dir.path(), "acsd2p-dev-Threads"), threads);
    assert_eq!(thread_state(dir.path()), stats);
    let r1 = table(dir.path(), state_table)
        .into_iter()
        .find(|item| item["sk"]["S"] == "MESSAGE#r1")
        .expect("r1's state");
    assert_eq!(r1["sequenceNumber"]["S"], "700000000000000202800");
}

#[test]
fn an_expired_session_is_audited_and_a_logout_is_not() {
    let dir = tempfile::tempdir().unwrap();
    replay(dir.path(), &["acs-session-expired"]);
    let audits: Vec<Value> = table(dir.path(), "aws-cost-platform-enhanced")
        .into_iter()
        .filter(|i| i["EntityType"]["S"] == "AuditLog")
        .collect();
    assert_eq!(audits.len(), 1, "only the TTL delete");
    assert_eq!(audits[0]["Action"]["S"], "SESSION_EXPIRED");
    assert_eq!(audits[0]["UserId"]["S"], "dynamodb.amazonaws.com");
    assert_eq!(audits[0]["ResourceId"]["S"], "session-uuid-1");
    assert!(
        !audits[0].to_string().contains("192.168.1.1"),
        "the IP address is redacted"
    );
}

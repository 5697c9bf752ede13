//! The edge holds for any record (issue 29): batches drawn for every reaction, with extreme
//! values in every attribute the reactions read (DynamoDB's number extremes and precision,
//! strings up to 400 KB, control, direction and path characters, addresses a mail parser could
//! read twice, deep nesting, sets, wrong types, missing and extra fields) and odd sequence
//! numbers, eventIDs and table names, replayed on the embedded state. For each batch: no panic
//! reaches the caller, no record fails (each is done, skipped or parked: nothing the data does
//! is retryable), nothing is written outside the state directory, and every mail sent has
//! exactly one recipient, a plain mailbox.
//!
//! `EDGE_CASES=500 cargo test --release --test edge_properties` draws more batches.

mod support;

use std::path::Path;
use std::sync::Arc;

use ddb_stream_worker::adapters::embedded::EmbeddedState;
use ddb_stream_worker::batch::{BatchOptions, Outcome};
use ddb_stream_worker::catalog::Catalog;
use ddb_stream_worker::decode::decode_event;
use ddb_stream_worker::wiring::{self, config::Config};
use proptest::prelude::*;
use serde_json::{json, Value};

const COST: &str = "aws-cost-platform-enhanced";

/// Strings the stream could carry that the reactions did not plan for.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("../../escaped".to_string()),
        Just("/etc/passwd".to_string()),
        Just("a@b@c".to_string()),
        Just("jane.roe@example.com".to_string()),
        Just("x@y.com\tBcc: z@w.com".to_string()),
        Just("x@y.com\u{2028}Bcc:z@w.com".to_string()),
        Just("a@x.com:b@y.com".to_string()),
        Just("=?utf-8?B?YQ==?=@x.com".to_string()),
        Just("\u{202e}evil\u{1b}[2J\r\n#1 INSERT forged".to_string()),
        Just("<script>alert(1)</script>{{ config }}{% raw %}".to_string()),
        "[\\PC]{0,40}",
        "[\\x00-\\x1f\\x7f\\u{85}\\u{2028}]{1,8}",
        (1usize..=4).prop_map(|quarter| "é".repeat(quarter * 51_000)),
        (1usize..=3).prop_map(|n| "word ".repeat(n * 4_000)),
    ]
}

/// Number texts at DynamoDB's limits and beyond what the worker computes with.
fn hostile_number() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("9.9999999999999999999999999999999999999E+125".to_string()),
        Just("-9.9999999999999999999999999999999999999E+125".to_string()),
        Just("1E-130".to_string()),
        Just("99999999999999999999999999999999999999".to_string()),
        Just("40000000000000000000000000000".to_string()),
        Just("5.0000000000000000000000000000000000001".to_string()),
        Just("1e126".to_string()),
        Just("NaN".to_string()),
        Just("0".to_string()),
        Just("-0.5".to_string()),
        (0i64..=6).prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!({"S": "deep"}), |inner, i| match i % 2 {
        0 => json!({ "L": [inner] }),
        _ => json!({ "M": { "x": inner } }),
    })
}

/// Any attribute value, of any type.
fn hostile_value() -> impl Strategy<Value = Value> {
    // Weighted so that most records pass decoding and reach the reactions; the values
    // DynamoDB itself refuses (empty and repeated sets, over-deep nesting) stay among them.
    prop_oneof![
        24 => hostile_string().prop_map(|s| json!({ "S": s })),
        18 => hostile_number().prop_map(|n| json!({ "N": n })),
        3 => Just(json!({"BOOL": true})),
        3 => Just(json!({"NULL": true})),
        1 => Just(json!({"SS": []})),
        1 => Just(json!({"SS": ["a", "a"]})),
        1 => Just(json!({"NS": ["1", "1.0"]})),
        2 => Just(json!({"BS": ["AAE="]})),
        2 => Just(json!({"B": "AAE="})),
        3 => (1usize..40).prop_map(nested),
        3 => hostile_string().prop_map(|s| json!({"M": {"EstimatedMonthlyCost": {"S": s}, "Template": {"S": s}}})),
        3 => hostile_number().prop_map(|n| json!({"M": {"BufferPercentage": {"N": n}, "VolumeDiscounts": {"BOOL": true}, "SupportPlanIncluded": {"BOOL": true}}})),
    ]
}

/// Every attribute some reaction reads, in both spellings the seeds use.
const READ: &[&str] = &[
    "Email",
    "email",
    "FirstName",
    "LastName",
    "name",
    "UserId",
    "userId",
    "UpdatedBy",
    "CreatedBy",
    "EstimatedMonthlyCost",
    "ServerName",
    "StorageName",
    "SuggestedInstanceType",
    "NetworkRequirements",
    "SecurityRequirements",
    "OptimizationRecommendations",
    "ComplianceRequirements",
    "BusinessRules",
    "Currency",
    "ProjectName",
    "EnhancedClientInfo",
    "EstimationSummary",
    "SummaryVersion",
    "DocumentId",
    "EstimationId",
    "FileName",
    "GeneratedBy",
    "Metadata",
    "NotificationPreferences",
    "SharedWithUserId",
    "SharedByUserId",
    "NotificationSent",
    "TTL",
    "rating",
    "createdAt",
    "bookingId",
    "providerId",
    "customerId",
    "status",
    "serviceType",
    "bookingDate",
    "scheduledDate",
    "preferences",
    "notifications",
    "ratingSum",
    "reviewCount",
    "aggregateVersion",
    "s3Key",
    "s3Url",
    "sender_email",
    "recipient_email",
    "timestamp",
    "message_count",
    "participants",
    "expires_at",
];

/// A table and the key of one of its items, with the attributes that make reactions apply.
fn item_of(kind: usize, id: &str) -> (&'static str, Value, Value) {
    let s = |v: &str| json!({ "S": v });
    let (table, keys, fixed) = match kind {
        0 => (
            COST,
            json!({"PK": s(&format!("USER#{id}")), "SK": s("PROFILE")}),
            json!({"EntityType": s("User")}),
        ),
        1 => (
            COST,
            json!({"PK": s("ESTIMATION#e1"), "SK": s("METADATA")}),
            json!({}),
        ),
        2 => (
            COST,
            json!({"PK": s("ESTIMATION#e1"), "SK": s(&format!("SERVER#{id}"))}),
            json!({}),
        ),
        3 => (
            COST,
            json!({"PK": s("ESTIMATION#e1"), "SK": s(&format!("DOCUMENT#{id}"))}),
            json!({"DocumentType": s("PDF_PROPOSAL"), "Status": s("PENDING"), "GeneratedBy": s("u1")}),
        ),
        4 => (
            COST,
            json!({"PK": s("USER#u1"), "SK": s(&format!("SHARED#{id}"))}),
            json!({"SharedWithUserId": s("u1")}),
        ),
        5 => (
            "marketplace-dev-reviews-table",
            json!({"reviewId": s(id)}),
            json!({"providerId": s("p1")}),
        ),
        6 => (
            "marketplace-dev-bookings-table",
            json!({"bookingId": s(id)}),
            json!({"customerId": s("u1"), "providerId": s("p1")}),
        ),
        7 => (
            "marketplace-dev-users-table",
            json!({"userId": s(id)}),
            json!({}),
        ),
        8 => (
            "PilotForce-Bookings",
            json!({"bookingId": s(id)}),
            json!({"userId": s("u1")}),
        ),
        9 => ("PilotForce-Users", json!({"userId": s(id)}), json!({})),
        10 => ("PilotForce-Assets", json!({"assetId": s(id)}), json!({})),
        11 => (
            "acsd2p-dev-Conversations",
            json!({"conversation_id": s("c1"), "response_id": s(id)}),
            json!({}),
        ),
        _ => (
            "acsd2p-dev-Sessions",
            json!({"session_id": s(id)}),
            json!({}),
        ),
    };
    let mut image = keys.clone();
    image
        .as_object_mut()
        .unwrap()
        .extend(fixed.as_object().unwrap().clone());
    (table, keys, image)
}

/// Recipients: plain ones, and ones a mail parser could read as more or other.
fn address() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("jane.roe@example.com".to_string()),
        1 => Just("a@b@c".to_string()),
        1 => Just("x@y.com\tBcc: z@w.com".to_string()),
        1 => Just("x@y.com\u{2028}Bcc:z@w.com".to_string()),
        1 => Just("x@y.com\u{b}".to_string()),
        1 => Just("a@x.com:b@y.com".to_string()),
        1 => Just("a@x.com, b@y.com".to_string()),
        1 => Just("Jane <jane@example.com>".to_string()),
        1 => Just("a@.".to_string()),
        1 => Just("a@x..com".to_string()),
        1 => Just("a@bücher.example".to_string()),
        1 => Just("=?utf-8?B?YQ==?=@x.com".to_string()),
        1 => Just(format!("{}@example.com", "a".repeat(300))),
        1 => hostile_string(),
    ]
}

#[derive(Debug, Clone)]
struct Drawn {
    kind: usize,
    id: String,
    email: String,
    event: usize,
    attributes: Vec<(usize, Value)>,
    odd_identity: Option<(usize, String)>,
}

fn drawn() -> impl Strategy<Value = Drawn> {
    (
        // Profiles (0, 7, 9) and what mails them (3, 4, 6, 8) more often than the rest.
        prop::sample::select(vec![0, 0, 0, 1, 2, 3, 3, 4, 4, 5, 6, 6, 7, 7, 7, 8, 8, 9, 9, 9, 10, 11, 12]),
        prop_oneof![4 => prop::sample::select(vec!["u1", "u1", "p1", "r1", "d1", "a1"]).prop_map(str::to_string), 1 => hostile_string()],
        address(),
        0usize..3,
        prop::collection::vec((0..READ.len(), hostile_value()), 0..8),
        prop::option::weighted(0.15, (0usize..4, hostile_string())),
    )
        .prop_map(|(kind, id, email, event, attributes, odd_identity)| Drawn { kind, id, email, event, attributes, odd_identity })
}

fn stream_record(seq: u64, drawn: &Drawn) -> Value {
    let id = match drawn.id.len() {
        1..=64 => drawn.id.clone(),
        _ => "long-or-empty".to_string(),
    };
    let (table, keys, mut image) = item_of(drawn.kind, &id);
    for name in ["Email", "email", "sender_email", "recipient_email"] {
        image[name] = json!({ "S": drawn.email });
    }
    for (name, value) in &drawn.attributes {
        // The key stays the key: a record whose image disagrees with it is the decoder's
        // (tested on its own), not the reactions'.
        if keys.get(READ[*name]).is_none() {
            image[READ[*name]] = value.clone();
        }
    }
    let (event_name, new, old) = match drawn.event {
        0 => ("INSERT", Some(image), None),
        1 => ("MODIFY", Some(image.clone()), Some(image)),
        _ => ("REMOVE", None, Some(image)),
    };
    let mut record = support::record_in(table, seq, event_name, keys, new, old);
    if drawn.event == 2 && seq.is_multiple_of(2) {
        record["userIdentity"] =
            json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
    }
    if let Some((field, value)) = &drawn.odd_identity {
        match field {
            0 => record["dynamodb"]["SequenceNumber"] = json!(value),
            1 => record["eventID"] = json!(value),
            2 => {
                record["eventSourceARN"] =
                    json!(format!("arn:aws:dynamodb:r:1:table/{value}/stream/x"))
            }
            _ => record["dynamodb"]["ApproximateCreationDateTime"] = json!(value),
        }
    }
    record
}

fn config() -> Config {
    Config::from_lookup(|name| match name {
        "PILOTFORCE_ASSETS_BUCKET" => Some("pilotforce-user-assets".to_string()),
        _ => None,
    })
    .unwrap()
}

/// What the outbox's messages were sent to, one list per message.
fn recipients(state: &Path) -> Vec<Vec<String>> {
    let Ok(entries) = std::fs::read_dir(state.join("outbox")) else {
        return Vec::new();
    };
    entries
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .map(|eml| {
            eml.lines()
                .filter_map(|l| l.strip_prefix("To: "))
                .flat_map(|to| to.split(',').map(|a| a.trim().to_string()))
                .collect()
        })
        .collect()
}

fn files_outside(parent: &Path, state: &Path) -> Vec<String> {
    std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != state)
        .map(|p| p.display().to_string())
        .collect()
}

fn cases() -> u32 {
    std::env::var("EDGE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(32)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn no_record_can_crash_stall_escape_or_mail_a_stranger(
        customer in address(),
        provider in address(),
        batch in prop::collection::vec(drawn(), 1..10),
    ) {
        let parent = tempfile::tempdir().unwrap();
        let state_dir = parent.path().join("state");
        // The profiles mail goes to come first, with drawn addresses, so that every reaction
        // that mails has someone to mail; then the drawn records.
        let profiles = [(0, "u1", &customer), (7, "u1", &customer), (7, "p1", &provider), (9, "u1", &customer)]
            .map(|(kind, id, email)| Drawn { kind, id: id.into(), email: email.clone(), event: 0, attributes: Vec::new(), odd_identity: None });
        let records: Vec<Value> = profiles
            .iter()
            .chain(&batch)
            .enumerate()
            .map(|(i, d)| stream_record(i as u64 + 1, d))
            .collect();
        let text = json!({ "Records": records }).to_string();
        let decoded = decode_event(&text, "drawn", None).expect("a well-formed event decodes");
        prop_assert_eq!(decoded.len(), records.len());

        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let catalog = Catalog::with_seed_definitions();
        let state = Arc::new(EmbeddedState::open(&state_dir, catalog.clone(), false).unwrap());
        let mut config = config();
        config.idempotency.completion_notes = false;
        let worker = wiring::worker(&config, wiring::embedded_adapters(state.clone(), catalog));
        let options = BatchOptions { apply_own_change: true, ..BatchOptions::default() };
        let mut reports = Vec::new();
        let outcome = runtime.block_on(worker.process_batch(&decoded, options, &mut |r| reports.push(r)));
        state.compact().expect("the state stays writable");

        prop_assert!(outcome.failure.is_none(), "a record failed: {:?}", outcome.failure);
        prop_assert_eq!(reports.len(), records.len());
        for report in &reports {
            for reaction in &report.reactions {
                let settled = matches!(
                    reaction.outcome,
                    Outcome::Done { .. } | Outcome::Skipped { .. } | Outcome::NotSent { .. }
                        | Outcome::NotApplicable | Outcome::Coalesced { .. }
                        | Outcome::Parked { .. } | Outcome::DuplicateSkipped { .. }
                );
                prop_assert!(settled, "{} on record {}: {:?}", reaction.reaction, report.index, reaction.outcome);
                if let Outcome::Parked { panicked, reason, .. } = &reaction.outcome {
                    prop_assert!(!panicked, "{} panicked: {}", reaction.reaction, reason);
                }
            }
        }
        prop_assert_eq!(files_outside(parent.path(), &state_dir), Vec::<String>::new());
        for to in recipients(&state_dir) {
            prop_assert_eq!(to.len(), 1, "{:?}", to);
            prop_assert!(handlers::ports::mailbox(&to[0]).is_ok(), "{:?}", to);
        }
    }
}

//! Work per record grows with the item no faster than its size (issue 29): for each reaction,
//! records whose items are 1 KB, 10 KB, 100 KB and 400 KB (DynamoDB's largest), the bytes in
//! an attribute the reaction reads (a name it lays out, mails or audits), run through the
//! worker on the embedded state, release build. One line per reaction: milliseconds per
//! record at each size (every reaction the record concerns included, its own change applied
//! first). Prints figures; asserts nothing. Run: `cargo bench --bench item_sizes`.

use std::sync::Arc;
use std::time::Instant;

use ddb_stream_worker::adapters::embedded::EmbeddedState;
use ddb_stream_worker::batch::{BatchOptions, Outcome};
use ddb_stream_worker::catalog::Catalog;
use ddb_stream_worker::decode::decode_event;
use ddb_stream_worker::wiring::{self, config::Config};
use serde_json::{json, Value};
use support::record_in;

#[path = "../support/mod.rs"]
mod support;

use support::COST_TABLE as COST;
const SIZES_KB: [usize; 4] = [1, 10, 100, 400];
/// Records timed per reaction and size.
const RECORDS: u64 = 8;

fn s(text: &str) -> Value {
    json!({ "S": text })
}

fn with(keys: &Value, attributes: Value) -> Value {
    let mut item = keys.clone();
    if let (Some(item), Some(attributes)) = (item.as_object_mut(), attributes.as_object()) {
        item.extend(attributes.clone());
    }
    item
}

/// A change of `keys` in `table`: `new` and `old` are the images' attributes besides the key.
fn change(
    table: &str,
    seq: u64,
    event: &str,
    keys: Value,
    new: Option<Value>,
    old: Option<Value>,
) -> Value {
    let new = new.map(|attributes| with(&keys, attributes));
    let old = old.map(|attributes| with(&keys, attributes));
    record_in(table, seq, event, keys, new, old)
}

/// (setup records, timed records) for reaction `name`, the read attribute holding `pad`.
fn scenario(name: &str, pad: &str) -> (Vec<Value>, Vec<Value>) {
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        seq
    };
    let insert = |table: &str, seq: u64, keys: Value, attributes: Value| {
        change(table, seq, "INSERT", keys, Some(attributes), None)
    };
    let mut setup = Vec::new();
    let mut timed = Vec::new();
    for i in 0..RECORDS {
        let estimation = format!("ESTIMATION#e{i}");
        let key = |pk: &str, sk: &str| json!({"PK": s(pk), "SK": s(sk)});
        let metadata = |seq, project: &str| {
            insert(
                COST,
                seq,
                key(&estimation, "METADATA"),
                json!({"EstimationId": s(&format!("e{i}")), "ProjectName": s(project)}),
            )
        };
        if i == 0 {
            // The profiles mail goes to.
            setup.push(insert(COST, next(), key("USER#u1", "PROFILE"), json!({"EntityType": s("User"), "UserId": s("u1"), "Email": s("jane.roe@example.com"), "FirstName": s("Jane")})));
            setup.push(insert(
                "marketplace-dev-users-table",
                next(),
                json!({"userId": s("p1")}),
                json!({"email": s("p1@example.com"), "name": s("Pat")}),
            ));
            setup.push(insert(
                "PilotForce-Users",
                next(),
                json!({"userId": s("u1")}),
                json!({"email": s("u1@example.com"), "name": s("Uma")}),
            ));
        }
        let record = match name {
            "audit-log" => change(
                COST,
                next(),
                "MODIFY",
                key(&format!("USER#a{i}"), "PROFILE"),
                Some(json!({"Bio": s(pad)})),
                Some(json!({"Bio": s("short")})),
            ),
            "estimation-totals" => {
                setup.push(metadata(next(), "p"));
                insert(
                    COST,
                    next(),
                    key(&estimation, "SERVER#s1"),
                    json!({"ServerName": s(pad), "EstimatedMonthlyCost": {"N": "120.5"}}),
                )
            }
            "proposal-pdf" => {
                setup.push(metadata(next(), pad));
                setup.push(insert(
                    COST,
                    next(),
                    key(&estimation, "SERVER#s1"),
                    json!({"ServerName": s(pad), "EstimatedMonthlyCost": {"N": "99"}}),
                ));
                insert(
                    COST,
                    next(),
                    key(&estimation, "DOCUMENT#d1"),
                    json!({"DocumentType": s("PDF_PROPOSAL"), "Status": s("PENDING"), "GeneratedBy": s("u1"), "DocumentId": s("d1"), "EstimationId": s(&format!("e{i}")), "FileName": s("proposal.pdf")}),
                )
            }
            "proposal-cleanup" => change(
                COST,
                next(),
                "REMOVE",
                key(&estimation, "DOCUMENT#d1"),
                None,
                Some(
                    json!({"DocumentType": s("PDF_PROPOSAL"), "Status": s("COMPLETED"), "S3Key": s(&format!("proposals/e{i}/d1/p.pdf")), "FileName": s(pad)}),
                ),
            ),
            "share-notification" => insert(
                COST,
                next(),
                key("USER#u1", &format!("SHARED#e{i}")),
                json!({"SharedWithUserId": s("u1"), "SharedByUserId": s("u2"), "EstimationId": s(&format!("e{i}")), "EstimationName": s(pad), "Message": s(pad)}),
            ),
            "provider-rating" => insert(
                "marketplace-dev-reviews-table",
                next(),
                json!({"reviewId": s(&format!("r{i}"))}),
                json!({"providerId": s("p1"), "bookingId": s(&format!("b{i}")), "rating": {"N": "4"}, "createdAt": s("2025-01-01T00:00:00Z"), "comment": s(pad)}),
            ),
            "marketplace-booking-mail" => insert(
                "marketplace-dev-bookings-table",
                next(),
                json!({"bookingId": s(&format!("b{i}"))}),
                json!({"providerId": s("p1"), "customerId": s("u1"), "status": s("PENDING"), "serviceType": s(pad)}),
            ),
            "pilotforce-booking-mail" => insert(
                "PilotForce-Bookings",
                next(),
                json!({"bookingId": s(&format!("b{i}"))}),
                json!({"userId": s("u1"), "status": s("pending"), "jobName": s(pad), "location": s(pad)}),
            ),
            "asset-cleanup" => change(
                "PilotForce-Assets",
                next(),
                "REMOVE",
                json!({"assetId": s(&format!("a{i}"))}),
                None,
                Some(json!({"s3Key": s(&format!("assets/a{i}.jpg")), "name": s(pad)})),
            ),
            _ => insert(
                "acsd2p-dev-Conversations",
                next(),
                json!({"conversation_id": s("c1"), "response_id": s(&format!("m{i}"))}),
                json!({"sender_email": s("a@example.com"), "timestamp": s(&format!("2025-11-17T09:00:0{i}Z")), "body": s(pad)}),
            ),
        };
        timed.push(record);
    }
    (setup, timed)
}

const REACTIONS: [&str; 10] = [
    "audit-log",
    "estimation-totals",
    "proposal-pdf",
    "proposal-cleanup",
    "share-notification",
    "provider-rating",
    "marketplace-booking-mail",
    "pilotforce-booking-mail",
    "asset-cleanup",
    "thread-stats",
];

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = Config::from_lookup(|name| match name {
        "PILOTFORCE_ASSETS_BUCKET" => Some("pilotforce-user-assets".into()),
        _ => None,
    })
    .unwrap();
    println!(
        "ms per record, by item size ({RECORDS} records each; every reaction the record concerns):"
    );
    println!(
        "{:<26}{:>10}{:>10}{:>10}{:>10}",
        "reaction", "1 KB", "10 KB", "100 KB", "400 KB"
    );
    for name in REACTIONS {
        let mut line = format!("{name:<26}");
        for kb in SIZES_KB {
            // The item's other attributes and names take a few hundred bytes; two of these
            // scenarios' items carry the text twice.
            let copies = match name {
                "share-notification" | "pilotforce-booking-mail" => 2,
                _ => 1,
            };
            let pad = "x".repeat((kb * 1024).saturating_sub(600) / copies);
            let dir = tempfile::tempdir().unwrap();
            let catalog = Catalog::with_seed_definitions();
            let state = Arc::new(EmbeddedState::open(dir.path(), catalog.clone(), false).unwrap());
            let mut config = config.clone();
            config.idempotency.completion_notes = false;
            let worker = wiring::worker(&config, wiring::embedded_adapters(state.clone(), catalog));
            let options = BatchOptions {
                apply_own_change: true,
                ..BatchOptions::default()
            };
            let (setup, timed) = scenario(name, &pad);
            let decode = |records: &[Value]| {
                decode_event(&json!({ "Records": records }).to_string(), "bench", None).unwrap()
            };
            let (setup, timed) = (decode(&setup), decode(&timed));
            runtime.block_on(worker.process_batch(&setup, options, &mut |_| {}));
            let mut applied = 0;
            let started = Instant::now();
            let outcome = runtime.block_on(worker.process_batch(&timed, options, &mut |report| {
                applied += report
                    .reactions
                    .iter()
                    .filter(|r| r.reaction == name && matches!(r.outcome, Outcome::Done { .. }))
                    .count();
            }));
            let ms = started.elapsed().as_secs_f64() * 1000.0 / timed.len() as f64;
            assert!(
                outcome.failure.is_none(),
                "{name} at {kb} KB: {:?}",
                outcome.failure
            );
            assert_eq!(
                applied,
                timed.len(),
                "{name} at {kb} KB ran on every record"
            );
            line.push_str(&format!("{ms:>10.2}"));
        }
        println!("{line}");
    }
}

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

const COST: &str = "aws-cost-platform-enhanced";
const SIZES_KB: [usize; 4] = [1, 10, 100, 400];
/// Records timed per reaction and size.
const RECORDS: u64 = 8;

fn s(text: &str) -> Value {
    json!({ "S": text })
}

fn record(
    table: &str,
    seq: u64,
    event: &str,
    keys: Value,
    new: Option<Value>,
    old: Option<Value>,
) -> Value {
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": 1_733_000_000 + seq,
        "Keys": keys,
        "SequenceNumber": format!("{seq:021}"),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(new) = new {
        dynamodb["NewImage"] = new;
    }
    if let Some(old) = old {
        dynamodb["OldImage"] = old;
    }
    json!({
        "eventID": format!("event-{seq}"),
        "eventName": event,
        "eventSource": "aws:dynamodb",
        "eventSourceARN": format!("arn:aws:dynamodb:us-east-1:1:table/{table}/stream/x"),
        "dynamodb": dynamodb,
    })
}

fn with(keys: &Value, attributes: Value) -> Value {
    let mut item = keys.clone();
    item.as_object_mut()
        .unwrap()
        .extend(attributes.as_object().unwrap().clone());
    item
}

/// (setup records, timed records) for reaction `name`, the read attribute holding `pad`.
/// Sequence numbers start at `seq`.
fn scenario(name: &str, pad: &str, seq: &mut u64) -> (Vec<Value>, Vec<Value>) {
    let mut next = || {
        *seq += 1;
        *seq
    };
    let profile = |next: &mut dyn FnMut() -> u64| {
        let keys = json!({"PK": s("USER#u1"), "SK": s("PROFILE")});
        let item = with(
            &keys,
            json!({"EntityType": s("User"), "UserId": s("u1"), "Email": s("jane.roe@example.com"), "FirstName": s("Jane")}),
        );
        record(COST, next(), "INSERT", keys, Some(item), None)
    };
    let mut setup = Vec::new();
    let mut timed = Vec::new();
    for i in 0..RECORDS {
        let estimation = format!("ESTIMATION#e{i}");
        match name {
            "audit-log" => {
                let keys = json!({"PK": s(&format!("USER#a{i}")), "SK": s("PROFILE")});
                let old = with(&keys, json!({"Bio": s("short")}));
                let new = with(&keys, json!({"Bio": s(pad)}));
                timed.push(record(COST, next(), "MODIFY", keys, Some(new), Some(old)));
            }
            "estimation-totals" => {
                let meta = json!({"PK": s(&estimation), "SK": s("METADATA")});
                setup.push(record(
                    COST,
                    next(),
                    "INSERT",
                    meta.clone(),
                    Some(with(&meta, json!({"EstimationId": s(&format!("e{i}"))}))),
                    None,
                ));
                let keys = json!({"PK": s(&estimation), "SK": s("SERVER#s1")});
                let item = with(
                    &keys,
                    json!({"ServerName": s(pad), "EstimatedMonthlyCost": {"N": "120.5"}}),
                );
                timed.push(record(COST, next(), "INSERT", keys, Some(item), None));
            }
            "proposal-pdf" => {
                if i == 0 {
                    setup.push(profile(&mut next));
                }
                let meta = json!({"PK": s(&estimation), "SK": s("METADATA")});
                setup.push(record(
                    COST,
                    next(),
                    "INSERT",
                    meta.clone(),
                    Some(with(
                        &meta,
                        json!({"EstimationId": s(&format!("e{i}")), "ProjectName": s(pad)}),
                    )),
                    None,
                ));
                let server = json!({"PK": s(&estimation), "SK": s("SERVER#s1")});
                setup.push(record(
                    COST,
                    next(),
                    "INSERT",
                    server.clone(),
                    Some(with(
                        &server,
                        json!({"ServerName": s(pad), "EstimatedMonthlyCost": {"N": "99"}}),
                    )),
                    None,
                ));
                let keys = json!({"PK": s(&estimation), "SK": s("DOCUMENT#d1")});
                let item = with(
                    &keys,
                    json!({"DocumentType": s("PDF_PROPOSAL"), "Status": s("PENDING"), "GeneratedBy": s("u1"), "DocumentId": s("d1"), "EstimationId": s(&format!("e{i}")), "FileName": s("proposal.pdf")}),
                );
                timed.push(record(COST, next(), "INSERT", keys, Some(item), None));
            }
            "proposal-cleanup" => {
                let keys = json!({"PK": s(&estimation), "SK": s("DOCUMENT#d1")});
                let item = with(
                    &keys,
                    json!({"DocumentType": s("PDF_PROPOSAL"), "Status": s("COMPLETED"), "S3Key": s(&format!("proposals/e{i}/d1/p.pdf")), "FileName": s(pad)}),
                );
                timed.push(record(COST, next(), "REMOVE", keys, None, Some(item)));
            }
            "share-notification" => {
                if i == 0 {
                    setup.push(profile(&mut next));
                }
                let keys = json!({"PK": s("USER#u1"), "SK": s(&format!("SHARED#e{i}"))});
                let item = with(
                    &keys,
                    json!({"SharedWithUserId": s("u1"), "SharedByUserId": s("u2"), "EstimationId": s(&format!("e{i}")), "EstimationName": s(pad), "Message": s(pad)}),
                );
                timed.push(record(COST, next(), "INSERT", keys, Some(item), None));
            }
            "provider-rating" => {
                let keys = json!({"reviewId": s(&format!("r{i}"))});
                let item = with(
                    &keys,
                    json!({"providerId": s("p1"), "bookingId": s(&format!("b{i}")), "rating": {"N": "4"}, "createdAt": s("2025-01-01T00:00:00Z"), "comment": s(pad)}),
                );
                timed.push(record(
                    "marketplace-dev-reviews-table",
                    next(),
                    "INSERT",
                    keys,
                    Some(item),
                    None,
                ));
            }
            "marketplace-booking-mail" => {
                if i == 0 {
                    let keys = json!({"userId": s("p1")});
                    setup.push(record(
                        "marketplace-dev-users-table",
                        next(),
                        "INSERT",
                        keys.clone(),
                        Some(with(
                            &keys,
                            json!({"email": s("p1@example.com"), "name": s("Pat")}),
                        )),
                        None,
                    ));
                }
                let keys = json!({"bookingId": s(&format!("b{i}"))});
                let item = with(
                    &keys,
                    json!({"providerId": s("p1"), "customerId": s("u1"), "status": s("PENDING"), "serviceType": s(pad)}),
                );
                timed.push(record(
                    "marketplace-dev-bookings-table",
                    next(),
                    "INSERT",
                    keys,
                    Some(item),
                    None,
                ));
            }
            "pilotforce-booking-mail" => {
                if i == 0 {
                    let keys = json!({"userId": s("u1")});
                    setup.push(record(
                        "PilotForce-Users",
                        next(),
                        "INSERT",
                        keys.clone(),
                        Some(with(
                            &keys,
                            json!({"email": s("u1@example.com"), "name": s("Uma")}),
                        )),
                        None,
                    ));
                }
                let keys = json!({"bookingId": s(&format!("b{i}"))});
                let item = with(
                    &keys,
                    json!({"userId": s("u1"), "status": s("pending"), "jobName": s(pad), "location": s(pad)}),
                );
                timed.push(record(
                    "PilotForce-Bookings",
                    next(),
                    "INSERT",
                    keys,
                    Some(item),
                    None,
                ));
            }
            "asset-cleanup" => {
                let keys = json!({"assetId": s(&format!("a{i}"))});
                let item = with(
                    &keys,
                    json!({"s3Key": s(&format!("assets/a{i}.jpg")), "name": s(pad)}),
                );
                timed.push(record(
                    "PilotForce-Assets",
                    next(),
                    "REMOVE",
                    keys,
                    None,
                    Some(item),
                ));
            }
            _ => {
                let keys = json!({"conversation_id": s("c1"), "response_id": s(&format!("m{i}"))});
                let item = with(
                    &keys,
                    json!({"sender_email": s("a@example.com"), "timestamp": s(&format!("2025-11-17T09:00:0{i}Z")), "body": s(pad)}),
                );
                timed.push(record(
                    "acsd2p-dev-Conversations",
                    next(),
                    "INSERT",
                    keys,
                    Some(item),
                    None,
                ));
            }
        }
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
            config.idempotency.completion_markers = false;
            let worker = wiring::worker(&config, wiring::embedded_adapters(state.clone(), catalog));
            let options = BatchOptions {
                apply_own_change: true,
                ..BatchOptions::default()
            };
            let mut seq = 0;
            let (setup, timed) = scenario(name, &pad, &mut seq);
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

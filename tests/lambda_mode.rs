//! The binary in Lambda mode against a Runtime API served by the test on loopback, with the
//! SDK adapters on DynamoDB Local and moto. Needs `scripts/services start`.

mod support;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue as V;
use serde_json::{json, Value};
use support::runtime_api::RuntimeApi;
use support::services;

/// The function, and its stdout read as it is written: a pipe not drained holds 64 KiB, and a
/// function whose logs fill it blocks on its next line.
struct Function(Child, Option<std::thread::JoinHandle<String>>);

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Function {
    /// Stops the function; everything it wrote to stdout.
    fn stop(&mut self) -> String {
        let _ = self.0.kill();
        let _ = self.0.wait();
        self.1
            .take()
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default()
    }
}

fn start(api: &RuntimeApi) -> (Function, Instant) {
    let started = Instant::now();
    let mut child = services::lambda_function(&api.address, "ddb-stream-worker")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary");
    let mut stdout = child.stdout.take().expect("the function's stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    (Function(child, Some(reader)), started)
}

fn event(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn lambda_mode_answers_batches_failures_and_bad_events() {
    services::require();
    let db = services::dynamodb().await;
    ddb_stream_worker::cli::tables::create_tables(
        &db,
        &[
            "aws-cost-platform-enhanced".into(),
            "marketplace-dev-idempotency-table".into(),
        ],
    )
    .await
    .unwrap();
    let api = RuntimeApi::start();
    let (mut function, started) = start(&api);
    let polled = api.first_poll(Duration::from_secs(30));
    println!(
        "cold start (debug build): {:.1} ms from process start to the first request for an event",
        (polled - started).as_secs_f64() * 1000.0
    );

    // A clean batch: an empty failure list.
    // Deadlines far off where a batch must go through whole, so a loaded machine cannot
    // make the reserve cut it short.
    api.invoke(
        "clean",
        &event("cost-platform-audit.json"),
        Duration::from_secs(600),
    );
    let answer = api.answer("clean", Duration::from_secs(30));
    assert_eq!(
        (answer.kind.as_str(), &answer.body),
        ("response", &json!({"batchItemFailures": []}))
    );

    // A poison record in the middle: its SequenceNumber.
    api.invoke(
        "poison",
        &event("cost-platform-poison-mid-batch.json"),
        Duration::from_secs(600),
    );
    let answer = api.answer("poison", Duration::from_secs(30));
    assert_eq!(answer.kind, "response");
    assert_eq!(
        answer.body,
        json!({"batchItemFailures": [{"itemIdentifier": "400000000000000000700"}]})
    );

    // Every timeout makes progress: under Lambda's default 3 s, 10 s and a minute, each
    // invocation processes at least one record and answers before its deadline (the reserve is
    // a fifth of the time, at most 11 s), naming the first record it did not reach, from
    // which Lambda delivers again until the batch is through. How many records fit in an
    // invocation depends on the machine; that every one moves on does not.
    let audit = event("cost-platform-audit.json");
    for seconds in [3, 10, 60] {
        let mut records = audit["Records"].as_array().unwrap().clone();
        let total = records.len();
        for invocation in 1.. {
            assert!(
                invocation <= total,
                "a {seconds} s timeout: {total} records not through in {total} invocations"
            );
            let id = format!("timeout-{seconds}s-{invocation}");
            api.invoke(
                &id,
                &json!({ "Records": records }),
                Duration::from_secs(seconds),
            );
            let answer = api.answer(&id, Duration::from_secs(seconds + 60));
            let Some(failure) = answer.body["batchItemFailures"].as_array().unwrap().first() else {
                break;
            };
            let from = records
                .iter()
                .position(|r| r["dynamodb"]["SequenceNumber"] == failure["itemIdentifier"])
                .unwrap_or_else(|| panic!("{}: not a record of the batch", answer.body));
            assert!(
                from > 0,
                "a {seconds} s timeout: the invocation made no progress: {}",
                answer.body
            );
            records.drain(..from);
        }
    }
    // A deadline already passed on arrival (clock skew, an emulator) is unknown, not zero.
    for id in ["passed", "passed-again"] {
        let passed = chrono::Utc::now().timestamp_millis() - 60_000;
        api.invoke_until(id, &audit, passed);
        let answer = api.answer(id, Duration::from_secs(30));
        assert_eq!(
            answer.body,
            json!({"batchItemFailures": []}),
            "a deadline in the past"
        );
    }

    // Not a stream event: an error report, and the function keeps serving.
    api.invoke(
        "garbage",
        &json!({"hello": "world"}),
        Duration::from_secs(30),
    );
    let answer = api.answer("garbage", Duration::from_secs(30));
    assert_eq!(answer.kind, "error");
    assert_eq!(answer.body["errorType"], "DecodeError");
    assert!(
        answer.body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Records"),
        "{}",
        answer.body
    );

    // A guarded reaction's lock expires at the invocation's deadline.
    let event_id = services::unique("share-event");
    let mut share = event("cost-platform-share.json");
    let records = share["Records"].as_array_mut().unwrap();
    records.retain(|r| r["dynamodb"]["Keys"]["SK"]["S"] == "SHARED#est456");
    records[0]["eventID"] = json!(event_id);
    api.invoke("share", &share, Duration::from_secs(600));
    assert_eq!(
        api.answer("share", Duration::from_secs(30)).body,
        json!({"batchItemFailures": []})
    );
    let lock = db
        .get_item()
        .table_name("marketplace-dev-idempotency-table")
        .key(
            "idempotencyKey",
            V::S(format!("share-notification#{event_id}")),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the idempotency record");
    assert_eq!(lock["status"], V::S("COMPLETED".into()));
    // The lock expired at the invocation's deadline while it ran (tests/batch.rs watches it);
    // completed, the record keeps only what the stream record gives: its ttl counts from the
    // record's time, so every delivery writes the same item.
    assert!(!lock.contains_key("inProgressExpiry"), "{lock:?}");
    let record_time = share["Records"][0]["dynamodb"]["ApproximateCreationDateTime"]
        .as_i64()
        .unwrap();
    assert_eq!(lock["ttl"], V::N((record_time + 86_400).to_string()));

    drop(api);
    let output = function.stop();
    // Logs are JSON lines; metrics are EMF documents.
    let lines: Vec<Value> = output
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        lines.iter().any(|l| l["span"]["event_id"].is_string()
            && l["span"]["sequence_number"].is_string()
            && l["span"]["reaction"].is_string()),
        "record logs carry eventID, sequence number and reaction"
    );
    assert!(
        lines.iter().any(|l| l["spans"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["requestId"] == "clean"))),
        "and the request id"
    );
    let emf: Vec<&Value> = lines
        .iter()
        .filter(|l| l["_aws"]["CloudWatchMetrics"].is_array())
        .collect();
    assert!(
        emf.iter()
            .any(|m| m["Reaction"] == "audit-log" && m["RecordsProcessed"] == 4),
        "{emf:?}"
    );
    assert!(emf
        .iter()
        .any(|m| m["BatchRecords"] == 4 && m["DynamoDBRequests"].as_u64().is_some_and(|n| n >= 1)));
    assert!(emf.iter().any(|m| m["BatchFailures"] == 1));
    // Every document names the function; each stream of a batch has its iterator age.
    assert!(
        emf.iter().all(|m| m["Function"] == "ddb-stream-worker"),
        "{emf:?}"
    );
    assert!(
        emf.iter()
            .any(|m| m["IteratorAge"].is_number() && m["EventSource"].is_string()),
        "{emf:?}"
    );
    let warnings = lines
        .iter()
        .filter(|l| {
            l["level"] == "WARN"
                && l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("deadline had passed"))
        })
        .count();
    assert_eq!(warnings, 1, "a passed deadline is logged once, at WARN");
}

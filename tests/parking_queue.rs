//! Parking through the SDK adapters, on DynamoDB Local and moto (SQS, S3): a record no retry
//! can fix goes to the failed-records queue whole, the batch goes on; a record too large for a
//! queue message goes to `parked/` in the bucket and the message points at it.

mod support;

use ddb_stream_worker::batch::BatchOptions;
use ddb_stream_worker::decode::decode_event;
use ddb_stream_worker::wiring::{self, config::Config};
use serde_json::{json, Value};
use support::{record_in, services};

fn s(v: &str) -> Value {
    json!({ "S": v })
}

fn message(table: &str, seq: u64, conversation: &str, timestamp: Value, padding: usize) -> Value {
    let keys = json!({"conversation_id": s(conversation), "response_id": s(&format!("m{seq}"))});
    let mut new = keys.clone();
    new["sender_email"] = s("a@example.com");
    new["timestamp"] = timestamp;
    if padding > 0 {
        new["body"] = s(&"x".repeat(padding));
    }
    record_in(table, seq, "INSERT", keys, Some(new), None)
}

/// Fresh tables, a bucket and a queue to park in, and a worker on DynamoDB Local and moto.
struct Parking {
    conversations: String,
    threads: String,
    /// Where audit items go, when the conversations are audited.
    audit: String,
    bucket: String,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    worker: ddb_stream_worker::batch::Worker,
    /// The worker's aggregate-state table (fresh: message ids repeat from run to run).
    state: String,
}

impl Parking {
    async fn set_up(audited: bool) -> Parking {
        services::require();
        let conversations = services::fresh_table("acsd2p-dev-Conversations").await;
        let threads = services::fresh_table("acsd2p-dev-Threads").await;
        let audit = services::fresh_table("aws-cost-platform-enhanced").await;
        let state = services::fresh_table("ddb-stream-worker-aggregate-state").await;
        let bucket = services::unique("parked");
        services::ensure_bucket(&bucket).await;
        let (sqs, queue_url) = services::fresh_queue("failed-records").await;
        let config = Config::from_lookup(|name| match name {
            "ACS_CONVERSATIONS_TABLE" => Some(conversations.clone()),
            "ACS_THREADS_TABLE" => Some(threads.clone()),
            "PARKING_QUEUE_URL" => Some(queue_url.clone()),
            "PARKING_BUCKET" => Some(bucket.clone()),
            "AUDITED_TABLES" => Some(if audited {
                conversations.clone()
            } else {
                String::new()
            }),
            "AUDIT_TABLE" => Some(audit.clone()),
            "AGGREGATE_STATE_TABLE" => Some(state.clone()),
            _ => None,
        })
        .unwrap();
        let moto = services::sdk(&services::moto_endpoint()).await;
        let worker = wiring::worker(
            &config,
            wiring::with_queue_parking(services::local_adapters(&[], None).await, &moto, &config),
        );
        Parking {
            conversations,
            threads,
            audit,
            bucket,
            sqs,
            queue_url,
            worker,
            state,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn records_no_retry_can_fix_go_to_the_queue_and_the_batch_goes_on() {
    let Parking {
        conversations,
        threads,
        bucket,
        sqs,
        queue_url,
        worker,
        state,
        ..
    } = Parking::set_up(false).await;

    // Three conversations; the second's message has a timestamp the statistics cannot read,
    // the fourth's too, and it is larger than a queue message may be.
    let records = [
        message(&conversations, 1, "conv-a", s("2026-01-01T00:00:01Z"), 0),
        message(&conversations, 2, "conv-b", json!({"BOOL": true}), 0),
        message(&conversations, 3, "conv-c", s("2026-01-01T00:00:03Z"), 0),
        message(
            &conversations,
            4,
            "conv-d",
            json!({"BOOL": true}),
            300 * 1024,
        ),
    ];
    // EventIDs of this run: the idempotency table outlives a run, and a record it has seen
    // completed would be skipped.
    let run = services::unique("run");
    let mut records = records;
    for record in records.iter_mut() {
        let id = format!("{run}-{}", record["eventID"].as_str().unwrap());
        record["eventID"] = json!(id);
    }
    let db = services::dynamodb().await;
    for record in &records {
        services::put(&db, &conversations, record["dynamodb"]["NewImage"].clone()).await;
    }
    let text = json!({ "Records": records }).to_string();
    let batch = decode_event(&text, "messages", None).unwrap();
    let outcome = worker
        .process_batch(&batch, BatchOptions::default(), &mut |_| {})
        .await;
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    assert!(outcome.response.batch_item_failures.is_empty());
    for conversation in ["conv-a", "conv-c"] {
        let thread = services::item(&threads, &[("conversation_id", conversation)])
            .await
            .unwrap_or_else(|| panic!("no statistics for {conversation}"));
        assert_eq!(
            thread["message_count"],
            aws_sdk_dynamodb::types::AttributeValue::N("1".into())
        );
    }

    let mut bodies: Vec<Value> = Vec::new();
    for _ in 0..5 {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            // Seen, not taken: the messages stay visible for the redrive below.
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
        for message in received.messages.unwrap_or_default() {
            bodies.push(serde_json::from_str(message.body().unwrap()).unwrap());
        }
        if bodies.len() >= 2 {
            break;
        }
    }
    assert_eq!(bodies.len(), 2, "one message per parked record: {bodies:?}");
    let whole = bodies
        .iter()
        .find(|b| b["Records"].is_array())
        .expect("the small record in the message itself");
    assert_eq!(whole["Records"][0]["eventID"], format!("{run}-event-2"));
    assert_eq!(whole["parked"]["reaction"], "thread-stats");
    assert!(whole["parked"]["reason"]
        .as_str()
        .unwrap()
        .contains("timestamp"));

    let pointer = bodies
        .iter()
        .find(|b| b["parkedObject"].is_string())
        .expect("the large record in S3, the message pointing at it");
    let location = pointer["parkedObject"].as_str().unwrap();
    let key = location
        .strip_prefix(&format!("s3://{bucket}/"))
        .unwrap_or_else(|| panic!("{location} is not in {bucket}"));
    assert!(key.starts_with("parked/"), "{key}");
    let object = services::s3()
        .await
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let stored: Value =
        serde_json::from_slice(&object.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(stored["Records"][0]["eventID"], format!("{run}-event-4"));
    assert_eq!(
        stored["Records"][0]["dynamodb"]["NewImage"]["body"]["S"]
            .as_str()
            .unwrap()
            .len(),
        300 * 1024,
        "kept whole"
    );

    // The application fixes conv-b's message, and its change comes through the stream (the
    // statistics count it); `redrive` runs the queue's records again: conv-b's, already
    // superseded by the fix, goes through and its message is deleted; conv-d (still bad) is
    // parked again.
    let mut fixed = records[1]["dynamodb"]["NewImage"].clone();
    fixed["timestamp"] = s("2026-01-01T00:00:02Z");
    services::put(&db, &conversations, fixed).await;
    let mut fix = message(&conversations, 5, "conv-b", s("2026-01-01T00:00:02Z"), 0);
    fix["eventID"] = json!(format!("{run}-fix"));
    fix["eventName"] = json!("MODIFY");
    fix["dynamodb"]["Keys"]["response_id"] = s("m2");
    fix["dynamodb"]["NewImage"]["response_id"] = s("m2");
    fix["dynamodb"]["OldImage"] = records[1]["dynamodb"]["NewImage"].clone();
    let fix = decode_event(&json!({ "Records": [fix] }).to_string(), "fix", None).unwrap();
    let outcome = worker
        .process_batch(&fix, BatchOptions::default(), &mut |_| {})
        .await;
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    let output = services::binary()
        .env("ACS_CONVERSATIONS_TABLE", &conversations)
        .env("ACS_THREADS_TABLE", &threads)
        .env("AGGREGATE_STATE_TABLE", &state)
        .env("PARKING_QUEUE_URL", &queue_url)
        .env("PARKING_BUCKET", &bucket)
        .env("AUDITED_TABLES", "")
        // --endpoint-url for DynamoDB; the per-service variables send S3 and SQS to moto.
        .args(["redrive", "--queue-url", &queue_url, "--endpoint-url"])
        .arg(services::dynamodb_endpoint())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "one parked again: {stderr}");
    assert!(
        stderr.contains("1 record(s) went through, 1 parked again"),
        "{stderr}"
    );
    let thread = services::item(&threads, &[("conversation_id", "conv-b")])
        .await
        .expect("conv-b counted after the redrive");
    assert_eq!(
        thread["message_count"],
        aws_sdk_dynamodb::types::AttributeValue::N("1".into())
    );
    let left = services::receive(&sqs, &queue_url).await;
    assert_eq!(left.len(), 1, "conv-d's new message only: {left:?}");
    assert!(left[0].body().unwrap().contains("parkedObject"));
}

/// A permanent AWS error: the audit item of a message whose attribute names are long is over
/// DynamoDB's 400 KB item limit, so BatchWriteItem refuses the whole request. Only that record's
/// audit entry is parked; the audit entries of the records around it are stored, and the
/// record's other reaction (thread statistics) still ran.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_the_service_refuses_parks_only_its_record() {
    let Parking {
        conversations,
        threads,
        audit,
        sqs,
        queue_url,
        worker,
        ..
    } = Parking::set_up(true).await;
    let run = services::unique("run");
    let mut records: Vec<Value> = ["conv-a", "conv-b", "conv-c"]
        .iter()
        .enumerate()
        .map(|(i, conversation)| {
            let mut record = message(
                &conversations,
                i as u64 + 1,
                conversation,
                s("2026-01-01T00:00:01Z"),
                0,
            );
            record["eventID"] = json!(format!("{run}-{i}"));
            record
        })
        .collect();
    // Six attributes named with 60,000 characters each: a 360 KB item the application may
    // write, whose audit entry names every changed attribute twice (over 700 KB).
    for n in 0..6 {
        let name = format!("{n}{}", "n".repeat(60_000));
        records[1]["dynamodb"]["NewImage"][name] = s("v");
    }
    let text = json!({ "Records": records }).to_string();
    let batch = decode_event(&text, "messages", None).unwrap();
    let mut reports = Vec::new();
    let outcome = worker
        .process_batch(&batch, BatchOptions::default(), &mut |r| {
            reports.push(serde_json::to_value(r).unwrap())
        })
        .await;
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    assert!(outcome.response.batch_item_failures.is_empty());
    let audit_of = |report: &Value| support::reaction(report, "audit-log").clone();
    assert_eq!(audit_of(&reports[1])["outcome"], "parked", "{}", reports[1]);
    assert!(
        audit_of(&reports[1])["reason"]
            .as_str()
            .unwrap()
            .contains("ValidationException"),
        "{}",
        reports[1]
    );
    for report in [&reports[0], &reports[2]] {
        assert_eq!(audit_of(report)["outcome"], "done", "{report}");
    }
    let audited: Vec<String> = services::audit_items(&audit)
        .await
        .iter()
        .map(|i| format!("{i:?}"))
        .collect();
    assert_eq!(audited.len(), 2, "the records around it: {audited:?}");
    assert!(audited.iter().any(|a| a.contains("conv-a")));
    assert!(audited.iter().any(|a| a.contains("conv-c")));
    let stats = services::item(&threads, &[("conversation_id", "conv-b")]).await;
    assert!(stats.is_some(), "its other reaction still ran");

    let received = services::receive(&sqs, &queue_url).await;
    assert_eq!(received.len(), 1, "{received:?}");
    let body: Value = serde_json::from_str(received[0].body().unwrap()).unwrap();
    assert_eq!(body["parked"]["reaction"], "audit-log", "{body}");
}

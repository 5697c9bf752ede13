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

#[tokio::test(flavor = "multi_thread")]
async fn records_no_retry_can_fix_go_to_the_queue_and_the_batch_goes_on() {
    services::require();
    let conversations = services::fresh_table("acsd2p-dev-Conversations").await;
    let threads = services::fresh_table("acsd2p-dev-Threads").await;
    let bucket = services::unique("parked");
    services::ensure_bucket(&bucket).await;
    let moto = services::sdk(&services::moto_endpoint()).await;
    let sqs = aws_sdk_sqs::Client::new(&moto);
    let queue_url = sqs
        .create_queue()
        .queue_name(services::unique("failed-records"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let config = Config::from_lookup(|name| match name {
        "ACS_CONVERSATIONS_TABLE" => Some(conversations.clone()),
        "ACS_THREADS_TABLE" => Some(threads.clone()),
        "PARKING_QUEUE_URL" => Some(queue_url.clone()),
        "PARKING_BUCKET" => Some(bucket.clone()),
        "AUDITED_TABLES" => Some(String::new()),
        _ => None,
    })
    .unwrap();
    let adapters = services::local_adapters(&[], None).await;
    let worker = wiring::worker(
        &config,
        wiring::with_queue_parking(adapters, &moto, &config),
    );

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
    assert_eq!(whole["Records"][0]["eventID"], "event-2");
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
    assert_eq!(stored["Records"][0]["eventID"], "event-4");
    assert_eq!(
        stored["Records"][0]["dynamodb"]["NewImage"]["body"]["S"]
            .as_str()
            .unwrap()
            .len(),
        300 * 1024,
        "kept whole"
    );
}

//! `capture` on DynamoDB Local: what an application wrote, read back from the stream into a
//! Lambda event file, replays on the embedded state to the same ratings as the live run; a
//! span from a sequence number, and exactly the range an on-failure message names; a range
//! the stream no longer holds is said to be gone. Needs `scripts/services start`.

mod support;

use std::path::Path;

use aws_sdk_dynamodb::types::AttributeValue as V;
use serde_json::{json, Value};
use support::reviews::{stored_figures, ReviewTables, PROVIDERS};
use support::services;

/// `capture ARGS -o FILE` on DynamoDB Local: (exit code, stdout + stderr).
fn capture(args: &[&str], output: &Path) -> (i32, String) {
    let run = services::binary()
        .arg("capture")
        .args(args)
        .args(["--endpoint-url", &services::dynamodb_endpoint()])
        .arg("-o")
        .arg(output)
        .output()
        .unwrap();
    (
        run.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&run.stdout).to_string() + &String::from_utf8_lossy(&run.stderr),
    )
}

fn records(file: &Path) -> Vec<Value> {
    let event: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    event["Records"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_captured_stream_replays_to_the_ratings_of_the_live_run() {
    services::require();
    let tables = ReviewTables::fresh().await;
    let db = services::dynamodb().await;
    tables.write(&db).await;
    let dir = tempfile::tempdir().unwrap();

    // The live run: `stream` on DynamoDB Local.
    let live = tables.stream_once(dir.path()).output().unwrap();
    assert!(live.status.success(), "{live:?}");
    let live_figures = stored_figures(&db, &tables.providers).await;

    // Captured whole, as delivered: the stream's ARN as eventSourceARN, every record.
    let file = dir.path().join("captured.json");
    let (code, output) = capture(&["--table", &tables.reviews], &file);
    assert_eq!(code, 0, "{output}");
    let (arn, in_stream) = services::read_stream(&tables.reviews).await;
    let captured = records(&file);
    assert_eq!(captured.len(), in_stream.len(), "{output}");
    assert!(
        output.contains(&format!("wrote {} record(s)", in_stream.len())),
        "{output}"
    );
    assert!(!output.contains("gone"), "{output}");
    assert!(captured.iter().all(|r| r["eventSourceARN"] == arn.as_str()));
    assert!(captured
        .iter()
        .all(|r| r["dynamodb"]["ApproximateCreationDateTime"].is_number()));
    // Beside the events, the table's key schema as DescribeTable gives it, for replay.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("captured.json.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(schema[0]["Table"]["TableName"], tables.reviews.as_str());
    assert_eq!(schema[0]["Table"]["KeySchema"][0]["KeyType"], "HASH");

    // Replayed on the embedded state as it is (its own providers and state tables, under
    // the seed's names): the same figures as the live run.
    let state = dir.path().join("state");
    let replay = services::binary()
        .env("AUDITED_TABLES", "")
        .env("MARKETPLACE_REVIEWS_TABLE", &tables.reviews)
        .arg("replay")
        .arg(&file)
        .arg("--state")
        .arg(&state)
        .output()
        .unwrap();
    assert!(replay.status.success(), "{replay:?}");
    let shown = services::binary()
        .args([
            "state",
            "show",
            "--table",
            "marketplace-dev-providers-table",
            "--state",
        ])
        .arg(&state)
        .output()
        .unwrap();
    assert!(shown.status.success(), "{shown:?}");
    let replayed: Vec<Value> = String::from_utf8_lossy(&shown.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for provider in PROVIDERS {
        let item = replayed
            .iter()
            .find(|i| i["providerId"]["S"] == provider)
            .unwrap_or_else(|| panic!("{provider} in the replayed state: {replayed:?}"));
        let number = |name: &str| V::N(item[name]["N"].as_str().unwrap_or("-").to_string());
        assert_eq!(
            (number("ratingSum"), number("reviewCount"), number("rating")),
            live_figures[provider],
            "{provider}"
        );
    }

    // From a sequence number on: that record and those after it.
    let sequence = |i: usize| {
        in_stream[i]
            .dynamodb
            .as_ref()
            .and_then(|d| d.sequence_number.clone())
            .unwrap()
    };
    let from = sequence(100);
    let (code, output) = capture(&["--table", &tables.reviews, "--from", &from], &file);
    assert_eq!(code, 0, "{output}");
    let tail = records(&file);
    assert_eq!(tail.len(), in_stream.len() - 100, "{output}");
    assert_eq!(tail[0]["dynamodb"]["SequenceNumber"], from.as_str());

    // Exactly what an on-failure message names, and a range that is gone.
    let shard_id = services::stream_shards(&tables.reviews).await.remove(0);
    let message = |start: &str, end: &str| {
        json!({
            "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": start, "endSequenceNumber": end,
                "batchSize": 3, "streamArn": arn,
            },
        })
    };
    let named = message(&sequence(10), &sequence(12));
    let gone = message("000000000000000000001", "000000000000000000001");
    let messages = dir.path().join("messages.jsonl");
    std::fs::write(&messages, format!("{named}\n{gone}\n")).unwrap();
    let (code, output) = capture(&["--message", messages.to_str().unwrap()], &file);
    assert_eq!(code, 1, "a range is gone: {output}");
    assert!(output.contains("wrote 3 record(s)"), "{output}");
    assert!(
        output.contains("gone:") && output.contains("no longer in"),
        "{output}"
    );
    let named_records = records(&file);
    assert_eq!(
        named_records[0]["dynamodb"]["SequenceNumber"],
        sequence(10).as_str()
    );
    assert_eq!(
        named_records[2]["dynamodb"]["SequenceNumber"],
        sequence(12).as_str()
    );

    // A shard the stream does not have is refused, naming those it has.
    let (code, output) = capture(
        &["--table", &tables.reviews, "--shard", "shardId-nope"],
        &file,
    );
    assert_eq!(code, 2, "{output}");
    assert!(output.contains(&shard_id), "{output}");
}

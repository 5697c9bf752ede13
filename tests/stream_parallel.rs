//! `stream` with a `ParallelizationFactor`, on DynamoDB Local: the reviews of a few providers
//! (one provider's reviews are many items, so their records go to every delivery) are
//! delivered by concurrent deliveries of one shard, which overlap in time, and every
//! provider's rating comes out exact; so it does with a factor of 1. Needs
//! `scripts/services start`.

mod support;

use serde_json::{json, Value};
use support::reviews::{expected_figures, stored_figures, ReviewTables};
use support::services;

/// `stream --once --json` over the reviews with `factor` concurrent deliveries per shard; the
/// batch lines it printed.
async fn scenario(factor: u32) -> Vec<Value> {
    services::require();
    let tables = ReviewTables::fresh().await;
    let db = services::dynamodb().await;
    let remaining = tables.write(&db).await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mapping.json");
    let settings = json!({
        "ParallelizationFactor": factor, "BatchSize": 10,
        "FunctionResponseTypes": ["ReportBatchItemFailures"], "MaximumRetryAttempts": 5,
    });
    std::fs::write(&config, settings.to_string()).unwrap();
    let output = tables
        .stream_once(dir.path())
        .arg("--json")
        // The counts as the run goes, not only at its end.
        .args(["--counts-interval", "0"])
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        !dir.path().join("failures.jsonl").exists(),
        "nothing given up on: {stdout}"
    );

    // Every provider's figures are exactly those of the reviews that remain.
    assert_eq!(
        stored_figures(&db, &tables.providers).await,
        expected_figures(&remaining),
        "factor {factor}: {stdout}"
    );

    // Lambda's counts: every record polled and invoked at least once, none dropped.
    let counts = lines
        .iter()
        .rev()
        .find(|l| l["when"] == "at the end")
        .unwrap_or_else(|| panic!("no counts at the end: {stdout}"));
    assert!(lines.iter().any(|l| l["when"] == "so far"), "{stdout}");
    let polled = counts["eventCounts"]["PolledEventCount"].as_u64().unwrap();
    let (_, in_stream) = services::read_stream(&tables.reviews).await;
    assert_eq!(polled, in_stream.len() as u64, "{counts}");
    assert!(counts["eventCounts"]["InvokedEventCount"].as_u64().unwrap() >= polled);
    assert_eq!(counts["eventCounts"]["DroppedEventCount"], 0, "{counts}");
    assert!(
        counts["shards"].as_object().is_some_and(|s| !s.is_empty()),
        "the lag per shard: {counts}"
    );
    lines
        .into_iter()
        .filter(|l| l["outcome"] == "done")
        .collect()
}

/// (delivery, started, finished) of each batch that was done.
fn spans(batches: &[Value]) -> Vec<(u64, String, String)> {
    batches
        .iter()
        .map(|b| {
            (
                b["delivery"].as_u64().unwrap_or(0),
                b["startedAt"].as_str().unwrap().to_string(),
                b["finishedAt"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn four_deliveries_of_one_shard_overlap_and_every_rating_is_exact() {
    let batches = scenario(4).await;
    let spans = spans(&batches);
    let deliveries: std::collections::BTreeSet<u64> = spans.iter().map(|s| s.0).collect();
    assert_eq!(deliveries.len(), 4, "every delivery had records: {spans:?}");
    // Times in RFC 3339 with the same offset compare as text.
    let overlapping = spans
        .iter()
        .any(|a| spans.iter().any(|b| a.0 != b.0 && a.1 < b.2 && b.1 < a.2));
    assert!(overlapping, "two deliveries ran at once: {spans:?}");
}

#[tokio::test]
async fn one_delivery_per_shard_gives_the_same_ratings() {
    let batches = scenario(1).await;
    assert!(batches.iter().all(|b| b.get("delivery").is_none()));
    // One delivery: its batches follow each other.
    let spans = spans(&batches);
    for pair in spans.windows(2) {
        assert!(pair[0].2 <= pair[1].1, "{spans:?}");
    }
}

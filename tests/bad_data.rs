//! Data the application got wrong is not a failure of the worker: a review whose rating is not
//! a number from 1 to 5, a line item whose cost is not a number. The reaction leaves the item
//! out of its computation, names it in its result (item, attribute, value) and in a WARN log
//! line, and the batch goes on: nothing blocks the provider's or the estimation's later changes.

mod support;

use std::path::Path;

use serde_json::{json, Value};
use support::cli::{self, table};
use support::{record, record_in};

const REVIEWS: &str = "marketplace-dev-reviews-table";
const PROVIDERS: &str = "marketplace-dev-providers-table";

fn s(v: &str) -> Value {
    json!({ "S": v })
}

fn review(seq: u64, id: &str, provider: &str, rating: Value) -> Value {
    let keys = json!({"reviewId": s(id)});
    let mut new = keys.clone();
    new["providerId"] = s(provider);
    new["bookingId"] = s(&format!("booking-{id}"));
    new["createdAt"] = s(&format!("2026-01-01T00:00:{seq:02}Z"));
    new["rating"] = rating;
    record_in(REVIEWS, seq, "INSERT", keys, Some(new), None)
}

/// Replay `records` as one file beside the state; the exit code, the JSON lines and the log.
fn replay(state: &Path, name: &str, records: &[Value]) -> (i32, Vec<Value>, String) {
    cli::replay_records(&state.parent().unwrap().join(name), state, records)
}

/// The parked records under the state's `parked/`, as (file name, content).
fn parked(state: &Path) -> Vec<(String, Value)> {
    let Ok(files) = std::fs::read_dir(state.join("parked")) else {
        return Vec::new();
    };
    let mut parked: Vec<(String, Value)> = files
        .map(|f| f.unwrap().path())
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect();
    parked.sort_by(|a, b| a.0.cmp(&b.0));
    parked
}

fn provider(state: &Path, id: &str) -> Value {
    table(state, PROVIDERS)
        .into_iter()
        .find(|p| p["providerId"]["S"] == id)
        .unwrap_or_else(|| panic!("no aggregate for {id}"))
}

#[test]
fn a_review_with_a_rating_that_is_not_a_number_is_left_out_and_blocks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (code, lines, log) = replay(
        &state,
        "reviews.json",
        &[
            review(1, "r1", "pa", json!({"N": "4"})),
            review(2, "bad", "pa", s("five")),
            review(3, "r3", "pb", json!({"N": "2"})),
            review(4, "r4", "pc", json!({"N": "7"})),
            review(5, "r5", "pc", json!({"N": "5"})),
        ],
    );
    assert_eq!(code, 3, "completed, with records parked: {log}");
    let response = lines.last().unwrap();
    assert_eq!(response, &json!({"batchItemFailures": []}));
    for (id, sum, count) in [("pa", "4", "1"), ("pb", "2", "1"), ("pc", "5", "1")] {
        let aggregate = provider(&state, id);
        assert_eq!(aggregate["ratingSum"]["N"], sum, "{id}");
        assert_eq!(aggregate["reviewCount"]["N"], count, "{id}");
    }
    // The records that carried them are parked whole, each with its reason, for a person to
    // see and to redrive once the application fixed the review.
    let parked = parked(&state);
    assert_eq!(parked.len(), 2, "{parked:?}");
    for ((_, content), (id, value)) in parked
        .iter()
        .zip([("bad", s("five")), ("r4", json!({"N": "7"}))])
    {
        let record = &content["Records"][0];
        assert_eq!(record["dynamodb"]["Keys"]["reviewId"]["S"], id, "{content}");
        assert_eq!(
            record["dynamodb"]["NewImage"]["rating"], value,
            "kept whole"
        );
        assert!(record["dynamodb"]["NewImage"]["providerId"]["S"].is_string());
        assert_eq!(content["parked"]["reaction"], "provider-rating");
        assert!(
            content["parked"]["reason"]
                .as_str()
                .unwrap()
                .contains("rating"),
            "{content}"
        );
    }
    let outcome_of =
        |index: usize| support::reaction(&lines[index], "provider-rating")["outcome"].clone();
    assert_eq!(outcome_of(1), "parked");
    assert_eq!(outcome_of(3), "parked");
    let reason_of_bad = lines[1].to_string();
    assert!(
        reason_of_bad.contains("reviewId=bad")
            && reason_of_bad.contains("rating = \\\"five\\\" (text"),
        "the parked outcome names the item, the attribute and the value: {reason_of_bad}"
    );
    // Named where it came in: the record that wrote it (parked) says which review and value,
    // and so does the WARN line.
    let reason_of_r4 = lines[3].to_string();
    assert!(
        reason_of_r4.contains("reviewId=r4") && reason_of_r4.contains("7 (not 1 to 5)"),
        "7 is not a rating from 1 to 5: {reason_of_r4}"
    );
    assert!(
        log.contains("left out of the computation") && log.contains("reviewId=bad"),
        "a WARN line names it: {log}"
    );

    // A later good review of the same provider is counted as usual.
    let (code, lines, _) = replay(
        &state,
        "later.json",
        &[review(6, "r6", "pa", json!({"N": "2"}))],
    );
    assert_eq!(code, 0);
    assert_eq!(lines.last().unwrap(), &json!({"batchItemFailures": []}));
    let aggregate = provider(&state, "pa");
    assert_eq!(aggregate["ratingSum"]["N"], "6");
    assert_eq!(aggregate["reviewCount"]["N"], "2");
    assert_eq!(aggregate["rating"]["N"], "3");
}

#[test]
fn a_line_item_whose_cost_is_not_a_number_is_left_out_of_the_totals() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let line = |seq: u64, sk: &str, cost: Value| {
        let keys = json!({"PK": s("ESTIMATION#bad1"), "SK": s(sk)});
        let mut new = keys.clone();
        new["EstimatedMonthlyCost"] = cost;
        record(seq, "INSERT", keys, Some(new), None)
    };
    let meta_keys = json!({"PK": s("ESTIMATION#bad1"), "SK": s("METADATA")});
    let mut metadata = meta_keys.clone();
    metadata["EntityType"] = s("Estimation");
    let (code, lines, log) = replay(
        &state,
        "lines.json",
        &[
            record(1, "INSERT", meta_keys, Some(metadata), None),
            line(2, "SERVER#good", json!({"N": "100"})),
            line(3, "SERVER#bad", s("a lot")),
            line(4, "STORAGE#good", json!({"N": "10"})),
        ],
    );
    assert_eq!(
        code, 3,
        "completed, with the bad line item's record parked: {log}"
    );
    assert_eq!(lines.last().unwrap(), &json!({"batchItemFailures": []}));
    let parked = parked(&state);
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(
        parked[0].1["Records"][0]["dynamodb"]["NewImage"]["EstimatedMonthlyCost"],
        s("a lot")
    );
    assert_eq!(parked[0].1["parked"]["reaction"], "estimation-totals");
    let items = table(&state, "aws-cost-platform-enhanced");
    let metadata = items
        .iter()
        .find(|i| i["PK"]["S"] == "ESTIMATION#bad1" && i["SK"]["S"] == "METADATA")
        .unwrap();
    let summary = &metadata["EstimationSummary"]["M"];
    assert_eq!(summary["LineItemCount"]["N"], "2", "the usable line items");
    assert_eq!(
        summary["CostBreakdown"]["M"]["Compute"]["N"], "110",
        "100 with the 10 % buffer"
    );
    let totals = lines
        .iter()
        .filter_map(|l| l["reactions"].as_array())
        .flatten()
        .find(|r| r["reaction"] == "estimation-totals" && r["outcome"] == "skipped")
        .unwrap();
    assert_eq!(
        totals["result"]["skipped"],
        json!([{"item": "aws-cost-platform-enhanced ESTIMATION#bad1 SERVER#bad",
                "attribute": "EstimatedMonthlyCost", "value": "a lot"}])
    );
    assert!(log.contains("SERVER#bad"), "{log}");
}

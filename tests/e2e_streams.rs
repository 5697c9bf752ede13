//! End to end from real stream records: the seed applications' writes on DynamoDB Local, read
//! back through the DynamoDB Streams API, wrapped as Lambda delivers them, run through the
//! batch entry point with the SDK adapters. Needs `scripts/services start`.

mod support;

use aws_sdk_dynamodb::types::AttributeValue as V;
use ddb_stream_worker::batch::{BatchOptions, Outcome, Worker};
use ddb_stream_worker::catalog::{seed_definitions, Catalog};
use ddb_stream_worker::config::Config;
use ddb_stream_worker::decode::decode_value;
use ddb_stream_worker::stream_records::lambda_event;
use ddb_stream_worker::{table_setup, wiring};
use support::services;

/// A fresh copy of the cost platform table under a unique name, so this run's stream holds
/// only this run's records.
async fn fresh_cost_table() -> String {
    let name = services::unique("e2e-cost");
    let mut definition = seed_definitions()
        .into_iter()
        .find(|d| d.table_name == "aws-cost-platform-enhanced")
        .unwrap();
    definition.table_name = name.clone();
    let client = services::dynamodb().await;
    table_setup::create_one(&client, &definition)
        .await
        .expect("create table");
    table_setup::create_tables(&client, &["marketplace-dev-idempotency-table".to_string()])
        .await
        .expect("idempotency table");
    name
}

/// A worker whose cost platform table is `table`; `audited` says whether it audits it too.
async fn worker_for(table: &str, audited: bool) -> Worker {
    let config = Config::from_lookup(|name| match name {
        "AUDITED_TABLES" => Some(if audited {
            table.to_string()
        } else {
            String::new()
        }),
        "AUDIT_TABLE" | "COST_TABLE" => Some(table.to_string()),
        _ => None,
    })
    .unwrap();
    let sdk = services::sdk(&services::dynamodb_endpoint()).await;
    let catalog = Catalog::with_seed_definitions();
    // The copy has the cost table's key schema.
    catalog.learn_schema(
        table,
        ddb_stream_worker::catalog::KeySchema {
            hash: "PK".into(),
            range: Some("SK".into()),
        },
    );
    wiring::worker(&config, wiring::sdk_adapters(&sdk, catalog))
}

fn s(v: &str) -> V {
    V::S(v.into())
}

async fn audit_items(table: &str) -> Vec<std::collections::HashMap<String, V>> {
    let scan = services::dynamodb()
        .await
        .scan()
        .table_name(table)
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    scan.items
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.get("EntityType") == Some(&s("AuditLog")))
        .collect()
}

#[tokio::test]
async fn audit_log_from_real_stream_records() {
    services::require();
    let table = fresh_cost_table().await;
    let db = services::dynamodb().await;
    // What the cost platform does: create a user, create and update an estimation, share and unshare it.
    db.put_item()
        .table_name(&table)
        .item("PK", s("USER#u1"))
        .item("SK", s("PROFILE"))
        .item("EntityType", s("User"))
        .item("UserId", s("u1"))
        .item("Email", s("u1@sagesoft.com"))
        .send()
        .await
        .unwrap();
    db.put_item()
        .table_name(&table)
        .item("PK", s("ESTIMATION#e1"))
        .item("SK", s("METADATA"))
        .item("EntityType", s("Estimation"))
        .item("UserId", s("u1"))
        .item("Status", s("DRAFT"))
        .send()
        .await
        .unwrap();
    db.update_item()
        .table_name(&table)
        .key("PK", s("ESTIMATION#e1"))
        .key("SK", s("METADATA"))
        .update_expression("SET #s = :s, UpdatedBy = :u")
        .expression_attribute_names("#s", "Status")
        .expression_attribute_values(":s", s("ACTIVE"))
        .expression_attribute_values(":u", s("u1"))
        .send()
        .await
        .unwrap();
    db.put_item()
        .table_name(&table)
        .item("PK", s("USER#u2"))
        .item("SK", s("SHARED#e1"))
        .item("EntityType", s("SharedEstimation"))
        .item("SharedByUserId", s("u1"))
        .send()
        .await
        .unwrap();
    db.delete_item()
        .table_name(&table)
        .key("PK", s("USER#u2"))
        .key("SK", s("SHARED#e1"))
        .send()
        .await
        .unwrap();

    let (arn, records) = services::read_stream(&table).await;
    assert_eq!(records.len(), 5, "one stream record per write");
    let event = lambda_event(&records, &arn);
    let decoded = decode_value(event.clone(), "stream", None).expect("real stream records decode");
    assert!(decoded.iter().all(|r| r.table == table && r.change.is_ok()));

    let worker = worker_for(&table, true).await;
    let outcome = worker
        .process_batch(&decoded, BatchOptions::default(), &mut |_| {})
        .await;
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    assert_eq!(
        serde_json::to_value(&outcome.response).unwrap(),
        serde_json::json!({"batchItemFailures": []})
    );

    let audits = audit_items(&table).await;
    let mut actions: Vec<String> = audits
        .iter()
        .map(|a| a["Action"].as_s().unwrap().clone())
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            "ESTIMATION_CREATED",
            "ESTIMATION_UPDATED",
            "SHARED_ESTIMATION_CREATED",
            "SHARED_ESTIMATION_DELETED",
            "USER_CREATED"
        ]
    );
    let update = audits
        .iter()
        .find(|a| a["Action"] == s("ESTIMATION_UPDATED"))
        .unwrap();
    let changes = update["Details"].as_m().unwrap()["Changes"].as_m().unwrap();
    assert_eq!(changes["Status"].as_m().unwrap()["Old"], s("DRAFT"));
    assert_eq!(changes["Status"].as_m().unwrap()["New"], s("ACTIVE"));
    let created = audits
        .iter()
        .find(|a| a["Action"] == s("USER_CREATED"))
        .unwrap();
    assert!(
        !format!("{created:?}").contains("u1@sagesoft.com"),
        "email redacted"
    );

    // Re-delivery of the same batch writes nothing new.
    let again = worker
        .process_batch(&decoded, BatchOptions::default(), &mut |_| {})
        .await;
    assert!(again.failure.is_none());
    assert_eq!(audit_items(&table).await.len(), 5);

    // The audit items are in the stream now too; delivered, they trigger nothing: no loop.
    let (_, all) = services::read_stream(&table).await;
    let own_writes = decode_value(lambda_event(&all[5..], &arn), "stream", None).unwrap();
    assert_eq!(
        own_writes.len(),
        5,
        "five audit items were written once each"
    );
    let mut outcomes = Vec::new();
    worker
        .process_batch(&own_writes, BatchOptions::default(), &mut |r| {
            outcomes.extend(r.reactions.iter().map(|x| x.outcome.clone()))
        })
        .await;
    assert!(
        outcomes.iter().all(|o| *o == Outcome::NotApplicable),
        "{outcomes:?}"
    );
    assert_eq!(audit_items(&table).await.len(), 5);
}

#[tokio::test]
async fn estimation_totals_from_real_stream_records() {
    services::require();
    let table = fresh_cost_table().await;
    let db = services::dynamodb().await;
    let n = |v: &str| V::N(v.into());
    db.put_item()
        .table_name(&table)
        .item("PK", s("ESTIMATION#e1"))
        .item("SK", s("METADATA"))
        .item("EntityType", s("Estimation"))
        .item("Version", n("1"))
        .send()
        .await
        .unwrap();
    for (sk, cost) in [
        ("SERVER#a", "247.42"),
        ("STORAGE#b", "45.00"),
        ("DATABASE#c", "1800.00"),
        ("NETWORK_SECURITY", "800.00"),
    ] {
        db.put_item()
            .table_name(&table)
            .item("PK", s("ESTIMATION#e1"))
            .item("SK", s(sk))
            .item("EstimatedMonthlyCost", n(cost))
            .send()
            .await
            .unwrap();
    }
    // A rename in the same batch: no cost change, no extra work.
    db.update_item()
        .table_name(&table)
        .key("PK", s("ESTIMATION#e1"))
        .key("SK", s("SERVER#a"))
        .update_expression("SET ServerName = :n")
        .expression_attribute_values(":n", s("Web"))
        .send()
        .await
        .unwrap();

    let (arn, records) = services::read_stream(&table).await;
    assert_eq!(records.len(), 6);
    let batch = decode_value(lambda_event(&records, &arn), "stream", None).unwrap();
    let worker = worker_for(&table, false).await;
    let mut reports = Vec::new();
    let outcome = worker
        .process_batch(&batch, BatchOptions::default(), &mut |r| {
            reports.push(r.clone())
        })
        .await;
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    assert_eq!(
        outcome.requests.get("TransactWriteItems"),
        Some(&1),
        "{:?} {reports:#?}",
        outcome.requests
    );

    let key = |sk: &str| {
        db.get_item()
            .table_name(&table)
            .key("PK", s("ESTIMATION#e1"))
            .key("SK", s(sk))
            .consistent_read(true)
    };
    let metadata = key("METADATA").send().await.unwrap().item.unwrap();
    let summary = metadata["EstimationSummary"].as_m().unwrap();
    assert_eq!(summary["TotalMonthlyCost"], n("3499.83"));
    assert_eq!(summary["TotalAnnualCost"], n("41997.96"));
    assert_eq!(metadata["Version"], n("2"));

    // The worker's own writes (METADATA updated, CALCULATION# inserted) come back on the
    // stream; delivered, they trigger no recomputation.
    let (_, all) = services::read_stream(&table).await;
    let own = decode_value(lambda_event(&all[6..], &arn), "stream", None).unwrap();
    assert_eq!(
        own.len(),
        2,
        "the summary update and the calculation record"
    );
    let mut outcomes = Vec::new();
    let again = worker
        .process_batch(&own, BatchOptions::default(), &mut |r| {
            outcomes.extend(r.reactions.iter().map(|x| x.outcome.clone()))
        })
        .await;
    assert!(
        outcomes.iter().all(|o| *o == Outcome::NotApplicable),
        "{outcomes:?}"
    );
    assert!(again.requests.is_empty(), "{:?}", again.requests);

    // Re-delivery of the original batch: recomputed, unchanged, nothing written.
    let redelivered = worker
        .process_batch(&batch, BatchOptions::default(), &mut |_| {})
        .await;
    assert!(redelivered.failure.is_none());
    assert_eq!(redelivered.requests.get("TransactWriteItems"), None);
    assert_eq!(
        key("METADATA").send().await.unwrap().item.unwrap()["Version"],
        n("2")
    );
}

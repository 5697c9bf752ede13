//! `tables create` and `replay --endpoint-url` against DynamoDB Local, read back with the SDK.
//! Needs `scripts/services start`.

mod support;

use std::path::Path;

use assert_cmd::Command;
use aws_sdk_dynamodb::types::AttributeValue as V;
use support::services;

fn worker() -> Command {
    let mut cmd = Command::cargo_bin("ddb-stream-worker").unwrap();
    for var in [
        "AUDITED_TABLES",
        "AUDIT_TABLE",
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_PROFILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_REGION", "us-east-1");
    cmd
}

#[tokio::test]
async fn tables_create_is_idempotent_and_replay_writes_through_the_sdk() {
    services::require();
    let endpoint = services::dynamodb_endpoint();
    let created = worker()
        .args(["tables", "create", "--endpoint-url", &endpoint])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let again = worker()
        .args([
            "tables",
            "create",
            "--endpoint-url",
            &endpoint,
            "acsd2p-dev-Sessions",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(again.stdout).unwrap().trim(),
        "acsd2p-dev-Sessions: exists, left alone"
    );
    let described = services::dynamodb()
        .await
        .describe_time_to_live()
        .table_name("acsd2p-dev-Sessions")
        .send()
        .await
        .unwrap();
    assert_eq!(
        described
            .time_to_live_description
            .and_then(|d| d.attribute_name)
            .as_deref(),
        Some("ttl")
    );

    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("events/cost-platform-audit.json");
    for _ in 0..2 {
        let output = worker()
            .arg("replay")
            .arg(&file)
            .args(["--endpoint-url", &endpoint, "--json"])
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines.last().unwrap(),
            &serde_json::json!({"batchItemFailures": []})
        );
        assert!(lines[lines.len() - 2]["batch"]["requests"]["BatchWriteItem"] == 1);
        for record in &lines[..lines.len() - 2] {
            assert_eq!(
                record["applied"], false,
                "the SDK path does not apply the record's own change"
            );
            let keys = &record["reactions"][0]["effects"][0]["keys"];
            let (pk, sk) = (
                keys["PK"]["S"].as_str().unwrap(),
                keys["SK"]["S"].as_str().unwrap(),
            );
            let item = services::dynamodb()
                .await
                .get_item()
                .table_name("aws-cost-platform-enhanced")
                .key("PK", V::S(pk.into()))
                .key("SK", V::S(sk.into()))
                .send()
                .await
                .unwrap()
                .item;
            let item = item.unwrap_or_else(|| panic!("audit item {pk}/{sk} is in DynamoDB Local"));
            assert_eq!(item["EntityType"], V::S("AuditLog".into()));
        }
    }
}

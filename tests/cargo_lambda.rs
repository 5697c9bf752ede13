//! Lambda mode as people try it locally: cargo-lambda's emulator (`cargo lambda watch`) with the
//! binary as its function, invoked with shipped event files (`cargo lambda invoke --data-file`),
//! the SDK pointed at DynamoDB Local and moto. The effects are read back from the services: the
//! audit items, a provider's rating, the stored PDF and the sent mail.
//!
//! The emulator runs with `--only-lambda-apis` and the test starts the binary `cargo test`
//! already built: `cargo lambda watch` would otherwise build it again under the lock `cargo
//! test` holds. Needs `scripts/services start` and cargo-lambda (`scripts/test` installs both;
//! `DSW_CARGO_LAMBDA` names the `cargo-lambda` binary, else it is looked up on PATH).

mod support;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue as V;
use serde_json::Value;
use support::services;

/// A child process ended with the test.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cargo_lambda() -> PathBuf {
    if let Some(path) = std::env::var_os("DSW_CARGO_LAMBDA") {
        return PathBuf::from(path);
    }
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("cargo-lambda"))
        .find(|path| path.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "cargo-lambda is not installed: `scripts/test` installs it (pip install cargo-lambda), \
             or set DSW_CARGO_LAMBDA to its binary"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(port: u16, what: &str) {
    let until = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn table_of(record: &Value) -> String {
    let arn = record["eventSourceARN"].as_str().unwrap();
    arn.split('/').nth(1).unwrap().to_string()
}

/// The shipped event file `name` with eventIDs of this run, its records' writes made in
/// DynamoDB Local first (on AWS the stream reports writes that already happened), written to
/// `dir`; returns the file and the eventIDs.
async fn prepare(
    db: &aws_sdk_dynamodb::Client,
    dir: &Path,
    name: &str,
    run: &str,
) -> (PathBuf, Vec<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(name);
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut ids = Vec::new();
    for record in event["Records"].as_array_mut().unwrap() {
        let id = format!("{run}-{}", record["eventID"].as_str().unwrap());
        record["eventID"] = Value::String(id.clone());
        ids.push(id);
        let table = table_of(record);
        let dynamodb = &record["dynamodb"];
        match record["eventName"].as_str().unwrap() {
            "REMOVE" => {
                let keys: handlers::Item =
                    serde_json::from_value(dynamodb["Keys"].clone()).unwrap();
                db.delete_item()
                    .table_name(&table)
                    .set_key(Some(keys.into()))
                    .send()
                    .await
                    .unwrap();
            }
            _ => services::put(db, &table, dynamodb["NewImage"].clone()).await,
        }
    }
    let file = dir.join(name);
    std::fs::write(&file, event.to_string()).unwrap();
    (file, ids)
}

fn invoke(port: u16, file: &Path) -> Value {
    let output = Command::new(cargo_lambda())
        .args([
            "lambda",
            "invoke",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "--data-file",
        ])
        .arg(file)
        .output()
        .expect("cargo lambda invoke runs");
    assert!(
        output.status.success(),
        "cargo lambda invoke {}: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not a response ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn cargo_lambdas_emulator_runs_the_shipped_events_with_real_effects() {
    services::require();
    let db = services::dynamodb().await;
    ddb_stream_worker::cli::tables::create_tables(
        &db,
        &[
            "aws-cost-platform-enhanced".into(),
            "marketplace-dev-idempotency-table".into(),
            "marketplace-dev-reviews-table".into(),
            "marketplace-dev-providers-table".into(),
            "ddb-stream-worker-aggregate-state".into(),
        ],
    )
    .await
    .unwrap();
    services::ensure_bucket("aws-cost-estimation-documents").await;
    services::verify_sender("notifications@sagesoft.com").await;

    let port = free_port();
    let _emulator = Running(
        Command::new(cargo_lambda())
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
            ])
            .arg(port.to_string())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cargo lambda watch starts"),
    );
    wait_for(port, "cargo lambda watch");
    // The variables the emulator says its function needs, and the services' endpoints.
    // The variables the emulator says its function needs ("_" is its default function).
    let _function = Running(
        services::lambda_function(&format!("http://127.0.0.1:{port}/.rt"), "_")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the function starts"),
    );

    let dir = tempfile::tempdir().unwrap();
    let run = services::unique("cl");
    let mails_before = services::sent_mail().len();
    let mut audited = Vec::new();
    for name in [
        "cost-platform-audit.json",
        "marketplace-reviews.json",
        "cost-platform-proposal-request.json",
    ] {
        let (file, ids) = prepare(&db, dir.path(), name, &run).await;
        if name == "cost-platform-audit.json" {
            audited = ids;
        }
        let response = invoke(port, &file);
        assert_eq!(
            response,
            serde_json::json!({"batchItemFailures": []}),
            "{name} under cargo-lambda's emulator"
        );
    }

    // Audit items, one per change of the audit scenario.
    let audit_items = services::audit_items("aws-cost-platform-enhanced").await;
    let ours = audit_items
        .iter()
        .filter(|item| {
            item.get("Details")
                .and_then(|d| d.as_m().ok())
                .and_then(|d| d.get("EventId"))
                .and_then(|id| id.as_s().ok())
                .is_some_and(|id| audited.contains(id))
        })
        .count();
    assert_eq!(ours, audited.len(), "an audit item per change");

    // The ratings of the providers the reviews scenario names agree with their reviews in the
    // table (every page of it: the table is shared with other tests and the benches).
    let scenario: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("events/marketplace-reviews.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut providers: Vec<String> = scenario["Records"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            ["NewImage", "OldImage"].map(|image| r["dynamodb"][image]["providerId"]["S"].as_str())
        })
        .flatten()
        .map(str::to_string)
        .collect();
    providers.sort();
    providers.dedup();
    assert!(!providers.is_empty());
    let reviews = services::scan_all("marketplace-dev-reviews-table").await;
    for provider in providers {
        let count = reviews
            .iter()
            .filter(|r| r.get("providerId").and_then(|p| p.as_s().ok()) == Some(&provider))
            .count();
        let stored = services::item(
            "marketplace-dev-providers-table",
            &[("providerId", &provider)],
        )
        .await
        .unwrap_or_else(|| panic!("no aggregate for {provider}"));
        assert_eq!(stored["reviewCount"], V::N(count.to_string()), "{provider}");
    }

    // The proposal: completed, its PDF in S3, its mail sent.
    let document = services::item(
        "aws-cost-platform-enhanced",
        &[("PK", "ESTIMATION#est456"), ("SK", "DOCUMENT#doc123")],
    )
    .await
    .unwrap();
    assert_eq!(document["Status"], V::S("COMPLETED".into()));
    let key = document["S3Key"].as_s().unwrap();
    let object = services::s3()
        .await
        .get_object()
        .bucket("aws-cost-estimation-documents")
        .key(key)
        .send()
        .await
        .expect("the PDF is in S3");
    let body = object.body.collect().await.unwrap().into_bytes();
    assert!(body.starts_with(b"%PDF"));
    let mails = services::sent_mail();
    assert!(
        mails[mails_before..]
            .iter()
            .any(|m| m["subject"] == "Your proposal for Client ABC Infrastructure is ready"),
        "the proposal mail went out through moto's SES"
    );
}

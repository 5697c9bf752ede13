//! The local services (scripts/services): where they are, and clients for them. Tests that
//! need them call `require()`, which fails the test with the fix when they are not running:
//! such tests never skip.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use ddb_stream_worker::batch::Adapters;
use ddb_stream_worker::catalog::{seed_definitions, Catalog};
use ddb_stream_worker::cli::tables;
use ddb_stream_worker::wiring;

pub fn dynamodb_endpoint() -> String {
    std::env::var("DSW_DYNAMODB_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8000".into())
}

pub fn moto_endpoint() -> String {
    std::env::var("DSW_MOTO_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:5000".into())
}

fn host_port(endpoint: &str) -> String {
    endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// Panics with the fix when DynamoDB Local or moto is not answering.
pub fn require() {
    for (name, endpoint) in [
        ("DynamoDB Local", dynamodb_endpoint()),
        ("moto server (S3/SES)", moto_endpoint()),
    ] {
        let address = host_port(&endpoint)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next());
        let up =
            address.is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
        assert!(up, "{name} is not running at {endpoint}: start it with `scripts/services start` (the README's test command, scripts/test, does this)");
    }
}

/// SDK configuration for a local endpoint, with local credentials and region.
/// How long the tests' credentials last.
pub const CREDENTIALS_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3600);

pub async fn sdk(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        // Credentials that expire in an hour, as a role session's do: a presigned link must
        // not promise to outlive them.
        .credentials_provider(aws_credential_types::Credentials::new(
            "test",
            "test",
            None,
            Some(std::time::SystemTime::now() + CREDENTIALS_LIFETIME),
            "tests",
        ))
        .load()
        .await
}

/// The adapters the worker builds (its retry policy and timeouts included): DynamoDB Local for
/// tables, moto for S3 and SES, over `http` when given (see `faulty_http`). Each
/// `(copy, seed)` table gets its seed's key schema and indexes.
pub async fn local_adapters(copies: &[(&str, &str)], http: Option<SharedHttpClient>) -> Adapters {
    let catalog = Catalog::with_seed_definitions();
    for (copy, seed) in copies {
        let mut definition = seed_definitions()
            .into_iter()
            .find(|d| d.table_name == *seed)
            .expect("a seed table");
        definition.table_name = copy.to_string();
        catalog.define(&definition);
    }
    let over_http = |config: SdkConfig| match &http {
        Some(client) => config.to_builder().http_client(client.clone()).build(),
        None => config,
    };
    let dynamodb = over_http(sdk(&dynamodb_endpoint()).await);
    let moto = over_http(sdk(&moto_endpoint()).await);
    wiring::sdk_adapters_per_service(&dynamodb, &moto, &moto, catalog)
}

/// A fresh copy of seed table `seed` under a unique name (and the idempotency table), so a
/// test's stream holds only its own records.
pub async fn fresh_table(seed: &str) -> String {
    let name = unique("e2e");
    let mut definition = seed_definitions()
        .into_iter()
        .find(|d| d.table_name == seed)
        .expect("a seed table");
    definition.table_name = name.clone();
    let client = dynamodb().await;
    tables::create_one(&client, &definition)
        .await
        .expect("create table");
    tables::create_tables(&client, &["marketplace-dev-idempotency-table".to_string()])
        .await
        .expect("idempotency table");
    name
}

/// Put an item given in DynamoDB JSON (`{"PK": {"S": "USER#u1"}}`), as the application would.
pub async fn put(db: &aws_sdk_dynamodb::Client, table: &str, item: serde_json::Value) {
    let item: handlers::Item = serde_json::from_value(item).expect("an item in DynamoDB JSON");
    db.put_item()
        .table_name(table)
        .set_item(Some(item.into()))
        .send()
        .await
        .expect("put item");
}

/// The item at `key` (string attributes) in `table`, read consistently.
pub async fn item(
    table: &str,
    key: &[(&str, &str)],
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    let key = key
        .iter()
        .map(|(name, value)| {
            let value = aws_sdk_dynamodb::types::AttributeValue::S(value.to_string());
            (name.to_string(), value)
        })
        .collect();
    dynamodb()
        .await
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
}

pub async fn dynamodb() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk(&dynamodb_endpoint()).await)
}

pub async fn streams() -> aws_sdk_dynamodbstreams::Client {
    aws_sdk_dynamodbstreams::Client::new(&sdk(&dynamodb_endpoint()).await)
}

pub async fn s3() -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(&sdk(&moto_endpoint()).await)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

pub async fn ses() -> aws_sdk_ses::Client {
    aws_sdk_ses::Client::new(&sdk(&moto_endpoint()).await)
}

/// Create `bucket` on moto (fine if it exists).
pub async fn ensure_bucket(bucket: &str) {
    let client = s3().await;
    if client.head_bucket().bucket(bucket).send().await.is_err() {
        client
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("create bucket on moto");
    }
}

/// Verify `sender` on moto's SES, as real SES requires before it sends.
pub async fn verify_sender(sender: &str) {
    ses()
        .await
        .verify_email_identity()
        .email_address(sender)
        .send()
        .await
        .expect("verify sender on moto");
}

/// Every message moto's SES has accepted: (source, destinations, subject, body).
pub fn sent_mail() -> Vec<serde_json::Value> {
    // moto serializes its whole state for this endpoint; while other tests write to it, it
    // can answer with an error page instead. A few tries, then the error.
    let mut attempts = 0;
    let json: serde_json::Value = loop {
        let data = http_get(&moto_endpoint(), "/moto-api/data.json");
        match serde_json::from_str(&data) {
            Ok(json) => break json,
            Err(e) if attempts < 5 => {
                attempts += 1;
                eprintln!("moto data.json unreadable ({e}); trying again");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => panic!("moto data.json: {e}: {}", &data[..data.len().min(500)]),
        }
    };
    json["ses"]["Message"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A plain HTTP/1.0 GET (test-only; moto's data endpoint needs nothing more).
fn http_get(endpoint: &str, path: &str) -> String {
    let host = host_port(endpoint);
    let mut stream = TcpStream::connect(&host).expect("connect");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// The audit items in `table` (a consistent scan).
/// Every item of `table`, all pages: a table the benches and earlier runs filled is more than
/// one Scan's 1 MB.
pub async fn scan_all(
    table: &str,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    dynamodb()
        .await
        .scan()
        .table_name(table)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap()
}

pub async fn audit_items(
    table: &str,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    let audit_log = aws_sdk_dynamodb::types::AttributeValue::S("AuditLog".into());
    scan_all(table)
        .await
        .into_iter()
        .filter(|i| i.get("EntityType") == Some(&audit_log))
        .collect()
}

/// The binary as a user runs it beside the local services: test credentials and region, S3,
/// SES and SQS on moto (DynamoDB wherever its `--endpoint-url` says).
pub fn binary() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ddb-stream-worker"));
    cmd.env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1");
    for service in ["S3", "SES", "SQS"] {
        cmd.env(format!("AWS_ENDPOINT_URL_{service}"), moto_endpoint());
    }
    cmd
}

/// Up to ten messages of `queue_url`, received (and so hidden for its visibility timeout).
pub async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Vec<aws_sdk_sqs::types::Message> {
    sqs.receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
}

/// A new SQS queue on moto (named for this run) and a client for it.
pub async fn fresh_queue(prefix: &str) -> (aws_sdk_sqs::Client, String) {
    let sqs = aws_sdk_sqs::Client::new(&sdk(&moto_endpoint()).await);
    let url = sqs
        .create_queue()
        .queue_name(unique(prefix))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (sqs, url)
}

/// The binary in Lambda mode against the Runtime API at `runtime_api`, as function `name`, its
/// SDK clients on DynamoDB Local and moto; the caller sets its output and spawns it.
pub fn lambda_function(runtime_api: &str, name: &str) -> std::process::Command {
    let mut function = std::process::Command::new(env!("CARGO_BIN_EXE_ddb-stream-worker"));
    function
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_ENDPOINT_URL", dynamodb_endpoint())
        .env("AWS_ENDPOINT_URL_S3", moto_endpoint())
        .env("AWS_ENDPOINT_URL_SES", moto_endpoint())
        .env_remove("AUDITED_TABLES");
    function
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:012x}", fastrand::u64(..) >> 16)
}

/// The ids of the shards of `table`'s stream.
pub async fn stream_shards(table: &str) -> Vec<String> {
    let (_, stream) = stream_description(table).await;
    stream
        .shards
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| s.shard_id)
        .collect()
}

/// `table`'s stream: its ARN and description.
async fn stream_description(
    table: &str,
) -> (String, aws_sdk_dynamodbstreams::types::StreamDescription) {
    let described = dynamodb()
        .await
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("describe table");
    let arn = described
        .table
        .and_then(|t| t.latest_stream_arn)
        .expect("the table has a stream");
    let stream = streams()
        .await
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .expect("describe stream")
        .stream_description
        .expect("stream description");
    (arn, stream)
}

/// Every record now in `table`'s stream, all shards from TRIM_HORIZON, in sequence order
/// within each shard; and the stream ARN (Lambda's eventSourceARN).
pub async fn read_stream(table: &str) -> (String, Vec<aws_sdk_dynamodbstreams::types::Record>) {
    let (arn, stream) = stream_description(table).await;
    let client = streams().await;
    let mut records = Vec::new();
    for shard in stream.shards.unwrap_or_default() {
        let shard_id = shard.shard_id.expect("shard id");
        let mut iterator = client
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(&shard_id)
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("shard iterator")
            .shard_iterator;
        while let Some(current) = iterator {
            let page = client
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .expect("get records");
            let got = page.records.unwrap_or_default();
            if got.is_empty() {
                break; // an open shard keeps handing out iterators; empty means caught up
            }
            records.extend(got);
            iterator = page.next_shard_iterator;
        }
    }
    (arn, records)
}

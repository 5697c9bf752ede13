//! The DynamoDB adapter's BatchWriteItem against a stand-in endpoint that leaves items
//! unprocessed, as DynamoDB does under load: the adapter sends them again (with backoff) until
//! they are stored, and gives up with a retryable error when they never are. DynamoDB Local
//! never returns unprocessed items, so this endpoint plays that part.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, Region};
use ddb_stream_worker::adapters::dynamodb::DynamoDbTables;
use ddb_stream_worker::catalog::Catalog;
use handlers::item::string_key;
use handlers::ports::{Tables, WriteRequest};
use handlers::PortError;
use serde_json::{json, Value};

/// Serves BatchWriteItem: the first `refusals` calls leave every item unprocessed.
fn endpoint(refusals: usize) -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let requests = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let requests = requests.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        if header == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap();
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let request: Value = serde_json::from_slice(&body).unwrap();
                    let count = {
                        let mut seen = requests.lock().unwrap();
                        seen.push(request.clone());
                        seen.len()
                    };
                    let answer = if count <= refusals {
                        json!({ "UnprocessedItems": request["RequestItems"] })
                    } else {
                        json!({ "UnprocessedItems": {} })
                    }
                    .to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-RequestId: test\r\nContent-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    writer.write_all(response.as_bytes()).unwrap();
                }
            });
        }
    });
    (address, seen)
}

async fn tables(endpoint: &str) -> DynamoDbTables {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "t", "t", None, None, "test",
        ))
        .load()
        .await;
    DynamoDbTables::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        Catalog::with_seed_definitions(),
    )
}

fn puts(count: usize) -> Vec<WriteRequest> {
    (0..count)
        .map(|i| {
            WriteRequest::Put(string_key(&[
                ("PK", "AUDIT#2024-01-15#0"),
                ("SK", &format!("LOG#{i:03}")),
            ]))
        })
        .collect()
}

fn items_in(request: &Value) -> usize {
    request["RequestItems"]["aws-cost-platform-enhanced"]
        .as_array()
        .map_or(0, Vec::len)
}

#[tokio::test]
async fn unprocessed_items_are_sent_again_until_stored() {
    let (address, seen) = endpoint(2);
    tables(&address)
        .await
        .batch_write("aws-cost-platform-enhanced", &puts(30))
        .await
        .expect("stored in the end");
    let requests = seen.lock().unwrap().clone();
    let mut sizes: Vec<usize> = requests.iter().map(items_in).collect();
    sizes.sort();
    // The 25 and the 5 go out at once; both are refused (the first two requests), then sent
    // again and stored.
    assert_eq!(sizes, [5, 5, 25, 25]);
    for refused in &requests[..2] {
        assert!(
            requests[2..].contains(refused),
            "the very items left unprocessed are sent again: {refused}"
        );
    }
}

#[tokio::test]
async fn items_never_processed_end_in_a_retryable_error() {
    let (address, seen) = endpoint(usize::MAX);
    let error = tables(&address)
        .await
        .batch_write("aws-cost-platform-enhanced", &puts(3))
        .await
        .unwrap_err();
    assert!(matches!(error, PortError::Transient { .. }), "{error:?}");
    assert!(error.to_string().contains("unprocessed"), "{error}");
    assert_eq!(
        seen.lock().unwrap().len(),
        9,
        "the first attempt and 8 retries"
    );
}

//! The port contract (tests/support/contract.rs) on the AWS SDK adapters, against DynamoDB
//! Local and moto on loopback. Needs `scripts/services start`.

mod support;

use ddb_stream_worker::adapters::dynamodb::DynamoDbTables;
use ddb_stream_worker::adapters::s3::S3Objects;
use ddb_stream_worker::adapters::ses::SesMailer;
use ddb_stream_worker::catalog::Catalog;
use ddb_stream_worker::cli::tables;
use handlers::ports::{Mail, Mailer};
use handlers::PortError;
use support::{contract, services};

async fn tables() -> DynamoDbTables {
    services::require();
    let client = services::dynamodb().await;
    tables::create_tables(&client, &[contract::TABLE.to_string()])
        .await
        .expect("create the cost platform table");
    DynamoDbTables::new(client, Catalog::with_seed_definitions())
}

contract::table_contract_tests!(tables().await);

#[tokio::test]
async fn objects_are_stored_and_deleted() {
    services::require();
    services::ensure_bucket("dsw-contract-docs").await;
    contract::objects_are_stored_and_deleted(
        &S3Objects::new(services::s3().await, None),
        "dsw-contract-docs",
    )
    .await;
}

#[tokio::test]
async fn mail_is_sent_from_a_verified_sender_and_can_be_read_back() {
    services::require();
    let sender = format!("{}@sagesoft.com", services::unique("noreply"));
    services::verify_sender(&sender).await;
    let mailer = SesMailer::new(services::ses().await);
    let id = contract::mail_is_sent(&mailer, &sender).await;
    let sent = services::sent_mail();
    let message = sent
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("message {id} not in moto's outbox: {sent:?}"));
    assert_eq!(message["source"], sender);
    assert_eq!(message["subject"], "Contract – ünïcode");
}

#[tokio::test]
async fn mail_from_an_unverified_sender_is_refused_for_good() {
    services::require();
    let mailer = SesMailer::new(services::ses().await);
    let mail = Mail::new(
        "never-verified@example.com",
        "a@b.com",
        "s",
        "t".into(),
        None,
    )
    .unwrap();
    match mailer.send(&mail).await {
        Err(e @ PortError::Permanent { .. }) => {
            assert!(e.to_string().contains("MessageRejected"), "{e}")
        }
        other => panic!("expected a permanent MessageRejected, got {other:?}"),
    }
}

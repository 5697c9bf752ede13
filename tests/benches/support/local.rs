//! What the benches on DynamoDB Local share: finding it and an SDK configuration for it, the
//! application's writes that precede a batch, and the exactness check of every provider's
//! aggregate against its generated reviews.

use std::collections::BTreeMap;

use aws_config::{BehaviorVersion, Region, SdkConfig};

use ddb_stream_worker::decode::StreamRecord;
use handlers::item::from_item;
use handlers::ports::Tables;
use handlers::reactions::provider_rating::{average, ProviderRating};
use rust_decimal::Decimal;

/// DynamoDB Local's endpoint (`DSW_DYNAMODB_ENDPOINT`, as `scripts/services env` exports it)
/// and its host:port; `bench` exits 2, saying what to start, when nothing answers there.
pub fn dynamodb_local(bench: &str) -> (String, String) {
    let endpoint =
        std::env::var("DSW_DYNAMODB_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8000".into());
    let address = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    if std::net::TcpStream::connect(&address).is_err() {
        eprintln!(
            "{bench}: cannot run: nothing answers at {endpoint} (DSW_DYNAMODB_ENDPOINT). Start \
             DynamoDB Local with `scripts/services start` and `eval \"$(scripts/services env)\"`."
        );
        std::process::exit(2);
    }
    (endpoint, address)
}

/// The SDK configuration for `endpoint`, with the benches' own credentials.
pub async fn sdk(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "bench", "bench", None, None, "bench",
        ))
        .load()
        .await
}

/// The application's writes of `batch` (direct, not counted), as they precede the stream.
pub async fn write_as_the_application(app: &dyn Tables, batch: &[StreamRecord]) {
    for record in batch {
        let change = record
            .change
            .as_ref()
            .expect("generated records are complete");
        match &change.new {
            Some(new) => app
                .put(&change.table, new.clone(), None)
                .await
                .expect("app write"),
            None => drop(
                app.delete(&change.table, &change.keys, None)
                    .await
                    .expect("app delete"),
            ),
        }
    }
}

/// Every provider's stored `ratingSum`, `reviewCount` and `rating` against its generated reviews
/// (each review has its own booking, so each counts). Returns how many providers were checked.
pub async fn check_ratings(app: &dyn Tables, records: &[serde_json::Value]) -> usize {
    let mut expected: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    for review in records.iter().map(|r| &r["dynamodb"]["NewImage"]) {
        let (Some(provider), Some(rating)) = (
            review["providerId"]["S"].as_str(),
            review["rating"]["N"].as_str(),
        ) else {
            continue;
        };
        let figures = expected.entry(provider.to_string()).or_default();
        figures.0 += rating.parse::<Decimal>().expect("a generated rating");
        figures.1 += Decimal::ONE;
    }
    for (provider, (sum, count)) in &expected {
        let key = handlers::item::string_key(&[("providerId", provider)]);
        let stored = app
            .get("marketplace-dev-providers-table", &key)
            .await
            .expect("read a provider")
            .unwrap_or_else(|| panic!("provider {provider} has no aggregate"));
        let stored: ProviderRating = from_item(stored, provider).expect("a provider's aggregate");
        assert_eq!(
            (stored.rating_sum, stored.review_count, stored.rating),
            (Some(*sum), Some(*count), Some(average(*sum, *count))),
            "provider {provider}: stored (ratingSum, reviewCount, rating)"
        );
    }
    expected.len()
}

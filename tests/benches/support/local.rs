//! What the benches on DynamoDB Local share: the application's writes that precede a batch,
//! and the exactness check of every provider's aggregate against its generated reviews.

use std::collections::BTreeMap;

use ddb_stream_worker::decode::StreamRecord;
use handlers::item::from_item;
use handlers::ports::Tables;
use handlers::reactions::provider_rating::{average, ProviderRating};
use rust_decimal::Decimal;

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

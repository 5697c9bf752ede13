//! A marketplace application's reviews on DynamoDB Local (most of one provider's, some
//! re-rated or moved to another provider, some deleted), the tables the rating reaction needs,
//! and each provider's figures as they must then be: what the `stream` and `capture` tests
//! run the worker on.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue as V;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::json;

use super::services;

/// Fresh reviews, providers and aggregate-state tables (names of their own).
pub struct ReviewTables {
    pub reviews: String,
    pub providers: String,
    pub state: String,
}

impl ReviewTables {
    pub async fn fresh() -> ReviewTables {
        ReviewTables {
            reviews: services::fresh_table("marketplace-dev-reviews-table").await,
            providers: services::fresh_table("marketplace-dev-providers-table").await,
            state: services::fresh_table("ddb-stream-worker-aggregate-state").await,
        }
    }

    /// The worker's configuration for these tables (nothing audited).
    pub fn env(&self) -> [(&'static str, &str); 4] {
        [
            ("AUDITED_TABLES", ""),
            ("MARKETPLACE_REVIEWS_TABLE", &self.reviews),
            ("MARKETPLACE_PROVIDERS_TABLE", &self.providers),
            ("AGGREGATE_STATE_TABLE", &self.state),
        ]
    }

    /// `stream --once` over the reviews on DynamoDB Local, its checkpoint and on-failure
    /// files in `dir`.
    pub fn stream_once(&self, dir: &std::path::Path) -> std::process::Command {
        let mut command = services::binary();
        command
            .envs(self.env())
            .args(["stream", "--table", &self.reviews, "--once"])
            .args(["--endpoint-url", &services::dynamodb_endpoint()])
            .arg("--checkpoints")
            .arg(dir.join("checkpoints.json"))
            .arg("--on-failure")
            .arg(dir.join("failures.jsonl"));
        command
    }

    /// The providers, then the application's reviews; returns the reviews that remain.
    pub async fn write(&self, db: &aws_sdk_dynamodb::Client) -> BTreeMap<String, (String, i64)> {
        for provider in PROVIDERS {
            let item = json!({"providerId": {"S": provider}, "serviceType": {"S": "Plumbing"}});
            services::put(db, &self.providers, item).await;
        }
        write_reviews(db, &self.reviews).await
    }
}

/// (ratingSum, reviewCount, rating) each provider must have, from the reviews that remain.
pub fn expected_figures(
    remaining: &BTreeMap<String, (String, i64)>,
) -> BTreeMap<&'static str, (V, V, V)> {
    PROVIDERS
        .iter()
        .map(|provider| {
            let ratings: Vec<i64> = remaining
                .values()
                .filter(|(p, _)| p == provider)
                .map(|(_, r)| *r)
                .collect();
            let sum: i64 = ratings.iter().sum();
            let count = ratings.len() as i64;
            let average = (Decimal::from(sum) / Decimal::from(count))
                .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
            (
                *provider,
                (
                    V::N(sum.to_string()),
                    V::N(count.to_string()),
                    V::N(average.normalize().to_string()),
                ),
            )
        })
        .collect()
}

/// (ratingSum, reviewCount, rating) of each provider in DynamoDB Local's `providers` table.
pub async fn stored_figures(
    db: &aws_sdk_dynamodb::Client,
    providers: &str,
) -> BTreeMap<&'static str, (V, V, V)> {
    let mut figures = BTreeMap::new();
    for provider in PROVIDERS {
        let item = db
            .get_item()
            .table_name(providers)
            .key("providerId", V::S(provider.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap_or_default();
        let get = |name: &str| item.get(name).cloned().unwrap_or(V::Null(true));
        figures.insert(
            provider,
            (get("ratingSum"), get("reviewCount"), get("rating")),
        );
    }
    figures
}

pub const PROVIDERS: [&str; 3] = ["p1", "p2", "p3"];

/// The reviews an application writes, and what each provider's figures must then be:
/// (review id) -> (provider, rating) of the reviews that remain.
async fn write_reviews(
    db: &aws_sdk_dynamodb::Client,
    reviews: &str,
) -> BTreeMap<String, (String, i64)> {
    let mut remaining = BTreeMap::new();
    let put = |id: String, provider: &str, rating: i64| {
        let review = json!({
            "reviewId": {"S": id}, "bookingId": {"S": format!("b-{id}")},
            "providerId": {"S": provider}, "rating": {"N": rating.to_string()},
            "createdAt": {"S": "2025-01-01"},
        });
        services::put(db, reviews, review)
    };
    // Most reviews are p1's.
    for i in 0..120 {
        let provider = PROVIDERS[if i % 5 < 3 { 0 } else { 1 + i % 2 }];
        let rating = (i as i64 * 7) % 5 + 1;
        put(format!("r{i:03}"), provider, rating).await;
        remaining.insert(format!("r{i:03}"), (provider.to_string(), rating));
    }
    // Re-rated, and moved to another provider.
    for i in 0..20 {
        let provider = PROVIDERS[(i + 1) % 3];
        let rating = (i as i64 % 5) + 1;
        put(format!("r{i:03}"), provider, rating).await;
        remaining.insert(format!("r{i:03}"), (provider.to_string(), rating));
    }
    // Deleted.
    for i in 20..32 {
        let id = format!("r{i:03}");
        db.delete_item()
            .table_name(reviews)
            .key("reviewId", V::S(id.clone()))
            .send()
            .await
            .unwrap();
        remaining.remove(&id);
    }
    remaining
}

//! Building a worker: the reactions from config, and the adapters for a target (the embedded
//! state, or AWS through the SDK with an optional endpoint).

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use handlers::acs::ThreadStatistics;
use handlers::audit::AuditLog;
use handlers::bookings::BookingMail;
use handlers::cost::proposal::ProposalPdf;
use handlers::cost::sharing::ShareNotification;
use handlers::cost::totals::EstimationTotals;
use handlers::marketplace::ratings::ProviderRatings;
use handlers::pilotforce::AssetCleanup;
use handlers::ports::SystemClock;
use handlers::Reaction;

use crate::adapters::dynamodb::DynamoDbTables;
use crate::adapters::embedded::EmbeddedState;
use crate::adapters::s3::S3Objects;
use crate::adapters::ses::SesMailer;
use crate::batch::{Adapters, Worker};
use crate::catalog::Catalog;
use crate::config::Config;

/// Every reaction the worker has, in the order they run on a record.
pub fn reactions(config: &Config) -> Vec<Box<dyn Reaction>> {
    vec![
        Box::new(AuditLog::new(config.audit.clone())),
        Box::new(EstimationTotals::new(config.totals.clone())),
        Box::new(ProposalPdf::new(config.proposals.clone())),
        Box::new(ShareNotification::new(
            config.proposals.table.clone(),
            config.proposals.mail.clone(),
        )),
        Box::new(ProviderRatings::new(config.ratings.clone())),
        Box::new(BookingMail::new(config.marketplace_bookings.clone())),
        Box::new(BookingMail::new(config.pilotforce_bookings.clone())),
        Box::new(AssetCleanup::new(config.assets.clone())),
        Box::new(ThreadStatistics::new(config.threads.clone())),
    ]
}

pub fn worker(config: &Config, adapters: Adapters) -> Worker {
    Worker::new(reactions(config), adapters, config.idempotency.clone())
}

/// Adapters over the embedded state.
pub fn embedded_adapters(state: Arc<EmbeddedState>, catalog: Catalog) -> Adapters {
    Adapters {
        tables: state.clone(),
        objects: state.clone(),
        mailer: state.clone(),
        clock: Arc::new(SystemClock),
        catalog,
        applier: Some(state),
    }
}

/// The AWS SDK configuration: the standard environment and profile, with `endpoint_url`
/// (e.g. DynamoDB Local) for every service unless a service-specific variable such as
/// `AWS_ENDPOINT_URL_S3` says otherwise. Against a local endpoint, missing credentials and
/// region get harmless local defaults, since local servers accept any.
pub async fn sdk_config(endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    let local = endpoint_url.is_some() || std::env::var_os("AWS_ENDPOINT_URL").is_some();
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if local {
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && std::env::var_os("AWS_PROFILE").is_none()
        {
            loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                "local",
                "local",
                None,
                None,
                "ddb-stream-worker-local",
            ));
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            loader = loader.region(Region::new("us-east-1"));
        }
    }
    loader.load().await
}

/// Adapters over AWS (or local servers speaking its APIs); the clients are built once.
pub fn sdk_adapters(sdk: &SdkConfig, catalog: Catalog) -> Adapters {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    // Local S3 servers (moto) serve buckets by path, not by host name.
    let path_style =
        sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let s3_config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(path_style)
        .build();
    Adapters {
        tables: Arc::new(DynamoDbTables::new(dynamodb, catalog.clone())),
        objects: Arc::new(S3Objects::new(aws_sdk_s3::Client::from_conf(s3_config))),
        mailer: Arc::new(SesMailer::new(aws_sdk_ses::Client::new(sdk))),
        clock: Arc::new(SystemClock),
        catalog,
        applier: None,
    }
}

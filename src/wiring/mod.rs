//! Building a worker: its configuration ([`config`]), the reactions from it, and the adapters
//! for a target (the embedded state, or AWS through the SDK with an optional endpoint); and
//! what it prints made safe to print ([`output`]).

pub mod config;
pub mod output;
pub mod target;

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use handlers::ports::SystemClock;
use handlers::Reaction;

use crate::adapters::dynamodb::DynamoDbTables;
use crate::adapters::embedded::EmbeddedState;
use crate::adapters::s3::S3Objects;
use crate::adapters::ses::SesMailer;
use crate::adapters::sqs::SqsParking;
use crate::adapters::CallBudget;
use crate::batch::{Adapters, Worker};
use crate::catalog::Catalog;
use config::Config;

/// Every reaction the worker has, in the order they run on a record.
pub fn reactions(config: &Config) -> Vec<Box<dyn Reaction>> {
    handlers::reactions::registry(&config.reactions)
}

/// `adapters` parking records no retry can fix in the failed-records queue, when the
/// configuration names one (`PARKING_QUEUE_URL`).
pub fn with_queue_parking(mut adapters: Adapters, sdk: &SdkConfig, config: &Config) -> Adapters {
    if let Some(queue_url) = &config.parking.queue_url {
        adapters.parking = Some(Arc::new(SqsParking::new(
            sqs_client(sdk),
            queue_url.clone(),
            adapters.objects.clone(),
            config.parking.bucket.clone(),
        )));
    }
    adapters
}

pub fn worker(config: &Config, adapters: Adapters) -> Worker {
    Worker::new(reactions(config), adapters, config.idempotency.clone())
        .with_max_concurrency(config.max_concurrency)
}

/// Adapters over the embedded state.
pub fn embedded_adapters(state: Arc<EmbeddedState>, catalog: Catalog) -> Adapters {
    Adapters {
        tables: state.clone(),
        objects: state.clone(),
        mailer: state.clone(),
        clock: Arc::new(SystemClock),
        catalog,
        applier: Some(state.clone()),
        call_budget: None,
        parking: Some(state),
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

/// A service's configuration from `$sdk`: the worker's retry policy and timeouts, and the
/// service's own endpoint variable ([`service_endpoint`]) over an endpoint given in code.
macro_rules! service_config {
    ($service:ident, $sdk:expr, $variable:literal) => {{
        let mut builder = $service::config::Builder::from($sdk);
        if let Some(url) = service_endpoint($variable) {
            builder = builder.endpoint_url(url);
        }
        builder
            .retry_config(retry_policy())
            .timeout_config(timeouts())
    }};
}

/// An S3 client for `sdk`; local servers (moto) serve buckets by path, not by host name.
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let local = sdk.endpoint_url().is_some() || service_endpoint("S3").is_some();
    aws_sdk_s3::Client::from_conf(
        service_config!(aws_sdk_s3, sdk, "S3")
            .force_path_style(local)
            .build(),
    )
}

/// An SQS client for `sdk` (the failed-records queue).
pub fn sqs_client(sdk: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(service_config!(aws_sdk_sqs, sdk, "SQS").build())
}

/// A DynamoDB client for `sdk`.
pub fn dynamodb_client(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(service_config!(aws_sdk_dynamodb, sdk, "DYNAMODB").build())
}

/// A DynamoDB Streams client for `sdk`.
pub fn streams_client(sdk: &SdkConfig) -> aws_sdk_dynamodbstreams::Client {
    aws_sdk_dynamodbstreams::Client::from_conf(
        service_config!(aws_sdk_dynamodbstreams, sdk, "DYNAMODB_STREAMS").build(),
    )
}

/// An SES client for `sdk`.
pub fn ses_client(sdk: &SdkConfig) -> aws_sdk_ses::Client {
    aws_sdk_ses::Client::from_conf(service_config!(aws_sdk_ses, sdk, "SES").build())
}

/// `AWS_ENDPOINT_URL_<SERVICE>`, when set. An endpoint given in code (`--endpoint-url`) would
/// otherwise win over these variables for every service; with this, a service the variable
/// names goes where it says (S3 and SES to moto while DynamoDB goes to DynamoDB Local).
fn service_endpoint(service: &str) -> Option<String> {
    std::env::var(format!("AWS_ENDPOINT_URL_{service}"))
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// How often and how long one port call may try: throttling, 5xx, timeouts and dropped
/// connections are retried inside the call, up to [`MAX_ATTEMPTS`] attempts, sleeping a random
/// time (full jitter) below 50 ms, 100 ms, 200 ms, 400 ms between them. Past that the call fails
/// with a transient error, so the record fails and Lambda delivers it again. The AWS SDK's own
/// retry loop does the work: it keeps one idempotency token across the attempts of a
/// TransactWriteItems, which a retry wrapped around the adapter could not.
pub fn retry_policy() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_secs(1))
}

/// Attempts per port call, the first included.
pub const MAX_ATTEMPTS: u32 = 5;

/// The longest one port call may take, all attempts and sleeps included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest one attempt of a call may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// One attempt may take 3 s and one call [`CALL_TIMEOUT`]: a call that hangs then fails its
/// record well inside a Lambda timeout instead of eating it.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(3100))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(CALL_TIMEOUT)
        .build()
}

/// Adapters over AWS (or local servers speaking its APIs); the clients are built once.
pub fn sdk_adapters(sdk: &SdkConfig, catalog: Catalog) -> Adapters {
    sdk_adapters_per_service(sdk, sdk, sdk, catalog)
}

/// As [`sdk_adapters`], with a configuration per service (tests point DynamoDB at DynamoDB
/// Local and S3 and SES at moto). Every client gets [`retry_policy`] and [`timeouts`].
pub fn sdk_adapters_per_service(
    dynamodb: &SdkConfig,
    s3: &SdkConfig,
    ses: &SdkConfig,
    catalog: Catalog,
) -> Adapters {
    let budget = Arc::new(CallBudget::new(ATTEMPT_TIMEOUT, CALL_TIMEOUT));
    Adapters {
        tables: Arc::new(
            DynamoDbTables::new(dynamodb_client(dynamodb), catalog.clone())
                .with_budget(budget.clone()),
        ),
        objects: Arc::new(
            S3Objects::new(s3_client(s3), s3.credentials_provider()).with_budget(budget.clone()),
        ),
        mailer: Arc::new(SesMailer::new(ses_client(ses)).with_budget(budget.clone())),
        clock: Arc::new(SystemClock),
        catalog,
        applier: None,
        call_budget: Some(budget),
        parking: None,
    }
}

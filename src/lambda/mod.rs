//! Lambda mode: the same batch entry point behind lambda_runtime, with the SDK clients built
//! once at init and JSON logs (eventID, sequence number and reaction as fields).

mod metrics;

use std::sync::Arc;

use aws_lambda_events::event::streams::DynamoDbEventResponse;
use chrono::DateTime;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

use crate::batch::{BatchOptions, Worker};
use crate::catalog::Catalog;
use crate::decode::{decode_value, DecodeError};
use crate::wiring;
use crate::wiring::config::Config;
use metrics::Tally;

/// An invocation Lambda must see as failed: the whole event is unusable, so it is retried
/// (and, past the mapping's limits, sent to the on-failure destination).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct InvocationError(#[from] DecodeError);

impl From<InvocationError> for Diagnostic {
    fn from(error: InvocationError) -> Diagnostic {
        Diagnostic {
            error_type: "DecodeError".to_string(),
            error_message: error.to_string(),
        }
    }
}

pub async fn run() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(true)
        .without_time() // CloudWatch stamps every line
        .init();
    let config = Config::from_env()?;
    let sdk = wiring::sdk_config(None).await;
    let worker = Arc::new(wiring::worker(
        &config,
        wiring::sdk_adapters(&sdk, Catalog::with_seed_definitions()),
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let worker = worker.clone();
        async move { handle(&worker, event).await }
    }))
    .await
}

/// No record starts later than this before the invocation's deadline: one port call with its
/// retries (`wiring::CALL_TIMEOUT`) and a second to spare. A record that is not started is
/// delivered again cheaply, while a timeout re-delivers the whole batch.
const STOP_RESERVE: std::time::Duration =
    wiring::CALL_TIMEOUT.saturating_add(std::time::Duration::from_secs(1));

/// One invocation: decode, process, report the first failing record.
pub async fn handle(
    worker: &Worker,
    event: LambdaEvent<Value>,
) -> Result<DynamoDbEventResponse, InvocationError> {
    let deadline = i64::try_from(event.context.deadline)
        .ok()
        .and_then(DateTime::from_timestamp_millis);
    let records = decode_value(event.payload, "invocation event", None)?;
    let options = BatchOptions {
        deadline,
        apply_own_change: false,
        stop_before: deadline
            .and_then(|d| Some(d - chrono::Duration::from_std(STOP_RESERVE).ok()?)),
    };
    let started = std::time::Instant::now();
    let mut tally = Tally::default();
    let outcome = worker
        .process_batch(&records, options, &mut |report| tally.add(report))
        .await;
    let now_ms = chrono::Utc::now().timestamp_millis();
    for document in tally.documents(records.len(), &outcome, started.elapsed(), now_ms) {
        // EMF goes to stdout as a line of its own; CloudWatch Logs extracts the metrics.
        println!("{document}");
    }
    match &outcome.failure {
        Some(failure) => tracing::error!(
            event_id = %failure.event_id,
            sequence_number = %failure.sequence_number,
            reaction = %failure.stage,
            retryable = failure.retryable,
            "batch stopped: {failure}"
        ),
        None => tracing::info!(records = records.len(), "batch done"),
    }
    Ok(outcome.response)
}

//! Lambda mode: the same batch entry point behind lambda_runtime, with the SDK clients built
//! once at init and JSON logs (eventID, sequence number and reaction as fields).

pub mod metrics;

use std::sync::Arc;

use aws_lambda_events::event::streams::DynamoDbEventResponse;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

use crate::batch::{BatchOptions, Worker};
use crate::catalog::Catalog;
use crate::decode::{decode_value, DecodeError};
use crate::wiring::config::Config;
use crate::wiring::target::{Opening, Target};
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

/// How the function logs, from Lambda's advanced logging controls: `AWS_LAMBDA_LOG_FORMAT`
/// (`JSON`, the default here, or `Text`) and `AWS_LAMBDA_LOG_LEVEL` (TRACE to FATAL, default
/// INFO). `RUST_LOG`, when set, overrides the level (for local runs).
#[derive(Debug, PartialEq)]
struct LogSettings {
    json: bool,
    filter: String,
}

impl LogSettings {
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> LogSettings {
        let json = !lookup("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("text"));
        let filter = lookup("RUST_LOG")
            .filter(|f| !f.trim().is_empty())
            .unwrap_or_else(|| {
                match lookup("AWS_LAMBDA_LOG_LEVEL")
                    .map(|l| l.trim().to_ascii_uppercase())
                    .as_deref()
                {
                    Some("TRACE") => "trace",
                    Some("DEBUG") => "debug",
                    Some("WARN") => "warn",
                    // tracing has no FATAL: ERROR is the closest it has.
                    Some("ERROR" | "FATAL") => "error",
                    _ => "info",
                }
                .to_string()
            });
        LogSettings { json, filter }
    }

    fn init(self) {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.filter)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        // CloudWatch stamps every line, so no time of our own.
        // Each line escaped and without personal data (`wiring::output`).
        let logs = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(crate::wiring::output::SafeLogs(std::io::stdout))
            .with_ansi(false)
            .without_time();
        if self.json {
            logs.json().with_current_span(true).init();
        } else {
            logs.init();
        }
    }
}

pub async fn run() -> Result<(), lambda_runtime::Error> {
    LogSettings::from_lookup(|name| std::env::var(name).ok()).init();
    let config = Config::from_env()?;
    let connected = Target::Aws
        .connect(Opening::AsItIs, Catalog::with_seed_definitions(), &config)
        .await?;
    let worker = Arc::new(connected.worker(&config));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let worker = worker.clone();
        async move { handle(&worker, event).await }
    }))
    .await
}

/// The most a record start is held back from the invocation's deadline: one port call with its
/// retries (`wiring::CALL_TIMEOUT`) and a second to spare. A record that is not started is
/// delivered again cheaply, while a timeout re-delivers the whole batch.
const MAX_STOP_RESERVE: Duration = Duration::from_secs(11);

/// The reserve is never more than this share of the time an invocation has, so a short
/// timeout (Lambda's default is 3 s) still leaves most of it for records.
const STOP_RESERVE_SHARE: u32 = 5;

/// When records stop starting, for an invocation that has `left` until its deadline: a fifth of
/// it held back, at most [`MAX_STOP_RESERVE`].
fn stop_reserve(left: Duration) -> Duration {
    (left / STOP_RESERVE_SHARE).min(MAX_STOP_RESERVE)
}

/// A deadline that has passed before the invocation starts (clock skew, an emulator) is not
/// zero time: it is logged once and treated as unknown.
static PASSED_DEADLINE_LOGGED: AtomicBool = AtomicBool::new(false);

/// The invocation's deadline, if it is one to go by (`now` is the clock at its start).
fn usable_deadline(deadline_ms: u64, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let deadline = i64::try_from(deadline_ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)?;
    if deadline > now {
        return Some(deadline);
    }
    if !PASSED_DEADLINE_LOGGED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            deadline = %deadline.to_rfc3339(),
            now = %now.to_rfc3339(),
            "the invocation's deadline had passed when it arrived (clock skew, or an emulator); \
             treating it as unknown: records run without a deadline"
        );
    }
    None
}

/// The batch options of an invocation with this deadline, at `now`.
fn options_for(deadline: Option<DateTime<Utc>>, now: DateTime<Utc>) -> BatchOptions {
    let stop_before = deadline.and_then(|deadline| {
        let left = (deadline - now).to_std().ok()?;
        Some(deadline - chrono::Duration::from_std(stop_reserve(left)).ok()?)
    });
    BatchOptions {
        deadline,
        apply_own_change: false,
        stop_before,
    }
}

/// One invocation: decode, process, report the first failing record.
pub async fn handle(
    worker: &Worker,
    event: LambdaEvent<Value>,
) -> Result<DynamoDbEventResponse, InvocationError> {
    let now = Utc::now();
    let deadline = usable_deadline(event.context.deadline, now);
    let records = decode_value(event.payload, "invocation event", None)?;
    let options = options_for(deadline, now);
    let started = std::time::Instant::now();
    let mut tally = Tally::default();
    let outcome = worker
        .process_batch(&records, options, &mut |report| tally.add(&report))
        .await;
    let function = match event.context.env_config.function_name.as_str() {
        "" => "local",
        name => name,
    };
    let documents = tally.documents(function, &records, &outcome, started.elapsed(), Utc::now());
    for document in documents {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logging_follows_lambdas_controls_and_rust_log_overrides() {
        let settings = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            LogSettings::from_lookup(move |name| {
                vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            })
        };
        assert_eq!(
            settings(&[]),
            LogSettings {
                json: true,
                filter: "info".into()
            }
        );
        let text_debug = settings(&[
            ("AWS_LAMBDA_LOG_FORMAT", "Text"),
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
        ]);
        assert_eq!(
            text_debug,
            LogSettings {
                json: false,
                filter: "debug".into()
            }
        );
        let json_warn = settings(&[
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
        ]);
        assert_eq!(
            json_warn,
            LogSettings {
                json: true,
                filter: "warn".into()
            }
        );
        assert_eq!(
            settings(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")]).filter,
            "error"
        );
        let overridden = settings(&[
            ("AWS_LAMBDA_LOG_LEVEL", "ERROR"),
            ("RUST_LOG", "ddb_stream_worker=trace"),
        ]);
        assert_eq!(overridden.filter, "ddb_stream_worker=trace");
    }

    #[test]
    fn the_reserve_is_a_share_of_the_time_left_and_never_more_than_eleven_seconds() {
        assert_eq!(
            stop_reserve(Duration::from_secs(3)),
            Duration::from_millis(600)
        );
        assert_eq!(
            stop_reserve(Duration::from_secs(10)),
            Duration::from_secs(2)
        );
        assert_eq!(
            stop_reserve(Duration::from_secs(60)),
            Duration::from_secs(11)
        );
        assert_eq!(
            stop_reserve(Duration::from_secs(900)),
            Duration::from_secs(11)
        );
    }

    #[test]
    fn a_passed_deadline_is_unknown_not_zero() {
        // Whole milliseconds, as Lambda's deadlines are.
        let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
        let past = u64::try_from((now - chrono::Duration::seconds(30)).timestamp_millis()).unwrap();
        assert_eq!(usable_deadline(past, now), None);
        let options = options_for(None, now);
        assert_eq!((options.deadline, options.stop_before), (None, None));
        let soon = now + chrono::Duration::seconds(3);
        let future = u64::try_from(soon.timestamp_millis()).unwrap();
        let deadline = usable_deadline(future, now).unwrap();
        let options = options_for(Some(deadline), now);
        assert_eq!(
            options.stop_before,
            Some(deadline - chrono::Duration::milliseconds(600))
        );
    }
}

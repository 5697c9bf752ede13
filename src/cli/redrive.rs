//! `redrive`: run parked records again, once the data or the code is fixed, through the same
//! batch entry point and adapters. From the embedded state (`parked/`; a file is removed once its
//! record went through), or from the failed-records queue (`--queue-url`; a message is deleted
//! only after its record went through). Idempotency holds: redriving twice changes nothing more.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::report::{self, Format};
use super::{CliError, Exit};
use crate::adapters::embedded::EmbeddedState;
use crate::batch::{BatchOptions, Outcome, Worker};
use crate::catalog::Catalog;
use crate::decode::decode_value;
use crate::wiring::{self, config::Config};

pub(super) struct RedriveCommand {
    pub state: PathBuf,
    pub queue_url: Option<String>,
    pub endpoint_url: Option<String>,
}

/// What one redriven record came to.
#[derive(Default)]
struct Tally {
    through: usize,
    parked_again: usize,
    failed: usize,
    left: usize,
}

impl Tally {
    fn exit(&self) -> Exit {
        if self.failed > 0 {
            Exit::BatchFailed
        } else if self.parked_again > 0 {
            Exit::Parked
        } else {
            Exit::Clean
        }
    }
}

pub(super) async fn run(command: RedriveCommand) -> Result<Exit, CliError> {
    let config = Config::from_env()?;
    let tally = match &command.queue_url {
        None => from_state(&command, &config).await?,
        Some(queue_url) => from_queue(&command, &config, queue_url).await?,
    };
    eprintln!(
        "redrive: {} record(s) went through, {} parked again, {} failed (retryable: run again), {} left as they were",
        tally.through, tally.parked_again, tally.failed, tally.left
    );
    Ok(tally.exit())
}

/// What became of one redriven record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Redriven {
    Through,
    /// Parked again, as a new file or message: the old one is done with.
    ParkedAgain,
    /// Failed, retryable: keep the old one for the next redrive.
    Failed,
}

/// Run one event (a parked record, as an event file) through `worker`.
async fn redrive(
    worker: &Worker,
    event: Value,
    source: &str,
    apply: bool,
    tally: &mut Tally,
) -> Result<Redriven, CliError> {
    let records = decode_value(event, source, None)?;
    let mut out = io::stdout().lock();
    let mut parked = false;
    let outcome = worker
        .process_batch(
            &records,
            BatchOptions {
                deadline: None,
                apply_own_change: apply,
                stop_before: None,
            },
            &mut |record| {
                parked |= record
                    .reactions
                    .iter()
                    .any(|r| matches!(r.outcome, Outcome::Parked { .. }));
                let _ = report::record(&mut out, Format::Human, record);
            },
        )
        .await;
    out.flush().map_err(CliError::Output)?;
    Ok(match (outcome.failure.is_some(), parked) {
        (true, _) => {
            tally.failed += 1;
            Redriven::Failed
        }
        (false, true) => {
            tally.parked_again += 1;
            Redriven::ParkedAgain
        }
        (false, false) => {
            tally.through += 1;
            Redriven::Through
        }
    })
}

async fn from_state(command: &RedriveCommand, config: &Config) -> Result<Tally, CliError> {
    if !command.state.exists() {
        return Err(CliError::NoState(command.state.clone()));
    }
    let catalog = Catalog::with_seed_definitions();
    let state = Arc::new(EmbeddedState::open(&command.state, catalog.clone(), false)?);
    let mut config = config.clone();
    config.idempotency.completion_markers = false;
    let worker = wiring::worker(&config, wiring::embedded_adapters(state.clone(), catalog));
    let mut tally = Tally::default();
    for file in state.parked() {
        let text = std::fs::read_to_string(&file).map_err(|source| CliError::Read {
            path: file.clone(),
            source,
        })?;
        let event: Value = serde_json::from_str(&text).map_err(|e| CliError::Read {
            path: file.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        // Taken out first: parked again, the record is written back under the same name.
        std::fs::remove_file(&file).map_err(|source| CliError::Read {
            path: file.clone(),
            source,
        })?;
        let source = file.display().to_string();
        if redrive(&worker, event, &source, true, &mut tally).await? == Redriven::Failed {
            // Not parked again, so not written back: put it back for the next redrive.
            std::fs::write(&file, text).map_err(CliError::Output)?;
        }
        state.sync()?;
    }
    state.compact()?;
    Ok(tally)
}

async fn from_queue(
    command: &RedriveCommand,
    config: &Config,
    queue_url: &str,
) -> Result<Tally, CliError> {
    let sdk = wiring::sdk_config(command.endpoint_url.as_deref()).await;
    let worker = wiring::worker(
        config,
        wiring::with_queue_parking(
            wiring::sdk_adapters(&sdk, Catalog::with_seed_definitions()),
            &sdk,
            config,
        ),
    );
    let sqs = wiring::sqs_client(&sdk);
    let s3 = wiring::s3_client(&sdk);
    let service = |e: &dyn std::fmt::Display| CliError::Service(format!("{queue_url}: {e}"));
    let mut tally = Tally::default();
    let mut seen = std::collections::HashSet::new();
    // A record parked again comes back as a new message: it is not redriven twice in one run.
    let mut redriven = std::collections::HashSet::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| service(&aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        let mut messages = Vec::new();
        for message in received.messages.unwrap_or_default() {
            if seen.insert(message.message_id.clone().unwrap_or_default()) {
                messages.push(message);
            } else {
                release(&sqs, queue_url, &message).await?;
            }
        }
        if messages.is_empty() {
            return Ok(tally);
        }
        for message in messages {
            let id = message.message_id.clone().unwrap_or_default();
            let body: Value =
                serde_json::from_str(message.body().unwrap_or_default()).unwrap_or(Value::Null);
            let event = if body["Records"].is_array() {
                body
            } else if let Some(location) = body["parkedObject"].as_str() {
                let (bucket, key) = location
                    .strip_prefix("s3://")
                    .and_then(|rest| rest.split_once('/'))
                    .ok_or_else(|| {
                        service(&format!(
                            "message {id}: {location} is not an s3:// location"
                        ))
                    })?;
                let object = s3
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| service(&aws_sdk_s3::error::DisplayErrorContext(e)))?;
                let bytes = object
                    .body
                    .collect()
                    .await
                    .map_err(|e| service(&e))?
                    .into_bytes();
                serde_json::from_slice(&bytes).map_err(|e| service(&format!("{location}: {e}")))?
            } else {
                // Lambda's own on-failure message names a shard and a sequence range, not the
                // records: fetching them from the stream is not built yet.
                eprintln!("message {id}: not a parked record (Lambda's on-failure message?); left in the queue");
                tally.left += 1;
                continue;
            };
            let record = event["Records"][0]["eventID"].to_string()
                + &event["parked"]["reaction"].to_string();
            if !redriven.insert(record) {
                // Parked again in this run: left in the queue.
                release(&sqs, queue_url, &message).await?;
                continue;
            }
            let redriven =
                redrive(&worker, event, &format!("message {id}"), false, &mut tally).await?;
            if redriven != Redriven::Failed {
                if let Some(receipt) = message.receipt_handle() {
                    sqs.delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(receipt)
                        .send()
                        .await
                        .map_err(|e| service(&aws_sdk_sqs::error::DisplayErrorContext(e)))?;
                }
            }
        }
    }
}

/// Leave `message` in the queue, visible again at once (for the next redrive, not this one).
async fn release(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    message: &aws_sdk_sqs::types::Message,
) -> Result<(), CliError> {
    if let Some(receipt) = message.receipt_handle() {
        sqs.change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| {
                CliError::Service(format!(
                    "{queue_url}: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                ))
            })?;
    }
    Ok(())
}

//! `redrive`: run parked or given-up records again, once the data or the code is fixed, through
//! the same batch entry point and adapters. Three sources: the embedded state's `parked/` (a
//! file is removed once its record went through), a file (`--file`: parked records, Lambda's
//! on-failure messages, the `stream` runner's on-failure lines), or the failed-records queue
//! (`--queue-url`; a message is deleted only after its records went through). Lambda's
//! on-failure messages name a stream range, not records: those are read back from the stream.
//! Idempotency holds: redriving twice changes nothing more.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::{CliError, Exit};
use super::print_report::{self, Format};
use crate::adapters::classify;
use crate::adapters::embedded::EmbeddedState;
use crate::batch::{BatchOptions, Outcome, Worker};
use crate::catalog::Catalog;
use crate::decode::decode_value;
use crate::stream::on_failure;
use crate::stream::reader::StreamReader;
use crate::wiring::output::printable;
use crate::wiring::target::{Connected, Opening, Target};
use crate::wiring::{self, config::Config};

pub(super) struct RedriveCommand {
    pub target: Target,
    pub file: Option<PathBuf>,
    pub queue_url: Option<String>,
}

impl RedriveCommand {
    /// Where the records run: the deployed queue's through the SDK (AWS unless an endpoint is
    /// given), the rest on the target given.
    fn target(&self) -> Target {
        match (&self.queue_url, &self.target) {
            (Some(_), Target::Embedded(_)) => Target::Aws,
            (_, target) => target.clone(),
        }
    }
}

/// What the redriven entries came to.
#[derive(Default)]
struct Tally {
    through: usize,
    parked_again: usize,
    failed: usize,
    /// Entries (not records) whose records could not be had: no longer in the stream, or not
    /// understood.
    unavailable: usize,
}

impl Tally {
    fn exit(&self) -> Exit {
        if self.failed > 0 || self.unavailable > 0 {
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
    let target = command.target();
    // Records of a file may run on a new state; the state's own parked records need one.
    let opening = match command.file {
        Some(_) => Opening::AsItIs,
        None => Opening::MustExist,
    };
    let connected = target
        .connect(opening, Catalog::with_seed_definitions(), &config)
        .await?;
    let redriving = Redriving {
        worker: connected.worker(&config),
        connected,
    };
    let connected = &redriving.connected;
    let tally = match (&command.file, &command.queue_url) {
        (Some(file), _) => from_file(&redriving, file).await?,
        (None, Some(queue_url)) => from_queue(&redriving, queue_url).await?,
        (None, None) => match &connected.state {
            Some(state) => from_state(&redriving, state).await?,
            None => {
                return Err(CliError::Settings(
                    "redrive on an endpoint or AWS runs --file or --queue-url".into(),
                ))
            }
        },
    };
    let mut summary = format!(
        "redrive: {} record(s) went through, {} parked again, {} failed (retryable: run again)",
        tally.through, tally.parked_again, tally.failed
    );
    if tally.unavailable > 0 {
        summary += &format!(
            "; the records of {} entr(ies) could not be had (see above)",
            tally.unavailable
        );
    }
    eprintln!("{}", printable(&summary));
    Ok(tally.exit())
}

/// The worker the records run through, and the target's clients that fetch records named
/// elsewhere.
struct Redriving {
    worker: Worker,
    connected: Connected,
}

impl Redriving {
    /// The records an entry stands for, as a Lambda event: a parked record or any event as it
    /// is, a pointer to a parked object in S3, or an on-failure message's range of a stream
    /// (`payload` when Lambda's S3 destination included the records).
    async fn records_of(&self, entry: Value, source: &str) -> Result<Value, Unavailable> {
        if entry["Records"].is_array() {
            return Ok(entry);
        }
        if let Some(payload) = entry.get("payload") {
            let payload = match payload.as_str() {
                Some(text) => serde_json::from_str(text).unwrap_or(Value::Null),
                None => payload.clone(),
            };
            if payload["Records"].is_array() {
                return Ok(payload);
            }
        }
        let sdk = self.connected.sdk.as_ref();
        if let Some(location) = entry["parkedObject"].as_str() {
            let sdk = sdk.ok_or_else(|| Unavailable::needs_sdk(source, location))?;
            return parked_object(&wiring::s3_client(sdk), location)
                .await
                .map_err(|e| Unavailable::Retryable(format!("{source}: {location}: {e}")));
        }
        match on_failure::batch_info(&entry) {
            Some(Ok(info)) => {
                let sdk = sdk.ok_or_else(|| Unavailable::needs_sdk(source, &info.stream_arn))?;
                let reader =
                    StreamReader::new(wiring::dynamodb_client(sdk), wiring::streams_client(sdk));
                on_failure::fetch(&reader, &info).await.map_err(|e| {
                    let message = format!("{source}: {e}");
                    if e.retryable() {
                        Unavailable::Retryable(message)
                    } else {
                        Unavailable::Never(message)
                    }
                })
            }
            Some(Err(e)) => Err(Unavailable::Never(format!(
                "{source}: DDBStreamBatchInfo is not Lambda's on-failure shape: {e}"
            ))),
            None => Err(Unavailable::Never(format!(
                "{source}: not a parked record, an event with Records, or an on-failure message \
                 with DDBStreamBatchInfo"
            ))),
        }
    }

    /// Run one event through the worker and count what it came to.
    async fn redrive(
        &self,
        event: Value,
        source: &str,
        tally: &mut Tally,
    ) -> Result<Redriven, CliError> {
        let records = decode_value(event, source, None)?;
        let mut out = io::stdout().lock();
        let mut parked = false;
        let mut failed = false;
        let outcome = self
            .worker
            .process_batch(
                &records,
                BatchOptions {
                    deadline: None,
                    apply_own_change: self.connected.state.is_some(),
                    stop_before: None,
                },
                &mut |record| {
                    let outcome_is = |wanted: fn(&Outcome) -> bool| {
                        record.reactions.iter().any(|r| wanted(&r.outcome))
                    };
                    if outcome_is(|o| matches!(o, Outcome::Failed { .. })) {
                        failed = true;
                        tally.failed += 1;
                    } else if outcome_is(|o| matches!(o, Outcome::Parked { .. })) {
                        parked = true;
                        tally.parked_again += 1;
                    } else {
                        tally.through += 1;
                    }
                    let _ = print_report::record(&mut out, Format::Human, &record);
                },
            )
            .await;
        out.flush().map_err(CliError::Output)?;
        if let Some(state) = &self.connected.state {
            state.sync()?;
        }
        Ok(if failed || outcome.failure.is_some() {
            Redriven::Failed
        } else if parked {
            Redriven::ParkedAgain
        } else {
            Redriven::Through
        })
    }

    /// Records of `entry`, run; an entry whose records cannot be had is said and counted.
    async fn redrive_entry(
        &self,
        entry: Value,
        source: &str,
        tally: &mut Tally,
    ) -> Result<Redriven, CliError> {
        match self.records_of(entry, source).await {
            Ok(event) => self.redrive(event, source, tally).await,
            Err(Unavailable::Retryable(message)) => {
                eprintln!("{} (retryable: run again)", printable(&message));
                tally.failed += 1;
                Ok(Redriven::Failed)
            }
            Err(Unavailable::Never(message)) => {
                eprintln!("{}", printable(&message));
                tally.unavailable += 1;
                Ok(Redriven::Unavailable)
            }
        }
    }
}

/// Why an entry's records could not be had.
enum Unavailable {
    /// A service failed: a later run may get them.
    Retryable(String),
    /// They are gone, or the entry is not understood: no run will get them.
    Never(String),
}

impl Unavailable {
    fn needs_sdk(source: &str, location: &str) -> Unavailable {
        Unavailable::Never(format!(
            "{source}: its records are in {location}: redrive it with --endpoint-url URL or --aws"
        ))
    }
}

/// What became of one redriven entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Redriven {
    Through,
    /// Parked again, as a new file or message: the old one is done with.
    ParkedAgain,
    /// Failed, retryable: keep the old one for the next redrive.
    Failed,
    /// Its records could not be had and never will: kept, for a person to look at.
    Unavailable,
}

async fn from_state(target: &Redriving, state: &EmbeddedState) -> Result<Tally, CliError> {
    let mut tally = Tally::default();
    for file in state.parked() {
        let text = read(&file)?;
        let event = parse(&text, &file)?;
        // Taken out first: parked again, the record is written back under the same name.
        std::fs::remove_file(&file).map_err(|source| CliError::Read {
            path: file.clone(),
            source,
        })?;
        let source = file.display().to_string();
        let redriven = target.redrive_entry(event, &source, &mut tally).await?;
        if matches!(redriven, Redriven::Failed | Redriven::Unavailable) {
            // Not parked again, so not written back: put it back for the next redrive.
            std::fs::write(&file, &text).map_err(CliError::Output)?;
        }
    }
    state.compact()?;
    Ok(tally)
}

/// Each entry of `file`: one JSON document, or JSON lines (an on-failure file). The file is
/// left as it is: redriving it again changes nothing more.
async fn from_file(target: &Redriving, file: &Path) -> Result<Tally, CliError> {
    let mut tally = Tally::default();
    for (source, entry) in json_entries(file)? {
        target.redrive_entry(entry, &source, &mut tally).await?;
    }
    if let Some(state) = &target.connected.state {
        state.compact()?;
    }
    Ok(tally)
}

/// The entries of a file that holds one JSON value or JSON lines, each with where it is
/// (`FILE` or `FILE:LINE`).
pub(super) fn json_entries(file: &Path) -> Result<Vec<(String, Value)>, CliError> {
    let text = read(file)?;
    Ok(match serde_json::from_str::<Value>(&text) {
        Ok(entry) => vec![(file.display().to_string(), entry)],
        Err(_) => {
            let mut entries = Vec::new();
            for (index, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let source = format!("{}:{}", file.display(), index + 1);
                let entry = serde_json::from_str(line).map_err(|e| CliError::Read {
                    path: PathBuf::from(&source),
                    source: io::Error::new(io::ErrorKind::InvalidData, e),
                })?;
                entries.push((source, entry));
            }
            entries
        }
    })
}

async fn from_queue(target: &Redriving, queue_url: &str) -> Result<Tally, CliError> {
    let Some(sdk) = &target.connected.sdk else {
        return Err(CliError::Settings(
            "--queue-url runs through the SDK adapters".into(),
        ));
    };
    let sqs = wiring::sqs_client(sdk);
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
            .map_err(|e| classify("ReceiveMessage", queue_url, e))?;
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
            let source = format!("message {}", message.message_id().unwrap_or_default());
            let body: Value =
                serde_json::from_str(message.body().unwrap_or_default()).unwrap_or(Value::Null);
            let record = body["Records"][0]["eventID"].to_string()
                + &body["parked"]["reaction"].to_string()
                + &body["parkedObject"].to_string();
            if body["parked"].is_object() && !redriven.insert(record) {
                // Parked again in this run: left in the queue.
                release(&sqs, queue_url, &message).await?;
                continue;
            }
            let outcome = target.redrive_entry(body, &source, &mut tally).await?;
            let done = matches!(outcome, Redriven::Through | Redriven::ParkedAgain);
            if let (true, Some(receipt)) = (done, message.receipt_handle()) {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .map_err(|e| classify("DeleteMessage", queue_url, e))?;
            }
        }
    }
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse(text: &str, path: &Path) -> Result<Value, CliError> {
    serde_json::from_str(text).map_err(|e| CliError::Read {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    })
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
            .map_err(|e| classify("ChangeMessageVisibility", queue_url, e))?;
    }
    Ok(())
}

/// The parked record an `s3://bucket/key` pointer names.
async fn parked_object(s3: &aws_sdk_s3::Client, location: &str) -> Result<Value, String> {
    let (bucket, key) = location
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(|| "not an s3:// location".to_string())?;
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(e).to_string())?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .into_bytes();
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

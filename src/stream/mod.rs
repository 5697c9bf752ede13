//! `stream`: follow real DynamoDB streams (DynamoDB Local or an account) and deliver their
//! records to the same batch entry point Lambda uses, with the same adapters.
//!
//! It reads every shard of each table's stream, parents before children,
//! in batches of `BatchSize` (gathered over `MaximumBatchingWindowInSeconds`) from
//! `StartingPosition`, keeps a checkpoint per shard in a local
//! file so a restart resumes where it stopped, and retries a batch from the record the worker
//! reported as failed (`ReportBatchItemFailures`; otherwise the whole batch, bisected when
//! `BisectBatchOnFunctionError` is set) up to `MaximumRetryAttempts` times, after which the
//! record or batch is written to the on-failure file (in Lambda's on-failure message shape,
//! which `redrive` takes) and skipped. Records older than
//! `MaximumRecordAgeInSeconds` go there undelivered. `--once` drains what is there and exits.

mod filter_criteria;
pub mod get_records;
pub mod on_failure;
pub(crate) mod sam_template;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_dynamodbstreams::types::{Shard, ShardIteratorType};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use handlers::PortError;
use thiserror::Error;

use crate::adapters::classify;
use crate::batch::{BatchOptions, Worker};
use crate::decode::{decode_value, DecodeError, StreamRecord};
use filter_criteria::{FilterCriteria, Patterns};
use get_records::lambda_event;
use on_failure::{invocation_record, Condition};

/// The event source mapping settings, with Lambda's property names and defaults.
/// Unknown properties are rejected so a misspelling is not silently ignored; the mapping's
/// other properties (as in `deploy/template.yaml`) are accepted and have no local effect.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct MappingSettings {
    pub batch_size: i32,
    pub starting_position: String,
    /// -1: retry until the record succeeds (Lambda's default).
    pub maximum_retry_attempts: i32,
    /// How long to keep gathering records, once there is one, before delivering a batch
    /// smaller than `BatchSize`. 0 (Lambda's default): deliver what one read returns.
    pub maximum_batching_window_in_seconds: u64,
    /// -1: no limit. Older records go to the on-failure file instead of the worker.
    pub maximum_record_age_in_seconds: i64,
    /// `["ReportBatchItemFailures"]`: a failure checkpoints before the reported record and
    /// retries from it. Empty (Lambda's default): the whole batch failed.
    pub function_response_types: Vec<String>,
    /// With whole-batch failures: split a failing batch in halves and retry each on its own.
    pub bisect_batch_on_function_error: bool,
    pub filter_criteria: FilterCriteria,
    /// The stream comes from `--table`; one shard is read at a time; failures go to the
    /// on-failure file; the rest have no local meaning.
    stream: IgnoredAny,
    parallelization_factor: IgnoredAny,
    destination_config: IgnoredAny,
    enabled: IgnoredAny,
    tumbling_window_in_seconds: IgnoredAny,
    metrics_config: IgnoredAny,
}

impl MappingSettings {
    fn reports_item_failures(&self) -> bool {
        self.function_response_types
            .iter()
            .any(|t| t == "ReportBatchItemFailures")
    }
}

impl Default for MappingSettings {
    fn default() -> Self {
        MappingSettings {
            batch_size: 100,
            starting_position: "TRIM_HORIZON".into(),
            maximum_retry_attempts: -1,
            maximum_record_age_in_seconds: -1,
            maximum_batching_window_in_seconds: 0,
            function_response_types: Vec::new(),
            bisect_batch_on_function_error: false,
            filter_criteria: FilterCriteria::default(),
            stream: IgnoredAny,
            parallelization_factor: IgnoredAny,
            destination_config: IgnoredAny,
            enabled: IgnoredAny,
            tumbling_window_in_seconds: IgnoredAny,
            metrics_config: IgnoredAny,
        }
    }
}

#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub tables: Vec<String>,
    pub settings: MappingSettings,
    pub checkpoints: PathBuf,
    pub on_failure: PathBuf,
    pub once: bool,
    /// One JSON object per batch line instead of text.
    pub json: bool,
}

/// What happened to one batch (or part of one): a line for people, or JSON with `--json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchLine<'a> {
    shard: &'a str,
    /// done, failed, bisecting or not delivered (filtered or too old).
    outcome: &'a str,
    records: usize,
    first: &'a str,
    last: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    lag_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl<'a> BatchLine<'a> {
    fn new(
        shard: &'a str,
        outcome: &'a str,
        records: usize,
        first: &'a str,
        last: &'a str,
    ) -> Self {
        BatchLine {
            shard,
            outcome,
            records,
            first,
            last,
            lag_seconds: None,
            attempt: None,
            reason: None,
        }
    }

    fn print(&self, json: bool) {
        if json {
            println!("{}", serde_json::json!(self));
            return;
        }
        let mut line = format!(
            "shard {}: {} records ({}..{}) {}",
            self.shard, self.records, self.first, self.last, self.outcome
        );
        if let Some(attempt) = self.attempt {
            line += &format!(" (attempt {attempt})");
        }
        if let Some(lag) = self.lag_seconds {
            line += &format!(", lag {lag} s");
        }
        if let Some(reason) = &self.reason {
            line += &format!(": {reason}");
        }
        println!("{line}");
    }
}

/// Set by the first Ctrl-C: the runner stops after the batch in hand, checkpoint saved. One per
/// process because the signal is.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::Relaxed)
}

/// First Ctrl-C: finish the current batch, then stop. Second: stop now (the idempotency table
/// makes the interrupted batch safe to deliver again).
fn stop_on_ctrl_c() {
    tokio::spawn(async {
        while tokio::signal::ctrl_c().await.is_ok() {
            if STOP_REQUESTED.swap(true, Ordering::Relaxed) {
                std::process::exit(130);
            }
            eprintln!("stopping after the current batch (Ctrl-C again to stop now)");
        }
    });
}

/// Why following the streams stopped.
#[derive(Debug, Error)]
pub enum StreamError {
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a checkpoints file: {source}", path.display())]
    Checkpoints {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Service(#[from] PortError),
    #[error("{table} has no stream: enable NEW_AND_OLD_IMAGES on it (tables create does)")]
    NoStream { table: String },
    #[error("DescribeStream returned no description for {table}")]
    NoDescription { table: String },
    #[error(transparent)]
    Filter(#[from] filter_criteria::FilterError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("shard {shard_id}: {source}")]
    Shard {
        shard_id: String,
        source: Box<StreamError>,
    },
}

impl StreamError {
    fn file(path: &Path) -> impl FnOnce(std::io::Error) -> StreamError + '_ {
        move |source| StreamError::File {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Last processed sequence number per shard.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoints(BTreeMap<String, String>);

impl Checkpoints {
    fn load(path: &Path) -> Result<Checkpoints, StreamError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|source| StreamError::Checkpoints {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Checkpoints::default()),
            Err(e) => Err(StreamError::file(path)(e)),
        }
    }

    /// Records `sequence` as the shard's last processed record and saves the file.
    fn advance(&mut self, shard_id: &str, sequence: &str, path: &Path) -> Result<(), StreamError> {
        self.0.insert(shard_id.to_string(), sequence.to_string());
        self.save(path)
    }

    fn save(&self, path: &Path) -> Result<(), StreamError> {
        let text = serde_json::to_vec_pretty(self).map_err(|source| StreamError::Checkpoints {
            path: path.to_path_buf(),
            source,
        })?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(StreamError::file(path))
    }
}

/// Shards in an order where every parent comes before its children.
fn parents_first(shards: Vec<Shard>) -> Vec<Shard> {
    let ids: std::collections::HashSet<String> =
        shards.iter().filter_map(|s| s.shard_id.clone()).collect();
    let mut done: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut ordered = Vec::with_capacity(shards.len());
    let mut rest = shards;
    while !rest.is_empty() {
        let (ready, waiting): (Vec<Shard>, Vec<Shard>) = rest.into_iter().partition(|s| {
            s.parent_shard_id
                .as_ref()
                .is_none_or(|p| !ids.contains(p) || done.contains(p))
        });
        if ready.is_empty() {
            ordered.extend(waiting);
            break;
        }
        done.extend(ready.iter().filter_map(|s| s.shard_id.clone()));
        ordered.extend(ready);
        rest = waiting;
    }
    ordered
}

pub async fn run(
    worker: &Worker,
    sdk: &aws_config::SdkConfig,
    options: StreamOptions,
) -> Result<(), StreamError> {
    let tables = aws_sdk_dynamodb::Client::new(sdk);
    let streams = aws_sdk_dynamodbstreams::Client::new(sdk);
    let mut checkpoints = Checkpoints::load(&options.checkpoints)?;
    let patterns = Patterns::parse(&options.settings.filter_criteria)?;
    stop_on_ctrl_c();
    loop {
        let mut delivered = 0;
        for table in &options.tables {
            let described = tables
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| classify("DescribeTable", table, e))?;
            let Some(arn) = described.table.and_then(|t| t.latest_stream_arn) else {
                return Err(StreamError::NoStream {
                    table: table.clone(),
                });
            };
            let mut shards = Vec::new();
            let mut start: Option<String> = None;
            loop {
                let page = streams
                    .describe_stream()
                    .stream_arn(&arn)
                    .set_exclusive_start_shard_id(start.take())
                    .send()
                    .await
                    .map_err(|e| classify("DescribeStream", table, e))?;
                let description =
                    page.stream_description
                        .ok_or_else(|| StreamError::NoDescription {
                            table: table.clone(),
                        })?;
                shards.extend(description.shards.unwrap_or_default());
                match description.last_evaluated_shard_id {
                    Some(last) => start = Some(last),
                    None => break,
                }
            }
            for shard in parents_first(shards) {
                let Some(shard_id) = shard.shard_id.clone() else {
                    continue;
                };
                delivered += drain_shard(
                    worker,
                    &streams,
                    &arn,
                    &shard_id,
                    &options,
                    &patterns,
                    &mut checkpoints,
                )
                .await?;
            }
        }
        if stop_requested() {
            println!("stopped; checkpoints in {}", options.checkpoints.display());
            return Ok(());
        }
        if options.once {
            return Ok(());
        }
        if delivered == 0 {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

/// Read one shard from its checkpoint until it has nothing more now; returns records delivered.
async fn drain_shard(
    worker: &Worker,
    streams: &aws_sdk_dynamodbstreams::Client,
    arn: &str,
    shard_id: &str,
    options: &StreamOptions,
    patterns: &Patterns,
    checkpoints: &mut Checkpoints,
) -> Result<usize, StreamError> {
    let fail = |e: StreamError| StreamError::Shard {
        shard_id: shard_id.to_string(),
        source: Box::new(e),
    };
    let mut delivered = 0;
    let mut attempts = 0;
    let mut iterator = iterator_after(
        streams,
        arn,
        shard_id,
        checkpoints.0.get(shard_id).cloned(),
        &options.settings.starting_position,
        false,
    )
    .await
    .map_err(fail)?;
    while let Some(current) = iterator {
        if stop_requested() {
            return Ok(delivered);
        }
        let (records, next) = read_batch(streams, current, &options.settings, shard_id)
            .await
            .map_err(fail)?;
        if records.is_empty() {
            return Ok(delivered);
        }
        // What the filters drop is never delivered, as with Lambda; the checkpoint moves past it.
        let mut event = lambda_event(&records, arn);
        let read = records.len();
        if let Some(list) = event
            .get_mut("Records")
            .and_then(serde_json::Value::as_array_mut)
        {
            list.retain(|record| patterns.matches(record));
            set_aside_stale(list, arn, shard_id, options).map_err(fail)?;
        }
        let lag = lag_seconds(&event);
        let batch = decode_value(event, shard_id, None).map_err(|e| fail(e.into()))?;
        if batch.is_empty() {
            let last = records
                .last()
                .and_then(|r| r.dynamodb.as_ref())
                .and_then(|d| d.sequence_number.clone());
            if let Some(last) = last {
                let first = records
                    .first()
                    .and_then(|r| r.dynamodb.as_ref())
                    .and_then(|d| d.sequence_number.as_deref())
                    .unwrap_or_default();
                BatchLine::new(
                    shard_id,
                    "not delivered (filtered or too old)",
                    read,
                    first,
                    &last,
                )
                .print(options.json);
                checkpoints.advance(shard_id, &last, &options.checkpoints)?;
            }
            iterator = next;
            continue;
        }
        if !options.settings.reports_item_failures() {
            let source = (arn, shard_id);
            delivered += settle_whole_batches(worker, &batch, source, lag, options, checkpoints)
                .await
                .map_err(fail)?;
            iterator = next;
            continue;
        }
        let outcome = worker
            .process_batch(&batch, BatchOptions::default(), &mut |_| {})
            .await;
        let first = batch
            .first()
            .map(|r| r.sequence_number.clone())
            .unwrap_or_default();
        let last = batch
            .last()
            .map(|r| r.sequence_number.clone())
            .unwrap_or_default();
        match &outcome.failure {
            None => {
                BatchLine {
                    lag_seconds: lag,
                    ..BatchLine::new(shard_id, "done", batch.len(), &first, &last)
                }
                .print(options.json);
                delivered += batch.len();
                attempts = 0;
                checkpoints.advance(shard_id, &last, &options.checkpoints)?;
                iterator = next;
            }
            Some(failure) => {
                // Everything before the failing record is done.
                let done_before = batch
                    .iter()
                    .take_while(|r| r.sequence_number != failure.sequence_number)
                    .last();
                if let Some(done) = done_before {
                    checkpoints.advance(shard_id, &done.sequence_number, &options.checkpoints)?;
                }
                attempts += 1;
                let limit = options.settings.maximum_retry_attempts;
                let seq = &failure.sequence_number;
                BatchLine {
                    attempt: Some(attempts),
                    reason: Some(failure.message.clone()),
                    ..BatchLine::new(shard_id, "failed", 1, seq, seq)
                }
                .print(options.json);
                let give_up = limit >= 0 && attempts > limit;
                if give_up {
                    // Described in the on-failure file, then skipped.
                    let failed = batch
                        .iter()
                        .position(|r| &r.sequence_number == seq)
                        .map_or(&batch[..0], |at| &batch[at..=at]);
                    let line = invocation_record(
                        failed,
                        arn,
                        shard_id,
                        Condition::RetryAttemptsExhausted,
                        attempts,
                        &failure.to_string(),
                    );
                    append_failure(&options.on_failure, &line).map_err(fail)?;
                    checkpoints.advance(shard_id, seq, &options.checkpoints)?;
                    attempts = 0;
                } else {
                    pause_before_retry(attempts).await;
                }
                // After the record given up on, or at the one to retry.
                iterator = iterator_after(streams, arn, shard_id, Some(seq.clone()), "", !give_up)
                    .await
                    .map_err(fail)?;
            }
        }
    }
    Ok(delivered)
}

/// Takes the records older than `MaximumRecordAgeInSeconds` out of `list` (Lambda records in
/// JSON) and describes each in the on-failure file.
fn set_aside_stale(
    list: &mut Vec<serde_json::Value>,
    arn: &str,
    shard_id: &str,
    options: &StreamOptions,
) -> Result<(), StreamError> {
    let max_age = options.settings.maximum_record_age_in_seconds;
    if max_age < 0 {
        return Ok(());
    }
    let oldest = (chrono::Utc::now().timestamp() - max_age) as f64;
    let (fresh, stale): (Vec<_>, Vec<_>) = std::mem::take(list).into_iter().partition(|record| {
        record["dynamodb"]["ApproximateCreationDateTime"]
            .as_f64()
            .is_none_or(|at| at >= oldest)
    });
    *list = fresh;
    if stale.is_empty() {
        return Ok(());
    }
    let stale = decode_value(serde_json::json!({ "Records": stale }), shard_id, None)?;
    for record in stale.chunks(1) {
        let line = invocation_record(
            record,
            arn,
            shard_id,
            Condition::RecordAgeExceeded,
            0,
            &format!("older than MaximumRecordAgeInSeconds ({max_age} s)"),
        );
        append_failure(&options.on_failure, &line)?;
    }
    Ok(())
}

/// Up to `BatchSize` records from `first` on, gathered over `MaximumBatchingWindowInSeconds`
/// from the first record read, and the iterator after them (None when the shard is closed).
async fn read_batch(
    streams: &aws_sdk_dynamodbstreams::Client,
    first: String,
    settings: &MappingSettings,
    shard_id: &str,
) -> Result<(Vec<aws_sdk_dynamodbstreams::types::Record>, Option<String>), StreamError> {
    let window = std::time::Duration::from_secs(settings.maximum_batching_window_in_seconds);
    let wanted = usize::try_from(settings.batch_size).unwrap_or(0).max(1);
    let mut started = None;
    let mut records = Vec::new();
    let mut iterator = Some(first);
    while let Some(current) = iterator.take() {
        let page = streams
            .get_records()
            .shard_iterator(current)
            .limit(i32::try_from(wanted - records.len()).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| classify("GetRecords", shard_id, e))?;
        let got = page.records.unwrap_or_default();
        let empty_read = got.is_empty();
        records.extend(got);
        iterator = page.next_shard_iterator;
        if records.is_empty() {
            break;
        }
        let since = *started.get_or_insert_with(std::time::Instant::now);
        if records.len() >= wanted || since.elapsed() >= window || stop_requested() {
            break;
        }
        if empty_read {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    Ok((records, iterator))
}

/// Without `ReportBatchItemFailures` a failure fails the whole batch, as in Lambda: it is retried
/// whole (records already done are skipped by the idempotency table), bisected first when
/// `BisectBatchOnFunctionError` is set (halves do not count as retries), and past
/// `MaximumRetryAttempts` the (sub-)batch is written to the on-failure file and skipped.
/// Halves are settled left before right, so the checkpoint only moves forward.
async fn settle_whole_batches(
    worker: &Worker,
    batch: &[StreamRecord],
    (arn, shard_id): (&str, &str),
    lag: Option<u64>,
    options: &StreamOptions,
    checkpoints: &mut Checkpoints,
) -> Result<usize, StreamError> {
    let settings = &options.settings;
    let mut delivered = 0;
    // Ranges still to settle, the next one on top.
    let mut pending = vec![(0, batch.len())];
    while let Some((lo, hi)) = pending.pop() {
        let part = &batch[lo..hi];
        let (first, last) = (
            &part[0].sequence_number,
            &part[part.len() - 1].sequence_number,
        );
        let mut attempts = 0;
        loop {
            if stop_requested() {
                // Not checkpointed: this part is delivered again after the restart.
                return Ok(delivered);
            }
            let outcome = worker
                .process_batch(part, BatchOptions::default(), &mut |_| {})
                .await;
            let Some(failure) = outcome.failure else {
                BatchLine {
                    lag_seconds: lag,
                    ..BatchLine::new(shard_id, "done", part.len(), first, last)
                }
                .print(options.json);
                delivered += part.len();
                break;
            };
            if settings.bisect_batch_on_function_error && part.len() > 1 {
                let mid = lo + part.len() / 2;
                BatchLine {
                    reason: Some(format!("{}: {}", failure.sequence_number, failure.message)),
                    ..BatchLine::new(shard_id, "bisecting", part.len(), first, last)
                }
                .print(options.json);
                pending.push((mid, hi));
                pending.push((lo, mid));
                break;
            }
            attempts += 1;
            BatchLine {
                attempt: Some(attempts),
                reason: Some(failure.message.clone()),
                ..BatchLine::new(shard_id, "failed", part.len(), first, last)
            }
            .print(options.json);
            let limit = settings.maximum_retry_attempts;
            if limit >= 0 && attempts > limit {
                let line = invocation_record(
                    part,
                    arn,
                    shard_id,
                    Condition::RetryAttemptsExhausted,
                    attempts,
                    &failure.to_string(),
                );
                append_failure(&options.on_failure, &line)?;
                break;
            }
            pause_before_retry(attempts).await;
        }
        if pending.last().is_none_or(|&(next, _)| next >= hi) {
            checkpoints.advance(shard_id, last, &options.checkpoints)?;
        }
    }
    Ok(delivered)
}

/// An iterator after (or `at`) `sequence`, or from the starting position without one.
async fn iterator_after(
    streams: &aws_sdk_dynamodbstreams::Client,
    arn: &str,
    shard_id: &str,
    sequence: Option<String>,
    starting_position: &str,
    at: bool,
) -> Result<Option<String>, StreamError> {
    let request = streams
        .get_shard_iterator()
        .stream_arn(arn)
        .shard_id(shard_id);
    let request = match sequence {
        Some(seq) => request
            .shard_iterator_type(if at {
                ShardIteratorType::AtSequenceNumber
            } else {
                ShardIteratorType::AfterSequenceNumber
            })
            .sequence_number(seq),
        None if starting_position == "LATEST" => {
            request.shard_iterator_type(ShardIteratorType::Latest)
        }
        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
    };
    let output = request
        .send()
        .await
        .map_err(|e| classify("GetShardIterator", shard_id, e))?;
    Ok(output.shard_iterator)
}

/// How far behind the stream the batch's newest record is (Lambda's iterator age), in whole
/// seconds; None when the records carry no creation time.
fn lag_seconds(event: &serde_json::Value) -> Option<u64> {
    let newest = event["Records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["dynamodb"]["ApproximateCreationDateTime"].as_f64())
        .fold(None, |newest: Option<f64>, at| {
            Some(newest.map_or(at, |n| n.max(at)))
        });
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    newest.map(|at| (now - at).max(0.0).round() as u64)
}

/// Doubling pauses from 100 ms, at most 6.4 s, so a record that keeps failing (forever with
/// the default `MaximumRetryAttempts` of -1) does not spin.
async fn pause_before_retry(attempts: i32) {
    let doublings = attempts.clamp(0, 6) as u32;
    tokio::time::sleep(std::time::Duration::from_millis(100 << doublings)).await;
}

/// One JSON line in the on-failure file.
fn append_failure(path: &Path, line: &serde_json::Value) -> Result<(), StreamError> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(StreamError::file(path))?;
    writeln!(file, "{line}").map_err(StreamError::file(path))
}

//! Delivering one shard as Lambda's event source mapping does: batches of `BatchSize`
//! gathered over `MaximumBatchingWindowInSeconds`, filters, `MaximumRecordAgeInSeconds`,
//! then either `ReportBatchItemFailures` (checkpoint before the reported record, retry from
//! it) or whole-batch failures (retried whole, bisected with `BisectBatchOnFunctionError`),
//! up to `MaximumRetryAttempts`, after which the record or batch goes to the on-failure file.
//! Each record is decoded once, when it is admitted to a batch.

use aws_sdk_dynamodbstreams::types::Record;
use chrono::Utc;

use super::checkpoints::Checkpoints;
use super::error::StreamError;
use super::filter_criteria::Patterns;
use super::get_records::lambda_record;
use super::on_failure::{append_failure, invocation_record, Condition};
use super::progress::BatchLine;
use super::reader::{sequence_number, Position, ReadError, StreamReader};
use super::settings::StreamOptions;
use super::stop::stop_requested;
use crate::adapters::backoff::STREAM_RETRY;
use crate::batch::{BatchOptions, RecordFailure, Worker};
use crate::decode::{decode_records, StreamRecord};

/// One shard's delivery, from its checkpoint on.
pub(super) struct ShardDelivery<'a> {
    pub worker: &'a Worker,
    pub reader: &'a StreamReader,
    pub arn: &'a str,
    pub shard_id: &'a str,
    pub options: &'a StreamOptions,
    pub patterns: &'a Patterns,
    pub checkpoints: &'a mut Checkpoints,
}

/// What one read of the shard admits to a batch.
struct Admitted {
    /// The records to deliver, in stream order, decoded.
    batch: Vec<StreamRecord>,
    /// How far behind the stream the newest of them is, in whole seconds.
    lag: Option<u64>,
}

impl ShardDelivery<'_> {
    /// Read and deliver the shard until it has nothing more now; returns records delivered.
    pub(super) async fn drain(mut self) -> Result<usize, StreamError> {
        let start = Position::resume(
            self.checkpoints.get(self.shard_id),
            &self.options.settings.starting_position,
        );
        let mut iterator = self.iterator(start).await?;
        let mut delivered = 0;
        let mut attempts = 0;
        while let Some(current) = iterator {
            if stop_requested() {
                return Ok(delivered);
            }
            let (records, next) = self.read_batch(current).await?;
            let (Some(first), Some(last)) = (records.first(), records.last()) else {
                return Ok(delivered);
            };
            let (first, last) = (sequence_number(first), sequence_number(last));
            let Admitted { batch, lag } = self.admit(&records)?;
            if batch.is_empty() {
                // What the filters drop is never delivered, as with Lambda; the checkpoint
                // moves past it.
                if !last.is_empty() {
                    let outcome = "not delivered (filtered or too old)";
                    BatchLine::new(self.shard_id, outcome, records.len(), first, last)
                        .print(self.options.json);
                    self.advance(last)?;
                }
                iterator = next;
                continue;
            }
            if !self.options.settings.reports_item_failures() {
                delivered += self.deliver_whole(&batch, lag).await?;
                iterator = next;
                continue;
            }
            match self.deliver_reporting_failures(&batch, lag).await? {
                None => {
                    delivered += batch.len();
                    attempts = 0;
                    iterator = next;
                }
                Some(failure) => {
                    attempts += 1;
                    let give_up = self.options.settings.retries_exhausted(attempts);
                    iterator = self
                        .retry_or_give_up(&batch, &failure, attempts, give_up)
                        .await?;
                    if give_up {
                        attempts = 0;
                    }
                }
            }
        }
        Ok(delivered)
    }

    async fn iterator(&self, position: Position<'_>) -> Result<Option<String>, StreamError> {
        self.reader
            .iterator(self.arn, self.shard_id, position)
            .await
            .map_err(|e| self.unreadable(e))
    }

    /// A read of this shard that failed, as the run's error.
    fn unreadable(&self, error: ReadError) -> StreamError {
        self.in_shard(StreamError::Service(error.into()))
    }

    /// `records`, given up on for `condition` after `attempts` deliveries, described in the
    /// on-failure file (Lambda's on-failure message, which `redrive` takes).
    fn give_up_on(
        &self,
        records: &[StreamRecord],
        condition: Condition,
        attempts: i32,
        reason: &str,
    ) -> Result<(), StreamError> {
        let line = invocation_record(
            records,
            self.arn,
            self.shard_id,
            condition,
            attempts,
            reason,
        );
        append_failure(&self.options.on_failure, &line).map_err(|e| self.in_shard(e))
    }

    fn in_shard(&self, error: StreamError) -> StreamError {
        StreamError::Shard {
            shard_id: self.shard_id.to_string(),
            source: Box::new(error),
        }
    }

    fn advance(&mut self, sequence: &str) -> Result<(), StreamError> {
        self.checkpoints
            .advance(self.shard_id, sequence, &self.options.checkpoints)
    }

    /// Up to `BatchSize` records from `first` on, gathered over
    /// `MaximumBatchingWindowInSeconds` from the first record read, and the iterator after
    /// them (None when the shard is closed).
    async fn read_batch(
        &self,
        first: String,
    ) -> Result<(Vec<Record>, Option<String>), StreamError> {
        let settings = &self.options.settings;
        let window = std::time::Duration::from_secs(settings.maximum_batching_window_in_seconds);
        let wanted = usize::try_from(settings.batch_size).unwrap_or(0).max(1);
        let mut started = None;
        let mut records = Vec::new();
        let mut iterator = Some(first);
        while let Some(current) = iterator.take() {
            let (got, next) = self
                .reader
                .page(current, Some(wanted - records.len()), self.shard_id)
                .await
                .map_err(|e| self.unreadable(e))?;
            let empty_read = got.is_empty();
            records.extend(got);
            iterator = next;
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

    /// The records the filters let through, decoded once; those older than
    /// `MaximumRecordAgeInSeconds` are described in the on-failure file instead.
    fn admit(&self, records: &[Record]) -> Result<Admitted, StreamError> {
        let max_age = self.options.settings.maximum_record_age_in_seconds;
        let oldest = (max_age >= 0).then(|| (Utc::now().timestamp() - max_age) as f64);
        let mut created = Vec::new();
        let mut values = Vec::new();
        for record in records {
            let value = lambda_record(record, self.arn);
            if self.patterns.matches(&value) {
                created.push(created_at(record));
                values.push(value);
            }
        }
        let mut batch = Vec::with_capacity(values.len());
        let mut newest: Option<f64> = None;
        for (record, at) in decode_records(values).into_iter().zip(created) {
            if let (Some(oldest), Some(at)) = (oldest, at) {
                if at < oldest {
                    self.give_up_on(
                        std::slice::from_ref(&record),
                        Condition::RecordAgeExceeded,
                        0,
                        &format!("older than MaximumRecordAgeInSeconds ({max_age} s)"),
                    )?;
                    continue;
                }
            }
            if let Some(at) = at {
                newest = Some(newest.map_or(at, |n| n.max(at)));
            }
            batch.push(record);
        }
        let now = Utc::now().timestamp_millis() as f64 / 1000.0;
        let lag = newest.map(|at| (now - at).max(0.0).round() as u64);
        Ok(Admitted { batch, lag })
    }

    /// With `ReportBatchItemFailures`: deliver `batch`; on a failure, checkpoint before the
    /// reported record and return it.
    async fn deliver_reporting_failures(
        &mut self,
        batch: &[StreamRecord],
        lag: Option<u64>,
    ) -> Result<Option<RecordFailure>, StreamError> {
        let outcome = self
            .worker
            .process_batch(batch, BatchOptions::default(), &mut |_| {})
            .await;
        let first = batch.first().map_or("", |r| r.sequence_number.as_str());
        let last = batch.last().map_or("", |r| r.sequence_number.as_str());
        let Some(failure) = outcome.failure else {
            BatchLine {
                lag_seconds: lag,
                ..BatchLine::new(self.shard_id, "done", batch.len(), first, last)
            }
            .print(self.options.json);
            self.advance(last)?;
            return Ok(None);
        };
        // Everything before the failing record is done.
        let done_before = batch
            .iter()
            .take_while(|r| r.sequence_number != failure.sequence_number)
            .last();
        if let Some(done) = done_before {
            self.advance(&done.sequence_number)?;
        }
        Ok(Some(failure))
    }

    /// After `attempts` failed deliveries of the reported record: given up on (past
    /// `MaximumRetryAttempts`), it is described in the on-failure file and skipped; otherwise
    /// the delivery pauses and retries from it. Returns the iterator to go on with.
    async fn retry_or_give_up(
        &mut self,
        batch: &[StreamRecord],
        failure: &RecordFailure,
        attempts: i32,
        give_up: bool,
    ) -> Result<Option<String>, StreamError> {
        let seq = failure.sequence_number.as_str();
        BatchLine {
            attempt: Some(attempts),
            reason: Some(failure.message.clone()),
            ..BatchLine::new(self.shard_id, "failed", 1, seq, seq)
        }
        .print(self.options.json);
        if !give_up {
            STREAM_RETRY.pause(attempts.max(0) as u32).await;
            return self.iterator(Position::At(seq)).await;
        }
        let failed = batch
            .iter()
            .position(|r| r.sequence_number == seq)
            .map_or(&batch[..0], |at| &batch[at..=at]);
        self.give_up_on(
            failed,
            Condition::RetryAttemptsExhausted,
            attempts,
            &failure.to_string(),
        )?;
        self.advance(seq)?;
        self.iterator(Position::After(seq)).await
    }

    /// Without `ReportBatchItemFailures` a failure fails the whole batch, as in Lambda: it is
    /// retried whole (records already done are skipped by the idempotency table), bisected
    /// first when `BisectBatchOnFunctionError` is set (halves do not count as retries), and
    /// past `MaximumRetryAttempts` the (sub-)batch is written to the on-failure file and
    /// skipped. Halves are delivered left before right, so the checkpoint only moves forward.
    async fn deliver_whole(
        &mut self,
        batch: &[StreamRecord],
        lag: Option<u64>,
    ) -> Result<usize, StreamError> {
        let settings = &self.options.settings;
        let json = self.options.json;
        let mut delivered = 0;
        // Ranges still to deliver, the next one on top.
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
                let outcome = self
                    .worker
                    .process_batch(part, BatchOptions::default(), &mut |_| {})
                    .await;
                let Some(failure) = outcome.failure else {
                    BatchLine {
                        lag_seconds: lag,
                        ..BatchLine::new(self.shard_id, "done", part.len(), first, last)
                    }
                    .print(json);
                    delivered += part.len();
                    break;
                };
                if settings.bisect_batch_on_function_error && part.len() > 1 {
                    let mid = lo + part.len() / 2;
                    BatchLine {
                        reason: Some(format!("{}: {}", failure.sequence_number, failure.message)),
                        ..BatchLine::new(self.shard_id, "bisecting", part.len(), first, last)
                    }
                    .print(json);
                    pending.push((mid, hi));
                    pending.push((lo, mid));
                    break;
                }
                attempts += 1;
                BatchLine {
                    attempt: Some(attempts),
                    reason: Some(failure.message.clone()),
                    ..BatchLine::new(self.shard_id, "failed", part.len(), first, last)
                }
                .print(json);
                if settings.retries_exhausted(attempts) {
                    self.give_up_on(
                        part,
                        Condition::RetryAttemptsExhausted,
                        attempts,
                        &failure.to_string(),
                    )?;
                    break;
                }
                STREAM_RETRY.pause(attempts.max(0) as u32).await;
            }
            if pending.last().is_none_or(|&(next, _)| next >= hi) {
                self.advance(last)?;
            }
        }
        Ok(delivered)
    }
}

/// When the stream took the record in, in epoch seconds (Lambda's ApproximateCreationDateTime).
fn created_at(record: &Record) -> Option<f64> {
    record
        .dynamodb
        .as_ref()?
        .approximate_creation_date_time
        .map(|at| at.as_secs_f64())
}

//! One of a shard's deliveries, as Lambda runs up to `ParallelizationFactor` of them per
//! shard: it takes the records dealt to it (one partition key always to the same one, in
//! stream order), gathers batches of `BatchSize` over `MaximumBatchingWindowInSeconds`, and
//! delivers them with its own retries: `ReportBatchItemFailures` (the batch's records before
//! the reported one are finished, the next batch starts at it) or whole-batch failures
//! (retried whole, bisected with `BisectBatchOnFunctionError`), up to `MaximumRetryAttempts`,
//! after which the record or batch goes to the on-failure file. What it finishes it marks in
//! the shard's [`Frontier`], which alone moves the checkpoint.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc::UnboundedReceiver;

use super::counts::{Event, EventCounts};
use super::error::StreamError;
use super::frontier::{Frontier, Place};
use super::mapping_settings::StreamOptions;
use super::on_failure::{append_failure, invocation_record, Condition};
use super::progress::BatchLine;
use super::stop::stop_requested;
use crate::adapters::backoff::STREAM_RETRY;
use crate::batch::{BatchOptions, NotDone, RecordFailure, Worker};
use crate::decode::StreamRecord;

/// What the deliveries of one shard share.
pub(super) struct Shard<'a> {
    pub arn: &'a str,
    pub shard_id: &'a str,
    pub options: &'a StreamOptions,
    pub frontier: Frontier<'a>,
    pub counts: &'a EventCounts,
}

/// A record dealt to a delivery.
pub(super) struct Dealt {
    pub place: Place,
    pub record: StreamRecord,
    /// When the stream took it in, in epoch seconds (ApproximateCreationDateTime).
    pub created: Option<f64>,
}

impl Shard<'_> {
    /// `records`, given up on for `condition` after `attempts` deliveries: described in the
    /// on-failure file (Lambda's on-failure message, which `redrive` takes), and finished.
    pub(super) fn give_up_on(
        &self,
        records: &[Dealt],
        condition: Condition,
        attempts: i32,
        reason: &str,
    ) -> Result<(), StreamError> {
        let given_up: Vec<StreamRecord> = records.iter().map(|d| d.record.clone()).collect();
        let line = invocation_record(
            &given_up,
            self.arn,
            self.shard_id,
            condition,
            attempts,
            reason,
        );
        append_failure(&self.options.on_failure, &line).map_err(|e| self.in_shard(e))?;
        self.counts.add(Event::Dropped, records.len());
        self.finish(records)
    }

    /// `records` are done with: the checkpoint may move past them.
    pub(super) fn finish(&self, records: &[Dealt]) -> Result<(), StreamError> {
        self.frontier
            .finish(records.iter().map(|d| d.place))
            .map_err(|e| self.in_shard(e))
    }

    pub(super) fn in_shard(&self, error: StreamError) -> StreamError {
        StreamError::Shard {
            shard_id: self.shard_id.to_string(),
            source: Box::new(error),
        }
    }

    /// The batch line of `batch` with `outcome`.
    fn line<'b>(&'b self, outcome: &'b str, batch: &'b [Dealt], lane: usize) -> BatchLine<'b> {
        let first = batch
            .first()
            .map_or("", |d| d.record.sequence_number.as_str());
        let last = batch
            .last()
            .map_or("", |d| d.record.sequence_number.as_str());
        let delivery = (self.options.settings.parallelization_factor > 1).then_some(lane);
        BatchLine {
            delivery,
            ..BatchLine::new(self.shard_id, outcome, batch.len(), first, last)
        }
    }

    /// `batch` was delivered and is finished: its line (with how far behind the stream it is,
    /// as Lambda's IteratorAge measures it: the newest record's age when the batch is done).
    fn delivered(
        &self,
        batch: &[Dealt],
        lane: usize,
        started: chrono::DateTime<Utc>,
        not_done: NotDone,
    ) -> Result<(), StreamError> {
        self.counts.add_not_done(not_done);
        let now = Utc::now();
        let newest = batch.iter().filter_map(|d| d.created).reduce(f64::max);
        let age_ms =
            newest.map(|at| ((now.timestamp_millis() as f64 - at * 1000.0).max(0.0)) as u64);
        if let Some(age_ms) = age_ms {
            self.counts.iterator_age(self.shard_id, age_ms);
        }
        BatchLine {
            lag_seconds: age_ms.map(|ms| (ms as f64 / 1000.0).round() as u64),
            started_at: self.options.json.then(|| micros(started)),
            finished_at: self.options.json.then(|| micros(now)),
            not_done: (not_done != NotDone::default()).then_some(not_done),
            ..self.line(not_done.outcome(), batch, lane)
        }
        .print(self.options.json);
        self.finish(batch)
    }
}

/// One delivery of a shard: the records dealt to it, and the worker it delivers to (its own,
/// as each of Lambda's concurrent batches runs in an execution environment of its own).
pub(super) struct Lane<'a> {
    pub index: usize,
    pub worker: &'a Worker,
    pub shard: &'a Shard<'a>,
    pub dealt: UnboundedReceiver<Dealt>,
}

impl Lane<'_> {
    /// Deliver what is dealt until the dealing ends (or Ctrl-C); returns records delivered.
    pub(super) async fn run(mut self) -> Result<usize, StreamError> {
        let settings = &self.shard.options.settings;
        let mut waiting: VecDeque<Dealt> = VecDeque::new();
        let mut delivered = 0;
        let mut attempts = 0;
        loop {
            if stop_requested() {
                // Not finished: delivered again after the restart.
                return Ok(delivered);
            }
            if !self.gather(&mut waiting).await {
                return Ok(delivered);
            }
            let take = waiting.len().min(settings.batch_len());
            let batch: Vec<Dealt> = waiting.drain(..take).collect();
            if !settings.reports_item_failures() {
                delivered += self.deliver_whole(&batch).await?;
                continue;
            }
            match self.deliver_reporting_failures(&batch).await? {
                None => {
                    delivered += batch.len();
                    attempts = 0;
                }
                Some((failure, at)) => {
                    attempts += 1;
                    let give_up = settings.retries_exhausted(attempts);
                    let mut rest = batch;
                    let unfinished = rest.split_off(at);
                    delivered += rest.len();
                    self.retry_or_give_up(unfinished, &failure, attempts, give_up, &mut waiting)
                        .await?;
                    if give_up {
                        attempts = 0;
                    }
                }
            }
        }
    }

    /// Wait for a batch's worth in `waiting`: up to `BatchSize`, gathered for at most
    /// `MaximumBatchingWindowInSeconds` from when there is a record. False when nothing is
    /// left and nothing more will come.
    async fn gather(&mut self, waiting: &mut VecDeque<Dealt>) -> bool {
        let settings = &self.shard.options.settings;
        let wanted = settings.batch_len();
        if waiting.is_empty() {
            match self.dealt.recv().await {
                Some(record) => waiting.push_back(record),
                None => return false,
            }
        }
        // What is already dealt joins at once (Lambda's window 0: what one read returns).
        while waiting.len() < wanted {
            match self.dealt.try_recv() {
                Ok(record) => waiting.push_back(record),
                Err(_) => break,
            }
        }
        let window = Duration::from_secs(settings.maximum_batching_window_in_seconds);
        let until = tokio::time::Instant::now() + window;
        while waiting.len() < wanted && !stop_requested() {
            match tokio::time::timeout_at(until, self.dealt.recv()).await {
                Ok(Some(record)) => waiting.push_back(record),
                // The dealing ended, or the window closed.
                Ok(None) | Err(_) => break,
            }
        }
        true
    }

    /// Deliver `batch` once: the record it failed at, if any, and what of it was not simply
    /// done.
    async fn process(&self, batch: &[Dealt]) -> (Option<RecordFailure>, NotDone) {
        let records: Vec<StreamRecord> = batch.iter().map(|d| d.record.clone()).collect();
        self.shard.counts.add(Event::Invoked, records.len());
        let mut not_done = NotDone::default();
        let outcome = self
            .worker
            .process_batch(&records, BatchOptions::default(), &mut |report| {
                not_done.add(&report)
            })
            .await;
        (outcome.failure, not_done)
    }

    /// With `ReportBatchItemFailures`: deliver `batch`; on a failure, finish the records
    /// before the reported one and return the failure and where in `batch` it is.
    async fn deliver_reporting_failures(
        &self,
        batch: &[Dealt],
    ) -> Result<Option<(RecordFailure, usize)>, StreamError> {
        let started = Utc::now();
        let (failure, not_done) = self.process(batch).await;
        let Some(failure) = failure else {
            self.shard.delivered(batch, self.index, started, not_done)?;
            return Ok(None);
        };
        let at = batch
            .iter()
            .position(|d| d.record.sequence_number == failure.sequence_number)
            .unwrap_or(0);
        self.shard.counts.add(Event::FailedInvoke, batch.len() - at);
        self.shard.finish(&batch[..at])?;
        Ok(Some((failure, at)))
    }

    /// After `attempts` failed deliveries of the reported record (first in `unfinished`):
    /// given up on (past `MaximumRetryAttempts`), it is described in the on-failure file and
    /// the rest waits for the next batch; otherwise the delivery pauses and the next batch
    /// starts at it.
    async fn retry_or_give_up(
        &self,
        mut unfinished: Vec<Dealt>,
        failure: &RecordFailure,
        attempts: i32,
        give_up: bool,
        waiting: &mut VecDeque<Dealt>,
    ) -> Result<(), StreamError> {
        BatchLine {
            attempt: Some(attempts),
            reason: Some(failure.message.clone()),
            ..self
                .shard
                .line("failed", &unfinished[..1.min(unfinished.len())], self.index)
        }
        .print(self.shard.options.json);
        if give_up && !unfinished.is_empty() {
            let failed = unfinished.remove(0);
            self.shard.give_up_on(
                std::slice::from_ref(&failed),
                Condition::RetryAttemptsExhausted,
                attempts,
                &failure.to_string(),
            )?;
        } else {
            STREAM_RETRY.pause(attempts.max(0) as u32).await;
        }
        for record in unfinished.into_iter().rev() {
            waiting.push_front(record);
        }
        Ok(())
    }

    /// Without `ReportBatchItemFailures` a failure fails the whole batch, as in Lambda: it is
    /// retried whole (records already done are skipped by the idempotency table), bisected
    /// first when `BisectBatchOnFunctionError` is set (halves do not count as retries), and
    /// past `MaximumRetryAttempts` the (sub-)batch is written to the on-failure file and
    /// skipped. Halves are delivered left before right.
    async fn deliver_whole(&self, batch: &[Dealt]) -> Result<usize, StreamError> {
        let settings = &self.shard.options.settings;
        let json = self.shard.options.json;
        let mut delivered = 0;
        // Ranges still to deliver, the next one on top.
        let mut pending = vec![(0, batch.len())];
        while let Some((lo, hi)) = pending.pop() {
            let part = &batch[lo..hi];
            let mut attempts = 0;
            loop {
                if stop_requested() {
                    // Not finished: this part is delivered again after the restart.
                    return Ok(delivered);
                }
                let started = Utc::now();
                let (failure, not_done) = self.process(part).await;
                let Some(failure) = failure else {
                    self.shard.delivered(part, self.index, started, not_done)?;
                    delivered += part.len();
                    break;
                };
                self.shard.counts.add(Event::FailedInvoke, part.len());
                if settings.bisect_batch_on_function_error && part.len() > 1 {
                    let mid = lo + part.len() / 2;
                    BatchLine {
                        reason: Some(format!("{}: {}", failure.sequence_number, failure.message)),
                        ..self.shard.line("bisecting", part, self.index)
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
                    ..self.shard.line("failed", part, self.index)
                }
                .print(json);
                if settings.retries_exhausted(attempts) {
                    self.shard.give_up_on(
                        part,
                        Condition::RetryAttemptsExhausted,
                        attempts,
                        &failure.to_string(),
                    )?;
                    break;
                }
                STREAM_RETRY.pause(attempts.max(0) as u32).await;
            }
        }
        Ok(delivered)
    }
}

/// A time to the microsecond, in UTC: of fixed width, so such times compare as text too.
fn micros(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

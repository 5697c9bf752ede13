//! Delivering one shard as Lambda's event source mapping does: it reads the shard from its
//! checkpoint, lets through what the filters pass, sets aside records older than
//! `MaximumRecordAgeInSeconds`, decodes each record once, and deals them to
//! `ParallelizationFactor` concurrent deliveries (`shard`) by the hash of the item's partition
//! key, so that one key's records are delivered by one of them, in stream order. It keeps
//! reading while a delivery is busy (what the worker writes to the table comes back on the
//! stream) or a batching window is open.
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::Record;
use chrono::Utc;
use handlers::AttributeValue;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::checkpoints::Checkpoints;
use super::counts::{Event, EventCounts};
use super::error::StreamError;
use super::filter_criteria::Patterns;
use super::frontier::Frontier;
use super::get_records::lambda_record;
use super::mapping_settings::StreamOptions;
use super::on_failure::Condition;
use super::progress::BatchLine;
use super::reader::{sequence_number, Position, ReadError, StreamReader};
use super::shard::{Dealt, Lane, Shard};
use super::stop::stop_requested;
use crate::batch::Worker;
use crate::decode::decode_stream_records;

/// The most records GetRecords returns in one page.
const MAX_PAGE: usize = 1000;

/// How long to wait before reading a shard again after an empty page, while a delivery is
/// busy or a batching window is open.
const EMPTY_PAGE_PAUSE: Duration = Duration::from_millis(200);

/// One shard's delivery, from its checkpoint on.
pub(super) struct ShardDelivery<'a> {
    /// One worker per concurrent delivery (`ParallelizationFactor` of them).
    pub workers: &'a [Worker],
    pub reader: &'a StreamReader,
    pub arn: &'a str,
    pub shard_id: &'a str,
    /// The stream's partition key attribute, which deals records to deliveries.
    pub partition_key: Option<&'a str>,
    pub options: &'a StreamOptions,
    pub patterns: &'a Patterns,
    pub checkpoints: &'a mut Checkpoints,
    pub counts: &'a EventCounts,
}

impl ShardDelivery<'_> {
    /// Read and deliver the shard until it has nothing more now; returns records delivered.
    pub(super) async fn drain(self) -> Result<usize, StreamError> {
        let start = self.checkpoints.get(self.shard_id).map(str::to_string);
        let shard = Shard {
            arn: self.arn,
            shard_id: self.shard_id,
            options: self.options,
            frontier: Frontier::new(self.checkpoints, self.shard_id, &self.options.checkpoints),
            counts: self.counts,
        };
        let mut senders = Vec::with_capacity(self.workers.len());
        let mut lanes = Vec::with_capacity(self.workers.len());
        for (index, worker) in self.workers.iter().enumerate() {
            let (sender, dealt) = unbounded_channel();
            senders.push(sender);
            let shard = &shard;
            lanes.push(
                Lane {
                    index,
                    worker,
                    shard,
                    dealt,
                }
                .run(),
            );
        }
        let reading = Reading {
            reader: self.reader,
            patterns: self.patterns,
            partition_key: self.partition_key,
            shard: &shard,
            senders,
        }
        .run(start.as_deref());
        let ((), delivered) = futures::try_join!(reading, futures::future::try_join_all(lanes))?;
        Ok(delivered.into_iter().sum())
    }
}

/// The reading side of a shard's delivery: pages in, records dealt out.
struct Reading<'a> {
    reader: &'a StreamReader,
    patterns: &'a Patterns,
    partition_key: Option<&'a str>,
    shard: &'a Shard<'a>,
    senders: Vec<UnboundedSender<Dealt>>,
}

impl Reading<'_> {
    /// Read from after `checkpoint` (or the starting position) until the shard has nothing
    /// more now, every delivery is idle and no batching window is open; dropping the senders
    /// then ends the deliveries.
    async fn run(self, checkpoint: Option<&str>) -> Result<(), StreamError> {
        let options = self.shard.options;
        let settings = &options.settings;
        let start = Position::resume(checkpoint, &settings.starting_position);
        let mut iterator = self.iterator(start).await?;
        // At most this many records read and not yet finished: the deliveries' batches, twice.
        let backlog = settings.batch_len() * self.senders.len() * 2;
        let page_limit = backlog.min(MAX_PAGE);
        while let Some(current) = iterator.take() {
            if stop_requested() {
                return Ok(());
            }
            self.shard.frontier.below(backlog).await;
            let (records, next) = self
                .reader
                .page(current, Some(page_limit), self.shard.shard_id)
                .await
                .map_err(|e| self.unreadable(e))?;
            iterator = next;
            if records.is_empty() {
                // A delivery still has records (delivering them, or gathering a batch over
                // its window): what comes meanwhile joins.
                if self.shard.frontier.idle() {
                    return Ok(());
                }
                tokio::time::sleep(EMPTY_PAGE_PAUSE).await;
                continue;
            }
            self.deal(&records)?;
            self.shard.counts.on_interval();
        }
        Ok(())
    }

    async fn iterator(&self, position: Position<'_>) -> Result<Option<String>, StreamError> {
        self.reader
            .iterator(self.shard.arn, self.shard.shard_id, position)
            .await
            .map_err(|e| self.unreadable(e))
    }

    /// A read of this shard that failed, as the run's error.
    fn unreadable(&self, error: ReadError) -> StreamError {
        self.shard.in_shard(StreamError::Service(error.into()))
    }

    /// Give every record of a page its place, then deal what the filters pass and is young
    /// enough, decoded once, to the delivery of its partition key.
    fn deal(&self, records: &[Record]) -> Result<(), StreamError> {
        let shard = self.shard;
        let counts = shard.counts;
        counts.add(Event::Polled, records.len());
        if let Some(last) = records.last() {
            counts.read_up_to(shard.shard_id, sequence_number(last));
        }
        let max_age = shard.options.settings.maximum_record_age_in_seconds;
        let oldest = (max_age >= 0).then(|| (Utc::now().timestamp() - max_age) as f64);
        let mut passed = Vec::new();
        let mut filtered_out = Vec::new();
        let mut filtered_range = (None, None);
        for record in records {
            let sequence = sequence_number(record);
            let place = shard.frontier.read(sequence);
            let value = lambda_record(record, shard.arn);
            if self.patterns.matches(&value) {
                passed.push((place, created_at(record), record, value));
                continue;
            }
            filtered_out.push(place);
            filtered_range.0.get_or_insert(sequence);
            filtered_range.1 = Some(sequence);
        }
        // What the filters drop is never delivered, as with Lambda; the checkpoint moves
        // past it.
        if let (Some(first), Some(last)) = filtered_range {
            let outcome = "not delivered (filtered out)";
            BatchLine::new(shard.shard_id, outcome, filtered_out.len(), first, last)
                .print(shard.options.json);
        }
        counts.add(Event::FilteredOut, filtered_out.len());
        shard
            .frontier
            .finish(filtered_out)
            .map_err(|e| shard.in_shard(e))?;
        // The JSON the filters read is the record's text for parking; the record itself is
        // decoded from the SDK's types.
        let (places, records): (Vec<_>, Vec<_>) = passed
            .into_iter()
            .map(|(place, created, record, value)| {
                ((place, created), (record, Arc::from(value.to_string())))
            })
            .unzip();
        let decoded = decode_stream_records(records, shard.arn);
        for (record, (place, created)) in decoded.into_iter().zip(places) {
            let dealt = Dealt {
                place,
                record,
                created,
            };
            if let (Some(oldest), Some(at)) = (oldest, created) {
                if at < oldest {
                    shard.give_up_on(
                        std::slice::from_ref(&dealt),
                        Condition::RecordAgeExceeded,
                        0,
                        &format!("older than MaximumRecordAgeInSeconds ({max_age} s)"),
                    )?;
                    continue;
                }
            }
            let lane = self.lane_of(&dealt);
            // A delivery that has stopped (Ctrl-C, or its error ends the run) takes nothing.
            let _ = self.senders[lane].send(dealt);
        }
        Ok(())
    }

    /// The delivery a record goes to: the hash of its item's partition key, so one key's
    /// records always go to the same one.
    fn lane_of(&self, dealt: &Dealt) -> usize {
        if self.senders.len() == 1 {
            return 0;
        }
        let mut hasher = DefaultHasher::new();
        match self
            .partition_key
            .and_then(|name| dealt.record.keys.get(name))
        {
            Some(AttributeValue::S(s)) => s.hash(&mut hasher),
            Some(AttributeValue::N(n)) => n.hash(&mut hasher),
            Some(AttributeValue::B(b)) => b.hash(&mut hasher),
            // No usable key (a record the worker parks at decode): any delivery will do.
            _ => {}
        }
        (hasher.finish() % self.senders.len() as u64) as usize
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

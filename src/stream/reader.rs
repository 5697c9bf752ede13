//! Reading a DynamoDB stream: a table's stream, its shards (parents before children, every
//! page of DescribeStream), iterators at a position, and pages of records. `stream` delivers
//! what it reads as Lambda does (`delivery`); `redrive` reads back the range an
//! on-failure message names ([`StreamReader::read_range`]).

use std::collections::HashSet;

use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
use aws_sdk_dynamodbstreams::types::{KeyType, Record, Shard, ShardIteratorType};
use handlers::sequence_number::SequenceNumber;
use handlers::PortError;
use thiserror::Error;

use crate::adapters::classify;

/// Empty GetRecords pages in a row after which an open shard is taken to hold no more of a
/// range (a page may be empty while later records exist, so one is not enough).
const EMPTY_READS: usize = 5;

/// The clients a stream is read with (built by the one configuration path, `wiring`).
#[derive(Clone)]
pub struct StreamReader {
    tables: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
}

/// Where in a shard to start reading.
#[derive(Debug, Clone, Copy)]
pub enum Position<'a> {
    TrimHorizon,
    Latest,
    At(&'a str),
    After(&'a str),
}

impl<'a> Position<'a> {
    /// After `checkpoint` when there is one, else the mapping's `StartingPosition`.
    pub fn resume(checkpoint: Option<&'a str>, starting_position: &str) -> Self {
        match (checkpoint, starting_position) {
            (Some(seq), _) => Position::After(seq),
            (None, "LATEST") => Position::Latest,
            (None, _) => Position::TrimHorizon,
        }
    }
}

/// Why a stream could not be read.
#[derive(Debug, Error)]
pub enum ReadError {
    /// The position is past what the stream keeps (24 hours; TrimmedDataAccessException), or
    /// a sequence number the shard does not hold (DynamoDB Local's ValidationException, with
    /// its message in `detail`).
    #[error("{error}")]
    Trimmed { detail: String, error: PortError },
    /// The stream or the shard does not exist.
    #[error("{0}")]
    Gone(PortError),
    #[error("{0}")]
    Service(PortError),
}

impl From<ReadError> for PortError {
    fn from(error: ReadError) -> PortError {
        match error {
            ReadError::Trimmed { error, .. }
            | ReadError::Gone(error)
            | ReadError::Service(error) => error,
        }
    }
}

/// What DescribeStream tells of a stream: its shards, parents first, and the attribute that
/// is its table's partition key.
pub struct StreamShards {
    pub partition_key: Option<String>,
    pub shards: Vec<Shard>,
}

/// A table without a stream, or a stream DescribeStream does not describe.
#[derive(Debug, Error)]
pub enum NoStream {
    #[error("{table} has no stream: enable NEW_AND_OLD_IMAGES on it (tables create does)")]
    NotEnabled { table: String },
    #[error("DescribeStream returned no description for {table}")]
    NoDescription { table: String },
    #[error(transparent)]
    Service(#[from] PortError),
}

impl StreamReader {
    pub fn new(tables: aws_sdk_dynamodb::Client, streams: aws_sdk_dynamodbstreams::Client) -> Self {
        StreamReader { tables, streams }
    }

    async fn describe_table(
        &self,
        table: &str,
    ) -> Result<Option<aws_sdk_dynamodb::types::TableDescription>, NoStream> {
        let described = self
            .tables
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| classify("DescribeTable", table, e))?;
        Ok(described.table)
    }

    /// The ARN of `table`'s current stream.
    pub async fn stream_arn(&self, table: &str) -> Result<String, NoStream> {
        self.describe_table(table)
            .await?
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| NoStream::NotEnabled {
                table: table.to_string(),
            })
    }

    /// `table`'s key schema and indexes as DescribeTable gives them, in the JSON shape of
    /// DescribeTable's output (`{"Table": {"TableName", "KeySchema", "AttributeDefinitions",
    /// "GlobalSecondaryIndexes"}}`), which `replay --schema` reads.
    pub async fn table_schema(&self, table: &str) -> Result<serde_json::Value, NoStream> {
        let description =
            self.describe_table(table)
                .await?
                .ok_or_else(|| NoStream::NoDescription {
                    table: table.to_string(),
                })?;
        let keys = |elements: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
            elements
                .iter()
                .map(|k| {
                    serde_json::json!({
                        "AttributeName": k.attribute_name(),
                        "KeyType": k.key_type().as_str(),
                    })
                })
                .collect::<Vec<_>>()
        };
        let attributes: Vec<serde_json::Value> = description
            .attribute_definitions()
            .iter()
            .map(|a| {
                serde_json::json!({
                    "AttributeName": a.attribute_name(),
                    "AttributeType": a.attribute_type().as_str(),
                })
            })
            .collect();
        let indexes: Vec<serde_json::Value> = description
            .global_secondary_indexes()
            .iter()
            .map(|i| {
                serde_json::json!({
                    "IndexName": i.index_name().unwrap_or_default(),
                    "KeySchema": keys(i.key_schema()),
                    "Projection": {"ProjectionType": i.projection().and_then(|p| p.projection_type()).map_or("ALL", |t| t.as_str())},
                })
            })
            .collect();
        Ok(serde_json::json!({ "Table": {
            "TableName": description.table_name().unwrap_or(table),
            "KeySchema": keys(description.key_schema()),
            "AttributeDefinitions": attributes,
            "GlobalSecondaryIndexes": indexes,
        }}))
    }

    /// Every shard of the stream (all pages), each parent before its children; `table` names
    /// it in errors.
    pub async fn shards(&self, arn: &str, table: &str) -> Result<Vec<Shard>, NoStream> {
        Ok(self.describe(arn, table).await?.shards)
    }

    /// The stream's shards (as [`StreamReader::shards`]) and its partition key attribute.
    pub async fn describe(&self, arn: &str, table: &str) -> Result<StreamShards, NoStream> {
        let mut partition_key = None;
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let page = self
                .streams
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| classify("DescribeStream", table, e))?;
            let description = page
                .stream_description
                .ok_or_else(|| NoStream::NoDescription {
                    table: table.to_string(),
                })?;
            shards.extend(description.shards.unwrap_or_default());
            partition_key = partition_key.or_else(|| {
                description
                    .key_schema
                    .unwrap_or_default()
                    .into_iter()
                    .find(|k| k.key_type == KeyType::Hash)
                    .map(|k| k.attribute_name)
            });
            match description.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => {
                    return Ok(StreamShards {
                        partition_key,
                        shards: parents_first(shards),
                    })
                }
            }
        }
    }

    /// An iterator at `position` in the shard (None: the shard is closed and read to its end).
    pub async fn iterator(
        &self,
        arn: &str,
        shard_id: &str,
        position: Position<'_>,
    ) -> Result<Option<String>, ReadError> {
        let request = self
            .streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard_id);
        let request = match position {
            Position::At(seq) => request
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .sequence_number(seq),
            Position::After(seq) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(seq),
            Position::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
            Position::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        match request.send().await {
            Ok(output) => Ok(output.shard_iterator),
            Err(error) => {
                let service = error.as_service_error();
                // Trimmed, or (DynamoDB Local) a sequence number the shard does not hold.
                let trimmed = match service {
                    Some(e) if e.is_trimmed_data_access_exception() => Some(String::new()),
                    Some(e) if e.code() == Some("ValidationException") => {
                        Some(format!(": {}", e.message().unwrap_or("invalid")))
                    }
                    _ => None,
                };
                let gone = service.is_some_and(|e| e.is_resource_not_found_exception());
                let error = classify("GetShardIterator", shard_id, error);
                Err(match (trimmed, gone) {
                    (Some(detail), _) => ReadError::Trimmed { detail, error },
                    (None, true) => ReadError::Gone(error),
                    (None, false) => ReadError::Service(error),
                })
            }
        }
    }

    /// One GetRecords page from `iterator` (at most `limit` records, if given), and the
    /// iterator after it (None when the shard is closed and read to its end).
    pub async fn page(
        &self,
        iterator: String,
        limit: Option<usize>,
        shard_id: &str,
    ) -> Result<(Vec<Record>, Option<String>), ReadError> {
        let limit = limit.map(|l| i32::try_from(l).unwrap_or(i32::MAX));
        let page = self
            .streams
            .get_records()
            .shard_iterator(iterator)
            .set_limit(limit)
            .send()
            .await
            .map_err(|e| {
                let trimmed = e
                    .as_service_error()
                    .is_some_and(|e| e.is_trimmed_data_access_exception());
                let port = classify("GetRecords", shard_id, e);
                match trimmed {
                    true => ReadError::Trimmed {
                        detail: String::new(),
                        error: port,
                    },
                    false => ReadError::Service(port),
                }
            })?;
        Ok((page.records.unwrap_or_default(), page.next_shard_iterator))
    }

    /// The records of `shard_id` from `start` to `end` (sequence numbers, both included), as
    /// far as the stream still holds them: the caller compares the first and last with the
    /// range to tell what is missing.
    pub async fn read_range(
        &self,
        arn: &str,
        shard_id: &str,
        start: &str,
        end: &str,
    ) -> Result<Vec<Record>, ReadError> {
        let past_end =
            |record: &Record| SequenceNumber(sequence_number(record)) > SequenceNumber(end);
        self.read_span(arn, shard_id, Position::At(start), past_end)
            .await
    }

    /// The records of `shard_id` from `start` on, every page, up to the first that is
    /// `past_end` (left out), the end of a closed shard, or (an open one) several empty pages
    /// in a row.
    pub async fn read_span(
        &self,
        arn: &str,
        shard_id: &str,
        start: Position<'_>,
        past_end: impl Fn(&Record) -> bool,
    ) -> Result<Vec<Record>, ReadError> {
        let mut iterator = self.iterator(arn, shard_id, start).await?;
        let mut records = Vec::new();
        let mut empty_reads = 0;
        while let Some(current) = iterator.take() {
            let (got, next) = self.page(current, None, shard_id).await?;
            empty_reads = if got.is_empty() { empty_reads + 1 } else { 0 };
            for record in got {
                if past_end(&record) {
                    return Ok(records);
                }
                records.push(record);
            }
            if empty_reads >= EMPTY_READS {
                break;
            }
            iterator = next;
        }
        Ok(records)
    }
}

/// A record's sequence number as the stream gave it ("" when it gave none).
pub fn sequence_number(record: &Record) -> &str {
    record
        .dynamodb
        .as_ref()
        .and_then(|d| d.sequence_number.as_deref())
        .unwrap_or_default()
}

/// Shards in an order where every parent comes before its children.
fn parents_first(shards: Vec<Shard>) -> Vec<Shard> {
    let ids: HashSet<String> = shards.iter().filter_map(|s| s.shard_id.clone()).collect();
    let mut done: HashSet<String> = HashSet::new();
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

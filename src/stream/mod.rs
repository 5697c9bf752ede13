//! `stream`: follow real DynamoDB streams (DynamoDB Local or an account) and deliver their
//! records to the same batch entry point Lambda uses, with the same adapters.
//!
//! Reading a stream (`reader`: shards, iterators, pages) is apart from delivering it as
//! Lambda does (`delivery`). It reads every shard of each table's stream, parents before children,
//! in batches of `BatchSize` (gathered over `MaximumBatchingWindowInSeconds`) from
//! `StartingPosition`, keeps a checkpoint per shard in a local
//! file so a restart resumes where it stopped, and retries a batch from the record the worker
//! reported as failed (`ReportBatchItemFailures`; otherwise the whole batch, bisected when
//! `BisectBatchOnFunctionError` is set) up to `MaximumRetryAttempts` times, after which the
//! record or batch is written to the on-failure file (in Lambda's on-failure message shape,
//! which `redrive` takes) and skipped. Records older than
//! `MaximumRecordAgeInSeconds` go there undelivered. With a `ParallelizationFactor` above 1 a
//! shard's records are dealt to that many concurrent deliveries by partition key (`shard`),
//! and its checkpoint moves only past what all of them finished (`frontier`). It counts
//! events as Lambda's mapping metrics do (`counts`). `--once` drains what is there and exits.

mod checkpoints;
mod counts;
mod delivery;
mod error;
mod filter_criteria;
mod frontier;
pub mod get_records;
mod mapping_settings;
pub mod on_failure;
mod progress;
pub mod reader;
pub(crate) mod sam_template;
mod shard;
pub mod span;
mod stop;

use std::time::Duration;

use crate::batch::Worker;
use checkpoints::Checkpoints;
use counts::EventCounts;
use delivery::ShardDelivery;
pub use error::StreamError;
pub use filter_criteria::Patterns;
pub use mapping_settings::{MappingSettings, StreamOptions};
use reader::StreamReader;
use stop::{stop_on_ctrl_c, stop_requested};

/// Follow the tables' streams, shard by shard, until `--once` has drained them or Ctrl-C;
/// each shard is delivered by as many concurrent deliveries as there are `workers`
/// (`ParallelizationFactor`). Lambda's event counts are printed at the end (and, with
/// `--json`, every `counts_interval`).
pub async fn run(
    workers: &[Worker],
    reader: &StreamReader,
    options: StreamOptions,
) -> Result<(), StreamError> {
    let mut checkpoints = Checkpoints::load(&options.checkpoints)?;
    let patterns = Patterns::parse(&options.settings.filter_criteria)?;
    let counts = EventCounts::new(options.json.then_some(options.counts_interval));
    stop_on_ctrl_c();
    let followed = loop {
        let delivered = match follow_once(
            workers,
            reader,
            &options,
            &patterns,
            &mut checkpoints,
            &counts,
        )
        .await
        {
            Ok(delivered) => delivered,
            Err(error) => break Err(error),
        };
        if stop_requested() {
            counts.print("when stopped", options.json);
            println!("stopped; checkpoints in {}", options.checkpoints.display());
            return Ok(());
        }
        if options.once {
            break Ok(());
        }
        counts.on_interval();
        if delivered == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    counts.print("at the end", options.json);
    followed
}

/// One pass over every shard of every table; returns records delivered.
async fn follow_once(
    workers: &[Worker],
    reader: &StreamReader,
    options: &StreamOptions,
    patterns: &Patterns,
    checkpoints: &mut Checkpoints,
    counts: &EventCounts,
) -> Result<usize, StreamError> {
    let mut delivered = 0;
    for table in &options.tables {
        let arn = reader.stream_arn(table).await?;
        let stream = reader.describe(&arn, table).await?;
        for shard in &stream.shards {
            let Some(shard_id) = shard.shard_id.as_deref() else {
                continue;
            };
            delivered += ShardDelivery {
                workers,
                reader,
                arn: &arn,
                shard_id,
                partition_key: stream.partition_key.as_deref(),
                options,
                patterns,
                checkpoints,
                counts,
            }
            .drain()
            .await?;
            if stop_requested() {
                return Ok(delivered);
            }
        }
    }
    Ok(delivered)
}

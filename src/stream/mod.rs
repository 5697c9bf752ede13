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
//! `MaximumRecordAgeInSeconds` go there undelivered. `--once` drains what is there and exits.

mod checkpoints;
mod delivery;
mod error;
mod filter_criteria;
pub mod get_records;
pub mod on_failure;
mod progress;
pub mod reader;
pub(crate) mod sam_template;
mod settings;
mod stop;

use crate::batch::Worker;
use checkpoints::Checkpoints;
use delivery::ShardDelivery;
pub use error::StreamError;
use filter_criteria::Patterns;
use reader::StreamReader;
pub use settings::{MappingSettings, StreamOptions};
use stop::{stop_on_ctrl_c, stop_requested};

/// Follow the tables' streams, shard by shard, until `--once` has drained them or Ctrl-C.
pub async fn run(
    worker: &Worker,
    reader: &StreamReader,
    options: StreamOptions,
) -> Result<(), StreamError> {
    let mut checkpoints = Checkpoints::load(&options.checkpoints)?;
    let patterns = Patterns::parse(&options.settings.filter_criteria)?;
    stop_on_ctrl_c();
    loop {
        let mut delivered = 0;
        for table in &options.tables {
            let arn = reader.stream_arn(table).await?;
            for shard in reader.shards(&arn, table).await? {
                let Some(shard_id) = shard.shard_id.as_deref() else {
                    continue;
                };
                delivered += ShardDelivery {
                    worker,
                    reader,
                    arn: &arn,
                    shard_id,
                    options: &options,
                    patterns: &patterns,
                    checkpoints: &mut checkpoints,
                }
                .drain()
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

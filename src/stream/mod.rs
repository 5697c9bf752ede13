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
mod filter_criteria;
pub mod get_records;
pub mod on_failure;
mod progress;
pub mod reader;
pub(crate) mod sam_template;
mod settings;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use handlers::PortError;
use thiserror::Error;

use crate::batch::Worker;
use checkpoints::Checkpoints;
use delivery::ShardDelivery;
use filter_criteria::Patterns;
use reader::{NoStream, StreamReader};
pub use settings::MappingSettings;

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

/// Set by the first Ctrl-C: the runner stops after the batch in hand, checkpoint saved. One per
/// process because the signal is.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

pub(super) fn stop_requested() -> bool {
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
    #[error(transparent)]
    NoStream(#[from] NoStream),
    #[error(transparent)]
    Filter(#[from] filter_criteria::FilterError),
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

/// One JSON line in the on-failure file.
pub(super) fn append_failure(path: &Path, line: &serde_json::Value) -> Result<(), StreamError> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(StreamError::file(path))?;
    writeln!(file, "{line}").map_err(StreamError::file(path))
}

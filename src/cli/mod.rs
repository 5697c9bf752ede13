//! The command line: its arguments, one module per command, what a run prints, and the one
//! error type every command returns, with the exit status it maps to.
//!
//! Exit statuses: **0** clean; **1** a batch has a failed record, or a service failed the run
//! (`stream`, `tables create`); **2** unusable input, arguments, configuration or state
//! (nothing was processed); **3** the run completed but parked records (`replay`).

mod capture;
mod error;
mod print_report;
mod reconcile;
mod redrive;
mod replay;
mod report_writer;
mod state;
mod stream;
pub mod tables;
mod target_flags;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::stream::span::{Bound, Span};
pub use error::{CliError, Exit, EXIT_UNUSABLE};
use print_report::Format;
use target_flags::{EndpointArgs, TargetArgs};

#[derive(Parser)]
#[command(
    name = "ddb-stream-worker",
    version,
    about = "React to DynamoDB Streams changes: in AWS Lambda, or replayed locally from event files."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run stream event files (Lambda's format, or GetRecords output with --table) through
    /// the worker, one file per batch.
    Replay {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        target: TargetArgs,
        /// Empty the state directory first.
        #[arg(long, conflicts_with_all = ["endpoint_url", "aws"])]
        fresh: bool,
        /// One JSON object per record, then the batch response (schema in docs/commands.md).
        #[arg(long)]
        json: bool,
        /// Show every reaction of every record, also those that did not apply.
        #[arg(short, long)]
        verbose: bool,
        /// Table name for records without eventSourceARN (GetRecords output); overrides it otherwise.
        #[arg(long, value_name = "NAME")]
        table: Option<String>,
        /// Do not apply each record's own change to the embedded table before reacting.
        #[arg(long, conflicts_with_all = ["endpoint_url", "aws"])]
        no_apply: bool,
        /// At the end, print to stderr the time spent per stage (decode, own-change apply,
        /// reactions, folds, sync, checkpoint...).
        #[arg(long)]
        timings: bool,
        /// Apply an event source mapping's FilterCriteria as `stream` and Lambda do, so a
        /// replayed capture does what the live mapping did: the same JSON settings file or SAM
        /// template as `stream --config`.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The template's stream event whose filter to apply, e.g. CostPlatform.
        #[arg(long, value_name = "NAME", requires = "config")]
        event: Option<String>,
        /// The key schema of a table the worker does not know (CreateTable or DescribeTable
        /// JSON, or a list of them), for the embedded state; repeatable. `capture` writes one
        /// beside its events (FILE.schema.json), which replay reads by itself.
        #[arg(long = "schema", value_name = "FILE")]
        schemas: Vec<PathBuf>,
    },
    /// Inspect the embedded state.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Follow the tables' DynamoDB streams and deliver their records as Lambda would
    /// (batches and batching window, starting position, filters, checkpoints, retries,
    /// bisecting, maximum record age, on-failure file).
    Stream {
        /// Tables to follow (default: every seed table with a stream).
        #[arg(long = "table", value_name = "NAME")]
        tables: Vec<String>,
        #[command(flatten)]
        endpoint: EndpointArgs,
        /// Event source mapping settings as JSON, with Lambda's property names: BatchSize,
        /// MaximumBatchingWindowInSeconds, StartingPosition, FilterCriteria,
        /// FunctionResponseTypes, MaximumRetryAttempts, BisectBatchOnFunctionError,
        /// MaximumRecordAgeInSeconds, ParallelizationFactor. A SAM template (.yaml/.yml, e.g. deploy/template.yaml)
        /// works too, with --event naming the stream event to take them from.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The template's stream event whose properties to use, e.g. CostPlatform.
        #[arg(long, value_name = "NAME", requires = "config")]
        event: Option<String>,
        /// Where each shard's last processed sequence number is kept.
        #[arg(long, default_value = ".stream-checkpoints.json", value_name = "FILE")]
        checkpoints: PathBuf,
        /// JSON lines describing records given up on (after the retries, or too old).
        #[arg(long, default_value = ".stream-failures.jsonl", value_name = "FILE")]
        on_failure: PathBuf,
        /// Drain what is in the streams now, then exit.
        #[arg(long)]
        once: bool,
        /// One JSON object per batch line, and Lambda's event counts as JSON too.
        #[arg(long)]
        json: bool,
        /// With --json: print the event counts this often (seconds) while following, not
        /// only at the end.
        #[arg(long, default_value_t = 60, value_name = "SECONDS", requires = "json")]
        counts_interval: u64,
    },
    /// Read a span of a table's DynamoDB stream (every shard, parents before children, every
    /// page), or exactly the ranges Lambda's on-failure messages name, into a Lambda event
    /// file that `replay` takes as it is. Says how many records it wrote and what of the span
    /// the stream no longer holds (exit 1 when some of it is gone).
    Capture {
        /// The table whose current stream to read.
        #[arg(long, value_name = "NAME", required_unless_present_any = ["stream_arn", "message"], conflicts_with_all = ["stream_arn", "message"])]
        table: Option<String>,
        /// The stream to read, by its ARN (an older stream of the table, too).
        #[arg(long, value_name = "ARN", conflicts_with = "message")]
        stream_arn: Option<String>,
        /// From this time (RFC 3339, e.g. 2026-12-01T09:00:00Z: records the stream took in
        /// then or later) or sequence number on; default: the oldest the stream holds.
        #[arg(long, value_name = "TIME|SEQ")]
        from: Option<Bound>,
        /// Up to this time or sequence number (included); default: what the stream holds now.
        #[arg(long, value_name = "TIME|SEQ")]
        to: Option<Bound>,
        /// Only this shard (`shardId-…`).
        #[arg(long, value_name = "ID")]
        shard: Option<String>,
        /// Lambda on-failure messages (one, or JSON lines of them, e.g. the `stream` runner's
        /// on-failure file): read exactly the ranges they name.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["from", "to", "shard"])]
        message: Option<PathBuf>,
        #[command(flatten)]
        endpoint: EndpointArgs,
        /// Read AWS's stream with the standard environment and profile (the default without
        /// --endpoint-url).
        #[arg(long, conflicts_with = "endpoint_url")]
        aws: bool,
        /// The event file to write.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
    },
    /// Run parked or given-up records again, once the data or the code is fixed: those of the
    /// embedded state (`parked/`), of a file (--file), or of the failed-records queue
    /// (--queue-url). Lambda's on-failure messages are read back from the stream they name.
    Redrive {
        /// Whose parked records to run again (the embedded state's), or where to run those of
        /// --file or --queue-url.
        #[command(flatten)]
        target: TargetArgs,
        /// A parked record, a Lambda on-failure message, or JSON lines of either (the `stream`
        /// runner's on-failure file). The file is left as it is.
        #[arg(long, value_name = "FILE", conflicts_with = "queue_url")]
        file: Option<PathBuf>,
        /// The failed-records queue (PARKING_QUEUE_URL, and Lambda's on-failure destination):
        /// runs its messages through the SDK adapters, deleting each once its records went
        /// through.
        #[arg(long, value_name = "URL")]
        queue_url: Option<String>,
    },
    /// Recompute incremental aggregates from their source items and repair what differs (after
    /// a bulk import, a restore, or writes that bypassed the stream): the embedded state's, or
    /// with --endpoint-url / --aws a DynamoDB's.
    Reconcile {
        #[command(subcommand)]
        command: reconcile::ReconcileCommand,
    },
    /// The seed systems' tables (deploy/tables/*.json) on DynamoDB or DynamoDB Local.
    Tables {
        #[command(subcommand)]
        command: TablesCommand,
    },
}

#[derive(Subcommand)]
enum TablesCommand {
    /// Create the tables that do not exist yet (all, or the NAMEs given), with their GSIs,
    /// streams and TTL; existing tables are left alone.
    Create {
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        #[command(flatten)]
        endpoint: EndpointArgs,
    },
}

#[derive(Subcommand)]
enum StateCommand {
    /// Print items as DynamoDB JSON (the AWS CLI's format), one per line, in key order.
    Show {
        #[arg(long, default_value = ".replay", value_name = "DIR")]
        state: PathBuf,
        /// Only this table (otherwise every table, each announced on stderr).
        #[arg(long, value_name = "NAME")]
        table: Option<String>,
    },
}

impl Cli {
    /// Whether the command prints JSON (`--json`): its errors are then JSON on stdout too.
    pub fn wants_json(&self) -> bool {
        match &self.command {
            Command::Replay { json, .. } | Command::Stream { json, .. } => *json,
            Command::Reconcile { command } => command.options.json,
            _ => false,
        }
    }
}

/// Logs go to stderr, at WARN unless `RUST_LOG` says otherwise, each line escaped and redacted
/// (`wiring::output`; no colours, which escaping would break).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(crate::wiring::output::SafeLogs(std::io::stderr))
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
}

/// Run the parsed command.
pub async fn run(cli: Cli) -> Result<Exit, CliError> {
    match cli.command {
        Command::Replay {
            files,
            target,
            fresh,
            json,
            verbose,
            table,
            no_apply,
            timings,
            config,
            event,
            schemas,
        } => {
            replay::run(replay::ReplayOptions {
                files,
                target: target.target(),
                fresh,
                format: match (json, verbose) {
                    (true, _) => Format::Json,
                    (false, false) => Format::Human,
                    (false, true) => Format::HumanVerbose,
                },
                table,
                apply: !no_apply,
                timings,
                mapping: config.map(|path| (path, event)),
                schemas,
            })
            .await
        }
        Command::State {
            command: StateCommand::Show { state, table },
        } => state::show(&state, table.as_deref()),
        Command::Stream {
            tables,
            endpoint,
            config,
            event,
            checkpoints,
            on_failure,
            once,
            json,
            counts_interval,
        } => {
            stream::run(stream::StreamCommand {
                tables,
                target: endpoint.target(),
                config: config.map(|path| (path, event)),
                checkpoints,
                on_failure,
                once,
                json,
                counts_interval: std::time::Duration::from_secs(counts_interval),
            })
            .await
        }
        Command::Redrive {
            target,
            file,
            queue_url,
        } => {
            redrive::run(redrive::RedriveCommand {
                target: target.target(),
                file,
                queue_url,
            })
            .await
        }
        Command::Reconcile { command } => reconcile::run(command).await,
        Command::Capture {
            table,
            stream_arn,
            from,
            to,
            shard,
            message,
            endpoint,
            aws: _,
            output,
        } => {
            let source = match (table, stream_arn, message) {
                (_, _, Some(file)) => capture::Source::Messages(file),
                (_, Some(arn), None) => capture::Source::StreamArn(arn),
                (Some(table), None, None) => capture::Source::Table(table),
                (None, None, None) => {
                    return Err(CliError::Settings(
                        "capture needs --table, --stream-arn or --message".into(),
                    ))
                }
            };
            capture::run(capture::CaptureCommand {
                source,
                span: Span { from, to, shard },
                target: endpoint.target(),
                output,
            })
            .await
        }
        Command::Tables {
            command: TablesCommand::Create { names, endpoint },
        } => tables::run(&endpoint.target(), &names).await,
    }
}

//! The command line: its arguments, one module per command, what a run prints, and the one
//! error type every command returns, with the exit status it maps to.
//!
//! Exit statuses: **0** clean; **1** a batch has a failed record, or a service failed the run
//! (`stream`, `tables create`); **2** unusable input, arguments, configuration or state
//! (nothing was processed); **3** the run completed but parked records (`replay`).

mod reconcile;
mod redrive;
mod replay;
mod report;
mod state;
mod stream;
pub mod tables;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use thiserror::Error;

use crate::adapters::embedded::StateError;
use crate::decode::DecodeError;
use crate::wiring::config::ConfigError;
use report::Format;

/// How a command that ran to its end finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Clean,
    /// A batch stopped at a failed record (reported; later files were not processed).
    BatchFailed,
    /// Every batch went through, but records a reaction could never succeed with were parked.
    Parked,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Clean => 0,
            Exit::BatchFailed => 1,
            Exit::Parked => 3,
        }
    }
}

/// The exit status of unusable input, arguments, configuration or state.
pub const EXIT_UNUSABLE: u8 = 2;

/// Why a command could not run to its end. Each says what failed and on what; retrying the
/// same command helps only for [`CliError::Service`] (a service failed or was unreachable).
#[derive(Debug, Error)]
pub enum CliError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read {path}: {source}", path = path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Event source mapping settings or a SAM template the stream command cannot use.
    #[error("{0}")]
    Settings(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("no state at {}: run `ddb-stream-worker replay FILE` first", .0.display())]
    NoState(PathBuf),
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    /// A service (DynamoDB, its streams) failed or a local file the run keeps could not be
    /// written; the message names which.
    #[error("{0}")]
    Service(String),
    #[error(transparent)]
    Tables(#[from] tables::SetupError),
}

impl CliError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Service(_) | CliError::Tables(_) => 1,
            CliError::Runtime(_)
            | CliError::Config(_)
            | CliError::Read { .. }
            | CliError::Decode(_)
            | CliError::Settings(_)
            | CliError::State(_)
            | CliError::NoState(_)
            | CliError::Output(_) => EXIT_UNUSABLE,
        }
    }
}

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
        /// Embedded state directory: tables, objects/, outbox/.
        #[arg(long, default_value = ".replay", value_name = "DIR")]
        state: PathBuf,
        /// Empty the state directory first.
        #[arg(long)]
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
        #[arg(long)]
        no_apply: bool,
        /// Run against this endpoint (DynamoDB Local, ...) through the AWS SDK adapters.
        #[arg(long, value_name = "URL", conflicts_with_all = ["fresh", "no_apply"])]
        endpoint_url: Option<String>,
        /// Run against AWS through the SDK adapters, with the standard environment and profile.
        #[arg(long, conflicts_with_all = ["endpoint_url", "fresh", "no_apply"])]
        aws: bool,
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
        /// DynamoDB endpoint, e.g. http://127.0.0.1:8000; otherwise the standard AWS environment.
        #[arg(long, value_name = "URL")]
        endpoint_url: Option<String>,
        /// Event source mapping settings as JSON, with Lambda's property names: BatchSize,
        /// MaximumBatchingWindowInSeconds, StartingPosition, FilterCriteria,
        /// FunctionResponseTypes, MaximumRetryAttempts, BisectBatchOnFunctionError,
        /// MaximumRecordAgeInSeconds. A SAM template (.yaml/.yml, e.g. deploy/template.yaml)
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
        /// One JSON object per batch line.
        #[arg(long)]
        json: bool,
    },
    /// Run parked or given-up records again, once the data or the code is fixed: those of the
    /// embedded state (`parked/`), of a file (--file), or of the failed-records queue
    /// (--queue-url). Lambda's on-failure messages are read back from the stream they name.
    Redrive {
        /// Embedded state directory: whose parked records to run again, or (with --file) the
        /// state to run them against.
        #[arg(long, default_value = ".replay", value_name = "DIR")]
        state: PathBuf,
        /// A parked record, a Lambda on-failure message, or JSON lines of either (the `stream`
        /// runner's on-failure file). The file is left as it is.
        #[arg(long, value_name = "FILE", conflicts_with = "queue_url")]
        file: Option<PathBuf>,
        /// The failed-records queue (PARKING_QUEUE_URL, and Lambda's on-failure destination):
        /// runs its messages through the SDK adapters, deleting each once its records went
        /// through.
        #[arg(long, value_name = "URL")]
        queue_url: Option<String>,
        /// Run against this endpoint (DynamoDB Local, ...) through the SDK adapters.
        #[arg(long, value_name = "URL")]
        endpoint_url: Option<String>,
        /// Run against AWS through the SDK adapters, with the standard environment and profile.
        #[arg(long, conflicts_with = "endpoint_url")]
        aws: bool,
    },
    /// Recompute incremental aggregates from their source items and repair what differs (after
    /// a bulk import, a restore, or writes that bypassed the stream): the embedded state's, or
    /// with --endpoint-url / --aws a DynamoDB's.
    Reconcile {
        #[command(subcommand)]
        command: ReconcileTarget,
    },
    /// The seed systems' tables (deploy/tables/*.json) on DynamoDB or DynamoDB Local.
    Tables {
        #[command(subcommand)]
        command: TablesCommand,
    },
}

#[derive(Subcommand)]
enum ReconcileTarget {
    /// Providers' `ratingSum`, `reviewCount`, `rating` and booking slots, from their reviews.
    Ratings {
        /// A provider to reconcile (repeatable).
        #[arg(long = "provider", value_name = "ID", required_unless_present = "all")]
        ids: Vec<String>,
        #[command(flatten)]
        options: ReconcileOptions,
    },
    /// Threads' `message_count`, `last_message_at`, `participants` and message state, from
    /// their conversations.
    Threads {
        /// A conversation to reconcile (repeatable).
        #[arg(
            long = "conversation",
            value_name = "ID",
            required_unless_present = "all"
        )]
        ids: Vec<String>,
        #[command(flatten)]
        options: ReconcileOptions,
    },
}

#[derive(clap::Args)]
struct ReconcileOptions {
    /// Every one there is (scans the source table and the aggregates' table).
    #[arg(long)]
    all: bool,
    /// Embedded state directory.
    #[arg(long, default_value = ".replay", value_name = "DIR")]
    state: PathBuf,
    /// Run against this endpoint (DynamoDB Local, ...) through the SDK adapters.
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    /// Run against AWS through the SDK adapters, with the standard environment and profile.
    #[arg(long, conflicts_with = "endpoint_url")]
    aws: bool,
    /// One JSON object per aggregate.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum TablesCommand {
    /// Create the tables that do not exist yet (all, or the NAMEs given), with their GSIs,
    /// streams and TTL; existing tables are left alone.
    Create {
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// DynamoDB endpoint, e.g. http://127.0.0.1:8000; otherwise the standard AWS environment.
        #[arg(long, value_name = "URL")]
        endpoint_url: Option<String>,
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
            Command::Reconcile {
                command:
                    ReconcileTarget::Ratings { options, .. } | ReconcileTarget::Threads { options, .. },
            } => options.json,
            _ => false,
        }
    }
}

impl CliError {
    /// The error as the last line a `--json` run prints: `{"error": …, "exitCode": …}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.to_string(), "exitCode": self.exit_code() })
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
            state,
            fresh,
            json,
            verbose,
            table,
            no_apply,
            endpoint_url,
            aws,
        } => {
            replay::run(replay::ReplayOptions {
                files,
                state,
                fresh,
                format: match (json, verbose) {
                    (true, _) => Format::Json,
                    (false, false) => Format::Human,
                    (false, true) => Format::HumanVerbose,
                },
                table,
                apply: !no_apply,
                aws: (aws || endpoint_url.is_some()).then_some(endpoint_url),
            })
            .await
        }
        Command::State {
            command: StateCommand::Show { state, table },
        } => state::show(&state, table.as_deref()),
        Command::Stream {
            tables,
            endpoint_url,
            config,
            event,
            checkpoints,
            on_failure,
            once,
            json,
        } => {
            stream::run(stream::StreamCommand {
                tables,
                endpoint_url,
                config: config.map(|path| (path, event)),
                checkpoints,
                on_failure,
                once,
                json,
            })
            .await
        }
        Command::Redrive {
            state,
            file,
            queue_url,
            endpoint_url,
            aws,
        } => {
            redrive::run(redrive::RedriveCommand {
                state,
                file,
                queue_url,
                endpoint_url,
                aws,
            })
            .await
        }
        Command::Reconcile { command } => {
            let (aggregates, ids, options) = match command {
                ReconcileTarget::Ratings { ids, options } => {
                    (reconcile::Aggregates::Ratings, ids, options)
                }
                ReconcileTarget::Threads { ids, options } => {
                    (reconcile::Aggregates::Threads, ids, options)
                }
            };
            reconcile::run(reconcile::ReconcileCommand {
                aggregates,
                ids,
                all: options.all,
                state: options.state,
                endpoint_url: options.endpoint_url,
                aws: options.aws,
                json: options.json,
            })
            .await
        }
        Command::Tables {
            command:
                TablesCommand::Create {
                    names,
                    endpoint_url,
                },
        } => tables::run(endpoint_url.as_deref(), &names).await,
    }
}

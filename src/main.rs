//! The `ddb-stream-worker` binary: Lambda mode when `AWS_LAMBDA_RUNTIME_API` is set,
//! otherwise the command line (`replay`, `state show`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Replays and batches allocate many small items; mimalloc handles that churn far better than
// the system allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use ddb_stream_worker::adapters::embedded::EmbeddedState;
use ddb_stream_worker::catalog::Catalog;
use ddb_stream_worker::replay::{self, ReplayOptions};
use ddb_stream_worker::report::Format;
use ddb_stream_worker::{catalog, stream_runner, table_setup, wiring};

#[derive(Parser)]
#[command(
    name = "ddb-stream-worker",
    version,
    about = "React to DynamoDB Streams changes: in AWS Lambda, or replayed locally from event files."
)]
struct Cli {
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
        /// One JSON object per record, then the batch response (schema in the README).
        #[arg(long)]
        json: bool,
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

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(replay::EXIT_UNUSABLE);
        }
    };
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return match runtime.block_on(ddb_stream_worker::lambda::run()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Replay {
            files,
            state,
            fresh,
            json,
            table,
            no_apply,
            endpoint_url,
            aws,
        } => {
            let options = ReplayOptions {
                files,
                state,
                fresh,
                format: if json { Format::Json } else { Format::Human },
                table,
                apply: !no_apply,
                aws: (aws || endpoint_url.is_some()).then_some(endpoint_url),
            };
            ExitCode::from(runtime.block_on(replay::run(options)))
        }
        Command::State {
            command: StateCommand::Show { state, table },
        } => show_state(&state, table.as_deref()),
        Command::Stream {
            tables,
            endpoint_url,
            config,
            event,
            checkpoints,
            on_failure,
            once,
            json,
        } => runtime.block_on(stream(
            tables,
            endpoint_url,
            config.map(|path| (path, event)),
            stream_runner::StreamOptions {
                tables: Vec::new(),
                settings: stream_runner::MappingSettings::default(),
                checkpoints,
                on_failure,
                once,
                json,
            },
        )),
        Command::Tables {
            command:
                TablesCommand::Create {
                    names,
                    endpoint_url,
                },
        } => runtime.block_on(create_tables(endpoint_url.as_deref(), &names)),
    }
}

/// `options` comes with the files and flags; the tables and settings are filled in here.
async fn stream(
    tables: Vec<String>,
    endpoint_url: Option<String>,
    config: Option<(PathBuf, Option<String>)>,
    mut options: stream_runner::StreamOptions,
) -> ExitCode {
    let settings = match config {
        None => Ok(stream_runner::MappingSettings::default()),
        Some((path, event)) => mapping_settings(&path, event.as_deref()),
    };
    options.settings = match settings {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(replay::EXIT_UNUSABLE);
        }
    };
    options.tables = if tables.is_empty() {
        catalog::seed_definitions()
            .into_iter()
            .filter(|d| {
                d.stream_specification
                    .as_ref()
                    .is_some_and(|s| s.stream_enabled)
            })
            .map(|d| d.table_name)
            .collect()
    } else {
        tables
    };
    let config = match ddb_stream_worker::config::Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(replay::EXIT_UNUSABLE);
        }
    };
    let sdk = wiring::sdk_config(endpoint_url.as_deref()).await;
    let worker = wiring::worker(
        &config,
        wiring::sdk_adapters(&sdk, Catalog::with_seed_definitions()),
    );
    match stream_runner::run(&worker, &sdk, options).await {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Settings from a JSON file with the mapping's properties, or from a SAM template's event.
fn mapping_settings(
    path: &std::path::Path,
    event: Option<&str>,
) -> Result<stream_runner::MappingSettings, String> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{source}: {e}"))?;
    let is_template = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    match (is_template, event) {
        (true, Some(event)) => ddb_stream_worker::sam_template::mapping_settings(&text, &source, event),
        (true, None) => Err(format!(
            "{source} is a template: name the stream event to use with --event (e.g. --event CostPlatform)"
        )),
        (false, Some(_)) => Err(format!(
            "--event picks an event from a SAM template (.yaml); {source} is a JSON settings file"
        )),
        (false, None) => serde_json::from_str(&text).map_err(|e| format!("{source}: {e}")),
    }
}

async fn create_tables(endpoint_url: Option<&str>, names: &[String]) -> ExitCode {
    let sdk = wiring::sdk_config(endpoint_url).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    match table_setup::create_tables(&client, names).await {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn show_state(dir: &std::path::Path, table: Option<&str>) -> ExitCode {
    if !dir.exists() {
        eprintln!(
            "error: no state at {}: run `ddb-stream-worker replay FILE` first",
            dir.display()
        );
        return ExitCode::from(replay::EXIT_UNUSABLE);
    }
    let state = match EmbeddedState::open_read_only(dir, Catalog::with_seed_definitions()) {
        Ok(state) => state,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(replay::EXIT_UNUSABLE);
        }
    };
    let mut lines = String::new();
    for (name, items) in state.dump(table) {
        if table.is_none() {
            eprintln!("# {name}: {} item(s)", items.len());
        }
        for item in items {
            lines.push_str(&item.to_string());
            lines.push('\n');
        }
    }
    print!("{lines}");
    ExitCode::SUCCESS
}

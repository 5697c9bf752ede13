//! The one error every command returns, with the exit status it maps to, and how a command
//! that ran to its end finished.

use std::path::PathBuf;

use handlers::PortError;
use thiserror::Error;

use crate::adapters::embedded::StateError;
use crate::decode::DecodeError;
use crate::stream::StreamError;
use crate::wiring::config::ConfigError;
use crate::wiring::target::TargetError;

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
/// same command helps only where a service failed or was unreachable ([`CliError::Service`],
/// [`CliError::Stream`]; the error says whether it was retryable).
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
    /// A service (DynamoDB, S3, SQS) failed or was unreachable.
    #[error(transparent)]
    Service(#[from] PortError),
    /// Following the streams stopped: a service failed, or a file the runner keeps.
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Tables(#[from] SetupError),
    /// A table whose records carry a key of two attributes, and nothing says which is the
    /// partition key: the replay refuses before it starts.
    #[error("table {table}: its records' key is {} and nothing says which is the partition key; \
             give the table's schema with `replay --schema FILE` (its CreateTable or DescribeTable \
             JSON; `capture` writes FILE.schema.json beside its events, which replay reads)", .names.join(" and "))]
    UnknownKey { table: String, names: Vec<String> },
}

impl From<TargetError> for CliError {
    fn from(error: TargetError) -> CliError {
        match error {
            TargetError::NoState(dir) => CliError::NoState(dir),
            TargetError::State(e) => CliError::State(e),
        }
    }
}

impl CliError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Service(_) | CliError::Stream(_) | CliError::Tables(_) => 1,
            CliError::Runtime(_)
            | CliError::Config(_)
            | CliError::Read { .. }
            | CliError::Decode(_)
            | CliError::Settings(_)
            | CliError::State(_)
            | CliError::NoState(_)
            | CliError::UnknownKey { .. }
            | CliError::Output(_) => EXIT_UNUSABLE,
        }
    }
}

impl CliError {
    /// The error as the last line a `--json` run prints: `{"error": …, "exitCode": …}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.to_string(), "exitCode": self.exit_code() })
    }
}

/// Why `tables create` could not create a table.
#[derive(Debug, Error)]
pub enum SetupError {
    #[error("no table definition named {name:?}; known: {known}")]
    Unknown { name: String, known: String },
    #[error("{table}: {message}")]
    Failed { table: String, message: String },
}

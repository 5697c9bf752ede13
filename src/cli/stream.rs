//! `stream`: the command around the local event source mapping (`crate::stream`): which tables,
//! which settings (a JSON file or a SAM template's stream event), and the worker to deliver to.

use std::path::{Path, PathBuf};

use super::error::{CliError, Exit};
use crate::catalog::{self, Catalog};
use crate::stream::reader::StreamReader;
use crate::stream::{self as runner, sam_template, MappingSettings, StreamOptions};
use crate::wiring::target::{Opening, Target};
use crate::wiring::{self, config::Config};

/// The command's arguments.
pub(super) struct StreamCommand {
    pub tables: Vec<String>,
    /// An endpoint, or AWS.
    pub target: Target,
    /// A settings file, with the template event to take them from when it is a template.
    pub config: Option<(PathBuf, Option<String>)>,
    pub checkpoints: PathBuf,
    pub on_failure: PathBuf,
    pub once: bool,
    pub json: bool,
    pub counts_interval: std::time::Duration,
}

pub(super) async fn run(command: StreamCommand) -> Result<Exit, CliError> {
    let settings = match &command.config {
        None => MappingSettings::default(),
        Some((path, event)) => mapping_settings(path, event.as_deref())?,
    };
    let tables = if command.tables.is_empty() {
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
        command.tables
    };
    let config = Config::from_env()?;
    let connected = command
        .target
        .connect(Opening::AsItIs, Catalog::with_seed_definitions(), &config)
        .await?;
    // One worker per concurrent delivery of a shard, as each of Lambda's concurrent batches
    // runs in an execution environment of its own (nothing remembered is shared).
    let workers: Vec<_> = (0..settings.parallelization_factor)
        .map(|_| connected.worker(&config))
        .collect();
    let Some(sdk) = &connected.sdk else {
        return Err(CliError::Settings(
            "stream follows DynamoDB streams: it runs on an endpoint or AWS".into(),
        ));
    };
    let reader = StreamReader::new(wiring::dynamodb_client(sdk), wiring::streams_client(sdk));
    let options = StreamOptions {
        tables,
        settings,
        checkpoints: command.checkpoints,
        on_failure: command.on_failure,
        once: command.once,
        json: command.json,
        counts_interval: command.counts_interval,
    };
    runner::run(&workers, &reader, options).await?;
    Ok(Exit::Clean)
}

/// Settings from a JSON file with the mapping's properties, or from a SAM template's event.
pub(super) fn mapping_settings(
    path: &Path,
    event: Option<&str>,
) -> Result<MappingSettings, CliError> {
    let source = path.display().to_string();
    read_mapping_settings(path, event)?
        .checked()
        .map_err(|e| CliError::Settings(format!("{source}: {e}")))
}

fn read_mapping_settings(path: &Path, event: Option<&str>) -> Result<MappingSettings, CliError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let is_template = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    match (is_template, event) {
        (true, Some(event)) => {
            sam_template::mapping_settings(&text, &source, event).map_err(CliError::Settings)
        }
        (true, None) => Err(CliError::Settings(format!(
            "{source} is a template: name the stream event to use with --event (e.g. --event CostPlatform)"
        ))),
        (false, Some(_)) => Err(CliError::Settings(format!(
            "--event picks an event from a SAM template (.yaml); {source} is a JSON settings file"
        ))),
        (false, None) => {
            serde_json::from_str(&text).map_err(|e| CliError::Settings(format!("{source}: {e}")))
        }
    }
}

//! The flags that say where a command runs, declared once and flattened into each command:
//! `--state DIR` (the embedded state, the default), `--endpoint-url URL`, or `--aws`.

use std::path::PathBuf;

use crate::wiring::target::Target;

/// `--endpoint-url`, for the commands that run only through the SDK (`stream`, `tables`) and,
/// within [`TargetArgs`], for the rest.
#[derive(clap::Args, Debug, Clone)]
pub(super) struct EndpointArgs {
    /// Run against AWS's APIs at this URL (DynamoDB Local, ...) through the SDK adapters;
    /// `AWS_ENDPOINT_URL_<SERVICE>` still sends one service elsewhere (S3 and SES to moto).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

impl EndpointArgs {
    /// The endpoint when one is given, else AWS with the standard environment and profile.
    pub(super) fn target(&self) -> Target {
        Target::sdk(self.endpoint_url.clone())
    }
}

/// Where a command that can also run on the embedded state runs.
#[derive(clap::Args, Debug, Clone)]
pub(super) struct TargetArgs {
    /// Embedded state directory (tables, objects/, outbox/, parked/): where the command runs
    /// unless --endpoint-url or --aws says otherwise.
    #[arg(long, default_value = ".replay", value_name = "DIR")]
    pub state: PathBuf,
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    /// Run against AWS through the SDK adapters, with the standard environment and profile.
    #[arg(long, conflicts_with = "endpoint_url")]
    pub aws: bool,
}

impl TargetArgs {
    pub(super) fn target(&self) -> Target {
        match (&self.endpoint.endpoint_url, self.aws) {
            (Some(url), _) => Target::Endpoint(url.clone()),
            (None, true) => Target::Aws,
            (None, false) => Target::Embedded(self.state.clone()),
        }
    }
}

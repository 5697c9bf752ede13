//! Where a command runs ([`Target`]): the embedded state at a directory, an endpoint that
//! speaks AWS's APIs (DynamoDB Local, moto), or AWS itself with the standard environment and
//! profile; and the one place that builds a worker's adapters for it ([`Target::connect`]).

use std::path::PathBuf;
use std::sync::Arc;

use aws_config::SdkConfig;
use thiserror::Error;

use super::config::Config;
use crate::adapters::embedded::{EmbeddedState, StateError};
use crate::batch::{Adapters, Worker};
use crate::catalog::Catalog;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The embedded state in this directory (the default).
    Embedded(PathBuf),
    /// AWS's APIs at this URL, through the SDK adapters.
    Endpoint(String),
    /// AWS, through the SDK adapters.
    Aws,
}

/// How a command opens the embedded state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// Emptied first (`replay --fresh`).
    Fresh,
    /// As it is, created when missing.
    AsItIs,
    /// As it is; a directory that does not exist is an error (the command reads a state).
    MustExist,
}

#[derive(Debug, Error)]
pub enum TargetError {
    #[error("no state at {}: run `ddb-stream-worker replay FILE` first", .0.display())]
    NoState(PathBuf),
    #[error(transparent)]
    State(#[from] StateError),
}

/// A target's adapters, and what a command needs of it besides.
pub struct Connected {
    pub adapters: Adapters,
    /// The embedded state, whose batches the command commits; None on an endpoint or AWS.
    pub state: Option<Arc<EmbeddedState>>,
    /// The SDK configuration, for the clients a command needs besides the adapters; None on
    /// the embedded state.
    pub sdk: Option<SdkConfig>,
}

impl Target {
    /// An endpoint when one is given, else AWS (the commands that only run on the SDK).
    pub fn sdk(endpoint_url: Option<String>) -> Target {
        endpoint_url.map_or(Target::Aws, Target::Endpoint)
    }

    /// The SDK configuration of an endpoint or AWS; None for the embedded state.
    pub async fn sdk_config(&self) -> Option<SdkConfig> {
        match self {
            Target::Embedded(_) => None,
            _ => Some(super::sdk_config(self.endpoint_url()).await),
        }
    }

    fn endpoint_url(&self) -> Option<&str> {
        match self {
            Target::Endpoint(url) => Some(url),
            _ => None,
        }
    }

    /// The adapters on this target: the embedded state's, or the SDK's (parking in the
    /// failed-records queue when the configuration names one).
    pub async fn connect(
        &self,
        opening: Opening,
        catalog: Catalog,
        config: &Config,
    ) -> Result<Connected, TargetError> {
        let dir = match self {
            Target::Embedded(dir) => dir,
            Target::Endpoint(_) | Target::Aws => {
                let sdk = super::sdk_config(self.endpoint_url()).await;
                let adapters = super::sdk_adapters(&sdk, catalog);
                return Ok(Connected {
                    adapters: super::with_queue_parking(adapters, &sdk, config),
                    state: None,
                    sdk: Some(sdk),
                });
            }
        };
        if opening == Opening::MustExist && !dir.exists() {
            return Err(TargetError::NoState(dir.clone()));
        }
        let state = Arc::new(EmbeddedState::open(
            dir,
            catalog.clone(),
            opening == Opening::Fresh,
        )?);
        // After the state's own schemas: what an earlier run learned of a table stands.
        for (name, seed) in &config.renamed_tables {
            catalog.alias(name, seed);
        }
        Ok(Connected {
            adapters: super::embedded_adapters(state.clone(), catalog),
            state: Some(state),
            sdk: None,
        })
    }
}

impl Connected {
    /// A worker on these adapters. On the embedded state it writes no completion notes:
    /// requests cost nothing there and every note is one more item to keep (a record run again
    /// runs its reactions again, which changes nothing).
    pub fn worker(&self, config: &Config) -> Worker {
        let mut config = config.clone();
        if self.state.is_some() {
            config.idempotency.completion_notes = false;
        }
        super::worker(&config, self.adapters.clone())
    }
}

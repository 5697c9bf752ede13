//! `reconcile`: recomputes provider ratings from their reviews and repairs what differs, the
//! way the reactions computed them before they became incremental. For what the stream cannot
//! show the worker: a bulk import, a restore, writes that bypassed the stream, an aggregate
//! changed by hand, and the reviews there were before the worker kept its booking slots.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use handlers::ports::Ports;
use handlers::reactions::provider_rating::ProviderRatings;

use super::{CliError, Exit};
use crate::adapters::dynamodb::distinct_values;
use crate::adapters::embedded::EmbeddedState;
use crate::batch::Adapters;
use crate::catalog::Catalog;
use crate::wiring::{self, config::Config};

pub(super) struct ReconcileCommand {
    /// Providers to reconcile; empty with `all`: every provider there is.
    pub providers: Vec<String>,
    pub all: bool,
    pub state: PathBuf,
    pub endpoint_url: Option<String>,
    pub aws: bool,
    pub json: bool,
}

pub(super) async fn run(command: ReconcileCommand) -> Result<Exit, CliError> {
    let config = Config::from_env()?;
    let ratings = ProviderRatings::new(config.reactions.ratings.clone());
    let cfg = ratings.config().clone();
    let catalog = Catalog::with_seed_definitions();
    let (adapters, state, providers) = if command.aws || command.endpoint_url.is_some() {
        let sdk = wiring::sdk_config(command.endpoint_url.as_deref()).await;
        let mut providers: BTreeSet<String> = command.providers.iter().cloned().collect();
        if command.all {
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            for table in [&cfg.reviews_table, &cfg.providers_table] {
                let ids = distinct_values(&client, table, "providerId")
                    .await
                    .map_err(|e| CliError::Service(e.to_string()))?;
                providers.extend(ids);
            }
        }
        (wiring::sdk_adapters(&sdk, catalog), None, providers)
    } else {
        if !command.state.exists() {
            return Err(CliError::NoState(command.state.clone()));
        }
        let state = Arc::new(EmbeddedState::open(&command.state, catalog.clone(), false)?);
        let mut providers: BTreeSet<String> = command.providers.iter().cloned().collect();
        if command.all {
            for table in [&cfg.reviews_table, &cfg.providers_table] {
                for (_, items) in state.dump(Some(table)) {
                    providers.extend(
                        items
                            .iter()
                            .filter_map(|item| item["providerId"]["S"].as_str())
                            .map(str::to_string),
                    );
                }
            }
        }
        let adapters = wiring::embedded_adapters(state.clone(), catalog);
        (adapters, Some(state), providers)
    };
    if providers.is_empty() {
        return Err(CliError::Settings(
            "name the providers to reconcile (--provider ID, repeatable) or --all".into(),
        ));
    }
    let exit = reconcile_all(&ratings, &adapters, &providers, command.json).await;
    if let Some(state) = state {
        state.sync()?;
    }
    exit
}

/// Each provider in turn, a line each; a failure is reported and the others still run.
async fn reconcile_all(
    ratings: &ProviderRatings,
    adapters: &Adapters,
    providers: &BTreeSet<String>,
    json: bool,
) -> Result<Exit, CliError> {
    let ports = Ports {
        tables: adapters.tables.as_ref(),
        objects: adapters.objects.as_ref(),
        mailer: adapters.mailer.as_ref(),
    };
    let (mut fixed, mut failed) = (0, 0);
    for provider in providers {
        match ratings.reconcile(provider, ports).await {
            Ok(done) => {
                let changed = done.fixed_aggregate || done.fixed_slots > 0;
                fixed += usize::from(changed);
                if json {
                    println!("{}", serde_json::to_string(&done).unwrap_or_default());
                    continue;
                }
                let show = |f: &[String; 3]| {
                    format!("ratingSum {} reviewCount {} rating {}", f[0], f[1], f[2])
                };
                let stored = done
                    .stored
                    .as_ref()
                    .map_or("no aggregate".to_string(), show);
                match (done.fixed_aggregate, done.fixed_slots) {
                    (false, 0) => println!("{provider}: as its reviews say ({stored})"),
                    (aggregate, slots) => println!(
                        "{provider}: {}; its reviews say {}{}",
                        stored,
                        show(&done.computed),
                        match (aggregate, slots) {
                            (true, 0) => ": fixed".to_string(),
                            (true, n) => format!(": fixed, and {n} booking slot(s)"),
                            (false, n) => format!(": {n} booking slot(s) fixed"),
                        }
                    ),
                }
            }
            Err(e) => {
                failed += 1;
                let retry = match e.is_retryable() {
                    true => "retryable: run reconcile again",
                    false => "not retryable",
                };
                eprintln!("{provider}: could not be reconciled ({retry}): {e}");
            }
        }
    }
    eprintln!(
        "{} provider(s): {fixed} fixed, {failed} failed, {} as their reviews say",
        providers.len(),
        providers.len() - fixed - failed
    );
    Ok(match failed {
        0 => Exit::Clean,
        _ => Exit::BatchFailed,
    })
}

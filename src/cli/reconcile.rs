//! `reconcile`: recomputes incremental aggregates from their source items and repairs what
//! differs, the way the reactions computed them before they became incremental: provider
//! ratings from the reviews, thread statistics from the conversations. For what the stream
//! cannot show the worker: a bulk import, a restore, writes that bypassed the stream, figures
//! changed by hand, and the items there were before the worker kept its state.

use std::collections::BTreeSet;

use handlers::ports::Ports;
use handlers::reactions::folding::{reconcile, Reconciled};
use handlers::reactions::provider_rating::ProviderRatings;
use handlers::reactions::thread_stats::ThreadStatistics;
use handlers::ReactionError;
use serde_json::Value;

use super::error::{CliError, Exit};
use crate::adapters::dynamodb::distinct_values;
use crate::batch::Adapters;
use crate::catalog::Catalog;
use crate::wiring::target::{Opening, Target};
use crate::wiring::{self, config::Config};

/// Which aggregates.
#[derive(Debug, Clone, Copy)]
pub(super) enum Aggregates {
    /// Provider ratings, from the reviews.
    Ratings,
    /// Thread statistics, from the conversations.
    Threads,
}

pub(super) struct ReconcileCommand {
    pub aggregates: Aggregates,
    /// Providers or conversations to reconcile; with `all`, every one there is besides.
    pub ids: Vec<String>,
    pub all: bool,
    pub target: Target,
    pub json: bool,
}

/// The reactions whose aggregates are reconciled, and where their ids are found.
struct Reconciler {
    aggregates: Aggregates,
    ratings: ProviderRatings,
    threads: ThreadStatistics,
}

impl Reconciler {
    /// The tables whose items name the aggregates (the source and the aggregate's own), and
    /// the attribute that names them.
    fn id_sources(&self) -> ([String; 2], &'static str) {
        match self.aggregates {
            Aggregates::Ratings => {
                let c = self.ratings.config();
                (
                    [c.reviews_table.clone(), c.providers_table.clone()],
                    "providerId",
                )
            }
            Aggregates::Threads => {
                let c = self.threads.config();
                (
                    [c.conversations_table.clone(), c.threads_table.clone()],
                    "conversation_id",
                )
            }
        }
    }

    async fn reconcile(&self, id: &str, ports: Ports<'_>) -> Result<Reconciled, ReactionError> {
        match self.aggregates {
            Aggregates::Ratings => reconcile(&self.ratings, id, ports).await,
            Aggregates::Threads => reconcile(&self.threads, id, ports).await,
        }
    }
}

pub(super) async fn run(command: ReconcileCommand) -> Result<Exit, CliError> {
    let config = Config::from_env()?;
    let reconciler = Reconciler {
        aggregates: command.aggregates,
        ratings: ProviderRatings::new(config.reactions.ratings.clone()),
        threads: ThreadStatistics::new(config.reactions.threads.clone()),
    };
    let (tables, attribute) = reconciler.id_sources();
    let mut ids: BTreeSet<String> = command.ids.iter().cloned().collect();
    let connected = command
        .target
        .connect(
            Opening::MustExist,
            Catalog::with_seed_definitions(),
            &config,
        )
        .await?;
    if let (true, Some(sdk)) = (command.all, &connected.sdk) {
        let client = wiring::dynamodb_client(sdk);
        for table in &tables {
            ids.extend(distinct_values(&client, table, attribute).await?);
        }
    }
    if let (true, Some(state)) = (command.all, &connected.state) {
        for table in &tables {
            for (_, items) in state.dump(Some(table))? {
                ids.extend(
                    items
                        .iter()
                        .filter_map(|item| item[attribute]["S"].as_str())
                        .map(str::to_string),
                );
            }
        }
    }
    let exit = reconcile_all(&reconciler, &connected.adapters, &ids, command.json).await;
    if let Some(state) = connected.state {
        state.sync()?;
    }
    exit
}

/// `name value` pairs of a figures object (lists comma-separated, none for null).
fn show(figures: &Value) -> String {
    let value = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "none".to_string(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    match figures {
        Value::Object(fields) => fields
            .iter()
            .map(|(name, v)| format!("{name} {}", value(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => value(other),
    }
}

/// Each aggregate in turn, a line each; a failure is reported and the others still run.
async fn reconcile_all(
    reconciler: &Reconciler,
    adapters: &Adapters,
    ids: &BTreeSet<String>,
    json: bool,
) -> Result<Exit, CliError> {
    let ports = Ports {
        tables: adapters.tables.as_ref(),
        objects: adapters.objects.as_ref(),
        mailer: adapters.mailer.as_ref(),
    };
    let (mut fixed, mut failed) = (0, 0);
    let source = match reconciler.aggregates {
        Aggregates::Ratings => "its reviews say",
        Aggregates::Threads => "its messages say",
    };
    for id in ids {
        match reconciler.reconcile(id, ports).await {
            Ok(done) => {
                let changed = done.fixed_aggregate || done.fixed_state > 0;
                fixed += usize::from(changed);
                if json {
                    println!("{}", serde_json::to_string(&done).unwrap_or_default());
                    continue;
                }
                let stored = done
                    .stored
                    .as_ref()
                    .map_or("nothing stored".to_string(), show);
                match (done.fixed_aggregate, done.fixed_state) {
                    (false, 0) => println!("{id}: as {source} ({stored})"),
                    (aggregate, items) => println!(
                        "{id}: {stored}; {source} {}{}",
                        show(&done.computed),
                        match (aggregate, items) {
                            (true, 0) => ": fixed".to_string(),
                            (true, n) => format!(": fixed, and {n} state item(s)"),
                            (false, n) => format!(": {n} state item(s) fixed"),
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
                eprintln!("{id}: could not be reconciled ({retry}): {e}");
            }
        }
    }
    eprintln!(
        "{} reconciled: {fixed} fixed, {failed} failed, {} already right",
        ids.len(),
        ids.len() - fixed - failed
    );
    Ok(match failed {
        0 => Exit::Clean,
        _ => Exit::BatchFailed,
    })
}

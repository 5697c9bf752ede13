//! `reconcile`: recomputes incremental aggregates from their source items and repairs what
//! differs, the way the reactions computed them before they became incremental: provider
//! ratings from the reviews, thread statistics from the conversations. For what the stream
//! cannot show the worker: a bulk import, a restore, writes that bypassed the stream, figures
//! changed by hand, and the items there were before the worker kept its state.

use std::collections::BTreeSet;
use std::io;

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches, Subcommand};
use handlers::ports::Ports;
use handlers::reactions::folding::{reconcile, Reconcilable, ReconcileRules};
use handlers::reactions::RECONCILABLE;
use handlers::AttributeValue;
use serde_json::Value;

use super::error::{CliError, Exit};
use super::target_flags::TargetArgs;
use crate::adapters::dynamodb::distinct_values;
use crate::batch::Adapters;
use crate::catalog::Catalog;
use crate::wiring::output::print_line;
use crate::wiring::target::Opening;
use crate::wiring::{self, config::Config};

/// `reconcile <aggregate> (--<id> ID... | --all)`: one subcommand per aggregate of
/// [`RECONCILABLE`], so an aggregate added there is on the command line with nothing added here.
pub(super) struct ReconcileCommand {
    pub aggregate: &'static Reconcilable,
    /// Aggregates to reconcile; with `all`, every one there is besides.
    pub ids: Vec<String>,
    pub options: ReconcileOptions,
}

#[derive(clap::Args)]
pub(super) struct ReconcileOptions {
    /// Every one there is (scans the source table and the aggregates' table).
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    target: TargetArgs,
    /// One JSON object per aggregate.
    #[arg(long)]
    pub json: bool,
}

/// The argument holding the ids, whatever the aggregate calls its `--<id_flag>`.
const IDS: &str = "ids";

impl Subcommand for ReconcileCommand {
    fn augment_subcommands(command: Command) -> Command {
        command
            .subcommand_required(true)
            .subcommands(RECONCILABLE.iter().map(|aggregate| {
                let ids = Arg::new(IDS)
                    .long(aggregate.id_flag)
                    .value_name("ID")
                    .action(ArgAction::Append)
                    .required_unless_present("all")
                    .help(aggregate.id_help);
                // The options' own doc would be the subcommand's about: set it after them.
                ReconcileOptions::augment_args(Command::new(aggregate.command).arg(ids))
                    .about(aggregate.about)
            }))
    }

    fn augment_subcommands_for_update(command: Command) -> Command {
        Self::augment_subcommands(command)
    }

    fn has_subcommand(name: &str) -> bool {
        RECONCILABLE
            .iter()
            .any(|aggregate| aggregate.command == name)
    }
}

impl FromArgMatches for ReconcileCommand {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let unknown = || clap::Error::new(clap::error::ErrorKind::InvalidSubcommand);
        let (name, matches) = matches.subcommand().ok_or_else(unknown)?;
        let aggregate = RECONCILABLE
            .iter()
            .find(|aggregate| aggregate.command == name)
            .ok_or_else(unknown)?;
        Ok(ReconcileCommand {
            aggregate,
            ids: matches
                .get_many::<String>(IDS)
                .map(|ids| ids.cloned().collect())
                .unwrap_or_default(),
            options: ReconcileOptions::from_arg_matches(matches)?,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

pub(super) async fn run(command: ReconcileCommand) -> Result<Exit, CliError> {
    let config = Config::from_env()?;
    let rules = (command.aggregate.rules)(&config.reactions);
    let mut ids: BTreeSet<String> = command.ids.into_iter().collect();
    let options = &command.options;
    let connected = options
        .target
        .target()
        .connect(
            Opening::MustExist,
            Catalog::with_seed_definitions(),
            &config,
        )
        .await?;
    if options.all {
        let client = connected.sdk.as_ref().map(wiring::dynamodb_client);
        for (table, attribute) in rules.id_sources() {
            if let Some(client) = &client {
                ids.extend(distinct_values(client, &table, &attribute).await?);
            }
            if let Some(state) = &connected.state {
                // Item by item: the source table (every review) may be far larger than memory.
                state.scan_table(&table, &mut |item| {
                    if let Some(AttributeValue::S(id)) = item.get(&attribute) {
                        ids.insert(id.clone());
                    }
                    Ok::<_, CliError>(())
                })?;
            }
        }
    }
    let exit = reconcile_all(
        rules.as_ref(),
        command.aggregate.source,
        &connected.adapters,
        &ids,
        options.json,
    )
    .await;
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
    rules: &dyn ReconcileRules,
    source: &str,
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
    for id in ids {
        match reconcile(rules, id, ports).await {
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
                let line = match (done.fixed_aggregate, done.fixed_state) {
                    (false, 0) => format!("{id}: as {source} ({stored})"),
                    (aggregate, items) => format!(
                        "{id}: {stored}; {source} {}{}",
                        show(&done.computed),
                        match (aggregate, items) {
                            (true, 0) => ": fixed".to_string(),
                            (true, n) => format!(": fixed, and {n} state item(s)"),
                            (false, n) => format!(": {n} state item(s) fixed"),
                        }
                    ),
                };
                // Ids and figures come from the items: escaped, as every report line.
                print_line(&mut io::stdout().lock(), &line).map_err(CliError::Output)?;
            }
            Err(e) => {
                failed += 1;
                let retry = match e.is_retryable() {
                    true => "retryable: run reconcile again",
                    false => "not retryable",
                };
                let line = format!("{id}: could not be reconciled ({retry}): {e}");
                print_line(&mut io::stderr().lock(), &line).map_err(CliError::Output)?;
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

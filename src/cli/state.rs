//! `state show`: the embedded state's tables as DynamoDB JSON, one item per line, in key order.

use std::io::{self, Write};
use std::path::Path;

use super::error::{CliError, Exit};
use crate::adapters::embedded::EmbeddedState;
use crate::catalog::Catalog;

pub(super) fn show(dir: &Path, table: Option<&str>) -> Result<Exit, CliError> {
    if !dir.exists() {
        return Err(CliError::NoState(dir.to_path_buf()));
    }
    let state = EmbeddedState::open_read_only(dir, Catalog::with_seed_definitions())?;
    // Written as read, one item at a time: a day's state is far larger than memory should be.
    let mut out = io::BufWriter::new(io::stdout().lock());
    // One table as asked, or every table with items, each after a line of how many.
    let tables: Vec<(String, Option<u64>)> = match table {
        Some(table) => vec![(table.to_string(), None)],
        None => (state.table_sizes()?.into_iter())
            .map(|(name, count)| (name, Some(count)))
            .collect(),
    };
    for (name, count) in tables {
        if let Some(count) = count {
            out.flush().map_err(CliError::Output)?;
            eprintln!("# {name}: {count} item(s)");
        }
        state.scan_table(&name, &mut |item| {
            let line = handlers::item::sorted(&item);
            writeln!(out, "{line}").map_err(CliError::Output)
        })?;
    }
    out.flush().map_err(CliError::Output)?;
    let parked = state.parked();
    if !parked.is_empty() {
        eprintln!("# parked: {} record(s)", parked.len());
        for file in parked {
            eprintln!("#   {}", file.display());
        }
    }
    Ok(Exit::Clean)
}

//! `state show`: the embedded state's tables as DynamoDB JSON, one item per line, in key order.

use std::path::Path;

use super::error::{CliError, Exit};
use crate::adapters::embedded::EmbeddedState;
use crate::catalog::Catalog;

pub(super) fn show(dir: &Path, table: Option<&str>) -> Result<Exit, CliError> {
    if !dir.exists() {
        return Err(CliError::NoState(dir.to_path_buf()));
    }
    let state = EmbeddedState::open_read_only(dir, Catalog::with_seed_definitions())?;
    let mut lines = String::new();
    for (name, items) in state.dump(table)? {
        if table.is_none() {
            eprintln!("# {name}: {} item(s)", items.len());
        }
        for item in items {
            lines.push_str(&item.to_string());
            lines.push('\n');
        }
    }
    print!("{lines}");
    let parked = state.parked();
    if !parked.is_empty() {
        eprintln!("# parked: {} record(s)", parked.len());
        for file in parked {
            eprintln!("#   {}", file.display());
        }
    }
    Ok(Exit::Clean)
}

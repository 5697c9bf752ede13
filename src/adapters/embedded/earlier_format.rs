//! A state written by an earlier version (table files `tables/<name>.jsonl`, the journals
//! `journal.compacting.jsonl` and `journal.jsonl`, and `schemas.json`), converted into
//! `state.sqlite` the first time it is opened.
//!
//! The conversion is written to a file of its own and renamed into place once it is
//! committed, so a crash during it leaves the earlier files as they were and the next open
//! converts again; only then are the earlier files removed.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use embedded_tables::{Database, Write};
use handlers::Item;
use serde::Deserialize;

use super::files::decode_name;
use super::store::{to_crate, DATABASE};
use crate::adapters::atomic_file::sync_dir;
use crate::catalog::{Catalog, KeySchema};

/// What an earlier version kept in a state directory.
const EARLIER: [&str; 4] = [
    "tables",
    "journal.compacting.jsonl",
    "journal.jsonl",
    "schemas.json",
];

/// The journals, oldest first.
const JOURNALS: [&str; 2] = ["journal.compacting.jsonl", "journal.jsonl"];

#[derive(Deserialize)]
struct SavedSchema {
    hash: String,
    #[serde(default)]
    range: Option<String>,
}

/// The first line of a table file whose name was too long for its file name.
#[derive(Deserialize)]
struct TableHeader {
    table: String,
}

/// One journal line: the writes of one operation.
#[derive(Deserialize)]
struct JournalLine {
    ops: Vec<JournalOp>,
}

#[derive(Deserialize)]
struct JournalOp {
    table: String,
    hash: String,
    #[serde(default)]
    range: Option<String>,
    #[serde(default)]
    put: Option<Item>,
    #[serde(default)]
    delete: Option<Item>,
}

/// Whether `root` holds an earlier version's state and no database yet.
pub(super) fn is_earlier(root: &Path) -> bool {
    !root.join(DATABASE).exists() && EARLIER.iter().any(|name| root.join(name).exists())
}

/// Convert the earlier state under `root` into `state.sqlite`; the earlier files go once the
/// database is in place. Errors name the file and line that could not be read.
pub(super) fn convert(root: &Path, catalog: &Catalog) -> Result<(), String> {
    let converting = root.join(format!("{DATABASE}.converting"));
    for leftover in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{leftover}", converting.display()));
    }
    let mut database = Database::open(&converting).map_err(|e| e.to_string())?;
    if let Ok(text) = fs::read_to_string(root.join("schemas.json")) {
        let saved: BTreeMap<String, SavedSchema> = serde_json::from_str(&text)
            .map_err(|e| format!("{}: {e}", root.join("schemas.json").display()))?;
        for (table, schema) in saved {
            catalog.learn_schema(
                &table,
                KeySchema {
                    hash: schema.hash,
                    range: schema.range,
                },
            );
        }
    }
    let mut put = |table: &str, write: Write, at: &dyn Fn() -> String| {
        let schema = catalog
            .schema(table)
            .ok_or_else(|| format!("{}: table {table} has no key schema", at()))?;
        let wanted = to_crate(&schema);
        if database.schema(table) != Some(&wanted) {
            database
                .define(table, &wanted)
                .map_err(|e| format!("{}: {e}", at()))?;
        }
        database
            .write(vec![(table.to_string(), write)])
            .map_err(|e| format!("{}: {e}", at()))
    };
    if let Ok(entries) = fs::read_dir(root.join("tables")) {
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            let Some(stem) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".jsonl"))
            else {
                continue;
            };
            let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut lines = text.lines().enumerate();
            let table = match decode_name(stem) {
                Some(table) => table,
                None => {
                    let header = lines.next().map(|(_, line)| line).unwrap_or_default();
                    serde_json::from_str::<TableHeader>(header)
                        .map_err(|e| format!("{}:1: no table name: {e}", path.display()))?
                        .table
                }
            };
            for (number, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
                let at = || format!("{}:{}", path.display(), number + 1);
                let item: Item =
                    serde_json::from_str(line).map_err(|e| format!("{}: {e}", at()))?;
                put(&table, Write::put(item), &at)?;
            }
        }
    }
    for name in JOURNALS {
        let path = root.join(name);
        let Ok(bytes) = fs::read(&path) else {
            continue;
        };
        for (number, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
            if !line.ends_with(b"\n") {
                break; // torn by a crash mid-append: that write was never acknowledged
            }
            let at = || format!("{}:{}", path.display(), number + 1);
            let entry: JournalLine =
                serde_json::from_slice(line).map_err(|e| format!("{}: {e}", at()))?;
            for op in entry.ops {
                catalog.learn_schema(
                    &op.table,
                    KeySchema {
                        hash: op.hash,
                        range: op.range,
                    },
                );
                match (op.put, op.delete) {
                    (Some(item), _) => put(&op.table, Write::put(item), &at)?,
                    (None, Some(key)) => put(&op.table, Write::delete(key), &at)?,
                    (None, None) => {}
                }
            }
        }
    }
    database.checkpoint().map_err(|e| e.to_string())?;
    drop(database);
    fs::rename(&converting, root.join(DATABASE)).map_err(|e| e.to_string())?;
    sync_dir(root).map_err(|e| e.to_string())?;
    for name in EARLIER {
        let path = root.join(name);
        let removed = match path.is_dir() {
            true => fs::remove_dir_all(&path),
            false => fs::remove_file(&path),
        };
        if let Err(e) = removed {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(format!("{}: {e}", path.display()));
            }
        }
    }
    Ok(())
}

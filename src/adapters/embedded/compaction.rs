//! Compaction: the changed tables written to `tables/<name>.jsonl` from a snapshot of their
//! items, so that it can run on threads of its own while the store goes on taking writes.
//!
//! The snapshot shares the items with the tables (an item is replaced, never changed), so it
//! is the state at one moment however long the writing takes. One thread per table, and a
//! large table's later parts serialized on threads of their own while the first is written.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use handlers::item::SortedItem;
use handlers::Item;

use super::files::encode_name;
use super::store::{SavedSchema, Stored, TableHeader};
use crate::adapters::atomic_file::{write_atomic, write_atomic_with};
use crate::stages::{self, Stage};

/// What a compaction writes, taken from the store at one moment.
pub(super) struct Snapshot {
    pub root: PathBuf,
    /// Each changed table's items in key order, in parts of about as many items each.
    pub tables: Vec<(String, Vec<Vec<Stored>>)>,
    /// The key schemas learned from stream records (`schemas.json`).
    pub learned: BTreeMap<String, SavedSchema>,
}

/// What a compaction wrote: each table's file length, or why it could not be written.
pub(super) struct Written {
    pub tables: Vec<(String, io::Result<u64>)>,
    pub schemas: io::Result<()>,
}

impl Written {
    pub(super) fn is_whole(&self) -> bool {
        self.schemas.is_ok() && self.tables.iter().all(|(_, written)| written.is_ok())
    }
}

impl Snapshot {
    /// The names of the tables it writes.
    pub(super) fn table_names(&self) -> Vec<String> {
        self.tables.iter().map(|(name, _)| name.clone()).collect()
    }

    pub(super) fn write(self) -> Written {
        let started = Instant::now();
        let dir = self.root.join("tables");
        let created = fs::create_dir_all(&dir);
        let tables = std::thread::scope(|scope| {
            let writers: Vec<_> = self
                .tables
                .into_iter()
                .map(|(table, parts)| {
                    let (stem, hashed) = encode_name(&table);
                    let path = dir.join(format!("{stem}.jsonl"));
                    let header = hashed.then(|| TableHeader {
                        table: table.clone(),
                    });
                    let writer = scope.spawn(move || {
                        write_atomic_with(&path, |file| {
                            if let Some(header) = &header {
                                serde_json::to_writer(&mut *file, header)?;
                                file.write_all(b"\n")?;
                            }
                            write_in_parts(parts, file)
                        })
                    });
                    (table, writer)
                })
                .collect();
            writers
                .into_iter()
                .map(|(table, writer)| {
                    let written = match &created {
                        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                        Ok(()) => writer.join().unwrap_or_else(|_| {
                            Err(io::Error::other(format!("writing table {table} panicked")))
                        }),
                    };
                    (table, written)
                })
                .collect()
        });
        let schemas = match self.learned.is_empty() {
            true => Ok(()),
            false => serde_json::to_vec_pretty(&self.learned)
                .map_err(io::Error::from)
                .and_then(|json| write_atomic(&self.root.join("schemas.json"), &json)),
        };
        stages::add_since(Stage::Compaction, started);
        Written { tables, schemas }
    }
}

/// A table file's items, one per line: the first part written as it is serialized, the later
/// ones serialized meanwhile on threads of their own.
fn write_in_parts(parts: Vec<Vec<Stored>>, file: &mut dyn Write) -> io::Result<()> {
    fn write_items(items: &[Stored], out: &mut dyn Write) -> io::Result<()> {
        for item in items {
            let item: &Item = item;
            serde_json::to_writer(&mut *out, &SortedItem(item))?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }
    let mut parts = parts.into_iter();
    let first = parts.next();
    std::thread::scope(|scope| {
        let later: Vec<_> = parts
            .map(|part| {
                scope.spawn(move || {
                    let mut buffer = Vec::new();
                    write_items(&part, &mut buffer).map(|()| buffer)
                })
            })
            .collect();
        if let Some(first) = first {
            write_items(&first, file)?;
        }
        for part in later {
            let buffer = part
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("serializing a table panicked")))?;
            file.write_all(&buffer)?;
        }
        Ok(())
    })
}

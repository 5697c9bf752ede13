//! Markers: named values set in a batch's transaction (a replay's applied record, named by its
//! eventID), kept so that names that come in no order add to the end of a tree rather than
//! all over it.
//!
//! A commit writes every page it changed, whole, to the log, and the checkpoint writes it
//! again. Names that come in no order (DynamoDB's eventIDs are random hex) land all over a
//! tree keyed by them, so a batch of 10,000 changes nearly every page of that tree. What it
//! writes grows with the tree, not with the batch. So:
//!
//! - `markers(id, name, value)` holds each marker, numbered in the order they were set: a new
//!   one goes at the end of the tree.
//! - `marker_names(hash, marker)` finds a marker by [`name_hash`], a 64-bit hash of its name:
//!   about 17 bytes a row where a tree keyed by name held about 90 (the name and the value),
//!   so the tree that new names scatter into is a fifth of the size. A day's replay of a
//!   million records wrote 12.7 GB instead of 18.3 (BENCHMARKS.md, "Markers in the order they
//!   were set").
//! - `marker_names_shared(name, marker)` finds, by the name itself, a marker whose name's
//!   hash another marker had first. It is empty unless two names share a hash, which 64 bits
//!   make rare. Anyone who writes names chosen to share one (FNV-1a is no secret) only fills
//!   this table, which is as fast as the name-keyed one. Looking a name up is exact whatever
//!   the hash does.

use std::hash::Hasher;

use rusqlite::{params, Connection, OptionalExtension};

/// The hash `marker_names` keeps a marker's name under: FNV-1a of its UTF-8 bytes, 64 bits as
/// SQLite's signed integer. It is stable: the database keeps it.
pub fn name_hash(name: &str) -> i64 {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(name.as_bytes());
    // The same 64 bits, signed: SQLite's integers are.
    hasher.finish() as i64
}

/// What [`find`] found of the marker of a name.
pub(crate) enum Found {
    /// The marker is set: its row and its value.
    Set { id: i64, value: String },
    /// Not set; once set, it is found this way.
    Unset(FoundBy),
}

/// How a marker is found.
#[derive(Clone, Copy)]
pub(crate) enum FoundBy {
    /// By its name's hash, in `marker_names`: no other marker has it.
    Hash,
    /// By its name, in `marker_names_shared`: another marker has its name's hash.
    Name,
}

/// The marker `name`, or how it will be found once set.
pub(crate) fn find(connection: &Connection, name: &str) -> rusqlite::Result<Found> {
    let by_hash = connection
        .prepare_cached(
            "SELECT markers.id, markers.name = ?2, markers.value FROM marker_names \
             JOIN markers ON markers.id = marker_names.marker WHERE marker_names.hash = ?1",
        )?
        .query_row(params![name_hash(name), name], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    match by_hash {
        None => Ok(Found::Unset(FoundBy::Hash)),
        Some((id, true, value)) => Ok(Found::Set { id, value }),
        Some((_, false, _)) => {
            let shared = connection
                .prepare_cached(
                    "SELECT markers.id, markers.value FROM marker_names_shared \
                     JOIN markers ON markers.id = marker_names_shared.marker \
                     WHERE marker_names_shared.name = ?1",
                )?
                .query_row([name], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            Ok(match shared {
                Some((id, value)) => Found::Set { id, value },
                None => Found::Unset(FoundBy::Name),
            })
        }
    }
}

/// Set the marker `name`, not set yet, to `value`, found `by` as [`find`] said.
pub(crate) fn add(
    connection: &Connection,
    name: &str,
    value: &str,
    by: FoundBy,
) -> rusqlite::Result<()> {
    connection
        .prepare_cached("INSERT INTO markers (name, value) VALUES (?1, ?2)")?
        .execute([name, value])?;
    index(connection, connection.last_insert_rowid(), name, by)
}

/// Make the marker in row `id`, named `name`, found `by`.
fn index(connection: &Connection, id: i64, name: &str, by: FoundBy) -> rusqlite::Result<()> {
    match by {
        FoundBy::Hash => connection
            .prepare_cached("INSERT INTO marker_names (hash, marker) VALUES (?1, ?2)")?
            .execute(params![name_hash(name), id]),
        FoundBy::Name => connection
            .prepare_cached("INSERT INTO marker_names_shared (name, marker) VALUES (?1, ?2)")?
            .execute(params![name, id]),
    }
    .map(|_| ())
}

/// Set the marker in row `id` to `value`.
pub(crate) fn replace(connection: &Connection, id: i64, value: &str) -> rusqlite::Result<()> {
    connection
        .prepare_cached("UPDATE markers SET value = ?2 WHERE id = ?1")?
        .execute(params![id, value])
        .map(|_| ())
}

/// Bring the markers of format 2, one table keyed by name, into these tables; `schema` creates
/// them. Run in the transaction that changes the format.
pub(crate) fn convert_format_2(connection: &Connection, schema: &str) -> rusqlite::Result<()> {
    connection.execute_batch(&format!(
        "ALTER TABLE markers RENAME TO markers_format_2; {schema}
         INSERT INTO markers (name, value) SELECT name, value FROM markers_format_2;
         DROP TABLE markers_format_2;"
    ))?;
    let mut names = connection.prepare("SELECT id, name FROM markers")?;
    let mut names = names.query([])?;
    while let Some(row) = names.next()? {
        let (id, name): (i64, String) = (row.get(0)?, row.get(1)?);
        // Names were unique in format 2: none is found set, only how it will be found.
        if let Found::Unset(by) = find(connection, &name)? {
            index(connection, id, &name, by)?;
        }
    }
    Ok(())
}

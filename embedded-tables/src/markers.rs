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
//! - `marker_names_recent(hash, marker)` takes a new name's hash first. A batch's hashes still
//!   land all over a tree, but this one holds at most [`RECENT_NAMES`] (about 2.3 MiB), where
//!   `marker_names` grows with the history (18.8 MiB after a day of a million records, nearly
//!   all of it written again by every batch). When it is full, its hashes move into
//!   `marker_names` in one pass in hash order, which writes each page of that tree once: a
//!   tree that grows with the history is written once every [`RECENT_NAMES`] markers, not at
//!   every batch (BENCHMARKS.md, "Recent markers apart"). A hash is in one of the two tables,
//!   never both; a lookup reads both.

use std::collections::HashSet;
use std::hash::Hasher;

use rusqlite::{params, Connection, OptionalExtension};

/// The markers' tables, as `sqlite3` sees them (part of the database's schema).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS markers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS marker_names (
    hash INTEGER PRIMARY KEY,
    marker INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS marker_names_recent (
    hash INTEGER PRIMARY KEY,
    marker INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS marker_names_shared (
    name TEXT PRIMARY KEY,
    marker INTEGER NOT NULL
) WITHOUT ROWID;
";

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

/// The most hashes `marker_names_recent` holds before they move into `marker_names`. Each
/// batch writes about as many pages of the recent tree as it holds (a batch of 10,000 names
/// lands on nearly all of them), and each move writes all of `marker_names`: 131,072 keeps
/// both small from a day's history (a million markers) to ten times that.
pub(crate) const RECENT_NAMES: i64 = 131_072;

/// The markers of one database: how many hashes its recent tree holds, counted once, and the
/// hashes a batch's names were found not to have.
pub(crate) struct Markers {
    /// Hashes in `marker_names_recent`, if counted since the last undone batch.
    recent: Option<i64>,
    /// When they move into `marker_names` ([`RECENT_NAMES`]; fewer in tests).
    move_at: i64,
    /// Hashes no marker has, as [`Markers::look_up`] found them: a name with one of them is
    /// not set and is added by its hash, without a search. A hash leaves when a marker takes
    /// it; all leave at the end of the batch.
    free: HashSet<i64>,
}

impl Markers {
    pub(crate) fn new() -> Markers {
        Markers::moving_at(RECENT_NAMES)
    }

    fn moving_at(move_at: i64) -> Markers {
        Markers {
            recent: None,
            move_at,
            free: HashSet::new(),
        }
    }

    /// Look up the hashes of `names` at once, in hash order, before their markers are set one
    /// by one: consecutive hashes share the pages of the trees, where a search per name, in
    /// no order, reads a page of a tree that grows with the history each time (a twelfth of
    /// a day's replay, BENCHMARKS.md, "Recent markers apart"). Not while `marker_names` is
    /// empty: the recent tree alone is small, and a search per name there costs less than
    /// looking up and remembering.
    pub(crate) fn look_up<'n>(
        &mut self,
        connection: &Connection,
        names: impl Iterator<Item = &'n str>,
    ) -> rusqlite::Result<()> {
        let settled: bool = connection
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM marker_names)")?
            .query_row([], |row| row.get(0))?;
        if !settled {
            return Ok(());
        }
        let mut hashes: Vec<i64> = names.map(name_hash).collect();
        hashes.sort_unstable();
        hashes.dedup();
        let mut taken = connection.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM marker_names_recent WHERE hash = ?1) \
             OR EXISTS (SELECT 1 FROM marker_names WHERE hash = ?1)",
        )?;
        for hash in hashes {
            if !taken.query_row([hash], |row| row.get::<_, bool>(0))? {
                self.free.insert(hash);
            }
        }
        Ok(())
    }

    /// The marker `name`, or how it will be found once set ([`find`], unless its hash was
    /// looked up and found free).
    pub(crate) fn find(&mut self, connection: &Connection, name: &str) -> rusqlite::Result<Found> {
        let hash = name_hash(name);
        match self.free.remove(&hash) {
            true => Ok(Found::Unset(FoundBy::Hash)),
            false => find_hashed(connection, name, hash),
        }
    }

    /// Set the marker `name`, not set yet, to `value`, found `by` as [`find`] said; the recent
    /// hashes moved into `marker_names` when there are [`RECENT_NAMES`] of them.
    pub(crate) fn add(
        &mut self,
        connection: &Connection,
        name: &str,
        value: &str,
        by: FoundBy,
    ) -> rusqlite::Result<()> {
        connection
            .prepare_cached("INSERT INTO markers (name, value) VALUES (?1, ?2)")?
            .execute([name, value])?;
        index(
            connection,
            connection.last_insert_rowid(),
            name,
            by,
            Tree::Recent,
        )?;
        if let FoundBy::Name = by {
            return Ok(());
        }
        let recent = match self.recent {
            Some(counted) => counted + 1,
            None => {
                connection.query_row("SELECT count(*) FROM marker_names_recent", [], |row| {
                    row.get(0)
                })?
            }
        };
        self.recent = Some(recent);
        if recent >= self.move_at {
            connection.execute_batch(
                "INSERT INTO marker_names (hash, marker) \
                 SELECT hash, marker FROM marker_names_recent ORDER BY hash; \
                 DELETE FROM marker_names_recent;",
            )?;
            self.recent = Some(0);
        }
        Ok(())
    }

    /// The batch was undone: what it added to the recent tree is gone, so count it again.
    pub(crate) fn undone(&mut self) {
        self.recent = None;
        self.free.clear();
    }

    /// The batch was committed: its names' hashes are looked up again with the next.
    pub(crate) fn committed(&mut self) {
        self.free.clear();
    }
}

/// The marker `name`, or how it will be found once set.
pub(crate) fn find(connection: &Connection, name: &str) -> rusqlite::Result<Found> {
    find_hashed(connection, name, name_hash(name))
}

/// [`find`], with the name's hash already made.
fn find_hashed(connection: &Connection, name: &str, hash: i64) -> rusqlite::Result<Found> {
    // A hash is in one tree or the other: at most one row.
    let by_hash = connection
        .prepare_cached(
            "SELECT markers.id, markers.name = ?2, markers.value FROM \
             (SELECT marker FROM marker_names_recent WHERE hash = ?1 \
              UNION ALL SELECT marker FROM marker_names WHERE hash = ?1) AS found \
             JOIN markers ON markers.id = found.marker",
        )?
        .query_row(params![hash, name], |row| {
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

/// Which tree a hash goes into.
enum Tree {
    /// `marker_names_recent`: a marker set now.
    Recent,
    /// `marker_names`: a marker converted from format 2, many at once.
    Settled,
}

/// Make the marker in row `id`, named `name`, found `by`; by its hash, in `tree`.
fn index(
    connection: &Connection,
    id: i64,
    name: &str,
    by: FoundBy,
    tree: Tree,
) -> rusqlite::Result<()> {
    match (by, tree) {
        (FoundBy::Hash, Tree::Recent) => connection
            .prepare_cached("INSERT INTO marker_names_recent (hash, marker) VALUES (?1, ?2)")?
            .execute(params![name_hash(name), id]),
        (FoundBy::Hash, Tree::Settled) => connection
            .prepare_cached("INSERT INTO marker_names (hash, marker) VALUES (?1, ?2)")?
            .execute(params![name_hash(name), id]),
        (FoundBy::Name, _) => connection
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

/// Bring the markers of format 2, one table keyed by name, into these tables. Run in the
/// transaction that changes the format.
pub(crate) fn convert_format_2(connection: &Connection) -> rusqlite::Result<()> {
    connection.execute_batch(&format!(
        "ALTER TABLE markers RENAME TO markers_format_2; {SCHEMA}
         INSERT INTO markers (name, value) SELECT name, value FROM markers_format_2;
         DROP TABLE markers_format_2;"
    ))?;
    let mut names = connection.prepare("SELECT id, name FROM markers")?;
    let mut names = names.query([])?;
    while let Some(row) = names.next()? {
        let (id, name): (i64, String) = (row.get(0)?, row.get(1)?);
        // Names were unique in format 2: none is found set, only how it will be found.
        if let Found::Unset(by) = find(connection, &name)? {
            index(connection, id, &name, by, Tree::Settled)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(connection: &Connection, table: &str) -> i64 {
        connection
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .unwrap()
    }

    fn value(connection: &Connection, name: &str) -> Option<String> {
        match find(connection, name).unwrap() {
            Found::Set { value, .. } => Some(value),
            Found::Unset(_) => None,
        }
    }

    /// Hashes move from the recent tree into `marker_names` each time it holds the limit, and
    /// every marker is found wherever its hash is; an undone batch's are counted out again.
    #[test]
    fn recent_hashes_move_when_full_and_stay_found() {
        let connection = Connection::open_in_memory().unwrap();
        connection.execute_batch(SCHEMA).unwrap();
        let mut markers = Markers::moving_at(3);
        let add = |markers: &mut Markers, name: &str| {
            let Found::Unset(by) = find(&connection, name).unwrap() else {
                panic!("{name} is set already");
            };
            markers
                .add(&connection, name, &format!("value {name}"), by)
                .unwrap();
        };
        for i in 0..7 {
            add(&mut markers, &format!("e{i}"));
        }
        assert_eq!(count(&connection, "marker_names"), 6, "moved at 3 and 6");
        assert_eq!(count(&connection, "marker_names_recent"), 1);
        for i in 0..7 {
            let name = format!("e{i}");
            assert_eq!(value(&connection, &name), Some(format!("value {name}")));
        }
        assert_eq!(value(&connection, "e7"), None);

        // A batch undone after adding one: counted again, 2 recent after the next, not 3.
        connection.execute_batch("BEGIN").unwrap();
        add(&mut markers, "undone");
        connection.execute_batch("ROLLBACK").unwrap();
        markers.undone();
        add(&mut markers, "e7");
        assert_eq!(count(&connection, "marker_names_recent"), 2);
        assert_eq!(value(&connection, "undone"), None);
        add(&mut markers, "e8");
        assert_eq!(count(&connection, "marker_names"), 9);
        assert_eq!(count(&connection, "marker_names_recent"), 0);
        assert_eq!(value(&connection, "e8"), Some("value e8".to_string()));
    }

    /// Names looked up at once: one set before is found set, one new is added by its hash,
    /// and once added (a name twice in a batch) it is found set, not free again.
    #[test]
    fn names_looked_up_at_once_are_found_as_one_by_one() {
        let connection = Connection::open_in_memory().unwrap();
        connection.execute_batch(SCHEMA).unwrap();
        // "old" set and moved into `marker_names` (looking up waits for that tree).
        let mut markers = Markers::moving_at(1);
        markers
            .add(&connection, "old", "value old", FoundBy::Hash)
            .unwrap();
        assert_eq!(count(&connection, "marker_names"), 1);
        markers.move_at = RECENT_NAMES;
        let names = ["old", "new", "new", "other"];
        markers.look_up(&connection, names.into_iter()).unwrap();
        assert_eq!(markers.free.len(), 2, "new and other");
        assert!(matches!(
            markers.find(&connection, "old").unwrap(),
            Found::Set { value, .. } if value == "value old"
        ));
        let Found::Unset(by) = markers.find(&connection, "new").unwrap() else {
            panic!("new is not set yet");
        };
        markers.add(&connection, "new", "value new", by).unwrap();
        assert!(matches!(
            markers.find(&connection, "new").unwrap(),
            Found::Set { value, .. } if value == "value new"
        ));
        markers.committed();
        assert!(markers.free.is_empty());
        assert!(matches!(
            markers.find(&connection, "other").unwrap(),
            Found::Unset(FoundBy::Hash)
        ));
    }
}

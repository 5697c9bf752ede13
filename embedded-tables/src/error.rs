//! What can go wrong with the embedded tables, and whether trying again can help.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum TablesError {
    /// The database file could not be opened, read or written (a full disk, permissions, a
    /// file that is not a database). Another attempt may succeed once that is fixed.
    #[error("{path}: {operation}: {source}", path = path.display())]
    Storage {
        path: PathBuf,
        operation: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// The write-ahead log could not be flushed to disk after a commit: what the batches
    /// committed since the last flush may be lost if the machine stops (not if only the
    /// process does). Another attempt may succeed once the disk is fixed.
    #[error("{path}: flush the committed batches to disk: {message}", path = path.display())]
    NotDurable { path: PathBuf, message: String },
    /// Another process holds the database for writing longer than the wait allows.
    #[error("{path}: in use by another process", path = path.display())]
    Busy { path: PathBuf },
    /// A table the database has no key schema for.
    #[error("table {0} is not defined")]
    UnknownTable(String),
    #[error("the table {table} does not have the specified index: {index}")]
    UnknownIndex { table: String, index: String },
    /// A query by an index whose entries are not made yet, in a database open for reading
    /// only: they are made at the first query of a command that writes.
    #[error(
        "the index {index} of table {table} is made at its first query by a command that \
         writes the state (replay, reconcile); this one only reads it"
    )]
    IndexNotMade { table: String, index: String },
    /// A key attribute missing or not a non-empty S, N or B value (DynamoDB's
    /// ValidationException: no retry can change it).
    #[error("key attribute {attribute} of table {table} {problem}")]
    BadKey {
        table: String,
        attribute: String,
        problem: &'static str,
    },
    /// A write of the batch failed part way (see [`TablesError::Storage`]), and every write
    /// of the batch was undone with it; running the batch again may succeed.
    #[error("{path}: a write of this batch failed, so the whole batch was undone; run it again", path = path.display())]
    BatchUndone { path: PathBuf },
    /// A write on a database opened for reading.
    #[error("the database was opened read-only")]
    ReadOnly,
    /// A stored item that does not read back as DynamoDB JSON: the file was changed by hand
    /// or damaged.
    #[error("table {table}: a stored item is not DynamoDB JSON: {message}")]
    Corrupt { table: String, message: String },
    /// A database written by a later version of this crate.
    #[error("{path} has format {found}; this version reads format {expected}", path = path.display())]
    Format {
        path: PathBuf,
        found: String,
        expected: &'static str,
    },
}

impl TablesError {
    /// Whether the same operation may succeed later without anything in the request changing.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TablesError::Storage { .. }
                | TablesError::NotDurable { .. }
                | TablesError::Busy { .. }
                | TablesError::BatchUndone { .. }
        )
    }
}

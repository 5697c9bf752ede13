//! DynamoDB-shaped tables in one SQLite file, for a replay's state: items on disk, the pages
//! in use in a cache of bounded size, and one transaction per batch.
//!
//! - [`database`]: the [`Database`]: open, define a table's key schema, get, write sets of
//!   puts and deletes whole (or only where a marker is not set yet), query a partition of a
//!   table or an index, scan, commit.
//! - `checkpointer`: folds the write-ahead log into the file on a thread of its own.
//! - `item_json`: an item as the DynamoDB JSON text the database keeps.
//! - [`markers`]: how markers are kept, so that names in no order (eventIDs) cost little.
//! - [`sortable_key`]: key values as bytes that sort as DynamoDB sorts them.
//! - [`error`]: [`TablesError`], which says whether a retry can help.
//!
//! What an item may hold and what a condition or an update expression means are DynamoDB's
//! rules, which the caller applies (in this workspace, the embedded adapter of the ports);
//! this crate keeps items by key, as they are given.

mod checkpointer;
pub mod database;
pub mod error;
mod item_json;
pub mod markers;
pub mod sortable_key;

pub use database::{Database, Flush, KeyQuery, KeySchema, SortCondition, TableSchema, Write};
pub use error::TablesError;

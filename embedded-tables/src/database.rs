//! The database: one SQLite file of tables of DynamoDB items, by key.
//!
//! Every write goes into the batch's transaction, begun by the first write and made durable
//! by [`Database::commit`], or committed by [`Database::commit_in_background`] and flushed to
//! disk while the next batch runs (a [`Flush`]); the reads of the same [`Database`] see the
//! writes before the commit, other processes (`state show`) see the last commit. A set of
//! writes handed over at once ([`Database::write`]) is applied whole or not at all, or only if
//! a marker is not set yet ([`Database::write_if_unmarked`]). SQLite keeps the items on disk
//! and the pages in use in a cache of bounded size ([`CACHE_KIB`]); the items read last, and
//! those written over, are kept decoded besides ([`CACHED_ITEMS`]), so that a batch reading
//! back what it wrote (an aggregate, a thread's state) or reading a partition again costs
//! neither SQLite nor JSON. An item only ever written (an audit item) is not kept. A table's
//! index is made at its first query and kept from then on, so that tables no one queries by
//! index cost no index writes.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_dynamo::{AttributeValue, Item};

use crate::checkpointer::Checkpointer;
use crate::error::TablesError;
use crate::item_json::item_json;
use crate::markers::{self, Found, Markers};
use crate::sortable_key;

/// The format this version writes and reads (the `format` table).
pub const FORMAT: &str = "5";

/// The format before markers had tables of their own ([`Database::write_if_unmarked`]): opened
/// for writing, it becomes [`FORMAT`] (the schema's new tables added); a caller's markers kept
/// as items then stay where they are.
const FORMAT_WITHOUT_MARKERS: &str = "1";

/// The format whose markers were one table keyed by name: opened for writing, they are
/// brought into [`FORMAT`]'s tables (the `markers` module).
const FORMAT_MARKERS_BY_NAME: &str = "2";

/// The format before new markers' hashes had a tree of their own (`marker_names_recent`):
/// opened for writing, it becomes [`FORMAT`] (the schema's new table added).
const FORMAT_WITHOUT_RECENT_MARKERS: &str = "3";

/// The format before an index's entries were made at its first query (the `unindexed`
/// table): every index's were kept, so opened for writing it becomes [`FORMAT`] with the table
/// added, empty.
const FORMAT_EVERY_INDEX_KEPT: &str = "4";

/// The formats a database open for reading only may have: items are kept the same in all.
const FORMATS_READ_ALIKE: [&str; 5] = [
    FORMAT_WITHOUT_MARKERS,
    FORMAT_MARKERS_BY_NAME,
    FORMAT_WITHOUT_RECENT_MARKERS,
    FORMAT_EVERY_INDEX_KEPT,
    FORMAT,
];

/// SQLite's page cache, in KiB: the memory the tables take whatever their size. A batch of
/// 10,000 records of the day's mix on a large state changes more pages than a small cache
/// holds: SQLite writes some to the log before the commit (and again at it) and reads evicted
/// ones back from the file. With DynamoDB's eventIDs, which spread each batch's markers over
/// their whole tree (the `markers` module), 64 MiB took 2–4 % off the day against 48 MiB, for
/// 16 MiB more at the peak (BENCHMARKS.md).
pub const CACHE_KIB: u32 = 64 * 1024;

/// SQLite's page size for a new database, in bytes (a database keeps the size it was made
/// with): twice SQLite's default, so that the keys' B-trees are shallower and a replay's
/// searches and page splits fewer (measured in BENCHMARKS.md).
const PAGE_BYTES: u32 = 8192;

/// Pages of write-ahead log (64 MiB) after which a commit asks for them to be folded into the
/// database file (SQLite's default is 1,000 pages): a page written by many batches in between
/// is written back once. The [`Checkpointer`] does it, on a thread of its own.
const CHECKPOINT_PAGES: u32 = (64 << 20) / PAGE_BYTES;

/// Pages of write-ahead log (1 GiB) after which the commit folds the rest of it itself and
/// starts it over (the thread's checkpoints, beside the writer, never copy all of it). Each
/// time costs the batch a copy of the last commit's pages and a sync of the database file,
/// which at 256 MiB came every few batches of a large state; a read searches only the part
/// of the log not yet folded, so a longer log does not slow reads.
const RESTART_PAGES: u32 = 16 * CHECKPOINT_PAGES;

/// How many decoded items are kept, the most recently used.
pub const CACHED_ITEMS: usize = 16_384;

/// SQLite's name for a database in memory.
const IN_MEMORY: &str = ":memory:";

/// How long a read waits for another process's checkpoint before it gives up.
const BUSY_WAIT_MS: u32 = 5_000;

/// The schema, as `sqlite3` sees it, with the markers' tables (`markers::SCHEMA`);
/// docs/embedded-state.md explains both for readers.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS format (version TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tables (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key_schema TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    table_id INTEGER NOT NULL,
    pk BLOB NOT NULL,
    sk BLOB NOT NULL,
    item TEXT NOT NULL,
    UNIQUE (table_id, pk, sk)
);
CREATE TABLE IF NOT EXISTS index_entries (
    table_id INTEGER NOT NULL,
    index_name TEXT NOT NULL,
    pk BLOB NOT NULL,
    sk BLOB NOT NULL,
    item_pk BLOB NOT NULL,
    item_sk BLOB NOT NULL,
    PRIMARY KEY (table_id, index_name, pk, sk, item_pk, item_sk)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS unindexed (
    table_id INTEGER NOT NULL,
    index_name TEXT NOT NULL,
    PRIMARY KEY (table_id, index_name)
) WITHOUT ROWID;
CREATE VIEW IF NOT EXISTS table_items AS
    SELECT tables.name AS table_name, items.item AS item
    FROM items JOIN tables ON tables.id = items.table_id;
";

/// A table's or an index's key attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySchema {
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
}

/// A table's key and its global secondary indexes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    pub key: KeySchema,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub indexes: BTreeMap<String, KeySchema>,
}

/// One write of a set handed over at once. Its item may be lent: the database stores it as
/// text and copies it only to keep it decoded in its cache (an item read and written again),
/// so an item only ever written (a record's new item, an audit item) is never copied.
#[derive(Debug, Clone, PartialEq)]
pub enum Write<'i> {
    /// Put the item, replacing the one with its key.
    Put(Cow<'i, Item>),
    /// Delete the item with this key (anything else in it is ignored).
    Delete(Cow<'i, Item>),
}

impl Write<'static> {
    /// Put `item`, handed over.
    pub fn put(item: Item) -> Self {
        Write::Put(Cow::Owned(item))
    }

    /// Delete the item with `key`, handed over.
    pub fn delete(key: Item) -> Self {
        Write::Delete(Cow::Owned(key))
    }
}

/// A condition on a query's sort key.
#[derive(Debug, Clone, PartialEq)]
pub enum SortCondition {
    /// `begins_with(sk, prefix)`: a string or binary prefix.
    BeginsWith(AttributeValue),
    /// `sk >= value`.
    AtLeast(AttributeValue),
}

/// One partition of a table or an index.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyQuery<'a> {
    pub table: &'a str,
    pub index: Option<&'a str>,
    /// The partition key's value.
    pub partition: &'a AttributeValue,
    pub sort: Option<SortCondition>,
    /// Ascending sort-key order when true (DynamoDB's ScanIndexForward).
    pub ascending: bool,
}

struct Table {
    id: i64,
    schema: TableSchema,
    /// Indexes whose entries are not kept yet (the `unindexed` table): a table's indexes are
    /// made at their first query ([`Database::query`]), so that a replay that never queries
    /// one (nearly every replay: only `reconcile ratings` does) never writes its entries.
    unindexed: BTreeSet<String>,
}

impl Table {
    /// The indexes whose entries are kept, and their keys.
    fn kept_indexes(&self) -> impl Iterator<Item = (&String, &KeySchema)> {
        (self.schema.indexes.iter()).filter(|(index, _)| !self.unindexed.contains(*index))
    }
}

/// An item's place: its partition and sort key bytes (empty without a sort key).
type Place = (Vec<u8>, Vec<u8>);

pub struct Database {
    path: PathBuf,
    connection: Connection,
    writable: bool,
    /// A batch's transaction is open.
    in_batch: bool,
    /// A write of this batch failed part way and the batch was undone.
    abandoned: bool,
    tables: HashMap<String, Arc<Table>>,
    /// Items by table id and place, as last read or written (the database's own, committed
    /// or in the open batch).
    cache: lru::LruCache<(i64, Place), Item>,
    /// Folds the write-ahead log into the file while batches run (a database open for
    /// writing); dropped after the connection, whose last commit it may still be folding.
    checkpointer: Option<Checkpointer>,
    /// Flushing the log of the last commit to disk, while the next batch runs
    /// ([`Database::commit_in_background`]).
    flushing: Option<Flush>,
    markers: Markers,
}

/// The flush of a commit's log to disk, on a thread of its own; clones wait for the same one.
#[derive(Clone)]
pub struct Flush {
    path: Arc<Path>,
    /// Set once the flush ended: its error, if any.
    done: Arc<OnceLock<Result<(), String>>>,
}

impl Flush {
    /// Nothing to flush: done already.
    fn done(path: &Path) -> Flush {
        Flush {
            path: Arc::from(path),
            done: Arc::new(OnceLock::from(Ok(()))),
        }
    }

    /// Flush the log of the database at `path` to disk, on a thread (here, should no thread
    /// start).
    fn start(path: &Path) -> Flush {
        let flush = Flush {
            path: Arc::from(path),
            done: Arc::new(OnceLock::new()),
        };
        let log = wal_path(path);
        let done = flush.done.clone();
        let sync = move || {
            let flushed = std::fs::File::open(&log).and_then(|file| file.sync_data());
            let _ = done.set(flushed.map_err(|e| format!("{}: {e}", log.display())));
        };
        let started = std::thread::Builder::new()
            .name("flush".into())
            .spawn(sync.clone());
        if started.is_err() {
            sync();
        }
        flush
    }

    /// Wait until the commit is on disk.
    pub fn wait(&self) -> Result<(), TablesError> {
        self.done
            .wait()
            .clone()
            .map_err(|message| TablesError::NotDurable {
                path: self.path.to_path_buf(),
                message,
            })
    }
}

impl Database {
    /// Open the database at `path` for reading and writing, creating it if need be.
    pub fn open(path: &Path) -> Result<Database, TablesError> {
        let mut database = Self::create(path)?;
        database.start_checkpointer()?;
        Ok(database)
    }

    /// A database in this process's memory only, empty, gone when dropped: the same tables and
    /// rules, no file and no log (a scratch state, such as the fuzz target's).
    pub fn open_in_memory() -> Result<Database, TablesError> {
        Self::create(Path::new(IN_MEMORY))
    }

    /// Open or create the database at `path` (or [`IN_MEMORY`]) with its schema.
    fn create(path: &Path) -> Result<Database, TablesError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut connection =
            Connection::open_with_flags(path, flags).map_err(|e| storage(path, "open", e))?;
        connection
            .execute_batch(&format!(
                "PRAGMA page_size={PAGE_BYTES}; PRAGMA journal_mode=WAL; \
                 PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}; \
                 PRAGMA cache_size=-{CACHE_KIB}; PRAGMA busy_timeout={BUSY_WAIT_MS}; {SCHEMA} {}",
                markers::SCHEMA
            ))
            .map_err(|e| storage(path, "create the schema", e))?;
        let found: Option<String> = connection
            .query_row("SELECT version FROM format", [], |row| row.get(0))
            .optional()
            .map_err(|e| storage(path, "read the format", e))?;
        match found {
            None => {
                connection
                    .execute("INSERT INTO format (version) VALUES (?1)", [FORMAT])
                    .map_err(|e| storage(path, "write the format", e))?;
            }
            Some(found)
                if found == FORMAT_WITHOUT_MARKERS
                    || found == FORMAT_WITHOUT_RECENT_MARKERS
                    || found == FORMAT_EVERY_INDEX_KEPT =>
            {
                // The schema above added the markers' tables (or the recent one) and the
                // `unindexed` table, empty: every index's entries are kept. Nothing else
                // changed.
                connection
                    .execute("UPDATE format SET version = ?1", [FORMAT])
                    .map_err(|e| storage(path, "write the format", e))?;
            }
            Some(found) if found == FORMAT_MARKERS_BY_NAME => {
                let converted = connection
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .and_then(|transaction| {
                        markers::convert_format_2(&transaction)?;
                        transaction.execute("UPDATE format SET version = ?1", [FORMAT])?;
                        transaction.commit()
                    });
                converted.map_err(|e| storage(path, "convert the markers of format 2", e))?;
            }
            Some(found) => check_format(path, found)?,
        }
        Self::with(path, connection, true)
    }

    /// Fold the write-ahead log on a thread of its own from now on, in place of SQLite's
    /// checkpoint in the commit (the hook replaces it; without the thread, SQLite's stays).
    fn start_checkpointer(&mut self) -> Result<(), TablesError> {
        if self.in_memory() {
            return Ok(()); // no log to fold
        }
        let checkpointer = Checkpointer::start(
            &self.path,
            std::time::Duration::from_millis(BUSY_WAIT_MS.into()),
        );
        if let Some(waker) = checkpointer.as_ref().map(Checkpointer::waker) {
            self.connection
                .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages| {
                    if pages >= RESTART_PAGES as i32 {
                        // Copies what the thread has not, and starts the log over. A failure
                        // (a reader holding the log) leaves it to the next commit.
                        let _ = wal.checkpoint_v2(rusqlite::wal::CheckpointMode::RESTART);
                    } else if pages >= CHECKPOINT_PAGES as i32 {
                        waker.wake();
                    }
                    Ok(())
                }))
                .map_err(|e| storage(&self.path, "configure", e))?;
        }
        self.checkpointer = checkpointer;
        Ok(())
    }

    /// Open the database at `path` for reading only, while another process may write it: what
    /// that process committed last is what is read.
    pub fn open_read_only(path: &Path) -> Result<Database, TablesError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection =
            Connection::open_with_flags(path, flags).map_err(|e| storage(path, "open", e))?;
        connection
            .execute_batch(&format!(
                "PRAGMA cache_size=-{CACHE_KIB}; PRAGMA busy_timeout={BUSY_WAIT_MS};"
            ))
            .map_err(|e| storage(path, "configure", e))?;
        let found: String = connection
            .query_row("SELECT version FROM format", [], |row| row.get(0))
            .map_err(|e| storage(path, "read the format", e))?;
        // Earlier formats differ in their markers only, which reading does not use.
        if !FORMATS_READ_ALIKE.contains(&found.as_str()) {
            check_format(path, found)?;
        }
        Self::with(path, connection, false)
    }

    fn with(path: &Path, connection: Connection, writable: bool) -> Result<Database, TablesError> {
        // Every statement this module runs, prepared once (the default keeps 16).
        connection.set_prepared_statement_cache_capacity(64);
        // A statement's plan does not depend on the values bound to it: without this, SQLite
        // prepares a query with a sort-key range again at every run (a twentieth of a replay).
        connection
            .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .map_err(|e| storage(path, "configure", e))?;
        let mut database = Database {
            path: path.to_path_buf(),
            connection,
            writable,
            in_batch: false,
            abandoned: false,
            tables: HashMap::new(),
            cache: lru::LruCache::new(
                std::num::NonZeroUsize::new(CACHED_ITEMS).unwrap_or(std::num::NonZeroUsize::MIN),
            ),
            checkpointer: None,
            flushing: None,
            markers: Markers::new(),
        };
        database.tables = database.read_tables()?;
        Ok(database)
    }

    fn read_tables(&self) -> Result<HashMap<String, Arc<Table>>, TablesError> {
        let fail = |e| storage(&self.path, "read the tables", e);
        let mut statement = self
            .connection
            .prepare("SELECT id, name, key_schema FROM tables")
            .map_err(fail)?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .map_err(fail)?;
        let mut unindexed = self.read_unindexed()?;
        let mut tables = HashMap::new();
        for row in rows {
            let (id, name, schema) = row.map_err(fail)?;
            let schema: TableSchema =
                serde_json::from_str(&schema).map_err(|e| TablesError::Corrupt {
                    table: name.clone(),
                    message: format!("its key schema: {e}"),
                })?;
            let unindexed = unindexed.remove(&id).unwrap_or_default();
            tables.insert(
                name,
                Arc::new(Table {
                    id,
                    schema,
                    unindexed,
                }),
            );
        }
        Ok(tables)
    }

    /// The indexes whose entries are not kept yet, by table id (none in a format before the
    /// `unindexed` table, read as it is).
    fn read_unindexed(&self) -> Result<HashMap<i64, BTreeSet<String>>, TablesError> {
        let fail = |e| storage(&self.path, "read the tables", e);
        let mut unindexed: HashMap<i64, BTreeSet<String>> = HashMap::new();
        let exists: bool = (self.connection)
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' \
                 AND name = 'unindexed')",
                [],
                |row| row.get(0),
            )
            .map_err(fail)?;
        if !exists {
            return Ok(unindexed);
        }
        let mut statement = (self.connection)
            .prepare("SELECT table_id, index_name FROM unindexed")
            .map_err(fail)?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(fail)?;
        for row in rows {
            let (id, index) = row.map_err(fail)?;
            unindexed.entry(id).or_default().insert(index);
        }
        Ok(unindexed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key schema of `table`, if it is defined.
    pub fn schema(&self, table: &str) -> Option<&TableSchema> {
        self.tables.get(table).map(|t| &t.schema)
    }

    /// Every defined table and its schema.
    pub fn schemas(&self) -> impl Iterator<Item = (&str, &TableSchema)> {
        self.tables.iter().map(|(n, t)| (n.as_str(), &t.schema))
    }

    /// Define `table` with `schema`. A table defined with another schema is redefined, its
    /// items placed again by the new key (refused, and nothing changed, when one of them has
    /// no value for it). Its indexes' entries are made at their first query.
    pub fn define(&mut self, table: &str, schema: &TableSchema) -> Result<(), TablesError> {
        if self.schema(table) == Some(schema) {
            return Ok(());
        }
        self.begin()?;
        let text = serde_json::to_string(schema).unwrap_or_default();
        let fail = |e| storage(&self.path, "define a table", e);
        match self.tables.get(table).cloned() {
            None => {
                self.connection
                    .execute(
                        "INSERT INTO tables (name, key_schema) VALUES (?1, ?2)",
                        params![table, text],
                    )
                    .map_err(fail)?;
                let id = self.connection.last_insert_rowid();
                let unindexed = self.unindexed(id, schema)?;
                self.tables.insert(
                    table.to_string(),
                    Arc::new(Table {
                        id,
                        schema: schema.clone(),
                        unindexed,
                    }),
                );
                Ok(())
            }
            Some(old) => {
                let items = self.scan_all(table)?;
                let places = items
                    .iter()
                    .map(|item| place(table, &schema.key, item))
                    .collect::<Result<Vec<_>, _>>()?;
                // The items go to other places: none of the cached ones is where it was (and
                // `insert` takes a cached item as one that is there).
                self.cache.clear();
                let new = self.in_savepoint(|db| {
                    let fail = |e| storage(&db.path, "define a table", e);
                    for statement in [
                        "DELETE FROM items WHERE table_id = ?1",
                        "DELETE FROM index_entries WHERE table_id = ?1",
                    ] {
                        db.connection.execute(statement, [old.id]).map_err(fail)?;
                    }
                    db.connection
                        .execute(
                            "UPDATE tables SET key_schema = ?2 WHERE id = ?1",
                            params![old.id, text],
                        )
                        .map_err(fail)?;
                    let new = Table {
                        id: old.id,
                        schema: schema.clone(),
                        unindexed: db.unindexed(old.id, schema)?,
                    };
                    for (item, place) in items.iter().zip(places) {
                        db.insert(table, &new, &(new.id, place), item)?;
                    }
                    Ok(new)
                })?;
                self.tables.insert(table.to_string(), Arc::new(new));
                Ok(())
            }
        }
    }

    /// Mark every index of `schema` for the table `id` as not kept yet (in the open batch).
    fn unindexed(&self, id: i64, schema: &TableSchema) -> Result<BTreeSet<String>, TablesError> {
        let fail = |e| storage(&self.path, "define a table", e);
        (self.connection)
            .execute("DELETE FROM unindexed WHERE table_id = ?1", [id])
            .map_err(fail)?;
        for index in schema.indexes.keys() {
            (self.connection)
                .execute(
                    "INSERT INTO unindexed (table_id, index_name) VALUES (?1, ?2)",
                    params![id, index],
                )
                .map_err(fail)?;
        }
        Ok(schema.indexes.keys().cloned().collect())
    }

    /// Make the entries of `table`'s `index`, not kept until now, from every item of the
    /// table, in the open batch (an undone batch leaves it not kept: [`Database::abandon`]
    /// reads the tables again). Kept from then on with every write.
    fn make_index(&mut self, table: &str, index: &str) -> Result<(), TablesError> {
        let Some(t) = self.tables.get(table).cloned() else {
            return Ok(());
        };
        let Some(key) = t.schema.indexes.get(index) else {
            return Ok(());
        };
        if !self.writable {
            return Err(TablesError::IndexNotMade {
                table: table.to_string(),
                index: index.to_string(),
            });
        }
        self.begin()?;
        // No savepoint (it would copy aside every page the entries fill): a failure undoes
        // the whole batch instead, as a failed write does.
        let made = self
            .scan(table, &mut |item| match place_in_index(key, &item) {
                // An item without the index's key attributes is not in it (a sparse index).
                None => Ok(()),
                Some(entry) => {
                    let at = place(table, &t.schema.key, &item)?;
                    self.add_index_entry(t.id, index, &entry, &at)
                }
            })
            .and_then(|()| {
                (self.connection)
                    .execute(
                        "DELETE FROM unindexed WHERE table_id = ?1 AND index_name = ?2",
                        params![t.id, index],
                    )
                    .map(|_| ())
                    .map_err(|e| storage(&self.path, "make an index", e))
            });
        if let Err(error) = made {
            self.abandon();
            return Err(error);
        }
        let mut unindexed = t.unindexed.clone();
        unindexed.remove(index);
        let kept = Table {
            id: t.id,
            schema: t.schema.clone(),
            unindexed,
        };
        self.tables.insert(table.to_string(), Arc::new(kept));
        Ok(())
    }

    /// The item of `table` with `key`'s key attributes.
    pub fn get(&mut self, table: &str, key: &Item) -> Result<Option<Item>, TablesError> {
        self.get_with(table, key, |item| item.cloned())
    }

    /// What `read` makes of the item of `table` with `key`'s key attributes, lent rather than
    /// copied (a condition to check reads it and keeps nothing).
    pub fn get_with<R>(
        &mut self,
        table: &str,
        key: &Item,
        read: impl FnOnce(Option<&Item>) -> R,
    ) -> Result<R, TablesError> {
        self.check_not_abandoned()?;
        let t = self.table(table)?.clone();
        let place = place(table, &t.schema.key, key)?;
        let cached = (t.id, place);
        if let Some(item) = self.cache.get(&cached) {
            return Ok(read(Some(item)));
        }
        let found = self.item_at(table, t.id, &cached.1 .0, &cached.1 .1)?;
        let result = read(found.as_ref());
        if let Some(item) = found {
            self.cache.put(cached, item);
        }
        Ok(result)
    }

    fn item_at(
        &self,
        table: &str,
        id: i64,
        pk: &[u8],
        sk: &[u8],
    ) -> Result<Option<Item>, TablesError> {
        let fail = |e| storage(&self.path, "read an item", e);
        let mut statement = self
            .connection
            .prepare_cached("SELECT item FROM items WHERE table_id = ?1 AND pk = ?2 AND sk = ?3")
            .map_err(fail)?;
        let text: Option<String> = statement
            .query_row(params![id, pk, sk], |row| row.get(0))
            .optional()
            .map_err(fail)?;
        text.map(|text| parse_item(table, &text)).transpose()
    }

    /// Apply `writes`, each to its table, all of them or (on an error) none. Every key is
    /// checked before anything changes.
    pub fn write(&mut self, writes: Vec<(String, Write<'_>)>) -> Result<(), TablesError> {
        let placed = self.place_all(writes)?;
        self.begin()?;
        self.apply(placed)
    }

    /// Apply `writes` and set the marker `name` to `value`, all of them or none, unless the
    /// marker is set: then nothing is written and its value is returned. A marker is one
    /// short row, not an item with a key and JSON, added where names in no order cost least
    /// (the `markers` module).
    pub fn write_if_unmarked(
        &mut self,
        name: &str,
        value: &str,
        writes: Vec<(String, Write<'_>)>,
    ) -> Result<Option<String>, TablesError> {
        let placed = self.place_all(writes)?;
        self.begin()?;
        let set = (self.markers.find(&self.connection, name)).and_then(|found| match found {
            Found::Set { value, .. } => Ok(Some(value)),
            Found::Unset(by) => (self.markers)
                .add(&self.connection, name, value, by)
                .map(|()| None),
        });
        match set {
            Ok(None) => self.apply(placed).map(|()| None),
            Ok(found) => Ok(found),
            Err(error) => {
                self.abandon();
                Err(storage(&self.path, "write a marker", error))
            }
        }
    }

    /// The value of the marker `name`, if it is set ([`Database::write_if_unmarked`],
    /// [`Database::set_marker`]).
    pub fn marker(&self, name: &str) -> Result<Option<String>, TablesError> {
        self.check_not_abandoned()?;
        match markers::find(&self.connection, name) {
            Ok(Found::Set { value, .. }) => Ok(Some(value)),
            Ok(Found::Unset(_)) => Ok(None),
            Err(error) => Err(storage(&self.path, "read a marker", error)),
        }
    }

    /// Look up the markers of `names` at once, before the batch sets them one by one
    /// ([`Database::write_if_unmarked`]): searches in the order of the names' hashes share the
    /// pages that a search per name, in the order records come, reads again each time. What
    /// is found holds until the batch's commit.
    pub fn look_up_markers<'n>(
        &mut self,
        names: impl Iterator<Item = &'n str>,
    ) -> Result<(), TablesError> {
        if !self.writable {
            return Err(TablesError::ReadOnly);
        }
        self.check_not_abandoned()?;
        (self.markers)
            .look_up(&self.connection, names)
            .map_err(|e| storage(&self.path, "look up markers", e))
    }

    /// Set the marker `name` to `value` in the open batch, whether it was set or not.
    pub fn set_marker(&mut self, name: &str, value: &str) -> Result<(), TablesError> {
        if !self.writable {
            return Err(TablesError::ReadOnly);
        }
        self.begin()?;
        let set = (self.markers.find(&self.connection, name)).and_then(|found| match found {
            Found::Set { id, .. } => markers::replace(&self.connection, id, value),
            Found::Unset(by) => self.markers.add(&self.connection, name, value, by),
        });
        set.map_err(|e| storage(&self.path, "write a marker", e))
            .inspect_err(|_| self.abandon())
    }

    /// Each of `writes` with its table and place; an error for the first key that cannot be
    /// placed, before anything changes.
    fn place_all<'i>(
        &self,
        writes: Vec<(String, Write<'i>)>,
    ) -> Result<Vec<Placed<'i>>, TablesError> {
        if !self.writable {
            return Err(TablesError::ReadOnly);
        }
        let mut placed = Vec::with_capacity(writes.len());
        for (table, write) in writes {
            let t = self.table(&table)?.clone();
            let (Write::Put(item) | Write::Delete(item)) = &write;
            let place = place(&table, &t.schema.key, item)?;
            placed.push((table, t, place, write));
        }
        Ok(placed)
    }

    /// Apply placed writes in the open batch.
    fn apply(&mut self, placed: Vec<Placed<'_>>) -> Result<(), TablesError> {
        // No savepoint around the set: SQLite copies every page a savepoint touches aside (a
        // third of a replay's time). A set fails part way only when SQLite does (a full disk,
        // a damaged file), and then the whole batch is undone instead (see `abandon`).
        for (table, t, place, write) in placed {
            let cached = (t.id, place);
            let applied = match &write {
                Write::Put(item) => self.insert(&table, &t, &cached, item),
                Write::Delete(_) => self.remove(&table, &t, &cached).map(|()| false),
            };
            let replaced = match applied {
                Ok(replaced) => replaced,
                // `abandon` empties the cache, the items of this set put in it included.
                Err(error) => {
                    self.abandon();
                    return Err(error);
                }
            };
            // Kept decoded: an item cached already or written over (state read and written
            // again, a profile changed often); not one only ever written (audit items,
            // markers), which would push out the items read again.
            match write {
                Write::Put(item) if replaced || self.cache.contains(&cached) => {
                    self.cache.put(cached, item.into_owned());
                }
                Write::Put(_) => {}
                Write::Delete(_) => {
                    self.cache.pop(&cached);
                }
            }
        }
        Ok(())
    }

    /// Put `item` at `cached`'s place, keeping the table's indexes; true when it replaced an
    /// item.
    fn insert(
        &self,
        table: &str,
        t: &Table,
        cached: &(i64, Place),
        item: &Item,
    ) -> Result<bool, TablesError> {
        let text = item_text(table, item)?;
        let place = &cached.1;
        // A cached item is there (the cache holds the database's items): it is written over
        // in place, its index entries read from it. Any other item is tried as a new one
        // first: most are (audit items, history, markers), and a new item has no index
        // entries to remove, so the one it replaces need not be read.
        if !self.cache.contains(cached) && self.insert_if_absent(t, place, item, &text)? {
            return Ok(false);
        }
        // Where its index entries are now, read only if the table has indexes.
        let old = match t.kept_indexes().next().is_none() {
            true => None,
            false => self.item_now(table, t, cached)?,
        };
        let fail = |e| storage(&self.path, "write an item", e);
        let updated = self
            .connection
            .prepare_cached(
                "UPDATE items SET item = ?4 WHERE table_id = ?1 AND pk = ?2 AND sk = ?3",
            )
            .map_err(fail)?
            .execute(params![t.id, place.0, place.1, text])
            .map_err(fail)?;
        if updated == 0 {
            // Not there after all (a cache that outlived its item would be a bug here, and
            // must not lose the write).
            return self
                .insert_if_absent(t, place, item, &text)
                .map(|inserted| !inserted);
        }
        self.reindex(t, place, old.as_deref(), Some(item))?;
        Ok(true)
    }

    /// The item at `cached`'s place as the database has it: the cached one, or read.
    fn item_now(
        &self,
        table: &str,
        t: &Table,
        cached: &(i64, Place),
    ) -> Result<Option<Cow<'_, Item>>, TablesError> {
        if let Some(item) = self.cache.peek(cached) {
            return Ok(Some(Cow::Borrowed(item)));
        }
        let (pk, sk) = &cached.1;
        Ok(self.item_at(table, t.id, pk, sk)?.map(Cow::Owned))
    }

    /// Put `item` (as `text`) at `place` with its index entries if no item is there; false
    /// (and nothing written) if one is.
    fn insert_if_absent(
        &self,
        t: &Table,
        place: &Place,
        item: &Item,
        text: &str,
    ) -> Result<bool, TablesError> {
        let fail = |e| storage(&self.path, "write an item", e);
        let inserted = self
            .connection
            .prepare_cached(
                "INSERT INTO items (table_id, pk, sk, item) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT DO NOTHING",
            )
            .map_err(fail)?
            .execute(params![t.id, place.0, place.1, text])
            .map_err(fail)?
            == 1;
        if inserted {
            self.reindex(t, place, None, Some(item))?;
        }
        Ok(inserted)
    }

    /// Move the index entries of the item at `place` from where `old` had them to where `new`
    /// has them; an entry in the same place in both stays as it is (a thread's, whose index
    /// key is its table key). An item without an index's key attributes is not in that index
    /// (a sparse index).
    fn reindex(
        &self,
        t: &Table,
        place: &Place,
        old: Option<&Item>,
        new: Option<&Item>,
    ) -> Result<(), TablesError> {
        let fail = |e| storage(&self.path, "write an index", e);
        for (index, schema) in t.kept_indexes() {
            let was = old.and_then(|old| place_in_index(schema, old));
            let now = new.and_then(|new| place_in_index(schema, new));
            if was == now {
                continue;
            }
            if let Some((ipk, isk)) = was {
                self.connection
                    .prepare_cached(
                        "DELETE FROM index_entries WHERE table_id = ?1 AND index_name = ?2 \
                         AND pk = ?3 AND sk = ?4 AND item_pk = ?5 AND item_sk = ?6",
                    )
                    .map_err(fail)?
                    .execute(params![t.id, index, ipk, isk, place.0, place.1])
                    .map_err(fail)?;
            }
            if let Some(entry) = now {
                self.add_index_entry(t.id, index, &entry, place)?;
            }
        }
        Ok(())
    }

    /// Put the entry of the item at `place` in the index `index` of the table `table_id`,
    /// at `entry` (the item's place in the index).
    fn add_index_entry(
        &self,
        table_id: i64,
        index: &str,
        entry: &Place,
        place: &Place,
    ) -> Result<(), TablesError> {
        self.connection
            .prepare_cached(
                "INSERT OR REPLACE INTO index_entries \
                 (table_id, index_name, pk, sk, item_pk, item_sk) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut add| {
                add.execute(params![table_id, index, entry.0, entry.1, place.0, place.1])
            })
            .map(|_| ())
            .map_err(|e| storage(&self.path, "write an index", e))
    }

    /// Delete the item at `cached`'s place and its index entries.
    fn remove(&self, table: &str, t: &Table, cached: &(i64, Place)) -> Result<(), TablesError> {
        let place = &cached.1;
        if t.kept_indexes().next().is_some() {
            let old = self.item_now(table, t, cached)?;
            self.reindex(t, place, old.as_deref(), None)?;
        }
        let fail = |e| storage(&self.path, "delete an item", e);
        self.connection
            .prepare_cached("DELETE FROM items WHERE table_id = ?1 AND pk = ?2 AND sk = ?3")
            .map_err(fail)?
            .execute(params![t.id, place.0, place.1])
            .map_err(fail)?;
        Ok(())
    }

    /// The items of one partition of a table or an index, in sort-key order (an index's
    /// items with equal sort keys in the table's key order).
    pub fn query(&mut self, query: &KeyQuery) -> Result<Vec<Item>, TablesError> {
        self.check_not_abandoned()?;
        let t = self.table(query.table)?.clone();
        let bad = |problem| TablesError::BadKey {
            table: query.table.to_string(),
            attribute: "(query)".to_string(),
            problem,
        };
        let pk = sortable_key::encode(query.partition)
            .ok_or_else(|| bad("partition value must be a non-empty S, N or B value"))?;
        // (lower bound, upper bound) on the sort key bytes.
        let (from, until) = match &query.sort {
            None => (Vec::new(), None),
            Some(SortCondition::AtLeast(value)) => (
                sortable_key::encode(value)
                    .ok_or_else(|| bad("sort value must be a non-empty S, N or B value"))?,
                None,
            ),
            Some(SortCondition::BeginsWith(value)) => {
                let prefix = sortable_key::prefix(value)
                    .ok_or_else(|| bad("begins_with takes a string or binary value"))?;
                let until = sortable_key::after_prefix(&prefix);
                (prefix, until)
            }
        };
        if let Some(index) = query.index.filter(|index| t.unindexed.contains(*index)) {
            self.make_index(query.table, index)?;
        }
        let order = if query.ascending { "ASC" } else { "DESC" };
        let upper = if until.is_some() { "AND e.sk < ?5" } else { "" };
        // ?2, the index, is bound for both forms (SQLite numbers parameters up to the largest
        // used); the table's own form does not read it.
        let (sql, index) = match query.index {
            None => (
                format!(
                    "SELECT e.pk, e.sk, e.item FROM items e WHERE e.table_id = ?1 AND e.pk = ?3 \
                     AND e.sk >= ?4 {upper} ORDER BY e.sk {order}"
                ),
                "",
            ),
            Some(index) => {
                if !t.schema.indexes.contains_key(index) {
                    return Err(TablesError::UnknownIndex {
                        table: query.table.to_string(),
                        index: index.to_string(),
                    });
                }
                (
                    format!(
                        "SELECT i.pk, i.sk, i.item FROM index_entries e JOIN items i \
                         ON i.table_id = e.table_id AND i.pk = e.item_pk AND i.sk = e.item_sk \
                         WHERE e.table_id = ?1 AND e.index_name = ?2 AND e.pk = ?3 \
                         AND e.sk >= ?4 {upper} \
                         ORDER BY e.sk {order}, e.item_pk {order}, e.item_sk {order}"
                    ),
                    index,
                )
            }
        };
        let fail = |e| storage(&self.path, "query", e);
        let mut statement = self.connection.prepare_cached(&sql).map_err(fail)?;
        let mut rows = match &until {
            Some(until) => statement.query(params![t.id, index, pk, from, until]),
            None => statement.query(params![t.id, index, pk, from]),
        }
        .map_err(fail)?;
        let mut items = Vec::new();
        while let Some(row) = rows.next().map_err(fail)? {
            // Items are kept decoded, so that a partition read often (an estimation's line
            // items) is copied rather than parsed again. SQLite reads the item's text only
            // when asked for it.
            let cached = (t.id, (row.get(0).map_err(fail)?, row.get(1).map_err(fail)?));
            if let Some(item) = self.cache.get(&cached) {
                items.push(item.clone());
                continue;
            }
            let text = row.get_ref(2).map_err(fail)?;
            let text = text.as_str().map_err(|e| fail(e.into()))?;
            let item = parse_item(query.table, text)?;
            self.cache.put(cached, item.clone());
            items.push(item);
        }
        Ok(items)
    }

    /// Every item of `table` in key order, handed to `each` one at a time (a table larger
    /// than memory is never held whole); an error of `each` ends the scan with it.
    pub fn scan<E: From<TablesError>>(
        &self,
        table: &str,
        each: &mut dyn FnMut(Item) -> Result<(), E>,
    ) -> Result<(), E> {
        self.check_not_abandoned()?;
        let Some(t) = self.tables.get(table) else {
            return Ok(());
        };
        let fail = |e| storage(&self.path, "scan", e);
        let mut statement = self
            .connection
            .prepare_cached("SELECT item FROM items WHERE table_id = ?1 ORDER BY pk, sk")
            .map_err(fail)?;
        let mut rows = statement.query([t.id]).map_err(fail)?;
        while let Some(row) = rows.next().map_err(fail)? {
            let text: String = row.get(0).map_err(fail)?;
            each(parse_item(table, &text)?)?;
        }
        Ok(())
    }

    fn scan_all(&self, table: &str) -> Result<Vec<Item>, TablesError> {
        let mut items = Vec::new();
        self.scan(table, &mut |item| {
            items.push(item);
            Ok::<_, TablesError>(())
        })?;
        Ok(items)
    }

    /// How many items `table` holds.
    pub fn count(&self, table: &str) -> Result<u64, TablesError> {
        let Some(t) = self.tables.get(table) else {
            return Ok(0);
        };
        let count: i64 = self
            .connection
            .query_row(
                "SELECT COUNT(*) FROM items WHERE table_id = ?1",
                [t.id],
                |row| row.get(0),
            )
            .map_err(|e| storage(&self.path, "count items", e))?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// The tables that hold at least one item, by name.
    pub fn table_names(&self) -> Result<Vec<String>, TablesError> {
        let fail = |e| storage(&self.path, "list the tables", e);
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT name FROM tables t \
                 WHERE EXISTS (SELECT 1 FROM items i WHERE i.table_id = t.id) ORDER BY name",
            )
            .map_err(fail)?;
        let names = statement
            .query_map([], |row| row.get(0))
            .map_err(fail)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(fail)?;
        Ok(names)
    }

    /// End the batch: every write so far is durable, and seen by other processes. Refused
    /// when a write of the batch failed part way: the batch was undone and must run again.
    pub fn commit(&mut self) -> Result<(), TablesError> {
        self.commit_in_background()?.wait()
    }

    /// End the batch without waiting for the disk: every write so far is committed (seen by
    /// other processes, and kept whole if the process is killed) and flushed to disk by a
    /// thread of its own while the next batch runs. The [`Flush`] says when it is on disk;
    /// the next commit waits for it first and fails with its error.
    ///
    /// SQLite runs with `synchronous=NORMAL`, so its COMMIT writes the log without waiting
    /// for the disk; the flush here is the wait `synchronous=FULL` would make in the COMMIT,
    /// which took a fifth of the time of a replay in batches of 100.
    pub fn commit_in_background(&mut self) -> Result<Flush, TablesError> {
        self.wait_durable()?;
        if std::mem::take(&mut self.abandoned) {
            return Err(TablesError::BatchUndone {
                path: self.path.clone(),
            });
        }
        let wrote = self.in_batch;
        self.end_transaction()?;
        if !wrote || self.in_memory() {
            return Ok(Flush::done(&self.path));
        }
        let flush = Flush::start(&self.path);
        self.flushing = Some(flush.clone());
        Ok(flush)
    }

    /// Whether the database lives in this process's memory (no file, no log).
    fn in_memory(&self) -> bool {
        self.path == Path::new(IN_MEMORY)
    }

    /// COMMIT the batch's transaction, if one is open.
    fn end_transaction(&mut self) -> Result<(), TablesError> {
        if self.in_batch {
            if let Err(e) = self.connection.execute_batch("COMMIT") {
                // What the batch wrote may be gone with it.
                self.cache.clear();
                self.markers.undone();
                return Err(storage(&self.path, "commit", e));
            }
            self.in_batch = false;
        }
        self.markers.committed();
        Ok(())
    }

    /// Wait until every commit so far is on disk.
    pub fn wait_durable(&mut self) -> Result<(), TablesError> {
        match self.flushing.take() {
            Some(flush) => flush.wait(),
            None => Ok(()),
        }
    }

    /// Fold the write-ahead log into the database file (the end of a run): the state is one
    /// file again, and the log does not grow with the history.
    pub fn checkpoint(&mut self) -> Result<(), TablesError> {
        self.commit()?;
        // Its last fold first (a checkpoint waits for no other).
        self.checkpointer = None;
        // Busy (a reader, `state show`, holding the end of the log beyond the wait) leaves the
        // log to a later checkpoint: everything in it is committed all the same.
        self.connection
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| storage(&self.path, "checkpoint", e))?;
        // For what is written after.
        self.start_checkpointer()
    }

    /// Undo the whole batch after a write failed part way, so that no set of writes is kept
    /// in part; every read and write until [`Database::commit`] is refused, since what the
    /// batch did before is gone too.
    fn abandon(&mut self) {
        // A failed rollback leaves the transaction to SQLite, which ends it unfinished.
        let _ = self.connection.execute_batch("ROLLBACK");
        self.in_batch = false;
        self.abandoned = true;
        self.cache.clear();
        self.markers.undone();
        // The tables as committed: a table defined or an index made in the batch is undone
        // with it. Should they not be read, the batch's stay, refused until the commit.
        if let Ok(tables) = self.read_tables() {
            self.tables = tables;
        }
    }

    /// Refuse to go on with a batch that was undone.
    fn check_not_abandoned(&self) -> Result<(), TablesError> {
        if self.abandoned {
            return Err(TablesError::BatchUndone {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<(), TablesError> {
        if !self.writable {
            return Err(TablesError::ReadOnly);
        }
        self.check_not_abandoned()?;
        if !self.in_batch {
            self.connection
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| storage(&self.path, "begin a batch", e))?;
            self.in_batch = true;
        }
        Ok(())
    }

    /// Run `apply` so that its writes stay whole: on an error, none of them is kept.
    fn in_savepoint<T>(
        &mut self,
        apply: impl FnOnce(&Database) -> Result<T, TablesError>,
    ) -> Result<T, TablesError> {
        let fail = |e| storage(&self.path, "write", e);
        self.run_cached("SAVEPOINT writes").map_err(fail)?;
        match apply(self) {
            Ok(done) => self
                .run_cached("RELEASE writes")
                .map(|()| done)
                .map_err(|e| storage(&self.path, "write", e)),
            Err(error) => {
                // The error is the one to report; a failed rollback leaves the batch's
                // transaction to end without commit.
                let _ = self
                    .connection
                    .execute_batch("ROLLBACK TO writes; RELEASE writes");
                Err(error)
            }
        }
    }

    /// Run a statement without parameters, prepared once.
    fn run_cached(&self, sql: &str) -> Result<(), rusqlite::Error> {
        self.connection.prepare_cached(sql)?.execute([]).map(|_| ())
    }

    fn table(&self, table: &str) -> Result<&Arc<Table>, TablesError> {
        self.tables
            .get(table)
            .ok_or_else(|| TablesError::UnknownTable(table.to_string()))
    }
}

fn check_format(path: &Path, found: String) -> Result<(), TablesError> {
    if found == FORMAT {
        Ok(())
    } else {
        Err(TablesError::Format {
            path: path.to_path_buf(),
            found,
            expected: FORMAT,
        })
    }
}

/// Where `item` goes in a table keyed by `key`.
fn place(table: &str, key: &KeySchema, item: &Item) -> Result<Place, TablesError> {
    key_bytes(key, item).map_err(|(attribute, problem)| TablesError::BadKey {
        table: table.to_string(),
        attribute: attribute.to_string(),
        problem,
    })
}

/// Where `item` goes in an index, if it has the index's key attributes (an item without them
/// is not in the index: most items of a table with several sparse indexes are not in most, so
/// no error is built for them).
fn place_in_index(key: &KeySchema, item: &Item) -> Option<Place> {
    key_bytes(key, item).ok()
}

/// `item`'s key values under `key` as sortable bytes, or the key attribute that has none and
/// why.
fn key_bytes<'k>(key: &'k KeySchema, item: &Item) -> Result<Place, (&'k str, &'static str)> {
    let part = |name: &'k str| {
        let value = item.get(name).ok_or((name, "is missing"))?;
        sortable_key::encode(value).ok_or((name, "must be a non-empty S, N or B value"))
    };
    let pk = part(&key.hash)?;
    let sk = match &key.range {
        Some(range) => part(range)?,
        None => Vec::new(),
    };
    Ok((pk, sk))
}

/// A write, with its table and where its item goes.
type Placed<'i> = (String, Arc<Table>, Place, Write<'i>);

/// An item as the `items` table keeps it: DynamoDB JSON.
fn item_text(table: &str, item: &Item) -> Result<String, TablesError> {
    item_json(item).map_err(|e| TablesError::Corrupt {
        table: table.to_string(),
        message: e.to_string(),
    })
}

fn parse_item(table: &str, text: &str) -> Result<Item, TablesError> {
    serde_json::from_str(text).map_err(|e| TablesError::Corrupt {
        table: table.to_string(),
        message: e.to_string(),
    })
}

impl Drop for Database {
    /// A database is not closed before its last commit is on disk.
    fn drop(&mut self) {
        let _ = self.wait_durable();
    }
}

/// SQLite's write-ahead log of the database at `path`.
fn wal_path(path: &Path) -> PathBuf {
    let mut log = path.as_os_str().to_owned();
    log.push("-wal");
    PathBuf::from(log)
}

fn storage(path: &Path, operation: &'static str, source: rusqlite::Error) -> TablesError {
    match source.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            TablesError::Busy {
                path: path.to_path_buf(),
            }
        }
        _ => TablesError::Storage {
            path: path.to_path_buf(),
            operation,
            source,
        },
    }
}

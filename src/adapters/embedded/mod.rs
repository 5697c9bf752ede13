//! The embedded adapter: tables, objects and mail in a local state directory, with
//! DynamoDB's semantics for every operation the ports offer. The default for `replay`.
//!
//! Layout of the state directory (default `.replay/`):
//! - `state.sqlite` (with `-wal` and `-shm` while in use): the tables, one SQLite database
//!   (the `embedded-tables` crate; [`store`] keeps it in step with the catalog; its schema is
//!   in docs/embedded-state.md)
//! - `objects/<bucket>/<key>`: S3 objects as plain files
//! - `outbox/*.eml`: every mail sent, as a message a mail client opens
//! - `parked/*.json`: records a reaction could never succeed with, each an event file `replay`
//!   takes once the data or the code is fixed
//! - `.lock`: held while a process uses the directory

mod earlier_format;
mod eml;
mod expr;
mod files;
mod store;

use std::borrow::Cow;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use handlers::ports::{
    Condition, Link, Mail, Mailer, Object, Objects, Query, Tables, TransactItem, Update,
    WriteRequest,
};
use handlers::{Item, PortError};
use thiserror::Error;

use crate::adapters::atomic_file::write_atomic;
use crate::adapters::{Applied, ChangeApplier, ParkedRecord, Parking};
use crate::catalog::{Catalog, KeySchema};
pub use embedded_tables::Flush;
use embedded_tables::{TablesError, Write};
use handlers::item::string_key;
use handlers::{AttributeValue, Change, ChangeKind};
use store::{key_names, Kept, Store};

#[derive(Debug, Error)]
pub enum StateError {
    #[error("state directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state directory {dir} was written by an earlier version and could not be converted: {message}")]
    Convert { dir: PathBuf, message: String },
    #[error("state directory {dir}: {source}")]
    Tables {
        dir: PathBuf,
        #[source]
        source: Box<embedded_tables::TablesError>,
    },
    #[error("state directory {0} is in use by another ddb-stream-worker process")]
    Locked(PathBuf),
    #[error("refusing to empty {0}: it does not look like a replay state directory (no tables/, objects/, outbox/ or journal.jsonl)")]
    NotAStateDir(PathBuf),
}

pub struct EmbeddedState {
    root: PathBuf,
    store: Mutex<Store>,
    /// This process's run, on every applied record's marker: a record repeated in one run is
    /// told apart from one an earlier run applied, without a set of them in memory.
    run: String,
    /// The state keeps markers of an earlier version as items of [`APPLIED_TABLE`], which a
    /// record is looked up in too.
    item_markers: bool,
    /// Held for the life of the value: one process per state directory.
    _lock: Option<File>,
}

impl EmbeddedState {
    /// Open (creating) the state at `root` for reading and writing. `fresh` empties it first.
    pub fn open(root: &Path, catalog: Catalog, fresh: bool) -> Result<EmbeddedState, StateError> {
        Self::open_as(root, catalog, fresh, Kept::OnDisk)
    }

    /// A fresh state at `root` whose tables live in this process's memory only (objects, mail
    /// and parked records are files under `root` as always): for the fuzz target's body, which
    /// runs each of a million inputs on a state of its own and keeps none of them.
    pub fn open_scratch(root: &Path, catalog: Catalog) -> Result<EmbeddedState, StateError> {
        Self::open_as(root, catalog, true, Kept::InMemory)
    }

    fn open_as(
        root: &Path,
        catalog: Catalog,
        fresh: bool,
        kept: Kept,
    ) -> Result<EmbeddedState, StateError> {
        let io = |source| StateError::Io {
            dir: root.to_path_buf(),
            source,
        };
        if fresh && root.exists() {
            empty_state_dir(root)?;
        }
        fs::create_dir_all(root).map_err(io)?;
        let lock = File::create(root.join(".lock")).map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StateError::Locked(root.to_path_buf()))
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        know_applied_table(&catalog);
        if earlier_format::is_earlier(root) {
            earlier_format::convert(root, &catalog).map_err(|message| StateError::Convert {
                dir: root.to_path_buf(),
                message,
            })?;
        }
        let mut store =
            Store::open(root, catalog, kept).map_err(|source| tables_error(root, source))?;
        let item_markers = store.has_table(APPLIED_TABLE);
        let run = next_run(&mut store, item_markers).map_err(|message| StateError::Io {
            dir: root.to_path_buf(),
            source: std::io::Error::other(message),
        })?;
        Ok(EmbeddedState {
            root: root.to_path_buf(),
            store: Mutex::new(store),
            run,
            item_markers,
            _lock: Some(lock),
        })
    }

    /// Open for reading only (`state show`); takes no lock and writes nothing, but for a state
    /// an earlier version wrote, which is converted first (as [`EmbeddedState::open`] does).
    pub fn open_read_only(root: &Path, catalog: Catalog) -> Result<EmbeddedState, StateError> {
        if earlier_format::is_earlier(root) {
            drop(Self::open(root, catalog.clone(), false)?);
        }
        know_applied_table(&catalog);
        let store = Store::open(root, catalog, Kept::ReadOnly)
            .map_err(|source| tables_error(root, source))?;
        Ok(EmbeddedState {
            root: root.to_path_buf(),
            store: Mutex::new(store),
            // Reading applies no record.
            run: String::new(),
            item_markers: false,
            _lock: None,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Make all writes so far durable.
    pub fn sync(&self) -> Result<(), StateError> {
        self.with_database(Store::sync)
    }

    /// End a batch, or a group of batches committed together: all writes so far are
    /// committed (whole after a crash of the process, seen by `state show`), and on disk once
    /// the [`Flush`] says so, which the next commit and the run's end
    /// ([`EmbeddedState::compact`]) wait for.
    pub fn commit(&self) -> Result<Flush, StateError> {
        self.with_database(Store::commit)
    }

    /// Fold the database's write-ahead log into its file (end of a run).
    pub fn compact(&self) -> Result<(), StateError> {
        self.with_database(Store::checkpoint)
    }

    /// `f` on the store, its database's error as the state's.
    fn with_database<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, TablesError>,
    ) -> Result<T, StateError> {
        self.with_store(f)
            .map_err(|source| tables_error(&self.root, source))
    }

    /// The tables with items, each with how many items it holds.
    pub fn table_sizes(&self) -> Result<Vec<(String, u64)>, StateError> {
        self.with_store(|s| {
            let names = s.table_names().map_err(|message| StateError::Io {
                dir: self.root.clone(),
                source: std::io::Error::other(message),
            })?;
            (names.into_iter())
                .map(|t| {
                    let count = s.count(&t).map_err(|e| tables_error(&self.root, e))?;
                    Ok((t, count))
                })
                .collect()
        })
    }

    /// Every item of `table` in key order, handed to `each` as it is read, so that a table
    /// larger than memory is never held whole (`state show`, `reconcile --all`); an error of
    /// `each` ends the scan with it.
    pub fn scan_table<E: From<StateError>>(
        &self,
        table: &str,
        each: &mut dyn FnMut(Item) -> Result<(), E>,
    ) -> Result<(), E> {
        let scanned =
            self.with_store(|s| s.scan(table, &mut |item| each(item).map_err(Scan::Each)));
        scanned.map_err(|stopped| match stopped {
            Scan::Tables(e) => E::from(tables_error(&self.root, e)),
            Scan::Each(e) => e,
        })
    }

    fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        // A poisoned lock means a panic mid-operation; the store's own state is still whole
        // (every operation validates before it mutates), so keep using it.
        let mut guard = self
            .store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }
}

/// Remove what a state directory holds, and only if it looks like one.
fn empty_state_dir(root: &Path) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        dir: root.to_path_buf(),
        source,
    };
    let known = [
        store::DATABASE,
        "state.sqlite-wal",
        "state.sqlite-shm",
        "objects",
        "outbox",
        "parked",
        // An earlier version's tables and journal.
        "tables",
        "journal.jsonl",
        "journal.compacting.jsonl",
        "schemas.json",
        ".lock",
    ];
    let entries: Vec<_> = fs::read_dir(root)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    let looks_like_state = entries.is_empty()
        || entries
            .iter()
            .any(|e| known.contains(&e.file_name().to_string_lossy().as_ref()));
    if !looks_like_state {
        return Err(StateError::NotAStateDir(root.to_path_buf()));
    }
    for entry in entries {
        let name = entry.file_name();
        if !known.contains(&name.to_string_lossy().as_ref()) {
            continue;
        }
        let path = entry.path();
        let removed = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(io)?;
    }
    Ok(())
}

fn invalid(operation: &'static str, table: &str, message: String) -> PortError {
    PortError::Permanent {
        operation,
        target: table.to_string(),
        message,
    }
}

fn condition_failed(table: &str, existing: Option<&Item>) -> PortError {
    PortError::ConditionFailed {
        target: table.to_string(),
        existing: existing.cloned().map(Box::new),
    }
}

#[async_trait]
impl Tables for EmbeddedState {
    async fn get(&self, table: &str, key: &Item) -> Result<Option<Item>, PortError> {
        self.with_store(|s| {
            s.learn_key(table, key);
            s.get(table, key)
        })
        .map_err(|e| invalid("GetItem", table, e))
    }

    async fn put(
        &self,
        table: &str,
        item: Item,
        condition: Option<&Condition>,
    ) -> Result<(), PortError> {
        let item = expr::normalize_item(item);
        self.with_store(|s| {
            let existing = s
                .get(table, &item)
                .map_err(|e| invalid("PutItem", table, e))?;
            if let Some(condition) = condition {
                if !expr::holds(condition, existing.as_ref()) {
                    return Err(condition_failed(table, existing.as_ref()));
                }
            }
            s.put(table, item).map_err(|e| invalid("PutItem", table, e))
        })
    }

    async fn update(
        &self,
        table: &str,
        key: &Item,
        update: &Update,
        condition: Option<&Condition>,
    ) -> Result<Item, PortError> {
        self.with_store(|s| {
            let fail = |e: String| invalid("UpdateItem", table, e);
            s.learn_key(table, key);
            let schema = s.schema(table).map_err(fail)?;
            let key = schema.key_of(key);
            let existing = s.get(table, &key).map_err(fail)?;
            if let Some(condition) = condition {
                if !expr::holds(condition, existing.as_ref()) {
                    return Err(condition_failed(table, existing.as_ref()));
                }
            }
            let mut item = existing.unwrap_or_else(|| expr::normalize_item(key.clone()));
            expr::apply_update(&mut item, update, &key_names(&schema)).map_err(|e| fail(e.0))?;
            s.put(table, item.clone()).map_err(fail)?;
            Ok(item)
        })
    }

    async fn delete(
        &self,
        table: &str,
        key: &Item,
        condition: Option<&Condition>,
    ) -> Result<Option<Item>, PortError> {
        self.with_store(|s| {
            s.learn_key(table, key);
            let existing = s
                .get(table, key)
                .map_err(|e| invalid("DeleteItem", table, e))?;
            if let Some(condition) = condition {
                if !expr::holds(condition, existing.as_ref()) {
                    return Err(condition_failed(table, existing.as_ref()));
                }
            }
            if existing.is_some() {
                s.write(vec![(table.to_string(), Write::Delete(Cow::Borrowed(key)))])
                    .map_err(|e| invalid("DeleteItem", table, e))?;
            }
            Ok(existing)
        })
    }

    async fn batch_get(&self, table: &str, keys: Vec<Item>) -> Result<Vec<Item>, PortError> {
        self.with_store(|s| {
            let mut found = Vec::new();
            for key in &keys {
                s.learn_key(table, key);
                if let Some(item) = s.get(table, key)? {
                    found.push(item);
                }
            }
            Ok(found)
        })
        .map_err(|e| invalid("BatchGetItem", table, e))
    }

    async fn query(&self, query: &Query) -> Result<Vec<Item>, PortError> {
        self.with_store(|s| s.query(query))
            .map_err(|e| invalid("Query", &query.table, e))
    }

    async fn batch_write(&self, table: &str, writes: &[WriteRequest]) -> Result<(), PortError> {
        let writes = writes
            .iter()
            .map(|write| {
                let write = match write {
                    WriteRequest::Put(item) => Write::Put(expr::normalized_lent(item)),
                    WriteRequest::Delete(key) => Write::Delete(Cow::Borrowed(key)),
                };
                (table.to_string(), write)
            })
            .collect();
        // Store::write checks every key before it changes anything, as DynamoDB rejects a
        // batch with a bad item whole.
        self.with_store(|s| s.write(writes))
            .map_err(|e| invalid("BatchWriteItem", table, e))
    }

    async fn transact_write(&self, items: Vec<TransactItem>) -> Result<(), PortError> {
        self.with_store(|s| {
            let fail = |table: &str, e: String| invalid("TransactWriteItems", table, e);
            let mut seen = std::collections::BTreeSet::new();
            let mut writes = Vec::with_capacity(items.len());
            // By value, so that a put's item moves into the write rather than being copied.
            for item in items {
                let table = item.table();
                if let TransactItem::Update { key, .. }
                | TransactItem::Delete { key, .. }
                | TransactItem::Check { key, .. } = &item
                {
                    s.learn_key(table, key);
                }
                let schema = s.schema(table).map_err(|e| fail(table, e))?;
                let key = match &item {
                    TransactItem::Put { item, .. } => schema.key_of(item),
                    TransactItem::Update { key, .. }
                    | TransactItem::Delete { key, .. }
                    | TransactItem::Check { key, .. } => schema.key_of(key),
                };
                let key_tuple = s.key_tuple(table, &key).map_err(|e| fail(table, e))?;
                if !seen.insert((table.to_string(), key_tuple)) {
                    return Err(fail(
                        table,
                        "Transaction request cannot include multiple operations on one item".into(),
                    ));
                }
                let condition = match &item {
                    TransactItem::Put { condition, .. }
                    | TransactItem::Update { condition, .. }
                    | TransactItem::Delete { condition, .. } => condition.as_ref(),
                    TransactItem::Check { condition, .. } => Some(condition),
                };
                // The item is read once, lent: for a condition, and copied only for an update.
                let is_update = matches!(item, TransactItem::Update { .. });
                let existing = match condition.is_some() || is_update {
                    false => None,
                    true => s
                        .get_with(table, &key, |existing| match condition {
                            Some(condition) if !expr::holds(condition, existing) => {
                                Err(condition_failed(table, existing))
                            }
                            _ => Ok(existing.filter(|_| is_update).cloned()),
                        })
                        .map_err(|e| fail(table, e))??,
                };
                match item {
                    TransactItem::Put { table, item, .. } => {
                        writes.push((table, Write::put(expr::normalize_item(item))))
                    }
                    TransactItem::Update { table, update, .. } => {
                        let mut next =
                            existing.unwrap_or_else(|| expr::normalize_item(key.clone()));
                        expr::apply_update(&mut next, &update, &key_names(&schema))
                            .map_err(|e| fail(&table, e.0))?;
                        writes.push((table, Write::put(next)));
                    }
                    TransactItem::Delete { table, .. } => writes.push((table, Write::delete(key))),
                    TransactItem::Check { .. } => {}
                }
            }
            s.write(writes).map_err(|e| fail("transaction", e))
        })
    }
}

#[async_trait]
impl Objects for EmbeddedState {
    async fn put(&self, object: Object) -> Result<(), PortError> {
        let target = format!("s3://{}/{}", object.bucket, object.key);
        let path =
            files::object_path(&self.root, &object.bucket, &object.key).map_err(|message| {
                PortError::Permanent {
                    operation: "PutObject",
                    target: target.clone(),
                    message,
                }
            })?;
        write_atomic(&path, &object.body).map_err(|e| files::io_error("PutObject", target, e))
    }

    /// A `file://` URL of the object's file: what a person opens on the machine that replayed.
    /// It does not expire.
    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        _lifetime: std::time::Duration,
    ) -> Result<Link, PortError> {
        let path = files::object_path(&self.root, bucket, key).map_err(|message| {
            PortError::Permanent {
                operation: "PresignGetObject",
                target: format!("s3://{bucket}/{key}"),
                message,
            }
        })?;
        let absolute = std::path::absolute(&path).unwrap_or(path);
        Ok(Link {
            url: format!("file://{}", absolute.display()),
            expires: None,
        })
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), PortError> {
        let target = format!("s3://{bucket}/{key}");
        let path = files::object_path(&self.root, bucket, key).map_err(|message| {
            PortError::Permanent {
                operation: "DeleteObject",
                target: target.clone(),
                message,
            }
        })?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(files::io_error("DeleteObject", target, e)),
        }
    }
}

#[async_trait]
impl Parking for EmbeddedState {
    /// `parked/<sequence number>-<reaction>.json`, written whole or not at all.
    async fn park(&self, record: &ParkedRecord<'_>) -> Result<String, PortError> {
        let name = format!("{}.json", record.file_stem());
        let path = self.root.join("parked").join(&name);
        let text = serde_json::to_vec_pretty(&record.to_event()).unwrap_or_default();
        write_atomic(&path, &text)
            .map_err(|e| files::io_error("Park", path.display().to_string(), e))?;
        Ok(path.display().to_string())
    }
}

impl EmbeddedState {
    /// The parked records' files, in name order.
    pub fn parked(&self) -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> = fs::read_dir(self.root.join("parked"))
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
    }
}

#[async_trait]
impl Mailer for EmbeddedState {
    async fn send(&self, message: &Mail) -> Result<String, PortError> {
        // Dated by the change it tells of, so a replay writes the same message; a message
        // without a date (built by hand) gets the clock's.
        let date = message.date.unwrap_or_else(chrono::Utc::now);
        let (message_id, eml) =
            eml::to_eml(message, date).map_err(|message| PortError::Permanent {
                operation: "SendEmail",
                target: "message".to_string(),
                message,
            })?;
        // Date, then the message id (which starts with a sequence): files sort as sent.
        let name = format!("{}-{message_id}.eml", date.format("%Y%m%dT%H%M%S%.3fZ"));
        let path = self.root.join("outbox").join(name);
        write_atomic(&path, &eml)
            .map_err(|e| files::io_error("SendEmail", path.display().to_string(), e))?;
        Ok(message_id)
    }
}

/// Where an earlier version kept the markers of records applied by replays, as items (a
/// state it wrote keeps them there; this version keeps them in the database's own table of
/// markers). `#` is in no DynamoDB table name, so no stream record can address it.
pub(super) const APPLIED_TABLE: &str = "#replay-applied";

/// The marker that holds the number of the state's last run (no eventID is `#run`).
const RUN_MARKER: &str = "#run";

/// A record's marker: its table, its sequence number and the run that applied it, between
/// tabs (a table name, a sequence number and a run number hold none).
fn marker_value(table: &str, sequence_number: &str, run: &str) -> String {
    [table, "\t", sequence_number, "\t", run].concat()
}

/// What a record applied before left: table, sequence number and run.
struct Marker {
    table: String,
    sequence_number: String,
    run: String,
}

impl Marker {
    fn read(value: &str) -> Marker {
        let mut parts = value.splitn(3, '\t').map(str::to_string);
        let mut next = || parts.next().unwrap_or_default();
        Marker {
            table: next(),
            sequence_number: next(),
            run: next(),
        }
    }

    /// The marker an earlier version kept as an item of [`APPLIED_TABLE`] under `event_id`.
    fn of_item(store: &mut Store, event_id: &str) -> Result<Option<Marker>, String> {
        let item = store.get(APPLIED_TABLE, &string_key(&[("eventId", event_id)]))?;
        Ok(item.map(|item| {
            let seen = |name: &str| {
                handlers::item::get_str(&item, name)
                    .unwrap_or_default()
                    .to_string()
            };
            Marker {
                table: seen("table"),
                sequence_number: seen("sequenceNumber"),
                run: seen("run"),
            }
        }))
    }
}

/// Records applied by replays, so that replaying a file again is a re-delivery (the reactions
/// run again) and not the same writes made again (which would undo what reactions did since).
#[async_trait]
impl ChangeApplier for EmbeddedState {
    /// Looks up the batch's eventIDs' markers at once (`Database::look_up_markers`). A failure
    /// is left to each record's own look-up, which reports it.
    async fn prepare(&self, changes: &[&Change]) {
        let names = changes.iter().map(|change| change.event_id.as_str());
        let _ = self.with_store(|s| s.look_up_markers(names));
    }

    async fn apply(&self, change: &Change) -> Result<Applied, PortError> {
        let fail = |e: String| invalid("ApplyRecord", &change.table, e);
        self.with_store(|s| {
            let write = match (&change.kind, &change.new) {
                (ChangeKind::Insert | ChangeKind::Modify, Some(new)) => {
                    Write::Put(expr::normalized_lent(new))
                }
                _ => Write::Delete(Cow::Borrowed(&change.keys)),
            };
            let earlier = match self.item_markers {
                true => Marker::of_item(s, &change.event_id).map_err(fail)?,
                false => None,
            };
            let marker = match earlier {
                Some(marker) => marker,
                None => {
                    // One set of writes: the write and its marker survive a crash together or
                    // not at all; none of it when the eventID has a marker already.
                    let value = marker_value(&change.table, &change.sequence_number, &self.run);
                    let set = s
                        .write_decoded_if_unmarked(
                            &change.event_id,
                            &value,
                            vec![(change.table.clone(), write)],
                        )
                        .map_err(fail)?;
                    match set {
                        None => return Ok(Applied::Now),
                        Some(found) => Marker::read(&found),
                    }
                }
            };
            if marker.sequence_number == change.sequence_number && marker.table == change.table {
                return Ok(Applied::Before {
                    in_this_run: marker.run == self.run,
                });
            }
            Err(fail(format!(
                "eventID {:?} was applied before for another record ({} sequence number {}): a stream never reuses an eventID, so this one would be taken for that one; give it its own eventID",
                change.event_id, marker.table, marker.sequence_number
            )))
        })
    }
}

/// Why a scan of a table stopped: the tables, or the caller's `each`.
enum Scan<E> {
    Tables(TablesError),
    Each(E),
}

impl<E> From<TablesError> for Scan<E> {
    fn from(e: TablesError) -> Self {
        Scan::Tables(e)
    }
}

/// A failure of the database of the state at `dir`.
fn tables_error(dir: &Path, source: TablesError) -> StateError {
    StateError::Tables {
        dir: dir.to_path_buf(),
        source: Box::new(source),
    }
}

/// The key of [`APPLIED_TABLE`], for the catalog.
fn know_applied_table(catalog: &Catalog) {
    catalog.learn_schema(
        APPLIED_TABLE,
        KeySchema {
            hash: "eventId".into(),
            range: None,
        },
    );
}

/// The number of this run of the state, one more than the last (the marker [`RUN_MARKER`], or
/// where an earlier version kept it, the item `#run` of [`APPLIED_TABLE`]): a name for the run
/// that no clock decides.
fn next_run(store: &mut Store, item_markers: bool) -> Result<String, String> {
    let mut last = store.marker(RUN_MARKER)?;
    if last.is_none() && item_markers {
        last = store
            .get(APPLIED_TABLE, &string_key(&[("eventId", RUN_MARKER)]))?
            .and_then(|item| match item.get("runs") {
                Some(AttributeValue::N(n)) => Some(n.clone()),
                _ => None,
            });
    }
    let last = last.and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    let run = last.saturating_add(1).to_string();
    store.set_marker(RUN_MARKER, &run)?;
    store.sync().map_err(|e| e.to_string())?;
    Ok(run)
}

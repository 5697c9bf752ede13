//! The embedded tables: items in memory by partition, each partition in sort-key order, made
//! durable by a journal.
//!
//! A table is a hash map of partitions, each its one item or an ordered map of its items
//! by sort key: finding an item
//! hashes its partition key once and compares sort keys only within its partition (one
//! ordered map per table compared long, alike keys all the way down), and a query reads its
//! partition without a range scan. Key order across partitions is needed only for the table
//! files and `state show`, and is sorted there.
//!
//! Every write appends the item's after-image (or a delete) to `journal.jsonl` (on the
//! journal's own thread, `journal.rs`); `sync` makes the appended lines durable (the batch
//! calls it before reporting success). `compact` writes each changed table to
//! `tables/<name>.jsonl` atomically (`compaction.rs`) and empties the journal; a sync that
//! finds the journal long starts a compaction that runs while the writes go on, over the
//! journal set aside. Loading reads the table files, then replays the journals; because they
//! hold after-images, replaying a line twice is harmless, and a torn last line (a crash
//! mid-append) is dropped.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use handlers::ports::Query;
use handlers::value_rules;
use handlers::{AttributeValue, Item};
use serde::{Deserialize, Serialize};

use super::compaction::{Snapshot, Written};
use super::expr::KeyPart;
use super::files::decode_name;
use super::journal::{Journal, JournalLine, Op, OpWrite, TableKey, JOURNAL, SET_ASIDE};
use crate::adapters::atomic_file::sync_dir;
use crate::catalog::{Catalog, KeySchema};
use crate::stages::{measure, Stage};

/// Compact once the journal grows past this and past the table files it would replace (so a
/// long replay's journal stays bounded, and rewriting the tables costs at most about as much as
/// the writes that made the journal: compacting a large state after every 64 MB of journal
/// would make a long replay quadratic).
const COMPACT_AT_BYTES: u64 = 64 * 1024 * 1024;

/// A table file is serialized by as many threads as it has parts of this many items (up to
/// one per core).
const ITEMS_PER_COMPACTION_PART: usize = 20_000;

type KeyTuple = (KeyPart, Option<KeyPart>);

/// A stored item, shared with the journal lines that still have to write it (an item is
/// replaced, never changed, so the line writes it as it was).
pub(super) type Stored = Arc<Item>;

/// One partition's items by sort key (`None` in a table without one). Most partitions hold
/// one item (every partition of a table without a sort key does), and an ordered map's first
/// node holds room for eleven: one item is kept as it is.
enum Partition {
    One(Option<KeyPart>, Stored),
    Many(BTreeMap<Option<KeyPart>, Stored>),
}

impl Partition {
    fn get(&self, range: &Option<KeyPart>) -> Option<&Item> {
        match self {
            Partition::One(sort, item) => (sort == range).then_some(&**item),
            Partition::Many(items) => items.get(range).map(|item| &**item),
        }
    }

    fn insert(&mut self, range: Option<KeyPart>, item: Stored) -> Option<Stored> {
        let (next, old) = match std::mem::replace(self, Partition::Many(BTreeMap::new())) {
            Partition::One(sort, old) if sort == range => (Partition::One(sort, item), Some(old)),
            Partition::One(sort, one) => (
                Partition::Many(BTreeMap::from([(sort, one), (range, item)])),
                None,
            ),
            Partition::Many(mut items) => {
                let old = items.insert(range, item);
                (Partition::Many(items), old)
            }
        };
        *self = next;
        old
    }

    /// Removes the item at `range`, leaving an empty partition if it was the only one.
    fn remove(&mut self, range: &Option<KeyPart>) -> Option<Stored> {
        match self {
            Partition::Many(items) => items.remove(range),
            Partition::One(sort, _) if sort != range => None,
            Partition::One(..) => match std::mem::replace(self, Partition::Many(BTreeMap::new())) {
                Partition::One(_, item) => Some(item),
                Partition::Many(_) => None,
            },
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Partition::Many(items) if items.is_empty())
    }

    fn len(&self) -> usize {
        match self {
            Partition::One(..) => 1,
            Partition::Many(items) => items.len(),
        }
    }

    /// The items in sort-key order.
    fn values(&self) -> impl Iterator<Item = &Item> {
        self.stored().map(|item| &**item)
    }

    /// The items in sort-key order, as shared.
    fn stored(&self) -> impl Iterator<Item = &Stored> {
        let (one, many) = match self {
            Partition::One(_, item) => (Some(item), None),
            Partition::Many(items) => (None, Some(items.values())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// A table's items by partition key.
#[derive(Default)]
struct Table {
    partitions: FxHashMap<KeyPart, Partition>,
}

impl Table {
    fn get(&self, (hash, range): &KeyTuple) -> Option<&Item> {
        self.partitions.get(hash)?.get(range)
    }

    fn insert(&mut self, (hash, range): KeyTuple, item: Stored) -> Option<Stored> {
        match self.partitions.entry(hash) {
            Entry::Occupied(mut partition) => partition.get_mut().insert(range, item),
            Entry::Vacant(place) => {
                place.insert(Partition::One(range, item));
                None
            }
        }
    }

    fn remove(&mut self, (hash, range): &KeyTuple) -> Option<Stored> {
        let partition = self.partitions.get_mut(hash)?;
        let old = partition.remove(range);
        if partition.is_empty() {
            self.partitions.remove(hash);
        }
        old
    }

    fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    fn len(&self) -> usize {
        self.partitions.values().map(Partition::len).sum()
    }

    /// Every item in key order: partitions sorted by their key, each in sort-key order.
    fn in_key_order(&self) -> impl Iterator<Item = &Item> {
        self.in_parts(1)
            .into_iter()
            .flatten()
            .flat_map(Partition::values)
    }

    /// Every item in key order, cut into at most `parts` runs of about as many items each
    /// (at partition boundaries), so that a large table is written by several threads.
    fn in_parts(&self, parts: usize) -> Vec<Vec<&Partition>> {
        let mut hashes: Vec<(&KeyPart, &Partition)> = self.partitions.iter().collect();
        hashes.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let total: usize = hashes.iter().map(|(_, p)| p.len()).sum();
        let per_part = total.div_ceil(parts.max(1)).max(1);
        let mut runs = Vec::new();
        let mut rest = hashes.as_slice();
        while !rest.is_empty() {
            let mut items = 0;
            let cut = rest
                .iter()
                .position(|(_, p)| {
                    items += p.len();
                    items >= per_part
                })
                .map_or(rest.len(), |at| at + 1);
            let (run, after) = rest.split_at(cut);
            runs.push(run.iter().map(|(_, partition)| *partition).collect());
            rest = after;
        }
        runs
    }
}

/// A write to apply: the whole item, or the key of the item to delete.
#[derive(Debug, Clone)]
pub(super) enum StoreWrite {
    Put(Item),
    Delete(Item),
}

/// The first line of a table file whose name was too long for its file name.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TableHeader {
    pub table: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct SavedSchema {
    hash: String,
    #[serde(default)]
    range: Option<String>,
}

pub(super) struct Store {
    root: PathBuf,
    catalog: Catalog,
    tables: FxHashMap<String, Table>,
    journal: Option<Journal>,
    journal_bytes: u64,
    /// [`COMPACT_AT_BYTES`] (tests compact sooner).
    compact_at: u64,
    /// Size of each table file as last read or written: what a compaction rewrites at most.
    file_bytes: HashMap<String, u64>,
    dirty: BTreeSet<String>,
    /// Key schemas and GSI hash attributes by table, looked up once (the catalog clones).
    schemas: RefCell<FxHashMap<String, Arc<Known>>>,
    /// GSI contents: (table, index) -> index hash key -> primary keys of its items.
    indexes: FxHashMap<(String, String), FxHashMap<KeyPart, BTreeSet<KeyTuple>>>,
    /// A compaction running while writes go on, and the tables it writes.
    compacting: Option<(std::thread::JoinHandle<Written>, Vec<String>)>,
    /// A journal is set aside (`journal.compacting.jsonl`): a compaction runs, or one failed
    /// or was cut off and the next must fold it in.
    set_aside: bool,
}

/// What the store needs of a table's schema.
#[derive(Debug)]
struct Known {
    key: KeySchema,
    /// The table's name and key, for its journal lines.
    journal: Arc<TableKey>,
    /// (index name, hash attribute) of every GSI.
    index_hashes: Vec<(String, String)>,
}

impl Store {
    /// Load the state under `root`; `writable` opens the journal for appending.
    pub(super) fn open(root: &Path, catalog: Catalog, writable: bool) -> io::Result<Store> {
        let mut store = Store {
            root: root.to_path_buf(),
            catalog,
            tables: FxHashMap::default(),
            journal: None,
            journal_bytes: 0,
            compact_at: COMPACT_AT_BYTES,
            file_bytes: HashMap::new(),
            dirty: BTreeSet::new(),
            schemas: RefCell::new(FxHashMap::default()),
            indexes: FxHashMap::default(),
            compacting: None,
            set_aside: false,
        };
        store.load_schemas()?;
        store.load_tables()?;
        // What was just read from the table files is not a change to write back.
        store.dirty.clear();
        // A journal set aside holds the writes before the current one's.
        store.set_aside = store.replay_journal(SET_ASIDE)?.is_some();
        let good_bytes = store.replay_journal(JOURNAL)?.unwrap_or(0);
        if writable {
            let path = root.join(JOURNAL);
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            // Drop a torn last line so new entries start on a line of their own.
            file.set_len(good_bytes)?;
            let mut file = file;
            io::Seek::seek(&mut file, io::SeekFrom::End(0))?;
            store.journal = Some(Journal::start(root, file, good_bytes));
            store.journal_bytes = good_bytes;
        }
        Ok(store)
    }

    fn load_schemas(&self) -> io::Result<()> {
        let path = self.root.join("schemas.json");
        let Ok(text) = fs::read_to_string(&path) else {
            return Ok(());
        };
        let saved: BTreeMap<String, SavedSchema> =
            serde_json::from_str(&text).map_err(|e| corrupt(&path, 1, &e.to_string()))?;
        for (table, schema) in saved {
            self.catalog.learn_schema(
                &table,
                KeySchema {
                    hash: schema.hash,
                    range: schema.range,
                },
            );
        }
        Ok(())
    }

    fn load_tables(&mut self) -> io::Result<()> {
        let dir = self.root.join("tables");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(());
        };
        for entry in entries {
            let path = entry?.path();
            let Some(stem) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".jsonl"))
            else {
                continue;
            };
            let text = fs::read_to_string(&path)?;
            let mut lines = text.lines().enumerate().peekable();
            // A name too long for a file name is the file's first line.
            let table = match decode_name(stem) {
                Some(table) => table,
                None => {
                    let header = lines.next().map(|(_, line)| line).unwrap_or_default();
                    let header: TableHeader = serde_json::from_str(header)
                        .map_err(|e| corrupt(&path, 1, &format!("no table name: {e}")))?;
                    header.table
                }
            };
            self.file_bytes.insert(table.clone(), text.len() as u64);
            for (number, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
                let item: Item = serde_json::from_str(line)
                    .map_err(|e| corrupt(&path, number + 1, &e.to_string()))?;
                self.put_in_memory(&table, item)
                    .map_err(|e| corrupt(&path, number + 1, &e))?;
            }
        }
        Ok(())
    }

    /// Apply the journal `name`; returns the length of its intact prefix, or `None` if there
    /// is none.
    fn replay_journal(&mut self, name: &str) -> io::Result<Option<u64>> {
        let path = self.root.join(name);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut good = 0usize;
        for (number, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
            if !line.ends_with(b"\n") {
                break; // torn by a crash mid-append: that write was never acknowledged
            }
            let entry: JournalLine = serde_json::from_slice(line)
                .map_err(|e| corrupt(&path, number + 1, &e.to_string()))?;
            for op in entry.ops {
                self.catalog.learn_schema(
                    &op.table,
                    KeySchema {
                        hash: op.hash.into_owned(),
                        range: op.range.map(|range| range.into_owned()),
                    },
                );
                let result = match (op.put, op.delete) {
                    (Some(item), _) => self.put_in_memory(&op.table, item.into_owned()),
                    (None, Some(key)) => self.delete_in_memory(&op.table, &key),
                    (None, None) => Ok(()),
                };
                result.map_err(|e| corrupt(&path, number + 1, &e))?;
            }
            good += line.len();
        }
        Ok(Some(good as u64))
    }

    /// A table this state has not used yet, and that nothing defines, takes its key schema
    /// from the key of the first item asked for or written by key (a reaction's table that
    /// has no stream of its own, under the application's names).
    pub(super) fn learn_key(&self, table: &str, key: &Item) {
        if !self.schemas.borrow().contains_key(table) {
            self.catalog.learn(table, key);
        }
    }

    pub(super) fn schema(&self, table: &str) -> Result<KeySchema, String> {
        self.known(table).map(|k| k.key.clone())
    }

    fn known(&self, table: &str) -> Result<Arc<Known>, String> {
        if let Some(known) = self.schemas.borrow().get(table) {
            return Ok(known.clone());
        }
        let schema = self.catalog.schema(table).ok_or_else(|| {
            format!("table {table} is not defined: give its schema with `replay --schema FILE` (its CreateTable or DescribeTable JSON), or replay a stream record of it first")
        })?;
        let known = Arc::new(Known {
            journal: Arc::new(TableKey {
                table: table.to_string(),
                hash: schema.key.hash.clone(),
                range: schema.key.range.clone(),
            }),
            index_hashes: schema
                .indexes
                .iter()
                .map(|(name, k)| (name.clone(), k.hash.clone()))
                .collect(),
            key: schema.key,
        });
        self.schemas
            .borrow_mut()
            .insert(table.to_string(), known.clone());
        Ok(known)
    }

    /// The GSI entries `item` (at `key`) has: (index, index hash key).
    fn index_entries(&self, table: &str, item: &Item) -> Vec<(String, KeyPart)> {
        let Ok(known) = self.known(table) else {
            return Vec::new();
        };
        known
            .index_hashes
            .iter()
            .filter_map(|(index, hash)| {
                Some((index.clone(), item.get(hash).and_then(KeyPart::of)?))
            })
            .collect()
    }

    fn unindex(&mut self, table: &str, key: &KeyTuple, entries: Vec<(String, KeyPart)>) {
        for (index, hash) in entries {
            if let Some(keys) = self
                .indexes
                .get_mut(&(table.to_string(), index))
                .and_then(|m| m.get_mut(&hash))
            {
                keys.remove(key);
            }
        }
    }

    pub(super) fn key_tuple(&self, table: &str, item: &Item) -> Result<KeyTuple, String> {
        // The shared schema, not a copy: this runs for every read and write.
        let known = self.known(table)?;
        let schema = &known.key;
        let part = |name: &str| -> Result<KeyPart, String> {
            let value = item.get(name).ok_or_else(|| {
                format!("One of the required keys was not given a value: {name} (table {table})")
            })?;
            KeyPart::of(value).ok_or_else(|| {
                format!("key attribute {name} of table {table} must be a non-empty S, N or B value")
            })
        };
        let hash = part(&schema.hash)?;
        let range = schema.range.as_deref().map(part).transpose()?;
        Ok((hash, range))
    }

    pub(super) fn get(&self, table: &str, key: &Item) -> Result<Option<&Item>, String> {
        let key = self.key_tuple(table, key)?;
        Ok(self.tables.get(table).and_then(|items| items.get(&key)))
    }

    pub(super) fn put(&mut self, table: &str, item: Item) -> Result<(), String> {
        self.write(vec![(table.to_string(), StoreWrite::Put(item))])
    }

    pub(super) fn delete(&mut self, table: &str, key: &Item) -> Result<Option<Item>, String> {
        let old = self.get(table, key)?.cloned();
        self.write(vec![(table.to_string(), StoreWrite::Delete(key.clone()))])?;
        Ok(old)
    }

    /// Apply `writes` as one journal line: after a crash, all of them or none.
    pub(super) fn write(&mut self, writes: Vec<(String, StoreWrite)>) -> Result<(), String> {
        if self.journal.is_none() {
            return Err("the state was opened read-only".to_string());
        }
        let mut keys = Vec::with_capacity(writes.len());
        for (table, write) in &writes {
            let known = self.known(table)?;
            let (StoreWrite::Put(item) | StoreWrite::Delete(item)) = write;
            // Every key and item is checked before anything is journaled or changed, by
            // DynamoDB's rules (it refuses the whole request).
            keys.push((self.key_tuple(table, item)?, known.clone()));
            let broken = value_rules::broken_key(&known.key.key_of(item)).or_else(|| match write {
                StoreWrite::Put(item) => value_rules::first_broken(item),
                StoreWrite::Delete(_) => None,
            });
            if let Some(broken) = broken {
                return Err(format!(
                    "One or more parameter values were invalid: {}: {}",
                    broken.path, broken.reason
                ));
            }
        }
        let mut ops = Vec::with_capacity(writes.len());
        let mut replaced = Vec::new();
        for ((table, write), (key, known)) in writes.into_iter().zip(keys) {
            let (write, old) = match write {
                StoreWrite::Put(item) => {
                    let item = Arc::new(item);
                    let old = self.put_at(&table, key, item.clone());
                    (OpWrite::Put(item), old)
                }
                StoreWrite::Delete(item) => {
                    let old = self.delete_at(&table, &key);
                    (OpWrite::Delete(known.key.key_of(&item)), old)
                }
            };
            replaced.extend(old);
            ops.push(Op {
                table: known.journal.clone(),
                write,
            });
        }
        self.journal
            .as_mut()
            .ok_or("the state was opened read-only")?
            .append(ops, replaced)
            .map_err(|e| e.to_string())
    }

    /// Put an item read from the table files or the journal.
    fn put_in_memory(&mut self, table: &str, item: Item) -> Result<(), String> {
        let key = self.key_tuple(table, &item)?;
        self.put_at(table, key, Arc::new(item));
        Ok(())
    }

    /// Put `item`, whose key is `key`, and keep the table's indexes; returns the item it
    /// replaced.
    fn put_at(&mut self, table: &str, key: KeyTuple, item: Stored) -> Option<Stored> {
        // Only a table with a GSI needs the key again, for its index entries.
        let has_indexes = self.known(table).is_ok_and(|k| !k.index_hashes.is_empty());
        let index_key = has_indexes.then(|| key.clone());
        let entries = match has_indexes {
            true => self.index_entries(table, &item),
            false => Vec::new(),
        };
        let old = match self.tables.get_mut(table) {
            Some(items) => items.insert(key, item),
            None => {
                let mut items = Table::default();
                items.insert(key, item);
                self.tables.insert(table.to_string(), items);
                None
            }
        };
        if let Some(key) = index_key {
            if let Some(old) = &old {
                let stale = self.index_entries(table, old);
                self.unindex(table, &key, stale);
            }
            for (index, hash) in entries {
                self.indexes
                    .entry((table.to_string(), index))
                    .or_default()
                    .entry(hash)
                    .or_default()
                    .insert(key.clone());
            }
        }
        self.mark_dirty(table);
        old
    }

    fn mark_dirty(&mut self, table: &str) {
        if !self.dirty.contains(table) {
            self.dirty.insert(table.to_string());
        }
    }

    /// Delete an item the journal deletes.
    fn delete_in_memory(&mut self, table: &str, key: &Item) -> Result<(), String> {
        let key = self.key_tuple(table, key)?;
        self.delete_at(table, &key);
        Ok(())
    }

    /// Delete the item at `key` and its index entries; returns it.
    fn delete_at(&mut self, table: &str, key: &KeyTuple) -> Option<Stored> {
        self.mark_dirty(table);
        let old = self
            .tables
            .get_mut(table)
            .and_then(|items| items.remove(key));
        if let Some(old) = &old {
            let stale = self.index_entries(table, old);
            self.unindex(table, key, stale);
        }
        old
    }

    /// Every item of `table` in key order.
    pub(super) fn items(&self, table: &str) -> impl Iterator<Item = &Item> {
        self.tables
            .get(table)
            .into_iter()
            .flat_map(Table::in_key_order)
    }

    /// Tables with items, without the replay's own bookkeeping (a name no DynamoDB table has).
    pub(super) fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .tables
            .iter()
            .filter(|(name, items)| {
                !items.is_empty() && handlers::value_rules::check_table_name(name).is_ok()
            })
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// One partition of a table or index, in sort-key order.
    pub(super) fn query(&self, query: &Query) -> Result<Vec<Item>, String> {
        // A table nothing defines and nothing wrote holds no item yet.
        let Some(table_schema) = self.catalog.schema(&query.table) else {
            return Ok(Vec::new());
        };
        let schema = match &query.index {
            None => table_schema.key.clone(),
            Some(index) => table_schema.indexes.get(index).cloned().ok_or_else(|| {
                format!(
                    "The table {} does not have the specified index: {index}",
                    query.table
                )
            })?,
        };
        let (pk_name, pk_value) = &query.partition;
        if *pk_name != schema.hash {
            // A schema taken from records' Keys may have the partition key wrong (they do not
            // say which is which): say how to give the real one.
            let hint = match (table_schema.learned, &schema.range) {
                (true, Some(range)) if range == pk_name => format!(
                    " (the key schema of {} was taken from its records, which do not say which \
                     key attribute is the partition key: give it with `replay --schema FILE`, \
                     its CreateTable or DescribeTable JSON)",
                    query.table
                ),
                _ => String::new(),
            };
            return Err(format!(
                "Query condition missed key schema element: {}{hint}",
                schema.hash
            ));
        }
        if let Some((sk_name, _)) = &query.sort_key {
            if Some(sk_name) != schema.range.as_ref() {
                return Err(format!(
                    "Query key condition not supported: {sk_name} is not the sort key"
                ));
            }
        }
        let matches = |item: &&Item| {
            item.get(pk_name) == Some(pk_value)
                && match &query.sort_key {
                    None => schema.range.as_ref().is_none_or(|sk| item.contains_key(sk)),
                    Some((sk, condition)) => {
                        matches!(item.get(sk), Some(AttributeValue::S(s)) if condition.matches(s))
                    }
                }
        };
        // On the table itself the partition is one map; an index's partition is the keys of
        // its items.
        let partition: Box<dyn Iterator<Item = &Item>> = match (&query.index, KeyPart::of(pk_value))
        {
            (None, Some(hash)) => match self
                .tables
                .get(&query.table)
                .and_then(|items| items.partitions.get(&hash))
            {
                Some(partition) => Box::new(partition.values()),
                None => Box::new(std::iter::empty()),
            },
            (Some(index), Some(hash)) => {
                let keys = self
                    .indexes
                    .get(&(query.table.clone(), index.clone()))
                    .and_then(|m| m.get(&hash));
                let items = self.tables.get(&query.table);
                Box::new(
                    keys.into_iter()
                        .flatten()
                        .filter_map(move |key| items.and_then(|t| t.get(key))),
                )
            }
            _ => Box::new(std::iter::empty()),
        };
        let mut found: Vec<(Option<KeyPart>, Item)> = partition
            .filter(matches)
            .map(|item| {
                (
                    schema
                        .range
                        .as_ref()
                        .and_then(|sk| item.get(sk))
                        .and_then(KeyPart::of),
                    item.clone(),
                )
            })
            .collect();
        // A stable sort keeps the table's key order among equal index sort keys.
        found.sort_by(|a, b| a.0.cmp(&b.0));
        if !query.ascending {
            found.reverse();
        }
        Ok(found.into_iter().map(|(_, item)| item).collect())
    }

    /// Make every write so far durable; a journal grown long starts a compaction that runs
    /// while the writes go on.
    pub(super) fn sync(&mut self) -> io::Result<()> {
        let Some(journal) = self.journal.as_mut() else {
            return Ok(());
        };
        self.journal_bytes = measure(Stage::Sync, || journal.sync())?;
        if self
            .compacting
            .as_ref()
            .is_some_and(|(running, _)| running.is_finished())
        {
            self.finish_compaction()?;
        }
        let tables_bytes: u64 = self.file_bytes.values().sum();
        if self.compacting.is_none() && self.journal_bytes > self.compact_at.max(tables_bytes) {
            match self.set_aside {
                // The journal set aside by a compaction that failed must be folded in first.
                true => self.compact()?,
                false => self.compact_in_background()?,
            }
        }
        Ok(())
    }

    /// Set the journal aside and write the changed tables on threads of their own; the store
    /// takes writes meanwhile, into a new journal.
    fn compact_in_background(&mut self) -> io::Result<()> {
        let Some(journal) = self.journal.as_mut() else {
            return Ok(());
        };
        journal.set_aside()?;
        self.set_aside = true;
        self.journal_bytes = 0;
        let snapshot = self.snapshot();
        let tables = snapshot.table_names();
        let root = self.root.clone();
        let running = std::thread::spawn(move || {
            let mut written = snapshot.write();
            // Only once the tables are durable may the journal set aside go; a crash before
            // replays it over the new files, which changes nothing.
            if written.is_whole() {
                if let Err(e) = fs::remove_file(root.join(SET_ASIDE)).and_then(|()| sync_dir(&root))
                {
                    written.schemas = Err(e);
                }
            }
            written
        });
        self.compacting = Some((running, tables));
        Ok(())
    }

    /// Wait for the compaction running, if any, and take in what it wrote.
    fn finish_compaction(&mut self) -> io::Result<()> {
        let Some((running, tables)) = self.compacting.take() else {
            return Ok(());
        };
        let written = running.join().unwrap_or_else(|_| Written {
            tables: Vec::new(),
            schemas: Err(io::Error::other("a compaction panicked")),
        });
        if written.is_whole() {
            self.set_aside = false;
        } else {
            // Written again by the next compaction, which folds the journal set aside in.
            self.dirty.extend(tables);
        }
        self.take_in(written)
    }

    /// Record the table files' new lengths; a table not written is still to write.
    fn take_in(&mut self, written: Written) -> io::Result<()> {
        let mut failure = written.schemas.err();
        for (table, length) in written.tables {
            match length {
                Ok(length) => {
                    self.file_bytes.insert(table, length);
                }
                Err(e) => {
                    self.dirty.insert(table);
                    failure.get_or_insert(e);
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// The changed tables as they are now, for a compaction to write.
    fn snapshot(&mut self) -> Snapshot {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let tables = std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|name| {
                let parts = match self.tables.get(&name) {
                    Some(table) => table
                        .in_parts((table.len() / ITEMS_PER_COMPACTION_PART).clamp(1, threads))
                        .into_iter()
                        .map(|run| {
                            run.into_iter()
                                .flat_map(Partition::stored)
                                .cloned()
                                .collect()
                        })
                        .collect(),
                    None => Vec::new(),
                };
                (name, parts)
            })
            .collect();
        let learned = self
            .tables
            .keys()
            .filter_map(|t| {
                self.catalog.schema(t).filter(|s| s.learned).map(|s| {
                    (
                        t.clone(),
                        SavedSchema {
                            hash: s.key.hash,
                            range: s.key.range,
                        },
                    )
                })
            })
            .collect();
        Snapshot {
            root: self.root.clone(),
            tables,
            learned,
        }
    }

    /// Write the changed tables to their files and empty the journal (and the one set aside),
    /// waiting for it all.
    pub(super) fn compact(&mut self) -> io::Result<()> {
        if self.journal.is_none() {
            return Ok(());
        }
        // A compaction still running writes its tables first; should it fail, this one
        // writes them again.
        let _written_again_below = self.finish_compaction();
        if let Some(journal) = self.journal.as_mut() {
            journal.sync()?;
        }
        let written = self.snapshot().write();
        self.take_in(written)?;
        // Only now that the tables are durable may the journals go; a crash before this line
        // replays them over the new files, which changes nothing.
        if let Some(journal) = self.journal.as_mut() {
            journal.truncate()?;
        }
        self.journal_bytes = 0;
        if self.set_aside {
            match fs::remove_file(self.root.join(SET_ASIDE)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => self.set_aside = false,
            }
        }
        sync_dir(&self.root)
    }
}

/// A compaction still running finishes before the store is gone, so that no one else opens
/// the directory while it writes.
impl Drop for Store {
    fn drop(&mut self) {
        if let Some((running, _)) = self.compacting.take() {
            let _ = running.join();
        }
    }
}

fn corrupt(path: &Path, line: usize, message: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}:{line}: {message}", path.display()),
    )
}

/// Hash and range names of an item's key, for tables learned from stream records.
pub(super) fn key_names(schema: &KeySchema) -> Vec<&str> {
    std::iter::once(schema.hash.as_str())
        .chain(schema.range.as_deref())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use handlers::item::string_key;

    const TABLE: &str = "aws-cost-platform-enhanced";

    fn item(sk: usize, version: usize) -> Item {
        let mut item = string_key(&[("PK", "P"), ("SK", &format!("{sk:04}"))]);
        item.insert("v".into(), AttributeValue::N(version.to_string()));
        item
    }

    fn put(store: &mut Store, sk: usize, version: usize) {
        store.put(TABLE, item(sk, version)).unwrap();
    }

    /// (sort key, version) of every item, in key order.
    fn versions(root: &Path) -> Vec<(String, String)> {
        let store = Store::open(root, Catalog::with_seed_definitions(), false).unwrap();
        let text = |item: &Item, name: &str| match item.get(name) {
            Some(AttributeValue::S(s) | AttributeValue::N(s)) => s.clone(),
            _ => String::new(),
        };
        store
            .items(TABLE)
            .map(|i| (text(i, "SK"), text(i, "v")))
            .collect()
    }

    fn expected(items: impl Iterator<Item = (usize, usize)>) -> Vec<(String, String)> {
        items
            .map(|(sk, v)| (format!("{sk:04}"), v.to_string()))
            .collect()
    }

    #[test]
    fn a_compaction_while_writes_go_on_loses_none_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Catalog::with_seed_definitions(), true).unwrap();
        store.compact_at = 1;
        for sk in 0..300 {
            put(&mut store, sk, 1);
        }
        store.sync().unwrap();
        assert!(
            store.compacting.is_some(),
            "a long journal starts a compaction"
        );
        // Written while it runs: new versions, and deletes.
        for sk in 0..150 {
            put(&mut store, sk, 2);
        }
        for sk in 250..300 {
            store
                .delete(
                    TABLE,
                    &string_key(&[("PK", "P"), ("SK", &format!("{sk:04}"))]),
                )
                .unwrap();
        }
        store.sync().unwrap();
        drop(store); // no final compaction: as after a crash
        let want = expected(
            (0..150)
                .map(|sk| (sk, 2))
                .chain((150..250).map(|sk| (sk, 1))),
        );
        assert_eq!(versions(dir.path()), want);

        let mut store = Store::open(dir.path(), Catalog::with_seed_definitions(), true).unwrap();
        store.compact().unwrap();
        drop(store);
        assert!(!dir.path().join(SET_ASIDE).exists());
        assert_eq!(fs::metadata(dir.path().join(JOURNAL)).unwrap().len(), 0);
        assert_eq!(
            versions(dir.path()),
            want,
            "the table files alone hold it all"
        );
    }

    #[test]
    fn a_journal_set_aside_by_a_compaction_cut_off_is_replayed_before_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Catalog::with_seed_definitions(), true).unwrap();
        for sk in 0..10 {
            put(&mut store, sk, 1);
        }
        store.compact().unwrap();
        for sk in 0..10 {
            put(&mut store, sk, 2);
        }
        store.sync().unwrap();
        drop(store);
        // The compaction set the journal aside and was cut off before writing a table.
        fs::rename(dir.path().join(JOURNAL), dir.path().join(SET_ASIDE)).unwrap();
        let mut store = Store::open(dir.path(), Catalog::with_seed_definitions(), true).unwrap();
        for sk in 0..5 {
            put(&mut store, sk, 3);
        }
        store.sync().unwrap();
        drop(store);
        let want = expected((0..5).map(|sk| (sk, 3)).chain((5..10).map(|sk| (sk, 2))));
        assert_eq!(versions(dir.path()), want);

        let mut store = Store::open(dir.path(), Catalog::with_seed_definitions(), true).unwrap();
        store.compact().unwrap();
        drop(store);
        assert!(!dir.path().join(SET_ASIDE).exists(), "folded in and gone");
        assert_eq!(versions(dir.path()), want);
    }

    #[test]
    fn a_table_in_parts_is_its_key_order_cut_at_partitions_into_runs_of_about_equal_size() {
        let mut table = Table::default();
        // Partitions of 1 to 5 items, inserted out of key order.
        for p in (0..200).rev() {
            for s in 0..(p % 5 + 1) {
                let item = string_key(&[("PK", &format!("P{p:03}")), ("SK", &format!("{s}"))]);
                let key = (
                    KeyPart::S(format!("P{p:03}")),
                    Some(KeyPart::S(s.to_string())),
                );
                table.insert(key, Arc::new(item));
            }
        }
        let in_order: Vec<&Item> = table.in_key_order().collect();
        assert_eq!(in_order.len(), table.len());
        let pk = |item: &Item| handlers::item::get_str(item, "PK").unwrap().to_string();
        assert!(in_order.windows(2).all(|w| pk(w[0]) <= pk(w[1])));
        let parts = table.in_parts(3);
        assert_eq!(parts.len(), 3);
        let joined: Vec<&Item> = parts
            .iter()
            .flat_map(|run| run.iter().flat_map(|p| p.values()))
            .collect();
        assert_eq!(
            joined, in_order,
            "the parts, one after another, are the key order"
        );
        for run in &parts {
            let items: usize = run.iter().map(|p| p.len()).sum();
            assert!(
                items.abs_diff(table.len() / 3) <= 5,
                "{items} of {}",
                table.len()
            );
        }
    }
}

//! The embedded tables as the adapter uses them: the `embedded-tables` crate's [`Database`]
//! (one SQLite file, `state.sqlite`), kept in step with the catalog's key schemas, with
//! DynamoDB's value rules checked on every write and its query rules on every query.
//!
//! A table is defined in the database the first time it is used, with the schema the catalog
//! has for it then; should the catalog learn another (a table under the application's names
//! whose records show its own key attributes), the table is defined again and its items placed
//! by the new key. The catalog's generation says when to look again, so that the common case
//! costs no lookup.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use embedded_tables::{Database, Flush, KeyQuery, SortCondition, TablesError, Write};
use handlers::ports::{Query, SortKey};
use handlers::value_rules;
use handlers::{AttributeValue, Item};

use crate::catalog::{Catalog, KeySchema, TableSchema};
use crate::stages::{measure, Stage};

/// The database file in a state directory.
pub(super) const DATABASE: &str = "state.sqlite";

/// Where the tables are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kept {
    /// In the state's database file, each batch durable before its report.
    OnDisk,
    /// The file as it is, for reading only.
    ReadOnly,
    /// In memory, gone with the process (a scratch state).
    InMemory,
}

pub(super) struct Store {
    database: Database,
    catalog: Catalog,
    /// The catalog's generation when `checked` was last valid.
    generation: u64,
    /// Tables whose database schema is the catalog's, as of `generation`, with their key
    /// (looked up once: every read and write needs it).
    checked: HashMap<String, Arc<KeySchema>>,
}

impl Store {
    /// Open the database under `root` as `kept` says; the catalog learns the schemas the state
    /// kept.
    pub(super) fn open(root: &Path, catalog: Catalog, kept: Kept) -> Result<Store, TablesError> {
        let path = root.join(DATABASE);
        let database = match (kept, path.exists()) {
            (Kept::OnDisk, _) => Database::open(&path)?,
            (Kept::ReadOnly, true) => Database::open_read_only(&path)?,
            // Nothing written yet: an empty state, and no file made for it.
            (Kept::ReadOnly, false) | (Kept::InMemory, _) => Database::open_in_memory()?,
        };
        for (table, schema) in database.schemas() {
            catalog.remember(
                table,
                from_crate(&schema.key),
                schema
                    .indexes
                    .iter()
                    .map(|(name, key)| (name.clone(), from_crate(key)))
                    .collect(),
            );
        }
        Ok(Store {
            database,
            generation: catalog.generation(),
            catalog,
            checked: HashMap::new(),
        })
    }

    /// A table this state has not used yet, and that nothing defines, takes its key schema
    /// from the key of the first item asked for or written by key (a reaction's table that
    /// has no stream of its own, under the application's names).
    pub(super) fn learn_key(&self, table: &str, key: &Item) {
        if !self.checked.contains_key(table) {
            self.catalog.learn(table, key);
        }
    }

    /// The key of `table`, which the database then holds with the catalog's schema.
    pub(super) fn schema(&mut self, table: &str) -> Result<Arc<KeySchema>, String> {
        let generation = self.catalog.generation();
        if generation != self.generation {
            self.checked.clear();
            self.generation = generation;
        }
        if let Some(key) = self.checked.get(table) {
            return Ok(key.clone());
        }
        let schema = self.catalog.schema(table).ok_or_else(|| undefined(table))?;
        let wanted = to_crate(&schema);
        if self.database.schema(table) != Some(&wanted) {
            self.database
                .define(table, &wanted)
                .map_err(|e| e.to_string())?;
        }
        let key = Arc::new(schema.key.clone());
        self.checked.insert(table.to_string(), key.clone());
        Ok(key)
    }

    /// The sortable bytes of `item`'s key in `table`, to tell items apart.
    pub(super) fn key_tuple(&mut self, table: &str, item: &Item) -> Result<Vec<u8>, String> {
        let schema = self.schema(table)?;
        let mut bytes = Vec::new();
        for name in key_names(&schema) {
            let value = item.get(name).ok_or_else(|| missing_key(table, name))?;
            let part = embedded_tables::sortable_key::encode(value).ok_or_else(|| {
                format!("key attribute {name} of table {table} must be a non-empty S, N or B value")
            })?;
            bytes.extend_from_slice(&(part.len() as u64).to_be_bytes());
            bytes.extend_from_slice(&part);
        }
        Ok(bytes)
    }

    pub(super) fn get(&mut self, table: &str, key: &Item) -> Result<Option<Item>, String> {
        self.get_with(table, key, |item| item.cloned())
    }

    /// What `read` makes of the item with `key`, lent rather than copied.
    pub(super) fn get_with<R>(
        &mut self,
        table: &str,
        key: &Item,
        read: impl FnOnce(Option<&Item>) -> R,
    ) -> Result<R, String> {
        let schema = self.schema(table)?;
        require_key(table, &schema, key)?;
        self.database
            .get_with(table, key, read)
            .map_err(|e| e.to_string())
    }

    pub(super) fn put(&mut self, table: &str, item: Item) -> Result<(), String> {
        self.write(vec![(table.to_string(), Write::put(item))])
    }

    /// Apply `writes` together: after a crash, all of them or none.
    pub(super) fn write(&mut self, writes: Vec<(String, Write<'_>)>) -> Result<(), String> {
        self.write_checking(writes, true)
    }

    /// Set the marker `name` (a record's eventID) to `value` with the writes of the decoded
    /// record's own change, all of them or none, unless the marker is set: then nothing is
    /// written and its value is returned. As [`Store::write`], but an item's values are not
    /// walked again for DynamoDB's rules, since decoding did it on the record's images
    /// (`src/decode/record.rs`); keys are still checked against the tables' schemas, which
    /// decoding does not know.
    pub(super) fn write_decoded_if_unmarked(
        &mut self,
        name: &str,
        value: &str,
        writes: Vec<(String, Write<'_>)>,
    ) -> Result<Option<String>, String> {
        self.check_writes(&writes, false)?;
        self.database
            .write_if_unmarked(name, value, writes)
            .map_err(|e| e.to_string())
    }

    /// Look up the markers of `names` at once, before they are set one by one.
    pub(super) fn look_up_markers<'n>(
        &mut self,
        names: impl Iterator<Item = &'n str>,
    ) -> Result<(), String> {
        (self.database)
            .look_up_markers(names)
            .map_err(|e| e.to_string())
    }

    /// The value of the marker `name`, if it is set.
    pub(super) fn marker(&self, name: &str) -> Result<Option<String>, String> {
        self.database.marker(name).map_err(|e| e.to_string())
    }

    /// Set the marker `name` to `value`.
    pub(super) fn set_marker(&mut self, name: &str, value: &str) -> Result<(), String> {
        self.database
            .set_marker(name, value)
            .map_err(|e| e.to_string())
    }

    /// Whether the database has a table called `table` (defined when first written).
    pub(super) fn has_table(&self, table: &str) -> bool {
        self.database.schema(table).is_some()
    }

    fn write_checking(
        &mut self,
        writes: Vec<(String, Write<'_>)>,
        walk_items: bool,
    ) -> Result<(), String> {
        self.check_writes(&writes, walk_items)?;
        self.database.write(writes).map_err(|e| e.to_string())
    }

    /// Check every key and (`walk_items`) item of `writes` by DynamoDB's rules, before
    /// anything changes: DynamoDB refuses the whole request.
    fn check_writes(
        &mut self,
        writes: &[(String, Write<'_>)],
        walk_items: bool,
    ) -> Result<(), String> {
        for (table, write) in writes {
            let (Write::Put(item) | Write::Delete(item)) = write;
            self.check_item(table, item, walk_items && matches!(write, Write::Put(_)))?;
        }
        Ok(())
    }

    /// Check `item`'s key in `table` and (`walk_values`) its values by DynamoDB's rules.
    fn check_item(&mut self, table: &str, item: &Item, walk_values: bool) -> Result<(), String> {
        let schema = self.schema(table)?;
        // Each key attribute checked in place, by its role in the table's key.
        let mut broken = None;
        for (name, is_sort_key) in [(schema.hash.as_str(), false)]
            .into_iter()
            .chain(schema.range.as_deref().map(|range| (range, true)))
        {
            let value = item.get(name).ok_or_else(|| missing_key(table, name))?;
            broken = broken.or_else(|| value_rules::broken_key_value(name, value, is_sort_key));
        }
        match broken.or_else(|| {
            walk_values
                .then(|| value_rules::first_broken(item))
                .flatten()
        }) {
            Some(broken) => Err(format!(
                "One or more parameter values were invalid: {}: {}",
                broken.path, broken.reason
            )),
            None => Ok(()),
        }
    }

    /// Every item of `table` in key order, handed to `each` one at a time.
    pub(super) fn scan<E: From<TablesError>>(
        &self,
        table: &str,
        each: &mut dyn FnMut(Item) -> Result<(), E>,
    ) -> Result<(), E> {
        self.database.scan(table, each)
    }

    /// How many items `table` holds.
    pub(super) fn count(&self, table: &str) -> Result<u64, TablesError> {
        self.database.count(table)
    }

    /// Tables with items, without the replay's own bookkeeping (a name no DynamoDB table has).
    pub(super) fn table_names(&self) -> Result<Vec<String>, String> {
        Ok(self
            .database
            .table_names()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|name| value_rules::check_table_name(name).is_ok())
            .collect())
    }

    /// One partition of a table or index, in sort-key order.
    pub(super) fn query(&mut self, query: &Query) -> Result<Vec<Item>, String> {
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
        let sort = match &query.sort_key {
            None => None,
            Some((sk_name, _)) if Some(sk_name) != schema.range.as_ref() => {
                return Err(format!(
                    "Query key condition not supported: {sk_name} is not the sort key"
                ))
            }
            Some((_, SortKey::BeginsWith(prefix))) => {
                Some(SortCondition::BeginsWith(AttributeValue::S(prefix.clone())))
            }
            Some((_, SortKey::AtLeast(from))) => {
                Some(SortCondition::AtLeast(AttributeValue::S(from.clone())))
            }
        };
        if embedded_tables::sortable_key::encode(pk_value).is_none() {
            return Ok(Vec::new());
        }
        self.schema(&query.table)?;
        let items = self
            .database
            .query(&KeyQuery {
                table: &query.table,
                index: query.index.as_deref(),
                partition: pk_value,
                sort,
                ascending: query.ascending,
            })
            .map_err(|e| e.to_string())?;
        // A condition on a string sort key holds for string sort keys only, as in DynamoDB.
        Ok(match (&query.sort_key, &schema.range) {
            (Some(_), Some(sk)) => items
                .into_iter()
                .filter(|item| matches!(item.get(sk), Some(AttributeValue::S(_))))
                .collect(),
            _ => items,
        })
    }

    /// Make every write so far durable.
    pub(super) fn sync(&mut self) -> Result<(), TablesError> {
        measure(Stage::Sync, || self.database.commit())
    }

    /// Commit every write so far (the end of a group of batches), on disk when the flush says
    /// so.
    pub(super) fn commit(&mut self) -> Result<Flush, TablesError> {
        measure(Stage::Sync, || self.database.commit_in_background())
    }

    /// Fold the write-ahead log into the database file (the end of a run).
    pub(super) fn checkpoint(&mut self) -> Result<(), TablesError> {
        measure(Stage::Checkpoint, || self.database.checkpoint())
    }
}

fn undefined(table: &str) -> String {
    format!("table {table} is not defined: give its schema with `replay --schema FILE` (its CreateTable or DescribeTable JSON), or replay a stream record of it first")
}

fn missing_key(table: &str, name: &str) -> String {
    format!("One of the required keys was not given a value: {name} (table {table})")
}

/// DynamoDB's refusal of a key without every key attribute.
fn require_key(table: &str, schema: &KeySchema, key: &Item) -> Result<(), String> {
    match key_names(schema)
        .into_iter()
        .find(|name| !key.contains_key(*name))
    {
        Some(name) => Err(missing_key(table, name)),
        None => Ok(()),
    }
}

pub(super) fn key_names(schema: &KeySchema) -> Vec<&str> {
    std::iter::once(schema.hash.as_str())
        .chain(schema.range.as_deref())
        .collect()
}

pub(super) fn to_crate(schema: &TableSchema) -> embedded_tables::TableSchema {
    let key = |k: &KeySchema| embedded_tables::KeySchema {
        hash: k.hash.clone(),
        range: k.range.clone(),
    };
    embedded_tables::TableSchema {
        key: key(&schema.key),
        indexes: schema
            .indexes
            .iter()
            .map(|(name, k)| (name.clone(), key(k)))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn from_crate(key: &embedded_tables::KeySchema) -> KeySchema {
    KeySchema {
        hash: key.hash.clone(),
        range: key.range.clone(),
    }
}

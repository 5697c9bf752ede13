//! Key schemas of the tables the worker knows: the seed tables' definitions (and the worker's own
//! aggregate-state table) compiled in from
//! `deploy/tables/`, plus what the stream itself shows for any other table.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use handlers::Item;
use serde::Deserialize;

/// The CreateTable JSON of every seed table and of the worker's aggregate-state table, embedded
/// at build time.
pub const DEFINITIONS: &[(&str, &str)] = &[
    (
        "ddb-stream-worker-aggregate-state",
        include_str!("../deploy/tables/ddb-stream-worker-aggregate-state.json"),
    ),
    (
        "aws-cost-platform-enhanced",
        include_str!("../deploy/tables/aws-cost-platform-enhanced.json"),
    ),
    (
        "marketplace-dev-bookings-table",
        include_str!("../deploy/tables/marketplace-dev-bookings-table.json"),
    ),
    (
        "marketplace-dev-idempotency-table",
        include_str!("../deploy/tables/marketplace-dev-idempotency-table.json"),
    ),
    (
        "marketplace-dev-providers-table",
        include_str!("../deploy/tables/marketplace-dev-providers-table.json"),
    ),
    (
        "marketplace-dev-reviews-table",
        include_str!("../deploy/tables/marketplace-dev-reviews-table.json"),
    ),
    (
        "marketplace-dev-users-table",
        include_str!("../deploy/tables/marketplace-dev-users-table.json"),
    ),
    (
        "PilotForce-Users",
        include_str!("../deploy/tables/PilotForce-Users.json"),
    ),
    (
        "PilotForce-Bookings",
        include_str!("../deploy/tables/PilotForce-Bookings.json"),
    ),
    (
        "PilotForce-Assets",
        include_str!("../deploy/tables/PilotForce-Assets.json"),
    ),
    (
        "acsd2p-dev-Conversations",
        include_str!("../deploy/tables/acsd2p-dev-Conversations.json"),
    ),
    (
        "acsd2p-dev-Threads",
        include_str!("../deploy/tables/acsd2p-dev-Threads.json"),
    ),
    (
        "acsd2p-dev-Sessions",
        include_str!("../deploy/tables/acsd2p-dev-Sessions.json"),
    ),
];

/// A CreateTable request as the seed writes it: CreateTable's own fields plus the TTL and
/// point-in-time-recovery settings, which `tables create` applies with their own calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableDefinition {
    pub table_name: String,
    #[serde(default)]
    pub billing_mode: Option<String>,
    #[serde(default)]
    pub attribute_definitions: Vec<AttributeDefinition>,
    pub key_schema: Vec<KeyElement>,
    #[serde(default)]
    pub global_secondary_indexes: Vec<IndexDefinition>,
    #[serde(default)]
    pub stream_specification: Option<StreamSpecification>,
    #[serde(default)]
    pub time_to_live_specification: Option<TimeToLive>,
}

impl TableDefinition {
    /// The definitions in a schema file: a CreateTable request, DescribeTable's output
    /// (`{"Table": {…}}`), or a list of either. `source` names the file in the error.
    pub fn from_schema_file(text: &str, source: &str) -> Result<Vec<TableDefinition>, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("{source}: not JSON: {e}"))?;
        let documents = match value {
            serde_json::Value::Array(documents) => documents,
            one => vec![one],
        };
        documents
            .into_iter()
            .map(|document| {
                let table = match document.get("Table") {
                    Some(table) => table.clone(),
                    None => document,
                };
                serde_json::from_value::<TableDefinition>(table)
                    .map_err(|e| format!("{source}: not a CreateTable or DescribeTable JSON: {e}"))
            })
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDefinition {
    pub attribute_name: String,
    pub attribute_type: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSpecification {
    pub stream_enabled: bool,
    #[serde(default)]
    pub stream_view_type: Option<String>,
}

/// Every seed definition, parsed; a definition that does not parse is a build bug caught by
/// this module's test, so at run time it is skipped.
pub fn seed_definitions() -> Vec<TableDefinition> {
    DEFINITIONS
        .iter()
        .filter_map(|(_, json)| serde_json::from_str(json).ok())
        .collect()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyElement {
    pub attribute_name: String,
    pub key_type: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IndexDefinition {
    pub index_name: String,
    pub key_schema: Vec<KeyElement>,
    #[serde(default)]
    pub projection: Option<Projection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Projection {
    pub projection_type: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimeToLive {
    pub attribute_name: String,
}

/// Hash and optional range attribute names of a table or index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySchema {
    pub hash: String,
    pub range: Option<String>,
}

impl KeySchema {
    fn from_elements(elements: &[KeyElement]) -> Option<KeySchema> {
        let named = |kind: &str| {
            elements
                .iter()
                .find(|e| e.key_type == kind)
                .map(|e| e.attribute_name.clone())
        };
        Some(KeySchema {
            hash: named("HASH")?,
            range: named("RANGE"),
        })
    }

    /// The key attributes of `item` (those it has).
    pub fn key_of(&self, item: &Item) -> Item {
        let mut key = Item::default();
        for name in std::iter::once(&self.hash).chain(self.range.as_ref()) {
            if let Some(value) = item.get(name) {
                key.insert(name.clone(), value.clone());
            }
        }
        key
    }
}

#[derive(Debug, Clone)]
pub struct TableSchema {
    pub key: KeySchema,
    pub indexes: HashMap<String, KeySchema>,
    /// True when the schema was guessed from a stream record's Keys, not defined.
    pub learned: bool,
    /// The seed table a configured name stands for, whose schema this is until a record or a
    /// key the worker uses shows the table's own key attributes.
    pub stands_for: Option<String>,
    /// Which of two key attributes is the partition key was guessed (nothing said): items are
    /// told apart, but the partition may be the other one.
    pub guessed: bool,
}

impl TableSchema {
    /// A schema known from keys alone: no index.
    fn learned(key: KeySchema) -> TableSchema {
        TableSchema {
            key,
            indexes: HashMap::new(),
            learned: true,
            stands_for: None,
            guessed: false,
        }
    }
}

/// Whether `keys` holds exactly the key attributes of `schema`.
fn key_names_match(schema: &KeySchema, keys: &Item) -> bool {
    keys.len() == 1 + usize::from(schema.range.is_some())
        && keys.contains_key(&schema.hash)
        && schema.range.as_ref().is_none_or(|r| keys.contains_key(r))
}

/// `schema` with its attributes as `keys` spell them, when each is the same name but for
/// case, `_` and `-`, and `keys` has no other.
fn respelt_key(schema: &KeySchema, keys: &Item) -> Option<KeySchema> {
    let plain = |name: &str| {
        name.chars()
            .filter(|c| !matches!(c, '_' | '-'))
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let spelt = |seed: &str| {
        let mut found = keys.keys().filter(|name| plain(name) == plain(seed));
        match (found.next(), found.next()) {
            (Some(name), None) => Some(name.clone()),
            _ => None,
        }
    };
    let key = KeySchema {
        hash: spelt(&schema.hash)?,
        range: match &schema.range {
            Some(range) => Some(spelt(range)?),
            None => None,
        },
    };
    (keys.len() == 1 + usize::from(key.range.is_some()) && Some(&key.hash) != key.range.as_ref())
        .then_some(key)
}

/// Shared, growable map of table name -> schema.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Each schema shared, so that a reader holds it without copying its key and indexes.
    tables: Arc<RwLock<HashMap<String, Arc<TableSchema>>>>,
    /// Counts the changes to `tables`, so that a user of a schema knows when to look again.
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Catalog {
    /// The compiled-in seed definitions.
    pub fn with_seed_definitions() -> Catalog {
        let catalog = Catalog::default();
        for definition in seed_definitions() {
            catalog.define(&definition);
        }
        catalog
    }

    pub fn define(&self, definition: &TableDefinition) {
        self.insert_definition(definition, false);
    }

    /// Define a table of the application's from a schema file (`replay --schema`): kept with
    /// the embedded state's own schemas, so later commands on the state know it too.
    pub fn adopt(&self, definition: &TableDefinition) {
        self.insert_definition(definition, true);
    }

    fn insert_definition(&self, definition: &TableDefinition, learned: bool) {
        let Some(key) = KeySchema::from_elements(&definition.key_schema) else {
            return;
        };
        let indexes = definition
            .global_secondary_indexes
            .iter()
            .filter_map(|i| {
                Some((
                    i.index_name.clone(),
                    KeySchema::from_elements(&i.key_schema)?,
                ))
            })
            .collect();
        self.change(|tables| {
            tables.insert(
                definition.table_name.clone(),
                Arc::new(TableSchema {
                    key,
                    indexes,
                    learned,
                    stands_for: None,
                    guessed: false,
                }),
            );
        });
    }

    /// A configured table name (`ACS_THREADS_TABLE=Threads`) stands for the seed table
    /// `seed`: it keeps the seed's key schema and indexes, unless something defines it, or a
    /// record or a key the worker uses shows other key attributes ([`Catalog::learn`]).
    pub fn alias(&self, name: &str, seed: &str) {
        let Some(schema) = self.schema(seed) else {
            return;
        };
        self.change(|tables| {
            tables.entry(name.to_string()).or_insert_with(|| {
                Arc::new(TableSchema {
                    learned: true,
                    stands_for: Some(seed.to_string()),
                    ..TableSchema::clone(&schema)
                })
            });
        });
    }

    /// Record a table's key attributes from a stream record's Keys (or the key of an item the
    /// worker reads or writes) if the table is unknown, or only stands for a seed table whose
    /// key attributes these are not. With two key attributes the stream does not say which is
    /// the hash key; the first by name is taken, which identifies items correctly (queries
    /// need a real definition: `replay --schema`). A replay refuses such records' table before
    /// it starts ([`Catalog::knows_key`]); the guess is left for keys the worker itself uses.
    pub fn learn(&self, table: &str, keys: &Item) {
        // Known for good: defined, learned, or standing for a seed table with these keys.
        let settled = |schema: &TableSchema| {
            schema.stands_for.is_none() || key_names_match(&schema.key, keys)
        };
        let known = self
            .tables
            .read()
            .is_ok_and(|t| t.get(table).is_some_and(|schema| settled(schema)));
        if keys.is_empty() || known {
            return;
        }
        // A seed table's keys spelt in the application's style (`pk` for `PK`, `booking_id`
        // for `bookingId`) say which is which.
        let respelt = self
            .schema(table)
            .and_then(|schema| respelt_key(&schema.key, keys));
        let mut names: Vec<&String> = keys.keys().collect();
        names.sort();
        let guessed = respelt.is_none() && names.len() >= 2;
        let key = respelt.unwrap_or_else(|| KeySchema {
            hash: names[0].clone(),
            range: names.get(1).map(|n| (*n).clone()),
        });
        if let Some(range) = key.range.as_ref().filter(|_| guessed) {
            // Items are told apart all the same; a query of the table needs the real one.
            tracing::warn!(
                table,
                "the key of {table} is {} and {range}, and nothing says which is the partition \
                 key: {} is taken; if it is not, give the table's schema with `replay --schema \
                 FILE` (CreateTable or DescribeTable JSON; `capture` writes one beside its events)",
                key.hash,
                key.hash
            );
        }
        self.change(|tables| {
            // In place of a seed table's schema these keys do not fit, if that is there.
            if tables.get(table).is_none_or(|schema| !settled(schema)) {
                let schema = TableSchema {
                    guessed,
                    ..TableSchema::learned(key)
                };
                tables.insert(table.to_string(), Arc::new(schema));
            }
        });
    }

    /// Whether the run knows which of `names` (a record's two key attributes) is the
    /// partition key of `table`: a definition, a schema file or the state says so with these
    /// attributes, or `table` stands for a seed table whose key they spell in another style.
    pub fn knows_key(&self, table: &str, names: &[String]) -> bool {
        let keys = Item::from(
            names
                .iter()
                .map(|n| (n.clone(), serde_dynamo::AttributeValue::Null(true)))
                .collect::<HashMap<_, _>>(),
        );
        self.schema(table).is_some_and(|schema| {
            key_names_match(&schema.key, &keys)
                || (schema.stands_for.is_some() && respelt_key(&schema.key, &keys).is_some())
        })
    }

    /// Record a key schema for `table` unless it already has one.
    pub fn learn_schema(&self, table: &str, key: KeySchema) {
        self.remember(table, key, HashMap::new());
    }

    /// Record a table's key and indexes as a state kept them, unless it already has a schema.
    pub fn remember(&self, table: &str, key: KeySchema, indexes: HashMap<String, KeySchema>) {
        self.change(|tables| {
            tables.entry(table.to_string()).or_insert_with(|| {
                Arc::new(TableSchema {
                    indexes,
                    ..TableSchema::learned(key)
                })
            });
        });
    }

    /// How many times the schemas changed: the same number means the same schemas.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Change the schemas, and count it once the change is made.
    fn change(&self, apply: impl FnOnce(&mut HashMap<String, Arc<TableSchema>>)) {
        if let Ok(mut tables) = self.tables.write() {
            apply(&mut tables);
        }
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Whether which of `table`'s two key attributes is the partition key was guessed
    /// ([`TableSchema::guessed`]); without copying its schema.
    pub fn guessed(&self, table: &str) -> bool {
        self.tables
            .read()
            .is_ok_and(|t| t.get(table).is_some_and(|schema| schema.guessed))
    }

    pub fn schema(&self, table: &str) -> Option<Arc<TableSchema>> {
        self.tables.read().ok()?.get(table).cloned()
    }

    /// The key of `item` in `table`, or the whole item's PK/SK when the table is unknown.
    pub fn key_of(&self, table: &str, item: &Item) -> Item {
        match self.schema(table) {
            Some(schema) => schema.key.key_of(item),
            None => KeySchema {
                hash: "PK".into(),
                range: Some("SK".into()),
            }
            .key_of(item),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_definition_parses_and_names_its_file() {
        for (name, json) in DEFINITIONS {
            let definition: TableDefinition = serde_json::from_str(json).unwrap();
            assert_eq!(&definition.table_name, name);
        }
        assert_eq!(seed_definitions().len(), DEFINITIONS.len());
        let catalog = Catalog::with_seed_definitions();
        let cost = catalog.schema("aws-cost-platform-enhanced").unwrap();
        assert_eq!(cost.key.hash, "PK");
        assert_eq!(cost.indexes["GSI1"].range.as_deref(), Some("GSI1SK"));
    }

    fn keys(names: &[&str]) -> Item {
        Item::from(
            names
                .iter()
                .map(|n| (n.to_string(), serde_dynamo::AttributeValue::S("x".into())))
                .collect::<HashMap<_, _>>(),
        )
    }

    #[test]
    fn a_seed_tables_keys_in_another_style_keep_which_is_the_partition_key() {
        let catalog = Catalog::with_seed_definitions();
        catalog.alias("Estimations", "aws-cost-platform-enhanced");
        catalog.learn("Estimations", &keys(&["sk", "pk"]));
        let key = catalog.schema("Estimations").unwrap().key.clone();
        assert_eq!(
            (key.hash.as_str(), key.range.as_deref()),
            ("pk", Some("sk"))
        );

        catalog.alias("Responses", "acsd2p-dev-Conversations");
        catalog.learn("Responses", &keys(&["ResponseId", "ConversationId"]));
        let key = catalog.schema("Responses").unwrap().key.clone();
        assert_eq!(key.hash, "ConversationId");
        assert_eq!(key.range.as_deref(), Some("ResponseId"));

        // Names that are not the seed's in any spelling: the first by name, as before.
        catalog.alias("Other", "aws-cost-platform-enhanced");
        catalog.learn("Other", &keys(&["tenant", "id"]));
        assert_eq!(catalog.schema("Other").unwrap().key.hash, "id");
    }
}

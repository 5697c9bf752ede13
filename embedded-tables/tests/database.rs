//! The database as its callers use it: define, write, read, query, commit, reopen.

use std::collections::{BTreeMap, HashMap};

use embedded_tables::{
    Database, KeyQuery, KeySchema, SortCondition, TableSchema, TablesError, Write,
};
use serde_dynamo::{AttributeValue, Item};

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.into())
}

fn n(text: &str) -> AttributeValue {
    AttributeValue::N(text.into())
}

fn item(pairs: &[(&str, AttributeValue)]) -> Item {
    Item::from(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<HashMap<_, _>>(),
    )
}

fn key(hash: &str, range: Option<&str>) -> KeySchema {
    KeySchema {
        hash: hash.into(),
        range: range.map(str::to_string),
    }
}

/// The cost platform's shape: PK/SK and a GSI on GSI1PK/GSI1SK.
fn single_table() -> TableSchema {
    TableSchema {
        key: key("PK", Some("SK")),
        indexes: BTreeMap::from([("GSI1".to_string(), key("GSI1PK", Some("GSI1SK")))]),
    }
}

fn sks(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|i| match i.get("SK") {
            Some(AttributeValue::S(sk)) => sk.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn written_items_read_back_and_survive_a_reopen_once_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite");
    let mut db = Database::open(&path).unwrap();
    db.define("t", &single_table()).unwrap();
    let a = item(&[
        ("PK", s("E#1")),
        ("SK", s("METADATA")),
        ("Total", n("12.50")),
    ]);
    db.write(vec![("t".into(), Write::put(a.clone()))]).unwrap();
    let key = item(&[("PK", s("E#1")), ("SK", s("METADATA"))]);
    assert_eq!(
        db.get("t", &key).unwrap(),
        Some(a.clone()),
        "seen before the commit"
    );
    db.commit().unwrap();
    // Written after the last commit: gone with the process.
    let b = item(&[("PK", s("E#2")), ("SK", s("METADATA"))]);
    db.write(vec![("t".into(), Write::put(b.clone()))]).unwrap();
    drop(db);

    let mut db = Database::open(&path).unwrap();
    assert_eq!(db.schema("t"), Some(&single_table()));
    assert_eq!(db.get("t", &key).unwrap(), Some(a));
    assert_eq!(db.get("t", &b).unwrap(), None);
}

#[test]
fn a_set_of_writes_is_kept_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::open(&dir.path().join("s.sqlite")).unwrap();
    db.define("t", &single_table()).unwrap();
    let good = item(&[("PK", s("E#1")), ("SK", s("A"))]);
    let no_sort_key = item(&[("PK", s("E#1"))]);
    let error = db
        .write(vec![
            ("t".into(), Write::put(good.clone())),
            ("t".into(), Write::put(no_sort_key)),
        ])
        .unwrap_err();
    assert!(
        matches!(&error, TablesError::BadKey { attribute, .. } if attribute == "SK"),
        "{error}"
    );
    assert!(!error.is_retryable());
    assert_eq!(db.get("t", &good).unwrap(), None);
    let error = db
        .write(vec![("nope".into(), Write::put(good.clone()))])
        .unwrap_err();
    assert!(matches!(error, TablesError::UnknownTable(_)), "{error}");
}

/// Writes guarded by a marker: applied with it when it is not set, and when it is, nothing is
/// written and its value is returned (a record applied before); after a reopen too, and with
/// the guarded item read back from the guarded write.
#[test]
fn writes_guarded_by_a_marker_are_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let mut db = Database::open(&path).unwrap();
    db.define("t", &single_table()).unwrap();
    let put = |v: &str| {
        vec![(
            "t".to_string(),
            Write::put(item(&[
                ("PK", s("E#1")),
                ("SK", s("A")),
                ("GSI1PK", s("G")),
                ("GSI1SK", s(v)),
            ])),
        )]
    };
    let first = item(&[("PK", s("E#1")), ("SK", s("A"))]);
    assert_eq!(db.marker("event-1").unwrap(), None);
    assert_eq!(
        db.write_if_unmarked("event-1", "seq 1", put("first"))
            .unwrap(),
        None
    );
    assert_eq!(db.get("t", &first).unwrap().unwrap()["GSI1SK"], s("first"));
    assert_eq!(
        db.write_if_unmarked("event-1", "seq 2", put("second"))
            .unwrap(),
        Some("seq 1".to_string()),
        "the marker's value, and nothing written"
    );
    db.commit().unwrap();
    drop(db);

    let mut db = Database::open(&path).unwrap();
    assert_eq!(
        db.write_if_unmarked("event-1", "seq 3", put("third"))
            .unwrap(),
        Some("seq 1".to_string())
    );
    assert_eq!(db.get("t", &first).unwrap().unwrap()["GSI1SK"], s("first"));
    let by_index = db
        .query(&KeyQuery {
            table: "t",
            index: Some("GSI1"),
            partition: &s("G"),
            sort: None,
            ascending: true,
        })
        .unwrap();
    assert_eq!(by_index.len(), 1, "one index entry: {by_index:?}");
    // A key that cannot be placed refuses the whole set before anything is written.
    let error = db
        .write_if_unmarked(
            "event-2",
            "seq 4",
            vec![("t".into(), Write::put(item(&[("PK", s("E#2"))])))],
        )
        .unwrap_err();
    assert!(matches!(error, TablesError::BadKey { .. }), "{error}");
    assert_eq!(db.marker("event-2").unwrap(), None);
    // A marker set, then set over, kept as last set.
    db.set_marker("#run", "1").unwrap();
    db.commit().unwrap();
    db.set_marker("#run", "2").unwrap();
    db.commit().unwrap();
    drop(db);
    let db = Database::open(&path).unwrap();
    assert_eq!(db.marker("#run").unwrap().as_deref(), Some("2"));
    assert_eq!(db.marker("event-1").unwrap().as_deref(), Some("seq 1"));
}

/// A database of the format before markers had tables (format 1) opens for writing as this
/// format, its items as they were and markers usable; read only, it opens as it is.
#[test]
fn a_database_of_the_format_before_markers_is_brought_to_this_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let kept = database_with_one_item(&path);
    // As format 1 left it: no markers tables.
    run_sql(
        &path,
        &format!("{DROP_LATER_TABLES} UPDATE format SET version = '1';"),
    );

    let mut read_only = Database::open_read_only(&path).unwrap();
    assert_eq!(read_only.get("t", &kept).unwrap(), Some(kept.clone()));
    drop(read_only);
    let mut db = Database::open(&path).unwrap();
    assert_eq!(db.get("t", &kept).unwrap(), Some(kept.clone()));
    assert_eq!(db.write_if_unmarked("e", "v", Vec::new()).unwrap(), None);
    db.commit().unwrap();
    drop(db);
    assert_eq!(format_of(&path), "5");
    assert_eq!(format_of(&path), embedded_tables::database::FORMAT);
}

/// An item of `t` at (`pk`, `sk`) in the index `GSI1` at (`gsi_pk`, `gsi_sk`).
fn in_index(pk: &str, sk: &str, gsi_pk: &str, gsi_sk: &str) -> Item {
    item(&[
        ("PK", s(pk)),
        ("SK", s(sk)),
        ("GSI1PK", s(gsi_pk)),
        ("GSI1SK", s(gsi_sk)),
    ])
}

/// The items of `t` under `GSI1PK` = `partition`, by the index.
fn by_index(db: &mut Database, partition: &str) -> Result<Vec<Item>, TablesError> {
    db.query(&KeyQuery {
        table: "t",
        index: Some("GSI1"),
        partition: &s(partition),
        sort: None,
        ascending: true,
    })
}

/// The rows of `table` in the database at `path`.
fn rows(path: &std::path::Path, table: &str) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
}

/// An index's entries are made at its first query, from the items written before (none
/// written until then), and kept with every write after, across a reopen.
#[test]
fn an_index_is_made_at_its_first_query_and_kept_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let mut db = Database::open(&path).unwrap();
    db.define("t", &single_table()).unwrap();
    let (a, b) = (
        in_index("E#1", "A", "G", "1"),
        in_index("E#1", "B", "G", "2"),
    );
    let unindexed = item(&[("PK", s("E#1")), ("SK", s("C"))]);
    db.write(vec![
        ("t".into(), Write::put(a.clone())),
        ("t".into(), Write::put(b.clone())),
        ("t".into(), Write::put(unindexed)),
    ])
    .unwrap();
    db.commit().unwrap();
    assert_eq!(rows(&path, "index_entries"), 0, "no entries before a query");
    assert_eq!(rows(&path, "unindexed"), 1);

    assert_eq!(by_index(&mut db, "G").unwrap(), [a.clone(), b.clone()]);
    let (d, b_moved) = (
        in_index("E#1", "D", "G", "0"),
        in_index("E#1", "B", "H", "2"),
    );
    db.write(vec![
        ("t".into(), Write::put(d.clone())),
        ("t".into(), Write::put(b_moved.clone())),
    ])
    .unwrap();
    assert_eq!(by_index(&mut db, "G").unwrap(), [d.clone(), a.clone()]);
    db.commit().unwrap();
    drop(db);
    assert_eq!(rows(&path, "unindexed"), 0);
    let mut db = Database::open(&path).unwrap();
    assert_eq!(by_index(&mut db, "G").unwrap(), [d, a]);
    assert_eq!(by_index(&mut db, "H").unwrap(), [b_moved]);
}

/// A database open for reading only cannot make an index: a query by one not made yet says
/// which, and which commands make it.
#[test]
fn an_index_not_made_yet_is_named_to_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    database_with_one_item(&path);
    let mut read_only = Database::open_read_only(&path).unwrap();
    let refused = by_index(&mut read_only, "G").unwrap_err();
    assert!(
        matches!(&refused, TablesError::IndexNotMade { table, index } if table == "t" && index == "GSI1"),
        "{refused:?}"
    );
    assert!(
        refused.to_string().contains("replay, reconcile"),
        "{refused}"
    );
    assert!(!refused.is_retryable());
}

/// An index made in a batch that is then undone (a write failing part way, on an item damaged
/// by hand) is undone with it: the next query makes it again and finds its items.
#[test]
fn an_index_made_in_an_undone_batch_is_made_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let mut db = Database::open(&path).unwrap();
    // `damaged` in `t`, whose index is made, so that a replacement reads it.
    db.define("t", &single_table()).unwrap();
    let damaged = in_index("E#1", "A", "G", "1");
    db.write(vec![("t".into(), Write::put(damaged.clone()))])
        .unwrap();
    assert_eq!(
        by_index(&mut db, "G").unwrap(),
        std::slice::from_ref(&damaged)
    );
    db.define("other", &single_table()).unwrap();
    let other = in_index("E#2", "A", "G", "1");
    db.write(vec![("other".into(), Write::put(other.clone()))])
        .unwrap();
    db.commit().unwrap();
    drop(db);
    run_sql(
        &path,
        "UPDATE items SET item = 'not json' WHERE table_id = \
         (SELECT id FROM tables WHERE name = 't')",
    );

    let mut db = Database::open(&path).unwrap();
    let other_by_index = |db: &mut Database| {
        db.query(&KeyQuery {
            table: "other",
            index: Some("GSI1"),
            partition: &s("G"),
            sort: None,
            ascending: true,
        })
    };
    assert_eq!(
        other_by_index(&mut db).unwrap(),
        std::slice::from_ref(&other)
    );
    let failed = db.write(vec![("t".into(), Write::put(damaged))]);
    assert!(
        matches!(failed, Err(TablesError::Corrupt { .. })),
        "{failed:?}"
    );
    let committed = db.commit();
    assert!(
        matches!(committed, Err(TablesError::BatchUndone { .. })),
        "{committed:?}"
    );
    assert_eq!(rows(&path, "unindexed"), 1, "the index of `other` not made");
    assert_eq!(other_by_index(&mut db).unwrap(), [other], "made again");
    db.commit().unwrap();
    assert_eq!(rows(&path, "unindexed"), 0);
}

/// A database of format 4, which kept every index's entries, opens for writing as this format
/// with its indexes kept (not made again); read only, it opens as it is and is queried by them.
#[test]
fn the_indexes_of_format_4_are_kept_in_this_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let mut db = Database::open(&path).unwrap();
    db.define("t", &single_table()).unwrap();
    assert_eq!(by_index(&mut db, "G").unwrap(), [], "the index made");
    let a = in_index("E#1", "A", "G", "1");
    db.write(vec![("t".into(), Write::put(a.clone()))]).unwrap();
    db.commit().unwrap();
    drop(db);
    // As format 4 left it: no `unindexed` table, every index's entries kept.
    run_sql(
        &path,
        "DROP TABLE unindexed; UPDATE format SET version = '4';",
    );

    let mut read_only = Database::open_read_only(&path).unwrap();
    assert_eq!(
        by_index(&mut read_only, "G").unwrap(),
        std::slice::from_ref(&a)
    );
    drop(read_only);
    assert_eq!(format_of(&path), "4", "reading converts nothing");
    let mut db = Database::open(&path).unwrap();
    assert_eq!(by_index(&mut db, "G").unwrap(), [a]);
    db.commit().unwrap();
    drop(db);
    assert_eq!(format_of(&path), embedded_tables::database::FORMAT);
    assert_eq!(rows(&path, "unindexed"), 0);
}

/// A database of format 2, whose markers were one table keyed by name, opens for writing as
/// this format with every marker found as before (a record applied before is still); read
/// only, it opens as it is.
#[test]
fn the_markers_of_format_2_are_brought_to_this_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let kept = database_with_one_item(&path);
    run_sql(
        &path,
        &format!(
            "{DROP_LATER_TABLES} UPDATE format SET version = '2';
             CREATE TABLE markers (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
             INSERT INTO markers VALUES ('event-1', 'seq 1'), ('event-2', 'seq 2'), ('#run', '4');"
        ),
    );

    assert_converted_with_markers_kept(&path, &kept, "2");
    let db = Database::open(&path).unwrap();
    assert_eq!(db.marker("#run").unwrap().as_deref(), Some("4"));
}

/// A database of format 3, whose markers' hashes were all in one tree, opens for writing as this
/// format with every marker found as before; read only, it opens as it is.
#[test]
fn the_markers_of_format_3_are_found_in_this_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let kept = database_with_one_item(&path);
    let mut db = Database::open(&path).unwrap();
    for (name, value) in [("event-1", "seq 1"), ("event-2", "seq 2")] {
        assert_eq!(db.write_if_unmarked(name, value, Vec::new()).unwrap(), None);
    }
    db.commit().unwrap();
    drop(db);
    // As format 3 left it: every hash in `marker_names`, no recent tree.
    run_sql(
        &path,
        "INSERT INTO marker_names SELECT hash, marker FROM marker_names_recent;
         DROP TABLE marker_names_recent; DROP TABLE unindexed; UPDATE format SET version = '3';",
    );

    assert_converted_with_markers_kept(&path, &kept, "3");
}

/// A database at `path` of the format `earlier`, holding `kept` in the table `t` and the
/// markers `event-1` and `event-2` (`seq 1`, `seq 2`): read only, it opens as it is; opened
/// for writing, it becomes this format, a record applied before is still, a new one is
/// applied, and all three are found after a reopen.
fn assert_converted_with_markers_kept(path: &std::path::Path, kept: &Item, earlier: &str) {
    let mut read_only = Database::open_read_only(path).unwrap();
    assert_eq!(read_only.get("t", kept).unwrap(), Some(kept.clone()));
    drop(read_only);
    assert_eq!(format_of(path), earlier, "reading converts nothing");
    let mut db = Database::open(path).unwrap();
    assert_eq!(db.get("t", kept).unwrap(), Some(kept.clone()));
    assert_eq!(
        db.write_if_unmarked("event-2", "seq 9", Vec::new())
            .unwrap(),
        Some("seq 2".to_string()),
        "a record applied before is still"
    );
    assert_eq!(
        db.write_if_unmarked("event-3", "seq 3", Vec::new())
            .unwrap(),
        None
    );
    db.commit().unwrap();
    drop(db);
    assert_eq!(format_of(path), embedded_tables::database::FORMAT);
    let db = Database::open(path).unwrap();
    for (name, value) in [
        ("event-1", "seq 1"),
        ("event-2", "seq 2"),
        ("event-3", "seq 3"),
    ] {
        assert_eq!(db.marker(name).unwrap().as_deref(), Some(value), "{name}");
    }
}

/// Two names with one hash: the second marker is found by its name, and neither hides the
/// other (a hash taken by another name is made here by hand; FNV-1a's 64 bits rarely give one).
#[test]
fn a_marker_whose_hash_another_has_is_found_by_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let mut db = Database::open(&path).unwrap();
    assert_eq!(
        db.write_if_unmarked("a", "value a", Vec::new()).unwrap(),
        None
    );
    db.commit().unwrap();
    drop(db);
    let sqlite = rusqlite::Connection::open(&path).unwrap();
    sqlite
        .execute(
            "INSERT INTO marker_names (hash, marker) SELECT ?1, id FROM markers WHERE name = 'a'",
            [embedded_tables::markers::name_hash("b")],
        )
        .unwrap();
    drop(sqlite);

    let mut db = Database::open(&path).unwrap();
    db.define("t", &single_table()).unwrap();
    assert_eq!(db.marker("b").unwrap(), None, "a's marker is not b's");
    let guarded = item(&[("PK", s("E#1")), ("SK", s("A"))]);
    let put = vec![("t".to_string(), Write::put(guarded.clone()))];
    assert_eq!(
        db.write_if_unmarked("b", "value b", put.clone()).unwrap(),
        None
    );
    assert_eq!(
        db.get("t", &guarded).unwrap(),
        Some(guarded.clone()),
        "applied"
    );
    db.commit().unwrap();
    drop(db);
    let mut db = Database::open(&path).unwrap();
    assert_eq!(
        db.write_if_unmarked("b", "again", put).unwrap(),
        Some("value b".to_string())
    );
    db.set_marker("b", "set over").unwrap();
    assert_eq!(db.marker("b").unwrap().as_deref(), Some("set over"));
    assert_eq!(db.marker("a").unwrap().as_deref(), Some("value a"));
    db.commit().unwrap();
    drop(db);
    let sqlite = rusqlite::Connection::open(&path).unwrap();
    let shared: i64 = sqlite
        .query_row("SELECT count(*) FROM marker_names_shared", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(shared, 1);
}

/// Runs `sql` on the database at `path` with SQLite itself (to make an earlier format by hand).
fn run_sql(path: &std::path::Path, sql: &str) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

/// Drops every markers table and the `unindexed` table (to make a database of an earlier
/// format by hand: those kept every index's entries).
const DROP_LATER_TABLES: &str = "DROP TABLE markers; DROP TABLE marker_names; \
     DROP TABLE marker_names_recent; DROP TABLE marker_names_shared; DROP TABLE unindexed;";

/// A database at `path` of this format with one item in the table `t`, which is returned.
fn database_with_one_item(path: &std::path::Path) -> Item {
    let mut db = Database::open(path).unwrap();
    db.define("t", &single_table()).unwrap();
    let kept = item(&[("PK", s("E#1")), ("SK", s("A"))]);
    db.write(vec![("t".into(), Write::put(kept.clone()))])
        .unwrap();
    db.commit().unwrap();
    kept
}

/// The format the database at `path` says it has.
fn format_of(path: &std::path::Path) -> String {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("SELECT version FROM format", [], |row| row.get(0))
        .unwrap()
}

#[test]
fn a_query_reads_one_partition_in_sort_key_order_with_its_condition() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::open(&dir.path().join("s.sqlite")).unwrap();
    db.define("t", &single_table()).unwrap();
    let mut writes = Vec::new();
    for sk in [
        "STORAGE#b",
        "CALCULATION#1",
        "SERVER#b",
        "METADATA",
        "SERVER#a",
        "DATABASE#x",
    ] {
        writes.push((
            "t".to_string(),
            Write::put(item(&[("PK", s("E#1")), ("SK", s(sk))])),
        ));
    }
    writes.push((
        "t".into(),
        Write::put(item(&[("PK", s("E#2")), ("SK", s("SERVER#z"))])),
    ));
    db.write(writes).unwrap();
    let mut query = |sort, ascending| {
        db.query(&KeyQuery {
            table: "t",
            index: None,
            partition: &s("E#1"),
            sort,
            ascending,
        })
        .unwrap()
    };
    assert_eq!(
        sks(&query(Some(SortCondition::BeginsWith(s("SERVER#"))), true)),
        ["SERVER#a", "SERVER#b"]
    );
    assert_eq!(
        sks(&query(Some(SortCondition::AtLeast(s("DATABASE#"))), true)),
        [
            "DATABASE#x",
            "METADATA",
            "SERVER#a",
            "SERVER#b",
            "STORAGE#b"
        ]
    );
    assert_eq!(
        sks(&query(None, false)),
        [
            "STORAGE#b",
            "SERVER#b",
            "SERVER#a",
            "METADATA",
            "DATABASE#x",
            "CALCULATION#1"
        ]
    );
}

#[test]
fn numbers_sort_by_value_and_an_index_follows_puts_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::open(&dir.path().join("s.sqlite")).unwrap();
    let schema = TableSchema {
        key: key("id", None),
        indexes: BTreeMap::from([("byProvider".to_string(), key("providerId", Some("at")))]),
    };
    db.define("reviews", &schema).unwrap();
    let review = |id: &str, provider: &str, at: &str| {
        item(&[("id", s(id)), ("providerId", s(provider)), ("at", n(at))])
    };
    db.write(vec![
        ("reviews".into(), Write::put(review("r1", "p1", "10"))),
        ("reviews".into(), Write::put(review("r2", "p1", "9"))),
        ("reviews".into(), Write::put(review("r3", "p1", "100"))),
        ("reviews".into(), Write::put(review("r4", "p2", "1"))),
        // Without the index's sort key: not in the index.
        (
            "reviews".into(),
            Write::put(item(&[("id", s("r5")), ("providerId", s("p1"))])),
        ),
    ])
    .unwrap();
    let by_provider = |db: &mut Database| {
        db.query(&KeyQuery {
            table: "reviews",
            index: Some("byProvider"),
            partition: &s("p1"),
            sort: None,
            ascending: true,
        })
        .unwrap()
        .iter()
        .map(|i| match i.get("id") {
            Some(AttributeValue::S(id)) => id.clone(),
            _ => String::new(),
        })
        .collect::<Vec<_>>()
    };
    assert_eq!(by_provider(&mut db), ["r2", "r1", "r3"]);
    // r3 moves to p2, r2 goes: the index follows.
    db.write(vec![
        ("reviews".into(), Write::put(review("r3", "p2", "100"))),
        ("reviews".into(), Write::delete(item(&[("id", s("r2"))]))),
    ])
    .unwrap();
    assert_eq!(by_provider(&mut db), ["r1"]);
    let error = db
        .query(&KeyQuery {
            table: "reviews",
            index: Some("nope"),
            partition: &s("p1"),
            sort: None,
            ascending: true,
        })
        .unwrap_err();
    assert!(matches!(error, TablesError::UnknownIndex { .. }), "{error}");
}

#[test]
fn an_item_written_over_keeps_its_index_entries_where_its_attributes_put_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let mut db = Database::open(&path).unwrap();
    db.define("t", &single_table()).unwrap();
    let profile = |gsi: Option<(&str, &str)>, name: &str| {
        let mut pairs = vec![("PK", s("P#1")), ("SK", s("PROFILE")), ("name", s(name))];
        if let Some((pk, sk)) = gsi {
            pairs.extend([("GSI1PK", s(pk)), ("GSI1SK", s(sk))]);
        }
        item(&pairs)
    };
    let in_index = |db: &mut Database, partition: &str| {
        sks(&db
            .query(&KeyQuery {
                table: "t",
                index: Some("GSI1"),
                partition: &s(partition),
                sort: None,
                ascending: true,
            })
            .unwrap())
    };
    let put = |db: &mut Database, item: Item| db.write(vec![("t".into(), Write::put(item))]);
    put(&mut db, profile(Some(("ORG#a", "1")), "first")).unwrap();
    // Read, so the item is cached: the writes below replace an item the database knows.
    assert!(db.get("t", &profile(None, "")).unwrap().is_some());
    // The index key stays, other attributes change: still found by it, as written now.
    put(&mut db, profile(Some(("ORG#a", "1")), "second")).unwrap();
    let found = db
        .query(&KeyQuery {
            table: "t",
            index: Some("GSI1"),
            partition: &s("ORG#a"),
            sort: None,
            ascending: true,
        })
        .unwrap();
    assert_eq!(found, vec![profile(Some(("ORG#a", "1")), "second")]);
    // The index key changes: found by the new one only.
    put(&mut db, profile(Some(("ORG#b", "1")), "third")).unwrap();
    assert_eq!(in_index(&mut db, "ORG#a"), Vec::<String>::new());
    assert_eq!(in_index(&mut db, "ORG#b"), ["PROFILE"]);
    // Without the index's attributes: in no partition of it.
    put(&mut db, profile(None, "fourth")).unwrap();
    assert_eq!(in_index(&mut db, "ORG#b"), Vec::<String>::new());
    put(&mut db, profile(Some(("ORG#c", "1")), "fifth")).unwrap();
    db.commit().unwrap();
    drop(db);
    let mut db = Database::open(&path).unwrap();
    assert_eq!(in_index(&mut db, "ORG#c"), ["PROFILE"]);
    assert_eq!(
        db.get("t", &profile(None, "")).unwrap(),
        Some(profile(Some(("ORG#c", "1")), "fifth"))
    );
    // Deleted while cached: gone from the index too.
    db.write(vec![("t".into(), Write::delete(profile(None, "")))])
        .unwrap();
    assert_eq!(in_index(&mut db, "ORG#c"), Vec::<String>::new());
    assert_eq!(db.get("t", &profile(None, "")).unwrap(), None);
}

#[test]
fn a_redefined_table_places_its_items_by_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Database::open(&dir.path().join("s.sqlite")).unwrap();
    // Learned the wrong way round first: `at` taken for the partition key.
    db.define(
        "conv",
        &TableSchema {
            key: key("at", Some("thread")),
            indexes: BTreeMap::new(),
        },
    )
    .unwrap();
    let message = |thread: &str, at: &str| item(&[("thread", s(thread)), ("at", s(at))]);
    // Each item's place under the new key is the other's under the old one.
    let (first, second) = (message("1", "2"), message("2", "1"));
    db.write(vec![
        ("conv".into(), Write::put(first.clone())),
        ("conv".into(), Write::put(second.clone())),
    ])
    .unwrap();
    // Read, so both are cached at their old places.
    assert_eq!(db.get("conv", &first).unwrap().as_ref(), Some(&first));
    assert_eq!(db.get("conv", &second).unwrap().as_ref(), Some(&second));
    db.define(
        "conv",
        &TableSchema {
            key: key("thread", Some("at")),
            indexes: BTreeMap::new(),
        },
    )
    .unwrap();
    for item in [&first, &second] {
        let found = db
            .query(&KeyQuery {
                table: "conv",
                index: None,
                partition: item.get("thread").unwrap(),
                sort: None,
                ascending: true,
            })
            .unwrap();
        assert_eq!(found, vec![item.clone()]);
        assert_eq!(db.get("conv", item).unwrap().as_ref(), Some(item));
    }
    db.commit().unwrap();
    let mut count = 0;
    db.scan("conv", &mut |_| {
        count += 1;
        Ok::<_, TablesError>(())
    })
    .unwrap();
    assert_eq!(count, 2);
}

/// A database at `path` with one table, `t`, keyed by `id`.
fn writer_of_one_table(path: &std::path::Path) -> Database {
    let mut writer = Database::open(path).unwrap();
    writer
        .define(
            "t",
            &TableSchema {
                key: key("id", None),
                indexes: BTreeMap::new(),
            },
        )
        .unwrap();
    writer
}

#[test]
fn a_reader_sees_what_the_writer_committed_while_it_writes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let mut writer = writer_of_one_table(&path);
    writer
        .write(vec![("t".into(), Write::put(item(&[("id", s("a"))])))])
        .unwrap();
    writer.commit().unwrap();
    writer
        .write(vec![("t".into(), Write::put(item(&[("id", s("b"))])))])
        .unwrap();

    let reader = Database::open_read_only(&path).unwrap();
    let mut seen = Vec::new();
    reader
        .scan("t", &mut |i| {
            seen.push(i);
            Ok::<_, TablesError>(())
        })
        .unwrap();
    assert_eq!(seen, vec![item(&[("id", s("a"))])]);
    assert_eq!(reader.table_names().unwrap(), ["t"]);
    let error = Database::open_read_only(&path)
        .unwrap()
        .write(vec![("t".into(), Write::put(item(&[("id", s("c"))])))])
        .unwrap_err();
    assert!(matches!(error, TablesError::ReadOnly));
}

/// The write-ahead log is folded into the file by a thread of the database's own while
/// batches commit: a checkpoint (the end of a run) leaves it empty, waiting for that thread,
/// and the database goes on writing after it.
#[test]
fn a_checkpoint_empties_the_log_and_writing_goes_on_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite");
    let wal = dir.path().join("state.sqlite-wal");
    let mut db = Database::open(&path).unwrap();
    db.define("t", &single_table()).unwrap();
    let big = "x".repeat(2_000);
    for round in 0..3 {
        for batch in 0..20 {
            let writes = (0..100)
                .map(|i| {
                    let pk = format!("E#{round}-{batch}-{i}");
                    let item = item(&[("PK", s(&pk)), ("SK", s("M")), ("Text", s(&big))]);
                    ("t".to_string(), Write::put(item))
                })
                .collect();
            db.write(writes).unwrap();
            db.commit().unwrap();
        }
        assert!(
            std::fs::metadata(&wal).unwrap().len() > 0,
            "commits go to the log"
        );
        db.checkpoint().unwrap();
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0, "round {round}");
    }
    drop(db);
    let mut db = Database::open_read_only(&path).unwrap();
    let last = item(&[("PK", s("E#2-19-99")), ("SK", s("M"))]);
    assert!(db.get("t", &last).unwrap().is_some());
}

/// A set of writes that fails part way (here on a stored item damaged by hand, which its
/// replacement must read to keep the index) is not kept in part: the whole batch is undone,
/// the rest of the batch is refused, and its commit says so, for the batch to run again.
#[test]
fn a_write_failing_part_way_undoes_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite");
    let mut db = Database::open(&path).unwrap();
    db.define("t", &single_table()).unwrap();
    let damaged = item(&[("PK", s("E#1")), ("SK", s("M")), ("GSI1PK", s("G"))]);
    db.write(vec![("t".into(), Write::put(damaged.clone()))])
        .unwrap();
    // The index made (at its first query), so that a replacement reads what it replaces.
    db.query(&KeyQuery {
        table: "t",
        index: Some("GSI1"),
        partition: &s("G"),
        sort: None,
        ascending: true,
    })
    .unwrap();
    db.commit().unwrap();
    drop(db);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE items SET item = 'not json'", [])
        .unwrap();

    let mut db = Database::open(&path).unwrap();
    let earlier = item(&[("PK", s("E#2")), ("SK", s("M"))]);
    db.write(vec![("t".into(), Write::put(earlier.clone()))])
        .unwrap();
    let first_of_set = item(&[("PK", s("E#3")), ("SK", s("M"))]);
    let failed = db.write(vec![
        ("t".into(), Write::put(first_of_set.clone())),
        ("t".into(), Write::put(damaged)),
    ]);
    assert!(
        matches!(failed, Err(TablesError::Corrupt { .. })),
        "{failed:?}"
    );
    let after = db.get("t", &earlier);
    assert!(
        matches!(after, Err(TablesError::BatchUndone { .. })),
        "{after:?}"
    );
    let commit = db.commit();
    assert!(
        matches!(&commit, Err(e @ TablesError::BatchUndone { .. }) if e.is_retryable()),
        "{commit:?}"
    );
    // The next batch sees the state before the undone one.
    assert_eq!(db.get("t", &earlier).unwrap(), None);
    assert_eq!(db.get("t", &first_of_set).unwrap(), None);
}

/// A batch committed in the background is seen by a reader at once, the writer goes on with
/// the next batch, and the flush of the first to disk ends without an error; a batch that
/// wrote nothing has nothing to flush.
#[test]
fn a_batch_committed_in_the_background_is_read_at_once_and_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let mut writer = writer_of_one_table(&path);
    writer.commit().unwrap();
    let put = |id: &str| vec![("t".to_string(), Write::put(item(&[("id", s(id))])))];
    writer.write(put("a")).unwrap();
    let first = writer.commit_in_background().unwrap();
    let mut seen = Vec::new();
    Database::open_read_only(&path)
        .unwrap()
        .scan("t", &mut |i| {
            seen.push(i);
            Ok::<_, TablesError>(())
        })
        .unwrap();
    assert_eq!(seen, vec![item(&[("id", s("a"))])]);
    writer.write(put("b")).unwrap();
    first.wait().unwrap();
    writer.commit_in_background().unwrap().wait().unwrap();
    writer.commit_in_background().unwrap().wait().unwrap();
    drop(writer);
    let reopened = Database::open_read_only(&path).unwrap();
    let mut count = 0;
    reopened
        .scan("t", &mut |_| {
            count += 1;
            Ok::<_, TablesError>(())
        })
        .unwrap();
    assert_eq!(count, 2);
}

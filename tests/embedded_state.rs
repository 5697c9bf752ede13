//! The embedded state: durable, crash-safe, one process at a time, and safe with hostile keys.

mod support;

use ddb_stream_worker::adapters::embedded::{EmbeddedState, StateError};
use ddb_stream_worker::catalog::Catalog;
use handlers::item::string_key;
use handlers::ports::{Mail, Mailer, Object, Objects, Tables};
use handlers::{AttributeValue, PortError, ReactionError};
use support::COST_TABLE;

fn item(pk: &str, sk: &str, n: &str) -> handlers::Item {
    let mut item = string_key(&[("PK", pk), ("SK", sk)]);
    item.insert("N".into(), AttributeValue::N(n.into()));
    item
}

#[tokio::test]
async fn what_was_synced_survives_a_crash_and_what_was_not_is_gone_whole() {
    let dir = tempfile::tempdir().unwrap();
    {
        let state =
            EmbeddedState::open(dir.path(), Catalog::with_seed_definitions(), false).unwrap();
        Tables::put(&state, COST_TABLE, item("A", "1", "1"), None)
            .await
            .unwrap();
        Tables::put(&state, COST_TABLE, item("A", "2", "2"), None)
            .await
            .unwrap();
        state.sync().unwrap();
        // Written, not synced: the process "crashes" here (dropped without a sync).
        Tables::put(&state, COST_TABLE, item("A", "3", "3"), None)
            .await
            .unwrap();
        Tables::delete(&state, COST_TABLE, &item("A", "1", "1"), None)
            .await
            .unwrap();
    }
    let state = EmbeddedState::open(dir.path(), Catalog::with_seed_definitions(), false).unwrap();
    let sks = |state: &EmbeddedState| -> Vec<String> {
        support::dump(state, Some(COST_TABLE)).unwrap()[0]
            .1
            .iter()
            .map(|i| i["SK"]["S"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(sks(&state), ["1", "2"]);
    Tables::put(&state, COST_TABLE, item("A", "3", "3"), None)
        .await
        .unwrap();
    state.compact().unwrap();
    drop(state);
    let reopened =
        EmbeddedState::open_read_only(dir.path(), Catalog::with_seed_definitions()).unwrap();
    assert_eq!(sks(&reopened), ["1", "2", "3"]);
}

/// The state is one SQLite file that `sqlite3` (or any SQLite) reads by the schema in
/// docs/embedded-state.md, and it reloads identically.
#[tokio::test]
async fn the_state_is_one_sqlite_file_a_person_can_query_and_it_reloads_identically() {
    let dir = tempfile::tempdir().unwrap();
    let state = EmbeddedState::open(dir.path(), Catalog::with_seed_definitions(), false).unwrap();
    for i in 0..50 {
        Tables::put(
            &state,
            COST_TABLE,
            item("P", &format!("{i:03}"), "1.50"),
            None,
        )
        .await
        .unwrap();
    }
    state.compact().unwrap();
    let before = support::dump(&state, None).unwrap();
    drop(state);
    let db = rusqlite::Connection::open(dir.path().join("state.sqlite")).unwrap();
    let items: Vec<String> = db
        .prepare("SELECT item FROM table_items WHERE table_name = ?1")
        .unwrap()
        .query_map([COST_TABLE], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(items.len(), 50);
    assert!(
        items[0].contains(r#""N":{"N":"1.5"}"#),
        "numbers are stored as DynamoDB normalizes them: {}",
        items[0]
    );
    let sk: String = db
        .query_row(
            "SELECT json_extract(item, '$.SK.S') FROM table_items \
             WHERE table_name = ?1 AND json_extract(item, '$.SK.S') = '007'",
            [COST_TABLE],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(sk, "007");
    drop(db);
    let reopened =
        EmbeddedState::open(dir.path(), Catalog::with_seed_definitions(), false).unwrap();
    assert_eq!(support::dump(&reopened, None).unwrap(), before);
}

#[tokio::test]
async fn one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let _first = EmbeddedState::open(dir.path(), Catalog::default(), false).unwrap();
    match EmbeddedState::open(dir.path(), Catalog::default(), false) {
        Err(StateError::Locked(_)) => {}
        other => panic!("expected Locked, got {:?}", other.err()),
    }
}

#[tokio::test]
async fn fresh_refuses_to_empty_a_directory_that_is_not_a_state() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("thesis.tex"), "precious").unwrap();
    match EmbeddedState::open(dir.path(), Catalog::default(), true) {
        Err(StateError::NotAStateDir(_)) => {}
        other => panic!("expected NotAStateDir, got {:?}", other.err()),
    }
    assert!(dir.path().join("thesis.tex").exists());
}

#[tokio::test]
async fn objects_are_files_and_unsafe_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = EmbeddedState::open(dir.path(), Catalog::default(), false).unwrap();
    let object = |key: &str| Object {
        bucket: "docs-bucket".into(),
        key: key.into(),
        content_type: "application/pdf".into(),
        body: b"%PDF-1.7".to_vec(),
    };
    Objects::put(&state, object("proposals/est456/doc789.pdf"))
        .await
        .unwrap();
    let path = dir
        .path()
        .join("objects/docs-bucket/proposals/est456/doc789.pdf");
    assert_eq!(std::fs::read(&path).unwrap(), b"%PDF-1.7");
    Objects::delete(&state, "docs-bucket", "proposals/est456/doc789.pdf")
        .await
        .unwrap();
    assert!(!path.exists());
    Objects::delete(&state, "docs-bucket", "proposals/est456/doc789.pdf")
        .await
        .expect("deleting a missing object succeeds, as in S3");
    for key in ["../../../etc/passwd", "/etc/passwd", "a/../../b"] {
        match Objects::put(&state, object(key)).await {
            Err(e @ PortError::Permanent { .. }) => {
                assert!(e.to_string().contains("unsafe"), "{e}")
            }
            other => panic!("{key}: expected a permanent refusal, got {other:?}"),
        }
    }
    assert!(!dir.path().parent().unwrap().join("etc").exists());
}

#[tokio::test]
async fn mail_goes_to_the_outbox_as_an_eml_a_person_can_open() {
    let dir = tempfile::tempdir().unwrap();
    let state = EmbeddedState::open(dir.path(), Catalog::default(), false).unwrap();
    let mail = Mail::new(
        "noreply@sagesoft.com",
        "john.doe@sagesoft.com",
        "Proposal ready – €8,500/month",
        "Hello John".into(),
        None,
    )
    .unwrap();
    let id = state.send(&mail).await.unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    assert!(eml.contains(&format!("Message-ID: <{id}@")));
    assert!(eml.contains("To: john.doe@sagesoft.com\r\n"));
    let subject = eml.lines().find(|l| l.starts_with("Subject: ")).unwrap();
    assert!(
        subject.is_ascii() && subject.to_ascii_lowercase().contains("=?utf-8?"),
        "non-ASCII subjects are encoded: {eml}"
    );
    assert!(eml.trim_end().ends_with("Hello John"), "{eml}");
}

#[test]
fn header_injection_in_mail_fields_is_refused() {
    let inject =
        |from: &str, to: &str, subject: &str| Mail::new(from, to, subject, String::new(), None);
    for (from, to, subject) in [
        ("noreply@x.com", "a@b.com\r\nBcc: victim@c.com", "s"),
        ("noreply@x.com", "a@b.com", "Hi\r\nBcc: victim@c.com"),
        ("noreply@x.com\nBcc: v@c.com", "a@b.com", "s"),
        ("noreply@x.com", "a@b.com, victim@c.com", "s"),
        ("noreply@x.com", "not-an-address", "s"),
    ] {
        assert!(
            matches!(inject(from, to, subject), Err(ReactionError::Rejected(_))),
            "{from:?} {to:?} {subject:?}"
        );
    }
}

/// A state an earlier version wrote (table files, journals, learned schemas) is converted into
/// the database the first time it is opened, a torn last journal line dropped as then.
#[tokio::test]
async fn a_state_of_the_earlier_format_is_converted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("tables")).unwrap();
    std::fs::write(
        root.join(format!("tables/{COST_TABLE}.jsonl")),
        [
            r#"{"PK":{"S":"A"},"SK":{"S":"1"},"N":{"N":"1"}}"#,
            r#"{"PK":{"S":"A"},"SK":{"S":"2"},"N":{"N":"2"}}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    std::fs::write(
        root.join("schemas.json"),
        r#"{"Conv":{"hash":"thread","range":"at"}}"#,
    )
    .unwrap();
    std::fs::write(
        root.join("journal.jsonl"),
        concat!(
            r#"{"ops":[{"table":"aws-cost-platform-enhanced","hash":"PK","range":"SK","delete":{"PK":{"S":"A"},"SK":{"S":"1"}}},"#,
            r#"{"table":"Conv","hash":"thread","range":"at","put":{"thread":{"S":"c-1"},"at":{"S":"9"}}}]}"#,
            "\n",
            r#"{"ops":[{"table":"aws-cost-platform-enhanced","hash":"PK","range":"SK","put":{"PK":{"S":"A"},"SK":{"S":"3"#,
        ),
    )
    .unwrap();
    // `state show` opens it for reading: converted all the same.
    let state = EmbeddedState::open_read_only(root, Catalog::with_seed_definitions()).unwrap();
    let dump = support::dump(&state, None).unwrap();
    let tables: Vec<(&str, usize)> = dump.iter().map(|(t, i)| (t.as_str(), i.len())).collect();
    assert_eq!(tables, [("Conv", 1), (COST_TABLE, 1)]);
    assert_eq!(dump[1].1[0]["SK"]["S"], "2");
    for earlier in ["tables", "journal.jsonl", "schemas.json"] {
        assert!(!root.join(earlier).exists(), "{earlier} is gone");
    }
    // The schema it had learned is kept with the state.
    drop(state);
    let catalog = Catalog::with_seed_definitions();
    let _state = EmbeddedState::open(root, catalog.clone(), false).unwrap();
    assert_eq!(catalog.schema("Conv").unwrap().key.hash, "thread");
}

/// A state whose replayed records' markers an earlier version kept as items of
/// `#replay-applied` (format 1, before markers had a table of their own): replaying the same
/// file again is a re-delivery of records applied by an earlier run, a new record is applied,
/// and the run numbers go on from the one the earlier version kept.
#[test]
fn markers_an_earlier_version_kept_as_items_still_count() {
    use embedded_tables::{Database, KeySchema, TableSchema, Write};
    use support::cli::{event, replay_file};
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let file = event("cost-platform-audit");
    let (code, first, stderr) = replay_file(&file, &state);
    assert_eq!(code, 0, "{stderr}");
    // The state as format 1 had it: every marker an item of `#replay-applied`, and the run
    // count the item `#run`, which says 6 runs.
    let path = state.join("state.sqlite");
    let sqlite = rusqlite::Connection::open(&path).unwrap();
    let markers: Vec<(String, String)> = sqlite
        .prepare("SELECT name, value FROM markers WHERE name != '#run'")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(markers.len(), 4, "{markers:?}");
    drop(sqlite);
    let mut db = Database::open(&path).unwrap();
    let applied = "#replay-applied";
    db.define(
        applied,
        &TableSchema {
            key: KeySchema {
                hash: "eventId".into(),
                range: None,
            },
            indexes: Default::default(),
        },
    )
    .unwrap();
    let mut writes = Vec::new();
    for (event_id, value) in &markers {
        let parts: Vec<&str> = value.split('\t').collect();
        let marker = string_key(&[
            ("eventId", event_id.as_str()),
            ("table", parts[0]),
            ("sequenceNumber", parts[1]),
            ("run", "5"),
        ]);
        writes.push((applied.to_string(), Write::put(marker)));
    }
    let mut runs = string_key(&[("eventId", "#run")]);
    runs.insert("runs".into(), AttributeValue::N("6".into()));
    writes.push((applied.to_string(), Write::put(runs)));
    db.write(writes).unwrap();
    db.commit().unwrap();
    drop(db);
    let sqlite = rusqlite::Connection::open(&path).unwrap();
    sqlite
        .execute_batch(
            "DROP TABLE markers; DROP TABLE marker_names; DROP TABLE marker_names_recent; \
             DROP TABLE marker_names_shared; UPDATE format SET version = '1';",
        )
        .unwrap();
    drop(sqlite);

    let (code, again, stderr) = replay_file(&file, &state);
    assert_eq!(code, 0, "{stderr}");
    for (before, line) in first[..4].iter().zip(&again[..4]) {
        assert_eq!(before["applied"], true);
        assert_eq!(line["already_applied"], true, "{line}");
        assert_ne!(line["applied_earlier_in_this_run"], true, "{line}");
    }
    // A record of its own is applied now, by run 7.
    let mut text = std::fs::read_to_string(&file).unwrap();
    for (event_id, _) in &markers {
        text = text.replace(event_id.as_str(), &format!("{event_id}-new"));
    }
    let renamed = dir.path().join("renamed.json");
    std::fs::write(&renamed, text).unwrap();
    let (code, new, stderr) = replay_file(&renamed, &state);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(new[0]["applied"], true, "{}", new[0]);
    assert_ne!(new[0]["already_applied"], true, "{}", new[0]);
    let sqlite = rusqlite::Connection::open(&path).unwrap();
    let (version, run): (String, String) = sqlite
        .query_row(
            "SELECT (SELECT version FROM format), (SELECT value FROM markers WHERE name = '#run')",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((version.as_str(), run.as_str()), ("5", "8"));
    let new_marker: String = sqlite
        .query_row(
            "SELECT value FROM markers WHERE name = ?1",
            [format!("{}-new", markers[0].0)],
            |row| row.get(0),
        )
        .unwrap();
    assert!(new_marker.ends_with("\t8"), "{new_marker}");
}

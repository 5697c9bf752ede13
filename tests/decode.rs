//! Decoding: every shipped event file decodes and round-trips; defects are per record.

use std::path::Path;

use aws_lambda_events::event::dynamodb::Event;
use ddb_stream_worker::decode::{decode_event, RecordDefect};
use handlers::ChangeKind;

fn event_files() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "events/ ships scenario files");
    files
}

#[test]
fn every_event_file_decodes_and_round_trips_through_the_lambda_type() {
    for path in event_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            name.split('-').count() >= 2,
            "{name} is named <system>-<what>.json"
        );
        let records = decode_event(&text, &name, None).unwrap_or_else(|e| panic!("{e}"));
        assert!(!records.is_empty(), "{name}");
        let event: Event = serde_json::from_str(&text).unwrap();
        let again: Event = serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        assert_eq!(event, again, "{name} round-trips");
        let redecoded = decode_event(&serde_json::to_string(&again).unwrap(), &name, None).unwrap();
        for (a, b) in records.iter().zip(&redecoded) {
            assert_eq!(a.change, b.change, "{name}");
            assert_eq!(a.sequence_number, b.sequence_number);
        }
    }
}

#[test]
fn changes_carry_table_kind_images_and_ttl_origin() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("events/cost-platform-ttl-delete.json"),
    )
    .unwrap();
    let records = decode_event(&text, "ttl", None).unwrap();
    let change = records[0].change.as_ref().unwrap();
    assert_eq!(change.table, "aws-cost-platform-enhanced");
    assert_eq!(change.kind, ChangeKind::Remove);
    assert!(change.expired_by_ttl);
    assert!(change.new.is_none() && change.old.is_some());
    assert_eq!(change.approximate_creation.timestamp(), 1708005600);
}

#[test]
fn a_keys_only_record_is_a_defect_of_that_record_not_of_the_file() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("events/cost-platform-poison-mid-batch.json"),
    )
    .unwrap();
    let records = decode_event(&text, "poison", None).unwrap();
    assert!(records[0].change.is_ok() && records[2].change.is_ok());
    match &records[1].change {
        Err(RecordDefect::MissingImage { view_type, .. }) => assert_eq!(view_type, "KEYS_ONLY"),
        other => panic!("expected a missing image, got {other:?}"),
    }
}

#[test]
fn an_unknown_event_name_is_a_defect() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("events/cost-platform-ttl-delete.json"),
    )
    .unwrap()
    .replace("\"REMOVE\"", "\"TRUNCATE\"");
    let records = decode_event(&text, "x", None).unwrap();
    assert_eq!(
        records[0].change.as_ref().unwrap_err(),
        &RecordDefect::UnknownEventName("TRUNCATE".into())
    );
}

#[test]
fn a_record_of_the_wrong_shape_is_a_defect_naming_the_path() {
    let text = r#"{"Records":[{"eventID":"1","eventName":"INSERT","eventSourceARN":"arn:aws:dynamodb:us-east-1:1:table/t-1/stream/x","dynamodb":{"ApproximateCreationDateTime":1705312800,"SequenceNumber":"100000000000000000001","Keys":{"PK":{"X":"1"}}}}]}"#;
    let records = decode_event(text, "odd.json", None).unwrap();
    match &records[0].change {
        Err(RecordDefect::Shape { path, .. }) => {
            assert!(path.starts_with("dynamodb.Keys"), "{path}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(records[0].sequence_number, "100000000000000000001");
}

/// `n` records of a shipped file, repeated, as one event's `Records` elements (JSON text).
fn many_records(n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(&event_files()[0]).unwrap();
    let event: serde_json::Value = serde_json::from_str(&text).unwrap();
    let records = event["Records"].as_array().unwrap();
    (0..n)
        .map(|i| records[i % records.len()].to_string())
        .collect()
}

fn event_of(records: &[String]) -> String {
    format!("{{\"Records\": [\n{}\n]}}", records.join(",\n"))
}

/// The first pass of a replay only refuses what makes a whole file unusable: it counts a
/// record of the wrong shape (the second pass parks it) and reports malformed JSON where it is.
#[test]
fn the_first_pass_refuses_only_what_makes_the_file_unusable() {
    use ddb_stream_worker::decode::{check_records, for_each_record, Probing};
    let in_order = |text: &str| for_each_record(text.as_bytes(), "f.json", None, &mut |_| {});
    let checked = |text: &str| {
        check_records(text.as_bytes(), "f.json", None, Probing::Beside).map(|file| file.records)
    };
    let records = many_records(3000);

    let whole = event_of(&records);
    assert_eq!(checked(&whole).unwrap(), 3000);
    assert_eq!(in_order(&whole).unwrap(), 3000);

    // A wrong shape is one record, parked later; the file is still usable.
    let mut shape = records.clone();
    shape[1700] = r#"{"eventID": 5}"#.to_string();
    shape[1800] = "[1, \"not a record\"]".to_string();
    shape[1900] = "null".to_string();
    let text = event_of(&shape);
    assert_eq!(checked(&text).unwrap(), 3000);
    let mut defects = Vec::new();
    for_each_record(text.as_bytes(), "f.json", None, &mut |r| {
        if r.change.is_err() {
            defects.push(r)
        }
    })
    .unwrap();
    assert_eq!(defects.len(), 3);

    // Broken JSON: the JSON error, with its line, from both passes.
    let mut broken = records.clone();
    broken[2000] = "{\"eventID\": ".to_string();
    let text = event_of(&broken);
    let error = checked(&text).unwrap_err().to_string();
    assert_eq!(error, in_order(&text).unwrap_err().to_string());
    assert!(error.contains("malformed JSON"), "{error}");
}

/// A large file's records probed beside its parse (on a thread of their own) or as it is
/// parsed, and a small one's: the first pass learns the same from them, in file order (the first key seen of
/// each table with a two-attribute key, the first eventID when no record names its table).
#[test]
fn the_first_pass_learns_the_same_of_a_file_of_any_size() {
    use ddb_stream_worker::decode::{check_records, DecodeError, Probing, PROBE_BESIDE_FROM};
    let record = |i: usize, table: &str, keys: &[&str]| {
        let keys: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .map(|k| (k.to_string(), serde_json::json!({"S": format!("{k}{i}")})))
            .collect();
        let mut record = serde_json::json!({
            "eventID": format!("e{i}"),
            "eventName": "INSERT",
            "dynamodb": {"Keys": keys, "SequenceNumber": format!("{:021}", i + 1),
                         "NewImage": {"pad": {"S": "x".repeat(400)}}},
        });
        if !table.is_empty() {
            record["eventSourceARN"] = serde_json::json!(format!(
                "arn:aws:dynamodb:us-east-1:1:table/{table}/stream/x"
            ));
        }
        record.to_string()
    };
    // Tables whose first two-attribute key comes late, after many others of other tables.
    let file = |n: usize| {
        let records: Vec<String> = (0..n)
            .map(|i| match i {
                _ if i == n - 2 => record(i, "late", &["a", "b"]),
                _ if i == n - 1 => record(i, "late", &["c", "d"]),
                _ if i % 3 == 0 => record(i, "one", &["PK"]),
                _ if i % 3 == 1 => record(i, "two", &["PK", "SK"]),
                _ => record(i, "two", &["X", "Y"]),
            })
            .collect();
        event_of(&records)
    };
    let (small, large) = (file(30), file(6000));
    assert!(small.len() < PROBE_BESIDE_FROM && large.len() > 2 * PROBE_BESIDE_FROM);
    let ways = [Probing::InLine, Probing::Beside];
    for (text, probing) in [&small, &large]
        .into_iter()
        .flat_map(|t| ways.map(|w| (t, w)))
    {
        let checked = check_records(text.as_bytes(), "f.json", None, probing).unwrap();
        let keys: Vec<(&str, Vec<&str>)> = checked
            .composite_keys
            .iter()
            .map(|(t, k)| (t.as_str(), k.iter().map(String::as_str).collect()))
            .collect();
        let sorted = |mut k: Vec<&'static str>| {
            k.sort();
            k
        };
        assert_eq!(
            keys,
            [
                ("late", sorted(vec!["a", "b"])),
                ("two", sorted(vec!["PK", "SK"]))
            ]
        );
    }
    // No record names its table: the file is refused, naming the first record's eventID.
    let unnamed = |n: usize| {
        let records: Vec<String> = (0..n).map(|i| record(i, "", &["PK"])).collect();
        event_of(&records)
    };
    for (text, probing) in [unnamed(30), unnamed(6000)]
        .into_iter()
        .flat_map(|t| ways.map(|w| (t.clone(), w)))
    {
        match check_records(text.as_bytes(), "f.json", None, probing) {
            Err(DecodeError::NoTable { event_id, .. }) => assert_eq!(event_id, "e0"),
            other => panic!("{:?}", other.map(|f| f.records)),
        }
    }
}

/// A replay's second pass reads each record where the first found it: the same records, texts
/// and defects as a reading of the whole file, also with other top-level keys, odd spacing and
/// records that are not objects; and should the file change in between, the records before
/// the change are handed over and the error names the file and the record.
#[test]
fn the_second_pass_reads_each_record_where_the_first_found_it() {
    use ddb_stream_worker::decode::{
        check_records, for_each_checked_record, for_each_record, Probing,
    };
    let mut records = many_records(300);
    records[7] = "null".to_string();
    records[8] = "[1, {\"eventID\": \"x\"}]".to_string();
    records[9] = r#"{"eventID": "spaced" , "eventName" :"INSERT"}"#.to_string();
    let text = format!(
        "{{ \"NextShardIterator\": {{\"a\": [1, 2]}},\n \"Records\" :[ {} ] , \"z\": 1 }}",
        records.join(" ,\n\t")
    );
    let raw = |r: ddb_stream_worker::decode::StreamRecord| {
        (
            r.raw.to_string(),
            r.change.as_ref().err().map(|d| d.to_string()),
        )
    };
    let mut whole = Vec::new();
    for_each_record(text.as_bytes(), "f.json", Some("t-table"), &mut |r| {
        whole.push(raw(r))
    })
    .unwrap();
    let checked =
        check_records(text.as_bytes(), "f.json", Some("t-table"), Probing::InLine).unwrap();
    let mut again = Vec::new();
    let count = for_each_checked_record(
        text.as_bytes(),
        &checked,
        "f.json",
        Some("t-table"),
        &mut |r| again.push(raw(r)),
    )
    .unwrap();
    assert_eq!(count, 300);
    assert_eq!(again, whole);
    assert_eq!(again[9].0, records[9]);
    // Without the spans (a replay of very many records keeps none for its later files): the
    // file parsed through again, to the same records.
    let mut forgotten =
        check_records(text.as_bytes(), "f.json", Some("t-table"), Probing::InLine).unwrap();
    forgotten.forget_spans();
    let mut through = Vec::new();
    for_each_checked_record(
        text.as_bytes(),
        &forgotten,
        "f.json",
        Some("t-table"),
        &mut |r| through.push(raw(r)),
    )
    .unwrap();
    assert_eq!(through, whole);

    // Written again meanwhile, with record 120 shorter: the 120 before it, then the error.
    let mut shorter = records.clone();
    shorter[120] = "{}".to_string();
    let changed = format!(
        "{{ \"NextShardIterator\": {{\"a\": [1, 2]}},\n \"Records\" :[ {} ] , \"z\": 1 }}",
        shorter.join(" ,\n\t")
    );
    let mut handed = 0;
    let error = for_each_checked_record(
        changed.as_bytes(),
        &checked,
        "f.json",
        Some("t-table"),
        &mut |_| handed += 1,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(handed, 120, "{error}");
    assert!(
        error.starts_with("f.json: changed while it was replayed: record 120"),
        "{error}"
    );
    // Cut short: the records that are still whole, then the error.
    let cut = &text.as_bytes()[..text.len() / 2];
    let mut handed = 0;
    let error = for_each_checked_record(cut, &checked, "f.json", None, &mut |_| handed += 1)
        .unwrap_err()
        .to_string();
    assert!(handed > 100 && handed < 200, "{handed}: {error}");
    assert!(error.contains("changed while it was replayed"), "{error}");
}

/// The stream runner decodes DynamoDB Streams' records from the SDK's types, without JSON:
/// the records it gets are the ones Lambda's JSON of the same records decodes to, TTL
/// deletions, milliseconds and broken records included.
#[test]
fn records_from_the_sdk_decode_as_their_lambda_json_does() {
    use aws_sdk_dynamodbstreams::primitives::DateTime;
    use aws_sdk_dynamodbstreams::types::{
        AttributeValue as V, Identity, OperationType, Record, StreamRecord as Sdk, StreamViewType,
    };
    use ddb_stream_worker::decode::{decode_stream_records, decode_value};
    use ddb_stream_worker::stream::get_records::lambda_event;
    let arn = "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2024-01-15T10:00:00.000";
    let record = |id: &str, name: OperationType, seq: &str, new: bool, old: bool| {
        let image = |total: &str| {
            [
                ("pk".to_string(), V::S("order#1".into())),
                ("total".to_string(), V::N(total.into())),
                ("tags".to_string(), V::Ss(vec!["a".into(), "b".into()])),
            ]
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>()
        };
        let mut stream = Sdk::builder()
            .approximate_creation_date_time(DateTime::from_millis(1_705_312_800_123))
            .keys("pk", V::S("order#1".into()))
            .sequence_number(seq)
            .size_bytes(120)
            .stream_view_type(StreamViewType::NewAndOldImages);
        if new {
            stream = stream.set_new_image(Some(image("12.50")));
        }
        if old {
            stream = stream.set_old_image(Some(image("10")));
        }
        Record::builder()
            .event_id(id)
            .event_name(name)
            .event_version("1.1")
            .event_source("aws:dynamodb")
            .aws_region("us-east-1")
            .dynamodb(stream.build())
    };
    let ttl = Identity::builder()
        .r#type("Service")
        .principal_id("dynamodb.amazonaws.com")
        .build();
    let records = vec![
        record(
            "e1",
            OperationType::Insert,
            "100000000000000000001",
            true,
            false,
        )
        .build(),
        record(
            "e2",
            OperationType::Modify,
            "100000000000000000002",
            true,
            true,
        )
        .build(),
        record(
            "e3",
            OperationType::Remove,
            "100000000000000000003",
            false,
            true,
        )
        .user_identity(ttl)
        .build(),
        // Broken: no OldImage on a MODIFY, a sequence number no stream gives, an eventID twice.
        record(
            "e4",
            OperationType::Modify,
            "100000000000000000004",
            true,
            false,
        )
        .build(),
        record("e5", OperationType::Insert, "12", true, false).build(),
        record(
            "e1",
            OperationType::Insert,
            "100000000000000000006",
            true,
            false,
        )
        .build(),
    ];
    let from_json = decode_value(lambda_event(&records, arn), "stream", None).unwrap();
    let texts: Vec<std::sync::Arc<str>> = from_json.iter().map(|r| r.raw.clone()).collect();
    let from_sdk = decode_stream_records(records.iter().zip(texts), arn);
    assert_eq!(from_sdk.len(), records.len());
    for (sdk, json) in from_sdk.iter().zip(&from_json) {
        assert_eq!(sdk.event_id, json.event_id);
        assert_eq!(sdk.table, "Orders");
        assert_eq!(sdk.keys, json.keys);
        assert_eq!(sdk.sequence_number, json.sequence_number);
        assert_eq!(sdk.change, json.change, "{}", sdk.event_id);
    }
    let change = from_sdk[2].change.as_ref().unwrap();
    assert!(change.expired_by_ttl);
    assert_eq!(
        change.approximate_creation.timestamp_millis(),
        1_705_312_800_123
    );
    assert!(matches!(
        from_sdk[3].change,
        Err(RecordDefect::MissingImage { .. })
    ));
    assert!(matches!(
        from_sdk[4].change,
        Err(RecordDefect::Identity { .. })
    ));
    assert!(matches!(
        from_sdk[5].change,
        Err(RecordDefect::DuplicateEventId { .. })
    ));
}

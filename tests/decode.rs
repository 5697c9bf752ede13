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
fn a_non_stream_event_names_the_path_that_is_wrong() {
    let err = decode_event(r#"{"Records":[{"eventID":"1","eventName":"INSERT","dynamodb":{"Keys":{"PK":{"X":"1"}}}}]}"#, "odd.json", None).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("odd.json: not a DynamoDB stream event at `Records[0].dynamodb.Keys"),
        "{message}"
    );
}

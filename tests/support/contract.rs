//! The port contract: one suite every Tables/Objects/Mailer adapter must pass, with
//! DynamoDB's own behaviour as the reference. Each case uses its own partition keys (a random
//! run id), so the suite can run against a shared table.

use handlers::item::string_key;
use handlers::ports::{
    Comparison, Condition, Mail, Mailer, Object, Objects, Query, SortKey, Tables, Update,
    WriteRequest,
};
use handlers::{AttributeValue, Item, PortError};

pub const TABLE: &str = "aws-cost-platform-enhanced";

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.into())
}

fn run_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

fn item(pk: &str, sk: &str, extra: &[(&str, AttributeValue)]) -> Item {
    let mut item = string_key(&[("PK", pk), ("SK", sk)]);
    for (k, v) in extra {
        item.insert(k.to_string(), v.clone());
    }
    item
}

pub async fn conditional_put_reports_the_existing_item(tables: &dyn Tables) {
    let pk = format!("CONTRACT#{}", run_id());
    let first = item(&pk, "A", &[("Version", n("1"))]);
    let only_new = Condition::NotExists("PK".into());
    tables
        .put(TABLE, first.clone(), Some(&only_new))
        .await
        .expect("first put succeeds");
    let again = tables
        .put(
            TABLE,
            item(&pk, "A", &[("Version", n("2"))]),
            Some(&only_new),
        )
        .await;
    match again {
        Err(PortError::ConditionFailed {
            existing: Some(existing),
            ..
        }) => assert_eq!(*existing, first),
        other => panic!("expected ConditionFailed with the existing item, got {other:?}"),
    }
    // A comparison on a missing attribute is false, and <> on it is true.
    let missing_lt = Condition::Compare("Nope".into(), Comparison::Lt, n("5"));
    assert!(matches!(
        tables.put(TABLE, first.clone(), Some(&missing_lt)).await,
        Err(PortError::ConditionFailed { .. })
    ));
    let missing_ne = Condition::Compare("Nope".into(), Comparison::Ne, n("5"));
    tables
        .put(TABLE, first.clone(), Some(&missing_ne))
        .await
        .expect("<> on a missing attribute holds");
    let version_is_1 = Condition::Or(vec![
        Condition::eq("Version", n("1")),
        Condition::NotExists("PK".into()),
    ]);
    tables
        .put(
            TABLE,
            item(&pk, "A", &[("Version", n("2"))]),
            Some(&version_is_1),
        )
        .await
        .expect("OR condition holds");
    assert_eq!(
        tables
            .get(TABLE, &string_key(&[("PK", &pk), ("SK", "A")]))
            .await
            .unwrap()
            .unwrap()["Version"],
        n("2")
    );
}

pub async fn update_sets_adds_and_removes_exactly(tables: &dyn Tables) {
    let pk = format!("CONTRACT#{}", run_id());
    let key = string_key(&[("PK", &pk), ("SK", "AGG")]);
    let first = Update::default()
        .set("Name", s("x"))
        .add("Sum", n("0.1"))
        .add("Tags", AttributeValue::Ss(vec!["b".into()]));
    let after = tables.update(TABLE, &key, &first, None).await.unwrap();
    assert_eq!(after["Sum"], n("0.1"));
    let second = Update::default()
        .add("Sum", n("0.2"))
        .add("Tags", AttributeValue::Ss(vec!["a".into(), "b".into()]))
        .remove("Name");
    let after = tables
        .update(TABLE, &key, &second, Some(&Condition::Exists("Sum".into())))
        .await
        .unwrap();
    assert_eq!(after["Sum"], n("0.3"), "decimal, not floating point");
    let mut tags = match &after["Tags"] {
        AttributeValue::Ss(t) => t.clone(),
        other => panic!("{other:?}"),
    };
    tags.sort();
    assert_eq!(tags, ["a", "b"]);
    assert!(!after.contains_key("Name"));
    assert_eq!(after["PK"], s(&pk), "ALL_NEW includes the key");
    let refused = tables
        .update(
            TABLE,
            &key,
            &Update::default().add("Sum", n("1")),
            Some(&Condition::lt("Sum", n("0.3"))),
        )
        .await;
    match refused {
        Err(PortError::ConditionFailed {
            existing: Some(existing),
            ..
        }) => assert_eq!(existing["Sum"], n("0.3")),
        other => panic!("expected ConditionFailed, got {other:?}"),
    }
    let big = tables
        .update(
            TABLE,
            &key,
            &Update::default().add("Sum", n("12345678901234567890.123456789")),
            None,
        )
        .await
        .unwrap();
    assert_eq!(big["Sum"], n("12345678901234567890.423456789"));
}

pub async fn delete_returns_the_old_item_and_honours_conditions(tables: &dyn Tables) {
    let pk = format!("CONTRACT#{}", run_id());
    let key = string_key(&[("PK", &pk), ("SK", "D")]);
    assert_eq!(
        tables.delete(TABLE, &key, None).await.unwrap(),
        None,
        "deleting nothing is fine"
    );
    let stored = item(&pk, "D", &[("Status", s("ACTIVE"))]);
    tables.put(TABLE, stored.clone(), None).await.unwrap();
    let wrong = Condition::eq("Status", s("DRAFT"));
    assert!(matches!(
        tables.delete(TABLE, &key, Some(&wrong)).await,
        Err(PortError::ConditionFailed { .. })
    ));
    assert_eq!(
        tables
            .delete(TABLE, &key, Some(&Condition::eq("Status", s("ACTIVE"))))
            .await
            .unwrap(),
        Some(stored)
    );
    assert_eq!(tables.get(TABLE, &key).await.unwrap(), None);
}

pub async fn query_returns_a_partition_in_sort_key_order(tables: &dyn Tables) {
    let pk = format!("ESTIMATION#{}", run_id());
    for sk in ["SERVER#b", "STORAGE#a", "SERVER#a", "METADATA", "SERVER#c"] {
        tables
            .put(
                TABLE,
                item(
                    &pk,
                    sk,
                    &[
                        ("GSI1PK", s(&format!("G#{pk}"))),
                        ("GSI1SK", s(&sk.chars().rev().collect::<String>())),
                    ],
                ),
                None,
            )
            .await
            .unwrap();
    }
    let query = |prefix: Option<&str>, ascending: bool, index: Option<&str>| Query {
        table: TABLE.into(),
        index: index.map(str::to_string),
        partition: if index.is_some() {
            ("GSI1PK".into(), s(&format!("G#{pk}")))
        } else {
            ("PK".into(), s(&pk))
        },
        sort_key: prefix.map(|p| {
            (
                if index.is_some() { "GSI1SK" } else { "SK" }.to_string(),
                SortKey::BeginsWith(p.to_string()),
            )
        }),
        ascending,
    };
    let sks = |items: Vec<Item>| {
        items
            .iter()
            .map(|i| match &i["SK"] {
                AttributeValue::S(s) => s.clone(),
                _ => unreachable!(),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        sks(tables.query(&query(None, true, None)).await.unwrap()),
        ["METADATA", "SERVER#a", "SERVER#b", "SERVER#c", "STORAGE#a"]
    );
    assert_eq!(
        sks(tables
            .query(&query(Some("SERVER#"), false, None))
            .await
            .unwrap()),
        ["SERVER#c", "SERVER#b", "SERVER#a"]
    );
    let from = Query {
        sort_key: Some(("SK".into(), SortKey::AtLeast("SERVER#b".into()))),
        ..query(None, true, None)
    };
    assert_eq!(
        sks(tables.query(&from).await.unwrap()),
        ["SERVER#b", "SERVER#c", "STORAGE#a"],
        "SK >= SERVER#b"
    );
    // GSI1SK is the reversed SK: "a#REVRES" < "a#EGAROTS" ... ordered by bytes.
    assert_eq!(
        sks(tables
            .query(&query(Some("a#"), true, Some("GSI1")))
            .await
            .unwrap()),
        ["STORAGE#a", "SERVER#a"]
    );
    assert!(tables
        .query(&Query {
            table: TABLE.into(),
            index: None,
            partition: ("PK".into(), s("NOTHING#here")),
            sort_key: None,
            ascending: true
        })
        .await
        .unwrap()
        .is_empty());
}

pub async fn batch_write_stores_many_and_deletes(tables: &dyn Tables) {
    let pk = format!("BATCH#{}", run_id());
    let mut writes: Vec<WriteRequest> = (0..60)
        .map(|i| WriteRequest::Put(item(&pk, &format!("{i:03}"), &[("V", n("1"))])))
        .collect();
    // The same key twice in one batch: the last write wins.
    writes.push(WriteRequest::Put(item(&pk, "000", &[("V", n("2"))])));
    writes.push(WriteRequest::Delete(string_key(&[
        ("PK", &pk),
        ("SK", "059"),
    ])));
    tables
        .batch_write(TABLE, &writes)
        .await
        .expect("batch write");
    let items = tables
        .query(&Query {
            table: TABLE.into(),
            index: None,
            partition: ("PK".into(), s(&pk)),
            sort_key: None,
            ascending: true,
        })
        .await
        .unwrap();
    assert_eq!(items.len(), 59);
    assert_eq!(items[0]["V"], n("2"));
}

pub async fn batch_get_reads_many_and_leaves_out_the_missing(tables: &dyn Tables) {
    let pk = format!("BATCHGET#{}", run_id());
    let writes: Vec<WriteRequest> = (0..120)
        .map(|i| WriteRequest::Put(item(&pk, &format!("{i:03}"), &[("V", n(&i.to_string()))])))
        .collect();
    tables
        .batch_write(TABLE, &writes)
        .await
        .expect("batch write");
    // 150 keys: more than one request's 100, 30 of them for items that are not there.
    let keys: Vec<Item> = (0..150)
        .map(|i| string_key(&[("PK", &pk), ("SK", &format!("{i:03}"))]))
        .collect();
    let mut found: Vec<(String, AttributeValue)> = tables
        .batch_get(TABLE, keys)
        .await
        .expect("batch get")
        .into_iter()
        .map(|item| {
            (
                handlers::item::get_str(&item, "SK").unwrap().to_string(),
                item["V"].clone(),
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let expected: Vec<(String, AttributeValue)> = (0..120)
        .map(|i| (format!("{i:03}"), n(&i.to_string())))
        .collect();
    assert_eq!(found, expected);
}

pub async fn objects_are_stored_and_deleted(objects: &dyn Objects, bucket: &str) {
    let key = format!("contract/{}/proposal.pdf", run_id());
    objects
        .put(Object {
            bucket: bucket.into(),
            key: key.clone(),
            content_type: "application/pdf".into(),
            body: b"%PDF-1.7 test".to_vec(),
        })
        .await
        .expect("put object");
    objects.delete(bucket, &key).await.expect("delete object");
    objects
        .delete(bucket, &key)
        .await
        .expect("deleting a missing object succeeds");
}

pub async fn mail_is_sent(mailer: &dyn Mailer, from: &str) -> String {
    let mail = Mail::new(
        from,
        "jane.smith@abc.com",
        "Contract – ünïcode",
        "Body text".into(),
        Some("<p>Body</p>".into()),
    )
    .unwrap();
    let id = mailer.send(&mail).await.expect("send mail");
    assert!(!id.is_empty());
    id
}

/// DynamoDB holds a partition key of up to 2,048 bytes and a sort key of up to 1,024: one
/// byte more is a validation error, never worth a retry, and nothing is written.
pub async fn keys_longer_than_dynamodb_holds_are_refused(tables: &dyn Tables) {
    let pk = format!("CONTRACT#{}#", run_id());
    let padded =
        |prefix: &str, bytes: usize| format!("{prefix}{}", "k".repeat(bytes - prefix.len()));
    let longest = item(&padded(&pk, 2048), &"s".repeat(1024), &[]);
    tables
        .put(TABLE, longest.clone(), None)
        .await
        .expect("the longest keys DynamoDB holds are stored");
    assert_eq!(tables.get(TABLE, &longest).await.unwrap(), Some(longest));
    for (what, too_long) in [
        ("sort key", item(&pk, &"s".repeat(1025), &[])),
        ("partition key", item(&padded(&pk, 2049), "A", &[])),
    ] {
        match tables.put(TABLE, too_long, None).await {
            Err(e @ PortError::Permanent { .. }) => assert!(!e.is_retryable()),
            other => {
                panic!("a {what} one byte too long: expected a validation error, got {other:?}")
            }
        }
    }
}

/// The table contract's tests, one `#[tokio::test]` each, on the tables `$tables` makes (an
/// expression evaluated afresh in each test, `.await` included): written once here, generated
/// for every adapter.
#[allow(unused_macros)]
macro_rules! table_contract_tests {
    ($tables:expr) => {
        $crate::support::contract::table_contract_tests!(
            $tables;
            conditional_put_reports_the_existing_item,
            update_sets_adds_and_removes_exactly,
            delete_returns_the_old_item_and_honours_conditions,
            query_returns_a_partition_in_sort_key_order,
            batch_get_reads_many_and_leaves_out_the_missing,
            batch_write_stores_many_and_deletes,
            keys_longer_than_dynamodb_holds_are_refused
        );
    };
    ($tables:expr; $($test:ident),*) => {
        $(
            #[tokio::test]
            async fn $test() {
                $crate::support::contract::$test(&$tables).await;
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use table_contract_tests;

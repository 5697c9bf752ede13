//! End to end from real stream records: the seed applications' writes on DynamoDB Local, read
//! back through the DynamoDB Streams API, wrapped as Lambda delivers them, run through the
//! batch entry point with the SDK adapters. Needs `scripts/services start`.

mod support;

use aws_sdk_dynamodb::types::AttributeValue as V;
use ddb_stream_worker::batch::{BatchOptions, BatchOutcome, Outcome, Worker};
use ddb_stream_worker::decode::{decode_value, StreamRecord};
use ddb_stream_worker::stream::get_records::lambda_event;
use ddb_stream_worker::wiring;
use ddb_stream_worker::wiring::config::Config;
use serde_json::json;
use support::faulty_http::{Fault, FaultyHttp, Plan};
use support::services::{self, audit_items};

/// A fresh copy of the cost platform table under a unique name, so this run's stream holds
/// only this run's records.
async fn fresh_cost_table() -> String {
    services::fresh_table("aws-cost-platform-enhanced").await
}

/// A worker whose cost platform table is `table`; `audited` says whether it audits it too.
async fn worker_for(table: &str, audited: bool, faults: Option<&FaultyHttp>) -> Worker {
    let config = Config::from_lookup(|name| match name {
        "AUDITED_TABLES" => Some(if audited {
            table.to_string()
        } else {
            String::new()
        }),
        "AUDIT_TABLE" | "COST_TABLE" => Some(table.to_string()),
        _ => short_locks(name),
    })
    .unwrap();
    let adapters = services::local_adapters(
        &[(table, "aws-cost-platform-enhanced")],
        faults.map(FaultyHttp::client),
    )
    .await;
    wiring::worker(&config, adapters)
}

fn s(v: &str) -> V {
    V::S(v.into())
}

#[tokio::test]
async fn audit_log_from_real_stream_records() {
    audit_log_scenario(None).await;
}

async fn audit_log_scenario(faults: Option<&FaultyHttp>) {
    services::require();
    let table = fresh_cost_table().await;
    let db = services::dynamodb().await;
    // What the cost platform does: create a user, create and update an estimation, share and unshare it.
    services::put(
        &db,
        &table,
        json!({
            "PK": {"S": "USER#u1"},
            "SK": {"S": "PROFILE"},
            "EntityType": {"S": "User"},
            "UserId": {"S": "u1"},
            "Email": {"S": "u1@sagesoft.com"},
        }),
    )
    .await;
    services::put(
        &db,
        &table,
        json!({
            "PK": {"S": "ESTIMATION#e1"},
            "SK": {"S": "METADATA"},
            "EntityType": {"S": "Estimation"},
            "UserId": {"S": "u1"},
            "Status": {"S": "DRAFT"},
        }),
    )
    .await;
    db.update_item()
        .table_name(&table)
        .key("PK", s("ESTIMATION#e1"))
        .key("SK", s("METADATA"))
        .update_expression("SET #s = :s, UpdatedBy = :u")
        .expression_attribute_names("#s", "Status")
        .expression_attribute_values(":s", s("ACTIVE"))
        .expression_attribute_values(":u", s("u1"))
        .send()
        .await
        .unwrap();
    services::put(
        &db,
        &table,
        json!({
            "PK": {"S": "USER#u2"},
            "SK": {"S": "SHARED#e1"},
            "EntityType": {"S": "SharedEstimation"},
            "SharedByUserId": {"S": "u1"},
        }),
    )
    .await;
    db.delete_item()
        .table_name(&table)
        .key("PK", s("USER#u2"))
        .key("SK", s("SHARED#e1"))
        .send()
        .await
        .unwrap();

    let (arn, records) = services::read_stream(&table).await;
    assert_eq!(records.len(), 5, "one stream record per write");
    let event = lambda_event(&records, &arn);
    let decoded = decode_value(event.clone(), "stream", None).expect("real stream records decode");
    assert!(decoded.iter().all(|r| r.table == table && r.change.is_ok()));

    let worker = worker_for(&table, true, faults).await;
    let outcome = deliver(&worker, &decoded, faults).await;
    assert_eq!(
        serde_json::to_value(&outcome.response).unwrap(),
        serde_json::json!({"batchItemFailures": []})
    );

    let audits = audit_items(&table).await;
    let mut actions: Vec<String> = audits
        .iter()
        .map(|a| a["Action"].as_s().unwrap().clone())
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            "ESTIMATION_CREATED",
            "ESTIMATION_UPDATED",
            "SHARED_ESTIMATION_CREATED",
            "SHARED_ESTIMATION_DELETED",
            "USER_CREATED"
        ]
    );
    let update = audits
        .iter()
        .find(|a| a["Action"] == s("ESTIMATION_UPDATED"))
        .unwrap();
    let changes = update["Details"].as_m().unwrap()["Changes"].as_m().unwrap();
    assert_eq!(changes["Status"].as_m().unwrap()["Old"], s("DRAFT"));
    assert_eq!(changes["Status"].as_m().unwrap()["New"], s("ACTIVE"));
    let created = audits
        .iter()
        .find(|a| a["Action"] == s("USER_CREATED"))
        .unwrap();
    assert!(
        !format!("{created:?}").contains("u1@sagesoft.com"),
        "email redacted"
    );

    // Re-delivery of the same batch writes nothing new.
    deliver(&worker, &decoded, faults).await;
    assert_eq!(audit_items(&table).await.len(), 5);

    // The audit items are in the stream now too; delivered, they trigger nothing: no loop.
    let (_, all) = services::read_stream(&table).await;
    let own_writes = decode_value(lambda_event(&all[5..], &arn), "stream", None).unwrap();
    assert_eq!(
        own_writes.len(),
        5,
        "five audit items were written once each"
    );
    let mut outcomes = Vec::new();
    worker
        .process_batch(&own_writes, BatchOptions::default(), &mut |r| {
            outcomes.extend(r.reactions.iter().map(|x| x.outcome.clone()))
        })
        .await;
    assert!(
        outcomes.iter().all(|o| *o == Outcome::NotApplicable),
        "{outcomes:?}"
    );
    assert_eq!(audit_items(&table).await.len(), 5);
}

#[tokio::test]
async fn estimation_totals_from_real_stream_records() {
    services::require();
    let table = fresh_cost_table().await;
    let db = services::dynamodb().await;
    let n = |v: &str| V::N(v.into());
    services::put(
        &db,
        &table,
        json!({
            "PK": {"S": "ESTIMATION#e1"},
            "SK": {"S": "METADATA"},
            "EntityType": {"S": "Estimation"},
            "Version": {"N": "1"},
        }),
    )
    .await;
    for (sk, cost) in [
        ("SERVER#a", "247.42"),
        ("STORAGE#b", "45.00"),
        ("DATABASE#c", "1800.00"),
        ("NETWORK_SECURITY", "800.00"),
    ] {
        services::put(
            &db,
            &table,
            json!({
                "PK": {"S": "ESTIMATION#e1"},
                "SK": {"S": sk},
                "EstimatedMonthlyCost": {"N": cost},
            }),
        )
        .await;
    }
    // A rename in the same batch: no cost change, no extra work.
    db.update_item()
        .table_name(&table)
        .key("PK", s("ESTIMATION#e1"))
        .key("SK", s("SERVER#a"))
        .update_expression("SET ServerName = :n")
        .expression_attribute_values(":n", s("Web"))
        .send()
        .await
        .unwrap();

    let (arn, records) = services::read_stream(&table).await;
    assert_eq!(records.len(), 6);
    let batch = decode_value(lambda_event(&records, &arn), "stream", None).unwrap();
    let worker = worker_for(&table, false, None).await;
    let mut reports = Vec::new();
    let outcome = worker
        .process_batch(&batch, BatchOptions::default(), &mut |r| reports.push(r))
        .await;
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    assert_eq!(
        outcome.requests.get("TransactWriteItems"),
        Some(&1),
        "{:?} {reports:#?}",
        outcome.requests
    );

    let key = |sk: &str| {
        db.get_item()
            .table_name(&table)
            .key("PK", s("ESTIMATION#e1"))
            .key("SK", s(sk))
            .consistent_read(true)
    };
    let metadata = key("METADATA").send().await.unwrap().item.unwrap();
    let summary = metadata["EstimationSummary"].as_m().unwrap();
    assert_eq!(summary["TotalMonthlyCost"], n("3499.83"));
    assert_eq!(summary["TotalAnnualCost"], n("41997.96"));
    assert_eq!(metadata["SummaryVersion"], n("1"));
    assert_eq!(
        metadata["Version"],
        n("1"),
        "the application's lock is not the worker's to write"
    );
    assert!(!metadata.contains_key("UpdatedAt"), "nor its UpdatedAt");

    // The worker's own writes (METADATA updated, CALCULATION# inserted) come back on the
    // stream; delivered, they trigger no recomputation.
    let (_, all) = services::read_stream(&table).await;
    let own = decode_value(lambda_event(&all[6..], &arn), "stream", None).unwrap();
    assert_eq!(
        own.len(),
        2,
        "the summary update and the calculation record"
    );
    let mut outcomes = Vec::new();
    let again = worker
        .process_batch(&own, BatchOptions::default(), &mut |r| {
            outcomes.extend(r.reactions.iter().map(|x| x.outcome.clone()))
        })
        .await;
    assert!(
        outcomes.iter().all(|o| *o == Outcome::NotApplicable),
        "{outcomes:?}"
    );
    assert!(again.requests.is_empty(), "{:?}", again.requests);

    // Re-delivery of the original batch: recomputed, unchanged, nothing written.
    let redelivered = worker
        .process_batch(&batch, BatchOptions::default(), &mut |_| {})
        .await;
    assert!(redelivered.failure.is_none());
    assert_eq!(redelivered.requests.get("TransactWriteItems"), None);
    assert_eq!(
        key("METADATA").send().await.unwrap().item.unwrap()["SummaryVersion"],
        n("1")
    );
}

#[tokio::test]
async fn proposal_pdf_and_share_mail_from_real_stream_records() {
    proposal_scenario(None).await;
}

/// A proposal requested, rendered to S3 and mailed; a share mailed. Under `faults` the
/// worker's own calls fail as planned and Lambda's retries must still end the same.
async fn proposal_scenario(faults: Option<&FaultyHttp>) {
    services::require();
    let table = fresh_cost_table().await;
    let bucket = services::unique("dsw-docs");
    services::ensure_bucket(&bucket).await;
    let sender = format!("{}@sagesoft.com", services::unique("notify"));
    services::verify_sender(&sender).await;
    let john = format!("{}@sagesoft.com", services::unique("john"));
    let mary = format!("{}@sagesoft.com", services::unique("mary"));

    let db = services::dynamodb().await;
    let n = |v: &str| V::N(v.into());
    for (id, first, email) in [("u1", "John", &john), ("u2", "Mary", &mary)] {
        services::put(
            &db,
            &table,
            json!({
                "PK": {"S": format!("USER#{id}")}, "SK": {"S": "PROFILE"}, "UserId": {"S": id},
                "FirstName": {"S": first}, "LastName": {"S": "Doe"}, "Email": {"S": email},
            }),
        )
        .await;
    }
    for item in [
        json!({
            "PK": {"S": "ESTIMATION#e1"},
            "SK": {"S": "METADATA"},
            "ProjectName": {"S": "Réseau Ünïcode"},
            "Version": {"N": "1"},
        }),
        json!({
            "PK": {"S": "ESTIMATION#e1"},
            "SK": {"S": "SERVER#a"},
            "ServerName": {"S": "Web tier"},
            "EstimatedMonthlyCost": {"N": "247.42"},
        }),
        json!({
            "PK": {"S": "ESTIMATION#e1"},
            "SK": {"S": "DOCUMENT#d1"},
            "DocumentType": {"S": "PDF_PROPOSAL"},
            "Status": {"S": "PENDING"},
            "FileName": {"S": "Proposal.pdf"},
            "GeneratedBy": {"S": "u1"},
        }),
        json!({
            "PK": {"S": "USER#u2"},
            "SK": {"S": "SHARED#e1"},
            "EstimationId": {"S": "e1"},
            "SharedWithUserId": {"S": "u2"},
            "SharedByUserId": {"S": "u1"},
            "NotificationSent": {"BOOL": false},
        }),
    ] {
        services::put(&db, &table, item).await;
    }

    let config = Config::from_lookup(|name| match name {
        "AUDITED_TABLES" => Some(String::new()),
        "COST_TABLE" => Some(table.clone()),
        "DOCUMENTS_BUCKET" => Some(bucket.clone()),
        "MAIL_FROM" => Some(sender.clone()),
        _ => short_locks(name),
    })
    .unwrap();
    let adapters = services::local_adapters(
        &[(&table, "aws-cost-platform-enhanced")],
        faults.map(FaultyHttp::client),
    )
    .await;
    let worker = wiring::worker(&config, adapters);

    let (arn, records) = services::read_stream(&table).await;
    let batch = decode_value(lambda_event(&records, &arn), "stream", None).unwrap();
    deliver(&worker, &batch, faults).await;

    let document = db
        .get_item()
        .table_name(&table)
        .key("PK", s("ESTIMATION#e1"))
        .key("SK", s("DOCUMENT#d1"))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(document["Status"], s("COMPLETED"), "{document:?}");
    let key = document["S3Key"].as_s().unwrap().clone();
    assert_eq!(key, "proposals/e1/d1/Proposal.pdf");
    let object = services::s3()
        .await
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .expect("the PDF is in S3");
    assert_eq!(object.content_type(), Some("application/pdf"));
    let body = object.body.collect().await.unwrap().into_bytes();
    assert!(body.starts_with(b"%PDF"));
    assert_eq!(document["FileSize"], n(&body.len().to_string()));

    let share = db
        .get_item()
        .table_name(&table)
        .key("PK", s("USER#u2"))
        .key("SK", s("SHARED#e1"))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(share["NotificationSent"], V::Bool(true));

    let mail_to = |address: &str| -> Vec<serde_json::Value> {
        services::sent_mail()
            .into_iter()
            .filter(|m| {
                m["destinations"]["ToAddresses"]
                    .as_array()
                    .is_some_and(|to| to.iter().any(|a| a == address))
            })
            .collect()
    };
    let to_john = mail_to(&john);
    assert_sent_once(to_john.len(), faults, "proposal ready");
    assert_eq!(
        to_john[0]["subject"],
        "Your proposal for Réseau Ünïcode is ready"
    );
    assert_eq!(to_john[0]["source"], sender);
    let body = to_john[0]["body"].as_str().unwrap_or_default();
    assert!(body.contains(&bucket), "a presigned link to the object");
    // The credentials that signed the link expire in an hour: the mail promises no more (the
    // configured lifetime is seven days), and the link itself says so too.
    let promised = body
        .split("the link works until ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("the mail says until when the link works");
    let promised = chrono::NaiveDateTime::parse_from_str(promised, "%-d %B %Y, %H:%M UTC")
        .unwrap()
        .and_utc();
    let limit =
        chrono::Utc::now() + chrono::Duration::from_std(services::CREDENTIALS_LIFETIME).unwrap();
    assert!(
        promised <= limit,
        "promised {promised}, credentials end by {limit}"
    );
    assert!(
        promised > limit - chrono::Duration::minutes(10),
        "{promised}"
    );
    let expires_in: u64 = body
        .split("X-Amz-Expires=")
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|digits| digits.parse().ok())
        .expect("a presigned URL");
    assert!(expires_in <= 3600, "X-Amz-Expires={expires_in}");
    assert_sent_once(mail_to(&mary).len(), faults, "share");

    // Re-delivery of the whole batch: no second mail to either.
    deliver(&worker, &batch, faults).await;
    assert_eq!(mail_to(&john).len(), to_john.len());
    assert_sent_once(mail_to(&mary).len(), faults, "share");
}

/// Everything now in `table`'s stream, decoded as Lambda would deliver it.
async fn stream_batch(table: &str, skip: usize) -> Vec<ddb_stream_worker::decode::StreamRecord> {
    let (arn, records) = services::read_stream(table).await;
    decode_value(
        lambda_event(&records[skip.min(records.len())..], &arn),
        "stream",
        None,
    )
    .unwrap()
}

#[tokio::test]
async fn provider_ratings_from_real_stream_records() {
    provider_ratings_scenario(None).await;
}

async fn provider_ratings_scenario(faults: Option<&FaultyHttp>) {
    services::require();
    let reviews = services::fresh_table("marketplace-dev-reviews-table").await;
    let providers = services::fresh_table("marketplace-dev-providers-table").await;
    let state = services::fresh_table("ddb-stream-worker-aggregate-state").await;
    let db = services::dynamodb().await;
    let put = |id: &str, booking: &str, provider: &str, rating: &str, at: &str| {
        let review = json!({
            "reviewId": {"S": id}, "bookingId": {"S": booking}, "providerId": {"S": provider},
            "rating": {"N": rating}, "createdAt": {"S": at},
        });
        services::put(&db, &reviews, review)
    };
    services::put(
        &db,
        &providers,
        json!({
            "providerId": {"S": "p1"},
            "serviceType": {"S": "Plumbing"},
            "serviceArea": {"S": "Austin"},
        }),
    )
    .await;
    put("r1", "b1", "p1", "5", "2025-01-01").await;
    put("r2", "b2", "p1", "4", "2025-01-02").await;
    put("r3", "b1", "p1", "1", "2025-01-03").await; // a second review of b1: not counted
    put("r4", "b4", "p2", "3", "2025-01-04").await;
    put("r4", "b4", "p1", "2", "2025-01-04").await; // moved to p1 and re-rated
    db.delete_item()
        .table_name(&reviews)
        .key("reviewId", s("r1"))
        .send()
        .await
        .unwrap(); // r3 now counts for b1

    let config = Config::from_lookup(|name| match name {
        "AUDITED_TABLES" => Some(String::new()),
        "MARKETPLACE_REVIEWS_TABLE" => Some(reviews.clone()),
        "MARKETPLACE_PROVIDERS_TABLE" => Some(providers.clone()),
        "AGGREGATE_STATE_TABLE" => Some(state.clone()),
        _ => short_locks(name),
    })
    .unwrap();
    let adapters = services::local_adapters(
        &[
            (&reviews, "marketplace-dev-reviews-table"),
            (&providers, "marketplace-dev-providers-table"),
            (&state, "ddb-stream-worker-aggregate-state"),
        ],
        faults.map(FaultyHttp::client),
    )
    .await;
    let worker = wiring::worker(&config, adapters);
    let batch = stream_batch(&reviews, 0).await;
    assert_eq!(batch.len(), 6);
    deliver(&worker, &batch, faults).await;

    let provider = |id: &str| {
        db.get_item()
            .table_name(&providers)
            .key("providerId", s(id))
            .consistent_read(true)
    };
    let p1 = provider("p1").send().await.unwrap().item.unwrap();
    // b1: r3 (1), b2: r2 (4), b4: r4 (2) -> 7 over 3 = 2.33
    assert_eq!(
        (&p1["ratingSum"], &p1["reviewCount"], &p1["rating"]),
        (&V::N("7".into()), &V::N("3".into()), &V::N("2.33".into()))
    );
    assert_eq!(
        p1["serviceType"],
        s("Plumbing"),
        "the provider's own attributes are kept"
    );
    let p2 = provider("p2").send().await.unwrap().item.unwrap();
    assert_eq!(
        (&p2["reviewCount"], &p2["rating"]),
        (&V::N("0".into()), &V::N("0".into()))
    );

    // Delivered again, as after a Lambda retry: the same figures, no write.
    let again = deliver(&worker, &batch, faults).await;
    assert_eq!(
        (
            again.requests.get("UpdateItem"),
            again.requests.get("TransactWriteItems")
        ),
        (None, None),
        "{:?}",
        again.requests
    );
    assert_eq!(
        provider("p1").send().await.unwrap().item.unwrap()["ratingSum"],
        V::N("7".into())
    );
}

#[tokio::test]
async fn booking_mail_asset_cleanup_and_thread_stats_from_real_stream_records() {
    bookings_assets_threads_scenario(None).await;
}

async fn bookings_assets_threads_scenario(faults: Option<&FaultyHttp>) {
    services::require();
    let bookings = services::fresh_table("marketplace-dev-bookings-table").await;
    let users = services::fresh_table("marketplace-dev-users-table").await;
    let assets = services::fresh_table("PilotForce-Assets").await;
    let conversations = services::fresh_table("acsd2p-dev-Conversations").await;
    let threads = services::fresh_table("acsd2p-dev-Threads").await;
    let thread_state = services::fresh_table("ddb-stream-worker-aggregate-state").await;
    let bucket = services::unique("dsw-assets");
    services::ensure_bucket(&bucket).await;
    let sender = format!("{}@example.com", services::unique("bookings"));
    services::verify_sender(&sender).await;
    let (customer, provider) = (
        format!("{}@example.com", services::unique("cust")),
        format!("{}@example.com", services::unique("prov")),
    );
    let db = services::dynamodb().await;

    services::put(
        &db,
        &users,
        json!({
            "userId": {"S": "c1"},
            "email": {"S": customer},
        }),
    )
    .await;
    services::put(
        &db,
        &users,
        json!({
            "userId": {"S": "p1"},
            "email": {"S": provider},
        }),
    )
    .await;
    for status in ["pending", "confirmed"] {
        let booking = json!({
            "bookingId": {"S": "bk1"}, "customerId": {"S": "c1"}, "providerId": {"S": "p1"},
            "scheduledDate": {"S": "2025-11-20T14:30:00Z"}, "status": {"S": status},
            "createdAt": {"S": "2025-11-17T09:00:00Z"},
        });
        services::put(&db, &bookings, booking).await;
    }
    services::s3()
        .await
        .put_object()
        .bucket(&bucket)
        .key("training/a.jpg")
        .body(b"jpeg".to_vec().into())
        .send()
        .await
        .unwrap();
    services::put(
        &db,
        &assets,
        json!({
            "assetId": {"S": "a1"},
            "s3Key": {"S": "training/a.jpg"},
        }),
    )
    .await;
    db.delete_item()
        .table_name(&assets)
        .key("assetId", s("a1"))
        .send()
        .await
        .unwrap();
    for (id, from, at) in [
        ("r1", "x@buyer.example", "2025-11-17T09:00:00Z"),
        ("r2", "owner@acme.example", "2025-11-17T10:00:00Z"),
    ] {
        services::put(
            &db,
            &conversations,
            json!({
                "conversation_id": {"S": "conv1"},
                "response_id": {"S": id},
                "sender_email": {"S": from},
                "recipient_email": {"S": "owner@acme.example"},
                "timestamp": {"S": at},
            }),
        )
        .await;
    }

    let config = Config::from_lookup(|name| match name {
        "AUDITED_TABLES" => Some(String::new()),
        "MAIL_FROM" => Some(sender.clone()),
        "MARKETPLACE_BOOKINGS_TABLE" => Some(bookings.clone()),
        "MARKETPLACE_USERS_TABLE" => Some(users.clone()),
        "PILOTFORCE_ASSETS_TABLE" => Some(assets.clone()),
        "PILOTFORCE_ASSETS_BUCKET" => Some(bucket.clone()),
        "ACS_CONVERSATIONS_TABLE" => Some(conversations.clone()),
        "ACS_THREADS_TABLE" => Some(threads.clone()),
        "AGGREGATE_STATE_TABLE" => Some(thread_state.clone()),
        _ => short_locks(name),
    })
    .unwrap();
    let adapters = services::local_adapters(
        &[
            (&bookings, "marketplace-dev-bookings-table"),
            (&users, "marketplace-dev-users-table"),
            (&assets, "PilotForce-Assets"),
            (&conversations, "acsd2p-dev-Conversations"),
            (&threads, "acsd2p-dev-Threads"),
            (&thread_state, "ddb-stream-worker-aggregate-state"),
        ],
        faults.map(FaultyHttp::client),
    )
    .await;
    let worker = wiring::worker(&config, adapters);
    let mut batch = stream_batch(&bookings, 0).await;
    batch.extend(stream_batch(&assets, 0).await);
    batch.extend(stream_batch(&conversations, 0).await);
    for _ in 0..2 {
        // The second time is a re-delivery of everything.
        deliver(&worker, &batch, faults).await;
    }
    let mail_to = |address: &str| -> Vec<serde_json::Value> {
        services::sent_mail()
            .into_iter()
            .filter(|m| {
                m["destinations"]["ToAddresses"]
                    .as_array()
                    .is_some_and(|to| to.iter().any(|a| a == address))
            })
            .collect()
    };
    let to_provider = mail_to(&provider);
    assert_sent_once(to_provider.len(), faults, "the new booking");
    assert_eq!(to_provider[0]["subject"], "New booking bk1 for 2025-11-20");
    let to_customer = mail_to(&customer);
    assert_sent_once(to_customer.len(), faults, "the status change");
    assert_eq!(to_customer[0]["subject"], "Your booking bk1 is confirmed");

    let gone = services::s3()
        .await
        .head_object()
        .bucket(&bucket)
        .key("training/a.jpg")
        .send()
        .await;
    assert!(gone.is_err(), "the asset's object is deleted");

    let thread = db
        .get_item()
        .table_name(&threads)
        .key("conversation_id", s("conv1"))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(thread["message_count"], V::N("2".into()));
    assert_eq!(thread["last_message_at"], s("2025-11-17T10:00:00Z"));
    assert_eq!(
        thread["participants"],
        V::L(vec![s("x@buyer.example"), s("owner@acme.example")])
    );
}

/// Idempotency locks of the scenarios expire after this long (no Lambda deadline here), so a
/// retry after a failed completion does not wait the default minute.
const LOCK_SECONDS: u64 = 2;

fn short_locks(name: &str) -> Option<String> {
    (name == "IDEMPOTENCY_IN_PROGRESS_SECONDS").then(|| LOCK_SECONDS.to_string())
}

/// Deliver `batch` as Lambda does with ReportBatchItemFailures: when a record fails, again
/// from that record. Without faults nothing may fail. With them, a failure must be the
/// injected one, at the record being processed, retryable unless the fault was permanent (or
/// the lock a failed completion left, until it expires); the plan ends at the first failure.
async fn deliver(
    worker: &Worker,
    batch: &[StreamRecord],
    faults: Option<&FaultyHttp>,
) -> BatchOutcome {
    let mut from = 0;
    for _ in 0..10 {
        let outcome = worker
            .process_batch(&batch[from..], BatchOptions::default(), &mut |_| {})
            .await;
        let Some(failure) = outcome.failure.clone() else {
            return outcome;
        };
        let faults = faults.unwrap_or_else(|| panic!("nothing was injected, yet {failure:?}"));
        assert_eq!(
            failure.sequence_number,
            batch[from + failure.index].sequence_number
        );
        assert_eq!(
            outcome.response.batch_item_failures[0]
                .item_identifier
                .as_deref(),
            Some(failure.sequence_number.as_str()),
            "Lambda is told to retry from the failed record"
        );
        if failure.message.contains("in progress") {
            assert!(failure.retryable);
            tokio::time::sleep(std::time::Duration::from_secs(LOCK_SECONDS)).await;
        } else {
            assert!(failure.message.contains("injected"), "{failure:?}");
            let permanent = faults.planned_fault() == Some(Fault::Permanent);
            assert_eq!(failure.retryable, !permanent, "{failure:?}");
        }
        faults.set_plan(Plan::Nothing);
        from += failure.index;
    }
    panic!("the batch was not done after 10 deliveries");
}

/// Mail for one logical event goes once; twice only when a fault failed the write that marks
/// a reaction completed after its mail went out (the crash window docs/guarantees.md documents).
fn assert_sent_once(sent: usize, faults: Option<&FaultyHttp>, what: &str) {
    let crash_window = faults.is_some_and(|f| f.failed_call_of("PutItem", "COMPLETED"));
    if crash_window {
        assert!((1..=2).contains(&sent), "{what}: {sent} messages");
    } else {
        assert_eq!(sent, 1, "{what}: once");
    }
}

/// Every call of every scenario fails its first two attempts (throttling, 5xx and timeouts
/// in turn): the SDK's retries inside the call absorb all of it, and every scenario ends as
/// it does without faults.
#[tokio::test]
async fn faults_within_the_retry_bound_are_absorbed_inside_the_call() {
    let faults = FaultyHttp::new(Plan::FirstAttempts { count: 2 });
    audit_log_scenario(Some(&faults)).await;
    proposal_scenario(Some(&faults)).await;
    provider_ratings_scenario(Some(&faults)).await;
    bookings_assets_threads_scenario(Some(&faults)).await;
    println!("{}", faults.report("two failed attempts per call"));
    let stats = faults.stats();
    for operation in [
        "GetItem",
        "PutItem",
        "UpdateItem",
        "Query",
        "BatchWriteItem",
        "TransactWriteItems",
        "PutObject",
        "DeleteObject",
        "SendEmail",
    ] {
        let seen = stats
            .get(operation)
            .unwrap_or_else(|| panic!("{operation} was never called"));
        // Two failed attempts injected into every call, each absorbed by a third; a real
        // attempt past the SDK's 3 s timeout on a loaded machine may add one, never remove one.
        let injected: usize = seen.injected.values().sum();
        assert_eq!(injected, 2 * seen.calls, "{operation}: {seen:?}");
        assert!(seen.attempts >= 3 * seen.calls, "{operation}: {seen:?}");
        for fault in [Fault::Throttle, Fault::ServerError, Fault::Timeout] {
            assert!(
                seen.injected.contains_key(&fault) || seen.calls < 2,
                "{operation}: {seen:?}"
            );
        }
    }
}

/// Past the bound: one call of each operation fails on every attempt (or once, permanently).
/// The call gives up after `wiring::MAX_ATTEMPTS`, its record fails at its sequence number,
/// Lambda's retry from there finishes the work, and the end state is exact. A conditional
/// conflict is not retried by the call but by the reaction, which re-reads and writes again.
#[tokio::test]
async fn past_the_retry_bound_the_record_fails_and_a_retry_finishes() {
    let cases = [
        ("bookings", "GetItem", 0, Fault::Throttle),
        ("bookings", "SendEmail", 0, Fault::ServerError),
        ("bookings", "SendEmail", 1, Fault::Permanent),
        ("bookings", "DeleteObject", 0, Fault::Timeout),
        ("bookings", "TransactWriteItems", 0, Fault::Throttle),
        ("bookings", "PutItem", 1, Fault::ServerError),
        ("proposal", "Query", 0, Fault::ServerError),
        ("proposal", "TransactWriteItems", 0, Fault::Throttle),
        ("proposal", "PutObject", 0, Fault::Timeout),
        ("proposal", "PutObject", 0, Fault::Permanent),
        ("ratings", "BatchGetItem", 0, Fault::Throttle),
        ("ratings", "TransactWriteItems", 0, Fault::ServerError),
        // A conflict is the reaction's to handle: it re-reads, folds and writes again.
        ("ratings", "TransactWriteItems", 0, Fault::Conflict),
        ("bookings", "TransactWriteItems", 0, Fault::Conflict),
        ("audit", "BatchWriteItem", 0, Fault::ServerError),
    ];
    for (scenario, operation, call, fault) in cases {
        let faults = FaultyHttp::new(Plan::Call {
            operation,
            call,
            fault,
        });
        match scenario {
            "bookings" => bookings_assets_threads_scenario(Some(&faults)).await,
            "proposal" => proposal_scenario(Some(&faults)).await,
            "ratings" => provider_ratings_scenario(Some(&faults)).await,
            _ => audit_log_scenario(Some(&faults)).await,
        }
        let seen = &faults.stats()[operation];
        let attempts = match fault {
            Fault::Permanent | Fault::Conflict => 1,
            _ => wiring::MAX_ATTEMPTS as usize,
        };
        assert_eq!(
            seen.injected.values().sum::<usize>(),
            attempts,
            "{scenario} {operation} #{call} {fault:?}: {seen:?}"
        );
        let crash_window = if faults.failed_call_of("PutItem", "COMPLETED") {
            " (the completion write: crash window)"
        } else {
            ""
        };
        let then = if fault == Fault::Conflict {
            "the reaction re-read and wrote again"
        } else {
            "the record failed and was retried from it"
        };
        println!(
            "{scenario}: {operation} call {call} failed {attempts}x ({fault:?}){crash_window}, longest gap {} ms; {then}; exact",
            seen.longest_gap.as_millis()
        );
    }
}

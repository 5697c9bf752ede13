//! Items as applications really write them, not as the seed documents show them: `null` for
//! what is not known yet, PascalCase and other names, bare table names, addresses kept on the
//! booking or the provider, times in several forms, UUID ids. Each replayed on the embedded
//! default with the configuration a user would write (docs/configuration.md), and every
//! reaction's result asserted.

mod support;

use std::path::Path;

use serde_json::{json, Value};
use support::cli::{outbox, replay_file_with, table};
use support::record_in;

/// `records` as one event file, replayed with `env` set: exit code, JSON lines, stderr.
fn replay_with(state: &Path, records: &[Value], env: &[(&str, &str)]) -> (i32, Vec<Value>, String) {
    let file = state.with_extension("json");
    std::fs::write(&file, json!({ "Records": records }).to_string()).unwrap();
    replay_file_with(&file, state, env)
}

fn s(text: &str) -> Value {
    json!({ "S": text })
}
fn n(text: &str) -> Value {
    json!({ "N": text })
}

/// What `reaction` did with the record `index` of the replay.
fn result_of<'a>(lines: &'a [Value], index: usize, reaction: &str) -> &'a Value {
    support::reaction(&lines[index], reaction)
}

fn insert(table: &str, seq: u64, keys: Value, new: Value) -> Value {
    record_in(table, seq, "INSERT", keys, Some(new), None)
}

fn modify(table: &str, seq: u64, keys: Value, new: Value, old: Value) -> Value {
    record_in(table, seq, "MODIFY", keys, Some(new), Some(old))
}

/// Issue 41: the cost platform creates every estimation with a placeholder summary (zeros,
/// `LastCalculatedAt: null`); the worker parked every line item on it.
#[test]
fn estimation_totals_are_computed_over_the_applications_placeholder_summary() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let id = "be507341-934e-4224-b2ed-8b5fb999287a";
    let meta_keys = json!({"PK": s(&format!("ESTIMATION#{id}")), "SK": s("METADATA")});
    let mut metadata = meta_keys.clone();
    metadata["EstimationId"] = s(id);
    metadata["Version"] = n("1");
    metadata["UpdatedAt"] = s("2026-12-03T10:00:00.123456");
    metadata["Currency"] = json!({"NULL": true});
    metadata["EstimationSummary"] = json!({"M": {
        "TotalMonthlyCost": n("0"),
        "TotalAnnualCost": n("0"),
        "Currency": s("USD"),
        "LastCalculatedAt": {"NULL": true},
        "CostBreakdown": {"M": {"Compute": n("0"), "Storage": n("0")}},
    }});
    let server_keys = json!({"PK": s(&format!("ESTIMATION#{id}")), "SK": s("SERVER#9f1c2d")});
    let mut server = server_keys.clone();
    server["EstimatedMonthlyCost"] = n("100");
    server["ServerName"] = json!({"NULL": true});
    server["Tags"] = json!({"L": []});
    // A cost the application wrote as a numeric string is that number, and named.
    let storage_keys = json!({"PK": s(&format!("ESTIMATION#{id}")), "SK": s("STORAGE#01JEBX")});
    let mut storage = storage_keys.clone();
    storage["EstimatedMonthlyCost"] = s("45.50");
    let records = [
        support::record(1, "INSERT", meta_keys.clone(), Some(metadata.clone()), None),
        support::record(2, "INSERT", server_keys, Some(server), None),
        support::record(3, "INSERT", storage_keys, Some(storage), None),
    ];
    let (code, lines, stderr) = replay_with(&state, &records, &[]);
    assert_eq!(code, 0, "nothing parked: {stderr}");
    let totals = result_of(&lines, 2, "estimation-totals");
    assert_eq!(totals["outcome"], "done", "{totals}");
    assert_eq!(totals["result"]["updated"]["LineItems"], 2, "{totals}");
    assert_eq!(
        totals["result"]["numbersFromText"],
        json!(["STORAGE#01JEBX EstimatedMonthlyCost"]),
        "{totals}"
    );
    let items = table(&state, "aws-cost-platform-enhanced");
    let meta = items
        .iter()
        .find(|i| i["SK"]["S"] == "METADATA" && i["PK"]["S"] == format!("ESTIMATION#{id}"))
        .unwrap();
    let summary = &meta["EstimationSummary"]["M"];
    assert_ne!(summary["TotalMonthlyCost"]["N"], "0", "{meta}");
    assert!(summary["LastCalculatedAt"]["S"].is_string(), "{meta}");
    assert_eq!(
        meta["Version"]["N"], "1",
        "the application's lock is untouched"
    );
    assert_eq!(meta["UpdatedAt"]["S"], "2026-12-03T10:00:00.123456");
    // The audit names the estimation by its whole id: digit runs are not phone numbers.
    let audited: Vec<&Value> = items
        .iter()
        .filter(|i| i["EntityType"]["S"] == "AuditLog")
        .collect();
    assert!(
        audited
            .iter()
            .any(|a| a["ResourceId"]["S"] == format!("{id}/METADATA")),
        "{audited:?}"
    );

    // The application re-puts METADATA whole, its placeholder again: computed again.
    let again = [support::record(
        4,
        "MODIFY",
        meta_keys,
        Some(metadata.clone()),
        Some(metadata),
    )];
    let (code, _, stderr) = replay_with(&dir.path().join("state"), &again, &[]);
    assert_eq!(code, 0, "{stderr}");
}

fn pilotforce_records() -> Vec<Value> {
    let user_keys = json!({"UserId": s("auth0|65f2a")});
    let user = json!({
        "UserId": s("auth0|65f2a"), "Email": s("pia.pilot@example.com"), "Name": s("Pia"),
        "PhoneNumber": s("+44 20 7946 0958"), "Preferences": {"NULL": true},
    });
    let booking_keys = json!({"BookingId": s("01JEBX7Q2M8ZP4W9V3K6T5R1NA")});
    let booking = json!({
        "BookingId": s("01JEBX7Q2M8ZP4W9V3K6T5R1NA"), "UserId": s("auth0|65f2a"),
        "Status": s("PENDING"), "BookingDate": s("2026-12-10"), "BookingTime": {"NULL": true},
        "ServiceType": s("Roof survey"), "CreatedAt": n("1796292287864"),
    });
    let mut confirmed = booking.clone();
    confirmed["Status"] = s("CONFIRMED");
    vec![
        insert("Users", 1, user_keys, user),
        insert("Bookings", 2, booking_keys.clone(), booking.clone()),
        modify("Bookings", 3, booking_keys, confirmed, booking),
    ]
}

/// Issue 41: a PilotForce-kind application keys its bookings `BookingId` and its users
/// `UserId` (with `Email`, `Name`); every booking was parked for "missing field bookingId".
#[test]
fn pilotforce_booking_mail_goes_out_with_the_applications_names() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let env = [
        ("PILOTFORCE_BOOKINGS_TABLE", "Bookings"),
        ("PILOTFORCE_USERS_TABLE", "Users"),
        (
            "ATTRIBUTE_NAMES",
            "pilotforce-booking-mail.bookingId=BookingId, pilotforce-booking-mail.userId=UserId, \
             pilotforce-booking-mail.status=Status, pilotforce-booking-mail.bookingDate=BookingDate, \
             pilotforce-booking-mail.bookingTime=BookingTime, pilotforce-booking-mail.serviceType=ServiceType, \
             pilotforce-booking-mail.user.userId=UserId, pilotforce-booking-mail.user.email=Email, \
             pilotforce-booking-mail.user.name=Name, pilotforce-booking-mail.user.preferences=Preferences",
        ),
    ];
    let (code, lines, stderr) = replay_with(&state, &pilotforce_records(), &env);
    assert_eq!(code, 0, "{stderr}");
    for index in [1, 2] {
        let mail = result_of(&lines, index, "pilotforce-booking-mail");
        assert_eq!(mail["outcome"], "done", "{mail}");
        assert_eq!(
            mail["result"]["mail"]["sent_to"], "pia.pilot@example.com",
            "{mail}"
        );
    }
    let sent = outbox(&state);
    assert_eq!(sent.len(), 2);
    assert!(
        sent[0].contains("01JEBX7Q2M8ZP4W9V3K6T5R1NA"),
        "{}",
        sent[0]
    );
    assert!(sent[1].contains("CONFIRMED"), "{}", sent[1]);
}

/// Without the names configured nothing is parked: the mail is `not_sent`, saying which
/// attributes it looked for, at WARN, and the bookings' ids still come from their keys.
#[test]
fn an_unconfigured_name_is_named_in_the_result_not_a_parked_record() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let env = [
        ("PILOTFORCE_BOOKINGS_TABLE", "Bookings"),
        ("PILOTFORCE_USERS_TABLE", "Users"),
    ];
    let (code, lines, stderr) = replay_with(&state, &pilotforce_records(), &env);
    assert_eq!(code, 0, "nothing parked: {stderr}");
    let mail = result_of(&lines, 1, "pilotforce-booking-mail");
    assert_eq!(mail["outcome"], "not_sent", "never a plain done: {mail}");
    let reason = mail["result"]["not_sent"].as_str().unwrap();
    assert!(
        reason.contains("userEmail") && reason.contains("userId"),
        "{reason}"
    );
    assert!(stderr.contains("mail not sent"), "{stderr}");
    assert!(outbox(&state).is_empty());
    // No idempotency item spent on a mail that did not go out.
    assert!(table(&state, "marketplace-dev-idempotency-table").is_empty());
}

/// Issue 41: a marketplace-kind application keeps the customer's address on the booking and
/// the provider's on the provider item; its users table is empty.
#[test]
fn marketplace_mail_finds_addresses_on_the_booking_and_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let providers = "marketplace-dev-providers-table";
    let bookings = "marketplace-dev-bookings-table";
    let provider_keys = json!({"providerId": s("prov_1796292287864_k3x9")});
    let provider = json!({
        "providerId": s("prov_1796292287864_k3x9"), "email": s("pat@plumbing.example"),
        "name": s("Pat's Plumbing"), "rating": n("0"),
    });
    let booking_keys = json!({"bookingId": s("bk-7f3e")});
    let booking = json!({
        "bookingId": s("bk-7f3e"), "customerId": s("cust-9"), "providerId": s("prov_1796292287864_k3x9"),
        "customerEmail": s("carla@customer.example"), "status": s("pending"),
        "scheduledDate": s("2026-12-10T14:30:00.000Z"), "notes": {"NULL": true},
    });
    let mut confirmed = booking.clone();
    confirmed["status"] = s("confirmed");
    let lost_keys = json!({"bookingId": s("bk-nobody")});
    let lost = json!({"bookingId": s("bk-nobody"), "customerId": s("cust-0"), "providerId": s("prov-0"), "status": s("pending")});
    let records = [
        insert(providers, 1, provider_keys, provider),
        insert(bookings, 2, booking_keys.clone(), booking.clone()),
        modify(bookings, 3, booking_keys, confirmed, booking),
        insert(bookings, 4, lost_keys, lost),
    ];
    let (code, lines, stderr) = replay_with(&state, &records, &[]);
    assert_eq!(code, 0, "{stderr}");
    let to_provider = result_of(&lines, 1, "marketplace-booking-mail");
    assert_eq!(
        to_provider["result"]["mail"]["sent_to"], "pat@plumbing.example",
        "{to_provider}"
    );
    let to_customer = result_of(&lines, 2, "marketplace-booking-mail");
    assert_eq!(
        to_customer["result"]["mail"]["sent_to"], "carla@customer.example",
        "{to_customer}"
    );
    let nobody = result_of(&lines, 3, "marketplace-booking-mail");
    assert_eq!(nobody["outcome"], "not_sent", "{nobody}");
    let reason = nobody["result"]["not_sent"].as_str().unwrap();
    assert!(
        reason.contains("providerEmail")
            && reason.contains(providers)
            && reason.contains("marketplace-dev-users-table"),
        "{reason}"
    );
    assert_eq!(outbox(&state).len(), 2);
    // Two idempotency items, for the two mails sent; none for the one that could not be.
    assert_eq!(table(&state, "marketplace-dev-idempotency-table").len(), 2);
}

fn message(seq: u64, id: &str, at: &str, from: &str, to: &str) -> Value {
    let keys = json!({"conversation_id": s("conv-0193a1"), "response_id": s(id)});
    let mut new = keys.clone();
    new["sender"] = s(from);
    new["receiver"] = s(to);
    new["timestamp"] = s(at);
    new["body"] = json!({"NULL": true});
    insert("acsd2p-dev-Conversations", seq, keys, new)
}

/// Issue 41: messages carry `sender`/`receiver`, and two functions write two time forms.
#[test]
fn thread_stats_follow_renamed_participants_and_compare_times_as_instants() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let records = [
        // Written second but later: as text "…51Z" sorts after "…51.777868".
        message(
            1,
            "r-2",
            "2026-12-03T10:04:51.777868",
            "owner@acme.example",
            "client@buyer.example",
        ),
        message(
            2,
            "r-1",
            "2026-12-03T10:04:51Z",
            "client@buyer.example",
            "owner@acme.example",
        ),
    ];
    let env = [(
        "ATTRIBUTE_NAMES",
        "thread-stats.sender_email=sender,thread-stats.recipient_email=receiver",
    )];
    let (code, lines, stderr) = replay_with(&state, &records, &env);
    assert_eq!(code, 0, "{stderr}");
    let stats = result_of(&lines, 1, "thread-stats");
    let figures = &stats["result"]["conv-0193a1"];
    assert_eq!(figures["message_count"], "2", "{stats}");
    assert_eq!(
        figures["last_message_at"], "2026-12-03T10:04:51.777868",
        "the later instant, in the application's own text"
    );
    assert_eq!(
        figures["participants"],
        json!(["client@buyer.example", "owner@acme.example"]),
        "in order of first appearance, as instants"
    );

    // The same messages without the names configured: counted, and the result says what it
    // could not read.
    let (code, lines, stderr) = replay_with(&dir.path().join("bare"), &records, &[]);
    assert_eq!(code, 0, "{stderr}");
    let stats = result_of(&lines, 0, "thread-stats");
    assert_eq!(
        stats["result"]["unread"],
        json!(["sender_email", "recipient_email"]),
        "{stats}"
    );
    assert!(stderr.contains("sender_email"), "{stderr}");
}

/// A name for a reaction or an attribute the worker does not have is refused before anything
/// runs, naming it and what there is.
#[test]
fn an_unknown_reaction_or_attribute_in_attribute_names_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (entry, expected) in [
        ("thread-stats.sender=From", "reads no attribute"),
        ("thread-stat.sender_email=From", "is not a reaction"),
        ("thread-stats", "reaction.attribute=Name"),
    ] {
        let state = dir.path().join("s");
        let (code, lines, stderr) =
            replay_with(&state, &pilotforce_records(), &[("ATTRIBUTE_NAMES", entry)]);
        assert_eq!(code, 2, "{entry}: {stderr}");
        assert!(
            lines.iter().all(|l| l.get("reactions").is_none()),
            "nothing ran: {lines:?}"
        );
        assert!(
            stderr.contains("ATTRIBUTE_NAMES") && stderr.contains(expected),
            "{entry}: {stderr}"
        );
    }
}

/// Issue 41: a replayed capture must do what the live mapping did. The cost platform's mapping
/// does not deliver the worker's own `CALCULATION#` items; a replay without the mapping's
/// filter audited them.
#[test]
fn replay_with_the_mappings_filter_delivers_what_the_live_mapping_does() {
    let dir = tempfile::tempdir().unwrap();
    let keys =
        json!({"PK": s("ESTIMATION#e-1"), "SK": s("CALCULATION#2026-12-03T10:04:51.000Z#v1")});
    let mut calculation = keys.clone();
    calculation["EntityType"] = s("CostCalculation");
    calculation["TotalMonthlyCost"] = n("100");
    let profile_keys = json!({"PK": s("USER#u-1"), "SK": s("PROFILE")});
    let mut profile = profile_keys.clone();
    profile["Name"] = s("Uma");
    let records = [
        support::record(1, "INSERT", keys, Some(calculation), None),
        support::record(2, "INSERT", profile_keys, Some(profile), None),
    ];
    let file = dir.path().join("capture.json");
    std::fs::write(&file, json!({ "Records": records }).to_string()).unwrap();
    let audits = |state: &Path| {
        table(state, "aws-cost-platform-enhanced")
            .into_iter()
            .filter(|i| i["EntityType"]["S"] == "AuditLog")
            .map(|i| i["ResourceId"]["S"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };

    let unfiltered = dir.path().join("unfiltered");
    let (code, _, stderr) = replay_file_with(&file, &unfiltered, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        audits(&unfiltered).len(),
        2,
        "without the filter both are audited"
    );

    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/template.yaml");
    let state = dir.path().join("filtered");
    let output = support::cli::worker()
        .arg("replay")
        .arg(&file)
        .arg("--state")
        .arg(&state)
        .arg("--json")
        .arg("--config")
        .arg(&template)
        .args(["--event", "CostPlatform"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let delivered: Vec<&Value> = lines.iter().filter(|l| l["reactions"].is_array()).collect();
    assert_eq!(delivered.len(), 1, "only the profile: {lines:?}");
    assert_eq!(delivered[0]["keys"]["SK"]["S"], "PROFILE");
    assert_eq!(audits(&state), ["u-1/PROFILE"]);
    assert!(
        stderr.contains("1 record(s) not delivered: left out by the filter criteria"),
        "{stderr}"
    );
    // The table still holds the change the filter kept from the worker.
    assert!(table(&state, "aws-cost-platform-enhanced")
        .iter()
        .any(|i| i["EntityType"]["S"] == "CostCalculation"));
}

fn message_in(table: &str, seq: u64, keys: Value, from: &str, at: &str) -> Value {
    let mut new = keys.clone();
    new["sender_email"] = s(from);
    new["recipient_email"] = s("owner@acme.example");
    new["timestamp"] = s(at);
    insert(table, seq, keys, new)
}

/// Two messages of conversation `c-1` in `table` (r1 at 10:00 from a@, r2 at 11:00 from b@),
/// keyed by `key(response id, time)`.
fn two_messages(table: &str, key: impl Fn(&str, &str) -> Value) -> [Value; 2] {
    let at = ["2026-12-03T10:00:00Z", "2026-12-03T11:00:00Z"];
    [
        message_in(table, 1, key("r1", at[0]), "a@x.example", at[0]),
        message_in(table, 2, key("r2", at[1]), "b@x.example", at[1]),
    ]
}

/// Issue 41: a capture of an application's conversations table, with bare table names, parked
/// its first record ("table Threads is not defined") and failed the next. A configured name
/// stands for the seed's table and keeps its schema; nothing needs rebuilding.
#[test]
fn a_capture_of_bare_named_tables_replays_without_any_definition() {
    let dir = tempfile::tempdir().unwrap();
    let records = two_messages(
        "Conversations",
        |id, _| json!({"conversation_id": s("c-1"), "response_id": s(id)}),
    );
    let env = [
        ("ACS_CONVERSATIONS_TABLE", "Conversations"),
        ("ACS_THREADS_TABLE", "Threads"),
    ];
    let thread = replay_into_threads(&dir.path().join("state"), &records, &env);
    assert_eq!(thread["conversation_id"]["S"], "c-1");
    assert_eq!(thread["message_count"]["N"], "2");
}

/// `records` replayed with `env`, nothing parked or failed, thread-stats done on the last:
/// the one item of the `Threads` table.
fn replay_into_threads(state: &Path, records: &[Value], env: &[(&str, &str)]) -> Value {
    let (code, lines, stderr) = replay_with(state, records, env);
    assert_eq!(code, 0, "nothing parked, nothing failed: {stderr}");
    let last = lines.iter().filter(|l| l["reactions"].is_array()).count() - 1;
    assert_eq!(result_of(&lines, last, "thread-stats")["outcome"], "done");
    table_item(state, "Threads")
}

/// The application's own key names, on a table the stream never showed (its threads table
/// has no stream): the key the worker uses is the table's key. `reconcile threads --all`
/// then finds the conversation by those names too (on the messages and on the threads), not
/// by the seed's, and finds it right.
#[test]
fn a_table_without_a_stream_takes_the_key_the_worker_is_configured_with() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let records = two_messages(
        "Conversations",
        |id, _| json!({"ConversationId": s("c-1"), "ResponseId": s(id)}),
    );
    let env = [
        ("ACS_CONVERSATIONS_TABLE", "Conversations"),
        ("ACS_THREADS_TABLE", "Threads"),
        (
            "ATTRIBUTE_NAMES",
            "thread-stats.conversation_id=ConversationId, thread-stats.response_id=ResponseId, \
             thread-stats.thread.conversation_id=ConversationId",
        ),
    ];
    let thread = replay_into_threads(&state, &records, &env);
    assert_eq!(thread["ConversationId"]["S"], "c-1");
    assert_eq!(thread["message_count"]["N"], "2");
    let mut reconcile = support::cli::worker();
    reconcile.envs(env);
    let output = reconcile
        .args(["reconcile", "threads", "--all", "--json", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "one conversation: {lines:?} {stderr}");
    assert_eq!(lines[0]["aggregate"], "c-1");
    assert_eq!(lines[0]["computed"]["message_count"], "2");
    assert_eq!(lines[0]["fixedAggregate"], false, "{lines:?}");
}

/// Where the records cannot say which key attribute is the partition key, the replay refuses
/// until a schema file (`--schema`, or the one `capture` writes beside its events) says it,
/// and the state keeps it for later commands: `reconcile` reads the conversation by its
/// partition.
#[test]
fn a_schema_file_gives_the_key_schema_the_records_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let records = two_messages("Conv", |_, at| json!({"thread": s("c-1"), "at": s(at)}));
    let env = [
        ("ACS_CONVERSATIONS_TABLE", "Conv"),
        (
            "ATTRIBUTE_NAMES",
            "thread-stats.conversation_id=thread, thread-stats.response_id=at",
        ),
    ];
    // `reconcile threads` on the state a replay of `records` leaves: exit code and output.
    let replay_then_reconcile = |name: &str, schema: &Value| {
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, json!({ "Records": records }).to_string()).unwrap();
        let beside = dir.path().join(format!("{name}.json.schema.json"));
        std::fs::write(beside, schema.to_string()).unwrap();
        let state = dir.path().join(name);
        let (code, _, stderr) = replay_file_with(&file, &state, &env);
        assert_eq!(code, 0, "{stderr}");
        let mut reconcile = support::cli::worker();
        for (name, value) in env {
            reconcile.env(name, value);
        }
        let output = reconcile
            .args([
                "reconcile",
                "threads",
                "--conversation",
                "c-1",
                "--json",
                "--state",
            ])
            .arg(&state)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.code(), text.replace(' ', ""))
    };
    // Without a schema, the records' Keys (`thread`, `at`) do not say which is the partition
    // key: the replay refuses before it starts, naming the table and the flag that fixes it.
    let file = dir.path().join("unknown.json");
    std::fs::write(&file, json!({ "Records": records }).to_string()).unwrap();
    let state = dir.path().join("unknown");
    let (code, lines, stderr) = replay_file_with(&file, &state, &env);
    assert_eq!(code, 2, "{stderr}");
    let error = lines
        .last()
        .map(|l| l["error"].to_string())
        .unwrap_or_default();
    assert!(
        error.contains("table Conv") && error.contains("replay --schema FILE"),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|l| l.get("reactions").is_none()),
        "no record ran: {lines:?}"
    );
    // DescribeTable's output, as `capture` writes it beside the events.
    let schema = json!([{"Table": {
        "TableName": "Conv",
        "KeySchema": [{"AttributeName": "thread", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "thread", "AttributeType": "S"}, {"AttributeName": "at", "AttributeType": "S"}],
        "TableStatus": "ACTIVE", "ItemCount": 2,
    }}]);
    let (code, text) = replay_then_reconcile("described", &schema);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("\"message_count\":\"2\""), "{text}");
}

/// Reviews as a PascalCase application writes them (a rating as a numeric string, `null`
/// where a booking is not known), into tables under its own names: the providers table
/// keyed `ProviderId`.
#[test]
fn ratings_follow_reviews_with_the_applications_names() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let review = |seq: u64, id: &str, booking: Value, rating: Value| {
        let keys = json!({"ReviewId": s(id)});
        let mut new = keys.clone();
        new["ProviderId"] = s("p-1");
        new["BookingId"] = booking;
        new["Rating"] = rating;
        new["CreatedAt"] = n(&(1796292287864 + seq).to_string());
        insert("Reviews", seq, keys, new)
    };
    let records = [
        review(1, "rv-1", s("b-1"), n("5")),
        review(2, "rv-2", s("b-2"), s("4")),
    ];
    let env = [
        ("MARKETPLACE_REVIEWS_TABLE", "Reviews"),
        ("MARKETPLACE_PROVIDERS_TABLE", "Providers"),
        (
            "ATTRIBUTE_NAMES",
            "provider-rating.reviewId=ReviewId, provider-rating.bookingId=BookingId, \
             provider-rating.providerId=ProviderId, provider-rating.createdAt=CreatedAt, \
             provider-rating.rating=Rating, provider-rating.provider.providerId=ProviderId",
        ),
    ];
    let (code, lines, stderr) = replay_with(&state, &records, &env);
    assert_eq!(code, 0, "{stderr}");
    let rated = result_of(&lines, 1, "provider-rating");
    assert_eq!(rated["outcome"], "done", "{rated}");
    assert_eq!(
        rated["result"]["numbersFromText"],
        json!(["Rating"]),
        "{rated}"
    );
    let providers = table(&state, "Providers");
    assert_eq!(providers.len(), 1, "{providers:?}");
    assert_eq!(providers[0]["ProviderId"]["S"], "p-1");
    assert_eq!(providers[0]["ratingSum"]["N"], "9");
    assert_eq!(providers[0]["reviewCount"]["N"], "2");
    assert_eq!(providers[0]["rating"]["N"], "4.5");
}

/// The order of a booking mail's sources is the user's: here the provider's own item before
/// the address the booking carries.
#[test]
fn the_recipient_sources_are_tried_in_the_configured_order() {
    let dir = tempfile::tempdir().unwrap();
    let provider_keys = json!({"providerId": s("prov-1")});
    let provider = json!({"providerId": s("prov-1"), "email": s("office@plumbing.example")});
    let booking_keys = json!({"bookingId": s("bk-1")});
    let booking = json!({
        "bookingId": s("bk-1"), "customerId": s("cust-1"), "providerId": s("prov-1"),
        "providerEmail": s("pat@plumbing.example"), "status": s("pending"),
    });
    let records = [
        insert(
            "marketplace-dev-providers-table",
            1,
            provider_keys,
            provider,
        ),
        insert("marketplace-dev-bookings-table", 2, booking_keys, booking),
    ];
    let sent_to = |state: &Path, env: &[(&str, &str)]| {
        let (code, lines, stderr) = replay_with(state, &records, env);
        assert_eq!(code, 0, "{stderr}");
        result_of(&lines, 1, "marketplace-booking-mail")["result"]["mail"]["sent_to"].clone()
    };
    assert_eq!(sent_to(&dir.path().join("a"), &[]), "pat@plumbing.example");
    assert_eq!(
        sent_to(
            &dir.path().join("b"),
            &[("MARKETPLACE_MAIL_SOURCES", "provider,booking")]
        ),
        "office@plumbing.example"
    );
    let (code, _, stderr) = replay_with(
        &dir.path().join("c"),
        &records,
        &[("MARKETPLACE_MAIL_SOURCES", "booking,crm")],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("MARKETPLACE_MAIL_SOURCES"), "{stderr}");
}

/// The application puts an item again whole, without the worker's attributes (its own copy of
/// the provider, of the thread): the next change still gives the figures of every review and
/// message, not of the last one alone.
#[test]
fn an_item_re_put_whole_by_the_application_keeps_exact_figures() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let providers = "marketplace-dev-providers-table";
    let reviews = "marketplace-dev-reviews-table";
    let review = |seq: u64, id: &str, booking: &str, rating: &str| {
        let keys = json!({"reviewId": s(id)});
        let mut new = keys.clone();
        new["providerId"] = s("p-1");
        new["bookingId"] = s(booking);
        new["rating"] = n(rating);
        new["createdAt"] = s(&format!("2026-12-0{seq}T00:00:00Z"));
        insert(reviews, seq, keys, new)
    };
    let provider_keys = json!({"providerId": s("p-1")});
    let threads = "acsd2p-dev-Threads";
    let thread_keys = json!({"conversation_id": s("c-1")});
    let message = |seq: u64, id: &str, from: &str| {
        let keys = json!({"conversation_id": s("c-1"), "response_id": s(id)});
        message_in(
            "acsd2p-dev-Conversations",
            seq,
            keys,
            from,
            &format!("2026-12-0{seq}T00:00:00Z"),
        )
    };
    let first = [
        insert(
            providers,
            1,
            provider_keys.clone(),
            json!({"providerId": s("p-1"), "name": s("Pat")}),
        ),
        review(2, "r1", "b1", "5"),
        review(3, "r2", "b2", "3"),
        message(4, "m1", "a@x.example"),
        message(5, "m2", "b@x.example"),
    ];
    let (code, _, stderr) = replay_with(&state, &first, &[]);
    assert_eq!(code, 0, "{stderr}");
    let stored = |table: &str| table_item(&state, table);
    let provider_before = stored(providers);
    let thread_before = stored(threads);
    assert_eq!(provider_before["reviewCount"]["N"], "2");
    assert_eq!(thread_before["message_count"]["N"], "2");

    // Put again whole by the application: its own attributes only.
    let then = [
        modify(
            providers,
            6,
            provider_keys,
            json!({"providerId": s("p-1"), "name": s("Pat P.")}),
            provider_before,
        ),
        modify(
            threads,
            7,
            thread_keys,
            json!({"conversation_id": s("c-1"), "subject": s("Quote")}),
            thread_before,
        ),
        review(8, "r3", "b3", "4"),
        message(9, "m3", "c@x.example"),
    ];
    let (code, _, stderr) = replay_with(&state, &then, &[]);
    assert_eq!(code, 0, "{stderr}");
    let provider = stored(providers);
    assert_eq!(
        (&provider["ratingSum"]["N"], &provider["reviewCount"]["N"]),
        (&json!("12"), &json!("3")),
        "{provider}"
    );
    let thread = stored(threads);
    assert_eq!(thread["message_count"]["N"], "3", "{thread}");
    assert_eq!(
        thread["participants"]["L"].as_array().unwrap().len(),
        4,
        "{thread}"
    );
}

/// The one item of `table` in the state.
fn table_item(state: &Path, name: &str) -> Value {
    let items = table(state, name);
    assert_eq!(items.len(), 1, "{name}: {items:?}");
    items.into_iter().next().unwrap()
}

/// Who made a change, by the application's own attribute (`AUDIT_USER_ATTRIBUTES`).
#[test]
fn the_audit_names_the_user_by_the_applications_attribute() {
    let dir = tempfile::tempdir().unwrap();
    let keys = json!({"PK": s("USER#u-42"), "SK": s("PROFILE")});
    let mut profile = keys.clone();
    profile["lastEditor"] = s("u-42");
    let records = [support::record(1, "INSERT", keys, Some(profile), None)];
    let user_of = |state: &Path, env: &[(&str, &str)]| {
        let (code, _, stderr) = replay_with(state, &records, env);
        assert_eq!(code, 0, "{stderr}");
        table(state, "aws-cost-platform-enhanced")
            .into_iter()
            .find(|i| i["EntityType"]["S"] == "AuditLog")
            .unwrap()["UserId"]["S"]
            .clone()
    };
    assert_eq!(user_of(&dir.path().join("a"), &[]), "unknown");
    assert_eq!(
        user_of(
            &dir.path().join("b"),
            &[("AUDIT_USER_ATTRIBUTES", "lastEditor,UpdatedBy")]
        ),
        "u-42"
    );
}

/// A cost platform application in its own style: bare table name, `pk`/`sk`, camelCase
/// attributes. With `cost-platform.<Attribute>` entries every cost reaction reads and writes
/// the application's names, and the audit items go in under its keys too.
#[test]
fn the_cost_platform_runs_on_the_applications_own_names() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let id = "0193a1f2-7c4e-7b7a-9d3e-2f1a6c5b4e3d";
    let pk = format!("ESTIMATION#{id}");
    let keys = |sk: &str| json!({"pk": s(&pk), "sk": s(sk)});
    let mut metadata = keys("METADATA");
    metadata["estimationId"] = s(id);
    metadata["version"] = n("3");
    metadata["estimationSummary"] = json!({"NULL": true});
    let mut server = keys("SERVER#a1");
    server["estimatedMonthlyCost"] = n("100");
    server["serverName"] = s("api");
    let mut storage = keys("STORAGE#b2");
    storage["estimatedMonthlyCost"] = s("45.50");
    let records = [
        insert("Estimations", 1, keys("METADATA"), metadata),
        insert("Estimations", 2, keys("SERVER#a1"), server),
        insert("Estimations", 3, keys("STORAGE#b2"), storage),
    ];
    let names = "cost-platform.PK=pk, cost-platform.SK=sk, cost-platform.GSI1PK=gsi1pk, \
                 cost-platform.GSI1SK=gsi1sk, cost-platform.EntityType=entityType, \
                 cost-platform.EstimationId=estimationId, \
                 cost-platform.EstimatedMonthlyCost=estimatedMonthlyCost, \
                 cost-platform.ServerName=serverName, \
                 cost-platform.EstimationSummary=estimationSummary, \
                 cost-platform.SummaryVersion=summaryVersion";
    let env = [("COST_TABLE", "Estimations"), ("ATTRIBUTE_NAMES", names)];
    let (code, lines, stderr) = replay_with(&state, &records, &env);
    assert_eq!(code, 0, "{stderr}");
    let totals = result_of(&lines, 2, "estimation-totals");
    assert_eq!(totals["outcome"], "done", "{totals}");
    assert_eq!(totals["result"]["updated"]["LineItems"], 2, "{totals}");

    let items = table(&state, "Estimations");
    let meta = items
        .iter()
        .find(|i| i["pk"]["S"] == pk && i["sk"]["S"] == "METADATA")
        .unwrap();
    assert_eq!(
        meta["estimationSummary"]["M"]["TotalMonthlyCost"]["N"]
            .as_str()
            .map(|t| t.parse::<f64>().unwrap() > 145.0),
        Some(true),
        "{meta}"
    );
    assert!(meta["summaryVersion"]["N"].is_string(), "{meta}");
    assert_eq!(
        meta["version"]["N"], "3",
        "the application's own is untouched"
    );
    for seed_name in ["EstimationSummary", "SummaryVersion", "PK", "SK"] {
        assert!(meta.get(seed_name).is_none(), "{seed_name} in {meta}");
    }
    let calculation = items
        .iter()
        .find(|i| {
            i["sk"]["S"]
                .as_str()
                .is_some_and(|sk| sk.starts_with("CALCULATION#"))
        })
        .unwrap_or_else(|| panic!("a CALCULATION# item under pk/sk: {items:?}"));
    assert_eq!(calculation["pk"]["S"], pk);
    assert_eq!(calculation["entityType"]["S"], "CostCalculation");

    // The audit goes into the same table under its keys, and names the items by them.
    let audited: Vec<&Value> = items
        .iter()
        .filter(|i| {
            i["pk"]["S"]
                .as_str()
                .is_some_and(|p| p.starts_with("AUDIT#"))
        })
        .collect();
    assert_eq!(audited.len(), 3, "{items:?}");
    assert!(audited.iter().all(|a| a["entityType"]["S"] == "AuditLog"));
    assert!(
        audited
            .iter()
            .any(|a| a["ResourceId"]["S"] == format!("{id}/SERVER#a1")),
        "{audited:?}"
    );
}

/// An attribute name in camelCase, as a JavaScript application writes it (`PK` -> `pk`,
/// `GSI1SK` -> `gsi1sk`, `EstimationId` -> `estimationId`).
fn camel(name: &str) -> String {
    if name.chars().all(|c| !c.is_lowercase()) {
        return name.to_lowercase();
    }
    let mut chars = name.chars();
    chars
        .next()
        .map(|first| first.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The shipped cost platform events as a camelCase application with a bare table name writes
/// them: top-level names camelCase, the inner ones as they are.
fn camel_cost_records(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(support::cli::event(file)).unwrap();
    let mut event: Value = serde_json::from_str(&text).unwrap();
    let records = event["Records"].as_array_mut().unwrap();
    for record in records.iter_mut() {
        let arn = record["eventSourceARN"].as_str().unwrap().to_string();
        record["eventSourceARN"] = json!(arn.replace("aws-cost-platform-enhanced", "Estimations"));
        for part in ["Keys", "NewImage", "OldImage"] {
            if let Some(Value::Object(image)) = record["dynamodb"].get_mut(part) {
                *image = std::mem::take(image)
                    .into_iter()
                    .map(|(name, value)| (camel(&name), value))
                    .collect();
            }
        }
    }
    std::mem::take(records)
}

/// Every cost reaction on a camelCase application: the proposal is rendered and its document
/// completed, the share claimed and mailed, the totals written, each under the application's
/// names and none under the seed's.
#[test]
fn proposals_shares_and_totals_run_on_a_camel_case_application() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let names: Vec<String> = handlers::reactions::renamed::COST_PLATFORM_ATTRIBUTES
        .iter()
        .map(|seed| format!("cost-platform.{seed}={}", camel(seed)))
        .collect();
    let names = names.join(",");
    let env = [
        ("COST_TABLE", "Estimations"),
        ("ATTRIBUTE_NAMES", names.as_str()),
    ];
    let mut records = camel_cost_records("cost-platform-proposal-request.json");
    records.extend(camel_cost_records("cost-platform-share.json"));
    let (code, lines, stderr) = replay_with(&state, &records, &env);
    assert_eq!(code, 0, "{stderr}");
    let outcomes: Vec<(String, String)> = lines
        .iter()
        .filter_map(|l| l["reactions"].as_array())
        .flatten()
        .map(|r| {
            (
                r["reaction"].as_str().unwrap_or_default().to_string(),
                r["outcome"].to_string(),
            )
        })
        .filter(|(_, outcome)| outcome != "\"not_applicable\"")
        .collect();
    for reaction in ["proposal-pdf", "share-notification", "estimation-totals"] {
        assert!(
            outcomes.contains(&(reaction.to_string(), "\"done\"".to_string())),
            "{reaction}: {outcomes:?}"
        );
    }
    let items = table(&state, "Estimations");
    let with_sk = |prefix: &str| {
        items
            .iter()
            .find(|i| {
                i["sk"]["S"]
                    .as_str()
                    .is_some_and(|sk| sk.starts_with(prefix))
            })
            .unwrap_or_else(|| panic!("{prefix}: {items:?}"))
    };
    let document = with_sk("DOCUMENT#");
    assert_eq!(document["status"]["S"], "COMPLETED", "{document}");
    assert!(document["s3Key"]["S"].is_string(), "{document}");
    assert!(document.get("Status").is_none() && document.get("S3Key").is_none());
    let share = with_sk("SHARED#");
    assert_eq!(share["notificationSent"]["BOOL"], true, "{share}");
    // (The share's file puts METADATA again whole, without a summary: the record of the
    // calculation is where the totals stay.)
    let calculation = with_sk("CALCULATION#");
    assert!(
        calculation["totalMonthlyCost"]["N"].is_string(),
        "{calculation}"
    );
    assert!(
        items
            .iter()
            .all(|i| i.get("PK").is_none() && i.get("SK").is_none()),
        "nothing under the seed's keys"
    );
    assert_eq!(
        outbox(&state).len(),
        2,
        "the proposal's mail and the share's"
    );
}

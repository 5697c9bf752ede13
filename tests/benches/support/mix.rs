//! Generated stream events that mix the seed systems, for the benchmarks: cost platform user
//! profiles (audited), estimation line items (totals), marketplace reviews (ratings) and ACS
//! messages (thread statistics).

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

#[path = "../../support/stream_record.rs"]
mod stream_record;
use stream_record::StreamRecord;

/// The generated records' stream time: when the process started, to the minute. What the worker
/// writes with a time to live counts from it (completion notes 24 hours, audit items a year), so
/// it outlives the run as it does in production, where Lambda delivers a record again within
/// the stream's 24 hours. Dated in the past, DynamoDB Local's TTL job would delete those items
/// during the run: background work in the figures, and a re-delivery that finds no notes.
fn stream_time() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1_735_689_600, |d| d.as_secs());
        now - now % 60
    })
}

/// What a generated record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Profile,
    LineItem,
    Review,
    Message,
}

pub struct Mix {
    /// Put into every generated id, so that runs against a shared DynamoDB Local do not mix.
    pub tag: String,
    pub kinds: Vec<Kind>,
    pub providers: usize,
    pub estimations: usize,
    pub conversations: usize,
}

fn record(
    tag: &str,
    table: &str,
    seq: usize,
    name: &str,
    keys: Value,
    new: Value,
    old: Option<Value>,
) -> Value {
    StreamRecord {
        table,
        event_id: event_id(tag, seq),
        event_name: name,
        sequence_number: format!("{:021}", seq + 1),
        created: stream_time() + seq as u64 / 10,
        keys,
        new: Some(new),
        old,
        by_ttl: false,
    }
    .into_json()
}

/// An eventID as DynamoDB gives them: 32 hex digits in no order, the same for the same tag and
/// place. Ids that sort in stream order (`bench-t-1`, `bench-t-2`...) hid what a store keyed by
/// eventID pays for ids that do not: the day with DynamoDB's kind wrote 80 % more
/// (BENCHMARKS.md, "Batches committed together").
fn event_id(tag: &str, seq: usize) -> String {
    // FNV-1a of the tag, then splitmix64 of it with the place: stable across runs and builds.
    let tag = handlers::item::stable_hash(tag.as_bytes());
    let mix = |x: u64| {
        let x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    };
    let high = mix(tag ^ seq as u64);
    format!("{high:016x}{:016x}", mix(high))
}

fn s(v: impl Into<String>) -> Value {
    json!({ "S": v.into() })
}

fn n(v: impl std::fmt::Display) -> Value {
    json!({ "N": v.to_string() })
}

impl Mix {
    /// `count` records; estimations get their METADATA first, so totals have something to update.
    pub fn records(&self, count: usize, offset: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(count);
        let cost = "aws-cost-platform-enhanced";
        for i in 0..count {
            let seq = offset + i;
            let kind = self.kinds[seq % self.kinds.len()];
            // The record's place among those of its kind: estimations, providers and
            // conversations are taken in turn by the records that touch them, so all are used.
            let nth = seq / self.kinds.len();
            let record = match kind {
                Kind::Profile => {
                    let user = format!("USER#{}u{}", self.tag, seq % 997);
                    let keys = json!({ "PK": s(&user), "SK": s("PROFILE") });
                    let image = |v: usize| json!({ "PK": s(&user), "SK": s("PROFILE"), "EntityType": s("User"), "UserId": s(format!("u{}", seq % 997)), "Email": s(format!("user{}@example.com", seq % 997)), "FirstName": s("Bench"), "LastLoginAt": s(format!("2025-01-01T00:00:{:02}Z", v % 60)) });
                    record(
                        &self.tag,
                        cost,
                        seq,
                        "MODIFY",
                        keys,
                        image(seq),
                        Some(image(seq + 1)),
                    )
                }
                Kind::LineItem => {
                    let estimation =
                        format!("ESTIMATION#{}e{}", self.tag, nth % self.estimations.max(1));
                    // The first record of each estimation is its METADATA (counted among the
                    // line items, not among all records, which would give most none).
                    if nth < self.estimations {
                        let keys = json!({ "PK": s(&estimation), "SK": s("METADATA") });
                        record(
                            &self.tag,
                            cost,
                            seq,
                            "INSERT",
                            keys.clone(),
                            json!({ "PK": s(&estimation), "SK": s("METADATA"), "EntityType": s("Estimation"), "ProjectName": s("Bench"), "Version": n(1) }),
                            None,
                        )
                    } else {
                        let sk = format!("SERVER#s{}", seq % 13);
                        let keys = json!({ "PK": s(&estimation), "SK": s(&sk) });
                        let image = json!({ "PK": s(&estimation), "SK": s(&sk), "EntityType": s("ComputeServer"), "ServerName": s("Bench server"), "EstimatedMonthlyCost": n(format!("{}.{:02}", 50 + seq % 200, seq % 100)) });
                        record(&self.tag, cost, seq, "INSERT", keys, image, None)
                    }
                }
                Kind::Review => {
                    let id = format!("rev-{}-{seq}", self.tag);
                    let keys = json!({ "reviewId": s(&id) });
                    let image = json!({ "reviewId": s(&id), "bookingId": s(format!("bk-{}-{seq}", self.tag)), "providerId": s(format!("prov-{}-{}", self.tag, nth % self.providers.max(1))), "rating": n(1 + seq % 5), "createdAt": s(format!("2025-01-01T00:00:00.{seq:06}Z")) });
                    record(
                        &self.tag,
                        "marketplace-dev-reviews-table",
                        seq,
                        "INSERT",
                        keys,
                        image,
                        None,
                    )
                }
                Kind::Message => {
                    let conversation =
                        format!("conv-{}-{}", self.tag, nth % self.conversations.max(1));
                    let keys = json!({ "conversation_id": s(&conversation), "response_id": s(format!("r{seq}")) });
                    let image = json!({ "conversation_id": s(&conversation), "response_id": s(format!("r{seq}")), "sender_email": s(format!("s{}@example.com", seq % 7)), "recipient_email": s("owner@example.com"), "timestamp": s(format!("2025-01-01T00:{:02}:{:02}Z", (seq / 60) % 60, seq % 60)) });
                    record(
                        &self.tag,
                        "acsd2p-dev-Conversations",
                        seq,
                        "INSERT",
                        keys,
                        image,
                        None,
                    )
                }
            };
            out.push(record);
        }
        out
    }
}

//! The audit log reaction: one AuditLog item (`deploy/data-model.md`) for every
//! INSERT, MODIFY and REMOVE on the audited tables.
//!
//! Idempotent by construction: the item's key and every attribute are derived from the
//! stream record (eventID, ApproximateCreationDateTime), so a re-delivery writes the same
//! item again and changes nothing. That also lets the batch group the writes into
//! BatchWriteItem calls. Audit items and the idempotency table are never audited, so the
//! reaction cannot feed itself.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Serialize;

use super::contract::{Idempotency, Reacted, Reaction};
use super::estimation_totals::SUMMARY_VERSION;
use super::renamed::COST_PLATFORM;
use crate::attribute_names::AttributeNames;
use crate::change::{Change, ChangeKind, TTL_PRINCIPAL};
use crate::error::ReactionError;
use crate::item::{get_str, stable_hash, to_item, AttributeValue, Item};
use crate::ports::{Ports, WriteRequest};
use crate::redact::{SensitiveNames, DEFAULT_SENSITIVE_NAMES, REDACTED};
use crate::settings::{ConfigError, Settings};

/// Attributes only the worker itself writes on items of the audited tables (estimation
/// summaries, share notifications; `deploy/data-model.md` lists them). A MODIFY that changes
/// nothing else is the worker's own write, not a user's, and is not audited.
const WORKER_ATTRIBUTES: [&str; 5] = [
    "EstimationSummary",
    SUMMARY_VERSION,
    "NotificationSent",
    "NotificationSentAt",
    "NotificationEventId",
];

/// Attributes that name who made a change, in the order they are looked for
/// (`AUDIT_USER_ATTRIBUTES`).
const USER_ATTRIBUTES: &str = "UpdatedBy,ModifiedBy,CreatedBy,UserId,userId,user_id,SharedByUserId";

#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Tables whose changes are audited.
    pub audited_tables: Vec<String>,
    /// Where audit items go.
    pub audit_table: String,
    /// Tables never audited whatever `audited_tables` says (the idempotency table).
    pub excluded_tables: Vec<String>,
    /// Write shards per day: PK `AUDIT#<date>#<0..shards-1>`; 1 keeps the seed's `AUDIT#<date>`.
    pub shards: u32,
    /// How long an audit item lives (its `TTL`), counted from the change.
    pub retention_days: i64,
    /// Tables of which only TTL deletes are audited (ACS Sessions: `SESSION_EXPIRED`).
    pub expiry_only_tables: Vec<String>,
    /// Entity names for tables whose items carry no `EntityType` (`acsd2p-dev-Sessions` ->
    /// `Session`).
    pub entity_names: Vec<(String, String)>,
    /// Attributes whose values are never copied (`REDACTED_ATTRIBUTES`).
    pub sensitive: SensitiveNames,
    /// Attributes that name who made a change, in the order looked for.
    pub user_attributes: Vec<String>,
    /// The application's names of the single-table attributes read (`PK`, `SK`,
    /// `EntityType`) and of the worker's own ([`WORKER_ATTRIBUTES`]): the cost platform's,
    /// renamed with `cost-platform.<Attribute>` in `ATTRIBUTE_NAMES`.
    pub names: AttributeNames,
}

impl AuditConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let sessions_table = s.table("ACS_SESSIONS_TABLE");
        let entity_names = s
            .list("AUDIT_ENTITY_NAMES", &format!("{sessions_table}=Session"))
            .into_iter()
            .filter_map(|pair| {
                pair.split_once('=')
                    .map(|(t, e)| (t.trim().to_string(), e.trim().to_string()))
            })
            .collect();
        // The seed keeps audit items in the cost platform's table, whatever it is called.
        let cost_table = s.table("COST_TABLE");
        let audit_table = match s.text("AUDIT_TABLE", "").as_str() {
            "" => cost_table.clone(),
            _ => s.table("AUDIT_TABLE"),
        };
        Ok(AuditConfig {
            audited_tables: s.list("AUDITED_TABLES", &cost_table),
            audit_table,
            excluded_tables: vec![s.table("IDEMPOTENCY_TABLE")],
            shards: u32::try_from(s.count("AUDIT_SHARDS", 10)?).unwrap_or(u32::MAX),
            retention_days: s.count("AUDIT_RETENTION_DAYS", 365)?,
            expiry_only_tables: s.list("AUDIT_EXPIRY_ONLY_TABLES", &sessions_table),
            entity_names,
            user_attributes: s.list("AUDIT_USER_ATTRIBUTES", USER_ATTRIBUTES),
            sensitive: SensitiveNames::from_list(
                &s.text("REDACTED_ATTRIBUTES", DEFAULT_SENSITIVE_NAMES),
            ),
            names: s.attribute_names(
                COST_PLATFORM,
                &[&["PK", "SK", "EntityType"][..], &WORKER_ATTRIBUTES[..]].concat(),
            )?,
        })
    }
}

pub struct AuditLog {
    config: AuditConfig,
}

impl AuditLog {
    pub fn new(config: AuditConfig) -> Self {
        AuditLog { config }
    }
}

/// The AuditLog entity, as stored.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuditItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    /// `USER#<user>`, for a user's history; absent when no actor is known, so that such
    /// changes do not all land on one `USER#unknown` index partition.
    #[serde(rename = "GSI1PK", skip_serializing_if = "Option::is_none")]
    pub gsi1pk: Option<String>,
    #[serde(rename = "GSI1SK", skip_serializing_if = "Option::is_none")]
    pub gsi1sk: Option<String>,
    pub entity_type: &'static str,
    pub log_id: String,
    pub user_id: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub timestamp: String,
    pub details: AuditDetails,
    pub result: &'static str,
    #[serde(rename = "TTL")]
    pub ttl: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuditDetails {
    pub table: String,
    pub event_id: String,
    pub changed_attributes: Vec<String>,
    /// Old and new text of each changed scalar attribute, redacted.
    pub changes: BTreeMap<String, ValueChange>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ValueChange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

#[async_trait]
impl Reaction for AuditLog {
    fn name(&self) -> &'static str {
        "audit-log"
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::ByConstruction
    }

    fn applies(&self, change: &Change) -> bool {
        let cfg = &self.config;
        let audited = cfg.audited_tables.contains(&change.table)
            || (change.expired_by_ttl && cfg.expiry_only_tables.contains(&change.table));
        let own_item =
            change.table == cfg.audit_table && is_audit_item(change.latest_image(), &cfg.names);
        audited
            && !cfg.excluded_tables.contains(&change.table)
            && !own_item
            && !is_worker_write(change, &cfg.names)
    }

    async fn react(&self, change: &Change, _ports: Ports<'_>) -> Result<Reacted, ReactionError> {
        let audit = self.audit_item(change);
        let result = serde_json::json!({ "PK": audit.pk, "SK": audit.sk });
        let item = to_item(&audit)?;
        Ok(Reacted {
            result,
            deferred_writes: vec![(self.config.audit_table.clone(), WriteRequest::Put(item))],
        })
    }
}

impl AuditLog {
    /// The audit item for a change. Pure: the same change always gives the same item.
    pub fn audit_item(&self, change: &Change) -> AuditItem {
        let at = change.approximate_creation;
        let image = change.latest_image();
        let hash =
            stable_hash(&[change.table.as_bytes(), b"\0", change.event_id.as_bytes()].concat());
        let log_id = format!("{hash:016x}");
        let user = key_safe(&user_of(change, &self.config.user_attributes));
        let entity = self
            .config
            .entity_names
            .iter()
            .find(|(table, _)| *table == change.table)
            .map(|(_, entity)| entity.clone())
            .unwrap_or_else(|| entity_of(change, &self.config.names));
        let verb = match (change.kind, change.expired_by_ttl) {
            (ChangeKind::Insert, _) => "CREATED",
            (ChangeKind::Modify, _) => "UPDATED",
            (ChangeKind::Remove, true) => "EXPIRED",
            (ChangeKind::Remove, false) => "DELETED",
        };
        let shards = u64::from(self.config.shards.max(1));
        let (day, time) = day_and_time(&at);
        let pk = if shards == 1 {
            ["AUDIT#", &day].concat()
        } else {
            format!("AUDIT#{day}#{}", hash % shards)
        };
        let (changed_attributes, changes) = diff(
            &self.config.sensitive,
            change.old.as_ref(),
            change.new.as_ref(),
        );
        let known_user = (user != UNKNOWN_USER).then(|| user.clone());
        AuditItem {
            pk,
            sk: ["LOG#", &user, "#", &time, "#", &log_id[..8]].concat(),
            gsi1pk: known_user.as_ref().map(|user| ["USER#", user].concat()),
            gsi1sk: known_user
                .map(|_| ["AUDIT#", &at.to_rfc3339_opts(SecondsFormat::Secs, true)].concat()),
            entity_type: "AuditLog",
            log_id,
            action: [screaming_snake(&entity).as_str(), "_", verb].concat(),
            resource_type: entity,
            resource_id: key_safe(&resource_id_of(image, &change.keys, &self.config.names)),
            timestamp: at.to_rfc3339_opts(SecondsFormat::Millis, true),
            details: AuditDetails {
                table: change.table.clone(),
                event_id: change.event_id.clone(),
                changed_attributes,
                changes,
            },
            result: "SUCCESS",
            ttl: expiry(at, self.config.retention_days),
            user_id: user,
        }
    }
}

/// `at` as `%Y-%m-%d` and as `%H:%M:%S%.3fZ`, written directly: chrono's `format` parses its
/// pattern again on every call, and every audited record needs both. A year outside
/// 0 to 9,999 (which chrono writes with a sign) and a leap second go through chrono.
fn day_and_time(at: &DateTime<Utc>) -> (String, String) {
    use chrono::{Datelike, Timelike};
    if !(0..=9999).contains(&at.year()) || at.nanosecond() >= 1_000_000_000 {
        return (
            at.format("%Y-%m-%d").to_string(),
            at.format("%H:%M:%S%.3fZ").to_string(),
        );
    }
    let day = format!("{:04}-{:02}-{:02}", at.year(), at.month(), at.day());
    let millis = at.nanosecond() / 1_000_000;
    let time = format!(
        "{:02}:{:02}:{:02}.{millis:03}Z",
        at.hour(),
        at.minute(),
        at.second()
    );
    (day, time)
}

fn expiry(at: DateTime<Utc>, retention_days: i64) -> i64 {
    (at + Duration::days(retention_days)).timestamp()
}

/// A MODIFY that only touches [`WORKER_ATTRIBUTES`].
fn is_worker_write(change: &Change, names: &AttributeNames) -> bool {
    if change.kind != ChangeKind::Modify {
        return false;
    }
    let ours = |name: &str| WORKER_ATTRIBUTES.iter().any(|&w| names.of(w) == name);
    // Every audited MODIFY asks this, twice a batch: answered at the first attribute of the
    // application's that changed, with no name order needed.
    changed_attributes(change.old.as_ref(), change.new.as_ref()).all(|name| ours(name))
}

/// Audit items themselves (PK `AUDIT#…` or EntityType AuditLog), under the seed's names (an
/// audit table of the worker's own) or the application's (the cost platform's table).
fn is_audit_item(image: &Item, names: &AttributeNames) -> bool {
    ["EntityType", names.of("EntityType")]
        .iter()
        .any(|&name| get_str(image, name) == Some("AuditLog"))
        || ["PK", names.of("PK")]
            .iter()
            .any(|&name| get_str(image, name).is_some_and(|pk| pk.starts_with("AUDIT#")))
}

fn user_of(change: &Change, user_attributes: &[String]) -> String {
    if change.expired_by_ttl {
        return TTL_PRINCIPAL.to_string();
    }
    let image = change.latest_image();
    user_attributes
        .iter()
        .find_map(|name| get_str(image, name).filter(|user| !user.is_empty()))
        .unwrap_or(UNKNOWN_USER)
        .to_string()
}

/// What an audit item may carry of a user or an item's name in its keys and ids: personal
/// data (an email address used as a user id, a phone number) becomes its stable pseudonym,
/// and a name too long or odd for a sort key (over 128 bytes, a control character) becomes
/// one whole, so that the item's SK stays within DynamoDB's 1,024 bytes.
fn key_safe(name: &str) -> String {
    let name = crate::redact::pseudonymize(name);
    if name.len() > 128 || name.chars().any(char::is_control) {
        return crate::redact::pseudonym(&name);
    }
    name
}

/// The user of a change whose item names none.
const UNKNOWN_USER: &str = "unknown";

/// The entity name: EntityType, else the PK's prefix (`ESTIMATION#…` -> `Estimation`),
/// else `Item`.
fn entity_of(change: &Change, names: &AttributeNames) -> String {
    let image = change.latest_image();
    if let Some(entity) = get_str(image, names.of("EntityType")).filter(|e| !e.is_empty()) {
        return entity.to_string();
    }
    if let Some((prefix, _)) = get_str(image, names.of("PK")).and_then(|pk| pk.split_once('#')) {
        let mut chars = prefix.chars();
        if let Some(first) = chars.next() {
            return first
                .to_uppercase()
                .chain(chars.flat_map(char::to_lowercase))
                .collect();
        }
    }
    "Item".to_string()
}

/// The changed item, named fully: the id part of the PK and the SK
/// (`ESTIMATION#est456` / `SERVER#srv001` -> `est456/SERVER#srv001`), else the item's key
/// values (`session-uuid`; `conv-1/resp-2` for a composite key).
fn resource_id_of(image: &Item, keys: &Item, names: &AttributeNames) -> String {
    if let Some(pk) = get_str(image, names.of("PK")) {
        let id = pk.split_once('#').map_or(pk, |(_, id)| id);
        return match get_str(image, names.of("SK")) {
            Some(sk) => format!("{id}/{sk}"),
            None => id.to_string(),
        };
    }
    let mut names: Vec<&String> = keys.keys().collect();
    names.sort();
    let values: Vec<&str> = names
        .iter()
        .filter_map(|n| crate::item::scalar_text(&keys[n.as_str()]))
        .collect();
    if values.is_empty() {
        "unknown".to_string()
    } else {
        values.join("/")
    }
}

/// `SharedEstimation` -> `SHARED_ESTIMATION`.
fn screaming_snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        if c.is_alphanumeric() {
            out.extend(c.to_uppercase());
        } else {
            out.push('_');
            prev_lower = false;
        }
    }
    out
}

/// Names of the attributes that differ, and old/new text of the scalar ones.
/// The attributes whose values differ between the images (an attribute one of them lacks
/// included), as the images hold them: `old`'s, then those only `new` has. Only names:
/// telling a change the worker made from the application's needs no texts shown (redaction
/// runs regular expressions).
fn changed_attributes<'a>(
    old: Option<&'a Item>,
    new: Option<&'a Item>,
) -> impl Iterator<Item = &'a String> {
    let changed = (old.into_iter().flat_map(|o| o.iter()))
        .filter(move |(name, was)| new.and_then(|n| n.get(*name)) != Some(*was))
        .map(|(name, _)| name);
    let added = (new.into_iter().flat_map(|n| n.keys()))
        .filter(move |name| old.is_none_or(|o| !o.contains_key(*name)));
    changed.chain(added)
}

/// [`changed_attributes`] in name order.
fn changed_names<'a>(old: Option<&'a Item>, new: Option<&'a Item>) -> Vec<&'a String> {
    let mut names: Vec<&String> = changed_attributes(old, new).collect();
    names.sort_unstable();
    names
}

fn diff(
    sensitive: &SensitiveNames,
    old: Option<&Item>,
    new: Option<&Item>,
) -> (Vec<String>, BTreeMap<String, ValueChange>) {
    let mut changed = Vec::new();
    let mut changes = BTreeMap::new();
    for name in changed_names(old, new) {
        let (before, after) = (old.and_then(|o| o.get(name)), new.and_then(|n| n.get(name)));
        changed.push(name.clone());
        let before_text = before.map(scalar_text);
        let after_text = after.map(scalar_text);
        // Only scalars are shown; a map or list that changed is named, not copied.
        if matches!(before_text, None | Some(Some(_))) && matches!(after_text, None | Some(Some(_)))
        {
            changes.insert(
                name.clone(),
                ValueChange {
                    old: before
                        .zip(before_text.flatten())
                        .map(|(v, t)| shown(sensitive, name, v, &t)),
                    new: after
                        .zip(after_text.flatten())
                        .map(|(v, t)| shown(sensitive, name, v, &t)),
                },
            );
        }
    }
    (changed, changes)
}

fn scalar_text(value: &AttributeValue) -> Option<String> {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => Some(s.clone()),
        AttributeValue::Bool(b) => Some(b.to_string()),
        AttributeValue::Null(_) => Some("null".to_string()),
        _ => None,
    }
}

/// The text recorded for attribute `name`. A number is a fact (a cost, an epoch TTL, a count),
/// never personal data by its digits: it is redacted only when its name says it is sensitive
/// (a `phone` kept as a number); text is also searched for personal data.
fn shown(sensitive: &SensitiveNames, name: &str, value: &AttributeValue, text: &str) -> String {
    let redacted = match value {
        AttributeValue::N(_) if !sensitive.contains(name) => text.to_string(),
        AttributeValue::N(_) => REDACTED.to_string(),
        _ => sensitive.redact_attribute(name, text),
    };
    // Cut after redacting, so that no cut leaves part of an address.
    crate::text::cut(&redacted, crate::text::COPIED_CHARS).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_names_become_action_prefixes() {
        assert_eq!(screaming_snake("Estimation"), "ESTIMATION");
        assert_eq!(screaming_snake("SharedEstimation"), "SHARED_ESTIMATION");
        assert_eq!(screaming_snake("AuditLog"), "AUDIT_LOG");
    }

    proptest::proptest! {
        /// The audit key's day and time read as chrono's patterns write them, at any moment
        /// chrono holds (with a leap second too).
        #[test]
        fn day_and_time_are_chronos_patterns(
            seconds in -8_334_601_228_800i64..8_210_266_876_799,
            nanos in 0u32..2_000_000_000,
        ) {
            // And the minute's last second, the only one chrono lets a leap second (nanos
            // over a billion) fall on.
            let last_second = seconds - seconds.rem_euclid(60) + 59;
            for seconds in [seconds, last_second] {
                if let Some(at) = DateTime::from_timestamp(seconds, nanos) {
                    let written = (
                        at.format("%Y-%m-%d").to_string(),
                        at.format("%H:%M:%S%.3fZ").to_string(),
                    );
                    proptest::prop_assert_eq!(day_and_time(&at), written);
                }
            }
        }
    }

    /// A MODIFY is the worker's own when every attribute it changes, adds or removes is the
    /// worker's, under the application's names.
    #[test]
    fn a_modify_of_only_the_workers_attributes_is_its_own_write() {
        let item = |pairs: &[(&str, &str)]| {
            Item::from(
                (pairs.iter())
                    .map(|(n, v)| (n.to_string(), AttributeValue::S(v.to_string())))
                    .collect::<std::collections::HashMap<_, _>>(),
            )
        };
        let names = AttributeNames::new([("EstimationSummary", "estimationSummary".to_string())]);
        let modify = |old: &[(&str, &str)], new: &[(&str, &str)]| Change {
            table: "t".into(),
            kind: ChangeKind::Modify,
            keys: item(&[("PK", "p")]),
            old: Some(item(old)),
            new: Some(item(new)),
            expired_by_ttl: false,
            sequence_number: "1".into(),
            event_id: "e".into(),
            approximate_creation: DateTime::from_timestamp(0, 0).unwrap(),
        };
        let base = [("PK", "p"), ("Name", "a"), ("estimationSummary", "1")];
        let cases: [(&[(&str, &str)], bool); 6] = [
            (
                &[("PK", "p"), ("Name", "a"), ("estimationSummary", "2")],
                true,
            ),
            (
                &[
                    ("PK", "p"),
                    ("Name", "a"),
                    ("estimationSummary", "2"),
                    ("NotificationSent", "x"),
                ],
                true,
            ),
            (&[("PK", "p"), ("Name", "a")], true),
            (
                &[("PK", "p"), ("Name", "b"), ("estimationSummary", "2")],
                false,
            ),
            (
                &[
                    ("PK", "p"),
                    ("Name", "a"),
                    ("estimationSummary", "1"),
                    ("Other", "x"),
                ],
                false,
            ),
            (&[("PK", "p"), ("estimationSummary", "2")], false),
        ];
        for (new, ours) in cases {
            assert_eq!(
                is_worker_write(&modify(&base, new), &names),
                ours,
                "{new:?}"
            );
            let answered_by_order = changed_names(Some(&item(&base)), Some(&item(new)))
                .iter()
                .all(|name| {
                    WORKER_ATTRIBUTES
                        .iter()
                        .any(|&w| names.of(w) == name.as_str())
                });
            assert_eq!(answered_by_order, ours, "{new:?}");
        }
        // The seed's name is not the worker's attribute where the application renamed it.
        let renamed_only = modify(
            &base,
            &[
                ("PK", "p"),
                ("Name", "a"),
                ("estimationSummary", "1"),
                ("EstimationSummary", "x"),
            ],
        );
        assert!(!is_worker_write(&renamed_only, &names));
    }

    #[test]
    fn hash_is_fnv1a_and_stable() {
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}

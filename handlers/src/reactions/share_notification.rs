//! `share-notification`: when an estimation is shared (a `SHARED#<estimationId>` item is
//! inserted under `USER#<id>` with NotificationSent false or absent), mail the person it was
//! shared with. Guarded by the idempotency table (one mail per share).
//!
//! The share is claimed before the mail goes out: `NotificationSent` true with this record's
//! eventID (`NotificationEventId`), on condition that it was not sent or was claimed by this
//! same record. So a failure after SES accepted the message retries only what is left (the
//! completion), and the retry of a failed send passes its own claim and sends. The claim is a
//! MODIFY, which never triggers the reaction again.

use async_trait::async_trait;
use chrono::SecondsFormat;
use serde_json::json;

use super::contract::{Idempotency, Reacted, Reaction};
use crate::change::{Change, ChangeKind};
use crate::cost::model::{Metadata, Notice, SharedEstimation};
use crate::cost::notify;
use crate::error::{PortError, ReactionError};
use crate::item::{from_item, get_str, partition, string_key, AttributeValue};
use crate::mail::{self, MailConfig};
use crate::ports::{Comparison, Condition, Ports, Update};

pub struct ShareNotification {
    table: String,
    mail: MailConfig,
}

impl ShareNotification {
    pub fn new(table: String, mail: MailConfig) -> Self {
        ShareNotification { table, mail }
    }
}

#[async_trait]
impl Reaction for ShareNotification {
    fn name(&self) -> &'static str {
        "share-notification"
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::Guarded
    }

    fn partitions(&self, change: &Change) -> Vec<String> {
        // The estimation it names and the profile of who shared it (the recipient's profile
        // is the record's own partition, or named too).
        let Some(new) = &change.new else {
            return Vec::new();
        };
        let estimation = get_str(new, "EstimationId")
            .map(str::to_string)
            .or_else(|| {
                get_str(new, "SK")?
                    .strip_prefix("SHARED#")
                    .map(str::to_string)
            });
        [
            estimation.map(|id| format!("ESTIMATION#{id}")),
            get_str(new, "SharedByUserId").map(|id| format!("USER#{id}")),
            get_str(new, "SharedWithUserId").map(|id| format!("USER#{id}")),
        ]
        .into_iter()
        .flatten()
        .map(|pk| partition(&self.table, &pk))
        .collect()
    }

    fn applies(&self, change: &Change) -> bool {
        let Some(new) = &change.new else { return false };
        change.table == self.table
            && change.kind == ChangeKind::Insert
            && get_str(new, "PK").is_some_and(|pk| pk.starts_with("USER#"))
            && get_str(new, "SK").is_some_and(|sk| sk.starts_with("SHARED#"))
            && new.get("NotificationSent") != Some(&AttributeValue::Bool(true))
    }

    async fn react(&self, change: &Change, ports: Ports<'_>) -> Result<Reacted, ReactionError> {
        let what = format!(
            "{} {}",
            change.table,
            crate::item::describe_keys(&change.keys)
        );
        let share: SharedEstimation = from_item(change.new.clone().unwrap_or_default(), &what)?;
        let recipient_id = share
            .shared_with_user_id
            .clone()
            .or_else(|| share.pk.strip_prefix("USER#").map(str::to_string))
            .unwrap_or_default();
        let estimation_id = share
            .estimation_id
            .clone()
            .or_else(|| share.sk.strip_prefix("SHARED#").map(str::to_string))
            .unwrap_or_default();
        let result = |r| {
            Ok(Reacted {
                result: r,
                deferred_writes: Vec::new(),
            })
        };

        let Some(recipient) = notify::profile(ports, &self.table, &recipient_id).await? else {
            return result(json!({ "not_sent": format!("user {recipient_id} has no profile") }));
        };
        if !recipient.wants(Notice::SharedEstimation) {
            return result(
                json!({ "not_sent": format!("user {recipient_id} turned shared-estimation mail off") }),
            );
        }
        let Some(email) = recipient.email.clone() else {
            return result(json!({ "not_sent": format!("user {recipient_id} has no Email") }));
        };
        let shared_by = match &share.shared_by_user_id {
            Some(id) => notify::profile(ports, &self.table, id)
                .await?
                .and_then(|p| p.full_name())
                .unwrap_or_else(|| id.clone()),
            None => "A colleague".to_string(),
        };
        let metadata_key = string_key(&[
            ("PK", &format!("ESTIMATION#{estimation_id}")),
            ("SK", "METADATA"),
        ]);
        let project_name = match ports.tables.get(&self.table, &metadata_key).await? {
            Some(item) => {
                from_item::<Metadata>(
                    item,
                    &format!("{} ESTIMATION#{estimation_id} METADATA", self.table),
                )?
                .project_name
            }
            None => None,
        }
        .unwrap_or_else(|| estimation_id.clone());
        let context = json!({
            "first_name": recipient.first_name.clone().unwrap_or_else(|| "there".into()),
            "shared_by": shared_by,
            "project_name": project_name,
            "permission": share.permission.clone().unwrap_or_else(|| "READ".into()).replace('_', " ").to_lowercase(),
            "expires_at": share.expires_at,
            "estimation_id": estimation_id,
            "sender_name": self.mail.sender_name,
        });
        let message = match mail::compose(
            &self.mail,
            &email,
            "estimation_shared",
            &context,
            change.approximate_creation,
        )? {
            Ok(message) => message,
            Err(refused) => return result(json!({ "mail": refused })),
        };
        let claim = Update::default()
            .set("NotificationSent", AttributeValue::Bool(true))
            .set(
                "NotificationSentAt",
                AttributeValue::S(
                    change
                        .approximate_creation
                        .to_rfc3339_opts(SecondsFormat::Secs, true),
                ),
            )
            .set(
                "NotificationEventId",
                AttributeValue::S(change.event_id.clone()),
            );
        let unclaimed_or_ours = Condition::And(vec![
            Condition::Exists("PK".into()),
            Condition::Or(vec![
                Condition::Compare(
                    "NotificationSent".into(),
                    Comparison::Ne,
                    AttributeValue::Bool(true),
                ),
                Condition::eq(
                    "NotificationEventId",
                    AttributeValue::S(change.event_id.clone()),
                ),
            ]),
        ]);
        let key = string_key(&[("PK", &share.pk), ("SK", &share.sk)]);
        match ports
            .tables
            .update(&self.table, &key, &claim, Some(&unclaimed_or_ours))
            .await
        {
            Ok(_) => {}
            Err(PortError::ConditionFailed { .. }) => {
                return result(json!({
                    "not_sent": "the share is gone or was notified by another delivery"
                }))
            }
            Err(e) => return Err(e.into()),
        }
        result(json!({ "mail": mail::deliver(ports, &message).await? }))
    }
}

//! The typed form of one stream record: which table, which item, what happened to it.

use chrono::{DateTime, Utc};

use crate::item::{describe_keys, Item};

/// The `userIdentity.principalId` of a TTL delete: DynamoDB's own service (with type
/// `Service`). Audit items record it as the user of an expiry.
pub const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";

/// What happened to the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Insert,
    Modify,
    Remove,
}

impl ChangeKind {
    /// The stream's own spelling (`INSERT`, `MODIFY`, `REMOVE`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Insert => "INSERT",
            ChangeKind::Modify => "MODIFY",
            ChangeKind::Remove => "REMOVE",
        }
    }
}

/// One change of one item, as a reaction sees it. Built by the shell's decoder, which has
/// already checked that the images the kind needs are present (NEW_AND_OLD_IMAGES).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Table name, from the record's eventSourceARN (or `--table`).
    pub table: String,
    pub kind: ChangeKind,
    pub keys: Item,
    /// The item before the change: present for MODIFY and REMOVE.
    pub old: Option<Item>,
    /// The item after the change: present for INSERT and MODIFY.
    pub new: Option<Item>,
    /// A REMOVE made by DynamoDB's TTL process, not by a user.
    pub expired_by_ttl: bool,
    pub sequence_number: String,
    pub event_id: String,
    pub approximate_creation: DateTime<Utc>,
}

impl Change {
    /// The newest image there is: the new one, or for a REMOVE the old one.
    pub fn latest_image(&self) -> &Item {
        match (&self.new, &self.old) {
            (Some(new), _) => new,
            (None, Some(old)) => old,
            (None, None) => &self.keys,
        }
    }

    /// `table {PK=…, SK=…} (event …)`: how errors and logs name this record.
    pub fn describe(&self) -> String {
        format!(
            "{} {} (event {})",
            self.table,
            describe_keys(&self.keys),
            self.event_id
        )
    }

    /// `table what` of this change (`… message Conversations {…} (event …)`), as a reaction's
    /// errors name what it read of it: written out only when an error is, not for every
    /// change a reaction reads.
    pub fn named_as<'a>(&'a self, table: &'a str, what: &'static str) -> NamedChange<'a> {
        NamedChange {
            table,
            what,
            change: self,
        }
    }
}

/// What [`Change::named_as`] names.
pub struct NamedChange<'a> {
    table: &'a str,
    what: &'static str,
    change: &'a Change,
}

impl std::fmt::Display for NamedChange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.table, self.what, self.change.describe())
    }
}

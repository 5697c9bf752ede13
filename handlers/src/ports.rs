//! What a reaction may touch (tables, objects, mail), and the clock the batch keeps.
//!
//! The traits are small on purpose; each has an AWS SDK adapter and an embedded one in the
//! shell crate, and one contract test suite holds both to DynamoDB's semantics.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::PortError;
use crate::item::{AttributeValue, Item};

/// A condition on an item's attributes (top-level names), as in a ConditionExpression.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `attribute_exists(name)`
    Exists(String),
    /// `attribute_not_exists(name)`
    NotExists(String),
    /// `name <op> value`. As in DynamoDB, a missing attribute or a value of another type makes
    /// every comparison false except `<>`, which is then true.
    Compare(String, Comparison, AttributeValue),
    And(Vec<Condition>),
    Or(Vec<Condition>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Comparison {
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Eq => "=",
            Comparison::Ne => "<>",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
        }
    }
}

impl Condition {
    pub fn eq(name: &str, value: AttributeValue) -> Self {
        Condition::Compare(name.to_string(), Comparison::Eq, value)
    }
    pub fn lt(name: &str, value: AttributeValue) -> Self {
        Condition::Compare(name.to_string(), Comparison::Lt, value)
    }
}

/// An UpdateExpression on top-level attributes: `SET a = v`, `ADD n v`, `REMOVE r`.
/// ADD works on numbers (a missing attribute counts as 0) and sets (union).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    pub set: Vec<(String, AttributeValue)>,
    pub add: Vec<(String, AttributeValue)>,
    pub remove: Vec<String>,
}

impl Update {
    pub fn set(mut self, name: &str, value: AttributeValue) -> Self {
        self.set.push((name.to_string(), value));
        self
    }
    pub fn add(mut self, name: &str, value: AttributeValue) -> Self {
        self.add.push((name.to_string(), value));
        self
    }
    pub fn remove(mut self, name: &str) -> Self {
        self.remove.push(name.to_string());
        self
    }
}

/// A query of one partition of a table or GSI, in sort-key order.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub table: String,
    pub index: Option<String>,
    /// Partition key attribute name and value.
    pub partition: (String, AttributeValue),
    /// A condition on the sort key (attribute name, condition).
    pub sort_key: Option<(String, SortKey)>,
    /// Ascending sort-key order when true (DynamoDB's ScanIndexForward).
    pub ascending: bool,
}

/// A key condition on a string sort key.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    /// `begins_with(sk, prefix)`
    BeginsWith(String),
    /// `sk >= value`: e.g. an estimation's items from `DATABASE#` on, which leaves out the
    /// `CALCULATION#` history that sorts before them.
    AtLeast(String),
}

impl SortKey {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            SortKey::BeginsWith(prefix) => value.starts_with(prefix.as_str()),
            SortKey::AtLeast(from) => value.as_bytes() >= from.as_bytes(),
        }
    }
}

/// One request of a batch write.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteRequest {
    Put(Item),
    /// The key of the item to delete.
    Delete(Item),
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum TransactItem {
    Put {
        table: String,
        item: Item,
        condition: Option<Condition>,
    },
    Update {
        table: String,
        key: Item,
        update: Update,
        condition: Option<Condition>,
    },
    Delete {
        table: String,
        key: Item,
        condition: Option<Condition>,
    },
    /// A condition on an item that is not written.
    Check {
        table: String,
        key: Item,
        condition: Condition,
    },
}

impl TransactItem {
    pub fn table(&self) -> &str {
        match self {
            TransactItem::Put { table, .. }
            | TransactItem::Update { table, .. }
            | TransactItem::Delete { table, .. }
            | TransactItem::Check { table, .. } => table,
        }
    }
}

#[async_trait]
pub trait Tables: Send + Sync {
    /// Strongly consistent read of one item.
    async fn get(&self, table: &str, key: &Item) -> Result<Option<Item>, PortError>;
    /// Put a whole item, optionally only when `condition` holds on the item it replaces.
    /// A failed condition is [`PortError::ConditionFailed`] carrying the existing item.
    async fn put(
        &self,
        table: &str,
        item: Item,
        condition: Option<&Condition>,
    ) -> Result<(), PortError>;
    /// Update (or create) the item at `key`; returns the item as it is afterwards.
    async fn update(
        &self,
        table: &str,
        key: &Item,
        update: &Update,
        condition: Option<&Condition>,
    ) -> Result<Item, PortError>;
    /// Delete the item at `key`; returns the item that was there, if any.
    async fn delete(
        &self,
        table: &str,
        key: &Item,
        condition: Option<&Condition>,
    ) -> Result<Option<Item>, PortError>;
    /// Strongly consistent reads of many items of one table, 100 keys per request;
    /// unprocessed keys are retried like [`Tables::batch_write`]'s items. Items not found are
    /// left out, and the order is not that of `keys`.
    async fn batch_get(&self, table: &str, keys: Vec<Item>) -> Result<Vec<Item>, PortError>;
    /// Every item of one partition (all pages), in sort-key order.
    async fn query(&self, query: &Query) -> Result<Vec<Item>, PortError>;
    /// Unconditional puts and deletes, sent 25 per request; unprocessed items are retried
    /// with backoff until done or the retry bound is reached. The writes are lent: a caller
    /// that must store them one at a time after a refusal still has them.
    async fn batch_write(&self, table: &str, writes: &[WriteRequest]) -> Result<(), PortError>;
    /// All of `items` or none (TransactWriteItems, at most 100 items, each item once). A failed
    /// condition is [`PortError::ConditionFailed`] carrying the first failing item's state.
    async fn transact_write(&self, items: Vec<TransactItem>) -> Result<(), PortError>;
}

/// An object to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub bucket: String,
    pub key: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

#[async_trait]
pub trait Objects: Send + Sync {
    async fn put(&self, object: Object) -> Result<(), PortError>;
    /// Deleting an object that is already gone succeeds, as in S3.
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), PortError>;
    /// A URL that lets anyone holding it GET the object for at most `lifetime`, and when it
    /// really stops working: a presigned URL dies with the credentials that signed it.
    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        lifetime: std::time::Duration,
    ) -> Result<Link, PortError>;
}

/// A download link, and until when it works (None: it does not expire).
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub url: String,
    pub expires: Option<DateTime<Utc>>,
}

/// A plain-text (and optionally HTML) message to exactly one recipient. Build it with
/// [`Mail::new`], which refuses any address that is not one plain mailbox and any header
/// field that could be injected into.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// When the change it tells of happened (the record's time), for a `Date` where the
    /// transport does not stamp one (SES does; the embedded outbox uses this).
    pub date: Option<DateTime<Utc>>,
}

impl Mail {
    /// The same message, dated `at`.
    pub fn dated(self, at: DateTime<Utc>) -> Mail {
        Mail {
            date: Some(at),
            ..self
        }
    }

    /// Checks every header field: the sender and the one recipient must each be one plain
    /// mailbox ([`mailbox`]), and the subject may hold no line break or control character
    /// (that is how headers get injected).
    pub fn new(
        from: &str,
        to: &str,
        subject: &str,
        text: String,
        html: Option<String>,
    ) -> Result<Mail, crate::ReactionError> {
        let refused = |what: &str, address: &str, why: String| {
            crate::ReactionError::Rejected(format!(
                "{what} {:?} is not one plain email address: {why}",
                crate::value_rules::short(address)
            ))
        };
        mailbox(from).map_err(|why| refused("sender", from, why))?;
        mailbox(to).map_err(|why| refused("recipient", to, why))?;
        if subject
            .chars()
            .any(|c| c.is_control() || is_line_separator(c))
        {
            return Err(crate::ReactionError::Rejected(format!(
                "mail subject contains a line break or control character: {:?}",
                crate::value_rules::short(subject)
            )));
        }
        Ok(Mail {
            from: from.to_string(),
            to: vec![to.to_string()],
            subject: subject.to_string(),
            text,
            html,
            date: None,
        })
    }
}

/// Unicode's line and paragraph separators, which some mail parsers end a header at.
fn is_line_separator(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}')
}

/// Whether `address` is exactly one mailbox mail can be sent to without any mail parser
/// reading a second recipient or a header into it: lettre's address parser (the
/// `email_address` crate's RFC 5321/5322 grammar) must accept it, and on top, as SES and most
/// providers require: printable ASCII only (a non-ASCII domain must come IDNA-encoded,
/// `xn--…`), a dot-atom local part (no quotes, no encoded word `=?…?=`) of at most 64 bytes,
/// a domain of DNS labels (1–63 of letters, digits and inner hyphens, at least two, the last
/// not numeric) of at most 253 bytes, and at most 254 bytes in all (RFC 5321's path limit).
pub fn mailbox(address: &str) -> Result<(), String> {
    if address.len() > 254 {
        return Err(format!(
            "{} bytes; an address has at most 254",
            address.len()
        ));
    }
    if let Some(c) = address.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "{c:?} is not printable ASCII (a non-ASCII domain must be IDNA-encoded, xn--...)"
        ));
    }
    let (local, domain) = address.rsplit_once('@').ok_or_else(|| "no @".to_string())?;
    if local.len() > 64 {
        return Err(format!("a local part of {} bytes; at most 64", local.len()));
    }
    let dot_atom = !local.is_empty()
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
        });
    if !dot_atom {
        return Err("the local part is not a dot-atom (letters, digits, !#$%&'*+-/=?^_`{|}~ and inner dots)".into());
    }
    if local.contains("=?") && local.contains("?=") {
        return Err("the local part is an encoded word (=?...?=)".into());
    }
    if domain.len() > 253 {
        return Err(format!("a domain of {} bytes; at most 253", domain.len()));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |label: &&str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(format!(
            "the domain {:?} is not a host name (labels of letters, digits and inner hyphens)",
            crate::value_rules::short(domain)
        ));
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("the domain ends in a number (an IP address is not a mail domain here)".into());
    }
    address
        .parse::<lettre::Address>()
        .map(|_| ())
        .map_err(|e| format!("the RFC 5322 parser refuses it: {e}"))
}

#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends the message; returns the message id the service gave it.
    async fn send(&self, mail: &Mail) -> Result<String, PortError>;
}

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Everything a reaction may touch, borrowed for one call.
///
/// No clock: whatever a reaction writes (keys, timestamps, objects, mail) comes from the
/// record (`Change::approximate_creation`) or the items, so a replay writes the same bytes.
/// The clock is the batch's, for the Lambda deadline and lock expiry.
#[derive(Clone, Copy)]
pub struct Ports<'a> {
    pub tables: &'a dyn Tables,
    pub objects: &'a dyn Objects,
    pub mailer: &'a dyn Mailer,
}

#[cfg(test)]
mod tests {
    use super::mailbox;

    #[test]
    fn one_plain_mailbox_is_accepted() {
        for good in [
            "jane.roe@example.com",
            "a+tag@sub.example.co.uk",
            "o'brien@example.ie",
            "x@xn--bcher-kva.example",
            "notifications@sagesoft.com",
        ] {
            assert_eq!(mailbox(good), Ok(()), "{good}");
        }
    }

    /// Issue 29: each of these was sent on the previous main.
    #[test]
    fn anything_a_parser_could_read_as_more_or_other_is_refused() {
        let local_300 = format!("{}@example.com", "a".repeat(300));
        for bad in [
            "a@b@c",
            "a@example.com\t",
            "a@example.com\u{b}",
            "a@example.com\u{85}Bcc:other@x.com",
            "a@example.com\u{2028}Bcc:other@x.com",
            "a@x.com:b@y.com",
            "a@.",
            "a@x..com",
            "a@bücher.example",
            "=?utf-8?B?YQ==?=@example.com",
            "\"a b\"@example.com",
            "a@example.com, b@example.com",
            "Jane <jane@example.com>",
            "a@[127.0.0.1]",
            "a@127.0.0.1",
            "a@localhost",
            "a@-x.com",
            &local_300,
            "",
        ] {
            assert!(mailbox(bad).is_err(), "{bad:?} must be refused");
        }
    }
}

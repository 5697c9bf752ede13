//! What a reaction did to the world, as reports show it: a recording layer over the ports.
//!
//! Reactions are handed the recorder instead of the adapters, so the report lists every
//! write that actually succeeded without any reaction having to describe its own effects.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use handlers::ports::{Mail, Mailer, Object, Objects, Tables, TransactItem, WriteRequest};
use handlers::{Item, PortError};
use serde::Serialize;

use super::intercept::{Intercept, Intercepted, TableCall};
use crate::catalog::Catalog;
use handlers::item::SortedItem;

/// One effect, serialized in `--json` output as `{"effect": "item_put", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    ItemPut {
        table: String,
        #[serde(serialize_with = "sorted_item")]
        keys: Item,
    },
    ItemUpdated {
        table: String,
        #[serde(serialize_with = "sorted_item")]
        keys: Item,
    },
    ItemDeleted {
        table: String,
        #[serde(serialize_with = "sorted_item")]
        keys: Item,
    },
    ObjectStored {
        bucket: String,
        key: String,
        bytes: usize,
    },
    ObjectDeleted {
        bucket: String,
        key: String,
    },
    MailSent {
        to: Vec<String>,
        subject: String,
        message_id: String,
    },
}

/// Serialize an item with its attributes in name order, so output is the same on every run.
pub fn sorted_item<S: serde::Serializer>(item: &Item, serializer: S) -> Result<S::Ok, S::Error> {
    SortedItem(item).serialize(serializer)
}

impl Effect {
    /// A put of `item` in `table`, named by its key.
    pub fn put(catalog: &Catalog, table: &str, item: &Item) -> Effect {
        Effect::ItemPut {
            table: table.to_string(),
            keys: catalog.key_of(table, item),
        }
    }
}

/// Wraps the real ports and remembers every successful write.
pub struct Recorder {
    pub tables: Intercepted<WriteLog>,
    pub objects: Arc<dyn Objects>,
    pub mailer: Arc<dyn Mailer>,
    effects: Arc<Mutex<Vec<Effect>>>,
}

impl Recorder {
    pub fn new(
        tables: Arc<dyn Tables>,
        objects: Arc<dyn Objects>,
        mailer: Arc<dyn Mailer>,
        catalog: Catalog,
    ) -> Self {
        let effects = Arc::new(Mutex::new(Vec::new()));
        let log = WriteLog {
            catalog,
            effects: effects.clone(),
        };
        Recorder {
            tables: Intercepted::new(tables, log),
            objects,
            mailer,
            effects,
        }
    }

    /// The effects recorded since the last call.
    pub fn take(&self) -> Vec<Effect> {
        self.effects
            .lock()
            .map(|mut effects| std::mem::take(&mut *effects))
            .unwrap_or_default()
    }

    fn record(&self, effect: Effect) {
        record(&self.effects, [effect]);
    }
}

fn record(log: &Mutex<Vec<Effect>>, effects: impl IntoIterator<Item = Effect>) {
    if let Ok(mut log) = log.lock() {
        log.extend(effects);
    }
}

/// The table writes a call makes, recorded once the call has succeeded.
pub struct WriteLog {
    catalog: Catalog,
    effects: Arc<Mutex<Vec<Effect>>>,
}

#[async_trait]
impl Intercept for WriteLog {
    type Pending = Vec<Effect>;

    async fn before(
        &self,
        _inner: &dyn Tables,
        call: TableCall<'_>,
    ) -> Result<Vec<Effect>, PortError> {
        let deleted = |table: &str, key: &Item| Effect::ItemDeleted {
            table: table.to_string(),
            keys: key.clone(),
        };
        let updated = |table: &str, key: &Item| Effect::ItemUpdated {
            table: table.to_string(),
            keys: key.clone(),
        };
        Ok(match call {
            TableCall::Get { .. } | TableCall::BatchGet { .. } | TableCall::Query(_) => Vec::new(),
            TableCall::Put { table, item, .. } => vec![Effect::put(&self.catalog, table, item)],
            TableCall::Update { table, key, .. } => vec![updated(table, key)],
            TableCall::Delete { table, key, .. } => vec![deleted(table, key)],
            TableCall::BatchWrite { table, writes } => writes
                .iter()
                .map(|write| match write {
                    WriteRequest::Put(item) => Effect::put(&self.catalog, table, item),
                    WriteRequest::Delete(key) => deleted(table, key),
                })
                .collect(),
            TableCall::TransactWrite(items) => items
                .iter()
                .filter_map(|item| match item {
                    TransactItem::Put { table, item, .. } => {
                        Some(Effect::put(&self.catalog, table, item))
                    }
                    TransactItem::Update { table, key, .. } => Some(updated(table, key)),
                    TransactItem::Delete { table, key, .. } => Some(deleted(table, key)),
                    TransactItem::Check { .. } => None,
                })
                .collect(),
        })
    }

    fn after(&self, effects: Vec<Effect>) {
        record(&self.effects, effects);
    }
}

#[async_trait]
impl Objects for Recorder {
    async fn put(&self, object: Object) -> Result<(), PortError> {
        let effect = Effect::ObjectStored {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            bytes: object.body.len(),
        };
        self.objects.put(object).await?;
        self.record(effect);
        Ok(())
    }

    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        expires_in: std::time::Duration,
    ) -> Result<handlers::ports::Link, PortError> {
        self.objects.presign_get(bucket, key, expires_in).await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), PortError> {
        self.objects.delete(bucket, key).await?;
        self.record(Effect::ObjectDeleted {
            bucket: bucket.to_string(),
            key: key.to_string(),
        });
        Ok(())
    }
}

#[async_trait]
impl Mailer for Recorder {
    async fn send(&self, mail: &Mail) -> Result<String, PortError> {
        let message_id = self.mailer.send(mail).await?;
        self.record(Effect::MailSent {
            to: mail.to.clone(),
            subject: mail.subject.clone(),
            message_id: message_id.clone(),
        });
        Ok(message_id)
    }
}

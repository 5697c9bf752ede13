//! What a reaction did to the world, as reports show it: a recording layer over the ports.
//!
//! Reactions are handed the recorder instead of the adapters, so the report lists every
//! write that actually succeeded without any reaction having to describe its own effects.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use handlers::ports::{
    Condition, Mail, Mailer, Object, Objects, Query, Tables, TransactItem, Update, WriteRequest,
};
use handlers::{Item, PortError};
use serde::Serialize;

use crate::catalog::Catalog;

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
    let sorted: std::collections::BTreeMap<&String, &handlers::AttributeValue> =
        item.iter().collect();
    sorted.serialize(serializer)
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
    pub tables: Arc<dyn Tables>,
    pub objects: Arc<dyn Objects>,
    pub mailer: Arc<dyn Mailer>,
    pub catalog: Catalog,
    effects: Mutex<Vec<Effect>>,
}

impl Recorder {
    pub fn new(
        tables: Arc<dyn Tables>,
        objects: Arc<dyn Objects>,
        mailer: Arc<dyn Mailer>,
        catalog: Catalog,
    ) -> Self {
        Recorder {
            tables,
            objects,
            mailer,
            catalog,
            effects: Mutex::new(Vec::new()),
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
        if let Ok(mut effects) = self.effects.lock() {
            effects.push(effect);
        }
    }
}

#[async_trait]
impl Tables for Recorder {
    async fn get(&self, table: &str, key: &Item) -> Result<Option<Item>, PortError> {
        self.tables.get(table, key).await
    }

    async fn put(
        &self,
        table: &str,
        item: Item,
        condition: Option<&Condition>,
    ) -> Result<(), PortError> {
        let effect = Effect::put(&self.catalog, table, &item);
        self.tables.put(table, item, condition).await?;
        self.record(effect);
        Ok(())
    }

    async fn update(
        &self,
        table: &str,
        key: &Item,
        update: &Update,
        condition: Option<&Condition>,
    ) -> Result<Item, PortError> {
        let item = self.tables.update(table, key, update, condition).await?;
        self.record(Effect::ItemUpdated {
            table: table.to_string(),
            keys: key.clone(),
        });
        Ok(item)
    }

    async fn delete(
        &self,
        table: &str,
        key: &Item,
        condition: Option<&Condition>,
    ) -> Result<Option<Item>, PortError> {
        let old = self.tables.delete(table, key, condition).await?;
        self.record(Effect::ItemDeleted {
            table: table.to_string(),
            keys: key.clone(),
        });
        Ok(old)
    }

    async fn query(&self, query: &Query) -> Result<Vec<Item>, PortError> {
        self.tables.query(query).await
    }

    async fn batch_write(&self, table: &str, writes: Vec<WriteRequest>) -> Result<(), PortError> {
        let effects: Vec<Effect> = writes
            .iter()
            .map(|write| match write {
                WriteRequest::Put(item) => Effect::put(&self.catalog, table, item),
                WriteRequest::Delete(key) => Effect::ItemDeleted {
                    table: table.to_string(),
                    keys: key.clone(),
                },
            })
            .collect();
        self.tables.batch_write(table, writes).await?;
        for effect in effects {
            self.record(effect);
        }
        Ok(())
    }

    async fn transact_write(&self, items: Vec<TransactItem>) -> Result<(), PortError> {
        let effects: Vec<Effect> = items
            .iter()
            .filter_map(|item| match item {
                TransactItem::Put { table, item, .. } => {
                    Some(Effect::put(&self.catalog, table, item))
                }
                TransactItem::Update { table, key, .. } => Some(Effect::ItemUpdated {
                    table: table.clone(),
                    keys: key.clone(),
                }),
                TransactItem::Delete { table, key, .. } => Some(Effect::ItemDeleted {
                    table: table.clone(),
                    keys: key.clone(),
                }),
                TransactItem::Check { .. } => None,
            })
            .collect();
        self.tables.transact_write(items).await?;
        for effect in effects {
            self.record(effect);
        }
        Ok(())
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
    ) -> Result<String, PortError> {
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

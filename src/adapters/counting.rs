//! Counts DynamoDB requests by operation: what users pay for, shown per batch.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use handlers::ports::{Condition, Query, Tables, TransactItem, Update, WriteRequest};
use handlers::{Item, PortError};

/// Requests per operation name (`PutItem`, `Query`, ...).
pub type RequestCounts = BTreeMap<&'static str, u64>;

/// Wraps a Tables adapter and counts every call it passes on, successful or not. A batch
/// write or query that the adapter splits into several requests counts as the requests it
/// sends only where the adapter reports them; here it counts calls, which for BatchWriteItem
/// means one per 25 items handed in (see `batch_write`).
pub struct CountingTables {
    inner: Arc<dyn Tables>,
    counts: Mutex<RequestCounts>,
}

impl CountingTables {
    pub fn new(inner: Arc<dyn Tables>) -> Self {
        CountingTables {
            inner,
            counts: Mutex::new(RequestCounts::new()),
        }
    }

    pub fn snapshot(&self) -> RequestCounts {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn count(&self, operation: &'static str, requests: u64) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(operation).or_default() += requests;
        }
    }
}

/// `later - earlier`, dropping operations that did not happen in between.
pub fn difference(later: &RequestCounts, earlier: &RequestCounts) -> RequestCounts {
    later
        .iter()
        .map(|(op, n)| (*op, n - earlier.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[async_trait]
impl Tables for CountingTables {
    async fn get(&self, table: &str, key: &Item) -> Result<Option<Item>, PortError> {
        self.count("GetItem", 1);
        self.inner.get(table, key).await
    }

    async fn put(
        &self,
        table: &str,
        item: Item,
        condition: Option<&Condition>,
    ) -> Result<(), PortError> {
        self.count("PutItem", 1);
        self.inner.put(table, item, condition).await
    }

    async fn update(
        &self,
        table: &str,
        key: &Item,
        update: &Update,
        condition: Option<&Condition>,
    ) -> Result<Item, PortError> {
        self.count("UpdateItem", 1);
        self.inner.update(table, key, update, condition).await
    }

    async fn delete(
        &self,
        table: &str,
        key: &Item,
        condition: Option<&Condition>,
    ) -> Result<Option<Item>, PortError> {
        self.count("DeleteItem", 1);
        self.inner.delete(table, key, condition).await
    }

    async fn query(&self, query: &Query) -> Result<Vec<Item>, PortError> {
        self.count("Query", 1);
        self.inner.query(query).await
    }

    async fn batch_write(&self, table: &str, writes: Vec<WriteRequest>) -> Result<(), PortError> {
        // The adapter sends 25 requests per BatchWriteItem call.
        self.count("BatchWriteItem", writes.len().div_ceil(25) as u64);
        self.inner.batch_write(table, writes).await
    }

    async fn transact_write(&self, items: Vec<TransactItem>) -> Result<(), PortError> {
        self.count("TransactWriteItems", 1);
        self.inner.transact_write(items).await
    }
}

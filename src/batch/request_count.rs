//! Counts DynamoDB requests by operation: what users pay for, shown per batch.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use handlers::ports::Tables;
use handlers::PortError;

use super::intercept::{Intercept, Intercepted, TableCall};

/// Requests per operation name (`PutItem`, `Query`, ...).
pub(super) type RequestCounts = BTreeMap<&'static str, u64>;

/// Counts every call it sees, successful or not. It counts calls, which for BatchWriteItem
/// means one per 25 items handed in: the adapter sends 25 per request.
#[derive(Default)]
pub(super) struct RequestCounter {
    counts: Mutex<RequestCounts>,
}

/// A Tables adapter whose requests are counted.
pub(super) type CountingTables = Intercepted<RequestCounter>;

impl RequestCounter {
    pub(super) fn snapshot(&self) -> RequestCounts {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Intercept for RequestCounter {
    type Pending = ();

    async fn before(&self, _inner: &dyn Tables, call: TableCall<'_>) -> Result<(), PortError> {
        let requests = match call {
            TableCall::BatchWrite { writes, .. } => writes.len().div_ceil(25) as u64,
            TableCall::BatchGet { keys, .. } => keys.len().div_ceil(100) as u64,
            _ => 1,
        };
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(call.operation()).or_default() += requests;
        }
        Ok(())
    }
}

/// `later - earlier`, dropping operations that did not happen in between.
pub(super) fn difference(later: &RequestCounts, earlier: &RequestCounts) -> RequestCounts {
    later
        .iter()
        .map(|(op, n)| (*op, n - earlier.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

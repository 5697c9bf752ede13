//! Typed errors of ports and reactions. Each knows whether a retry can help.

use thiserror::Error;

// The item type itself (not `crate::item`, which builds on these errors).
use serde_dynamo::Item;

/// A port call that did not succeed.
#[derive(Debug, Error)]
pub enum PortError {
    /// A conditional write found the item in another state. `existing` is the item as it was
    /// (DynamoDB's ReturnValuesOnConditionCheckFailure=ALL_OLD), when there was one.
    #[error("condition failed on {target}")]
    ConditionFailed {
        target: String,
        existing: Option<Box<Item>>,
    },
    /// Throttling, a timeout, a 5xx, a network failure: a later attempt may succeed.
    #[error("{operation} on {target} failed, retryable: {message}")]
    Transient {
        operation: &'static str,
        target: String,
        message: String,
    },
    /// A request the service will never accept as it is (validation, missing table, access).
    #[error("{operation} on {target} failed: {message}")]
    Permanent {
        operation: &'static str,
        target: String,
        message: String,
    },
}

impl PortError {
    pub fn is_retryable(&self) -> bool {
        match self {
            PortError::Transient { .. } => true,
            // Another writer got there first: running the record again re-reads the state.
            PortError::ConditionFailed { .. } => true,
            PortError::Permanent { .. } => false,
        }
    }
}

/// Why a reaction failed on a record.
#[derive(Debug, Error)]
pub enum ReactionError {
    #[error(transparent)]
    Port(#[from] PortError),
    /// An item the reaction reads lacks an attribute it needs, or has the wrong type.
    #[error("{what}: {message}")]
    BadItem { what: String, message: String },
    /// A value could not be encoded as an item (a bug, not bad input).
    #[error("cannot encode item: {0}")]
    Encode(String),
    /// Input a reaction refuses: an unsafe file name, header injection in a mail field, ...
    #[error("rejected: {0}")]
    Rejected(String),
    /// Another invocation holds this record's idempotency lock and has not expired yet.
    #[error("already in progress in another invocation (lock expires at {expires_at_ms} ms)")]
    InProgress { expires_at_ms: i64 },
    /// A reaction that folds a window stopped at an earlier record of it; this one runs when
    /// the batch is delivered again from there.
    #[error("{0}")]
    NotAttempted(String),
    /// The reaction panicked on this record: a bug, which the batch catches at the reaction's
    /// boundary so that the record is parked and the stream goes on.
    #[error("the reaction panicked on this record ({0}): a bug in the worker; the record is parked, and a redrive runs it again once the worker is fixed")]
    Panicked(String),
}

impl ReactionError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ReactionError::Port(e) => e.is_retryable(),
            ReactionError::InProgress { .. } | ReactionError::NotAttempted(_) => true,
            ReactionError::BadItem { .. }
            | ReactionError::Encode(_)
            | ReactionError::Rejected(_)
            | ReactionError::Panicked(_) => false,
        }
    }
}

//! Adapters: the ports implemented on the AWS SDK (DynamoDB, S3, SES) and on the embedded
//! local state.

mod call_budget;
pub mod dynamodb;
pub mod embedded;
pub mod parking;
pub mod s3;
mod sdk_error;
pub mod ses;
pub mod sqs;

pub use call_budget::CallBudget;
pub use parking::{ParkedRecord, Parking};
pub use sdk_error::classify;

use std::time::Duration;

use handlers::{Change, PortError};

/// Applies a stream record's own write to the local tables, once per record (the embedded
/// state does; on AWS the write has already happened).
#[async_trait::async_trait]
pub trait ChangeApplier: Send + Sync {
    /// [`Applied::Before`] when this record was applied before: a replayed file is a
    /// re-delivery of the same records, not the same writes made again. A different record
    /// under an eventID already applied is refused (not retryable).
    async fn apply(&self, change: &Change) -> Result<Applied, PortError>;
}

/// What applying a record's own change came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Now,
    /// Applied before, by an earlier run on the state or earlier in this one.
    Before {
        in_this_run: bool,
    },
}

/// Exponential backoff with full jitter: attempt 0 waits up to 50 ms, doubling to 2 s at most.
pub fn backoff(attempt: u32) -> Duration {
    let cap_ms = 50u64.saturating_mul(1u64 << attempt.min(16)).min(2_000);
    Duration::from_millis(fastrand::u64(0..=cap_ms))
}

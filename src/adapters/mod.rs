//! Adapters: the ports implemented on the AWS SDK (DynamoDB, S3, SES) and on the embedded
//! local state.

pub mod atomic_file;
pub mod backoff;
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

use handlers::{Change, PortError};

/// Applies a stream record's own write to the local tables, once per record (the embedded
/// state does; on AWS the write has already happened).
#[async_trait::async_trait]
pub trait ChangeApplier: Send + Sync {
    /// [`Applied::Before`] when this record was applied before: a replayed file is a
    /// re-delivery of the same records, not the same writes made again. A different record
    /// under an eventID already applied is refused (not retryable).
    async fn apply(&self, change: &Change) -> Result<Applied, PortError>;

    /// Called with a batch's changes before they are applied one by one, so that what each
    /// will look up can be looked up at once (the embedded state's markers). Nothing by
    /// default; a failure only leaves each change to look up its own.
    async fn prepare(&self, _changes: &[&Change]) {}
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

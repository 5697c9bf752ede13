//! Adapters: the ports implemented on the AWS SDK (DynamoDB, S3, SES) and on the embedded
//! local state.

pub mod counting;
pub mod dynamodb;
pub mod embedded;
pub mod intercept;
pub mod s3;
mod sdk_error;
pub mod ses;

pub use sdk_error::classify;

use std::time::Duration;

/// Exponential backoff with full jitter: attempt 0 waits up to 50 ms, doubling to 2 s at most.
pub fn backoff(attempt: u32) -> Duration {
    let cap_ms = 50u64.saturating_mul(1u64 << attempt.min(16)).min(2_000);
    Duration::from_millis(fastrand::u64(0..=cap_ms))
}

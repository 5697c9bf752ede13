//! The one backoff: how long to wait before trying again, doubling from a first wait up to a
//! most, with or without full jitter. Named schedules below; the SDK's own retries inside a
//! call follow `wiring::retry_policy`.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The wait before the first retry (attempt 0).
    pub first: Duration,
    pub most: Duration,
    /// Wait a random time up to the schedule's (full jitter), so that callers that failed
    /// together do not retry together.
    pub jitter: bool,
}

/// Items a BatchWriteItem or BatchGetItem returned unprocessed: up to 50 ms, doubling to 2 s,
/// jittered (other writers are throttled at the same time).
pub const UNPROCESSED_ITEMS: Backoff = Backoff {
    first: Duration::from_millis(50),
    most: Duration::from_secs(2),
    jitter: true,
};

/// The local runner's pause before delivering a failed batch again: 100 ms doubling to
/// 6.4 s, so a record that keeps failing (forever with the default `MaximumRetryAttempts` of
/// -1) does not spin.
pub const STREAM_RETRY: Backoff = Backoff {
    first: Duration::from_millis(100),
    most: Duration::from_millis(6_400),
    jitter: false,
};

impl Backoff {
    /// The wait before retry `attempt` (0: the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doubled = self.first.saturating_mul(1u32 << attempt.min(16));
        let cap = doubled.min(self.most);
        match self.jitter {
            true => Duration::from_millis(fastrand::u64(0..=cap.as_millis() as u64)),
            false => cap,
        }
    }

    /// Sleep [`Backoff::delay`].
    pub async fn pause(&self, attempt: u32) {
        tokio::time::sleep(self.delay(attempt)).await;
    }
}

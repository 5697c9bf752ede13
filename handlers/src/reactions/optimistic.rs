//! The one way a reaction redoes optimistic work: read, compute, write on the condition of
//! what was read; when another worker wrote first (the condition failed), read and compute
//! again, a bounded number of times.

use std::future::Future;

use crate::error::{PortError, ReactionError};

/// Attempts of optimistic work, the first included, before a conflict is the caller's error.
pub const MAX_ATTEMPTS: u32 = 4;

/// Runs `attempt` (numbered from 1) again while it fails because another worker wrote one of
/// its items first, at most [`MAX_ATTEMPTS`] times in all; returns the last attempt's result
/// (a condition failure when every attempt met one: [`is_conflict`] tells).
pub async fn retry_on_conflict<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, ReactionError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, ReactionError>>,
{
    let mut n = 1;
    loop {
        match attempt(n).await {
            Err(e) if is_conflict(&e) && n < MAX_ATTEMPTS => {
                tracing::debug!(attempt = n, error = %e, "another worker changed {what} first; reading it again");
                n += 1;
            }
            done => return done,
        }
    }
}

/// Whether `error` is a write refused because its condition on what was read no longer held.
pub fn is_conflict(error: &ReactionError) -> bool {
    matches!(
        error,
        ReactionError::Port(PortError::ConditionFailed { .. })
    )
}

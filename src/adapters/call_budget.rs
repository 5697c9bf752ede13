//! How long one service call may take in the invocation at hand. The SDK clients are built once
//! with their timeouts (3 s an attempt, 10 s a call); an invocation with less time left than
//! that cuts them to what is left, so a short Lambda timeout means smaller steps, not calls
//! that run past the deadline. The batch sets the deadline; the adapters ask before each call.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_config::timeout::TimeoutConfig;
use chrono::{DateTime, Utc};

/// No call is given less than this, so one that is due still gets a chance to be answered.
const SHORTEST_CALL: Duration = Duration::from_millis(100);

pub struct CallBudget {
    attempt: Duration,
    call: Duration,
    deadline: Mutex<Option<Instant>>,
}

impl CallBudget {
    /// At most `attempt` for one attempt and `call` for a call with its retries.
    pub fn new(attempt: Duration, call: Duration) -> Self {
        CallBudget {
            attempt,
            call,
            deadline: Mutex::new(None),
        }
    }

    /// The invocation's deadline (None: none, the configured timeouts apply).
    pub fn until(&self, deadline: Option<DateTime<Utc>>) {
        let at = deadline.map(|deadline| {
            let left = (deadline - Utc::now()).to_std().unwrap_or_default();
            Instant::now() + left
        });
        if let Ok(mut slot) = self.deadline.lock() {
            *slot = at;
        }
    }

    /// The timeouts for a call starting now, when the deadline makes them shorter than the
    /// configured ones.
    pub fn timeouts(&self) -> Option<TimeoutConfig> {
        let deadline = (*self.deadline.lock().ok()?)?;
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(SHORTEST_CALL);
        if left >= self.call {
            return None;
        }
        let attempt = self.attempt.min(left);
        Some(
            TimeoutConfig::builder()
                .connect_timeout(attempt)
                .operation_attempt_timeout(attempt)
                .operation_timeout(left)
                .build(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeouts_shrink_to_the_time_left() {
        let budget = CallBudget::new(Duration::from_secs(3), Duration::from_secs(10));
        assert!(budget.timeouts().is_none(), "no deadline, no cut");
        budget.until(Some(Utc::now() + chrono::Duration::seconds(60)));
        assert!(
            budget.timeouts().is_none(),
            "a minute left: the configured ones"
        );
        budget.until(Some(Utc::now() + chrono::Duration::seconds(2)));
        let cut = budget.timeouts().expect("cut");
        let call = cut.operation_timeout().unwrap();
        assert!(
            call <= Duration::from_secs(2) && call > Duration::from_millis(1500),
            "{call:?}"
        );
        assert_eq!(cut.operation_attempt_timeout(), Some(call));
        budget.until(Some(Utc::now() - chrono::Duration::seconds(5)));
        assert_eq!(
            budget.timeouts().unwrap().operation_timeout(),
            Some(SHORTEST_CALL),
            "past the deadline a call still gets its shortest time"
        );
    }
}

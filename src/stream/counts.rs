//! The counts Lambda's event source mapping metrics report (`MetricsConfig: EventCount`), kept
//! by the local runner under the same names, and per shard how far behind the stream it is,
//! so a local run reads like the console.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::batch::NotDone;

/// Events by what happened to them, as Lambda counts them.
#[derive(Debug, Default)]
pub(super) struct EventCounts {
    /// Read from the stream (PolledEventCount).
    polled: AtomicU64,
    /// Left out by the filter criteria (FilteredOutEventCount).
    filtered_out: AtomicU64,
    /// Delivered to the worker, every attempt counted (InvokedEventCount).
    invoked: AtomicU64,
    /// Delivered, and not finished by that delivery: in a batch that failed, from the
    /// reported record on (FailedInvokeEventCount).
    failed_invoke: AtomicU64,
    /// Given up on: past MaximumRecordAgeInSeconds or MaximumRetryAttempts (DroppedEventCount).
    dropped: AtomicU64,
    /// Described in the on-failure file (OnFailureDestinationDeliveredEventCount).
    on_failure: AtomicU64,
    /// The worker's own, beside Lambda's: delivered and finished, but parked, done with data
    /// left out, or done without its mail (a record counts once, as [`NotDone`] counts it).
    not_done: Mutex<NotDone>,
    shards: Mutex<BTreeMap<String, ShardLag>>,
    /// With `--json`: how often to print the counts while running, and when they last were.
    interval: Option<(Duration, Mutex<Instant>)>,
}

/// What one event count is about.
#[derive(Debug, Clone, Copy)]
pub(super) enum Event {
    Polled,
    FilteredOut,
    Invoked,
    FailedInvoke,
    /// Given up on and described in the on-failure file (always both here).
    Dropped,
}

/// How far behind the stream one shard is.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct ShardLag {
    /// Lambda's IteratorAge: how old the newest record of the last finished batch was when
    /// the batch finished, in milliseconds.
    iterator_age_ms: Option<u64>,
    /// The last sequence number read.
    last_read: Option<String>,
}

/// A snapshot of the counts, printed as a line or as JSON.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Snapshot {
    polled_event_count: u64,
    filtered_out_event_count: u64,
    invoked_event_count: u64,
    failed_invoke_event_count: u64,
    dropped_event_count: u64,
    on_failure_destination_delivered_event_count: u64,
    /// The worker's own counts (not Lambda's): finished, but not simply done.
    parked_event_count: usize,
    skipped_data_event_count: usize,
    mail_not_sent_event_count: usize,
}

impl EventCounts {
    /// Counts that are also printed every `interval`, if given, while the run goes on.
    pub(super) fn new(interval: Option<Duration>) -> Self {
        EventCounts {
            interval: interval.map(|every| (every, Mutex::new(Instant::now()))),
            ..EventCounts::default()
        }
    }

    /// Print the counts if the interval has passed since they last were (JSON).
    pub(super) fn on_interval(&self) {
        let Some((every, last)) = &self.interval else {
            return;
        };
        let mut last = last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.elapsed() >= *every {
            *last = Instant::now();
            self.print("so far", true);
        }
    }

    pub(super) fn add(&self, event: Event, count: usize) {
        let count = count as u64;
        let counters: &[&AtomicU64] = match event {
            Event::Polled => &[&self.polled],
            Event::FilteredOut => &[&self.filtered_out],
            Event::Invoked => &[&self.invoked],
            Event::FailedInvoke => &[&self.failed_invoke],
            Event::Dropped => &[&self.dropped, &self.on_failure],
        };
        for counter in counters {
            counter.fetch_add(count, Ordering::Relaxed);
        }
    }

    /// Records of a finished batch that were parked, skipped data or sent no mail.
    pub(super) fn add_not_done(&self, batch: NotDone) {
        *self
            .not_done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += batch;
    }

    /// `shard` read up to `sequence_number`.
    pub(super) fn read_up_to(&self, shard: &str, sequence_number: &str) {
        self.with_shard(shard, |lag| {
            lag.last_read = Some(sequence_number.to_string())
        });
    }

    /// A batch of `shard` finished with its newest record `age_ms` old.
    pub(super) fn iterator_age(&self, shard: &str, age_ms: u64) {
        self.with_shard(shard, |lag| lag.iterator_age_ms = Some(age_ms));
    }

    fn with_shard(&self, shard: &str, change: impl FnOnce(&mut ShardLag)) {
        let mut shards = self
            .shards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        change(shards.entry(shard.to_string()).or_default());
    }

    fn snapshot(&self) -> Snapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let not_done = *self
            .not_done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Snapshot {
            parked_event_count: not_done.parked,
            skipped_data_event_count: not_done.skipped,
            mail_not_sent_event_count: not_done.not_sent,
            polled_event_count: get(&self.polled),
            filtered_out_event_count: get(&self.filtered_out),
            invoked_event_count: get(&self.invoked),
            failed_invoke_event_count: get(&self.failed_invoke),
            dropped_event_count: get(&self.dropped),
            on_failure_destination_delivered_event_count: get(&self.on_failure),
        }
    }

    /// The counts so far (`when`: "so far", "at the end", "stopped"): one JSON object, or lines.
    pub(super) fn print(&self, when: &str, json: bool) {
        let counts = self.snapshot();
        let shards = self
            .shards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if json {
            println!(
                "{}",
                serde_json::json!({ "eventCounts": counts, "when": when, "shards": shards })
            );
            return;
        }
        // Lambda's own names, to compare with the console.
        println!(
            "events {when}: PolledEventCount {}, FilteredOutEventCount {}, InvokedEventCount {}, \
             FailedInvokeEventCount {}, DroppedEventCount {}, \
             OnFailureDestinationDeliveredEventCount {}; the worker's own: ParkedEventCount {}, \
             SkippedDataEventCount {}, MailNotSentEventCount {}",
            counts.polled_event_count,
            counts.filtered_out_event_count,
            counts.invoked_event_count,
            counts.failed_invoke_event_count,
            counts.dropped_event_count,
            counts.on_failure_destination_delivered_event_count,
            counts.parked_event_count,
            counts.skipped_data_event_count,
            counts.mail_not_sent_event_count,
        );
        for (shard, lag) in shards {
            let age = lag
                .iterator_age_ms
                .map_or("no batch finished".to_string(), |ms| {
                    format!("iterator age {:.1} s", ms as f64 / 1000.0)
                });
            let read = lag.last_read.as_deref().unwrap_or("nothing");
            println!("  shard {shard}: {age}, read up to {read}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_event_is_counted_as_sent_to_on_failure_too() {
        let counts = EventCounts::default();
        counts.add(Event::Polled, 5);
        counts.add(Event::FilteredOut, 2);
        counts.add(Event::Invoked, 3);
        counts.add(Event::Dropped, 1);
        let snapshot = counts.snapshot();
        assert_eq!(snapshot.polled_event_count, 5);
        assert_eq!(snapshot.filtered_out_event_count, 2);
        assert_eq!(snapshot.invoked_event_count, 3);
        assert_eq!(snapshot.dropped_event_count, 1);
        assert_eq!(snapshot.on_failure_destination_delivered_event_count, 1);
        assert_eq!(snapshot.failed_invoke_event_count, 0);
    }
}

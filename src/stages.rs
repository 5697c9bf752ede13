//! Where a run's time goes, stage by stage, so that a slower replay names the stage that
//! slipped (`replay --timings`; the throughput benchmark prints it).
//!
//! Each stage adds up the time spent in it, over every thread and lane; `Decode` and `Reports`
//! run on threads of their own, so the figures overlap and are not meant to add up to the run's time. The counters are
//! process-wide atomics: taking a time costs two clock reads, cheap enough to be always on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// A replay's first pass: every file parsed and checked before anything runs.
    Check,
    /// Records decoded for their batches (a replay decodes on a thread of its own).
    Decode,
    /// Each record's own change applied to the embedded state (replay only).
    OwnChange,
    /// Reactions run record by record in their lanes.
    Reactions,
    /// Window folds (ratings, thread statistics).
    Folds,
    /// Deferred writes (audit items) stored per window.
    DeferredWrites,
    /// The batch's transaction committed and made durable at its end.
    Sync,
    /// The database's write-ahead log folded into its file (at the end of a run).
    Checkpoint,
    /// Reports written (the lines `replay` prints, on a thread of their own).
    Reports,
}

impl Stage {
    pub const ALL: [Stage; 9] = [
        Stage::Check,
        Stage::Decode,
        Stage::OwnChange,
        Stage::Reactions,
        Stage::Folds,
        Stage::DeferredWrites,
        Stage::Sync,
        Stage::Checkpoint,
        Stage::Reports,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Check => "check (first pass)",
            Stage::Decode => "decode (own thread)",
            Stage::OwnChange => "own-change apply",
            Stage::Reactions => "reactions",
            Stage::Folds => "folds",
            Stage::DeferredWrites => "deferred writes",
            Stage::Sync => "sync",
            Stage::Checkpoint => "checkpoint",
            Stage::Reports => "reports (own thread)",
        }
    }
}

static SPENT_NANOS: [AtomicU64; Stage::ALL.len()] = [const { AtomicU64::new(0) }; 9];

/// Add the time since `since` to `stage`.
pub fn add_since(stage: Stage, since: Instant) {
    let nanos = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
    SPENT_NANOS[stage as usize].fetch_add(nanos, Ordering::Relaxed);
}

/// Run `f`, adding its time to `stage`.
pub fn measure<T>(stage: Stage, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    add_since(stage, started);
    out
}

/// Await `future`, adding the time until it is done to `stage` (waits included: on the
/// embedded state nothing waits; on AWS the round trips are what a stage costs).
pub async fn measure_async<F: std::future::Future>(stage: Stage, future: F) -> F::Output {
    let started = Instant::now();
    let out = future.await;
    add_since(stage, started);
    out
}

/// Time spent so far in each stage, in [`Stage::ALL`]'s order.
pub fn spent() -> Vec<(Stage, Duration)> {
    Stage::ALL
        .iter()
        .map(|&stage| {
            let nanos = SPENT_NANOS[stage as usize].load(Ordering::Relaxed);
            (stage, Duration::from_nanos(nanos))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measured_stage_adds_its_time() {
        let reports = |spent: Vec<(Stage, Duration)>| spent[Stage::Reports as usize].1;
        let before = reports(spent());
        measure(Stage::Reports, || {
            std::thread::sleep(Duration::from_millis(20))
        });
        let grew = reports(spent()) - before;
        assert!(grew >= Duration::from_millis(20), "{grew:?}");
    }
}

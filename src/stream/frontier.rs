//! How far a shard is finished when its records are delivered by several deliveries at once
//! (`ParallelizationFactor`): every record read takes a place in stream order, a delivery
//! marks the places it finished (delivered, or given up on), and the shard's checkpoint moves
//! only past the longest run of finished places from the front. So a restart never skips a
//! record one delivery still had, however far ahead another one is.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use handlers::sequence_number::SequenceNumber;

use super::checkpoints::Checkpoints;
use super::error::StreamError;
use super::stop::stop_requested;

/// A record's place in its shard's read order.
pub(super) type Place = u64;

/// The shard's records read but not yet behind the checkpoint, and the checkpoint itself.
pub(super) struct Frontier<'a> {
    state: Mutex<State<'a>>,
    /// Told whenever records are finished, for a reader waiting for room.
    finished: Notify,
    shard_id: &'a str,
    path: &'a Path,
}

struct State<'a> {
    checkpoints: &'a mut Checkpoints,
    /// The place of `waiting[0]`.
    front: Place,
    /// From `front` on: (sequence number, finished).
    waiting: VecDeque<(String, bool)>,
}

impl<'a> Frontier<'a> {
    pub(super) fn new(checkpoints: &'a mut Checkpoints, shard_id: &'a str, path: &'a Path) -> Self {
        Frontier {
            state: Mutex::new(State {
                checkpoints,
                front: 0,
                waiting: VecDeque::new(),
            }),
            finished: Notify::new(),
            shard_id,
            path,
        }
    }

    /// The next record read, in stream order: its place.
    pub(super) fn read(&self, sequence_number: &str) -> Place {
        let mut state = self.lock();
        state
            .waiting
            .push_back((sequence_number.to_string(), false));
        state.front + state.waiting.len() as Place - 1
    }

    /// Whether every record read so far is finished (no delivery has work).
    pub(super) fn idle(&self) -> bool {
        self.lock().waiting.is_empty()
    }

    /// Wait until fewer than `limit` records read are unfinished (or Ctrl-C).
    pub(super) async fn below(&self, limit: usize) {
        loop {
            // Created before the check, so a finish between the two is not missed.
            let finished = self.finished.notified();
            if self.lock().waiting.len() < limit || stop_requested() {
                return;
            }
            // Ctrl-C sends no notice: look again now and then.
            let _ = tokio::time::timeout(Duration::from_millis(200), finished).await;
        }
    }

    /// The records at `places` are finished; the checkpoint moves past every finished record
    /// before the first unfinished one (to the last with a sequence number a stream gives).
    pub(super) fn finish(
        &self,
        places: impl IntoIterator<Item = Place>,
    ) -> Result<(), StreamError> {
        let mut state = self.lock();
        for place in places {
            let front = state.front;
            if let Some(entry) = place
                .checked_sub(front)
                .and_then(|at| state.waiting.get_mut(at as usize))
            {
                entry.1 = true;
            }
        }
        self.finished.notify_waiters();
        let mut behind = None;
        while state.waiting.front().is_some_and(|(_, finished)| *finished) {
            if let Some((sequence, _)) = state.waiting.pop_front() {
                if SequenceNumber::check(&sequence).is_ok() {
                    behind = Some(sequence);
                }
            }
            state.front += 1;
        }
        match behind {
            Some(sequence) => state
                .checkpoints
                .advance(self.shard_id, &sequence, self.path),
            None => Ok(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<'a>> {
        // A poisoned lock only means a panic elsewhere; the places it holds are still right.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkpoint_waits_for_the_slowest_delivery() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.json");
        let mut checkpoints = Checkpoints::default();
        let frontier = Frontier::new(&mut checkpoints, "shard-1", &path);
        let sequence = |n: u32| format!("{n:021}");
        let places: Vec<Place> = [100, 200, 300, 400]
            .into_iter()
            .map(|n| frontier.read(&sequence(n)))
            .collect();
        assert_eq!(places, [0, 1, 2, 3]);
        // Another delivery finished 200 and 400 first: nothing is behind the checkpoint yet.
        frontier.finish([1, 3]).unwrap();
        assert!(!frontier.idle());
        assert!(!path.exists());
        frontier.finish([0]).unwrap();
        frontier.finish([2]).unwrap();
        assert!(frontier.idle());
        drop(frontier);
        assert_eq!(checkpoints.get("shard-1"), Some(sequence(400).as_str()));
    }
}

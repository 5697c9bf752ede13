//! Folding the write-ahead log back into the database file on a thread of its own, with a
//! connection of its own, so that a batch's commit never waits for it.
//!
//! SQLite's own (automatic) checkpoint runs inside the commit that crosses its threshold: a
//! long replay spent a fifth of its time there. Here the commit only wakes this thread (see
//! [`Waker::wake`]), which copies what was committed into the database file while the next
//! batch runs. The log starts over only after a checkpoint that copied all of it, which one
//! running beside a writer never does: the commit hook finishes the job itself when the log
//! grows past a bound (`database.rs`), copying what this thread has not. A checkpoint that
//! fails loses nothing (the log keeps every commit, and the end of a run folds it again), so
//! its error is not the batch's.

use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};

pub(crate) struct Checkpointer {
    wake: SyncSender<Ask>,
    thread: Option<JoinHandle<()>>,
}

/// What the thread is asked to do.
enum Ask {
    Checkpoint,
    /// End (the wakers live on in the connection's hook, so the channel stays open).
    Stop,
}

impl Checkpointer {
    /// Start the thread on the database at `path` (which exists, in WAL mode), waiting up to
    /// `busy_wait` for a lock. None when it cannot start: then SQLite checkpoints in the
    /// commit, as it does by default.
    pub(crate) fn start(path: &Path, busy_wait: std::time::Duration) -> Option<Checkpointer> {
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        connection.busy_timeout(busy_wait).ok()?;
        // One wake-up waiting at most: commits while a checkpoint runs ask for one more.
        let (wake, woken) = sync_channel::<Ask>(1);
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                while let Ok(Ask::Checkpoint) = woken.recv() {
                    // PASSIVE: copies the log while the next batch writes, never waiting.
                    let _ = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .ok()?;
        Some(Checkpointer {
            wake,
            thread: Some(thread),
        })
    }

    /// What the commit hook asks for a checkpoint with (it never blocks).
    pub(crate) fn waker(&self) -> Waker {
        Waker(self.wake.clone())
    }
}

impl Drop for Checkpointer {
    /// Let the thread finish the checkpoint it is running, and end it.
    fn drop(&mut self) {
        // Waits while a checkpoint is asked for and not yet begun; fails only if the thread
        // has ended.
        let _ = self.wake.send(Ask::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Asks the checkpointer for a checkpoint.
#[derive(Clone)]
pub(crate) struct Waker(SyncSender<Ask>);

impl Waker {
    pub(crate) fn wake(&self) {
        // Refused only when one is asked for already, or the thread has ended.
        let _ = self.0.try_send(Ask::Checkpoint);
    }
}

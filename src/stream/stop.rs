//! Stopping on Ctrl-C: after the batch in hand, checkpoint saved; at once on the second.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the first Ctrl-C: the runner stops after the batch in hand, checkpoint saved. One per
/// process because the signal is.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

pub(super) fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::Relaxed)
}

/// First Ctrl-C: finish the current batch, then stop. Second: stop now (the idempotency table
/// makes the interrupted batch safe to deliver again).
pub(super) fn stop_on_ctrl_c() {
    tokio::spawn(async {
        while tokio::signal::ctrl_c().await.is_ok() {
            if STOP_REQUESTED.swap(true, Ordering::Relaxed) {
                std::process::exit(130);
            }
            eprintln!("stopping after the current batch (Ctrl-C again to stop now)");
        }
    });
}

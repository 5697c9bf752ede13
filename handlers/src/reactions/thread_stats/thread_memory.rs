//! What a thread-stats worker remembers between windows: threads (state and stored figures)
//! and messages as it last read or wrote them (`reactions::bounded_memory::BoundedMemory`), so a
//! window need not read them first. A stale entry costs a failed condition and a read.

use super::message_states::ThreadState;
use super::{Folding, KnownThread, ThreadStatistics};
use crate::reactions::folding::next_aggregate_version;

impl ThreadStatistics {
    /// Remembers a window's threads and messages as `writes` stored them: a written state at
    /// the next version, a thread's figures as `following` made them.
    pub(super) fn remember_segment(&self, read: &Folding, folded: &Folding) {
        self.known_messages
            .remember(folded.messages.iter().map(|(key, message)| {
                let mut stored = message.clone();
                if folded.changed_messages.contains(key) {
                    stored.version = read.messages.get(key).map_or(0, |m| m.version) + 1;
                }
                (key.clone(), Some(stored))
            }));
        self.known_threads
            .remember(folded.threads.iter().map(|(conversation, thread)| {
                let was = read.threads.get(conversation);
                let stored = folded.stored.get(conversation).cloned();
                if !folded.changed_threads.contains_key(conversation) {
                    let known = KnownThread {
                        state: thread.clone(),
                        stored,
                    };
                    return (conversation.clone(), Some(known));
                }
                // A thread left without messages was deleted (or never written): read it again.
                if thread.is_empty() {
                    return (conversation.clone(), None);
                }
                let mut state: ThreadState = thread.clone();
                if was != Some(thread) {
                    state.version = was.map_or(0, |t| t.version) + 1;
                }
                let stored = stored.unwrap_or_default();
                let mut now = stored.following(thread);
                if now != stored {
                    now.stats_version = Some(next_aggregate_version(stored.stats_version));
                }
                let known = KnownThread {
                    state,
                    stored: Some(now),
                };
                (conversation.clone(), Some(known))
            }));
    }

    /// Forgets a window whose write failed: what it assumed is not known as stored.
    pub(super) fn forget_segment(&self, folded: &Folding) {
        self.known_messages
            .remember(folded.messages.keys().map(|key| (key.clone(), None)));
        self.known_threads
            .remember(folded.threads.keys().map(|c| (c.clone(), None)));
    }
}

//! A bounded in-process memory of items as this process last read or wrote them, for the
//! reactions that fold windows: what they remember they need not read before a conditional
//! write. A stale entry costs only a failed condition, after which the window is read again,
//! so the bound is a bound, not a cache policy: a full memory is emptied and starts again.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

pub struct BoundedMemory<K, V> {
    entries: Mutex<HashMap<K, V>>,
    bound: usize,
}

impl<K: Hash + Eq, V> BoundedMemory<K, V> {
    /// A memory of at most `bound` entries.
    pub fn new(bound: usize) -> Self {
        BoundedMemory {
            entries: Mutex::new(HashMap::new()),
            bound,
        }
    }

    /// The entry remembered for `key`, if any, taken out rather than copied: the fold that
    /// reads it remembers it again as it writes it, or leaves it to be read.
    pub fn take<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.lock().ok()?.remove(key)
    }

    /// Remembers each entry (None: forgets its key), emptying the memory when it is full.
    pub fn remember(&self, entries: impl IntoIterator<Item = (K, Option<V>)>) {
        let Ok(mut known) = self.entries.lock() else {
            return;
        };
        for (key, stored) in entries {
            match stored {
                Some(value) => {
                    if known.len() >= self.bound {
                        known.clear();
                    }
                    known.insert(key, value);
                }
                None => {
                    known.remove(&key);
                }
            }
        }
    }

    /// Forgets every entry whose key `keep` refuses.
    pub fn retain(&self, keep: impl Fn(&K) -> bool) {
        if let Ok(mut known) = self.entries.lock() {
            known.retain(|key, _| keep(key));
        }
    }
}

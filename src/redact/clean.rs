//! Texts already found to hold nothing to redact, so that what a chat client sends again on every
//! turn (the system prompt, the conversation so far, tool definitions) is scanned once, not once
//! per turn: a twenty-turn chat otherwise scans its first message twenty times.
//!
//! Only clean texts are remembered, and only as a SHA-256 keyed with a random per-process key
//! and the rules' identity: no plaintext is kept, and without the key a hash says nothing about
//! a text. A text with anything found in it is never remembered, so every value a rule finds is
//! found again in each request (values learned in one request must not leak into another). The
//! set is per compiled contract list (`ContractMatcher`), so new terms start it afresh.
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Shorter texts cost less to scan than to hash and look up.
const MIN_BYTES: usize = 256;

pub(crate) type Key = [u8; 32];

pub(crate) struct CleanTexts {
    key: [u8; 32],
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    set: HashSet<Key>,
    /// Insertion order: the oldest goes first when the set is full.
    order: VecDeque<Key>,
}

impl Default for CleanTexts {
    fn default() -> Self {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        Self {
            key,
            seen: Mutex::default(),
        }
    }
}

impl CleanTexts {
    /// The text's key under rules `rules`, when texts are remembered (`capacity` > 0) and this
    /// one is long enough to be worth it.
    pub(crate) fn key(&self, rules: u64, capacity: usize, text: &str) -> Option<Key> {
        if capacity == 0 || text.len() < MIN_BYTES {
            return None;
        }
        Some(
            Sha256::new()
                .chain_update(self.key)
                .chain_update(rules.to_le_bytes())
                .chain_update(text.as_bytes())
                .finalize()
                .into(),
        )
    }

    pub(crate) fn contains(&self, k: &Key) -> bool {
        // A panic elsewhere while holding the lock only means the text is scanned again.
        self.seen.lock().is_ok_and(|s| s.set.contains(k))
    }

    pub(crate) fn insert(&self, k: Key, capacity: usize) {
        let Ok(mut s) = self.seen.lock() else {
            return;
        };
        if !s.set.insert(k) {
            return;
        }
        s.order.push_back(k);
        while s.order.len() > capacity {
            if let Some(old) = s.order.pop_front() {
                s.set.remove(&old);
            }
        }
    }

    /// How many texts are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.lock().map_or(0, |s| s.set.len())
    }
}

//! Texts already found to hold nothing to redact, so that what a chat client sends again on every
//! turn (the system prompt, the conversation so far, tool definitions) is scanned once, not once
//! per turn: a twenty-turn chat otherwise scans its first message twenty times.
//!
//! - Only clean texts are remembered, and only as a SHA-256 keyed with the rules' random key: no
//!   plaintext is kept, and without the key a hash says nothing about a text. A text with anything
//!   found in it is never remembered, so every value a rule finds is found again in each request.
//! - The hash also covers the compiled contract list's own random salt (so new terms, or a new
//!   policy generation, start afresh) and a scope the caller names: the gateway names the staff
//!   key, so that one user's texts never make another's request faster. A shared set would tell,
//!   by timing, whether anyone else had sent a guessed text.
//! - One set per loaded rules, bounded (`[redaction] clean_texts`): the oldest goes first. Each
//!   entry costs about 100 bytes (hash set and insertion order).
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

/// Shorter texts cost less to scan than to hash and look up. A system prompt of two sentences
/// (138 bytes in the gateway benchmark) took 0.8 µs to scan and 0.15 µs to hash.
const MIN_BYTES: usize = 64;

pub(crate) type Key = [u8; 32];

/// A random value, so that hashes made under one key or salt say nothing under another.
pub(crate) fn random_salt() -> [u8; 32] {
    let mut salt = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut salt);
    salt
}

pub(crate) struct CleanTexts {
    key: [u8; 32],
    capacity: usize,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    set: HashSet<Key, BuildHasherDefault<FirstBytes>>,
    /// Insertion order: the oldest goes first when the set is full.
    order: VecDeque<Key>,
}

impl CleanTexts {
    /// Remembers up to `capacity` texts; 0 remembers none.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            key: random_salt(),
            capacity,
            seen: Mutex::default(),
        }
    }

    /// The key of `text` under a contract list's `salt` and the caller's `scope`, when texts are
    /// remembered and this one is long enough to be worth it.
    pub(crate) fn key(&self, salt: &[u8; 32], scope: &str, text: &str) -> Option<Key> {
        if self.capacity == 0 || text.len() < MIN_BYTES {
            return None;
        }
        Some(
            Sha256::new()
                .chain_update(self.key)
                .chain_update(salt)
                .chain_update((scope.len() as u64).to_le_bytes())
                .chain_update(scope.as_bytes())
                .chain_update(text.as_bytes())
                .finalize()
                .into(),
        )
    }

    // A lock poisoned by a panic elsewhere only means texts are scanned again: never a skip.

    pub(crate) fn contains(&self, k: &Key) -> bool {
        self.seen.lock().is_ok_and(|s| s.set.contains(k))
    }

    pub(crate) fn insert(&self, k: Key) {
        let Ok(mut s) = self.seen.lock() else {
            return;
        };
        if self.capacity == 0 || s.set.contains(&k) {
            return;
        }
        while s.order.len() >= self.capacity {
            match s.order.pop_front() {
                Some(old) => s.set.remove(&old),
                None => break,
            };
        }
        s.set.insert(k);
        s.order.push_back(k);
    }

    /// How many texts are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.lock().map_or(0, |s| s.set.len())
    }
}

/// The set's hasher: a key is already a keyed SHA-256, uniform and unknown to callers, so its
/// first eight bytes are as good a hash as SipHash's of all 32, at no cost.
#[derive(Default)]
struct FirstBytes(u64);

impl Hasher for FirstBytes {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // A `[u8; 32]` comes as its length, then its bytes: the first eight of each suffice.
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
    }
}

//! Repeat callers: caller ids kept only as keyed hashes, and the count of a
//! caller's calls within the policy window.
//!
//! The key is a secret per installation (the service keeps it in its data
//! directory), so a stolen store does not reveal phone numbers, and hashes
//! from two installations cannot be joined. This in-memory history serves
//! replay; the service keeps the same counts in its durable store.

use std::collections::{HashMap, VecDeque};

/// A keyed hash of a caller id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallerKey(pub [u8; 32]);

impl CallerKey {
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Hashes caller ids with an installation secret (BLAKE3 keyed mode).
#[derive(Clone)]
pub struct CallerHasher {
    key: [u8; 32],
}

impl std::fmt::Debug for CallerHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallerHasher(..)") // never print the secret
    }
}

impl CallerHasher {
    /// Derives the hashing key from secret bytes of any length.
    pub fn new(secret: &[u8]) -> CallerHasher {
        CallerHasher {
            key: blake3::derive_key("callguard 2026 caller id", secret),
        }
    }

    /// The key of a caller id, or `None` for an empty or withheld one.
    pub fn key(&self, caller_id: &str) -> Option<CallerKey> {
        let caller_id = caller_id.trim();
        if caller_id.is_empty() || caller_id.eq_ignore_ascii_case("anonymous") {
            return None;
        }
        Some(CallerKey(
            *blake3::keyed_hash(&self.key, caller_id.as_bytes()).as_bytes(),
        ))
    }
}

/// Calls per caller within a sliding window, in memory.
#[derive(Debug, Default)]
pub struct CallerHistory {
    calls: HashMap<CallerKey, VecDeque<jiff::Timestamp>>,
}

impl CallerHistory {
    /// Records a call starting at `at` and returns how many calls this
    /// caller made within `window` up to and including it.
    pub fn record(
        &mut self,
        key: CallerKey,
        at: jiff::Timestamp,
        window: jiff::SignedDuration,
    ) -> u32 {
        let calls = self.calls.entry(key).or_default();
        let since = at.checked_sub(window).unwrap_or(at);
        while calls.front().is_some_and(|t| *t <= since) {
            calls.pop_front();
        }
        calls.push_back(at);
        calls.len() as u32
    }

    /// Forgets callers with no call since `before` (bounds memory in long replays).
    pub fn forget_before(&mut self, before: jiff::Timestamp) {
        self.calls
            .retain(|_, calls| calls.back().is_some_and(|t| *t > before));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_keyed_and_stable() {
        let a = CallerHasher::new(b"secret-a");
        let b = CallerHasher::new(b"secret-b");
        let k = a.key("+81312345678").unwrap();
        assert_eq!(Some(k), a.key(" +81312345678 "));
        assert_ne!(Some(k), b.key("+81312345678"));
        assert!(!k.to_hex().contains("81312345678"));
        assert_eq!(a.key(""), None);
        assert_eq!(a.key("anonymous"), None);
        assert!(!format!("{a:?}").contains("secret"));
    }

    #[test]
    fn counts_within_the_window_only() {
        let hasher = CallerHasher::new(b"s");
        let key = hasher.key("+1555").unwrap();
        let mut history = CallerHistory::default();
        let day = jiff::SignedDuration::from_hours(24);
        let t0: jiff::Timestamp = "2026-10-05T00:00:00Z".parse().unwrap();
        assert_eq!(history.record(key, t0, day), 1);
        assert_eq!(
            history.record(key, t0 + jiff::SignedDuration::from_hours(10), day),
            2
        );
        assert_eq!(
            history.record(key, t0 + jiff::SignedDuration::from_hours(23), day),
            3
        );
        // Exactly 24 h after the first call, the first no longer counts.
        assert_eq!(
            history.record(key, t0 + jiff::SignedDuration::from_hours(24), day),
            3
        );
        history.forget_before(t0 + jiff::SignedDuration::from_hours(48));
        assert_eq!(
            history.record(key, t0 + jiff::SignedDuration::from_hours(50), day),
            1
        );
    }
}

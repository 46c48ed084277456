//! Log lines a hostile client could multiply (unauthenticated requests,
//! refused connections): at most one per source every few seconds, each
//! saying how many were left out since. Counters count them all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sources remembered at most; beyond, those quiet for a period are forgotten.
const MAX_SOURCES: usize = 4_096;

pub struct RateLimitedLog {
    every: Duration,
    /// Per source: when it was last logged, and the lines left out since.
    seen: Mutex<HashMap<Option<IpAddr>, (Instant, u64)>>,
}

impl RateLimitedLog {
    pub fn new(every: Duration) -> RateLimitedLog {
        RateLimitedLog {
            every,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(lines left out since the last one)` when `source` may log now.
    pub fn allow(&self, source: Option<IpAddr>) -> Option<u64> {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_SOURCES && !seen.contains_key(&source) {
            seen.retain(|_, (at, _)| now.duration_since(*at) < self.every);
            if seen.len() >= MAX_SOURCES {
                // Many sources at once: log for none of the new ones.
                return None;
            }
        }
        match seen.get_mut(&source) {
            Some((at, suppressed)) if now.duration_since(*at) < self.every => {
                *suppressed += 1;
                None
            }
            Some((at, suppressed)) => {
                *at = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                seen.insert(source, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_source_per_period() {
        let log = RateLimitedLog::new(Duration::from_secs(3600));
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        assert_eq!(log.allow(a), Some(0));
        assert_eq!(log.allow(a), None);
        assert_eq!(log.allow(a), None);
        assert_eq!(log.allow(b), Some(0));
        let now = RateLimitedLog::new(Duration::ZERO);
        assert_eq!(now.allow(a), Some(0));
        assert_eq!(now.allow(a), Some(0));
    }
}

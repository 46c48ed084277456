//! Percentiles: nearest-rank over sorted samples (alert latency), and a
//! histogram for the round trips (millions of answers, no sample kept).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::Percentiles;

/// Nearest-rank percentile of sorted samples.
pub(super) fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Values below this are counted one microsecond per bucket.
const LINEAR_US: u64 = 256;
/// Buckets per doubling above that: 1/128 wide, under 0.8 % error.
const SUB_BUCKETS: usize = 128;
const BUCKETS: usize = LINEAR_US as usize + 56 * SUB_BUCKETS;

/// Latencies in microseconds, counted with atomics so that every stream's
/// reader records into one without a lock or a sample kept: millions of
/// answers a run.
pub(super) struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    max_us: AtomicU64,
}

impl Histogram {
    pub(super) fn new() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }

    pub(super) fn record(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Nearest-rank percentiles, each the low edge of its bucket; the
    /// maximum is exact.
    pub(super) fn percentiles(&self) -> Percentiles {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let samples: u64 = counts.iter().sum();
        let at = |p: f64| -> Option<Duration> {
            if samples == 0 {
                return None;
            }
            let rank = ((p * samples as f64).ceil() as u64).clamp(1, samples);
            let mut seen = 0;
            counts.iter().enumerate().find_map(|(i, &n)| {
                seen += n;
                (seen >= rank).then(|| Duration::from_micros(bucket_floor(i)))
            })
        };
        Percentiles {
            samples,
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: (samples > 0).then(|| Duration::from_micros(self.max_us.load(Ordering::Relaxed))),
        }
    }
}

fn bucket_of(us: u64) -> usize {
    if us < LINEAR_US {
        return us as usize;
    }
    // us >> shift is in [128, 256): its top 8 bits.
    let shift = 63 - us.leading_zeros() as usize - 7;
    let index =
        LINEAR_US as usize + (shift - 1) * SUB_BUCKETS + ((us >> shift) as usize - SUB_BUCKETS);
    index.min(BUCKETS - 1)
}

fn bucket_floor(index: usize) -> u64 {
    if index < LINEAR_US as usize {
        return index as u64;
    }
    let above = index - LINEAR_US as usize;
    let shift = above / SUB_BUCKETS + 1;
    ((SUB_BUCKETS + above % SUB_BUCKETS) as u64) << shift
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=1000).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.5), Some(Duration::from_millis(500)));
        assert_eq!(percentile(&samples, 0.99), Some(Duration::from_millis(990)));
        assert_eq!(
            percentile(&samples, 0.999),
            Some(Duration::from_millis(999))
        );
        assert_eq!(
            percentile(&samples[..1], 0.999),
            Some(Duration::from_millis(1))
        );
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn the_histogram_is_within_one_percent() {
        for us in (0..5_000).chain([65_535, 65_536, 1_000_000, 123_456_789, u64::MAX]) {
            let floor = bucket_floor(bucket_of(us));
            assert!(floor <= us, "{us}: {floor}");
            assert!(us - floor <= us / 128, "{us}: {floor}");
        }
        for pair in (0..BUCKETS).collect::<Vec<_>>().windows(2) {
            assert!(bucket_floor(pair[0]) < bucket_floor(pair[1]), "{pair:?}");
            assert_eq!(bucket_of(bucket_floor(pair[1])), pair[1]);
        }
        let histogram = Histogram::new();
        assert_eq!(histogram.percentiles(), Percentiles::default());
        for ms in 1..=1000 {
            histogram.record(Duration::from_millis(ms));
        }
        let p = histogram.percentiles();
        assert_eq!(p.samples, 1000);
        assert_eq!(p.max, Some(Duration::from_millis(1000)));
        for (got, want) in [(p.p50, 500_000.0), (p.p99, 990_000.0), (p.p999, 999_000.0)] {
            let got = got.unwrap().as_micros() as f64;
            assert!(got <= want && got >= want * 0.99, "{got} for {want}");
        }
    }
}

//! Weighted random choice with a seedable lock-free RNG.

use crate::health::Eligible;
use crate::rng::AtomicRng;
use crate::target::{BuildError, Target, validate};

/// Draws rejected before falling back to a scan of the healthy targets.
const REJECTION_TRIES: usize = 4;

/// Picks each healthy target with probability `weight / sum(healthy weights)`,
/// independently per pick.
///
/// A draw is a binary search over cumulative weights; a draw that lands on an
/// unhealthy target is redrawn a few times and then resolved by a linear scan
/// over the healthy weights, which keeps the distribution exact.
#[derive(Debug)]
pub struct WeightedRandom {
    /// `cumulative[i]` = sum of weights of targets `0..=i`.
    cumulative: Box<[u64]>,
    rng: AtomicRng,
}

impl WeightedRandom {
    /// A balancer over `targets` seeded from process entropy.
    pub fn new(targets: &[Target]) -> Result<Self, BuildError> {
        Self::with_seed(targets, AtomicRng::entropy_seed())
    }

    /// A balancer whose single-threaded pick sequence is fixed by `seed`.
    pub fn with_seed(targets: &[Target], seed: u64) -> Result<Self, BuildError> {
        validate(targets)?;
        let cumulative = targets
            .iter()
            .scan(0u64, |acc, t| {
                *acc += u64::from(t.weight);
                Some(*acc)
            })
            .collect();
        Ok(Self {
            cumulative,
            rng: AtomicRng::new(seed),
        })
    }

    /// Number of targets.
    pub fn len(&self) -> usize {
        self.cumulative.len()
    }

    /// Whether it was built from no targets.
    pub fn is_empty(&self) -> bool {
        self.cumulative.is_empty()
    }

    fn weight(&self, idx: usize) -> u64 {
        let below = idx.checked_sub(1).map_or(0, |p| self.cumulative[p]);
        self.cumulative[idx] - below
    }

    /// A weighted random healthy target.
    pub fn pick<E: Eligible + ?Sized>(&self, health: &E) -> Option<usize> {
        let total = self.cumulative.last().copied().unwrap_or(0);
        if total == 0 {
            return None;
        }
        for _ in 0..REJECTION_TRIES {
            let r = self.rng.below(total);
            let idx = self.cumulative.partition_point(|&c| c <= r);
            if health.is_eligible(idx) {
                return Some(idx);
            }
        }
        let healthy_total: u64 = (0..self.len())
            .filter(|&i| health.is_eligible(i))
            .map(|i| self.weight(i))
            .sum();
        if healthy_total == 0 {
            return None;
        }
        let mut r = self.rng.below(healthy_total);
        for idx in (0..self.len()).filter(|&i| health.is_eligible(i)) {
            let w = self.weight(idx);
            if r < w {
                return Some(idx);
            }
            r -= w;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthSet;

    fn wr(ws: &[u32]) -> WeightedRandom {
        let t: Vec<_> = ws
            .iter()
            .enumerate()
            .map(|(i, &w)| Target::new(i, w))
            .collect();
        WeightedRandom::with_seed(&t, 42).unwrap()
    }

    fn assert_share(count: usize, picks: usize, expected: f64) {
        let share = count as f64 / picks as f64;
        assert!(
            (share - expected).abs() <= expected * 0.05,
            "share {share} not within 5% of {expected}"
        );
    }

    #[test]
    fn weighted_within_5_percent() {
        let b = wr(&[5, 3, 2]);
        let health = HealthSet::all_healthy(3);
        let mut counts = [0usize; 3];
        for _ in 0..100_000 {
            counts[b.pick(&health).unwrap()] += 1;
        }
        assert_share(counts[0], 100_000, 0.5);
        assert_share(counts[1], 100_000, 0.3);
        assert_share(counts[2], 100_000, 0.2);
    }

    #[test]
    fn same_seed_same_picks() {
        let (a, b) = (wr(&[1, 2, 3]), wr(&[1, 2, 3]));
        let health = HealthSet::all_healthy(3);
        for _ in 0..1000 {
            assert_eq!(a.pick(&health), b.pick(&health));
        }
    }

    #[test]
    fn unhealthy_targets_keep_the_others_proportional() {
        // The heavy target is down: most draws are rejected, the scan decides.
        let b = wr(&[90, 0, 3, 1]);
        let health = HealthSet::from_bools(&[false, true, true, true]);
        let mut counts = [0usize; 4];
        for _ in 0..100_000 {
            counts[b.pick(&health).unwrap()] += 1;
        }
        assert_eq!(counts[0] + counts[1], 0);
        assert_share(counts[2], 100_000, 0.75);
        assert_share(counts[3], 100_000, 0.25);
        assert_eq!(b.pick(&HealthSet::all_unhealthy(4)), None);
        assert_eq!(wr(&[]).pick(&HealthSet::all_healthy(0)), None);
        assert_eq!(wr(&[0, 0]).pick(&HealthSet::all_healthy(2)), None);
    }
}

//! Smooth weighted round-robin (nginx's algorithm), made lock-free by precomputing its sequence.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::health::Eligible;
use crate::target::{BuildError, MAX_TOTAL_WEIGHT, Target, validate, weight_gcd};

/// Smooth weighted round-robin: over every `sum(weights)` consecutive picks
/// each target is chosen exactly `weight` times, spread out rather than in
/// bursts (weights 5,1,1 give `a a b a c a a`).
///
/// nginx keeps a mutable `current_weight` per peer and updates them all under
/// a lock on every pick. Here the sequence of one full cycle is computed once
/// at build time (weights are first divided by their common divisor) and
/// picks share a single atomic counter into it, so the request path is one
/// `fetch_add`.
///
/// Unhealthy targets are skipped by taking the *next* counter value, so the
/// healthy targets keep their relative weights and their smooth order.
#[derive(Debug)]
pub struct SmoothWeightedRoundRobin {
    sequence: Box<[usize]>,
    len: usize,
    counter: AtomicUsize,
}

impl SmoothWeightedRoundRobin {
    /// Builds the cycle for `targets`.
    pub fn new(targets: &[Target]) -> Result<Self, BuildError> {
        validate(targets)?;
        let gcd = weight_gcd(targets);
        let weights: Vec<i64> = targets.iter().map(|t| i64::from(t.weight / gcd)).collect();
        let total: i64 = weights.iter().sum();
        if total.unsigned_abs() > MAX_TOTAL_WEIGHT {
            return Err(BuildError::TotalWeightTooLarge {
                total: total.unsigned_abs(),
                max: MAX_TOTAL_WEIGHT,
            });
        }
        let mut current = vec![0i64; weights.len()];
        let mut sequence = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        for _ in 0..total {
            let mut best: Option<usize> = None;
            for (i, w) in weights.iter().enumerate() {
                if *w == 0 {
                    continue;
                }
                current[i] += w;
                if best.is_none_or(|b| current[i] > current[b]) {
                    best = Some(i);
                }
            }
            if let Some(b) = best {
                current[b] -= total;
                sequence.push(b);
            }
        }
        Ok(Self {
            sequence: sequence.into_boxed_slice(),
            len: targets.len(),
            counter: AtomicUsize::new(0),
        })
    }

    /// Number of targets this balancer was built from.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it was built from no targets.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One full cycle of target indices (length = reduced sum of weights).
    pub fn sequence(&self) -> &[usize] {
        &self.sequence
    }

    /// The next healthy target in the cycle, or `None` if no target with a
    /// non-zero weight is healthy.
    pub fn pick<E: Eligible + ?Sized>(&self, health: &E) -> Option<usize> {
        let n = self.sequence.len();
        if n == 0 {
            return None;
        }
        // At most one full cycle of skips: after that every position was seen
        // (by this or a concurrent caller), so fall back to a direct scan.
        for _ in 0..n {
            let pos = self.counter.fetch_add(1, Ordering::Relaxed) % n;
            let idx = self.sequence[pos];
            if health.is_eligible(idx) {
                return Some(idx);
            }
        }
        self.sequence
            .iter()
            .copied()
            .find(|&i| health.is_eligible(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthSet;

    fn weights(ws: &[u32]) -> Vec<Target> {
        ws.iter()
            .enumerate()
            .map(|(i, &w)| Target::new(i, w))
            .collect()
    }

    #[test]
    fn five_one_one_is_smooth_and_exact() {
        let rr = SmoothWeightedRoundRobin::new(&weights(&[5, 1, 1])).unwrap();
        assert_eq!(rr.sequence(), [0, 0, 1, 0, 2, 0, 0]);
        let health = HealthSet::all_healthy(3);
        let mut counts = [0usize; 3];
        for _ in 0..7000 {
            counts[rr.pick(&health).unwrap()] += 1;
        }
        assert_eq!(counts, [5000, 1000, 1000]);
    }

    #[test]
    fn equal_weights_alternate_and_common_divisor_is_removed() {
        let rr = SmoothWeightedRoundRobin::new(&weights(&[100, 100, 100])).unwrap();
        assert_eq!(rr.sequence(), [0, 1, 2]);
    }

    #[test]
    fn zero_weight_and_unhealthy_targets_are_never_picked() {
        let rr = SmoothWeightedRoundRobin::new(&weights(&[5, 0, 1, 1])).unwrap();
        let health = HealthSet::from_bools(&[false, true, true, true]);
        let mut counts = [0usize; 4];
        for _ in 0..7000 {
            counts[rr.pick(&health).unwrap()] += 1;
        }
        // Target 0 is down and target 1 has weight 0: 2 and 3 split evenly.
        assert_eq!(counts, [0, 0, 3500, 3500]);
    }

    #[test]
    fn all_unhealthy_or_empty_gives_none() {
        let rr = SmoothWeightedRoundRobin::new(&weights(&[2, 1])).unwrap();
        assert_eq!(rr.pick(&HealthSet::all_unhealthy(2)), None);
        let empty = SmoothWeightedRoundRobin::new(&[]).unwrap();
        assert_eq!(empty.pick(&HealthSet::all_healthy(0)), None);
        let zero = SmoothWeightedRoundRobin::new(&weights(&[0, 0])).unwrap();
        assert_eq!(zero.pick(&HealthSet::all_healthy(2)), None);
    }

    #[test]
    fn huge_weight_sum_is_rejected() {
        let err = SmoothWeightedRoundRobin::new(&weights(&[u32::MAX, 1])).unwrap_err();
        assert!(matches!(err, BuildError::TotalWeightTooLarge { .. }));
    }

    #[test]
    fn concurrent_picks_sum_exactly() {
        let rr = SmoothWeightedRoundRobin::new(&weights(&[5, 1, 1])).unwrap();
        let health = HealthSet::all_healthy(3);
        let totals = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let mut c = [0usize; 3];
                        for _ in 0..10_000 {
                            c[rr.pick(&health).unwrap()] += 1;
                        }
                        c
                    })
                })
                .collect();
            let mut sum = [0usize; 3];
            for h in handles {
                let c = h.join().unwrap();
                for i in 0..3 {
                    sum[i] += c[i];
                }
            }
            sum
        });
        // 40_000 = 5714 full cycles of 7 + the first two picks of the next (a, a).
        assert_eq!(totals, [5714 * 5 + 2, 5714, 5714]);
    }
}

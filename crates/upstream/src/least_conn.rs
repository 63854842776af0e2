//! Weighted least connections over atomic in-flight counters, ties broken round-robin.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::health::Eligible;
use crate::target::{BuildError, Target, validate};

/// Picks the healthy target with the fewest requests in flight per unit of
/// weight (`in_flight / weight`, compared exactly by cross-multiplying).
///
/// Among equally loaded targets the scan starts one position further on each
/// pick, so ties rotate round-robin instead of piling onto the first target.
/// The proxy must call [`LeastConnections::on_start`] once it sends to the
/// picked target and [`LeastConnections::on_finish`] when that request ends.
#[derive(Debug)]
pub struct LeastConnections {
    weights: Box<[u32]>,
    in_flight: Box<[AtomicU64]>,
    next: AtomicUsize,
}

impl LeastConnections {
    /// A balancer over `targets`, every counter at zero.
    pub fn new(targets: &[Target]) -> Result<Self, BuildError> {
        validate(targets)?;
        Ok(Self {
            weights: targets.iter().map(|t| t.weight).collect(),
            in_flight: targets.iter().map(|_| AtomicU64::new(0)).collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// Number of targets.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Whether it was built from no targets.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Requests currently in flight to target `idx` (0 if out of range).
    pub fn in_flight(&self, idx: usize) -> u64 {
        self.in_flight
            .get(idx)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The least loaded healthy target with a non-zero weight.
    pub fn pick<E: Eligible + ?Sized>(&self, health: &E) -> Option<usize> {
        let n = self.weights.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        // (index, in_flight, weight) of the best target so far.
        let mut best: Option<(usize, u64, u32)> = None;
        for offset in 0..n {
            let idx = (start + offset) % n;
            let weight = self.weights[idx];
            if weight == 0 || !health.is_eligible(idx) {
                continue;
            }
            let load = self.in_flight[idx].load(Ordering::Relaxed);
            let better = best.is_none_or(|(_, best_load, best_weight)| {
                // load / weight < best_load / best_weight, without division.
                u128::from(load) * u128::from(best_weight)
                    < u128::from(best_load) * u128::from(weight)
            });
            if better {
                best = Some((idx, load, weight));
            }
        }
        best.map(|(idx, _, _)| idx)
    }

    /// A request to target `idx` started.
    pub fn on_start(&self, idx: usize) {
        if let Some(c) = self.in_flight.get(idx) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request to target `idx` ended (saturates at zero on unbalanced calls).
    pub fn on_finish(&self, idx: usize) {
        if let Some(c) = self.in_flight.get(idx) {
            // An Err only means the counter was already 0: nothing to undo.
            let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthSet;

    fn lc(ws: &[u32]) -> LeastConnections {
        let t: Vec<_> = ws
            .iter()
            .enumerate()
            .map(|(i, &w)| Target::new(i, w))
            .collect();
        LeastConnections::new(&t).unwrap()
    }

    #[test]
    fn prefers_the_idle_target() {
        let b = lc(&[1, 1, 1]);
        let health = HealthSet::all_healthy(3);
        for _ in 0..3 {
            b.on_start(0);
            b.on_start(2);
        }
        for _ in 0..100 {
            assert_eq!(b.pick(&health), Some(1));
        }
        b.on_start(1);
        b.on_start(1);
        b.on_start(1);
        b.on_start(1);
        assert_ne!(b.pick(&health), Some(1));
    }

    #[test]
    fn ties_rotate_round_robin() {
        let b = lc(&[1, 1, 1, 1]);
        let health = HealthSet::all_healthy(4);
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[b.pick(&health).unwrap()] += 1;
        }
        assert_eq!(counts, [1000; 4]);
    }

    #[test]
    fn load_is_divided_by_weight() {
        let b = lc(&[3, 1]);
        let health = HealthSet::all_healthy(2);
        // Simulate a steady state: always start on the pick, never finish.
        let mut counts = [0usize; 2];
        for _ in 0..400 {
            let idx = b.pick(&health).unwrap();
            b.on_start(idx);
            counts[idx] += 1;
        }
        // in_flight/weight stays level, so in-flight splits 3:1 (±1 pick).
        assert!((299..=301).contains(&counts[0]), "{counts:?}");
        assert_eq!(counts[0] + counts[1], 400);
    }

    #[test]
    fn unhealthy_and_zero_weight_are_skipped() {
        let b = lc(&[1, 0, 1]);
        let health = HealthSet::from_bools(&[false, true, true]);
        b.on_start(2);
        b.on_start(2);
        for _ in 0..100 {
            assert_eq!(b.pick(&health), Some(2));
        }
        assert_eq!(b.pick(&HealthSet::all_unhealthy(3)), None);
        assert_eq!(lc(&[]).pick(&HealthSet::all_healthy(0)), None);
    }

    #[test]
    fn finish_saturates_at_zero() {
        let b = lc(&[1]);
        b.on_finish(0);
        b.on_start(0);
        b.on_finish(0);
        b.on_finish(0);
        b.on_finish(9);
        assert_eq!(b.in_flight(0), 0);
    }
}

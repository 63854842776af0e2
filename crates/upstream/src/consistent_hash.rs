//! Ketama-style consistent hashing: a ring of virtual nodes, looked up by binary search.

use std::sync::atomic::{AtomicU64, Ordering};

use xxhash_rust::xxh3::xxh3_64;

use crate::health::Eligible;
use crate::target::{BuildError, MAX_TOTAL_WEIGHT, Target, validate};

/// Virtual nodes placed on the ring per unit of weight.
pub const VNODES_PER_WEIGHT: u32 = 160;

/// Upper bound on ring points; above it the per-weight node count is lowered.
const MAX_RING_POINTS: u64 = 1 << 20;

/// A consistent-hash ring: each target owns `VNODES_PER_WEIGHT × weight`
/// points, placed by hashing its *id* (not its index) with XXH3, so a target
/// keeps its points when others join or leave. A key is hashed the same way
/// and served by the first point clockwise from it.
///
/// Adding one target to a ring of N moves about 1/(N+1) of the keys, all of
/// them to the new target. An unhealthy target's keys go to the next healthy
/// target clockwise and come back when it recovers; other keys never move.
///
/// If the weights add up to more than 6553 the per-weight node count drops
/// below 160 (keeping the ring at about 2^20 points), which re-places all
/// points; keep weights small for stable placement.
///
/// Without a key, picks hash an internal counter instead: a weighted spread
/// with no affinity.
#[derive(Debug)]
pub struct ConsistentHash {
    /// (point hash, target index), sorted by hash then target id.
    ring: Box<[(u64, usize)]>,
    len: usize,
    counter: AtomicU64,
}

impl ConsistentHash {
    /// Builds the ring for `targets`.
    pub fn new(targets: &[Target]) -> Result<Self, BuildError> {
        let total = validate(targets)?;
        if total > MAX_TOTAL_WEIGHT {
            return Err(BuildError::TotalWeightTooLarge {
                total,
                max: MAX_TOTAL_WEIGHT,
            });
        }
        let per_weight = match total {
            0 => 0,
            t => (MAX_RING_POINTS / t).clamp(1, u64::from(VNODES_PER_WEIGHT)),
        };
        let mut ring = Vec::with_capacity(usize::try_from(total * per_weight).unwrap_or(0));
        for (idx, t) in targets.iter().enumerate() {
            let id = t.id as u64;
            for replica in 0..u64::from(t.weight) * per_weight {
                let mut buf = [0u8; 16];
                buf[..8].copy_from_slice(&id.to_le_bytes());
                buf[8..].copy_from_slice(&replica.to_le_bytes());
                ring.push((xxh3_64(&buf), idx));
            }
        }
        // Ties (vanishingly rare) resolve by id so the order does not depend on
        // the targets' order in the slice.
        ring.sort_unstable_by_key(|&(hash, idx)| (hash, targets[idx].id));
        Ok(Self {
            ring: ring.into_boxed_slice(),
            len: targets.len(),
            counter: AtomicU64::new(0),
        })
    }

    /// Number of targets.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it was built from no targets.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of virtual nodes on the ring.
    pub fn points(&self) -> usize {
        self.ring.len()
    }

    /// The target owning `key`, walking clockwise past unhealthy targets.
    pub fn pick<E: Eligible + ?Sized>(&self, key: Option<&[u8]>, health: &E) -> Option<usize> {
        let hash = match key {
            Some(k) => xxh3_64(k),
            None => xxh3_64(&self.counter.fetch_add(1, Ordering::Relaxed).to_le_bytes()),
        };
        self.pick_hash(hash, health)
    }

    /// Like [`ConsistentHash::pick`] for a key already hashed with XXH3-64.
    pub fn pick_hash<E: Eligible + ?Sized>(&self, hash: u64, health: &E) -> Option<usize> {
        let n = self.ring.len();
        if n == 0 {
            return None;
        }
        let start = self.ring.partition_point(|&(h, _)| h < hash) % n;
        let first = self.ring[start].1;
        if health.is_eligible(first) {
            return Some(first);
        }
        if (0..self.len).all(|i| !health.is_eligible(i)) {
            return None;
        }
        (1..n)
            .map(|step| self.ring[(start + step) % n].1)
            .find(|&idx| health.is_eligible(idx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthSet;

    fn ring(n: usize) -> ConsistentHash {
        let t: Vec<_> = (0..n).map(|i| Target::new(i, 1)).collect();
        ConsistentHash::new(&t).unwrap()
    }

    fn key(i: u32) -> Vec<u8> {
        format!("user-{i}").into_bytes()
    }

    #[test]
    fn same_key_same_target() {
        let (a, b) = (ring(4), ring(4));
        let health = HealthSet::all_healthy(4);
        for i in 0..1000 {
            let k = key(i);
            let first = a.pick(Some(&k), &health);
            assert!(first.is_some());
            assert_eq!(first, a.pick(Some(&k), &health));
            assert_eq!(first, b.pick(Some(&k), &health));
        }
        assert_eq!(a.points(), 4 * 160);
    }

    #[test]
    fn keys_spread_within_15_percent() {
        let r = ring(4);
        let health = HealthSet::all_healthy(4);
        let mut counts = [0usize; 4];
        for i in 0..100_000 {
            counts[r.pick(Some(&key(i)), &health).unwrap()] += 1;
        }
        for c in counts {
            assert!((21_250..=28_750).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn weights_scale_the_share() {
        let t = [Target::new(10, 3), Target::new(20, 1)];
        let r = ConsistentHash::new(&t).unwrap();
        let health = HealthSet::all_healthy(2);
        let heavy = (0..100_000)
            .filter(|&i| r.pick(Some(&key(i)), &health) == Some(0))
            .count();
        // 75% ± 5 points.
        assert!((70_000..=80_000).contains(&heavy), "{heavy}");
    }

    #[test]
    fn adding_a_fifth_target_moves_about_a_fifth_all_to_it() {
        let (four, five) = (ring(4), ring(5));
        let (h4, h5) = (HealthSet::all_healthy(4), HealthSet::all_healthy(5));
        let mut moved = 0;
        for i in 0..100_000 {
            let k = key(i);
            let before = four.pick(Some(&k), &h4).unwrap();
            let after = five.pick(Some(&k), &h5).unwrap();
            if before != after {
                moved += 1;
                assert_eq!(after, 4, "key {i} moved from {before} to {after}");
            }
        }
        assert!((15_000..=25_000).contains(&moved), "{moved}");
    }

    #[test]
    fn unhealthy_targets_are_skipped_and_others_stay_put() {
        let r = ring(4);
        let all = HealthSet::all_healthy(4);
        let degraded = HealthSet::from_bools(&[true, false, true, true]);
        for i in 0..10_000 {
            let k = key(i);
            let before = r.pick(Some(&k), &all).unwrap();
            let after = r.pick(Some(&k), &degraded).unwrap();
            assert_ne!(after, 1);
            if before != 1 {
                assert_eq!(before, after);
            }
        }
        assert_eq!(r.pick(Some(b"x"), &HealthSet::all_unhealthy(4)), None);
        assert_eq!(ring(0).pick(Some(b"x"), &HealthSet::all_healthy(0)), None);
    }

    #[test]
    fn keyless_picks_spread_over_healthy_targets() {
        let r = ring(3);
        let health = HealthSet::from_bools(&[true, true, false]);
        let mut counts = [0usize; 3];
        for _ in 0..30_000 {
            counts[r.pick(None, &health).unwrap()] += 1;
        }
        assert_eq!(counts[2], 0);
        assert!(counts[0] > 10_000 && counts[1] > 10_000, "{counts:?}");
    }
}

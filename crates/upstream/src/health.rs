//! [`HealthSet`]: a lock-free bitset of the targets that may receive traffic,
//! and [`Eligible`], what a pick asks of it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Which targets are eligible for picking, one bit per target index.
///
/// Health checks and outlier ejection flip bits with [`HealthSet::set`] while
/// requests read them in [`crate::Balancer::pick`]; both sides only touch
/// atomics. Indices beyond [`HealthSet::len`] read as unhealthy.
#[derive(Debug)]
pub struct HealthSet {
    words: Box<[AtomicU64]>,
    len: usize,
}

impl HealthSet {
    /// `len` targets, all healthy.
    pub fn all_healthy(len: usize) -> Self {
        let set = Self::all_unhealthy(len);
        for idx in 0..len {
            set.set(idx, true);
        }
        set
    }

    /// `len` targets, none healthy.
    pub fn all_unhealthy(len: usize) -> Self {
        let words = (0..len.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        Self { words, len }
    }

    /// One target per element, healthy where the element is `true`.
    pub fn from_bools(healthy: &[bool]) -> Self {
        let set = Self::all_unhealthy(healthy.len());
        for (idx, &h) in healthy.iter().enumerate() {
            set.set(idx, h);
        }
        set
    }

    /// Number of targets the set covers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set covers no targets.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Marks target `idx` healthy or unhealthy; indices out of range are ignored.
    pub fn set(&self, idx: usize, healthy: bool) {
        if idx >= self.len {
            return;
        }
        let (word, bit) = (idx / 64, 1u64 << (idx % 64));
        if let Some(w) = self.words.get(word) {
            if healthy {
                w.fetch_or(bit, Ordering::Release);
            } else {
                w.fetch_and(!bit, Ordering::Release);
            }
        }
    }

    /// Whether target `idx` may receive traffic.
    #[inline]
    pub fn is_healthy(&self, idx: usize) -> bool {
        idx < self.len
            && self
                .words
                .get(idx / 64)
                .is_some_and(|w| w.load(Ordering::Acquire) & (1u64 << (idx % 64)) != 0)
    }

    /// Number of healthy targets.
    pub fn healthy_count(&self) -> usize {
        self.words
            .iter()
            .map(|w| w.load(Ordering::Acquire).count_ones() as usize)
            .sum()
    }
}

/// Which targets a pick may choose from. [`HealthSet`] is the usual answer;
/// [`crate::Balancer::pick_where`] narrows it further (targets already tried
/// by a retry, targets whose circuit breaker is open) without the normal
/// pick paying for it: the algorithms are generic over this trait.
pub trait Eligible {
    /// Whether target `idx` may be picked.
    fn is_eligible(&self, idx: usize) -> bool;
}

impl Eligible for HealthSet {
    #[inline]
    fn is_eligible(&self, idx: usize) -> bool {
        self.is_healthy(idx)
    }
}

/// The targets `health` marks healthy and `allow` accepts.
pub(crate) struct Where<'a, F> {
    pub(crate) health: &'a HealthSet,
    pub(crate) allow: F,
}

impl<F: Fn(usize) -> bool> Eligible for Where<'_, F> {
    #[inline]
    fn is_eligible(&self, idx: usize) -> bool {
        self.health.is_healthy(idx) && (self.allow)(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_flip_and_count() {
        let h = HealthSet::all_healthy(130);
        assert_eq!(h.healthy_count(), 130);
        h.set(0, false);
        h.set(64, false);
        h.set(129, false);
        h.set(500, true);
        assert!(!h.is_healthy(0) && !h.is_healthy(64) && !h.is_healthy(129));
        assert!(h.is_healthy(1) && h.is_healthy(128));
        assert!(!h.is_healthy(130) && !h.is_healthy(500));
        assert_eq!(h.healthy_count(), 127);
        assert_eq!(
            HealthSet::from_bools(&[true, false, true]).healthy_count(),
            2
        );
    }
}

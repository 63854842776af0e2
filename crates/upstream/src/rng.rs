//! [`AtomicRng`]: a seedable SplitMix64 generator shared by threads without a lock.

use std::sync::atomic::{AtomicU64, Ordering};

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64 whose state is one atomic counter: every call is a single
/// `fetch_add`, so concurrent callers never wait and never share a draw.
/// With one caller the sequence is fully determined by the seed. Also the
/// jitter source of the proxy's retry backoff.
#[derive(Debug)]
pub struct AtomicRng {
    state: AtomicU64,
}

impl AtomicRng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    /// A seed that differs between balancers and processes, without I/O.
    pub fn entropy_seed() -> u64 {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(0x6761_7465_686f_7573_u64)
    }

    /// The next uniformly distributed value.
    #[inline]
    pub fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(GOLDEN, Ordering::Relaxed)
            .wrapping_add(GOLDEN);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (Lemire's multiply-shift; bias below 2^-32 for any
    /// bound a balancer uses). `bound` must be non-zero.
    #[inline]
    pub fn below(&self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_bounded() {
        let (a, b) = (AtomicRng::new(7), AtomicRng::new(7));
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            assert!(a.below(3) < 3);
            b.below(3);
        }
    }
}

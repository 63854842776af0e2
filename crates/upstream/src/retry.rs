//! Retry primitives: [`RetryBudget`] (how many retries a service may add
//! on top of its traffic) and [`Backoff`] (how long to wait before one).
//! Pure logic over atomics; the proxy's retry loop uses both.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Budget units per retry: deposits are kept in thousandths of a retry.
const UNIT: i64 = 1000;

/// Caps the retries a service may add: every first try deposits `ratio` of
/// a retry into a token bucket and every retry withdraws one, so retries
/// add at most `ratio` to the request rate; on top of that,
/// `min_per_second` retries per second are always allowed (so a quiet
/// service can still retry). The bucket banks the credit of at most 100
/// first tries (and at least one retry), so a long healthy period does not
/// pay for a retry storm later. Lock-free: a deposit is one load and one
/// add, a withdrawal one compare-and-swap.
#[derive(Debug)]
pub struct RetryBudget {
    deposit: i64,
    cap: i64,
    tokens: AtomicI64,
    min_per_second: u64,
    /// Current second (high 32 bits) and retries taken from its allowance
    /// (low 32 bits).
    second: AtomicU64,
    epoch: Instant,
    retried: AtomicU64,
    denied: AtomicU64,
}

impl RetryBudget {
    /// `ratio` in (0, 1] (clamped), `min_per_second` retries always allowed.
    pub fn new(ratio: f64, min_per_second: u32) -> Self {
        let deposit = (ratio.clamp(0.0, 1.0) * UNIT as f64).round() as i64;
        Self {
            deposit,
            cap: (deposit * 100).max(UNIT),
            tokens: AtomicI64::new(0),
            min_per_second: u64::from(min_per_second),
            second: AtomicU64::new(0),
            epoch: Instant::now(),
            retried: AtomicU64::new(0),
            denied: AtomicU64::new(0),
        }
    }

    /// A first try was sent: credit the bucket.
    #[inline]
    pub fn deposit(&self) {
        if self.tokens.load(Ordering::Relaxed) < self.cap {
            self.tokens.fetch_add(self.deposit, Ordering::Relaxed);
        }
    }

    /// Takes one retry from the budget at `now` (time since the budget was
    /// built); `false` (and a count in [`RetryBudget::denied`]) when it is
    /// exhausted.
    pub fn try_withdraw_at(&self, now: Duration) -> bool {
        let from_bucket = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                (t >= UNIT).then_some(t - UNIT)
            })
            .is_ok();
        let allowed = from_bucket || self.take_allowance(now.as_secs());
        if allowed {
            self.retried.fetch_add(1, Ordering::Relaxed);
        } else {
            self.denied.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }

    /// Takes one retry from the budget now.
    pub fn try_withdraw(&self) -> bool {
        self.try_withdraw_at(self.epoch.elapsed())
    }

    fn take_allowance(&self, second: u64) -> bool {
        if self.min_per_second == 0 {
            return false;
        }
        let second = second & 0xffff_ffff;
        self.second
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                let (s, used) = (w >> 32, w & 0xffff_ffff);
                if s != second {
                    Some((second << 32) | 1)
                } else if used < self.min_per_second {
                    Some((s << 32) | (used + 1))
                } else {
                    None
                }
            })
            .is_ok()
    }

    /// Retries the budget allowed so far.
    pub fn retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    /// Retries the budget refused so far.
    pub fn denied(&self) -> u64 {
        self.denied.load(Ordering::Relaxed)
    }
}

/// Exponential backoff with full jitter: before retry `n` (0 for the first
/// retry) wait a uniformly random time in `[0, min(max, base * 2^n)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The cap of the first retry's wait.
    pub base: Duration,
    /// The largest cap.
    pub max: Duration,
}

impl Backoff {
    /// The upper bound of the wait before retry `n`.
    pub fn cap(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The wait before retry `n`, given a uniformly random `random`.
    pub fn delay(&self, n: u32, random: u64) -> Duration {
        let cap = u64::try_from(self.cap(n).as_nanos()).unwrap_or(u64::MAX);
        let nanos = (u128::from(random) * (u128::from(cap) + 1)) >> 64;
        Duration::from_nanos(nanos as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_allows_that_share_of_retries() {
        let b = RetryBudget::new(0.2, 0);
        let mut allowed = 0;
        for _ in 0..1000 {
            b.deposit();
            if b.try_withdraw_at(Duration::ZERO) {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 200);
        assert_eq!(b.retried(), 200);
        assert_eq!(b.denied(), 800);
    }

    #[test]
    fn min_per_second_is_allowed_on_top_and_resets_each_second() {
        let b = RetryBudget::new(0.1, 3);
        let take = |n: usize, at: Duration| (0..n).filter(|_| b.try_withdraw_at(at)).count();
        // No deposits yet: only the per-second allowance.
        assert_eq!(take(10, Duration::from_millis(100)), 3);
        assert_eq!(take(10, Duration::from_millis(900)), 0);
        assert_eq!(take(10, Duration::from_millis(1000)), 3);
        // 20 first tries at 10% credit two more retries.
        for _ in 0..20 {
            b.deposit();
        }
        assert_eq!(take(10, Duration::from_millis(1500)), 2);
        assert_eq!(b.denied(), 7 + 10 + 7 + 8);
    }

    #[test]
    fn banked_credit_is_capped() {
        let b = RetryBudget::new(0.5, 0);
        for _ in 0..10_000 {
            b.deposit();
        }
        let allowed = (0..1000)
            .filter(|_| b.try_withdraw_at(Duration::ZERO))
            .count();
        assert_eq!(allowed, 50, "credit of 100 first tries at 50%");
        let tiny = RetryBudget::new(0.001, 0);
        for _ in 0..10_000 {
            tiny.deposit();
        }
        assert!(tiny.try_withdraw_at(Duration::ZERO), "at least one retry");
        assert!(!tiny.try_withdraw_at(Duration::ZERO));
    }

    #[test]
    fn concurrent_withdrawals_never_overdraw() {
        let b = RetryBudget::new(1.0, 0);
        for _ in 0..50 {
            b.deposit();
        }
        let taken: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..100)
                            .filter(|_| b.try_withdraw_at(Duration::ZERO))
                            .count()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(taken, 50);
    }

    #[test]
    fn backoff_caps_grow_exponentially_up_to_max() {
        let b = Backoff {
            base: Duration::from_millis(25),
            max: Duration::from_millis(250),
        };
        let caps: Vec<u64> = (0..6).map(|n| b.cap(n).as_millis() as u64).collect();
        assert_eq!(caps, [25, 50, 100, 200, 250, 250]);
        assert_eq!(b.cap(1000), Duration::from_millis(250));
    }

    #[test]
    fn jitter_stays_within_zero_and_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(80),
        };
        assert_eq!(b.delay(3, 0), Duration::ZERO);
        assert_eq!(b.delay(3, u64::MAX), Duration::from_millis(80));
        let rng = crate::AtomicRng::new(1);
        let mut max_seen = Duration::ZERO;
        let mut sum = Duration::ZERO;
        for _ in 0..10_000 {
            let d = b.delay(2, rng.next_u64());
            assert!(d <= Duration::from_millis(40));
            max_seen = max_seen.max(d);
            sum += d;
        }
        // Uniform: the mean is near half the cap, the top is reached.
        let mean = sum / 10_000;
        assert!(
            (Duration::from_millis(18)..Duration::from_millis(22)).contains(&mean),
            "{mean:?}"
        );
        assert!(max_seen > Duration::from_millis(39));
        let none = Backoff {
            base: Duration::ZERO,
            max: Duration::ZERO,
        };
        assert_eq!(none.delay(5, u64::MAX), Duration::ZERO);
    }
}

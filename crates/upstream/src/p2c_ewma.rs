//! Power of two choices over peak-EWMA latency (Finagle / linkerd style).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::health::Eligible;
use crate::rng::AtomicRng;
use crate::target::{BuildError, Target, validate};

/// Draws of a random pair rejected before falling back to a scan.
const REJECTION_TRIES: usize = 3;

/// Tuning of [`P2cEwma`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeakEwmaConfig {
    /// Time constant of the moving average: a sample's influence falls to
    /// 1/e after this long, and an idle target's estimate decays toward 0 at
    /// the same rate (so a target that was slow once is probed again).
    pub decay: Duration,
    /// Estimate a target starts with before its first response.
    pub default_rtt: Duration,
    /// A failed request counts as at least this slow, so a target that fails
    /// fast does not attract traffic.
    pub failure_penalty: Duration,
}

impl Default for PeakEwmaConfig {
    /// linkerd's defaults: 10 s decay, 30 ms starting estimate; failures
    /// count as 1 s.
    fn default() -> Self {
        Self {
            decay: Duration::from_secs(10),
            default_rtt: Duration::from_millis(30),
            failure_penalty: Duration::from_secs(1),
        }
    }
}

#[derive(Debug)]
struct TargetState {
    weight: u32,
    /// Latency estimate in nanoseconds, as `f64` bits.
    rtt_ns: AtomicU64,
    /// When `rtt_ns` was last updated, in nanoseconds since `epoch`.
    updated_ns: AtomicU64,
    in_flight: AtomicU64,
}

/// Picks two distinct random healthy targets and sends to the cheaper one,
/// where `cost = peak_ewma_latency × (in_flight + 1) / weight`.
///
/// The latency estimate is *peak*-sensitive: a response slower than the
/// current estimate replaces it at once, a faster one is blended in with a
/// weight that grows with the time since the last update. Slow or overloaded
/// targets therefore lose traffic quickly and win it back gradually.
///
/// All state is atomics. Concurrent updates of one target may each use a
/// slightly stale timestamp; the estimate stays a valid blend of samples.
/// Methods ending in `_at` take the time as a [`Duration`] since the balancer
/// was built, for callers (and tests) that control the clock.
#[derive(Debug)]
pub struct P2cEwma {
    targets: Box<[TargetState]>,
    config: PeakEwmaConfig,
    epoch: Instant,
    rng: AtomicRng,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl P2cEwma {
    /// A balancer over `targets` seeded from process entropy.
    pub fn new(targets: &[Target], config: PeakEwmaConfig) -> Result<Self, BuildError> {
        Self::with_seed(targets, config, AtomicRng::entropy_seed())
    }

    /// A balancer whose single-threaded random choices are fixed by `seed`.
    pub fn with_seed(
        targets: &[Target],
        config: PeakEwmaConfig,
        seed: u64,
    ) -> Result<Self, BuildError> {
        validate(targets)?;
        let start = (nanos(config.default_rtt) as f64).to_bits();
        Ok(Self {
            targets: targets
                .iter()
                .map(|t| TargetState {
                    weight: t.weight,
                    rtt_ns: AtomicU64::new(start),
                    updated_ns: AtomicU64::new(0),
                    in_flight: AtomicU64::new(0),
                })
                .collect(),
            config,
            epoch: Instant::now(),
            rng: AtomicRng::new(seed),
        })
    }

    /// Number of targets.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether it was built from no targets.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn decay_factor(&self, elapsed_ns: u64) -> f64 {
        let tau = nanos(self.config.decay).max(1) as f64;
        (-(elapsed_ns as f64) / tau).exp()
    }

    /// The latency estimate of target `idx` at time `now`, decayed for the
    /// time since its last update.
    pub fn latency_estimate_at(&self, idx: usize, now: Duration) -> Option<Duration> {
        let t = self.targets.get(idx)?;
        let rtt = f64::from_bits(t.rtt_ns.load(Ordering::Relaxed));
        let idle = nanos(now).saturating_sub(t.updated_ns.load(Ordering::Relaxed));
        Some(Duration::from_nanos((rtt * self.decay_factor(idle)) as u64))
    }

    /// The cost the balancer compares for target `idx` at time `now`
    /// (`None` if out of range or weight 0).
    pub fn cost_at(&self, idx: usize, now: Duration) -> Option<f64> {
        let t = self.targets.get(idx).filter(|t| t.weight > 0)?;
        let rtt = self.latency_estimate_at(idx, now)?.as_nanos() as f64;
        let pending = t.in_flight.load(Ordering::Relaxed) as f64;
        // The 1 ns floor keeps in-flight counts meaningful once idle
        // estimates have decayed to zero.
        Some(rtt.max(1.0) * (pending + 1.0) / f64::from(t.weight))
    }

    fn eligible<E: Eligible + ?Sized>(&self, idx: usize, health: &E) -> bool {
        health.is_eligible(idx) && self.targets.get(idx).is_some_and(|t| t.weight > 0)
    }

    /// Two distinct random eligible targets, or the only one, or `None`.
    fn choose_pair<E: Eligible + ?Sized>(&self, health: &E) -> Option<(usize, Option<usize>)> {
        let n = self.targets.len();
        if n >= 2 {
            for _ in 0..REJECTION_TRIES {
                let a = self.rng.below(n as u64) as usize;
                let mut b = self.rng.below(n as u64 - 1) as usize;
                if b >= a {
                    b += 1;
                }
                if self.eligible(a, health) && self.eligible(b, health) {
                    return Some((a, Some(b)));
                }
            }
        }
        let m = (0..n).filter(|&i| self.eligible(i, health)).count();
        let nth = |k: usize| (0..n).filter(|&i| self.eligible(i, health)).nth(k);
        match m {
            0 => None,
            1 => nth(0).map(|a| (a, None)),
            m => {
                let a = self.rng.below(m as u64) as usize;
                let mut b = self.rng.below(m as u64 - 1) as usize;
                if b >= a {
                    b += 1;
                }
                Some((nth(a)?, nth(b)))
            }
        }
    }

    /// The cheaper of two random healthy targets at time `now`.
    pub fn pick_at<E: Eligible + ?Sized>(&self, health: &E, now: Duration) -> Option<usize> {
        let (a, b) = self.choose_pair(health)?;
        let Some(b) = b else { return Some(a) };
        match (self.cost_at(a, now), self.cost_at(b, now)) {
            (Some(ca), Some(cb)) if cb < ca => Some(b),
            _ => Some(a),
        }
    }

    /// The cheaper of two random healthy targets, now.
    pub fn pick<E: Eligible + ?Sized>(&self, health: &E) -> Option<usize> {
        self.pick_at(health, self.now())
    }

    /// A request to target `idx` started.
    pub fn on_start(&self, idx: usize) {
        if let Some(t) = self.targets.get(idx) {
            t.in_flight.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request to target `idx` ended after `latency`; records the sample.
    pub fn on_finish(&self, idx: usize, latency: Duration, ok: bool) {
        self.on_finish_at(idx, latency, ok, self.now());
    }

    /// [`P2cEwma::on_finish`] at time `now`.
    pub fn on_finish_at(&self, idx: usize, latency: Duration, ok: bool, now: Duration) {
        if let Some(t) = self.targets.get(idx) {
            // An Err only means the counter was already 0: nothing to undo.
            let _ = t
                .in_flight
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        }
        self.observe_at(idx, latency, ok, now);
    }

    /// Records a latency sample for target `idx` at time `now` without
    /// touching the in-flight count.
    pub fn observe_at(&self, idx: usize, latency: Duration, ok: bool, now: Duration) {
        let Some(t) = self.targets.get(idx) else {
            return;
        };
        let latency = if ok {
            latency
        } else {
            latency.max(self.config.failure_penalty)
        };
        let sample = nanos(latency) as f64;
        let now_ns = nanos(now);
        let last = t.updated_ns.fetch_max(now_ns, Ordering::Relaxed);
        let decay = self.decay_factor(now_ns.saturating_sub(last));
        // The closure always returns Some, so this cannot fail.
        let _ = t
            .rtt_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let current = f64::from_bits(bits);
                let next = if sample > current {
                    sample
                } else {
                    current * decay + sample * (1.0 - decay)
                };
                Some(next.to_bits())
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthSet;

    const MS: Duration = Duration::from_millis(1);

    fn p2c(n: usize) -> P2cEwma {
        let t: Vec<_> = (0..n).map(|i| Target::new(i, 1)).collect();
        P2cEwma::with_seed(&t, PeakEwmaConfig::default(), 7).unwrap()
    }

    /// Runs `picks` requests with up to 8 in flight, one pick per ms; a
    /// request to target `i` takes `latency(i)`.
    fn simulate(b: &P2cEwma, latency: impl Fn(usize) -> Duration, picks: usize) -> Vec<usize> {
        let health = HealthSet::all_healthy(b.len());
        let mut counts = vec![0; b.len()];
        let mut in_flight = std::collections::VecDeque::new();
        let start = Duration::from_secs(100);
        for step in 0..picks {
            let now = start + MS * step as u32;
            let idx = b.pick_at(&health, now).unwrap();
            b.on_start(idx);
            counts[idx] += 1;
            in_flight.push_back(idx);
            if in_flight.len() > 8
                && let Some(done) = in_flight.pop_front()
            {
                b.on_finish_at(done, latency(done), true, now);
            }
        }
        counts
    }

    #[test]
    fn without_samples_traffic_is_even() {
        let b = p2c(4);
        let counts = simulate(&b, |_| 10 * MS, 10_000);
        for c in &counts {
            assert!((2_000..=3_000).contains(c), "{counts:?}");
        }
    }

    #[test]
    fn ten_times_slower_target_gets_under_20_percent() {
        let b = p2c(4);
        let latency = |i: usize| if i == 0 { 100 * MS } else { 10 * MS };
        // One sample per target per second for 100 s: the estimates settle.
        for step in 0..100 {
            for i in 0..4 {
                b.observe_at(i, latency(i), true, Duration::from_secs(step));
            }
        }
        let counts = simulate(&b, latency, 10_000);
        assert!(counts[0] < 2_000, "{counts:?}");
        assert!(counts[1..].iter().all(|&c| c > 2_500), "{counts:?}");
    }

    #[test]
    fn peaks_apply_at_once_and_idle_estimates_decay() {
        let b = p2c(2);
        let t0 = Duration::from_secs(1);
        b.observe_at(0, 500 * MS, true, t0);
        assert_eq!(b.latency_estimate_at(0, t0), Some(500 * MS));
        // One time constant later the estimate is down to 1/e.
        let later = b
            .latency_estimate_at(0, t0 + Duration::from_secs(10))
            .unwrap();
        assert!((later.as_secs_f64() - 0.5 / std::f64::consts::E).abs() < 1e-3);
        // A fast sample right after a slow one barely moves the estimate...
        b.observe_at(0, MS, true, t0 + MS);
        assert!(b.latency_estimate_at(0, t0 + MS).unwrap() > 490 * MS);
        // ...and a failure counts as the penalty.
        b.observe_at(1, MS, false, t0);
        assert_eq!(b.latency_estimate_at(1, t0), Some(Duration::from_secs(1)));
    }

    #[test]
    fn in_flight_raises_cost() {
        let b = p2c(2);
        let health = HealthSet::all_healthy(2);
        for _ in 0..3 {
            b.on_start(0);
        }
        for _ in 0..100 {
            assert_eq!(b.pick_at(&health, Duration::ZERO), Some(1));
        }
    }

    #[test]
    fn unhealthy_targets_are_never_picked() {
        let b = p2c(5);
        let health = HealthSet::from_bools(&[false, true, false, false, true]);
        for _ in 0..1000 {
            let idx = b.pick(&health).unwrap();
            assert!(idx == 1 || idx == 4);
        }
        let one = HealthSet::from_bools(&[false, false, true, false, false]);
        assert_eq!(b.pick(&one), Some(2));
        assert_eq!(b.pick(&HealthSet::all_unhealthy(5)), None);
        assert_eq!(p2c(0).pick(&HealthSet::all_healthy(0)), None);
    }
}

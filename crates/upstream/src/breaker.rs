//! [`Breaker`]: a lock-free circuit breaker (closed → open → half-open →
//! closed or open again) over a sliding window of request outcomes.
//!
//! The proxy keeps one per service and, optionally, one per target. Every
//! method takes `&self` and touches only atomics. Time is passed in as the
//! duration since the breaker was built (`*_at` methods), so tests drive it
//! with a fake clock; the plain methods read the real one.
//!
//! - **Closed**: every request is admitted; outcomes go into a sliding
//!   window of [`BUCKETS`] buckets. When a failure brings the window to at
//!   least `min_requests` requests with `failures / requests >=
//!   failure_ratio`, the breaker opens.
//! - **Open**: requests are rejected with the time left until half-open.
//! - **Half-open** (after `open_for`): at most `half_open_requests` probes
//!   are admitted (in flight plus already succeeded); the rest are rejected.
//!   When that many probes have succeeded the breaker closes with an empty
//!   window; any probe failure opens it again for another `open_for`.
//!
//! Admission returns a [`Ticket`]; its outcome is reported with
//! [`Breaker::record`], or [`Breaker::release`] when there is none (the
//! request was cancelled, or failed on the client's side). Tickets carry a
//! generation, so late outcomes from an earlier phase are ignored.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Buckets of the sliding window; each covers `window / BUCKETS`.
pub const BUCKETS: usize = 10;

/// Settings of a breaker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Open when `failures / requests` in the window reaches this (0, 1].
    pub failure_ratio: f64,
    /// ... and the window holds at least this many requests (≥ 1).
    pub min_requests: u32,
    /// Length of the sliding window.
    pub window: Duration,
    /// How long the breaker stays open before probing.
    pub open_for: Duration,
    /// Probes admitted in half-open; all must succeed to close (1..=65535).
    pub half_open_requests: u16,
}

/// The state a breaker is in, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Admitting everything, counting outcomes.
    Closed,
    /// Rejecting everything.
    Open,
    /// Admitting a few probes.
    HalfOpen,
}

/// Permission to send one request; report its outcome with
/// [`Breaker::record`] or give it back with [`Breaker::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Ticket {
    generation: u64,
    probe: bool,
}

impl Ticket {
    /// Whether this request is a half-open probe.
    pub fn is_probe(self) -> bool {
        self.probe
    }
}

/// A rejected admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// Time until the breaker lets probes through; zero when it is
    /// half-open and all probes are taken.
    pub retry_after: Duration,
}

// State word: mode (2 bits) | generation (14 bits) | payload (32 bits).
// Open: payload = opened-at in ms since the epoch, modulo 2^32 (elapsed
// time is computed with wrapping arithmetic, exact up to ~49 days).
// Half-open: payload = in-flight probes (16 bits) | successes (16 bits).
const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
const GEN_BITS: u32 = 14;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;

fn mode(s: u64) -> u64 {
    s & 0b11
}
fn generation(s: u64) -> u64 {
    (s >> 2) & GEN_MASK
}
fn payload(s: u64) -> u64 {
    s >> 16
}
fn pack(mode: u64, generation: u64, payload: u64) -> u64 {
    mode | ((generation & GEN_MASK) << 2) | ((payload & 0xffff_ffff) << 16)
}
fn half_open(generation: u64, in_flight: u64, successes: u64) -> u64 {
    pack(
        HALF_OPEN,
        generation,
        (in_flight & 0xffff) | ((successes & 0xffff) << 16),
    )
}
fn probes(s: u64) -> (u64, u64) {
    (payload(s) & 0xffff, payload(s) >> 16)
}

// Bucket word: stamp (22 bits) | requests (21 bits) | failures (21 bits).
// The stamp is the bucket's absolute index modulo 2^22.
const STAMP_BITS: u32 = 22;
const STAMP_MASK: u64 = (1 << STAMP_BITS) - 1;
const COUNT_MASK: u64 = (1 << 21) - 1;

fn bucket(stamp: u64, requests: u64, failures: u64) -> u64 {
    ((stamp & STAMP_MASK) << 42) | ((requests & COUNT_MASK) << 21) | (failures & COUNT_MASK)
}
fn bucket_parts(w: u64) -> (u64, u64, u64) {
    (w >> 42, (w >> 21) & COUNT_MASK, w & COUNT_MASK)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One circuit breaker. `Send + Sync`, lock-free.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    bucket_ms: u64,
    open_for_ms: u64,
    epoch: Instant,
    state: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self::with_epoch(config, Instant::now())
    }

    /// A closed breaker whose clock ([`Breaker::now`]) counts from `epoch`,
    /// so breakers built together can share one reading of the time.
    pub fn with_epoch(config: BreakerConfig, epoch: Instant) -> Self {
        Self {
            bucket_ms: (millis(config.window) / BUCKETS as u64).max(1),
            // Elapsed open time is measured modulo 2^32 ms.
            open_for_ms: millis(config.open_for).min(u64::from(u32::MAX >> 1)),
            config,
            epoch,
            state: AtomicU64::new(pack(CLOSED, 0, 0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The real clock, as the `now` the `*_at` methods take.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// The current state at time `now` (an open breaker whose `open_for`
    /// has passed reads as half-open).
    pub fn state_at(&self, now: Duration) -> State {
        let s = self.state.load(Ordering::Acquire);
        match mode(s) {
            CLOSED => State::Closed,
            OPEN if self.open_left(s, now).is_none() => State::HalfOpen,
            OPEN => State::Open,
            _ => State::HalfOpen,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state_at(self.now())
    }

    /// Time left in the open state, `None` when it is over.
    fn open_left(&self, s: u64, now: Duration) -> Option<Duration> {
        let opened = payload(s) as u32;
        let elapsed = u64::from((millis(now) as u32).wrapping_sub(opened));
        (elapsed < self.open_for_ms).then(|| Duration::from_millis(self.open_for_ms - elapsed))
    }

    /// Whether [`Breaker::try_acquire_at`] would admit a request now,
    /// without taking anything (for filtering targets before a pick).
    pub fn may_admit_at(&self, now: Duration) -> bool {
        let s = self.state.load(Ordering::Acquire);
        match mode(s) {
            CLOSED => true,
            OPEN => self.open_left(s, now).is_none(),
            _ => {
                let (in_flight, ok) = probes(s);
                in_flight + ok < u64::from(self.config.half_open_requests)
            }
        }
    }

    /// The time until this breaker admits probes (zero if it admits now or
    /// is half-open).
    pub fn retry_after_at(&self, now: Duration) -> Duration {
        let s = self.state.load(Ordering::Acquire);
        if mode(s) == OPEN {
            self.open_left(s, now).unwrap_or_default()
        } else {
            Duration::ZERO
        }
    }

    /// Asks to send one request at time `now`.
    pub fn try_acquire_at(&self, now: Duration) -> Result<Ticket, Rejected> {
        let limit = u64::from(self.config.half_open_requests);
        loop {
            let s = self.state.load(Ordering::Acquire);
            let g = generation(s);
            let (next, ticket) = match mode(s) {
                CLOSED => {
                    return Ok(Ticket {
                        generation: g,
                        probe: false,
                    });
                }
                OPEN => {
                    if let Some(left) = self.open_left(s, now) {
                        return Err(Rejected { retry_after: left });
                    }
                    // Open long enough: this request is the first probe.
                    let g = (g + 1) & GEN_MASK;
                    (half_open(g, 1, 0), g)
                }
                _ => {
                    let (in_flight, ok) = probes(s);
                    if in_flight + ok >= limit {
                        return Err(Rejected {
                            retry_after: Duration::ZERO,
                        });
                    }
                    (half_open(g, in_flight + 1, ok), g)
                }
            };
            if self
                .state
                .compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Ok(Ticket {
                    generation: ticket,
                    probe: true,
                });
            }
        }
    }

    /// Asks to send one request now.
    pub fn try_acquire(&self) -> Result<Ticket, Rejected> {
        self.try_acquire_at(self.now())
    }

    /// Reports the outcome of an admitted request at time `now`. Returns
    /// the new state when this outcome changed it (for logs).
    pub fn record_at(&self, ticket: Ticket, ok: bool, now: Duration) -> Option<State> {
        if ticket.probe {
            return self.record_probe(ticket, ok, now);
        }
        let s = self.state.load(Ordering::Acquire);
        if mode(s) != CLOSED || generation(s) != ticket.generation {
            return None; // an outcome from before the breaker last opened
        }
        let idx = millis(now) / self.bucket_ms;
        self.count(idx, ok);
        if ok {
            return None;
        }
        let (requests, failures) = self.window(idx);
        if requests >= u64::from(self.config.min_requests)
            && failures as f64 >= self.config.failure_ratio * requests as f64
        {
            let open = pack(OPEN, generation(s) + 1, millis(now) & 0xffff_ffff);
            // Losing the race means another outcome already moved it on.
            return self
                .state
                .compare_exchange(s, open, Ordering::AcqRel, Ordering::Acquire)
                .ok()
                .map(|_| State::Open);
        }
        None
    }

    /// Reports the outcome of an admitted request now.
    pub fn record(&self, ticket: Ticket, ok: bool) -> Option<State> {
        self.record_at(ticket, ok, self.now())
    }

    /// Gives back a ticket whose request has no outcome to report
    /// (cancelled, or failed on the client's side): a probe frees its slot.
    pub fn release(&self, ticket: Ticket) {
        if !ticket.probe {
            return;
        }
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                if mode(s) != HALF_OPEN || generation(s) != ticket.generation {
                    return None;
                }
                let (in_flight, ok) = probes(s);
                Some(half_open(generation(s), in_flight.saturating_sub(1), ok))
            });
    }

    fn record_probe(&self, ticket: Ticket, ok: bool, now: Duration) -> Option<State> {
        let limit = u64::from(self.config.half_open_requests);
        let mut closed = false;
        let updated = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                if mode(s) != HALF_OPEN || generation(s) != ticket.generation {
                    return None;
                }
                let g = generation(s);
                if !ok {
                    closed = false;
                    return Some(pack(OPEN, g + 1, millis(now) & 0xffff_ffff));
                }
                let (in_flight, successes) = probes(s);
                if successes + 1 >= limit {
                    closed = true;
                    Some(pack(CLOSED, g + 1, 0))
                } else {
                    closed = false;
                    Some(half_open(g, in_flight.saturating_sub(1), successes + 1))
                }
            });
        if updated.is_err() {
            return None;
        }
        if closed {
            // A fresh start: failures from before the breaker opened must
            // not count again.
            for b in &self.buckets {
                b.store(0, Ordering::Relaxed);
            }
            Some(State::Closed)
        } else if ok {
            None
        } else {
            Some(State::Open)
        }
    }

    fn count(&self, idx: u64, ok: bool) {
        let stamp = idx & STAMP_MASK;
        let fail = u64::from(!ok);
        let slot = &self.buckets[(idx % BUCKETS as u64) as usize];
        let _ = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
            let (s, requests, failures) = bucket_parts(w);
            Some(if s == stamp {
                bucket(
                    stamp,
                    (requests + 1).min(COUNT_MASK),
                    (failures + fail).min(COUNT_MASK),
                )
            } else {
                bucket(stamp, 1, fail)
            })
        });
    }

    /// Requests and failures in the window ending with bucket `idx`.
    fn window(&self, idx: u64) -> (u64, u64) {
        let current = idx & STAMP_MASK;
        self.buckets
            .iter()
            .map(|b| bucket_parts(b.load(Ordering::Acquire)))
            .filter(|&(stamp, _, _)| current.wrapping_sub(stamp) & STAMP_MASK < BUCKETS as u64)
            .fold((0, 0), |(r, f), (_, requests, failures)| {
                (r + requests, f + failures)
            })
    }

    /// Requests and failures in the window at time `now` (for tests and
    /// diagnostics).
    pub fn window_at(&self, now: Duration) -> (u64, u64) {
        self.window(millis(now) / self.bucket_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn breaker(min_requests: u32, half_open: u16) -> Breaker {
        Breaker::new(BreakerConfig {
            failure_ratio: 0.5,
            min_requests,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(30),
            half_open_requests: half_open,
        })
    }

    /// Admits and records one request at `now`.
    fn call(b: &Breaker, ok: bool, now: Duration) -> Result<(), Rejected> {
        let t = b.try_acquire_at(now)?;
        let _ = b.record_at(t, ok, now);
        Ok(())
    }

    #[test]
    fn opens_only_at_min_requests_and_ratio() {
        let b = breaker(4, 1);
        // 3 failures: ratio 1.0 but below min_requests.
        for i in 0..3 {
            call(&b, false, ms(i)).unwrap();
        }
        assert_eq!(b.state_at(ms(3)), State::Closed);
        // A success keeps it closed; the next failure makes 4/5 ≥ 0.5.
        call(&b, true, ms(4)).unwrap();
        assert_eq!(b.state_at(ms(4)), State::Closed);
        let t = b.try_acquire_at(ms(5)).unwrap();
        assert_eq!(b.record_at(t, false, ms(5)), Some(State::Open));
        assert_eq!(b.state_at(ms(5)), State::Open);
        let rejected = b.try_acquire_at(ms(1005)).unwrap_err();
        assert_eq!(rejected.retry_after, ms(29_000));
        assert!(!b.may_admit_at(ms(1005)));
    }

    #[test]
    fn successes_below_the_ratio_keep_it_closed() {
        let b = breaker(4, 1);
        for i in 0..100 {
            // 1 failure in 3: below 0.5.
            call(&b, i % 3 != 2, ms(i)).unwrap();
        }
        assert_eq!(b.state_at(ms(100)), State::Closed);
        assert_eq!(b.window_at(ms(100)), (100, 33));
    }

    #[test]
    fn old_failures_slide_out_of_the_window() {
        let b = breaker(4, 1);
        for i in 0..3 {
            call(&b, false, ms(i)).unwrap();
        }
        assert_eq!(b.window_at(ms(9_999)), (3, 3));
        // 10 s later the first bucket has left the window.
        assert_eq!(b.window_at(ms(10_000)), (0, 0));
        call(&b, false, ms(10_000)).unwrap();
        assert_eq!(b.state_at(ms(10_000)), State::Closed, "only 1 in window");
    }

    #[test]
    fn half_open_admits_limited_probes_and_closes_when_all_succeed() {
        let b = breaker(2, 2);
        call(&b, false, ms(0)).unwrap();
        call(&b, false, ms(1)).unwrap();
        assert_eq!(b.state_at(ms(1)), State::Open);
        assert!(b.try_acquire_at(ms(29_000)).is_err());
        // After open_for: half-open, two probes, a third is turned away.
        let at = ms(30_001);
        assert_eq!(b.state_at(at), State::HalfOpen);
        assert!(b.may_admit_at(at));
        let p1 = b.try_acquire_at(at).unwrap();
        let p2 = b.try_acquire_at(at).unwrap();
        assert!(p1.is_probe() && p2.is_probe());
        assert_eq!(
            b.try_acquire_at(at).unwrap_err().retry_after,
            Duration::ZERO
        );
        assert!(!b.may_admit_at(at));
        assert_eq!(b.record_at(p1, true, at), None);
        // One success, one in flight: still no room for a third probe.
        assert!(b.try_acquire_at(at).is_err());
        assert_eq!(b.record_at(p2, true, at), Some(State::Closed));
        assert_eq!(b.state_at(at), State::Closed);
        // Closed with an empty window: one failure does not reopen it.
        assert_eq!(b.window_at(at), (0, 0));
        call(&b, false, at).unwrap();
        assert_eq!(b.state_at(at), State::Closed);
    }

    #[test]
    fn a_failed_probe_reopens_for_another_period() {
        let b = breaker(1, 3);
        call(&b, false, ms(0)).unwrap();
        assert_eq!(b.state_at(ms(0)), State::Open);
        let p = b.try_acquire_at(ms(30_000)).unwrap();
        let other = b.try_acquire_at(ms(30_000)).unwrap();
        assert_eq!(b.record_at(p, false, ms(30_500)), Some(State::Open));
        assert_eq!(b.state_at(ms(30_500)), State::Open);
        assert_eq!(
            b.try_acquire_at(ms(31_000)).unwrap_err().retry_after,
            ms(29_500)
        );
        // A late outcome of the other probe belongs to an old phase.
        assert_eq!(b.record_at(other, true, ms(31_000)), None);
        assert_eq!(b.state_at(ms(31_000)), State::Open);
        assert_eq!(b.state_at(ms(60_500)), State::HalfOpen);
    }

    #[test]
    fn released_probes_free_their_slot() {
        let b = breaker(1, 1);
        call(&b, false, ms(0)).unwrap();
        let p = b.try_acquire_at(ms(30_000)).unwrap();
        assert!(b.try_acquire_at(ms(30_000)).is_err());
        b.release(p);
        let p = b.try_acquire_at(ms(30_000)).unwrap();
        assert_eq!(b.record_at(p, true, ms(30_000)), Some(State::Closed));
        assert_eq!(b.state_at(ms(30_000)), State::Closed);
    }

    #[test]
    fn outcomes_from_before_the_breaker_opened_are_ignored() {
        let b = breaker(2, 1);
        let early = b.try_acquire_at(ms(0)).unwrap();
        call(&b, false, ms(0)).unwrap();
        call(&b, false, ms(0)).unwrap();
        assert_eq!(b.state_at(ms(0)), State::Open);
        // Through half-open back to closed.
        let p = b.try_acquire_at(ms(30_000)).unwrap();
        assert_eq!(b.record_at(p, true, ms(30_000)), Some(State::Closed));
        assert_eq!(b.state_at(ms(30_000)), State::Closed);
        assert_eq!(b.record_at(early, false, ms(30_001)), None);
        assert_eq!(b.window_at(ms(30_001)), (0, 0));
    }

    #[test]
    fn concurrent_outcomes_open_it() {
        let b = breaker(20, 3);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..1000 {
                        let _ = call(&b, i % 2 == 0, ms(5));
                    }
                });
            }
        });
        assert_eq!(b.state_at(ms(5)), State::Open);
        assert_eq!(b.retry_after_at(ms(5)), ms(30_000));
    }

    #[test]
    fn tiny_windows_still_have_one_millisecond_buckets() {
        let b = Breaker::new(BreakerConfig {
            failure_ratio: 1.0,
            min_requests: 1,
            window: Duration::from_millis(5),
            open_for: ms(1),
            half_open_requests: 1,
        });
        call(&b, false, ms(0)).unwrap();
        assert_eq!(b.state_at(ms(0)), State::Open);
        assert_eq!(b.state_at(ms(1)), State::HalfOpen);
    }
}

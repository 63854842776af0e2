//! Circuit breakers of one service, compiled from `circuit_breaker`: one
//! breaker for the service and, with `per_target`, one per target (the
//! balancer skips targets whose breaker is open). Breaker state lives in
//! the snapshot, so a reload starts every breaker closed. The state machine
//! itself is `gatehouse_upstream::Breaker`; this module adds the failure
//! statuses, the 503 `circuit-open` problem and [`Admission`], the guard that
//! reports an attempt's outcome or gives its ticket back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_core::{Problem, ProblemType};
use gatehouse_upstream::{Breaker, BreakerConfig, BreakerState, Ticket};
use http::HeaderValue;
use http::header;
use http::uri::Authority;

use crate::retry::StatusSet;

/// The breakers of one service.
pub struct Breakers {
    service_name: Arc<str>,
    /// The service's breaker.
    pub service: Breaker,
    /// One breaker per target (by balancer index), with `per_target`.
    pub targets: Option<Box<[Breaker]>>,
    target_names: Vec<Authority>,
    failure_statuses: StatusSet,
    epoch: Instant,
}

impl Breakers {
    /// From validated config, for a service with `targets`.
    pub fn new(
        c: &gatehouse_config::CircuitBreaker,
        service_name: Arc<str>,
        targets: &[Authority],
    ) -> Self {
        let config = BreakerConfig {
            failure_ratio: c.failure_ratio,
            min_requests: c.min_requests,
            window: c.window,
            open_for: c.open_for,
            half_open_requests: u16::try_from(c.half_open_requests).unwrap_or(u16::MAX),
        };
        let epoch = Instant::now();
        Self {
            service_name,
            service: Breaker::with_epoch(config, epoch),
            targets: c.per_target.then(|| {
                targets
                    .iter()
                    .map(|_| Breaker::with_epoch(config, epoch))
                    .collect()
            }),
            target_names: targets.to_vec(),
            failure_statuses: StatusSet::new(c.failure_statuses.iter().copied()),
            epoch,
        }
    }

    /// The `now` every breaker of this service reads.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Whether a response with `status` counts as a failure.
    pub fn is_failure(&self, status: u16) -> bool {
        self.failure_statuses.contains(status)
    }

    /// Admits one attempt to the service, or the 503 `circuit-open` problem.
    pub(crate) fn admit_service(&self) -> Result<Admission<'_>, Problem> {
        match self.service.try_acquire_at(self.now()) {
            Ok(ticket) => Ok(Admission {
                breakers: self,
                target: None,
                ticket: Some(ticket),
            }),
            Err(rejected) => Err(circuit_open(
                format!("the circuit breaker of `{}` is open", self.service_name),
                rejected.retry_after,
            )),
        }
    }

    /// Admits one attempt to target `idx` (with `per_target`); `None` when
    /// its breaker refuses (it may have opened since the pick looked).
    pub(crate) fn admit_target(&self, idx: usize) -> Option<Admission<'_>> {
        let breaker = self.targets.as_deref()?.get(idx)?;
        let ticket = breaker.try_acquire_at(self.now()).ok()?;
        Some(Admission {
            breakers: self,
            target: Some(idx),
            ticket: Some(ticket),
        })
    }

    /// Whether target `idx`'s breaker would admit a request now (always,
    /// without per-target breakers).
    pub(crate) fn target_may_admit(&self, idx: usize, now: Duration) -> bool {
        self.targets
            .as_deref()
            .and_then(|t| t.get(idx))
            .is_none_or(|b| b.may_admit_at(now))
    }

    /// The problem when no target can be picked because breakers are open:
    /// `Some` if some healthy target is held back by its breaker.
    pub(crate) fn targets_open_problem(&self, healthy: impl Fn(usize) -> bool) -> Option<Problem> {
        let targets = self.targets.as_deref()?;
        let now = self.now();
        let wait = targets
            .iter()
            .enumerate()
            .filter(|&(i, b)| healthy(i) && !b.may_admit_at(now))
            .map(|(_, b)| b.retry_after_at(now))
            .min()?;
        Some(circuit_open(
            format!(
                "the circuit breakers of every available target of `{}` are open",
                self.service_name
            ),
            wait,
        ))
    }

    fn breaker(&self, target: Option<usize>) -> Option<&Breaker> {
        match target {
            None => Some(&self.service),
            Some(i) => self.targets.as_deref()?.get(i),
        }
    }

    fn log(&self, target: Option<usize>, state: BreakerState) {
        let target = target.and_then(|i| self.target_names.get(i));
        match (state, target) {
            (BreakerState::Open, None) => {
                tracing::warn!(service = %self.service_name, "circuit breaker opened")
            }
            (BreakerState::Open, Some(t)) => {
                tracing::warn!(service = %self.service_name, target = %t, "target circuit breaker opened")
            }
            (_, None) => tracing::info!(service = %self.service_name, "circuit breaker closed"),
            (_, Some(t)) => {
                tracing::info!(service = %self.service_name, target = %t, "target circuit breaker closed")
            }
        }
    }
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
pub(crate) fn retry_after(wait: Duration) -> HeaderValue {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

fn circuit_open(detail: String, wait: Duration) -> Problem {
    Problem::new(ProblemType::CircuitOpen)
        .detail(detail)
        .header(header::RETRY_AFTER, retry_after(wait))
}

/// One admitted attempt: report its outcome with [`Admission::record`];
/// dropped unreported (cancelled, or failed on the client's side) it gives
/// its ticket back, so a half-open probe slot is never lost.
pub(crate) struct Admission<'a> {
    breakers: &'a Breakers,
    target: Option<usize>,
    ticket: Option<Ticket>,
}

impl Admission<'_> {
    /// Reports the attempt's outcome (`ok`: not a failure).
    pub(crate) fn record(mut self, ok: bool) {
        if let (Some(ticket), Some(b)) = (self.ticket.take(), self.breakers.breaker(self.target))
            && let Some(state) = b.record_at(ticket, ok, self.breakers.now())
        {
            self.breakers.log(self.target, state);
        }
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if let (Some(ticket), Some(b)) = (self.ticket.take(), self.breakers.breaker(self.target)) {
            b.release(ticket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_at_least_one() {
        assert_eq!(retry_after(Duration::ZERO), "1");
        assert_eq!(retry_after(Duration::from_millis(300)), "1");
        assert_eq!(retry_after(Duration::from_millis(1001)), "2");
        assert_eq!(retry_after(Duration::from_secs(30)), "30");
    }
}

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

use crate::retry_policy::StatusSet;
use crate::targets::TargetSet;

/// The circuit breakers of one service: the service's own here; with
/// `per_target`, one per target in each [`TargetSet`] (built with the set,
/// carried over by address when DNS discovery replaces it).
pub struct Breakers {
    service_name: Arc<str>,
    /// The service's breaker.
    pub service: Breaker,
    /// Whether each target has a breaker too.
    pub per_target: bool,
    failure_statuses: StatusSet,
    epoch: Instant,
}

/// The settings shared by a service's breakers, from validated config.
pub fn breaker_config(c: &gatehouse_config::CircuitBreaker) -> BreakerConfig {
    BreakerConfig {
        failure_ratio: c.failure_ratio,
        min_requests: c.min_requests,
        window: c.window,
        open_for: c.open_for,
        half_open_requests: u16::try_from(c.half_open_requests).unwrap_or(u16::MAX),
    }
}

impl Breakers {
    /// From validated config; every breaker of the service (its targets'
    /// too) reads its clock from `epoch`.
    pub fn new(
        c: &gatehouse_config::CircuitBreaker,
        service_name: Arc<str>,
        epoch: Instant,
    ) -> Self {
        Self {
            service_name,
            service: Breaker::with_epoch(breaker_config(c), epoch),
            per_target: c.per_target,
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
                breaker: &self.service,
                target: None,
                ticket: Some(ticket),
            }),
            Err(rejected) => Err(circuit_open(
                format!("the circuit breaker of `{}` is open", self.service_name),
                rejected.retry_after,
            )),
        }
    }

    /// Admits one attempt to target `idx` of `set` (with `per_target`);
    /// `None` when its breaker refuses (it may have opened since the pick
    /// looked).
    pub(crate) fn admit_target<'a>(
        &'a self,
        set: &'a TargetSet,
        idx: usize,
    ) -> Option<Admission<'a>> {
        let breaker = set.breakers.as_deref()?.get(idx)?;
        let ticket = breaker.try_acquire_at(self.now()).ok()?;
        Some(Admission {
            breakers: self,
            breaker,
            target: set.targets.get(idx),
            ticket: Some(ticket),
        })
    }

    /// Whether target `idx`'s breaker would admit a request now (always,
    /// without per-target breakers).
    pub(crate) fn target_may_admit(set: &TargetSet, idx: usize, now: Duration) -> bool {
        set.breakers
            .as_deref()
            .and_then(|t| t.get(idx))
            .is_none_or(|b| b.may_admit_at(now))
    }

    /// The problem when no target of `set` can be picked because breakers
    /// are open: `Some` if some healthy target is held back by its breaker.
    pub(crate) fn targets_open_problem(
        &self,
        set: &TargetSet,
        healthy: impl Fn(usize) -> bool,
    ) -> Option<Problem> {
        let targets = set.breakers.as_deref()?;
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

    fn log(&self, target: Option<&Authority>, state: BreakerState) {
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
    breaker: &'a Breaker,
    /// The target's address; `None` for the service's breaker.
    target: Option<&'a Authority>,
    ticket: Option<Ticket>,
}

impl Admission<'_> {
    /// Reports the attempt's outcome (`ok`: not a failure).
    pub(crate) fn record(mut self, ok: bool) {
        if let Some(ticket) = self.ticket.take()
            && let Some(state) = self.breaker.record_at(ticket, ok, self.breakers.now())
        {
            self.breakers.log(self.target, state);
        }
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.breaker.release(ticket);
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

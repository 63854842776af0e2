//! What a service's `retries` and a route's overrides compile to, and the
//! policy in force for one request. Plain data: the attempt loop that uses
//! it is in `retry`, and the circuit breakers share [`StatusSet`].

use std::time::Duration;

use gatehouse_config::{RetryCondition, RouteRetries};
use gatehouse_upstream::Backoff;
use http::Method;

/// A set of HTTP statuses (100-639), one bit each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusSet([u64; 10]);

impl StatusSet {
    /// The set of `statuses` (values above 639 are ignored).
    pub fn new(statuses: impl IntoIterator<Item = u16>) -> Self {
        let mut set = Self::default();
        for s in statuses {
            set.insert(s);
        }
        set
    }

    fn insert(&mut self, status: u16) {
        if let Some(w) = self.0.get_mut(usize::from(status / 64)) {
            *w |= 1 << (status % 64);
        }
    }

    /// Whether no status is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// Whether `status` is in the set.
    #[inline]
    pub fn contains(&self, status: u16) -> bool {
        self.0
            .get(usize::from(status / 64))
            .is_some_and(|w| w & (1 << (status % 64)) != 0)
    }
}

/// Which failures are retried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryOn {
    /// The connection could not be opened (refused, connect timeout).
    pub connect_failure: bool,
    /// The connection broke before response headers.
    pub reset: bool,
    /// The try hit its per-try timeout.
    pub timeout: bool,
    /// Response statuses.
    pub statuses: StatusSet,
}

impl RetryOn {
    /// From validated config.
    pub fn compile(conditions: &[RetryCondition]) -> Self {
        let mut on = Self::default();
        for c in conditions {
            match *c {
                RetryCondition::Status(s) => {
                    on.statuses.insert(s);
                }
                RetryCondition::ConnectFailure => on.connect_failure = true,
                RetryCondition::Reset => on.reset = true,
                RetryCondition::Timeout => on.timeout = true,
            }
        }
        on
    }

    /// Whether a failure after the request was (maybe) written is
    /// retried: then a copy of the request must be kept for the retry.
    pub fn after_sending(&self) -> bool {
        self.reset || self.timeout || !self.statuses.is_empty()
    }

    pub(crate) fn matches(&self, f: Failure) -> bool {
        match f {
            Failure::Connect => self.connect_failure,
            Failure::Reset => self.reset,
            Failure::Timeout => self.timeout,
            Failure::Status(s) => self.statuses.contains(s),
        }
    }
}

/// Why an attempt failed, as retry conditions see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Connect,
    Reset,
    Timeout,
    Status(u16),
}

impl Failure {
    /// The name logs use (the retry condition's spelling).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect-failure",
            Self::Reset => "reset",
            Self::Timeout => "timeout",
            Self::Status(_) => "status",
        }
    }

    /// The status, for a status failure.
    pub(crate) fn status(self) -> Option<u16> {
        match self {
            Self::Status(s) => Some(s),
            _ => None,
        }
    }
}

fn methods(list: &[gatehouse_config::Method]) -> Vec<Method> {
    list.iter().map(|m| m.0.clone()).collect()
}

/// A service's retry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub attempts: u32,
    /// What is retried.
    pub on: RetryOn,
    /// Methods that may be retried.
    pub methods: Vec<Method>,
    /// Wait before each retry.
    pub backoff: Backoff,
    /// Largest body buffered for a replay.
    pub buffer_body: u64,
}

impl RetryPolicy {
    /// From validated config.
    pub fn compile(r: &gatehouse_config::Retries) -> Self {
        Self {
            attempts: r.attempts,
            on: RetryOn::compile(&r.on),
            methods: methods(&r.methods),
            backoff: Backoff {
                base: r.backoff.base,
                max: r.backoff.max,
            },
            buffer_body: r.buffer_body,
        }
    }
}

/// The retry fields a route sets instead of its service's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryOverride {
    attempts: Option<u32>,
    on: Option<RetryOn>,
    methods: Option<Vec<Method>>,
    base: Option<Duration>,
    max: Option<Duration>,
    buffer_body: Option<u64>,
}

impl RetryOverride {
    /// From validated config.
    pub fn compile(r: &RouteRetries) -> Self {
        Self {
            attempts: r.attempts,
            on: r.on.as_deref().map(RetryOn::compile),
            methods: r.methods.as_deref().map(methods),
            base: r.backoff.and_then(|b| b.base),
            max: r.backoff.and_then(|b| b.max),
            buffer_body: r.buffer_body,
        }
    }
}

/// The policy in force for one request: the route's fields where it sets
/// them, the service's otherwise. Built per request without allocating, so
/// a route may reach several services.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Effective<'a> {
    pub(crate) attempts: u32,
    pub(crate) on: &'a RetryOn,
    pub(crate) methods: &'a [Method],
    pub(crate) backoff: Backoff,
    pub(crate) buffer_body: u64,
}

impl<'a> Effective<'a> {
    /// Largest body buffered for a replay.
    pub(crate) fn buffer_body(&self) -> u64 {
        self.buffer_body
    }

    pub(crate) fn new(svc: &'a RetryPolicy, route: Option<&'a RetryOverride>) -> Self {
        let Some(r) = route else {
            return Self {
                attempts: svc.attempts,
                on: &svc.on,
                methods: &svc.methods,
                backoff: svc.backoff,
                buffer_body: svc.buffer_body,
            };
        };
        Self {
            attempts: r.attempts.unwrap_or(svc.attempts),
            on: r.on.as_ref().unwrap_or(&svc.on),
            methods: r.methods.as_deref().unwrap_or(&svc.methods),
            backoff: Backoff {
                base: r.base.unwrap_or(svc.backoff.base),
                max: r.max.unwrap_or(svc.backoff.max),
            },
            buffer_body: r.buffer_body.unwrap_or(svc.buffer_body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_set_holds_exactly_its_members() {
        let s = StatusSet::new([500, 502, 503, 100, 599, 639, 640]);
        for st in [500, 502, 503, 100, 599, 639] {
            assert!(s.contains(st), "{st}");
        }
        for st in [0, 99, 200, 501, 504, 640, 65535] {
            assert!(!s.contains(st), "{st}");
        }
    }

    #[test]
    fn conditions_compile_names_and_statuses() {
        let on = RetryOn::compile(&[
            "reset".parse().unwrap(),
            RetryCondition::Status(503),
            "502".parse().unwrap(),
        ]);
        assert!(on.reset && !on.connect_failure && !on.timeout);
        assert!(on.matches(Failure::Status(503)) && on.matches(Failure::Status(502)));
        assert!(!on.matches(Failure::Status(504)) && !on.matches(Failure::Connect));
    }

    #[test]
    fn route_overrides_replace_only_the_fields_they_set() {
        let svc = RetryPolicy::compile(&gatehouse_config::Retries::default());
        let plain = Effective::new(&svc, None);
        assert_eq!(plain.attempts, 1);
        assert!(plain.on.connect_failure && !plain.on.timeout);
        assert!(!plain.methods.contains(&Method::POST));
        let o = RetryOverride::compile(&RouteRetries {
            attempts: Some(3),
            methods: Some(vec![Method::GET.into(), Method::POST.into()]),
            backoff: Some(gatehouse_config::RouteBackoff {
                base: Some(Duration::from_millis(5)),
                max: None,
            }),
            ..RouteRetries::default()
        });
        let e = Effective::new(&svc, Some(&o));
        assert_eq!(e.attempts, 3);
        assert_eq!(e.methods, [Method::GET, Method::POST]);
        assert!(e.on.connect_failure, "inherited");
        assert_eq!(e.backoff.base, Duration::from_millis(5));
        assert_eq!(e.backoff.max, Duration::from_millis(250), "inherited");
        assert_eq!(e.buffer_body, 0);
    }
}

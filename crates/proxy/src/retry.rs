//! Sending a request upstream with retries under the policy in force
//! (`retry_policy`: a service's `retries` with a route's overrides): the
//! request body kept for a replay, picking a target (a different one for
//! each retry when there are several), and the attempt loop under the
//! per-try and total timeouts.
//!
//! Every attempt is reported once, for the target it used, to the
//! balancer (`on_start` at the pick, `on_finish` when it fails or, for the
//! response returned, when its body ends), to passive health and to the
//! circuit breakers. Retries draw on the service's
//! [`RetryBudget`](gatehouse_upstream::RetryBudget) and wait a jittered
//! [`Backoff`](gatehouse_upstream::Backoff) first.
//!
//! A request is only retried when its body can be sent again: no body, or
//! a body with a Content-Length up to `buffer_body` that is collected
//! before the first try. A body that was streamed upstream (even partly)
//! is never sent again, and neither is an upgrade request.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gatehouse_core::{Body, BodyRejected, Problem, ProblemType, body};
use http::uri::Authority;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body::Frame;
use http_body_util::BodyExt;

use crate::circuit::{Admission, Breakers};
use crate::client::{UpstreamClient, UpstreamFailure, classify};
use crate::retry_policy::{Effective, Failure};
use crate::snapshot::ServiceRt;
use crate::targets::TargetSet;

/// What the request body allows, seen before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// No body (or Content-Length 0).
    Empty,
    /// A body of exactly this many bytes.
    Sized(u64),
    /// A body of unknown length (chunked, or a plugin's stream).
    Unknown,
}

impl BodyKind {
    pub(crate) fn of(req: &Request<Body>) -> Self {
        use http_body::Body as _;
        let b = req.body();
        if b.is_end_stream() {
            return Self::Empty;
        }
        match b.size_hint().exact() {
            Some(0) => Self::Empty,
            Some(n) => Self::Sized(n),
            None => Self::Unknown,
        }
    }
}

/// A request body that can be sent again.
enum Replay {
    Empty,
    Buffered {
        data: Bytes,
        trailers: Option<HeaderMap>,
    },
}

impl Replay {
    fn body(&self) -> Body {
        match self {
            Self::Empty => body::empty(),
            Self::Buffered {
                data,
                trailers: None,
            } => body::full(data.clone()),
            Self::Buffered {
                data,
                trailers: Some(t),
            } => {
                let frames = [Frame::data(data.clone()), Frame::trailers(t.clone())];
                body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
                    frames.map(Ok::<_, std::convert::Infallible>),
                )))
            }
        }
    }
}

/// The head of a request, kept to build it again for a retry
/// (`http::request::Parts` is not `Clone`; extensions are not kept).
struct Head {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
}

impl Head {
    fn of(req: &Request<Body>) -> Self {
        Self {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
        }
    }

    /// The request again, to `authority`.
    fn request(&self, authority: &Authority, body: Body) -> Request<Body> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = with_authority(self.uri.clone(), authority);
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// `uri` sent to `authority` instead.
fn with_authority(uri: Uri, authority: &Authority) -> Uri {
    let mut parts = uri.clone().into_parts();
    parts.authority = Some(authority.clone());
    Uri::from_parts(parts).unwrap_or(uri)
}

/// One attempt in flight to one target (or to the service's only target,
/// without balancer bookkeeping). Dropped without [`Attempt::into_response`]
/// it tells the balancer the attempt failed; unreported breaker tickets go
/// back (see [`Admission`]).
pub(crate) struct Attempt<'a> {
    svc: &'a ServiceRt,
    /// Where an `upstream` plugin sent the request, bypassing the balancer.
    fixed: Option<&'a Authority>,
    /// The target set the request loaded (its balancer, health, breakers).
    set: &'a TargetSet,
    /// The balancer index of the target, if the balancer picked one.
    pub(crate) target: Option<usize>,
    target_ticket: Option<Admission<'a>>,
    service_ticket: Option<Admission<'a>>,
    started: Instant,
    /// `on_finish` is still owed to the balancer.
    owed: bool,
}

/// What an attempt's outcome says about the target.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    /// Response headers with this status arrived.
    Status(u16),
    /// Connect failure, reset or timeout.
    Failed,
    /// The client's side failed (its body): says nothing about the target.
    ClientSide,
}

impl<'a> Attempt<'a> {
    /// Where the attempt's connection goes.
    pub(crate) fn authority(&self) -> &'a Authority {
        match self.fixed {
            Some(a) => a,
            None => &self.set.targets[self.target.unwrap_or(0)],
        }
    }

    /// The request was answered before it was sent (a plugin responded).
    pub(crate) fn cancel(mut self) {
        if let Some(t) = self.target.filter(|_| self.owed) {
            self.set.balancer.on_finish(t, Duration::ZERO, true);
        }
        self.owed = false;
    }

    /// Reports the outcome to the circuit breakers and passive health.
    fn report(&mut self, v: Verdict) {
        let svc = self.svc;
        let breaker_ok = match v {
            Verdict::Status(s) => svc.breakers.as_ref().is_none_or(|b| !b.is_failure(s)),
            Verdict::Failed => false,
            Verdict::ClientSide => {
                // Dropping the tickets gives them back.
                self.service_ticket = None;
                self.target_ticket = None;
                true
            }
        };
        if let Some(t) = self.service_ticket.take() {
            t.record(breaker_ok);
        }
        if let Some(t) = self.target_ticket.take() {
            t.record(breaker_ok);
        }
        if let (Some(t), Some(passive)) = (self.target, &self.set.passive) {
            let ok = match v {
                Verdict::Status(s) => !passive.is_failure(s),
                Verdict::Failed => false,
                Verdict::ClientSide => true,
            };
            passive.report(t, ok);
        }
    }

    /// The response is returned: the balancer hears of it when its body
    /// ends. Returns the target and when the attempt started.
    fn into_response(mut self) -> (Option<usize>, Instant) {
        self.owed = false;
        (self.target, self.started)
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.target.filter(|_| self.owed) {
            self.set
                .balancer
                .on_finish(t, self.started.elapsed(), false);
        }
    }
}

/// Picks the target of an attempt among the healthy ones whose circuit
/// breaker (with `per_target`) admits it, preferring targets not in
/// `tried`; then tells the balancer the attempt started (at `now`). `key`
/// is the consistent-hash key (first tries only).
pub(crate) fn pick_target<'a>(
    svc: &'a ServiceRt,
    set: &'a TargetSet,
    key: Option<&[u8]>,
    tried: &[usize],
    now: Instant,
) -> Result<Attempt<'a>, Problem> {
    let mut attempt = Attempt {
        svc,
        set,
        fixed: None,
        target: None,
        target_ticket: None,
        service_ticket: None,
        started: now,
        owed: false,
    };
    if !balanced(svc, set) {
        return Ok(attempt);
    }
    let breakers = svc.breakers.as_deref().filter(|_| set.breakers.is_some());
    // Targets whose breaker refused between the pick's look and admission.
    let mut refused: Vec<usize> = Vec::new();
    loop {
        let idx = match breakers {
            None if tried.is_empty() => set.balancer.pick(key, &set.health),
            _ => {
                let now = breakers.map(|b| b.now()).unwrap_or_default();
                let open =
                    |i: usize| !refused.contains(&i) && Breakers::target_may_admit(set, i, now);
                set.balancer
                    .pick_where(key, &set.health, |i| open(i) && !tried.contains(&i))
                    .or_else(|| {
                        // Every other target was tried: any will do.
                        (!tried.is_empty())
                            .then(|| set.balancer.pick_where(key, &set.health, open))
                            .flatten()
                    })
            }
        };
        let Some(i) = idx else {
            let health = &set.health;
            return Err(breakers
                .and_then(|b| b.targets_open_problem(set, |i| health.is_healthy(i)))
                .unwrap_or_else(|| {
                    Problem::new(ProblemType::NoHealthyUpstream)
                        .detail(set.no_target_detail(&svc.name))
                }));
        };
        if let Some(b) = breakers {
            match b.admit_target(set, i) {
                Some(ticket) => attempt.target_ticket = Some(ticket),
                None => {
                    refused.push(i);
                    continue;
                }
            }
        }
        set.balancer.on_start(i);
        attempt.target = Some(i);
        attempt.owed = true;
        return Ok(attempt);
    }
}

/// An attempt to `authority`, chosen by a plugin: no balancer pick, no
/// per-target breaker or passive health (the target is not one of the
/// set's); the service's breaker still applies.
pub(crate) fn fixed_attempt<'a>(
    svc: &'a ServiceRt,
    set: &'a TargetSet,
    authority: &'a Authority,
    now: Instant,
) -> Attempt<'a> {
    Attempt {
        svc,
        set,
        fixed: Some(authority),
        target: None,
        target_ticket: None,
        service_ticket: None,
        started: now,
        owed: false,
    }
}

/// Whether requests to `svc` go through the balancer: a set of other than
/// one target, or one target that health checks or breakers track.
#[inline]
pub(crate) fn balanced(svc: &ServiceRt, set: &TargetSet) -> bool {
    svc.balanced || set.targets.len() != 1
}

/// Everything the attempt loop needs about one request.
pub(crate) struct Exchange<'a> {
    /// The service.
    pub svc: &'a ServiceRt,
    /// The target set the request loaded.
    pub set: &'a TargetSet,
    /// The client (the service's, or the route's with its connect timeout).
    pub client: &'a UpstreamClient,
    /// The retry policy in force.
    pub policy: Effective<'a>,
    /// Time allowed per try until response headers.
    pub per_try: Duration,
    /// Time allowed for all tries and backoff waits, counted from `started`.
    pub total: Option<Duration>,
    /// When forwarding started.
    pub started: Instant,
    /// Upgrade requests are never retried.
    pub upgrade: bool,
    /// Where an `upstream` plugin sent the request (retries go there too).
    pub fixed: Option<&'a Authority>,
    /// Report which target answered (the access log is on).
    pub note_target: bool,
}

/// How the exchange ended.
pub(crate) enum Sent {
    /// Response headers arrived (after retries are exhausted this may be
    /// a failure status, returned as the upstream sent it).
    Response {
        resp: Response<Body>,
        /// The balancer index of the target that answered.
        target: Option<usize>,
        /// When that attempt started (latency reported to the balancer).
        sent_at: Instant,
        /// The target that answered, when [`Exchange::note_target`].
        authority: Option<Authority>,
        /// Retries before this answer.
        retries: u32,
        /// When the first try started (upstream time in the access log).
        first_sent_at: Instant,
    },
    /// No response: the problem to answer with.
    Problem(Problem),
}

/// Which limit cut an attempt short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    PerTry,
    Total,
}

impl Limit {
    fn as_str(self) -> &'static str {
        match self {
            Self::PerTry => "per_try",
            Self::Total => "total",
        }
    }
}

/// An upstream error with its causes, outermost first, each said once
/// (`connect: Connection refused (os error 111)`), for operators' logs.
fn describe(e: &crate::client::SendError) -> String {
    let mut out = String::new();
    let mut last = String::new();
    for err in std::iter::successors(Some(e.as_error()), |err| err.source()) {
        let text = err.to_string();
        if text.is_empty() || last.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        last = text;
    }
    out
}

/// Sends `req` (already addressed to `first`'s target) and retries per
/// the policy. `service_ticket` is the service breaker's admission of the
/// first try.
pub(crate) async fn send(
    ex: &Exchange<'_>,
    mut req: Request<Body>,
    body_kind: BodyKind,
    first: Attempt<'_>,
    service_ticket: Option<Admission<'_>>,
) -> Sent {
    let svc = ex.svc;
    let policy = &ex.policy;
    svc.budget.deposit();
    let deadline = ex.total.map(|t| ex.started + t);
    let first_started = Instant::now();
    let mut attempt = first;
    attempt.service_ticket = service_ticket;
    attempt.started = first_started;

    // Can this request be sent again? Then keep what it takes. Retrying
    // only connect failures needs no copy when the client gives back a
    // request it could not send.
    let retryable = policy.attempts > 0 && !ex.upgrade && policy.methods.contains(req.method());
    let copy = retryable && (policy.on.after_sending() || !ex.client.gives_back_unsent());
    let replay = match body_kind {
        _ if !copy => None,
        BodyKind::Empty => Some(Replay::Empty),
        BodyKind::Sized(n) if n <= policy.buffer_body => {
            // Collecting the body is part of the first try.
            let until = earliest(first_started + ex.per_try, deadline);
            let body = std::mem::replace(req.body_mut(), body::empty());
            match buffer(body, n, until).await {
                Ok(r) => {
                    *req.body_mut() = r.body();
                    Some(r)
                }
                Err(p) => return Sent::Problem(p.into_problem(svc, ex.per_try)),
            }
        }
        BodyKind::Sized(_) | BodyKind::Unknown => None,
    };
    let head = replay.as_ref().map(|_| Head::of(&req));

    let mut next = Some(req);
    let mut tried: Vec<usize> = Vec::new();
    let mut retries: u32 = 0;
    loop {
        let request = match (next.take(), &head, &replay) {
            (Some(r), _, _) => r,
            (None, Some(h), Some(r)) => h.request(attempt.authority(), r.body()),
            // A retry is only prepared with a replay; cannot happen.
            (None, _, _) => return Sent::Problem(Problem::new(ProblemType::Internal)),
        };
        let per_try_end = attempt.started + ex.per_try;
        let (end, limit) = match deadline {
            Some(d) if d < per_try_end => (d, Limit::Total),
            _ => (per_try_end, Limit::PerTry),
        };
        let result = tokio::time::timeout_at(end.into(), ex.client.request(request)).await;

        let mut unsent = None;
        let (failure, outcome) = match result {
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                attempt.report(Verdict::Status(status));
                let failure = policy
                    .on
                    .statuses
                    .contains(status)
                    .then_some(Failure::Status(status));
                (failure, Ok(resp))
            }
            Err(_) => {
                attempt.report(Verdict::Failed);
                tracing::warn!(
                    service = %svc.name,
                    target = %attempt.authority(),
                    failure = "timeout",
                    limit = limit.as_str(),
                    after_ms = attempt.started.elapsed().as_millis() as u64,
                    attempt = retries + 1,
                    "upstream request timed out"
                );
                let p = timeout_problem(ex, limit, retries + 1);
                // The total is spent: no time for another try.
                ((limit == Limit::PerTry).then_some(Failure::Timeout), Err(p))
            }
            Ok(Err(failed)) => {
                let e = failed.error;
                unsent = failed.unsent;
                if let Some(rejected) = BodyRejected::find(e.as_error()) {
                    // A plugin's body wrapper refused the streamed body.
                    attempt.report(Verdict::ClientSide);
                    return Sent::Problem(rejected.0.clone());
                }
                let class = classify(&e);
                if class == UpstreamFailure::RequestBody {
                    tracing::debug!(service = %svc.name, target = %attempt.authority(), error = %describe(&e), "the client's request body failed while it was sent upstream");
                } else {
                    let failure = match class {
                        UpstreamFailure::Timeout => "connect-timeout",
                        UpstreamFailure::Tls => "tls",
                        _ if e.is_connect() => "connect-failure",
                        _ => "reset",
                    };
                    tracing::warn!(
                        service = %svc.name,
                        target = %attempt.authority(),
                        failure,
                        error = %describe(&e),
                        attempt = retries + 1,
                        "upstream request failed"
                    );
                }
                let p = match class {
                    UpstreamFailure::RequestBody => {
                        attempt.report(Verdict::ClientSide);
                        return Sent::Problem(
                            Problem::new(ProblemType::BadRequest)
                                .detail("the request body could not be read"),
                        );
                    }
                    UpstreamFailure::Timeout => Problem::new(ProblemType::UpstreamTimeout)
                        .detail(format!("could not connect to `{}` in time", svc.name)),
                    UpstreamFailure::Unreachable => Problem::new(ProblemType::UpstreamUnreachable)
                        .detail(format!("could not get a response from `{}`", svc.name)),
                    UpstreamFailure::Tls => {
                        let why = crate::tls::upstream::tls_error(e.as_error()).map_or_else(
                            || "TLS error".to_string(),
                            crate::tls::upstream::describe,
                        );
                        Problem::new(ProblemType::UpstreamTls)
                            .detail(format!("TLS with `{}` failed: {why}", svc.name))
                    }
                };
                attempt.report(Verdict::Failed);
                let failure = if e.is_connect() {
                    Failure::Connect
                } else {
                    Failure::Reset
                };
                (Some(failure), Err(p))
            }
        };

        let again = replay.is_some() || (retryable && unsent.is_some());
        let wanted =
            failure.filter(|f| policy.on.matches(*f) && again && retries < policy.attempts);
        let retry = match wanted {
            Some(f) => prepare_retry(ex, &attempt, &mut tried, retries, deadline)
                .map(|(next, wait)| (f, next, wait)),
            None => None,
        };
        let Some((f, next_attempt, wait)) = retry else {
            return match outcome {
                Ok(resp) => {
                    let authority = ex.note_target.then(|| attempt.authority().clone());
                    let (target, sent_at) = attempt.into_response();
                    Sent::Response {
                        resp,
                        target,
                        sent_at,
                        authority,
                        retries,
                        first_sent_at: first_started,
                    }
                }
                Err(p) => Sent::Problem(p),
            };
        };
        retries += 1;
        tracing::info!(
            service = %svc.name,
            failure = f.as_str(),
            status = f.status(),
            retry = retries,
            from = %attempt.authority(),
            to = %next_attempt.authority(),
            wait_ms = wait.as_millis() as u64,
            "retrying upstream request"
        );
        // The failed response's body is not read: dropping it closes its
        // connection. The failed attempt reports to the balancer as it goes.
        drop(outcome);
        drop(attempt);
        next = unsent.map(|mut r| {
            let uri = std::mem::take(r.uri_mut());
            *r.uri_mut() = with_authority(uri, next_attempt.authority());
            r
        });
        tokio::time::sleep(wait).await;
        attempt = next_attempt;
        attempt.started = Instant::now();
    }
}

/// Everything a retry needs, or `None` when it must not happen: the
/// backoff would outlast the total timeout, the service's breaker refuses,
/// no target is left, or the budget is spent (counted as denied).
fn prepare_retry<'a>(
    ex: &Exchange<'a>,
    failed: &Attempt<'a>,
    tried: &mut Vec<usize>,
    retries: u32,
    deadline: Option<Instant>,
) -> Option<(Attempt<'a>, Duration)> {
    let svc = ex.svc;
    let wait = ex.policy.backoff.delay(retries, svc.jitter.next_u64());
    if deadline.is_some_and(|d| Instant::now() + wait >= d) {
        return None;
    }
    let service_ticket = match &svc.breakers {
        Some(b) => Some(b.admit_service().ok()?),
        None => None,
    };
    if let Some(t) = failed.target
        && !tried.contains(&t)
    {
        tried.push(t);
    }
    let mut next = match ex.fixed {
        Some(a) => fixed_attempt(svc, ex.set, a, Instant::now()),
        None => pick_target(svc, ex.set, None, tried, Instant::now()).ok()?,
    };
    if !svc.budget.try_withdraw() {
        next.cancel();
        tracing::debug!(service = %svc.name, "retry budget exhausted");
        return None;
    }
    next.service_ticket = service_ticket;
    Some((next, wait))
}

fn earliest(a: Instant, b: Option<Instant>) -> Instant {
    b.map_or(a, |b| a.min(b))
}

fn timeout_problem(ex: &Exchange<'_>, limit: Limit, tries: u32) -> Problem {
    let name = &ex.svc.name;
    let detail = match (limit, ex.total) {
        (Limit::Total, Some(total)) => format!(
            "no response from `{name}` within the total timeout of {total:?} ({tries} {})",
            if tries == 1 { "try" } else { "tries" }
        ),
        _ => format!(
            "no response from `{name}` within {:?} (per-try timeout)",
            ex.per_try
        ),
    };
    Problem::new(ProblemType::UpstreamTimeout).detail(detail)
}

/// Why a body could not be buffered.
enum BufferError {
    /// A plugin's body wrapper refused the body: its problem.
    Rejected(Problem),
    Unreadable,
    Timeout,
}

impl BufferError {
    fn into_problem(self, svc: &ServiceRt, per_try: Duration) -> Problem {
        match self {
            Self::Rejected(problem) => problem,
            Self::Unreadable => {
                Problem::new(ProblemType::BadRequest).detail("the request body could not be read")
            }
            Self::Timeout => Problem::new(ProblemType::UpstreamTimeout).detail(format!(
                "no response from `{}` within {per_try:?} (the request body was still arriving)",
                svc.name
            )),
        }
    }
}

/// Collects a body of `len` bytes by `until`. Memory follows the bytes
/// that arrived, never the declared length (see [`Collector`]); when the
/// client goes away or the time is up, what was collected is freed at once.
async fn buffer(mut body: Body, len: u64, until: Instant) -> Result<Replay, BufferError> {
    let collect = async move {
        let mut data = Collector::new(len);
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| match BodyRejected::find(&*e) {
                Some(rejected) => BufferError::Rejected(rejected.0.clone()),
                None => BufferError::Unreadable,
            })?;
            match frame.into_data() {
                // More than announced: refuse rather than truncate.
                Ok(d) => data.push(&d).map_err(|()| BufferError::Unreadable)?,
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
        Ok(Replay::Buffered {
            data: data.finish(),
            trailers,
        })
    };
    tokio::time::timeout_at(until.into(), collect)
        .await
        .unwrap_or(Err(BufferError::Timeout))
}

/// The bytes of a body being buffered for replay. The declared length is a
/// promise, not a fact: a client can announce 64 MiB and send nothing, so
/// the buffer starts empty and grows as data arrives — doubling, so copies
/// stay amortised, but never beyond the declared length.
#[derive(Debug)]
struct Collector {
    data: Vec<u8>,
    /// The declared length: the most it may hold.
    limit: usize,
}

impl Collector {
    /// The first allocation, once data arrives; smaller bodies get exactly
    /// their length.
    const FIRST: usize = 16 * 1024;

    fn new(len: u64) -> Self {
        Self {
            data: Vec::new(),
            limit: usize::try_from(len).unwrap_or(usize::MAX),
        }
    }

    /// Appends `d`; `Err` when it would exceed the declared length.
    fn push(&mut self, d: &[u8]) -> Result<(), ()> {
        let need = self.data.len().checked_add(d.len()).ok_or(())?;
        if need > self.limit {
            return Err(());
        }
        if need > self.data.capacity() {
            let grown = need
                .max(self.data.capacity().saturating_mul(2))
                .max(Self::FIRST)
                .min(self.limit);
            self.data.reserve_exact(grown - self.data.len());
        }
        self.data.extend_from_slice(d);
        Ok(())
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.data.capacity()
    }

    fn finish(self) -> Bytes {
        Bytes::from(self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(yaml: &str) -> crate::snapshot::Snapshot {
        let loaded = gatehouse_config::parse_str(yaml, "t.yaml").unwrap();
        crate::snapshot::compile_for_test(&loaded)
    }

    const THREE: &str = "services:\n  - name: s\n    url: http://s.internal\n    targets:\n      - target: 127.0.0.1:1\n      - target: 127.0.0.1:2\n      - target: 127.0.0.1:3\n";

    #[tokio::test]
    async fn retries_prefer_untried_targets_then_fall_back_to_any() {
        let snap = compile(THREE);
        let svc = &snap.services[0];
        let set = svc.targets.load();
        for _ in 0..30 {
            let a = pick_target(svc, &set, None, &[0], Instant::now())
                .ok()
                .unwrap();
            assert_ne!(a.target, Some(0));
            let b = pick_target(svc, &set, None, &[0, 2], Instant::now())
                .ok()
                .unwrap();
            assert_eq!(b.target, Some(1));
            assert!(
                pick_target(svc, &set, None, &[0, 1, 2], Instant::now())
                    .ok()
                    .unwrap()
                    .target
                    .is_some()
            );
        }
    }

    #[tokio::test]
    async fn every_attempt_is_finished_with_the_balancer_exactly_once() {
        let snap = compile(&format!(
            "{THREE}    load_balancing:\n      algorithm: least-connections\n"
        ));
        let svc = &snap.services[0];
        let set = svc.targets.load();
        let gatehouse_upstream::Balancer::LeastConnections(lc) = &*set.balancer else {
            panic!("least-connections expected");
        };
        let in_flight = || (0..3).map(|i| lc.in_flight(i)).sum::<u64>();
        let a = pick_target(svc, &set, None, &[], Instant::now())
            .ok()
            .unwrap();
        let b = pick_target(svc, &set, None, &[], Instant::now())
            .ok()
            .unwrap();
        assert_eq!(in_flight(), 2);
        drop(a); // failed or cancelled mid-way
        b.cancel(); // answered by a plugin
        assert_eq!(in_flight(), 0);
        let c = pick_target(svc, &set, None, &[], Instant::now())
            .ok()
            .unwrap();
        let (target, _) = c.into_response();
        assert!(target.is_some());
        assert_eq!(in_flight(), 1, "the response body reports it later");
    }

    #[tokio::test]
    async fn targets_with_open_breakers_are_skipped_and_all_open_is_circuit_open() {
        let snap = compile(&format!(
            "{THREE}    circuit_breaker:\n      min_requests: 1\n      failure_ratio: 1\n      open_for: 5s\n      per_target: true\n"
        ));
        let svc = &snap.services[0];
        let set = svc.targets.load();
        let b = svc.breakers.as_deref().unwrap();
        b.admit_target(&set, 0).unwrap().record(false);
        b.admit_target(&set, 2).unwrap().record(false);
        for _ in 0..10 {
            let a = pick_target(svc, &set, None, &[], Instant::now())
                .ok()
                .unwrap();
            assert_eq!(a.target, Some(1));
            // A retry that tried 1 still gets 1: the open ones stay out.
            let r = pick_target(svc, &set, None, &[1], Instant::now())
                .ok()
                .unwrap();
            assert_eq!(r.target, Some(1));
        }
        b.admit_target(&set, 1).unwrap().record(false);
        let p = pick_target(svc, &set, None, &[], Instant::now())
            .err()
            .unwrap();
        assert_eq!(p.kind(), ProblemType::CircuitOpen);
        let resp = p.into_response(None);
        assert_eq!(resp.headers()[http::header::RETRY_AFTER], "5");
        // The service's own breaker has seen nothing.
        assert!(b.admit_service().is_ok());
        // Unhealthy targets are not the breakers' doing.
        for i in 0..3 {
            set.health.set(i, false);
        }
        let p = pick_target(svc, &set, None, &[], Instant::now())
            .err()
            .unwrap();
        assert_eq!(p.kind(), ProblemType::NoHealthyUpstream);
    }

    #[test]
    fn the_collector_grows_with_the_data_not_the_declared_length() {
        // A declared 1 GiB allocates nothing until bytes arrive.
        let mut c = Collector::new(1 << 30);
        assert_eq!(c.capacity(), 0);
        c.push(b"hello").unwrap();
        assert!(c.capacity() < 64 * 1024, "{}", c.capacity());
        // Growth doubles but never passes the declared length.
        let mut c = Collector::new(100_000);
        let chunk = [7u8; 10_000];
        for _ in 0..10 {
            c.push(&chunk).unwrap();
            assert!(c.capacity() <= 100_000, "{}", c.capacity());
        }
        assert!(c.push(b"x").is_err(), "more than declared");
        assert_eq!(c.finish().len(), 100_000);
        // A small body gets exactly its length.
        let mut c = Collector::new(11);
        c.push(b"hello ").unwrap();
        c.push(b"world").unwrap();
        assert_eq!(c.capacity(), 11);
    }

    #[tokio::test]
    async fn a_buffered_body_replays_identically_with_its_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", http::HeaderValue::from_static("42"));
        let frames = [
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"hello "))),
            Ok(Frame::data(Bytes::from_static(b"world"))),
            Ok(Frame::trailers(trailers.clone())),
        ];
        let src = body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )));
        let far = Instant::now() + Duration::from_secs(5);
        let replay = buffer(src, 11, far).await.ok().unwrap();
        for _ in 0..2 {
            let c = replay.body().collect().await.unwrap();
            assert_eq!(c.trailers(), Some(&trailers));
            assert_eq!(&c.to_bytes()[..], b"hello world");
        }
        // More than announced is refused, never truncated.
        let long = body::full("hello world!");
        assert!(matches!(
            buffer(long, 11, far).await,
            Err(BufferError::Unreadable)
        ));
    }
}

//! The plugin trait, its phases, and the factory that builds plugins from
//! configuration.
//!
//! Phases run in this order for every request (see
//! docs/plugins/AUTHORING.md, "Phases"): `rewrite -> access -> upstream ->
//! request_body -> upstream_request -> (send, retries; upstream_error on
//! the final failure) -> response_headers -> response_body -> log`.
//! Inside a phase, plugins run by descending priority; ties are broken by
//! name, so the order is deterministic.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::body::Body;
use crate::ctx::Ctx;
use crate::error::PluginError;
use crate::problem::{Problem, ProblemDef, ProblemType};
use crate::resources::BuildCx;

/// A request as plugins see it: head plus streaming body.
pub type Request = http::Request<Body>;
/// A response as plugins see it.
pub type Response = http::Response<Body>;

/// What a request-side phase decided.
#[derive(Debug)]
pub enum Flow {
    /// Go on with the next plugin, then the next phase.
    Continue,
    /// Stop here and answer the client with this response. Later request
    /// phases and the upstream are skipped; response phases still run.
    Respond(Response),
}

impl From<Problem> for Flow {
    fn from(problem: Problem) -> Self {
        // The proxy fills in the request id on every response it sends.
        Flow::Respond(problem.into_response(None))
    }
}

/// One phase of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Phase {
    /// Before routing-dependent work: may change the request.
    Rewrite = 1,
    /// Authentication, authorization, limits: may reject.
    Access = 2,
    /// Just before the request goes upstream.
    UpstreamRequest = 4,
    /// Response status and headers, before they are sent.
    ResponseHeaders = 8,
    /// Response body, as a stream.
    ResponseBody = 16,
    /// After the response was sent (or aborted). Must not block.
    Log = 32,
    /// After access and `upstream`: may read, replace or wrap the request
    /// body.
    RequestBody = 64,
    /// After access: may choose where the request goes.
    Upstream = 128,
    /// After the last try failed: may answer, or try elsewhere once.
    UpstreamError = 256,
}

/// A set of phases a plugin takes part in. The pipeline only calls a plugin
/// in the phases it declares, so unused phases cost nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Phases(u16);

impl Phases {
    /// No phase.
    pub const NONE: Phases = Phases(0);

    /// The set with exactly these phases.
    pub const fn of(phases: &[Phase]) -> Self {
        let mut bits = 0u16;
        let mut i = 0;
        while i < phases.len() {
            bits |= phases[i] as u16;
            i += 1;
        }
        Phases(bits)
    }

    /// Why a plugin with these phases cannot be attached to a consumer or
    /// a plan, if it cannot: both are known only in (consumer) or after
    /// (plan) the access phase, after every `rewrite` plugin ran, so a
    /// `rewrite` phase would be partly or wholly ignored. `None` when every
    /// phase can run once the consumer and plan are known. The data plane's
    /// compile and the control plane's check both ask this.
    pub fn late_attachment_problem(self) -> Option<&'static str> {
        if self.contains(Phase::Rewrite) {
            Some(
                "its `rewrite` phase runs before any consumer or plan is known, so it would never run there; attach it to the route, service or globally instead",
            )
        } else if self.0 == 0 {
            Some("it takes part in no phase, so it would never run")
        } else {
            None
        }
    }

    /// Whether `phase` is in the set.
    pub const fn contains(self, phase: Phase) -> bool {
        self.0 & (phase as u16) != 0
    }

    /// The phases in either set.
    #[must_use]
    pub const fn union(self, other: Phases) -> Self {
        Phases(self.0 | other.0)
    }

    /// Whether the sets share a phase.
    pub const fn intersects(self, other: Phases) -> bool {
        self.0 & other.0 != 0
    }

    /// The phases whose plugins get the request itself (`&mut Request`)
    /// and may replace its body: after them the proxy recomputes the
    /// upstream request's framing from the body it sends.
    pub const REQUEST: Phases = Phases::of(&[
        Phase::Rewrite,
        Phase::Access,
        Phase::Upstream,
        Phase::RequestBody,
        Phase::UpstreamRequest,
    ]);
}

/// What a plugin does that the proxy needs to know about, as a bit set.
/// The proxy asks a chain for a capability (`Chain::any`), never for a
/// plugin by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u32);

impl Capabilities {
    /// Nothing special.
    pub const NONE: Capabilities = Capabilities(0);
    /// Answers CORS preflights (`OPTIONS` with
    /// `Access-Control-Request-Method`): a preflight that would be a 405 is
    /// routed as the method it asks about when the route's chain has a
    /// plugin with this capability (`cors`).
    pub const ANSWERS_PREFLIGHT: Capabilities = Capabilities(1);
    /// Identifies the caller: sets `Ctx::consumer` / `Ctx::app` in its
    /// access phase (`key-auth` and every authentication plugin). Routes
    /// of APIs that require a subscription need one.
    pub const IDENTIFIES: Capabilities = Capabilities(2);

    /// Whether every capability of `other` is in `self`.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets.
    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Capabilities) -> Capabilities {
        self.union(rhs)
    }
}

/// Where a plugin's default priority lies: one priority table, split into
/// bands by what plugins do (docs/plugins/README.md). Higher runs earlier
/// within a phase; a factory's [`PluginFactory::priority`] must lie in its
/// band's [`Band::range`] (checked by a test over the registry). A route
/// may still override a plugin's priority in its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Band {
    /// Runs before everything: request ids, tracing context
    /// (10000 ..= 1000000).
    Observe,
    /// Decides whether a request is admitted at all before anyone is
    /// identified: IP allow/deny lists, bot detection, CORS preflights
    /// (2000 ..= 9999).
    Admission,
    /// Identifies the caller: key-auth, basic-auth, JWT, OAuth2, OIDC
    /// (1200 ..= 1999).
    Authentication,
    /// Uses who the caller is or what the request costs: ACLs, external
    /// authorization, rate limits, quotas, size limits (900 ..= 1199).
    Policy,
    /// Changes the request or the response: header and body
    /// transformations, request validation, caching (0 ..= 899).
    Transform,
    /// Answers instead of the upstream, last: mocks, the AI proxy's
    /// provider call (-100000 ..= -1).
    Respond,
}

impl Band {
    /// Every band, from first to last.
    pub const ALL: [Band; 6] = [
        Band::Observe,
        Band::Admission,
        Band::Authentication,
        Band::Policy,
        Band::Transform,
        Band::Respond,
    ];

    /// The default priorities the band allows.
    pub const fn range(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Band::Observe => 10_000..=1_000_000,
            Band::Admission => 2000..=9999,
            Band::Authentication => 1200..=1999,
            Band::Policy => 900..=1199,
            Band::Transform => 0..=899,
            Band::Respond => -100_000..=-1,
        }
    }

    /// The band's name in the docs (`observe`, `admission`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Band::Observe => "observe",
            Band::Admission => "admission",
            Band::Authentication => "authentication",
            Band::Policy => "policy",
            Band::Transform => "transform",
            Band::Respond => "respond",
        }
    }
}

/// Where a request goes instead of its route's service (the `upstream`
/// phase, or [`ErrorFlow::Retry`]).
///
/// The value comes from plugin code, never straight from the client: a
/// plugin that builds a choice from request data (a header, a claim, a
/// model name) must map it through its own configuration (an allow-list,
/// a table), or it hands the client an open proxy to any host the gateway
/// can reach (SSRF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamChoice {
    /// Another service, by name, in the route's workspace. Its targets,
    /// balancer, breakers, retries, timeouts and TLS apply. A name the
    /// workspace does not have answers `503 no-service`.
    Service(Arc<str>),
    /// One `host:port` of the chosen service (the route's, or the one an
    /// earlier plugin chose), bypassing its balancer and health: the
    /// service's scheme, client, timeouts and retries apply.
    Target(http::uri::Authority),
    /// An absolute `http`/`https` URL: its scheme and authority replace
    /// the service's, its path and query replace the request's. Sent with
    /// the chosen service's client, timeouts and retry policy (retries go
    /// to the same URL).
    Url(http::Uri),
}

/// What the proxy tells `upstream_error` about the final failure.
#[derive(Debug, Clone)]
pub struct UpstreamFailure {
    /// The problem the gateway would answer (`upstream-timeout`,
    /// `upstream-unreachable`, `no-healthy-upstream`, ...).
    pub kind: ProblemType,
    /// The service the request was sent to.
    pub service: Arc<str>,
    /// Whether the request can be sent again ([`ErrorFlow::Retry`] is
    /// ignored when it cannot: its body was streamed and not kept).
    pub replayable: bool,
}

/// What `upstream_error` decided.
#[derive(Debug)]
pub enum ErrorFlow {
    /// Let the next plugin decide; in the end the gateway answers its
    /// problem.
    Default,
    /// Answer the client with this response (a fallback).
    Respond(Response),
    /// Send the request once more, somewhere else. Each plugin's retry is
    /// honoured at most once per request, and only when the request is
    /// replayable.
    Retry(UpstreamChoice),
}

/// What the log phase sees about a finished exchange.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// The status sent to the client.
    pub status: u16,
    /// Response body bytes sent to the client.
    pub bytes_sent: u64,
    /// Time from the start of the request to the end of the response.
    pub duration: Duration,
    /// Whether the response body completed (false if it was aborted).
    pub completed: bool,
}

/// A configured plugin instance. One instance serves every request of the
/// routes it is attached to, concurrently: keep per-request state in
/// [`Ctx`], not in `self`.
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// The registry name (`cors`, `ip-restriction`, ...).
    fn name(&self) -> &'static str;

    /// The phases this instance takes part in: exactly the phase methods
    /// it overrides (checked by [`testing::check_phases`]).
    fn phases(&self) -> Phases;

    /// What this instance does that the proxy must know about (default:
    /// nothing).
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    // The default bodies below note that they ran (`testing::ran`) for
    // `testing::check_phases`; the chain never calls a phase a plugin does
    // not declare, so requests never reach them.

    /// Rewrite phase: runs first, may change the request or answer it.
    async fn rewrite(&self, _ctx: &mut Ctx, _req: &mut Request) -> Flow {
        testing::ran(Phase::Rewrite);
        Flow::Continue
    }

    /// Access phase: authentication, authorization and limits.
    async fn access(&self, _ctx: &mut Ctx, _req: &mut Request) -> Flow {
        testing::ran(Phase::Access);
        Flow::Continue
    }

    /// Upstream selection: runs after access (once the consumer, app and
    /// plan are known), in priority order; the first `Some` wins and later
    /// `upstream` plugins do not run. `None` keeps the route's service.
    /// See [`UpstreamChoice`] for what a choice may carry: never pass
    /// client input into it unchecked. The request is `&mut` because a
    /// shared reference to its body cannot cross an `await` (the body is
    /// not `Sync`), and so that a plugin that routes on the body (a model
    /// name in JSON) can read it with [`crate::body::collect`] and put it
    /// back; the head should be left as it is.
    async fn upstream(&self, _ctx: &mut Ctx, _req: &mut Request) -> Option<UpstreamChoice> {
        testing::ran(Phase::Upstream);
        None
    }

    /// Request body: runs after `upstream`, before the upstream request is
    /// built. May replace the body (`*req.body_mut() = ...`), wrap it, or
    /// read it whole with [`crate::body::collect`] (always with a limit).
    /// The proxy recomputes framing from the body left here (exact length:
    /// `Content-Length`; otherwise chunked) and buffers it for retries
    /// only afterwards.
    async fn request_body(&self, _ctx: &mut Ctx, _req: &mut Request) -> Flow {
        testing::ran(Phase::RequestBody);
        Flow::Continue
    }

    /// Runs just before the request is sent upstream, once the URI, Host
    /// and forwarding headers are set. Framing is recomputed after it, too.
    async fn upstream_request(&self, _ctx: &mut Ctx, _req: &mut Request) -> Flow {
        testing::ran(Phase::UpstreamRequest);
        Flow::Continue
    }

    /// After the last try failed (retries exhausted, no target, timeout):
    /// may answer with a fallback, or send the request elsewhere once.
    /// Not called when an upstream answered, whatever its status.
    async fn upstream_error(&self, _ctx: &mut Ctx, _failure: &UpstreamFailure) -> ErrorFlow {
        testing::ran(Phase::UpstreamError);
        ErrorFlow::Default
    }

    /// May change the response status and headers, for upstream responses
    /// and for responses made by the gateway or by plugins alike. Async:
    /// may look something up, but the response waits for it.
    async fn response_headers(&self, _ctx: &mut Ctx, _resp: &mut http::response::Parts) {
        testing::ran(Phase::ResponseHeaders);
    }

    /// May wrap the response body stream. Must not buffer it unless the
    /// plugin's purpose needs it, and then only up to a configured limit.
    fn response_body(&self, _ctx: &Ctx, body: Body) -> Body {
        testing::ran(Phase::ResponseBody);
        body
    }

    /// Runs after the exchange ended. Must not block or do I/O inline: hand
    /// work to a bounded queue instead.
    fn log(&self, _ctx: &Ctx, _record: &LogRecord) {
        testing::ran(Phase::Log);
    }
}

/// Builds plugin instances of one kind from their configuration.
pub trait PluginFactory: Send + Sync + 'static {
    /// The registry name.
    fn name(&self) -> &'static str;

    /// The default priority: higher runs earlier within a phase. Must lie
    /// in [`PluginFactory::band`]'s range.
    fn priority(&self) -> i32;

    /// The band of the priority table the plugin belongs to.
    fn band(&self) -> Band;

    /// JSON Schema of the `config` object.
    fn schema(&self) -> serde_json::Value;

    /// The problem types the plugin's instances answer with, besides the
    /// gateway's own ([`crate::problem::CORE_TYPES`]); docs/errors.md lists
    /// them all (checked by a test).
    fn problem_types(&self) -> &'static [&'static ProblemDef] {
        &[]
    }

    /// Builds an instance; rejects invalid configuration with the path of
    /// the faulty field. Synchronous and free of I/O (compiling a config
    /// never touches the network): long-lived things come from
    /// `cx.resources`, state that must survive reloads from
    /// [`BuildCx::state`], and background work is asked for with
    /// `cx.resources.background` (docs/plugins/AUTHORING.md).
    fn build(
        &self,
        config: &serde_json::Value,
        cx: &BuildCx<'_>,
    ) -> Result<Arc<dyn Plugin>, PluginError>;
}

/// Test support: checks that a plugin's declared [`Phases`] are exactly the
/// phase methods it overrides.
///
/// Each default phase body notes in a thread-local that it ran. The check
/// calls every phase once on a dummy request and compares: a declared
/// phase whose default body ran is not implemented (the chain would call
/// a no-op), an undeclared phase whose default did not run is implemented
/// but never called. Production never pays for this: the chain only calls
/// declared phases, so a default body never runs on the request path.
///
/// To cover a new phase, add a row to [`testing::PROBES`].
pub mod testing {
    use std::cell::Cell;
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Waker};
    use std::time::Duration;

    use super::{LogRecord, Phase, Plugin, Request, UpstreamFailure};
    use crate::ctx::Ctx;

    thread_local! {
        static RAN: Cell<u32> = const { Cell::new(0) };
    }

    /// Called by the default phase bodies.
    pub(super) fn ran(phase: Phase) {
        RAN.with(|r| r.set(r.get() | phase as u32));
    }

    fn take() -> u32 {
        RAN.with(|r| r.replace(0))
    }

    /// Polls once: a default body completes on its first poll, and
    /// whatever an override awaits is not needed to tell them apart.
    fn poll_once<F: Future>(fut: F) {
        let mut fut = std::pin::pin!(fut);
        let mut cx = Context::from_waker(Waker::noop());
        let _ = fut.as_mut().poll(&mut cx);
    }

    fn request() -> Request {
        http::Request::builder()
            .uri("/phase-check")
            .body(crate::body::empty())
            .unwrap_or_else(|_| http::Request::new(crate::body::empty()))
    }

    /// Calls one phase of a plugin with a dummy request or response.
    pub type Probe = fn(&dyn Plugin, &mut Ctx);

    /// One row per phase, in execution order: the phase, its method's
    /// name, how to call it.
    pub const PROBES: &[(Phase, &str, Probe)] = &[
        (Phase::Rewrite, "rewrite", |p, ctx| {
            let mut req = request();
            poll_once(p.rewrite(ctx, &mut req));
        }),
        (Phase::Access, "access", |p, ctx| {
            let mut req = request();
            poll_once(p.access(ctx, &mut req));
        }),
        (Phase::Upstream, "upstream", |p, ctx| {
            let mut req = request();
            poll_once(p.upstream(ctx, &mut req));
        }),
        (Phase::RequestBody, "request_body", |p, ctx| {
            let mut req = request();
            poll_once(p.request_body(ctx, &mut req));
        }),
        (Phase::UpstreamRequest, "upstream_request", |p, ctx| {
            let mut req = request();
            poll_once(p.upstream_request(ctx, &mut req));
        }),
        (Phase::UpstreamError, "upstream_error", |p, ctx| {
            let failure = UpstreamFailure {
                kind: crate::problem::ProblemType::UpstreamUnreachable,
                service: Arc::from("phase-check"),
                replayable: true,
            };
            poll_once(p.upstream_error(ctx, &failure));
        }),
        (Phase::ResponseHeaders, "response_headers", |p, ctx| {
            let mut parts = http::Response::new(()).into_parts().0;
            poll_once(p.response_headers(ctx, &mut parts));
        }),
        (Phase::ResponseBody, "response_body", |p, ctx| {
            let _ = p.response_body(ctx, crate::body::empty());
        }),
        (Phase::Log, "log", |p, ctx| {
            let record = LogRecord {
                status: 200,
                bytes_sent: 0,
                duration: Duration::ZERO,
                completed: true,
            };
            p.log(ctx, &record);
        }),
    ];

    /// Whether `plugin`'s declared phases are exactly those it overrides;
    /// the error lists every mismatch. Runs each phase once on a dummy
    /// request, so call it on an instance built for a test. A plugin whose
    /// phases depend on its config (`headers` declares only the sides it
    /// has rules for) must be built with a config that uses every phase.
    pub fn check_phases(plugin: &dyn Plugin) -> Result<(), String> {
        let declared = plugin.phases();
        let mut problems = Vec::new();
        for (phase, method, probe) in PROBES {
            let mut ctx = Ctx::new(Arc::from("phase-check"), ([127, 0, 0, 1], 9).into());
            take();
            probe(plugin, &mut ctx);
            let default_ran = take() & (*phase as u32) != 0;
            match (declared.contains(*phase), default_ran) {
                (true, true) => {
                    problems.push(format!("declares `{method}` but does not implement it"))
                }
                (false, false) => problems.push(format!(
                    "implements `{method}` but does not declare it in `phases()`, so it never runs"
                )),
                _ => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "plugin `{}`: {}",
                plugin.name(),
                problems.join("; ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Declares(Phases);

    #[async_trait]
    impl Plugin for Declares {
        fn name(&self) -> &'static str {
            "declares"
        }
        fn phases(&self) -> Phases {
            self.0
        }
        async fn access(&self, _ctx: &mut Ctx, _req: &mut Request) -> Flow {
            Flow::Continue
        }
        fn log(&self, _ctx: &Ctx, _record: &LogRecord) {}
    }

    #[test]
    fn phase_sets_union_and_intersect() {
        let a = Phases::of(&[Phase::Rewrite, Phase::Log]);
        let b = Phases::of(&[Phase::Log, Phase::UpstreamRequest]);
        let u = a.union(b);
        for p in [Phase::Rewrite, Phase::Log, Phase::UpstreamRequest] {
            assert!(u.contains(p), "{p:?}");
        }
        assert!(!u.contains(Phase::Access));
        assert!(a.intersects(b));
        assert!(!a.intersects(Phases::of(&[Phase::Access])));
        assert!(!Phases::NONE.intersects(Phases::REQUEST));
        // Every phase that gets `&mut Request` is a request phase; the
        // response side and `upstream_error` are not.
        for p in [
            Phase::Rewrite,
            Phase::Access,
            Phase::Upstream,
            Phase::RequestBody,
            Phase::UpstreamRequest,
        ] {
            assert!(Phases::REQUEST.contains(p), "{p:?}");
        }
        for p in [
            Phase::UpstreamError,
            Phase::ResponseHeaders,
            Phase::ResponseBody,
            Phase::Log,
        ] {
            assert!(!Phases::REQUEST.contains(p), "{p:?}");
        }
    }

    #[test]
    fn check_phases_compares_declared_and_implemented_phases() {
        fn check(declared: &[Phase], want: Result<(), &[&str]>) {
            let got = testing::check_phases(&Declares(Phases::of(declared)));
            match (got, want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(parts)) => {
                    for part in parts {
                        assert!(e.contains(part), "{declared:?}: {e}");
                    }
                }
                (got, want) => panic!("{declared:?}: got {got:?}, want {want:?}"),
            }
        }
        check(&[Phase::Access, Phase::Log], Ok(()));
        check(
            &[Phase::Access],
            Err(&["implements `log` but does not declare it"]),
        );
        check(
            &[Phase::Access, Phase::Log, Phase::Rewrite],
            Err(&["declares `rewrite` but does not implement it"]),
        );
        check(
            &[Phase::ResponseBody],
            Err(&[
                "declares `response_body`",
                "implements `access`",
                "implements `log`",
            ]),
        );
    }

    #[test]
    fn every_phase_has_a_probe() {
        let phases: Vec<Phase> = testing::PROBES.iter().map(|(p, _, _)| *p).collect();
        assert_eq!(
            phases,
            [
                Phase::Rewrite,
                Phase::Access,
                Phase::Upstream,
                Phase::RequestBody,
                Phase::UpstreamRequest,
                Phase::UpstreamError,
                Phase::ResponseHeaders,
                Phase::ResponseBody,
                Phase::Log
            ]
        );
    }

    #[test]
    fn bands_are_ordered_and_do_not_overlap() {
        for pair in Band::ALL.windows(2) {
            let (hi, lo) = (pair[0].range(), pair[1].range());
            assert!(
                lo.end() < hi.start(),
                "{:?} overlaps {:?}",
                pair[1],
                pair[0]
            );
        }
    }

    #[test]
    fn capabilities_are_a_bit_set() {
        let both = Capabilities::ANSWERS_PREFLIGHT | Capabilities::IDENTIFIES;
        assert!(both.contains(Capabilities::IDENTIFIES));
        assert!(both.contains(Capabilities::ANSWERS_PREFLIGHT));
        assert!(!Capabilities::IDENTIFIES.contains(Capabilities::ANSWERS_PREFLIGHT));
        assert!(Capabilities::NONE.contains(Capabilities::NONE));
        assert!(!Capabilities::NONE.contains(Capabilities::IDENTIFIES));
    }
}

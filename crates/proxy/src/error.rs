//! The request path's one error type. Every step of `handler::serve`
//! returns `Result<_, GatewayError>` and uses `?`; the error becomes a
//! problem+json response in exactly one place ([`GatewayError::into_response`],
//! called by `serve`), after which the response phases run on it like on
//! any other response.

use gatehouse_core::{Body, BoxError, Problem, ProblemType};

/// Whose fault an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorSource {
    /// The request itself (malformed, refused, not routable, too large).
    Client,
    /// The upstream or the way to it (unreachable, timed out, no healthy
    /// target, circuit open, overloaded). `upstream_error` plugins see
    /// these.
    Upstream,
    /// The gateway's own state (a bug or a configuration it could not use).
    Internal,
}

/// An error on the request path: the problem the client gets (kind,
/// detail, headers), whose fault it is, whether trying again may succeed,
/// and what caused it.
#[derive(Debug)]
pub(crate) struct GatewayError {
    /// The answer: its kind, detail and extra headers.
    problem: Problem,
    /// Whose fault it is.
    pub(crate) source: ErrorSource,
    /// Whether sending the same request again (elsewhere, or later) may
    /// succeed.
    pub(crate) retryable: bool,
    /// The underlying error, if any (kept for logs).
    pub(crate) cause: Option<BoxError>,
}

impl GatewayError {
    fn new(problem: Problem, source: ErrorSource, retryable: bool) -> Self {
        Self {
            problem,
            source,
            retryable,
            cause: None,
        }
    }

    /// The request is at fault.
    pub(crate) fn client(problem: Problem) -> Self {
        Self::new(problem, ErrorSource::Client, false)
    }

    /// The upstream (or the way to it) failed; trying elsewhere may work.
    pub(crate) fn upstream(problem: Problem) -> Self {
        Self::new(problem, ErrorSource::Upstream, true)
    }

    /// The gateway's own fault.
    pub(crate) fn internal(problem: Problem) -> Self {
        Self::new(problem, ErrorSource::Internal, false)
    }

    /// An error of the send-and-retry loop: the client's when its body
    /// could not be read or was refused, the upstream's otherwise.
    pub(crate) fn from_send(problem: Problem) -> Self {
        match problem.kind() {
            ProblemType::PayloadTooLarge | ProblemType::BadRequest => Self::client(problem),
            ProblemType::Internal => Self::internal(problem),
            _ => Self::upstream(problem),
        }
    }

    /// With the underlying error.
    #[allow(dead_code)]
    pub(crate) fn caused_by(mut self, cause: impl Into<BoxError>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// The problem type answered.
    pub(crate) fn kind(&self) -> ProblemType {
        self.problem.kind()
    }

    /// The one place an error becomes a response: problem+json with the
    /// request id. (`serve` then adds the request id header and runs the
    /// response phases.)
    pub(crate) fn into_response(self, request_id: &str) -> http::Response<Body> {
        let status = self.problem.status_code().as_u16();
        match self.source {
            ErrorSource::Internal => tracing::warn!(
                problem = self.kind().slug(),
                status,
                request_id,
                cause = self.cause.as_ref().map(tracing::field::display),
                "request failed inside the gateway"
            ),
            source => tracing::debug!(
                problem = self.kind().slug(),
                status,
                ?source,
                retryable = self.retryable,
                request_id,
                cause = self.cause.as_ref().map(tracing::field::display),
                "request answered with a problem"
            ),
        }
        self.problem.into_response(Some(request_id))
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.kind().slug(), self.source)
    }
}

impl std::error::Error for GatewayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn send_errors_are_blamed_on_who_caused_them() {
        fn check(kind: ProblemType, source: ErrorSource) {
            let e = GatewayError::from_send(Problem::new(kind));
            assert_eq!(e.source, source, "{kind:?}");
            assert_eq!(e.retryable, source == ErrorSource::Upstream, "{kind:?}");
        }
        check(ProblemType::PayloadTooLarge, ErrorSource::Client);
        check(ProblemType::BadRequest, ErrorSource::Client);
        check(ProblemType::UpstreamTimeout, ErrorSource::Upstream);
        check(ProblemType::UpstreamUnreachable, ErrorSource::Upstream);
        check(ProblemType::Internal, ErrorSource::Internal);
    }

    #[test]
    fn the_response_is_problem_json_with_the_request_id() {
        let e =
            GatewayError::client(Problem::new(ProblemType::NoRoute).detail("no route for GET /x"))
                .caused_by("why");
        assert_eq!(std::error::Error::source(&e).unwrap().to_string(), "why");
        let resp = e.into_response("rid-1");
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
    }
}

//! Every admin API error is problem+json: [`ApiError`] wraps a
//! [`gatehouse_core::Problem`] and maps store errors to statuses.

use axum::response::{IntoResponse, Response};
use gatehouse_core::{Problem, ProblemType};
use gatehouse_store::StoreError;
use http::{HeaderValue, StatusCode, header};

/// An error answer of the admin API: a problem, and for a rejection by
/// the cross-entity validator the list of its messages (rendered as the
/// problem's `errors` member).
#[derive(Debug)]
pub struct ApiError(pub Problem, pub Vec<String>);

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A problem of this type with a detail.
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self(Problem::new(kind).detail(detail), Vec::new())
    }

    /// 422 `invalid-entity`: the request is well-formed but its values are
    /// not acceptable (a bad rotation overlap, a past expiry, ...).
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self(
            Problem::new(ProblemType::InvalidEntity)
                .status(StatusCode::UNPROCESSABLE_ENTITY)
                .detail(detail),
            Vec::new(),
        )
    }

    /// 422 `invalid-entity` for the validator's messages: `detail` joins
    /// them, `errors` lists them.
    pub fn rejected(errors: Vec<String>) -> Self {
        let errors = if errors.is_empty() {
            vec!["the change was rejected by validation".to_owned()]
        } else {
            errors
        };
        let mut e = Self::unprocessable(errors.join("; "));
        e.1 = errors;
        e
    }

    /// 400 `bad-request`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::BadRequest, detail)
    }

    /// 400 `invalid-entity`.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::InvalidEntity, detail)
    }

    /// 403 `forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::Forbidden, detail)
    }

    /// 404 `not-found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::NotFound, detail)
    }

    /// 401 `unauthorized` with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self(
            Problem::new(ProblemType::Unauthorized)
                .detail(detail)
                .header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"gatehouse-admin\""),
                ),
            Vec::new(),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let kind = match &e {
            StoreError::NotFound(_) => ProblemType::NotFound,
            StoreError::Conflict { .. } => ProblemType::PreconditionFailed,
            StoreError::AlreadyExists(_) => ProblemType::Conflict,
            StoreError::Invalid(_) => ProblemType::InvalidEntity,
            StoreError::Unavailable { .. } => ProblemType::StoreUnavailable,
            StoreError::SchemaTooNew { .. } | StoreError::Backend { .. } => {
                tracing::error!(
                    error = &e as &dyn std::error::Error,
                    "admin API: store error"
                );
                return Self::new(ProblemType::Internal, "store error (see the server log)");
            }
        };
        Self::new(kind, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.1.is_empty() {
            return self.0.into_response(None).map(axum::body::Body::new);
        }
        // Problem has no extension members: render this one ourselves.
        let kind = self.0.kind();
        let status = self.0.status_code();
        let doc = serde_json::json!({
            "type": kind.uri(),
            "title": kind.title(),
            "status": status.as_u16(),
            "detail": self.1.join("; "),
            "errors": self.1,
        });
        let mut resp = (status, doc.to_string()).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(gatehouse_core::problem::CONTENT_TYPE),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

//! Every admin API error is problem+json: [`ApiError`] wraps a
//! [`gatehouse_core::Problem`] and maps store errors to statuses.

use axum::response::{IntoResponse, Response};
use gatehouse_core::{Problem, ProblemType};
use gatehouse_store::StoreError;
use http::{HeaderValue, header};

/// An error answer of the admin API.
#[derive(Debug)]
pub struct ApiError(pub Problem);

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A problem of this type with a detail.
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self(Problem::new(kind).detail(detail))
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
            StoreError::Unavailable(_) => ProblemType::StoreUnavailable,
            StoreError::SchemaTooNew { .. } | StoreError::Backend(_) => {
                tracing::error!(error = %e, "admin API: store error");
                return Self::new(ProblemType::Internal, "store error (see the server log)");
            }
        };
        Self::new(kind, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.into_response(None).map(axum::body::Body::new)
    }
}

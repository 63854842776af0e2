//! The store's one error type.

use thiserror::Error;

/// Everything a store call can fail with. The admin API maps them to
/// statuses: `NotFound` 404, `Conflict` 412, `AlreadyExists` 409,
/// `Invalid` 400, `Unavailable` 503, the rest 500.
#[derive(Debug, Error)]
pub enum StoreError {
    /// No such document or token.
    #[error("{0} not found")]
    NotFound(String),
    /// A `Expect::Version` precondition did not hold.
    #[error("version conflict: the current version is {}", match current { Some(v) => v.to_string(), None => "none (it does not exist)".to_owned() })]
    Conflict {
        /// The document's current version; `None` when it does not exist.
        current: Option<u64>,
    },
    /// An `Expect::Absent` write found the document.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The request itself is wrong (bad name, duplicate in an apply, ...).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The database cannot be reached; retrying later may help.
    #[error("store unavailable: {context}")]
    Unavailable {
        /// What was being done.
        context: String,
        /// The driver's or the system's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// The database's schema is newer than this binary knows.
    #[error(
        "the database schema is at version {found}, newer than this gatehouse supports ({supported}); upgrade gatehouse"
    )]
    SchemaTooNew {
        /// The newest migration recorded in the database.
        found: i64,
        /// The newest migration this binary has.
        supported: i64,
    },
    /// Any other database failure.
    #[error("store backend error: {context}")]
    Backend {
        /// What was being done.
        context: String,
        /// The driver's or the system's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
}

/// The cause of an `Unavailable` or `Backend` error: kept as an error (its
/// own causes included), never flattened into a string.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

impl StoreError {
    /// `Unavailable` caused by `source`.
    pub fn unavailable(context: impl Into<String>, source: impl Into<Cause>) -> Self {
        StoreError::Unavailable {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// `Backend` caused by `source`.
    pub fn backend(context: impl Into<String>, source: impl Into<Cause>) -> Self {
        StoreError::Backend {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// `Backend` with no underlying error.
    pub fn backend_msg(context: impl Into<String>) -> Self {
        StoreError::Backend {
            context: context.into(),
            source: None,
        }
    }

    /// `Unavailable` with no underlying error.
    pub fn unavailable_msg(context: impl Into<String>) -> Self {
        StoreError::Unavailable {
            context: context.into(),
            source: None,
        }
    }
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

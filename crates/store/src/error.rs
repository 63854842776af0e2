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
    #[error("store unavailable: {0}")]
    Unavailable(String),
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
    #[error("store backend error: {0}")]
    Backend(String),
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

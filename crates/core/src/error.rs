//! The one error type of the core. Dialects map each variant to their own wire shape.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CoreError {
    /// Unknown user or wrong password; deliberately indistinguishable.
    #[error("incorrect username or password")]
    InvalidCredentials,
    /// A wrong, malformed or replayed one-time code.
    #[error("incorrect code")]
    IncorrectCode,
    /// Unknown, expired or already used challenge.
    #[error("challenge is unknown, expired or used")]
    InvalidChallenge,
    #[error("no active second factor")]
    NoSecondFactor,
    #[error("an authenticator is already bound to this account")]
    AlreadyBound,
    #[error("too many failed attempts; retry in {retry_after} s")]
    Locked { retry_after: i64 },
    #[error("user already exists")]
    UserExists,
    #[error("user not found")]
    UserNotFound,
    #[error("user is disabled")]
    UserDisabled,
    /// Missing, invalid, expired or revoked token.
    #[error("invalid token")]
    InvalidToken,
    #[error("forbidden")]
    Forbidden,
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A message with a code could not be sent; nothing was changed.
    #[error("delivery failed: {0}")]
    DeliveryFailed(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// True for failures of the server rather than of the request.
    pub fn is_internal(&self) -> bool {
        matches!(self, CoreError::Storage(_) | CoreError::Internal(_))
    }
}

impl From<diesel::result::Error> for CoreError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => CoreError::UserExists,
            other => CoreError::Storage(other.to_string()),
        }
    }
}

impl From<diesel::r2d2::PoolError> for CoreError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        CoreError::Storage(format!("no database connection: {e}"))
    }
}

pub type CoreResult<T> = Result<T, CoreError>;

//! The one error type of the core. Each variant names one outcome; dialects map each to
//! their own wire shape, in their `error.rs`, and never look at message text.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CoreError {
    /// Unknown user or wrong password; deliberately indistinguishable.
    #[error("incorrect username or password")]
    InvalidCredentials,
    /// A wrong, malformed or replayed one-time code.
    #[error("incorrect code")]
    IncorrectCode,
    /// Unknown, expired or already used challenge (or pending login).
    #[error("challenge is unknown, expired or used")]
    InvalidChallenge,
    #[error("no active second factor")]
    NoSecondFactor,
    #[error("this second factor is already on for the account")]
    AlreadyBound,
    /// The account's authenticator must prove the change with one of its codes.
    #[error("a code of the account's authenticator is required")]
    ProofRequired,
    /// Another kind of second factor is on and must be turned off first.
    #[error("another second factor is on for this account")]
    OtherFactorActive,
    #[error("too many failed attempts; retry in {retry_after} s")]
    Locked { retry_after: i64 },
    /// Too much password hashing is waiting already; nothing was checked.
    #[error("the server is busy; retry in {retry_after} s")]
    Busy { retry_after: i64 },
    #[error("user already exists")]
    UserExists,
    #[error("user not found")]
    UserNotFound,
    #[error("user is disabled")]
    UserDisabled,
    #[error("invalid username: {0}")]
    InvalidUsername(&'static str),
    #[error("the mobile number is not valid")]
    InvalidPhoneNumber,
    #[error("the mobile number is already used for two-factor authentication")]
    PhoneNumberTaken,
    /// The user has no address on the channel a code was to be sent over.
    #[error("no address to send to")]
    NoDestination,
    /// Missing, invalid, expired or revoked token.
    #[error("invalid token")]
    InvalidToken,
    #[error("forbidden")]
    Forbidden,
    /// A query's value, operator or shape the inventory cannot take.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// A file id the user does not have, or that cannot exist.
    #[error("invalid file: {0}")]
    InvalidFile(String),
    /// A unique row that exists already (other than a user).
    #[error("conflicting row")]
    Conflict,
    /// A setting that cannot be used (a key, an address, a URL).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
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
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => CoreError::Conflict,
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

//! The one error type of the UCloud dialect, rendered as UCloud's `CommonErrorMessage`:
//! `{"why": "...", "errorCode": null}` with the status the Kotlin service used.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use thiserror::Error;
use twofa_core::CoreError;
use utoipa::ToSchema;

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("Bad Request")]
    BadRequest,
    #[error("Invalid request received (no body?)")]
    NoBody,
    #[error("Invalid request received (wrong type)")]
    WrongType,
    #[error("Request body too large")]
    TooLarge,
    #[error("Unauthorized")]
    Unauthorized,
    #[error("Invalid token")]
    InvalidToken,
    #[error("Forbidden")]
    Forbidden,
    #[error("Incorrect username or password")]
    InvalidCredentials,
    #[error("Incorrect code")]
    IncorrectCode,
    #[error("An authenticator has already been bound to your account.")]
    AlreadyBound,
    #[error("Username wrong")]
    UnknownUsername,
    #[error("Too many requests. Please wait a few minutes and try again.")]
    Locked { retry_after: i64 },
    #[error("Internal Server Error")]
    Internal,
}

/// UCloud's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommonErrorMessage {
    /// Human-readable reason.
    pub why: String,
    /// Always present; null for these calls.
    #[serde(rename = "errorCode")]
    pub error_code: Option<String>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest
            | ApiError::NoBody
            | ApiError::WrongType
            | ApiError::TooLarge
            | ApiError::AlreadyBound
            | ApiError::UnknownUsername => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized
            | ApiError::InvalidToken
            | ApiError::InvalidCredentials
            | ApiError::IncorrectCode => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::Locked { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::Locked { retry_after } = self {
            response.insert_header(("Retry-After", retry_after.to_string()));
        }
        response.json(CommonErrorMessage {
            why: self.to_string(),
            error_code: None,
        })
    }
}

/// The calls whose wire gives some core outcomes a meaning of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// Refresh and logout: a bad refresh token is "Invalid token".
    Refresh,
    /// The admin reset: an unknown user is "Username wrong".
    ResetMfa,
}

impl ApiError {
    /// The mapping of core failures for `call`: its own meanings, then the common one.
    pub(crate) fn at(call: Call) -> impl Fn(CoreError) -> ApiError {
        move |e| match (call, e) {
            (Call::Refresh, CoreError::InvalidToken) => ApiError::InvalidToken,
            (Call::ResetMfa, CoreError::UserNotFound) => ApiError::UnknownUsername,
            (_, e) => e.into(),
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::InvalidCredentials | CoreError::UserDisabled => ApiError::InvalidCredentials,
            // Kotlin answers an unknown or expired challenge exactly like a wrong code.
            CoreError::IncorrectCode | CoreError::InvalidChallenge | CoreError::NoSecondFactor => {
                ApiError::IncorrectCode
            }
            CoreError::AlreadyBound => ApiError::AlreadyBound,
            CoreError::Locked { retry_after } | CoreError::Busy { retry_after } => {
                ApiError::Locked { retry_after }
            }
            CoreError::InvalidToken | CoreError::UserNotFound => ApiError::Unauthorized,
            CoreError::Forbidden | CoreError::ProofRequired | CoreError::OtherFactorActive => {
                ApiError::Forbidden
            }
            CoreError::UserExists
            | CoreError::Conflict
            | CoreError::InvalidUsername(_)
            | CoreError::InvalidPhoneNumber
            | CoreError::PhoneNumberTaken
            | CoreError::NoDestination
            | CoreError::InvalidQuery(_)
            | CoreError::InvalidFile(_) => ApiError::BadRequest,
            CoreError::InvalidConfig(_)
            | CoreError::Storage(_)
            | CoreError::Internal(_)
            | CoreError::DeliveryFailed(_) => {
                tracing::error!(error = %e, "ucloud request failed");
                ApiError::Internal
            }
        }
    }
}

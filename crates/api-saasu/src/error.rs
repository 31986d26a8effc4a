//! The one error type of the Saasu dialect and its wire form (reference §2.2, §3.2):
//! OAuth errors `{"error","error_description"}` on `/authorisation/...`, and on
//! `/User/...` Web API's shapes: 400 `{"Message":"The request is invalid.",
//! "ModelState":{...}}` for invalid models, 400 with a bare JSON string for business
//! errors, 401 `{"Message":"Authorization has been denied for this request."}`. Each
//! body is rendered as JSON or XML, as negotiated for the request.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use std::collections::BTreeMap;
use thiserror::Error;
use twofa_core::CoreError;

use crate::extract::Format;
use crate::wire::{HttpError, OAuthError, Text};

pub const DENIED: &str = "Authorization has been denied for this request.";
pub const INVALID_REQUEST: &str = "The request is invalid.";
pub const WRONG_CODE: &str = "Invalid one-time password.";
pub const ALREADY_ON: &str = "Two-factor authentication is already enabled.";
pub const NOT_ON: &str = "Two-factor authentication is not enabled.";
pub const NUMBER_TAKEN: &str =
    "This mobile number is already used for two-factor authentication by another user.";
pub const SMS_FAILED: &str = "The SMS could not be sent. Nothing was changed; try again later.";
pub const BAD_CREDENTIALS: &str = "The user name or password is incorrect.";
pub const BAD_CODE: &str = "The verification code is incorrect or has expired.";
pub const BAD_REFRESH: &str = "The refresh token is invalid or has expired.";

#[derive(Debug, Error)]
pub enum ApiError {
    /// 401 `{"Message": DENIED}`: no or bad credentials, missing or foreign FileId.
    #[error("unauthorized")]
    Unauthorized,
    /// 400 with ModelState (keys like `request.Otp`).
    #[error("invalid model")]
    Invalid(BTreeMap<String, Vec<String>>),
    /// A bare JSON string body (business errors, 400; delivery failures, 503).
    #[error("{1}")]
    Business(StatusCode, String),
    /// An OAuth error of `/authorisation/...`.
    #[error("oauth {error}")]
    OAuth {
        status: StatusCode,
        error: &'static str,
        description: Option<String>,
    },
    /// 429 with `Retry-After`, in the OAuth or the Web API shape.
    #[error("locked")]
    Locked { retry_after: i64, oauth: bool },
    /// 405, 413 or 415 `{"Message": ...}`.
    #[error("{1}")]
    Message(StatusCode, String),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn invalid(key: &str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid(BTreeMap::from([(key.to_string(), vec![message.into()])]))
    }

    pub fn business(message: impl Into<String>) -> ApiError {
        ApiError::Business(StatusCode::BAD_REQUEST, message.into())
    }

    pub fn oauth(status: StatusCode, error: &'static str, description: &str) -> ApiError {
        ApiError::OAuth {
            status,
            error,
            description: Some(description.to_string()),
        }
    }

    /// Core failures of the OAuth endpoints.
    pub fn from_oauth(e: CoreError) -> ApiError {
        match e {
            CoreError::InvalidCredentials | CoreError::UserDisabled | CoreError::UserNotFound => {
                ApiError::oauth(StatusCode::BAD_REQUEST, "invalid_grant", BAD_CREDENTIALS)
            }
            CoreError::IncorrectCode | CoreError::InvalidChallenge => {
                ApiError::oauth(StatusCode::UNAUTHORIZED, "invalid_grant", BAD_CODE)
            }
            CoreError::NoSecondFactor => ApiError::oauth(
                StatusCode::UNAUTHORIZED,
                "invalid_grant",
                "This account's second factor cannot be used with this API.",
            ),
            CoreError::InvalidToken => {
                ApiError::oauth(StatusCode::BAD_REQUEST, "invalid_grant", BAD_REFRESH)
            }
            CoreError::Locked { retry_after } | CoreError::Busy { retry_after } => {
                ApiError::Locked {
                    retry_after,
                    oauth: true,
                }
            }
            CoreError::DeliveryFailed(_) => ApiError::oauth(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "The verification code could not be sent; try again later.",
            ),
            CoreError::InvalidUsername(_) | CoreError::NoDestination => ApiError::oauth(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request is missing or has an invalid parameter.",
            ),
            other => ApiError::from(other),
        }
    }

    /// The response in the negotiated format. The one place errors meet the wire.
    pub fn render(&self, format: Format) -> HttpResponse {
        match self {
            ApiError::Unauthorized => format.reply(
                StatusCode::UNAUTHORIZED,
                &HttpError {
                    message: DENIED.into(),
                    model_state: None,
                },
            ),
            ApiError::Invalid(state) => format.reply(
                StatusCode::BAD_REQUEST,
                &HttpError {
                    message: INVALID_REQUEST.into(),
                    model_state: Some(state.clone()),
                },
            ),
            ApiError::Business(status, text) => format.reply(*status, &Text(text.clone())),
            ApiError::OAuth {
                status,
                error,
                description,
            } => format.reply(
                *status,
                &OAuthError {
                    error: error.to_string(),
                    error_description: description.clone(),
                },
            ),
            ApiError::Locked { retry_after, oauth } => {
                // Wrong passwords or codes, or too many codes sent: one wording fits all.
                let text = format!("Too many requests. Try again in {retry_after} seconds.");
                let mut response = if *oauth {
                    format.reply(
                        StatusCode::TOO_MANY_REQUESTS,
                        &OAuthError {
                            error: "invalid_grant".into(),
                            error_description: Some(text),
                        },
                    )
                } else {
                    format.reply(
                        StatusCode::TOO_MANY_REQUESTS,
                        &HttpError {
                            message: text,
                            model_state: None,
                        },
                    )
                };
                if let Ok(value) = header::HeaderValue::from_str(&retry_after.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
            ApiError::Message(status, message) => format.reply(
                *status,
                &HttpError {
                    message: message.clone(),
                    model_state: None,
                },
            ),
            ApiError::Internal => format.reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                &HttpError {
                    message: "An error has occurred.".into(),
                    model_state: None,
                },
            ),
        }
    }
}

/// Opt-in by a user with an authenticator, without one of its codes.
pub const AUTHENTICATOR_CODE_REQUIRED: &str =
    "This account has an authenticator app: send one of its codes as Otp to add a mobile number.";
/// Opt-in by a user whose second factor is email.
pub const EMAIL_FACTOR_ON: &str =
    "This account has two-factor authentication by email: turn it off before adding a mobile number.";

/// Core failures of the `/User/...` endpoints.
impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::InvalidToken
            | CoreError::UserNotFound
            | CoreError::UserDisabled
            | CoreError::InvalidCredentials
            | CoreError::Forbidden => ApiError::Unauthorized,
            CoreError::IncorrectCode | CoreError::InvalidChallenge => {
                ApiError::business(WRONG_CODE)
            }
            CoreError::AlreadyBound => ApiError::business(ALREADY_ON),
            CoreError::NoSecondFactor => ApiError::business(NOT_ON),
            CoreError::ProofRequired => ApiError::business(AUTHENTICATOR_CODE_REQUIRED),
            CoreError::OtherFactorActive => ApiError::business(EMAIL_FACTOR_ON),
            // Core parses the number; a bad one is a validation failure of the field.
            CoreError::InvalidPhoneNumber => ApiError::invalid(
                "request.MobileNumber",
                "The MobileNumber field is not a valid mobile number.",
            ),
            CoreError::PhoneNumberTaken | CoreError::Conflict => ApiError::business(NUMBER_TAKEN),
            e @ (CoreError::InvalidUsername(_)
            | CoreError::NoDestination
            | CoreError::InvalidQuery(_)
            | CoreError::InvalidFile(_)
            | CoreError::UserExists) => ApiError::business(e.to_string()),
            CoreError::Locked { retry_after } | CoreError::Busy { retry_after } => {
                ApiError::Locked {
                    retry_after,
                    oauth: false,
                }
            }
            CoreError::DeliveryFailed(_) => {
                ApiError::Business(StatusCode::SERVICE_UNAVAILABLE, SMS_FAILED.into())
            }
            CoreError::InvalidConfig(_) | CoreError::Storage(_) | CoreError::Internal(_) => {
                tracing::error!(error = %e, "saasu request failed");
                ApiError::Internal
            }
        }
    }
}

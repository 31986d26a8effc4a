//! The one error type of the ZStack dialect. REST-layer problems are plain text with
//! 400/404/405; every API-level failure is 503 with `{"error":{code,description,details}}`
//! (ZStack never answers 401).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use thiserror::Error;
use twofa_core::CoreError;
use utoipa::ToSchema;

/// ZStack error codes used by this dialect, with their fixed descriptions
/// (`conf/errorCodes/identity.xml`, `sys.xml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Id1000,
    Id1001,
    Id1002,
    Id2000,
    Id2001,
    Id2002,
    Sys1000,
    Sys1006,
    Sys1007,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Id1000 => "ID.1000",
            Code::Id1001 => "ID.1001",
            Code::Id1002 => "ID.1002",
            Code::Id2000 => "ID.2000",
            Code::Id2001 => "ID.2001",
            Code::Id2002 => "ID.2002",
            Code::Sys1000 => "SYS.1000",
            Code::Sys1006 => "SYS.1006",
            Code::Sys1007 => "SYS.1007",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Code::Id1000 => "Unable to authenticate a user",
            Code::Id1001 => {
                "The session is invalid, either wrong session id or the session has been expired"
            }
            Code::Id1002 => "The user doesn't have permission to perform the operation",
            Code::Id2000 => "Addition authentication error",
            Code::Id2001 => "The user has to login by addition authentication",
            Code::Id2002 => "Fail to authenticate a user due to addition authentication",
            Code::Sys1000 => "An internal error happened in system",
            Code::Sys1006 => "An operation failed",
            Code::Sys1007 => "One or more API argument is invalid",
        }
    }
}

pub(crate) const ADDITIONAL_AUTH_FAILED: &str = "additional authentication failed";
pub(crate) const WRONG_CREDENTIALS: &str = "wrong account name or password";

#[derive(Debug, Error)]
pub enum ApiError {
    /// REST-layer rejection: 400 plain text.
    #[error("{0}")]
    BadRequest(String),
    /// 404 plain text.
    #[error("{0}")]
    NotFound(String),
    /// 405 plain text.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// An API-level failure: 503 JSON.
    #[error("{}: {details}", code.as_str())]
    Api { code: Code, details: String },
}

impl ApiError {
    pub fn api(code: Code, details: impl Into<String>) -> Self {
        ApiError::Api {
            code,
            details: details.into(),
        }
    }

    pub fn bad_request(text: impl Into<String>) -> Self {
        ApiError::BadRequest(text.into())
    }

    /// The JSON body of an API-level failure (also stored as an async job's result).
    pub fn body(&self) -> serde_json::Value {
        match self {
            ApiError::Api { code, details } => serde_json::json!({ "error": ErrorCode {
                code: code.as_str().into(),
                description: code.description().into(),
                details: details.clone(),
            }}),
            other => serde_json::Value::String(other.to_string()),
        }
    }
}

/// ZStack's `ErrorCode` (null fields omitted).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorCode {
    pub code: String,
    pub description: String,
    pub details: String,
}

/// `{"error": {...}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorReply {
    pub error: ErrorCode,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Api { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Api { .. } => response
                .content_type("application/json;charset=UTF-8")
                .body(self.body().to_string()),
            other => response
                .content_type("text/plain;charset=UTF-8")
                .body(other.to_string()),
        }
    }
}

impl ApiError {
    /// For calls that need a live session: any failure but the server's is `ID.1001`.
    pub fn session(e: CoreError) -> ApiError {
        match e {
            e if e.is_internal() => ApiError::from(e),
            _ => ApiError::api(Code::Id1001, "Session expired"),
        }
    }

    /// Logout: ending a session that is already gone is not an error.
    pub fn logout(outcome: Result<(), CoreError>) -> Result<(), ApiError> {
        match outcome {
            Ok(()) | Err(CoreError::InvalidToken) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::InvalidCredentials | CoreError::UserDisabled | CoreError::UserNotFound => {
                ApiError::api(Code::Id1000, WRONG_CREDENTIALS)
            }
            CoreError::IncorrectCode | CoreError::InvalidChallenge => {
                ApiError::api(Code::Id2002, ADDITIONAL_AUTH_FAILED)
            }
            CoreError::NoSecondFactor => ApiError::api(Code::Id2000, ADDITIONAL_AUTH_FAILED),
            CoreError::Locked { retry_after } => ApiError::api(
                Code::Id1000,
                format!("too many failed attempts, retry in {retry_after} seconds"),
            ),
            CoreError::Busy { retry_after } => ApiError::api(
                Code::Sys1000,
                format!("the server is busy, retry in {retry_after} seconds"),
            ),
            CoreError::InvalidToken => ApiError::api(Code::Id1001, "Session expired"),
            CoreError::Forbidden => ApiError::api(
                Code::Id1002,
                "the operation is only allowed to the admin account",
            ),
            CoreError::AlreadyBound | CoreError::ProofRequired | CoreError::OtherFactorActive => {
                ApiError::api(Code::Sys1006, "two factor authentication is already bound")
            }
            // A value or operator a query field cannot take.
            CoreError::InvalidQuery(why) => ApiError::api(Code::Sys1000, why),
            CoreError::InvalidUsername(why) => ApiError::api(Code::Sys1007, why),
            e @ (CoreError::InvalidPhoneNumber
            | CoreError::PhoneNumberTaken
            | CoreError::NoDestination
            | CoreError::InvalidFile(_)) => ApiError::api(Code::Sys1007, e.to_string()),
            CoreError::UserExists
            | CoreError::Conflict
            | CoreError::InvalidConfig(_)
            | CoreError::DeliveryFailed(_)
            | CoreError::Storage(_)
            | CoreError::Internal(_) => {
                tracing::error!(error = %e, "zstack request failed");
                ApiError::api(Code::Sys1000, "internal error")
            }
        }
    }
}

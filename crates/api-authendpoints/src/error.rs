//! The one error type of the AuthEndpoints dialect. Each variant is one of the five body
//! kinds ASP.NET Core MVC produces for the reference (shared/dialects/authendpoints.md
//! §1.3): empty, plain text, ProblemDetails, ValidationProblemDetails, JSON.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;
use twofa_core::CoreError;
use utoipa::ToSchema;

#[derive(Debug, Error)]
pub enum ApiError {
    /// JwtBearer's challenge: missing, invalid or expired token; empty body.
    #[error("bearer challenge")]
    Challenge { token_presented: bool },
    /// Kind B: `BadRequest("msg")` and friends, `text/plain`.
    #[error("{1}")]
    Text(StatusCode, &'static str),
    /// Kind C: `BadRequest()`, `Unauthorized()`, `NotFound()`, and 415.
    #[error("problem {0}")]
    Problem(StatusCode),
    /// Kind D: the automatic model validation response.
    #[error("validation failed")]
    Validation(BTreeMap<String, Vec<String>>),
    /// Kind E: `{"errors": [...]}`.
    #[error("errors")]
    Errors(StatusCode, Vec<String>),
    /// Kind E: a bare JSON array of Identity error descriptions.
    #[error("identity errors")]
    List(StatusCode, Vec<String>),
    /// Too many wrong codes, passwords or sends: 429 ProblemDetails with Retry-After.
    #[error("too many requests")]
    Locked { retry_after: i64 },
    /// The email could not be sent: 500 ProblemDetails saying so. Nothing was changed.
    #[error("delivery failed")]
    Delivery,
    #[error("internal error")]
    Internal,
}

/// ASP.NET Core's ProblemDetails (and ValidationProblemDetails with `errors`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProblemDetails {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub trace_id: String,
    /// Only in validation problems: field name (or JSON path) to messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, Vec<String>>>,
}

/// `{"errors": ["..."]}`, the library's `ErrorResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse {
    pub errors: Vec<String>,
}

/// A W3C trace id, `00-<32 hex>-<16 hex>-00`, unique per response. Not a secret: std's
/// randomly keyed hasher over a counter is enough.
fn trace_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static STATE: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let state = STATE.get_or_init(Default::default);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let word = |salt: u64| {
        let mut h = state.build_hasher();
        h.write_u64(n);
        h.write_u64(salt);
        h.finish()
    };
    format!("00-{:016x}{:016x}-{:016x}-00", word(1), word(2), word(3))
}

fn problem_type_and_title(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => (
            "https://tools.ietf.org/html/rfc7231#section-6.5.1",
            "Bad Request",
        ),
        401 => (
            "https://tools.ietf.org/html/rfc7235#section-3.1",
            "Unauthorized",
        ),
        404 => (
            "https://tools.ietf.org/html/rfc7231#section-6.5.4",
            "Not Found",
        ),
        409 => (
            "https://tools.ietf.org/html/rfc7231#section-6.5.8",
            "Conflict",
        ),
        415 => (
            "https://tools.ietf.org/html/rfc7231#section-6.5.13",
            "Unsupported Media Type",
        ),
        429 => (
            "https://tools.ietf.org/html/rfc6585#section-4",
            "Too Many Requests",
        ),
        _ => (
            "https://tools.ietf.org/html/rfc7231#section-6.6.1",
            "An error occurred while processing your request.",
        ),
    }
}

fn problem(
    status: StatusCode,
    detail: Option<&str>,
    errors: Option<BTreeMap<String, Vec<String>>>,
) -> HttpResponse {
    let (kind, title) = problem_type_and_title(status);
    let title = if errors.is_some() {
        "One or more validation errors occurred."
    } else {
        title
    };
    let body = ProblemDetails {
        kind: kind.into(),
        title: title.into(),
        status: status.as_u16(),
        detail: detail.map(str::to_string),
        trace_id: trace_id(),
        errors,
    };
    HttpResponse::build(status)
        .content_type("application/problem+json; charset=utf-8")
        .body(serde_json::to_string(&body).unwrap_or_default())
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Challenge { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Text(s, _)
            | ApiError::Problem(s)
            | ApiError::Errors(s, _)
            | ApiError::List(s, _) => *s,
            ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::Locked { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Delivery | ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            ApiError::Challenge { token_presented } => HttpResponse::Unauthorized()
                .insert_header((
                    header::WWW_AUTHENTICATE,
                    if *token_presented {
                        "Bearer error=\"invalid_token\""
                    } else {
                        "Bearer"
                    },
                ))
                .finish(),
            ApiError::Text(_, text) => HttpResponse::build(status)
                .content_type("text/plain; charset=utf-8")
                .body(*text),
            ApiError::Problem(_) | ApiError::Internal => problem(status, None, None),
            ApiError::Validation(errors) => problem(status, None, Some(errors.clone())),
            ApiError::Errors(_, errors) => HttpResponse::build(status)
                .content_type("application/json; charset=utf-8")
                .body(json!({ "errors": errors }).to_string()),
            ApiError::List(_, items) => HttpResponse::build(status)
                .content_type("application/json; charset=utf-8")
                .body(json!(items).to_string()),
            ApiError::Locked { retry_after } => {
                let mut response =
                    problem(status, Some("Too many attempts. Try again later."), None);
                if let Ok(value) = header::HeaderValue::from_str(&retry_after.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
            ApiError::Delivery => problem(
                status,
                Some("The email could not be sent. Nothing was changed; try again later."),
                None,
            ),
        }
    }
}

impl ApiError {
    pub fn validation(key: &str, message: impl Into<String>) -> ApiError {
        ApiError::Validation(BTreeMap::from([(key.to_string(), vec![message.into()])]))
    }
}

/// The endpoints whose wire gives some core outcomes a meaning of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `POST /users`.
    Register,
    /// `verify_email_confirm`, `reset_password_confirm`: a token from a link.
    LinkToken,
    /// `POST /users/set_password`.
    SetPassword,
    /// `DELETE /users/delete`.
    Delete,
    /// `POST /users/enable_2fa_confirm`.
    EnableConfirm,
    /// `POST /users/two_step_verification_confirm`.
    Confirm,
    /// `POST /jwt/refresh`.
    Refresh,
}

impl ApiError {
    /// What `/jwt/refresh` answers for any refresh token it cannot use.
    pub(crate) fn invalid_refresh() -> ApiError {
        ApiError::Errors(
            StatusCode::BAD_REQUEST,
            vec!["Invalid refresh token. Token may be expired or invalid.".into()],
        )
    }

    /// The mapping of core failures at `endpoint`: its own meanings first, then what
    /// every endpoint answers (`From<CoreError>`).
    pub(crate) fn at(endpoint: Endpoint) -> impl Fn(CoreError) -> ApiError {
        move |e| match (endpoint, e) {
            (Endpoint::Register, CoreError::InvalidUsername(why)) => ApiError::Errors(
                StatusCode::CONFLICT,
                vec![format!("Error code: InvalidUserName\n{why}")],
            ),
            (Endpoint::LinkToken, CoreError::IncorrectCode) => {
                ApiError::List(StatusCode::CONFLICT, vec!["Invalid token.".into()])
            }
            (Endpoint::SetPassword, CoreError::InvalidCredentials) => ApiError::Errors(
                StatusCode::BAD_REQUEST,
                vec!["Invalid current password".into()],
            ),
            (Endpoint::Delete, CoreError::UserNotFound) => {
                ApiError::List(StatusCode::CONFLICT, vec!["User not found.".into()])
            }
            (Endpoint::EnableConfirm, CoreError::IncorrectCode) => {
                ApiError::Text(StatusCode::BAD_REQUEST, "Invalid two factor token")
            }
            (
                Endpoint::Confirm,
                CoreError::IncorrectCode | CoreError::InvalidChallenge | CoreError::NoSecondFactor,
            ) => ApiError::Text(StatusCode::BAD_REQUEST, "Invalid token"),
            (Endpoint::Refresh, CoreError::InvalidToken) => ApiError::invalid_refresh(),
            (_, e) => e.into(),
        }
    }
}

/// Core failures that every endpoint renders alike (endpoint-specific meanings are in
/// [`ApiError::at`]).
impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Locked { retry_after } | CoreError::Busy { retry_after } => {
                ApiError::Locked { retry_after }
            }
            CoreError::DeliveryFailed(_) => ApiError::Delivery,
            CoreError::InvalidToken | CoreError::UserNotFound | CoreError::UserDisabled => {
                ApiError::Challenge {
                    token_presented: true,
                }
            }
            CoreError::InvalidCredentials => {
                ApiError::Text(StatusCode::UNAUTHORIZED, "Invalid credentials")
            }
            CoreError::IncorrectCode
            | CoreError::InvalidChallenge
            | CoreError::NoSecondFactor
            | CoreError::InvalidUsername(_)
            | CoreError::NoDestination
            | CoreError::InvalidPhoneNumber
            | CoreError::InvalidQuery(_)
            | CoreError::InvalidFile(_) => ApiError::Problem(StatusCode::BAD_REQUEST),
            CoreError::AlreadyBound
            | CoreError::Forbidden
            | CoreError::ProofRequired
            | CoreError::OtherFactorActive => ApiError::Problem(StatusCode::UNAUTHORIZED),
            CoreError::UserExists => ApiError::Errors(
                StatusCode::CONFLICT,
                vec!["Username already exists.".into()],
            ),
            CoreError::PhoneNumberTaken | CoreError::Conflict => {
                ApiError::Problem(StatusCode::CONFLICT)
            }
            CoreError::InvalidConfig(_) | CoreError::Storage(_) | CoreError::Internal(_) => {
                tracing::error!(error = %e, "authendpoints request failed");
                ApiError::Internal
            }
        }
    }
}

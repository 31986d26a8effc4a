//! `JwtController` (reference §5.1): create, refresh, verify.

use actix_web::http::StatusCode;
use actix_web::{get, post, HttpRequest, HttpResponse};
use twofa_core::{Password, SignIn};

use crate::error::{ApiError, Endpoint, ErrorResponse, ProblemDetails};
use crate::extract::{core, origin, settings, Authenticated, Json};
use crate::tokens;
use crate::wire::{LoginRequest, RefreshRequest, TokenPair, TwoStepRequired};

/// Signs in with username and password. With two-step verification on, answers
/// `{"authSuccess":false,"twoStepVerificationRequired":true}` and no tokens.
#[utoipa::path(
    tag = "jwt",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Tokens, or two-step verification required", body = TokenPair),
        (status = 400, description = "Validation problem", content((ProblemDetails = "application/problem+json"))),
        (status = 401, description = "`Invalid credentials` (text/plain)", body = String, content_type = "text/plain"),
        (status = 415, description = "Not JSON", content((ProblemDetails = "application/problem+json"))),
        (status = 429, description = "Too many wrong passwords", content((ProblemDetails = "application/problem+json"))),
    )
)]
#[post("/jwt/create")]
pub async fn create(
    req: HttpRequest,
    Json(body): Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let core = core(&req)?;
    let signed_in = core
        .sign_in(
            origin(&req),
            body.username.unwrap_or_default(),
            Password::Plain(body.password.unwrap_or_default()),
        )
        .await?;
    match signed_in {
        SignIn::Complete(session) => {
            Ok(HttpResponse::Ok().json(tokens::pair(&core, &settings(&req), &session)?))
        }
        SignIn::SecondFactorRequired { .. } => Ok(HttpResponse::Ok().json(TwoStepRequired {
            auth_success: false,
            two_step_verification_required: true,
        })),
    }
}

/// A new token pair for a valid refresh token (signed with the refresh key, of a
/// session that was not ended by a password change or deletion).
#[utoipa::path(
    tag = "jwt",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenPair, description = "Success"),
        (status = 400, description = "Invalid or expired refresh token (errors), or validation problem (ProblemDetails)", content((ErrorResponse = "application/json"), (ProblemDetails = "application/problem+json"))),
        (status = 404, description = "`{\"errors\":[\"User not found.\"]}`", body = ErrorResponse),
        (status = 415, description = "Not JSON", content((ProblemDetails = "application/problem+json"))),
    )
)]
#[post("/jwt/refresh")]
pub async fn refresh(
    req: HttpRequest,
    Json(body): Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let core = core(&req)?;
    let settings = settings(&req);
    let (user_id, refresh_token) = tokens::verify_refresh(
        &core,
        &settings,
        body.refresh_token.as_deref().unwrap_or(""),
    )
    .ok_or_else(ApiError::invalid_refresh)?;
    if core.user_by_id(user_id.clone()).await?.is_none() {
        return Err(ApiError::Errors(
            StatusCode::NOT_FOUND,
            vec!["User not found.".into()],
        ));
    }
    let session = core
        .refresh_session(origin(&req), refresh_token, None)
        .await
        .map_err(ApiError::at(Endpoint::Refresh))?;
    if session.user.id != user_id {
        return Err(ApiError::invalid_refresh());
    }
    Ok(HttpResponse::Ok().json(tokens::pair(&core, &settings, &session)?))
}

/// 200 with an empty body when the access token is valid.
#[utoipa::path(
    tag = "jwt",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Valid"),
        (status = 401, description = "Missing, invalid or expired token (empty body, WWW-Authenticate: Bearer)"),
    )
)]
#[get("/jwt/verify")]
pub async fn verify(_auth: Authenticated) -> HttpResponse {
    HttpResponse::Ok().finish()
}

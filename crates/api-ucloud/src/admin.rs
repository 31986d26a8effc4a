//! Support operations (admin only).

use actix_web::{post, HttpRequest, HttpResponse};
use twofa_core::Actor;

use crate::error::{ApiError, Call, CommonErrorMessage};
use crate::extract::{core, origin, Authenticated, JsonBody};
use crate::wire::{Empty, ResetMfaRequest};

/// Removes a user's authenticator so they can enroll again.
#[utoipa::path(
    tag = "supportAssistFnd",
    security(("bearer" = [])),
    request_body = ResetMfaRequest,
    responses(
        (status = 200, body = Empty, description = "Success"),
        (status = 400, description = "Unknown username or malformed request", body = CommonErrorMessage),
        (status = 401, description = "Missing or invalid access token", body = CommonErrorMessage),
        (status = 403, description = "Caller is not an admin", body = CommonErrorMessage),
    )
)]
#[post("/api/supportAssistFnd/resetMfa")]
pub async fn reset_mfa(
    req: HttpRequest,
    Authenticated(claims): Authenticated,
    JsonBody(body): JsonBody<ResetMfaRequest>,
) -> Result<HttpResponse, ApiError> {
    core(&req)?
        .reset_second_factors(origin(&req), Actor::User(claims.uid), body.username)
        .await
        .map_err(ApiError::at(Call::ResetMfa))?;
    Ok(HttpResponse::Ok().json(Empty {}))
}

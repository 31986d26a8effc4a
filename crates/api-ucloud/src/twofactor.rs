//! The documented 2FA calls: status, create credentials, answer challenge.

use actix_web::{get, post, HttpRequest, HttpResponse};
use twofa_core::{ChallengeOutcome, FactorState};

use crate::error::{ApiError, CommonErrorMessage};
use crate::extract::{core, origin, settings, Authenticated, JsonBody};
use crate::login::completed_login;
use crate::wire::{
    AnswerChallengeRequest, Create2FACredentialsResponse, LoginResponse, TwoFactorStatusResponse,
};

/// Whether the caller has an active authenticator.
#[utoipa::path(
    tag = "auth.twofactor",
    security(("bearer" = [])),
    responses(
        (status = 200, body = TwoFactorStatusResponse, description = "Success"),
        (status = 401, description = "Missing or invalid access token", body = CommonErrorMessage),
    )
)]
#[get("/auth/2fa/status")]
pub async fn status(
    req: HttpRequest,
    Authenticated(claims): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let state = core(&req)?.totp_state(claims.uid).await?;
    Ok(HttpResponse::Ok().json(TwoFactorStatusResponse {
        connected: state == FactorState::Active,
    }))
}

/// Starts authenticator setup: a new secret (replacing any unconfirmed one) and a setup
/// challenge to confirm it with a code.
#[utoipa::path(
    tag = "auth.twofactor",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Create2FACredentialsResponse, description = "Success"),
        (status = 400, description = "An authenticator is already bound", body = CommonErrorMessage),
        (status = 401, description = "Missing or invalid access token", body = CommonErrorMessage),
    )
)]
#[post("/auth/2fa")]
pub async fn create_credentials(
    req: HttpRequest,
    Authenticated(claims): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let setup = core(&req)?
        .begin_totp_setup(origin(&req), claims.uid, settings(&req).issuer)
        .await?;
    Ok(HttpResponse::Ok().json(Create2FACredentialsResponse {
        otp_auth_uri: setup.otpauth_uri,
        qr_code_b64_data: setup.qr_png_data_uri,
        secret: setup.secret_base32,
        challenge_id: setup.challenge_id,
    }))
}

/// Answers a setup challenge (204) or a login challenge (the completed-login response).
/// Public: the challenge id is the credential.
#[utoipa::path(
    tag = "auth.twofactor",
    request_body = AnswerChallengeRequest,
    responses(
        (status = 204, description = "Setup confirmed; the authenticator is active"),
        (status = 200, description = "Login completed", body = LoginResponse),
        (status = 400, description = "Malformed request, or already bound", body = CommonErrorMessage),
        (status = 401, description = "Incorrect code, or unknown or expired challenge", body = CommonErrorMessage),
        (status = 429, description = "Too many wrong codes", body = CommonErrorMessage),
    )
)]
#[post("/auth/2fa/challenge")]
pub async fn answer_challenge(
    req: HttpRequest,
    JsonBody(body): JsonBody<AnswerChallengeRequest>,
) -> Result<HttpResponse, ApiError> {
    let outcome = core(&req)?
        .answer_challenge(origin(&req), body.challenge_id, body.verification_code)
        .await?;
    match outcome {
        ChallengeOutcome::SetupCompleted { .. } => Ok(HttpResponse::NoContent().finish()),
        ChallengeOutcome::LoggedIn { session, service } => {
            completed_login(&req, &session, service.as_deref())
        }
    }
}

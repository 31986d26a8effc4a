//! `TwoStepVerificationController` (reference §2): the four two-step verification
//! endpoints, with the reference's order of checks and status codes. Fixed: codes are
//! single use, purpose-bound, limited, and a login code needs a preceding login step.

use actix_web::http::StatusCode;
use actix_web::{get, post, HttpRequest, HttpResponse};
use twofa_core::{CodeFormat, CodePurpose, Password};

use crate::error::{ApiError, Endpoint, ProblemDetails};
use crate::extract::{core, email_code, origin, settings, Authenticated, Json};
use crate::tokens;
use crate::wire::{TokenPair, TwoStepVerificationConfirmRequest, TwoStepVerificationLoginRequest};

/// ASP.NET Identity's token provider names (case-sensitive).
const EMAIL: &str = "Email";
const AUTHENTICATOR: &str = "Authenticator";
const SIX_DIGITS: CodeFormat = CodeFormat::Digits(6);
const KNOWN_PROVIDERS: &[&str] = &["Default", "Email", "Phone", "Authenticator"];

fn unauthorized_problem() -> ApiError {
    ApiError::Problem(StatusCode::UNAUTHORIZED)
}

fn bad_request_problem() -> ApiError {
    ApiError::Problem(StatusCode::BAD_REQUEST)
}

/// Emails the signed-in user a 6-digit code that turns two-step verification on.
#[utoipa::path(
    tag = "two-step verification",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Code sent (empty body)"),
        (status = 400, description = "`Email is not verified.` (text/plain)", body = String, content_type = "text/plain"),
        (status = 401, description = "Two-step verification already on (ProblemDetails), or no valid token (empty body, no Content-Type)"),
        (status = 429, description = "More than 5 codes in 10 minutes", content((ProblemDetails = "application/problem+json"))),
        (status = 500, description = "The email could not be sent; nothing changed", content((ProblemDetails = "application/problem+json"))),
    )
)]
#[get("/users/enable_2fa")]
pub async fn enable(req: HttpRequest, auth: Authenticated) -> Result<HttpResponse, ApiError> {
    let core = core(&req)?;
    let user = core
        .user_by_id(auth.user_id)
        .await?
        .ok_or_else(unauthorized_problem)?;
    if !user.email_confirmed {
        return Err(ApiError::Text(
            StatusCode::BAD_REQUEST,
            "Email is not verified.",
        ));
    }
    if core.second_factors(user.id.clone()).await?.any() {
        return Err(unauthorized_problem());
    }
    let template = settings(&req).enable_2fa_mail;
    email_code(
        &req,
        &core,
        user.id,
        CodePurpose::EnableTwoFactor,
        SIX_DIGITS,
        template,
    )
    .await?;
    Ok(HttpResponse::Ok().finish())
}

/// Turns two-step verification on with the emailed code (`provider` `"Email"`).
#[utoipa::path(
    tag = "two-step verification",
    security(("bearer" = [])),
    request_body = TwoStepVerificationConfirmRequest,
    responses(
        (status = 200, description = "Two-step verification is on (empty body)"),
        (status = 400, description = "`Email is not confirmed` or `Invalid two factor token` (text/plain); validation or unknown provider (ProblemDetails)", content((String = "text/plain"), (ProblemDetails = "application/problem+json"))),
        (status = 401, description = "`Invalid user` (text/plain), already on (ProblemDetails), or no valid token (empty body, no Content-Type)"),
        (status = 415, description = "Not JSON", content((ProblemDetails = "application/problem+json"))),
        (status = 429, description = "Too many wrong codes", content((ProblemDetails = "application/problem+json"))),
    )
)]
#[post("/users/enable_2fa_confirm")]
pub async fn enable_confirm(
    req: HttpRequest,
    auth: Authenticated,
    Json(body): Json<TwoStepVerificationConfirmRequest>,
) -> Result<HttpResponse, ApiError> {
    let core = core(&req)?;
    let user = core
        .user_by_id(auth.user_id)
        .await?
        .ok_or(ApiError::Text(StatusCode::UNAUTHORIZED, "Invalid user"))?;
    if !user.email_confirmed {
        return Err(ApiError::Text(
            StatusCode::BAD_REQUEST,
            "Email is not confirmed",
        ));
    }
    if core.second_factors(user.id.clone()).await?.any() {
        return Err(unauthorized_problem());
    }
    let invalid = ApiError::Text(StatusCode::BAD_REQUEST, "Invalid two factor token");
    let provider = body.provider.unwrap_or_default();
    if provider != EMAIL {
        // Identity threw (500) for unknown names; other providers have no code here.
        return Err(if KNOWN_PROVIDERS.contains(&provider.as_str()) {
            invalid
        } else {
            bad_request_problem()
        });
    }
    core.enable_email_two_factor(origin(&req), user.id, body.token.unwrap_or_default())
        .await
        .map_err(ApiError::at(Endpoint::EnableConfirm))?;
    Ok(HttpResponse::Ok().finish())
}

/// First step of a two-step login: checks the password and, for `"Email"`, emails a
/// code. `"Authenticator"` (a user with an authenticator app) sends nothing.
#[utoipa::path(
    tag = "two-step verification",
    request_body = TwoStepVerificationLoginRequest,
    responses(
        (status = 200, description = "Code sent, or authenticator code awaited (empty body)"),
        (status = 400, description = "`Email is not verified` (text/plain); validation, or provider not valid for the user (ProblemDetails)", content((String = "text/plain"), (ProblemDetails = "application/problem+json"))),
        (status = 401, description = "`Invalid credentials` (text/plain), or two-step verification off (ProblemDetails)", content((String = "text/plain"), (ProblemDetails = "application/problem+json"))),
        (status = 415, description = "Not JSON", content((ProblemDetails = "application/problem+json"))),
        (status = 429, description = "Too many wrong passwords, or more than 5 codes in 10 minutes", content((ProblemDetails = "application/problem+json"))),
        (status = 500, description = "The email could not be sent", content((ProblemDetails = "application/problem+json"))),
    )
)]
#[post("/users/two_step_verification_login")]
pub async fn login(
    req: HttpRequest,
    Json(body): Json<TwoStepVerificationLoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let core = core(&req)?;
    let (user, factors) = core
        .first_factor(
            origin(&req),
            body.username.unwrap_or_default(),
            Password::Plain(body.password.unwrap_or_default()),
        )
        .await?;
    if !factors.any() {
        return Err(unauthorized_problem());
    }
    if !user.email_confirmed {
        return Err(ApiError::Text(
            StatusCode::BAD_REQUEST,
            "Email is not verified",
        ));
    }
    // A provider is valid only for a factor the user turned on: an authenticator user
    // cannot be downgraded to emailed codes.
    match body.provider.as_deref() {
        Some(EMAIL) if factors.email => {
            let template = settings(&req).login_mail;
            email_code(
                &req,
                &core,
                user.id,
                CodePurpose::Login,
                SIX_DIGITS,
                template,
            )
            .await?;
        }
        Some(AUTHENTICATOR) if factors.totp => {
            core.begin_authenticator_login(origin(&req), user.id)
                .await?;
        }
        _ => return Err(bad_request_problem()),
    }
    Ok(HttpResponse::Ok().finish())
}

/// Second step: the code from the email (or, with `"Authenticator"`, from the app)
/// for the user with this email address. Answers a token pair.
#[utoipa::path(
    tag = "two-step verification",
    request_body = TwoStepVerificationConfirmRequest,
    responses(
        (status = 200, body = TokenPair, description = "Success"),
        (status = 400, description = "`Invalid token` (text/plain); unknown email or validation (ProblemDetails)", content((String = "text/plain"), (ProblemDetails = "application/problem+json"))),
        (status = 401, description = "Two-step verification off (ProblemDetails)", content((ProblemDetails = "application/problem+json"))),
        (status = 415, description = "Not JSON", content((ProblemDetails = "application/problem+json"))),
        (status = 429, description = "Too many wrong codes", content((ProblemDetails = "application/problem+json"))),
    )
)]
#[post("/users/two_step_verification_confirm")]
pub async fn confirm(
    req: HttpRequest,
    Json(body): Json<TwoStepVerificationConfirmRequest>,
) -> Result<HttpResponse, ApiError> {
    let core = core(&req)?;
    let user = core
        .user_by_email(body.email.unwrap_or_default())
        .await?
        .ok_or_else(bad_request_problem)?;
    let factors = core.second_factors(user.id.clone()).await?;
    if !factors.any() {
        return Err(unauthorized_problem());
    }
    let code = body.token.unwrap_or_default();
    // The reference ignored `provider` (always Email); "Authenticator" selects the app.
    let session = if body.provider.as_deref() == Some(AUTHENTICATOR) && factors.totp {
        core.login_with_totp(origin(&req), user.id, code).await
    } else {
        core.login_with_emailed_code(origin(&req), user.id, code)
            .await
    };
    let session = session.map_err(ApiError::at(Endpoint::Confirm))?;
    Ok(HttpResponse::Ok().json(tokens::pair(&core, &settings(&req), &session)?))
}

//! `/authorisation/...`: the resource-owner password grant, its two-factor variant,
//! refresh and ping (reference §2.2, §2.3).

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use twofa_core::{LoginName, Password, SignIn, SmsLogin};

use crate::error::ApiError;
use crate::extract::{Ctx, Errors};
use crate::tokens;
use crate::wire::{HttpError, OAuthError, PingResult, TokenGrant, TokenRequest};

/// The fields of a token request, bound case-insensitively from JSON, XML or a form.
struct Grant {
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    verification_code: Option<String>,
    refresh_token: Option<String>,
}

fn bind(ctx: &Ctx) -> Result<Grant, ApiError> {
    let invalid = |_| {
        ApiError::oauth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request body is malformed.",
        )
    };
    let fields = ctx.fields().map_err(|e| match e {
        ApiError::Message(..) => e,
        other => invalid(other),
    })?;
    let mut errors = Errors::default();
    let grant = Grant {
        grant_type: fields.string("grant_type", &mut errors),
        username: fields.string("username", &mut errors),
        password: fields.string("password", &mut errors),
        verification_code: fields.string("verification_code", &mut errors),
        refresh_token: fields.string("refresh_token", &mut errors),
    };
    errors.finish().map_err(invalid)?;
    Ok(grant)
}

fn password_grant(grant: &Grant) -> Result<(String, Password), ApiError> {
    match grant.grant_type.as_deref().map(str::trim) {
        Some(t) if t.eq_ignore_ascii_case("password") => {}
        Some(_) => {
            return Err(ApiError::OAuth {
                status: StatusCode::BAD_REQUEST,
                error: "unsupported_grant_type",
                description: None,
            })
        }
        None => {
            return Err(ApiError::oauth(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required.",
            ))
        }
    }
    match (&grant.username, &grant.password) {
        (Some(u), Some(p)) if !u.trim().is_empty() && !p.is_empty() => {
            Ok((u.trim().to_string(), Password::Plain(p.clone())))
        }
        _ => Err(ApiError::oauth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "username and password are required.",
        )),
    }
}

fn code_required(description: &str) -> ApiError {
    ApiError::oauth(StatusCode::UNAUTHORIZED, "2fa_code_required", description)
}

async fn granted(ctx: &Ctx, session: &twofa_core::Session) -> Result<HttpResponse, ApiError> {
    let grant = tokens::grant(ctx, session, 0).await?;
    Ok(ctx.format.reply(StatusCode::OK, &grant))
}

/// Password grant. A user with any second factor gets `401 2fa_code_required` and no
/// SMS: only `token-2fa` sends codes.
#[utoipa::path(
    post,
    path = "/authorisation/token",
    tag = "authorisation",
    request_body(content((TokenRequest = "application/json"), (TokenRequest = "application/xml"), (TokenRequest = "application/x-www-form-urlencoded")), description = "JSON, XML or form-encoded: grant_type=password, username, password, scope"),
    responses(
        (status = 200, body = TokenGrant, description = "The grant; `scope` lists the user's files"),
        (status = 400, body = OAuthError, description = "`invalid_grant` (wrong credentials), `invalid_request`, `unsupported_grant_type`"),
        (status = 401, body = OAuthError, description = "`2fa_code_required`: use token-2fa"),
        (status = 429, body = OAuthError, description = "Too many wrong passwords; Retry-After"),
    )
)]
pub async fn token(ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let grant = bind(ctx)?;
    let (username, password) = password_grant(&grant)?;
    match ctx
        .core
        .sign_in(ctx.origin(), LoginName::username_or_email(username), password)
        .await
        .map_err(ApiError::from_oauth)?
    {
        SignIn::Complete(session) => granted(ctx, &session).await,
        SignIn::SecondFactorRequired { .. } => Err(code_required(
            "This user has two-factor authentication: request the token with authorisation/token-2fa.",
        )),
    }
}

/// Password grant with a second factor. An empty `verification_code` texts a 7-digit
/// code to the user's verified mobile and answers `401 2fa_code_required`; the code
/// then completes the grant. A user whose factor is an authenticator app gives its
/// 6-digit code instead (nothing is texted). A user without 2FA just gets the grant.
#[utoipa::path(
    post,
    path = "/authorisation/token-2fa",
    tag = "authorisation",
    request_body(content((TokenRequest = "application/json"), (TokenRequest = "application/xml"), (TokenRequest = "application/x-www-form-urlencoded")), description = "As for token, with verification_code"),
    responses(
        (status = 200, body = TokenGrant, description = "Success"),
        (status = 400, body = OAuthError, description = "`invalid_grant` (wrong credentials), `invalid_request`, `unsupported_grant_type`"),
        (status = 401, body = OAuthError, description = "`2fa_code_required` (a code was texted, or give the authenticator's code); `invalid_grant` for a wrong, expired or used code"),
        (status = 429, body = OAuthError, description = "Too many wrong codes or passwords, or too many codes sent; Retry-After"),
        (status = 503, body = OAuthError, description = "`temporarily_unavailable`: the SMS could not be sent"),
    )
)]
pub async fn token_2fa(ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let grant = bind(ctx)?;
    let (username, password) = password_grant(&grant)?;
    let outcome = ctx
        .core
        .sms_login(
            ctx.origin(),
            LoginName::username_or_email(username),
            password,
            grant.verification_code.clone(),
            ctx.settings.sms_login.clone(),
        )
        .await
        .map_err(ApiError::from_oauth)?;
    match outcome {
        SmsLogin::Complete(session) => granted(ctx, &session).await,
        SmsLogin::CodeSent => Err(code_required(
            "A verification code has been sent to the registered mobile number.",
        )),
        SmsLogin::CodeRequired => Err(code_required(
            "Enter the code from the authenticator app as verification_code.",
        )),
    }
}

/// Refresh: a new access token for the same refresh token; the previous access token
/// stops working.
#[utoipa::path(
    post,
    path = "/authorisation/refresh",
    tag = "authorisation",
    request_body(content((TokenRequest = "application/json"), (TokenRequest = "application/xml"), (TokenRequest = "application/x-www-form-urlencoded")), description = "grant_type=refresh_token, refresh_token"),
    responses(
        (status = 200, body = TokenGrant, description = "Same refresh token, new access token"),
        (status = 400, body = OAuthError, description = "`invalid_grant`: unknown, revoked or expired refresh token; `unsupported_grant_type`"),
    )
)]
pub async fn refresh(ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let grant = bind(ctx)?;
    if let Some(t) = grant.grant_type.as_deref() {
        if !t.trim().eq_ignore_ascii_case("refresh_token") {
            return Err(ApiError::OAuth {
                status: StatusCode::BAD_REQUEST,
                error: "unsupported_grant_type",
                description: None,
            });
        }
    }
    let refresh_token = grant
        .refresh_token
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            ApiError::oauth(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "refresh_token is required.",
            )
        })?;
    let (session, generation) = ctx
        .core
        .refresh_generation(ctx.origin(), refresh_token.trim().to_string())
        .await
        .map_err(ApiError::from_oauth)?;
    let grant = tokens::grant(ctx, &session, generation).await?;
    Ok(ctx.format.reply(StatusCode::OK, &grant))
}

/// 200 while the bearer token is valid; 401 when it is missing, bogus, stale (an
/// earlier generation) or a refresh token.
#[utoipa::path(
    get,
    path = "/authorisation/ping",
    tag = "authorisation",
    responses(
        (status = 200, body = PingResult, description = "`true`"),
        (status = 401, body = HttpError, description = "No or bad credentials"),
    ),
    security(("bearer" = []))
)]
pub async fn ping(ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let token = ctx.bearer().ok_or(ApiError::Unauthorized)?;
    tokens::verify(ctx, &token).await?;
    Ok(ctx.format.reply(StatusCode::OK, &PingResult(true)))
}

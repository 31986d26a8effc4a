//! Access tokens, refresh and logout.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{post, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use twofa_core::Session;

use crate::error::{ApiError, Call, CommonErrorMessage};
use crate::extract::{bearer, core, origin};
use crate::wire::{AccessAndCsrfResponse, AccessTokenResponse};
use crate::DIALECT;

const CSRF_HEADER: &str = "X-CSRFToken";

/// A UCloud access token: the core claims (`sub`, `uid`, `iss`, `iat`, `exp`) plus the
/// claim set UCloud's own backend issues (its `JWTFactory`: `role`, `principalType`,
/// `aud`, `extendedByChain`, `publicSessionReference`, the person's `firstNames` and
/// `lastName`) and the ones the web client reads (`email`, `twoFactorAuthentication`,
/// `serviceLicenseAgreement`). The web client's `parseJWT`
/// (`frontend-web/webclient/app/Authentication/lib.ts`) drops any token without `sub`,
/// `uid`, `aud`, `role`, `iss`, `exp`, `extendedByChain`, `iat` and `principalType`.
pub(crate) fn access_token(req: &HttpRequest, session: &Session) -> Result<String, ApiError> {
    let user = &session.user;
    let mut extra = Map::new();
    let role = if user.is_admin { "ADMIN" } else { "USER" };
    extra.insert("role".into(), json!(role));
    extra.insert("principalType".into(), json!("password"));
    extra.insert("aud".into(), json!(["all:write"]));
    extra.insert("extendedByChain".into(), json!([]));
    extra.insert("publicSessionReference".into(), json!(session.id));
    // No separate names are kept; UCloud's person always has both claims.
    extra.insert("firstNames".into(), json!(user.username));
    extra.insert("lastName".into(), json!(""));
    if let Some(email) = &user.email {
        extra.insert("email".into(), json!(email));
    }
    extra.insert("twoFactorAuthentication".into(), Value::Bool(session.mfa));
    extra.insert("serviceLicenseAgreement".into(), Value::Bool(true));
    Ok(core(req)?.access_token(session, DIALECT, extra)?)
}

fn refresh_cookie(req: &HttpRequest) -> Option<String> {
    req.cookie("refreshToken")
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

fn csrf_header(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(CSRF_HEADER)?
        .to_str()
        .ok()
        .map(str::to_string)
}

fn cleared_cookie() -> Cookie<'static> {
    let mut cookie = Cookie::build("refreshToken", "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    cookie.make_removal();
    cookie
}

/// A new access token for the refresh token given as bearer.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, body = AccessTokenResponse, description = "Success"),
        (status = 401, description = "Invalid refresh token", body = CommonErrorMessage),
    )
)]
#[post("/auth/refresh")]
pub async fn refresh(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let token = bearer(&req).ok_or(ApiError::InvalidToken)?;
    let session = core(&req)?
        .refresh_session(origin(&req), token, None)
        .await
        .map_err(ApiError::at(Call::Refresh))?;
    Ok(HttpResponse::Ok().json(AccessTokenResponse {
        access_token: access_token(&req, &session)?,
    }))
}

/// A new access token and CSRF token for the `refreshToken` cookie and `X-CSRFToken`.
#[utoipa::path(
    tag = "auth",
    params(("X-CSRFToken" = String, Header, description = "The CSRF token from login or the last refresh")),
    responses(
        (status = 200, body = AccessAndCsrfResponse, description = "Success"),
        (status = 400, description = "Missing cookie or CSRF header", body = CommonErrorMessage),
        (status = 401, description = "Invalid refresh or CSRF token", body = CommonErrorMessage),
    )
)]
#[post("/auth/refresh/web")]
pub async fn refresh_web(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (token, csrf) = refresh_cookie(&req)
        .zip(csrf_header(&req))
        .ok_or(ApiError::BadRequest)?;
    let session = core(&req)?
        .refresh_session(origin(&req), token, Some(csrf))
        .await
        .map_err(ApiError::at(Call::Refresh))?;
    Ok(HttpResponse::Ok().json(AccessAndCsrfResponse {
        access_token: access_token(&req, &session)?,
        csrf_token: session.csrf_token.clone().unwrap_or_default(),
    }))
}

/// Ends the session of the refresh token given as bearer.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "Invalid refresh token", body = CommonErrorMessage),
    )
)]
#[post("/auth/logout")]
pub async fn logout(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let token = bearer(&req).ok_or(ApiError::InvalidToken)?;
    core(&req)?
        .logout(origin(&req), token)
        .await
        .map_err(ApiError::at(Call::Refresh))?;
    Ok(HttpResponse::NoContent().cookie(cleared_cookie()).finish())
}

/// Ends the session of the `refreshToken` cookie (with `X-CSRFToken`).
#[utoipa::path(
    tag = "auth",
    params(("X-CSRFToken" = String, Header, description = "The current CSRF token")),
    responses(
        (status = 204, description = "Logged out"),
        (status = 400, description = "Missing cookie or CSRF header", body = CommonErrorMessage),
        (status = 401, description = "Invalid refresh or CSRF token", body = CommonErrorMessage),
    )
)]
#[post("/auth/logout/web")]
pub async fn logout_web(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (token, csrf) = refresh_cookie(&req)
        .zip(csrf_header(&req))
        .ok_or(ApiError::BadRequest)?;
    let core = core(&req)?;
    // Checks the CSRF token before revoking.
    core.refresh_session(origin(&req), token.clone(), Some(csrf))
        .await
        .map_err(ApiError::at(Call::Refresh))?;
    core.logout(origin(&req), token)
        .await
        .map_err(ApiError::at(Call::Refresh))?;
    Ok(HttpResponse::NoContent().cookie(cleared_cookie()).finish())
}

//! `POST /auth/login` and the completed-login response it shares with login challenges.

use actix_web::cookie::{time::Duration, Cookie, SameSite};
use actix_web::http::header;
use actix_web::{post, HttpRequest, HttpResponse};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Serialize;
use twofa_core::{LoginStep, Password, Session};

use crate::error::{ApiError, CommonErrorMessage};
use crate::extract::{core, origin, settings, FormBody};
use crate::wire::{LoginForm, LoginResponse, TwoFactorRequired};

/// Services whose refresh token travels only in the HttpOnly cookie.
const WEB_SERVICES: [&str; 2] = ["web", "dev-web"];
/// Where browsers without `Accept: application/json` are sent to finish the login.
const WAYF_PATH: &str = "/app/login/wayf";

fn wants_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// Browser flows: the state goes in the `authState` cookie the web client reads, and a
/// page sends the browser on (a redirect would lose the cookies in Safari).
fn browser_handoff<T: Serialize>(
    req: &HttpRequest,
    state: &T,
    extra: Option<Cookie<'static>>,
) -> HttpResponse {
    let json = serde_json::to_string(state).unwrap_or_default();
    let auth_state = Cookie::build(
        "authState",
        utf8_percent_encode(&json, NON_ALPHANUMERIC).to_string(),
    )
    .path("/")
    .same_site(SameSite::Strict)
    .secure(settings(req).secure_cookies)
    .max_age(Duration::minutes(5))
    .finish();
    let mut response = HttpResponse::Ok();
    response.cookie(auth_state);
    if let Some(cookie) = extra {
        response.cookie(cookie);
    }
    response.content_type("text/html; charset=utf-8").body(format!(
        "<!DOCTYPE html><html><head><meta http-equiv=\"refresh\" content=\"0;URL='{WAYF_PATH}'\"></head><body></body></html>"
    ))
}

/// The response to a completed login (password without 2FA, or an answered login
/// challenge): tokens, and the refresh token as an HttpOnly cookie.
pub(crate) fn completed_login(
    req: &HttpRequest,
    session: &Session,
    service: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let access_token = crate::tokens::access_token(req, session)?;
    let cookie = Cookie::build("refreshToken", session.refresh_token.clone())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(settings(req).secure_cookies)
        .max_age(Duration::seconds(
            (session.expires_at - core(req)?.now()).max(0),
        ))
        .finish();
    let web = service.is_none_or(|s| WEB_SERVICES.contains(&s));
    let body = LoginResponse {
        access_token,
        csrf_token: session.csrf_token.clone().unwrap_or_default(),
        refresh_token: (!web).then(|| session.refresh_token.clone()),
    };
    if !wants_json(req) {
        return Ok(browser_handoff(req, &body, Some(cookie)));
    }
    Ok(HttpResponse::Ok()
        .insert_header(("Access-Control-Allow-Credentials", "true"))
        .cookie(cookie)
        .json(body))
}

/// Password login.
///
/// Without an active second factor the login completes; with one, the answer is a
/// login challenge (`{"2fa": "<challengeId>"}`) to be answered with a code.
#[utoipa::path(
    tag = "auth",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    params(("service" = Option<String>, Query, description = "Login service, e.g. `web`")),
    responses(
        (status = 200, description = "Logged in, or a second factor is required", body = LoginResponse),
        (status = 200, description = "Second factor required", body = TwoFactorRequired),
        (status = 400, description = "Missing field", body = CommonErrorMessage),
        (status = 401, description = "Incorrect username or password", body = CommonErrorMessage),
        (status = 429, description = "Too many failed logins", body = CommonErrorMessage),
    )
)]
#[post("/auth/login")]
pub async fn login(
    req: HttpRequest,
    FormBody(form): FormBody<LoginForm>,
) -> Result<HttpResponse, ApiError> {
    let service = form
        .service
        .filter(|s| !s.is_empty())
        .ok_or(ApiError::BadRequest)?;
    let step = core(&req)?
        .password_login(
            origin(&req),
            form.username,
            Password::Plain(form.password),
            Some(service.clone()),
        )
        .await?;
    match step {
        LoginStep::Complete(session) => completed_login(&req, &session, Some(&service)),
        LoginStep::SecondFactor { challenge_id, .. } => {
            let body = TwoFactorRequired { challenge_id };
            if wants_json(&req) {
                Ok(HttpResponse::Ok().json(body))
            } else {
                Ok(browser_handoff(&req, &body, None))
            }
        }
    }
}

//! `BasicAuthenticationController` (reference §5.2): register, me, email confirmation,
//! password change and reset, delete. Link tokens are core one-time codes.

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, HttpRequest, HttpResponse};
use twofa_core::{CodeFormat, CodePurpose, Core, NewUser, Password, Template};

use crate::error::{ApiError, Endpoint, ErrorResponse, ProblemDetails};
use crate::extract::{core, email_code, origin, settings, Authenticated, Json};
use crate::wire::{
    EmailVerificationConfirmRequest, MeResponse, RegisterRequest, ResetPasswordConfirmRequest,
    ResetPasswordRequest, SetPasswordRequest,
};

fn errors(status: StatusCode, message: &str) -> ApiError {
    ApiError::Errors(status, vec![message.into()])
}

/// Identity's default password rule that matters most; its message and code.
fn password_policy(password: &str) -> Option<String> {
    (password.chars().count() < 6)
        .then(|| "Error code: PasswordTooShort\nPasswords must be at least 6 characters.".into())
}

/// Emails the user a link (`url` with `{uid}` and `{token}`) rendered into
/// `template`'s `{link}`; the token is a core one-time code of `purpose`.
async fn email_link(
    req: &HttpRequest,
    core: &Core,
    user_id: String,
    purpose: CodePurpose,
    template: &Template,
    url: &str,
) -> Result<(), ApiError> {
    let link = url.replace("{uid}", &user_id).replace("{token}", "{code}");
    let template = Template::new(
        template.subject.clone(),
        template.body.replace("{link}", &link),
    );
    email_code(req, core, user_id, purpose, CodeFormat::Token, template).await
}

/// Registers a user (email confirmation is a separate step), when registration is open;
/// each client address may try 10 times an hour.
#[utoipa::path(
    tag = "users",
    request_body = RegisterRequest,
    responses(
        (status = 200, description = "Registered (empty body)"),
        (status = 400, description = "Validation problem (ProblemDetails), or passwords differ", content((ProblemDetails = "application/problem+json"), (ErrorResponse = "application/json"))),
        (status = 403, description = "Registration is closed (`authendpoints.registration`)", content((ProblemDetails = "application/problem+json"))),
        (status = 409, description = "Username or email taken, or password policy", body = ErrorResponse),
        (status = 415, description = "Not JSON", content((ProblemDetails = "application/problem+json"))),
        (status = 429, description = "Too many registrations from this address (10 an hour)", content((ProblemDetails = "application/problem+json"))),
    )
)]
#[post("/users")]
pub async fn register(
    req: HttpRequest,
    Json(body): Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let core = core(&req)?;
    if !settings(&req).registration_open() {
        return Err(ApiError::Problem(StatusCode::FORBIDDEN));
    }
    core.count_registration(origin(&req)).await?;
    let password = body.password.unwrap_or_default();
    if Some(&password) != body.confirm_password.as_ref() {
        return Err(errors(
            StatusCode::BAD_REQUEST,
            "Password not match confirm password.",
        ));
    }
    let email = body.email.unwrap_or_default().trim().to_string();
    if core.user_by_email(email.clone()).await?.is_some() {
        return Err(errors(StatusCode::CONFLICT, "Email already exists."));
    }
    if let Some(message) = password_policy(&password) {
        return Err(ApiError::Errors(StatusCode::CONFLICT, vec![message]));
    }
    let new = NewUser {
        username: body.username.unwrap_or_default(),
        email: Some(email),
        password: Some(password),
        ..NewUser::default()
    };
    core.create_user(origin(&req), new)
        .await
        .map_err(ApiError::at(Endpoint::Register))?;
    Ok(HttpResponse::Ok().finish())
}

/// The signed-in user (never a password hash, secret or stamp). 204 if deleted.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, body = MeResponse, description = "Success"),
        (status = 204, description = "The user no longer exists"),
        (status = 401, description = "No valid token (empty body)"),
    )
)]
#[get("/users/me")]
pub async fn me(req: HttpRequest, auth: Authenticated) -> Result<HttpResponse, ApiError> {
    let core = core(&req)?;
    let Some(user) = core.user_by_id(auth.user_id).await? else {
        return Ok(HttpResponse::NoContent().finish());
    };
    let factors = core.second_factors(user.id.clone()).await?;
    Ok(HttpResponse::Ok().json(MeResponse {
        normalized_user_name: user.username.to_uppercase(),
        normalized_email: user.email.as_ref().map(|e| e.to_uppercase()),
        id: user.id,
        user_name: user.username,
        email: user.email,
        email_confirmed: user.email_confirmed,
        phone_number: user.phone,
        phone_number_confirmed: user.phone_confirmed,
        two_factor_enabled: factors.any(),
        lockout_end: None,
        lockout_enabled: true,
        access_failed_count: 0,
    }))
}

/// Emails the signed-in user a link that confirms the address.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Sent"),
        (status = 400, description = "The user has no email address", content((ProblemDetails = "application/problem+json"))),
        (status = 401, description = "Already confirmed (ProblemDetails), or no valid token (empty body, no Content-Type)"),
        (status = 429, description = "More than 5 messages in 10 minutes", content((ProblemDetails = "application/problem+json"))),
        (status = 500, description = "The email could not be sent", content((ProblemDetails = "application/problem+json"))),
    )
)]
#[get("/users/verify_email")]
pub async fn verify_email(req: HttpRequest, auth: Authenticated) -> Result<HttpResponse, ApiError> {
    let core = core(&req)?;
    let user = core
        .user_by_id(auth.user_id)
        .await?
        .ok_or(ApiError::Problem(StatusCode::UNAUTHORIZED))?;
    if user.email_confirmed {
        return Err(ApiError::Problem(StatusCode::UNAUTHORIZED));
    }
    let s = settings(&req);
    let (template, url) = (&s.confirm_email_mail, &s.email_confirmation_url);
    email_link(
        &req,
        &core,
        user.id,
        CodePurpose::ConfirmEmail,
        template,
        url,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Confirms the email address with the user id and token from the link.
#[utoipa::path(
    tag = "users",
    request_body = EmailVerificationConfirmRequest,
    responses(
        (status = 204, description = "Confirmed"),
        (status = 400, description = "Unknown user (ProblemDetails) or validation problem", content((ProblemDetails = "application/problem+json"))),
        (status = 401, description = "Already confirmed", content((ProblemDetails = "application/problem+json"))),
        (status = 409, description = "`[\"Invalid token.\"]`", body = Vec<String>),
        (status = 415, description = "Not JSON", content((ProblemDetails = "application/problem+json"))),
        (status = 429, description = "Too many wrong tokens", content((ProblemDetails = "application/problem+json"))),
    )
)]
#[post("/users/verify_email_confirm")]
pub async fn verify_email_confirm(
    req: HttpRequest,
    Json(body): Json<EmailVerificationConfirmRequest>,
) -> Result<HttpResponse, ApiError> {
    let core = core(&req)?;
    let user = core
        .user_by_id(body.identity.unwrap_or_default())
        .await?
        .ok_or(ApiError::Problem(StatusCode::BAD_REQUEST))?;
    if user.email_confirmed {
        return Err(ApiError::Problem(StatusCode::UNAUTHORIZED));
    }
    core.confirm_email(origin(&req), user.id, body.token.unwrap_or_default())
        .await
        .map_err(ApiError::at(Endpoint::LinkToken))?;
    Ok(HttpResponse::NoContent().finish())
}

/// Changes the signed-in user's password; ends all their sessions (sign in again).
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    request_body = SetPasswordRequest,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "Passwords differ, unchanged, or current password wrong; validation problem (ProblemDetails)", content((ErrorResponse = "application/json"), (ProblemDetails = "application/problem+json"))),
        (status = 401, description = "No valid token (empty body)"),
        (status = 409, description = "Password policy (text/plain)", body = String, content_type = "text/plain"),
        (status = 415, description = "Not JSON", content((ProblemDetails = "application/problem+json"))),
        (status = 429, description = "Too many wrong passwords", content((ProblemDetails = "application/problem+json"))),
    )
)]
#[post("/users/set_password")]
pub async fn set_password(
    req: HttpRequest,
    auth: Authenticated,
    Json(body): Json<SetPasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let core = core(&req)?;
    let new = body.new_password.unwrap_or_default();
    let current = body.current_password.unwrap_or_default();
    if Some(&new) != body.confirm_new_password.as_ref() {
        return Err(errors(
            StatusCode::BAD_REQUEST,
            "New password not match confirm password",
        ));
    }
    if new == current {
        return Err(errors(
            StatusCode::BAD_REQUEST,
            "New password cannot be the same as current password",
        ));
    }
    if password_policy(&new).is_some() {
        return Err(ApiError::Text(
            StatusCode::CONFLICT,
            "Error occured while updating password. Code: PasswordTooShort",
        ));
    }
    core.change_password(
        origin(&req),
        auth.user_id,
        Password::Plain(current),
        Password::Plain(new),
    )
    .await
    .map_err(ApiError::at(Endpoint::SetPassword))?;
    Ok(HttpResponse::NoContent().finish())
}

/// Emails a password reset link to a confirmed address.
#[utoipa::path(
    tag = "users",
    request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "Sent"),
        (status = 400, description = "Validation problem", content((ProblemDetails = "application/problem+json"))),
        (status = 401, description = "Email not confirmed", content((ProblemDetails = "application/problem+json"))),
        (status = 404, description = "No such email", content((ProblemDetails = "application/problem+json"))),
        (status = 415, description = "Not JSON", content((ProblemDetails = "application/problem+json"))),
        (status = 429, description = "More than 5 messages in 10 minutes, or more than 5 requests about this address or 20 from this client in an hour", content((ProblemDetails = "application/problem+json"))),
        (status = 500, description = "The email could not be sent", content((ProblemDetails = "application/problem+json"))),
    )
)]
#[post("/users/reset_password")]
pub async fn reset_password(
    req: HttpRequest,
    Json(body): Json<ResetPasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let core = core(&req)?;
    let email = body.email.unwrap_or_default();
    // The three answers below tell addresses apart, so asking is limited.
    core.count_reset_request(origin(&req), &email).await?;
    let user = core
        .user_by_email(email)
        .await?
        .ok_or(ApiError::Problem(StatusCode::NOT_FOUND))?;
    if !user.email_confirmed {
        return Err(ApiError::Problem(StatusCode::UNAUTHORIZED));
    }
    let s = settings(&req);
    let (template, url) = (&s.reset_password_mail, &s.password_reset_url);
    email_link(
        &req,
        &core,
        user.id,
        CodePurpose::ResetPassword,
        template,
        url,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sets a new password with the user id and token from the reset link.
#[utoipa::path(
    tag = "users",
    request_body = ResetPasswordConfirmRequest,
    responses(
        (status = 204, description = "Changed; every session ended"),
        (status = 400, description = "Validation problem", content((ProblemDetails = "application/problem+json"))),
        (status = 404, description = "Unknown user", content((ProblemDetails = "application/problem+json"))),
        (status = 409, description = "`[\"Invalid token.\"]` or password policy", body = Vec<String>),
        (status = 415, description = "Not JSON", content((ProblemDetails = "application/problem+json"))),
        (status = 429, description = "Too many wrong tokens", content((ProblemDetails = "application/problem+json"))),
    )
)]
#[post("/users/reset_password_confirm")]
pub async fn reset_password_confirm(
    req: HttpRequest,
    Json(body): Json<ResetPasswordConfirmRequest>,
) -> Result<HttpResponse, ApiError> {
    let core = core(&req)?;
    let user = core
        .user_by_id(body.identity.unwrap_or_default())
        .await?
        .ok_or(ApiError::Problem(StatusCode::NOT_FOUND))?;
    let new = body.new_password.unwrap_or_default();
    if let Some(message) = password_policy(&new) {
        let description = message.lines().last().unwrap_or_default().to_string();
        return Err(ApiError::List(StatusCode::CONFLICT, vec![description]));
    }
    core.reset_password(
        origin(&req),
        user.id,
        body.token.unwrap_or_default(),
        Password::Plain(new),
    )
    .await
    .map_err(ApiError::at(Endpoint::LinkToken))?;
    Ok(HttpResponse::NoContent().finish())
}

/// Deletes the signed-in user with their factors and sessions.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token (empty body)"),
        (status = 409, description = "`[\"User not found.\"]`", body = Vec<String>),
    )
)]
#[delete("/users/delete")]
pub async fn delete_user(req: HttpRequest, auth: Authenticated) -> Result<HttpResponse, ApiError> {
    core(&req)?
        .delete_user(origin(&req), auth.user_id)
        .await
        .map_err(ApiError::at(Endpoint::Delete))?;
    Ok(HttpResponse::NoContent().finish())
}

//! `/User/...`: the SMS two-factor family (reference §1). Every call needs a `FileId`
//! the caller may reach, with a bearer token or a legacy `WsAccessKey`.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use twofa_core::OptOut;

use crate::error::ApiError;
use crate::extract::{caller, Ctx, Errors};
use crate::wire::{
    BaseResponseModel, HttpError, Link, OptInRequest, OptInResult, OptOutRequest, Text,
    VerifyRequest,
};

pub const ENABLED: &str = "Two-factor authentication has been enabled.";
pub const DISABLED: &str = "Two-factor authentication has been disabled.";
pub const OPT_OUT_CODE_SENT: &str = "A one-time password has been sent to the registered mobile number. Send it as Otp to opt out of two-factor authentication.";

fn done(ctx: &Ctx, file_id: i64, message: &str) -> HttpResponse {
    ctx.format.reply(
        StatusCode::OK,
        &BaseResponseModel {
            status_message: Some(message.into()),
            links: vec![Link {
                rel: "self".into(),
                href: ctx.link("/User", file_id),
                method: "GET".into(),
                title: None,
            }],
        },
    )
}

/// Starts the opt-in: texts a 7-digit code to `MobileNumber` and answers the
/// `ProviderUserId` that `verify-2fa-opt-in` must name. Australian local numbers
/// (`04xxxxxxxx`) and E.164 numbers are accepted; a number already verified by another
/// user is refused. If the SMS cannot be sent nothing is kept.
#[utoipa::path(
    post,
    path = "/User/opt-in-to-2fa",
    tag = "2FA",
    params(
        ("FileId" = i64, Query, description = "A file in the token's scope (or the WsAccessKey's file)"),
        ("WsAccessKey" = Option<String>, Query, description = "Legacy key instead of a bearer token"),
    ),
    request_body(content((OptInRequest = "application/json"), (OptInRequest = "application/xml"))),
    responses(
        (status = 200, body = OptInResult, description = "Success"),
        (status = 400, body = HttpError, description = "`The request is invalid.` with ModelState, or a JSON string: 2FA already enabled, number used by another user"),
        (status = 401, body = HttpError, description = "No or bad credentials, or FileId missing or not in scope"),
        (status = 429, body = HttpError, description = "Too many codes sent; Retry-After"),
        (status = 503, body = String, description = "The SMS could not be sent; nothing was changed"),
    ),
    security(("bearer" = []), ("ws_access_key" = []))
)]
pub async fn opt_in(ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let who = caller(ctx).await?;
    let fields = ctx.fields()?;
    let mut errors = Errors::default();
    let mobile = fields.string("MobileNumber", &mut errors);
    let mobile = errors.required("MobileNumber", mobile);
    let proof = fields.string("Otp", &mut errors);
    errors.finish()?;
    let mobile = mobile.unwrap_or_default();
    let provider_user_id = ctx
        .core
        .sms_opt_in(
            ctx.origin(),
            who.user_id,
            mobile,
            proof,
            ctx.settings.sms_opt_in.clone(),
        )
        .await?;
    Ok(ctx
        .format
        .reply(StatusCode::OK, &OptInResult { provider_user_id }))
}

/// Finishes the opt-in with the `ProviderUserId` it answered and the texted `Otp`:
/// from now on every login of the user needs a second factor.
#[utoipa::path(
    post,
    path = "/User/verify-2fa-opt-in",
    tag = "2FA",
    params(
        ("FileId" = i64, Query, description = "A file in the token's scope (or the WsAccessKey's file)"),
        ("WsAccessKey" = Option<String>, Query, description = "Legacy key instead of a bearer token"),
    ),
    request_body(content((VerifyRequest = "application/json"), (VerifyRequest = "application/xml"))),
    responses(
        (status = 200, body = BaseResponseModel, description = "Success"),
        (status = 400, body = HttpError, description = "ModelState, or a JSON string: `Invalid one-time password.` (wrong, expired or used code, or another ProviderUserId)"),
        (status = 401, body = HttpError, description = "No or bad credentials"),
        (status = 429, body = HttpError, description = "Too many wrong codes; Retry-After"),
    ),
    security(("bearer" = []), ("ws_access_key" = []))
)]
pub async fn verify_opt_in(ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let who = caller(ctx).await?;
    let fields = ctx.fields()?;
    let mut errors = Errors::default();
    let provider_user_id = fields.integer("ProviderUserId", &mut errors);
    let otp = fields.string("Otp", &mut errors);
    if provider_user_id.is_none() && !errors.has("ProviderUserId") {
        errors.add("ProviderUserId", "The ProviderUserId field is required.");
    }
    let otp = errors.required("Otp", otp);
    errors.finish()?;
    let (Some(provider_user_id), Some(otp)) = (provider_user_id, otp) else {
        return Err(ApiError::Internal);
    };
    ctx.core
        .sms_verify_opt_in(ctx.origin(), who.user_id, provider_user_id, otp)
        .await?;
    Ok(done(ctx, who.file_id, ENABLED))
}

/// Turns SMS 2FA off. A token alone is not enough: without `Otp` a one-time password
/// is texted to the verified mobile and the call answers 400 saying so; repeat it with
/// that `Otp` (or with a 6-digit code of the user's authenticator app, if they have
/// one). A pending (unverified) opt-in is dropped without a code.
#[utoipa::path(
    post,
    path = "/User/opt-out-from-2fa",
    tag = "2FA",
    params(
        ("FileId" = i64, Query, description = "A file in the token's scope (or the WsAccessKey's file)"),
        ("WsAccessKey" = Option<String>, Query, description = "Legacy key instead of a bearer token"),
    ),
    request_body(content((Option<OptOutRequest> = "application/json"), (Option<OptOutRequest> = "application/xml")), description = "Empty or `{}` to have a code texted; `{\"Otp\": \"…\"}` to opt out"),
    responses(
        (status = 200, body = BaseResponseModel, description = "2FA is off"),
        (status = 400, body = String, description = "JSON string: a code was texted (repeat with Otp), `Invalid one-time password.`, or 2FA is not enabled"),
        (status = 401, body = HttpError, description = "No or bad credentials"),
        (status = 429, body = HttpError, description = "Too many wrong codes or codes sent; Retry-After"),
        (status = 503, body = String, description = "The SMS could not be sent"),
    ),
    security(("bearer" = []), ("ws_access_key" = []))
)]
pub async fn opt_out(ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let who = caller(ctx).await?;
    let fields = ctx.fields()?;
    let mut errors = Errors::default();
    let otp = fields.string("Otp", &mut errors);
    errors.finish()?;
    match ctx
        .core
        .sms_opt_out(
            ctx.origin(),
            who.user_id,
            otp,
            ctx.settings.sms_opt_out.clone(),
        )
        .await?
    {
        OptOut::Removed => Ok(done(ctx, who.file_id, DISABLED)),
        OptOut::CodeSent => Ok(ctx
            .format
            .reply(StatusCode::BAD_REQUEST, &Text(OPT_OUT_CODE_SENT.into()))),
    }
}

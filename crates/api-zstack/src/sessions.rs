//! Login (with `twofatoken::<code>`), logout, and the login procedures.

use actix_web::{delete, get, put, web, HttpRequest, HttpResponse};
use serde_json::{json, Map};
use twofa_core::{CodeLogin, Password};

use crate::error::{ApiError, Code, ErrorReply};
use crate::extract::{core, origin, settings, Action, ActionBody};
use crate::twofa::twofa_enabled;
use crate::wire::{InventoryReply, LoginRequest, Procedure, ProceduresReply, SessionInventory};

/// `ID.2001`, whose details are a JSON string naming the method and the name as typed.
fn token_needed(name: &str) -> ApiError {
    let details = json!({"authentications": ["googleAuth"], "credentials": name});
    ApiError::api(Code::Id2001, details.to_string())
}

/// The code from `twofatoken::<code>`, read as ZStack does (`Integer.valueOf`: sign and
/// leading zeros allowed, so `12345` is `012345`). Out of range (including 0, which
/// ZStack never accepts) gives a code that cannot match.
fn parse_token(token: &str) -> Result<String, ApiError> {
    let n: i32 = token
        .parse()
        .map_err(|_| ApiError::api(Code::Sys1000, format!("For input string: \"{token}\"")))?;
    Ok(if (1..1_000_000).contains(&n) {
        format!("{n:06}")
    } else {
        "-".into()
    })
}

/// Log in by account name and SHA-512 password (`LogInByAccount`).
///
/// When `twofa.enable` is on, or the account has a bound authenticator, the login
/// needs `twofatoken::<code>` in `systemTags` (top level or inside the action).
/// Order: with `twofa.enable` on, a missing token is `ID.2001` at once, whatever the
/// name and password (this tells nothing about the account). Otherwise the password is
/// checked before the code, so only a caller who knows the password learns whether a
/// secret exists (`ID.2000`) or spends the account's code attempts (`ID.2002`). A
/// correct code for a `NewCreated` secret binds it (`Logined`). Codes are single use,
/// and wrong codes lock the account's codes out like on every dialect.
#[utoipa::path(
    tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Session", body = InventoryReply<SessionInventory>),
        (status = 400, description = "Body is not JSON or lacks `logInByAccount`", content_type = "text/plain"),
        (status = 503, description = "`ID.1000` wrong name or password (or locked out), `ID.2000` no secret, `ID.2001` token needed, `ID.2002` wrong code, `SYS.1000` non-numeric token, `SYS.1007` missing field", body = ErrorReply),
    )
)]
#[put("/accounts/login")]
pub async fn login(req: HttpRequest, body: ActionBody) -> Result<HttpResponse, ApiError> {
    let action = body.action("logInByAccount", "/v1/accounts/login")?;
    Ok(HttpResponse::Ok().json(log_in(&req, &action).await?))
}

/// `LogInByAccount` over core, for the REST and the message API: `accountName`,
/// `password` and the `twofatoken` system tag of `action`.
pub(crate) async fn log_in(
    req: &HttpRequest,
    action: &Action,
) -> Result<InventoryReply<SessionInventory>, ApiError> {
    let name = action.required("accountName")?;
    let password = action.required("password")?;
    let core = core(req)?;
    let enabled = twofa_enabled(req).await?;
    let code = match action.tag("twofatoken") {
        None if enabled => return Err(token_needed(&name)),
        None => None,
        Some(token) => Some(parse_token(&token)?),
    };
    let ttl = settings(req).session_timeout;
    let outcome = core
        .login_with_code(
            origin(req),
            name.clone(),
            Password::Sha512Hex(password),
            code,
            enabled,
            ttl,
        )
        .await?;
    match outcome {
        CodeLogin::CodeRequired { .. } => Err(token_needed(&name)),
        CodeLogin::Complete(session) => Ok(InventoryReply {
            inventory: SessionInventory::new(&session, session.expires_at - ttl),
        }),
    }
}

/// Log out: revokes the session (an unknown one is not an error).
#[utoipa::path(
    tag = "accounts",
    params(("uuid" = String, Path, description = "Session uuid")),
    responses((status = 200, description = "`{}`"))
)]
#[delete("/accounts/sessions/{uuid}")]
pub async fn logout(req: HttpRequest, uuid: web::Path<String>) -> Result<HttpResponse, ApiError> {
    log_out(&req, uuid.into_inner()).await?;
    Ok(HttpResponse::Ok().json(Map::new()))
}

/// Ends the session `uuid` (REST and message API).
pub(crate) async fn log_out(req: &HttpRequest, uuid: String) -> Result<(), ApiError> {
    ApiError::logout(core(req)?.logout(origin(req), uuid).await)
}

/// The steps a login needs (4.6.0+). Lists two-factor authentication when
/// `twofa.enable` is on, for any `username`, so it reveals nothing about accounts; an
/// account with a bound authenticator under a disabled switch learns it from `ID.2001`.
#[utoipa::path(
    tag = "accounts",
    params(
        ("username" = Option<String>, Query, description = "Account name"),
        ("loginType" = Option<String>, Query, description = "e.g. `account`"),
    ),
    responses((status = 200, description = "Procedures", body = ProceduresReply))
)]
#[get("/login/procedures")]
pub async fn procedures(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(login_procedures(&req).await?))
}

/// The login procedures (REST and message API).
pub(crate) async fn login_procedures(req: &HttpRequest) -> Result<ProceduresReply, ApiError> {
    let mut steps = Vec::new();
    if twofa_enabled(req).await? {
        let mut properties = Map::new();
        properties.insert("authenticationSource".into(), "GoogleAuthenticator".into());
        steps.push(Procedure {
            order: 1,
            name: "twoFactorAuthentication".into(),
            properties,
        });
    }
    Ok(ProceduresReply { procedures: steps })
}

#[cfg(test)]
mod tests {
    use super::parse_token;

    #[test]
    fn tokens_read_like_integer_value_of() {
        assert_eq!(parse_token("123456").unwrap(), "123456");
        assert_eq!(parse_token("+12345").unwrap(), "012345");
        assert_eq!(parse_token("0012345").unwrap(), "012345");
        assert_eq!(parse_token("0").unwrap(), "-");
        assert_eq!(parse_token("1000000").unwrap(), "-");
        assert!(parse_token("abc").is_err());
        assert!(parse_token("").is_err());
    }
}

//! Saasu's OAuth grant: an HS256 access token (key derived for this dialect) that
//! names its session, the session's generation and the user's files, and the session's
//! refresh token. A refresh moves the session to its next generation, so the previous
//! access token stops working while the refresh token stays the same.

use serde_json::{json, Map, Value};
use twofa_core::Session;

use crate::error::ApiError;
use crate::extract::Ctx;
use crate::wire::TokenGrant;

const LABEL: &str = "saasu-access";
const ISSUER: &str = "twofa";
const AUDIENCE: &str = "saasu";

/// What a valid access token says.
pub struct Access {
    pub user_id: String,
    pub files: Vec<i64>,
}

/// The grant for `session` at `generation`.
pub async fn grant(ctx: &Ctx, session: &Session, generation: i64) -> Result<TokenGrant, ApiError> {
    let files = ctx.core.user_files(session.user.id.clone()).await?;
    let now = ctx.core.now();
    let ttl = ctx.settings.access_token_ttl;
    let claims = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": session.user.username,
        "uid": session.user.id,
        "sid": session.id,
        "gen": generation,
        "files": files,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
    });
    let Value::Object(claims) = claims else {
        return Err(ApiError::Internal);
    };
    let access_token = ctx.core.sign_claims(LABEL, &claims)?;
    let scope = std::iter::once("full".to_string())
        .chain(files.iter().map(|f| format!("fileid:{f}")))
        .collect::<Vec<_>>()
        .join(" ");
    Ok(TokenGrant {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        refresh_token: session.refresh_token.clone(),
        scope,
    })
}

/// Checks an access token: signature, lifetime, and that its session is live and
/// still at the token's generation. Any failure is 401.
pub async fn verify(ctx: &Ctx, token: &str) -> Result<Access, ApiError> {
    let claims: Map<String, Value> = ctx
        .core
        .verify_claims(LABEL, token, ISSUER, Some(AUDIENCE))
        .map_err(|_| ApiError::Unauthorized)?;
    let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(user_id), Some(session_id), Some(generation)) = (
        text("uid"),
        text("sid"),
        claims.get("gen").and_then(Value::as_i64),
    ) else {
        return Err(ApiError::Unauthorized);
    };
    if ctx.core.session_generation(session_id).await? != Some(generation) {
        return Err(ApiError::Unauthorized);
    }
    let files = claims
        .get("files")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    Ok(Access { user_id, files })
}

//! The reference's JWT pair (§4): HS256, `nbf`/`exp`, claim `id`, the name claim in the
//! access token, issuer and audience `webapi` by default, and separate access and
//! refresh keys (core derives one per label). The refresh JWT also carries the core
//! session's refresh token, so refreshing needs a live (unrevoked) session.

use serde_json::{Map, Value};
use twofa_core::{Core, CoreResult, Session};

use crate::wire::TokenPair;
use crate::AuthEndpointsSettings;

pub const NAME_CLAIM: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";
const ACCESS: &str = "authendpoints-access";
const REFRESH: &str = "authendpoints-refresh";

fn base_claims(
    core: &Core,
    s: &AuthEndpointsSettings,
    ttl: i64,
    user_id: &str,
) -> Map<String, Value> {
    let now = core.now();
    let mut claims = Map::new();
    claims.insert("nbf".into(), now.into());
    claims.insert("exp".into(), (now + ttl).into());
    claims.insert("id".into(), user_id.into());
    claims.insert("iss".into(), s.jwt_issuer.clone().into());
    claims.insert("aud".into(), s.jwt_audience.clone().into());
    claims
}

/// A fresh access token and a refresh token for `session`.
pub(crate) fn pair(
    core: &Core,
    s: &AuthEndpointsSettings,
    session: &Session,
) -> CoreResult<TokenPair> {
    let mut access = base_claims(core, s, s.access_token_ttl, &session.user.id);
    access.insert(NAME_CLAIM.into(), session.user.username.clone().into());
    // The session, so that ending it (password change or reset) ends its access tokens.
    access.insert("sid".into(), session.id.clone().into());
    let mut refresh = base_claims(core, s, s.refresh_token_ttl, &session.user.id);
    refresh.insert("rt".into(), session.refresh_token.clone().into());
    Ok(TokenPair {
        access_token: core.sign_claims(ACCESS, &access)?,
        refresh_token: core.sign_claims(REFRESH, &refresh)?,
    })
}

/// The user id and session id of a correctly signed, unexpired access token.
pub(crate) fn verify_access(
    core: &Core,
    s: &AuthEndpointsSettings,
    token: &str,
) -> Option<(String, String)> {
    let claims = core
        .verify_claims(ACCESS, token, &s.jwt_issuer, Some(&s.jwt_audience))
        .ok()?;
    Some((
        claims.get("id")?.as_str()?.to_string(),
        claims.get("sid")?.as_str()?.to_string(),
    ))
}

/// The user id and core refresh token of a valid refresh JWT.
pub(crate) fn verify_refresh(
    core: &Core,
    s: &AuthEndpointsSettings,
    token: &str,
) -> Option<(String, String)> {
    let claims = core
        .verify_claims(REFRESH, token, &s.jwt_issuer, Some(&s.jwt_audience))
        .ok()?;
    Some((
        claims.get("id")?.as_str()?.to_string(),
        claims.get("rt")?.as_str()?.to_string(),
    ))
}

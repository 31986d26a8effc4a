//! The one JWT API: HS256 tokens whose claims a dialect chooses, signed with a key of
//! their `label` derived from the core's JWT key (so a token of one kind never passes
//! as another, e.g. an access token as a refresh token). Lifetimes are checked against
//! the injected clock, with no leeway. Session access tokens are one use of it.
//!
//! Tokens carry the `kid` of the JWT key that signed them. During a key rotation the
//! current key signs and the previous keys still verify, so tokens issued before the
//! rotation stay valid until they expire.

use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::sessions::Session;
use crate::crypto::key_id;
use crate::{Core, CoreError, CoreResult};

/// Claims of a session access token ([`Core::access_token`]). Dialects add their own
/// in `extra`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub uid: String,
    pub sid: String,
    pub dialect: String,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The key of `label` derived from the JWT key `base`.
fn derived_jwt_key(base: &[u8], label: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(base).expect("any key length");
    mac.update(b"twofa jwt key:");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

impl Core {
    /// Signs `claims` (HS256, verbatim) with the key of `label`.
    pub fn sign_claims(&self, label: &str, claims: &Map<String, Value>) -> CoreResult<String> {
        let cfg = &self.inner.cfg;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key_id(&cfg.jwt_key));
        jsonwebtoken::encode(
            &header,
            claims,
            &EncodingKey::from_secret(&derived_jwt_key(&cfg.jwt_key, label)),
        )
        .map_err(|e| CoreError::Internal(format!("signing token: {e}")))
    }

    /// The JWT keys that may have signed `token`: the one its `kid` names first, then
    /// the others (a token signed before key ids has none).
    fn jwt_keys_for(&self, token: &str) -> Vec<&[u8]> {
        let cfg = &self.inner.cfg;
        let kid = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid);
        let mut keys: Vec<&[u8]> = std::iter::once(&cfg.jwt_key)
            .chain(&cfg.previous_jwt_keys)
            .map(Vec::as_slice)
            .collect();
        if let Some(kid) = kid {
            keys.sort_by_key(|key| key_id(key) != kid);
        }
        keys
    }

    /// Verifies a token of `label`: signature, `iss`, `aud` (when given), `exp`
    /// (required) and `nbf` (when present) against the core clock. Returns its claims.
    pub fn verify_claims(
        &self,
        label: &str,
        token: &str,
        issuer: &str,
        audience: Option<&str>,
    ) -> CoreResult<Map<String, Value>> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Times are checked below against the injected clock, not the system clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[issuer]);
        match audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let claims = self
            .jwt_keys_for(token)
            .into_iter()
            .find_map(|base| {
                let key = DecodingKey::from_secret(&derived_jwt_key(base, label));
                jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).ok()
            })
            .ok_or(CoreError::InvalidToken)?
            .claims;
        let now = self.inner.now();
        let nbf_ok = claims
            .get("nbf")
            .is_none_or(|nbf| nbf.as_i64().is_some_and(|nbf| nbf <= now));
        let exp_ok = claims
            .get("exp")
            .and_then(Value::as_i64)
            .is_some_and(|exp| now < exp);
        match nbf_ok && exp_ok {
            true => Ok(claims),
            false => Err(CoreError::InvalidToken),
        }
    }

    /// A session's access token for `dialect`: the core claims (user, session, issuer,
    /// lifetime) and the dialect's `extra` ones.
    pub fn access_token(
        &self,
        session: &Session,
        dialect: &str,
        extra: Map<String, Value>,
    ) -> CoreResult<String> {
        let now = self.inner.now();
        let claims = AccessClaims {
            sub: session.user.username.clone(),
            uid: session.user.id.clone(),
            sid: session.id.clone(),
            dialect: dialect.to_string(),
            iss: self.inner.cfg.jwt_issuer.clone(),
            iat: now,
            exp: now + self.inner.cfg.access_token_ttl,
            extra,
        };
        match serde_json::to_value(claims) {
            Ok(Value::Object(map)) => self.sign_claims(dialect, &map),
            _ => Err(CoreError::Internal(
                "access claims are not an object".into(),
            )),
        }
    }

    /// Verifies an access token of `dialect` (signature and lifetime only; whether its
    /// session is still live is the caller's question).
    pub fn verify_access_token(&self, token: &str, dialect: &str) -> CoreResult<AccessClaims> {
        let claims = self.verify_claims(dialect, token, &self.inner.cfg.jwt_issuer, None)?;
        let claims: AccessClaims =
            serde_json::from_value(Value::Object(claims)).map_err(|_| CoreError::InvalidToken)?;
        match claims.dialect == dialect {
            true => Ok(claims),
            false => Err(CoreError::InvalidToken),
        }
    }
}

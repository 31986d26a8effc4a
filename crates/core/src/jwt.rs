//! General HS256 tokens for dialects whose clients read the claims themselves (their
//! own claim names, issuer and audience). Each `label` gets its own key, derived from
//! the core's JWT key, so an access token never passes as a refresh token and vice
//! versa. Lifetimes are checked against the injected clock, with no leeway.

use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::{Core, CoreError, CoreResult};

impl Core {
    fn derived_jwt_key(&self, label: &str) -> Vec<u8> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.inner.cfg.jwt_key).expect("any key length");
        mac.update(b"twofa jwt key:");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Signs `claims` (HS256, verbatim) with the key of `label`.
    pub fn sign_claims(&self, label: &str, claims: &Map<String, Value>) -> CoreResult<String> {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(&self.derived_jwt_key(label)),
        )
        .map_err(|e| CoreError::Internal(format!("signing token: {e}")))
    }

    /// Verifies a token of `label`: signature, `iss`, `aud`, and `nbf`/`exp` (both
    /// required) against the core clock. Returns its claims.
    pub fn verify_claims(
        &self,
        label: &str,
        token: &str,
        issuer: &str,
        audience: &str,
    ) -> CoreResult<Map<String, Value>> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(
            token,
            &DecodingKey::from_secret(&self.derived_jwt_key(label)),
            &validation,
        )
        .map_err(|_| CoreError::InvalidToken)?
        .claims;
        let now = self.inner.now();
        let nbf = claims.get("nbf").and_then(Value::as_i64);
        let exp = claims.get("exp").and_then(Value::as_i64);
        match (nbf, exp) {
            (Some(nbf), Some(exp)) if nbf <= now && now < exp => Ok(claims),
            _ => Err(CoreError::InvalidToken),
        }
    }
}

//! UCloud's request and response shapes.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct TwoFactorStatusResponse {
    pub connected: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Create2FACredentialsResponse {
    /// `otpauth://totp/<issuer>:<username>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`
    pub otp_auth_uri: String,
    /// A PNG QR code of `otpAuthUri` as a `data:image/png;base64,` URI.
    pub qr_code_b64_data: String,
    /// The base32 secret, for manual entry.
    pub secret: String,
    /// Answer it with `POST /auth/2fa/challenge`.
    pub challenge_id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnswerChallengeRequest {
    pub challenge_id: String,
    /// Six digits, as a string (`"012345"`) or a number (`12345`, zero-padded).
    #[serde(deserialize_with = "code_from_string_or_number")]
    #[schema(value_type = String, example = "123456")]
    pub verification_code: String,
}

/// The web client sends the code as a string, the documented API as an int.
fn code_from_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Code {
        Text(String),
        Number(u64),
    }
    Ok(match Code::deserialize(d)? {
        Code::Text(s) => s,
        Code::Number(n) => format!("{n:06}"),
    })
}

/// Password login form (`application/x-www-form-urlencoded` or `multipart/form-data`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginForm {
    pub username: String,
    pub password: String,
    /// The login service, e.g. `web`; may also come in the query string.
    pub service: Option<String>,
}

/// The answer to a password login when a second factor is needed.
#[derive(Debug, Serialize, ToSchema)]
pub struct TwoFactorRequired {
    /// The login challenge to answer at `POST /auth/2fa/challenge`.
    #[serde(rename = "2fa")]
    pub challenge_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    pub access_token: String,
    pub csrf_token: String,
    /// Null for web services (the token travels in the `refreshToken` cookie).
    pub refresh_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessTokenResponse {
    pub access_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessAndCsrfResponse {
    pub access_token: String,
    pub csrf_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetMfaRequest {
    pub username: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Empty {}

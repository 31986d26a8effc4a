//! ZStack's response shapes. Nulls are omitted, enums are their names, dates are
//! Gson's US default `MMM d, yyyy h:mm:ss a` (rendered in UTC: the server's time zone
//! is not part of the wire contract and clients parse the text without an offset).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;
use twofa_core::{Session, TotpFactorInfo};
use utoipa::ToSchema;

const DATE: &[BorrowedFormatItem<'static>] = format_description!(
    "[month repr:short] [day padding:none], [year] [hour repr:12 padding:none]:[minute]:[second] [period]"
);

/// A unix time as ZStack (Gson) writes dates, e.g. `Jan 6, 2017 3:51:16 AM`.
pub fn zstack_date(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(DATE).ok())
        .unwrap_or_default()
}

/// The server-side class names the Java SDK maps to its own types via `schema`.
pub const INVENTORY_CLASS: &str =
    "org.zstack.twoFactorAuthentication.TwoFactorAuthenticationInventory";
pub const STATUS_CLASS: &str =
    "org.zstack.twoFactorAuthentication.TwoFactorAuthenticationSecretStatus";

/// `TwoFactorAuthenticationSecretInventory` (ZStack Cloud 3.4–5.x field set).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretInventory {
    /// 32 hex digits.
    pub uuid: String,
    /// Base32 TOTP secret; `""` once the factor is bound (`Logined`).
    pub secret: String,
    pub user_uuid: String,
    /// Always `AccountVO`.
    pub user_type: String,
    /// `NewCreated` (pending) or `Logined` (bound).
    pub status: String,
    /// e.g. `Jan 6, 2017 3:51:16 AM`
    pub create_date: String,
    pub last_op_date: String,
}

impl From<&TotpFactorInfo> for SecretInventory {
    fn from(f: &TotpFactorInfo) -> Self {
        SecretInventory {
            uuid: f.id.clone(),
            secret: f.secret_base32.clone().unwrap_or_default(),
            user_uuid: f.user_id.clone(),
            user_type: "AccountVO".into(),
            status: if f.active { "Logined" } else { "NewCreated" }.into(),
            create_date: zstack_date(f.created_at),
            last_op_date: zstack_date(f.updated_at),
        }
    }
}

/// `SessionInventory`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionInventory {
    /// The session uuid (32 hex digits) for `Authorization: OAuth <uuid>`.
    pub uuid: String,
    pub account_uuid: String,
    pub user_uuid: String,
    pub user_type: String,
    pub expired_date: String,
    pub create_date: String,
    pub no_session_evaluation: bool,
}

impl SessionInventory {
    pub fn new(session: &Session, created_at: i64) -> Self {
        SessionInventory {
            uuid: session.refresh_token.clone(),
            account_uuid: session.user.id.clone(),
            user_uuid: session.user.id.clone(),
            user_type: "AccountVO".into(),
            expired_date: zstack_date(session.expires_at),
            create_date: zstack_date(created_at),
            no_session_evaluation: false,
        }
    }
}

/// `{"inventory": {...}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct InventoryReply<T> {
    pub inventory: T,
}

/// `{"state": "Enable"|"Disable"}`
#[derive(Debug, Serialize, ToSchema)]
pub struct StateReply {
    pub state: String,
}

/// A query reply: `inventories` (absent for `count=true`), `total` when asked, and
/// always `schema` (JSON path → server-side class, which the Java SDK needs).
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryReply {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<SecretInventory>>)]
    pub inventories: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    #[schema(value_type = Object)]
    pub schema: Map<String, Value>,
}

/// The first answer of an async API: poll `location`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AsyncReply {
    pub location: String,
    /// Milliseconds.
    pub api_timeout: i64,
}

/// `GlobalConfigInventory`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlobalConfigInventory {
    pub category: String,
    pub name: String,
    pub value: String,
    pub default_value: String,
    pub description: String,
}

/// `{"procedures": [...]}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ProceduresReply {
    pub procedures: Vec<Procedure>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Procedure {
    pub order: i32,
    pub name: String,
    #[schema(value_type = Object)]
    pub properties: Map<String, Value>,
}

/// The body of `PUT /accounts/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    pub log_in_by_account: LogInByAccount,
    /// e.g. `["twofatoken::123456"]`; also accepted inside the action object.
    pub system_tags: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogInByAccount {
    pub account_name: String,
    /// Lowercase SHA-512 hex of the plaintext password.
    pub password: String,
    pub system_tags: Option<Vec<String>>,
}

/// The body of `PUT /twofactorauthentication/secrets`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetRequest {
    pub reset_two_factor_authentication_secret: ResetSecret,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetSecret {
    pub name: String,
    /// SHA-512 hex.
    pub password: String,
    /// `account`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// The body of the global config update.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateGlobalConfigRequest {
    pub update_global_config: UpdateGlobalConfig,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateGlobalConfig {
    /// `true` or `false`.
    pub value: String,
}

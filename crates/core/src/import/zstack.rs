//! ZStack (MySQL/MariaDB, database `zstack`): `AccountVO`, `TwoFactorAuthenticationSecretVO`
//! and the global config `twofa.enable` in `GlobalConfigVO`, as ZStack's `conf/db`
//! migrations leave them (`V0.6__schema.sql`; the secrets from `V2.6.0__schema.sql`,
//! with `status` and `userUuid`/`userType` since `V3.4.0__schema.sql`; ZSvirt has
//! `accountUuid` instead).
//!
//! - Accounts become users; `AccountVO.password` is the SHA-512 hex of the password.
//!   The built-in `SystemAdmin` account (`admin`) is this server's own admin: reported,
//!   never touched.
//! - The newest secret of an account: `Logined` is an active TOTP factor, `NewCreated`
//!   a pending one (confirmed here by the first code, as ZStack binds it). Tables
//!   before 3.4.0 have no status: their secrets come in pending.
//! - `twofa.enable` (`value`, else `defaultValue`) becomes this server's ZStack setting.

use super::source::SourceDb;
use super::Record;
use crate::CoreResult;

/// Server-wide settings: (key, value).
type Settings = Vec<(String, String)>;

#[cfg(not(feature = "mysql"))]
pub(crate) fn read(_db: &mut SourceDb) -> CoreResult<(Vec<Record>, Settings)> {
    Err(crate::CoreError::InvalidConfig(
        "source database: ZStack keeps its accounts in MySQL, and this build has no MySQL client (cargo feature `import-mysql`)".into(),
    ))
}

#[cfg(feature = "mysql")]
pub(crate) fn read(db: &mut SourceDb) -> CoreResult<(Vec<Record>, Settings)> {
    use std::collections::HashMap;

    use mysql::prelude::Queryable;

    use super::source::source_error;
    use super::{Outcome, SourceTotp, SourceUser};
    use crate::passwords::zstack_hash;
    use crate::CoreError;

    if !db.has_table("", "AccountVO")? {
        return Err(CoreError::InvalidConfig(
            "source database: no table AccountVO (is this ZStack's database?)".into(),
        ));
    }
    let has_secrets = db.has_table("", "TwoFactorAuthenticationSecretVO")?;
    let has_config = db.has_table("", "GlobalConfigVO")?;
    let SourceDb::Mysql(conn) = db else {
        return Err(CoreError::InvalidConfig(
            "source database: ZStack keeps its accounts in MySQL (give a mysql:// URL)".into(),
        ));
    };
    let accounts: Vec<(String, String, String, String)> = conn
        .query("SELECT uuid, name, password, type FROM AccountVO ORDER BY name")
        .map_err(source_error)?;

    // account uuid -> (secret, status), the newest row last.
    let mut secrets: HashMap<String, (String, String)> = HashMap::new();
    if has_secrets {
        let columns: Vec<String> = conn
            .query(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'TwoFactorAuthenticationSecretVO'",
            )
            .map_err(source_error)?;
        let has = |c: &str| columns.iter().any(|x| x.eq_ignore_ascii_case(c));
        let (owner, kind) = if has("userUuid") {
            ("userUuid", has("userType").then_some("userType"))
        } else if has("accountUuid") {
            ("accountUuid", None)
        } else {
            (
                "resourceUuid",
                has("resourceType").then_some("resourceType"),
            )
        };
        let status = if has("status") {
            "status"
        } else {
            "'NewCreated'"
        };
        let kind = kind.unwrap_or("'AccountVO'");
        let sql = format!(
            "SELECT {owner}, secret, {status}, {kind} FROM TwoFactorAuthenticationSecretVO \
             ORDER BY createDate, uuid"
        );
        let rows: Vec<(String, String, String, String)> = conn.query(sql).map_err(source_error)?;
        for (owner, secret, status, kind) in rows {
            if kind == "AccountVO" {
                secrets.insert(owner, (secret, status));
            }
        }
    }

    let mut records = Vec::with_capacity(accounts.len());
    for (uuid, name, password, kind) in accounts {
        if kind == "SystemAdmin" {
            let why = "ZStack's built-in admin: this server's own admin is kept as it is";
            records.push(Record::left(name, Outcome::BuiltinAdmin, why));
            continue;
        }
        let Some(password_hash) = zstack_hash(&password) else {
            records.push(Record::left(
                name,
                Outcome::Invalid,
                "password is not SHA-512 hex",
            ));
            continue;
        };
        let totp = match secrets.get(&uuid) {
            Some((secret, status)) => match SourceTotp::from_base32(secret, status == "Logined") {
                Some(totp) => Some(totp),
                None => {
                    let why = "authenticator secret is not base32 of 80 bits or more";
                    records.push(Record::left(name, Outcome::Invalid, why));
                    continue;
                }
            },
            None => None,
        };
        records.push(Record::User(SourceUser {
            username: name,
            email: None,
            email_confirmed: false,
            phone: None,
            phone_confirmed: false,
            is_admin: false,
            password_hash,
            totp,
            email_factor: false,
        }));
    }

    let config: Option<(Option<String>, Option<String>)> = match has_config {
        true => conn
            .query_first(
                "SELECT value, defaultValue FROM GlobalConfigVO \
                 WHERE category = 'twofa' AND name = 'twofa.enable'",
            )
            .map_err(source_error)?,
        false => None,
    };
    let mut settings = Vec::new();
    if let Some((value, default)) = config {
        if let Some(v) = value.or(default) {
            let on = v.trim().eq_ignore_ascii_case("true");
            settings.push(("twofa.enable".to_string(), on.to_string()));
        }
    }
    Ok((records, settings))
}

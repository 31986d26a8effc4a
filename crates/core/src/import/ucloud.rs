//! UCloud (PostgreSQL, schema `auth`): `auth.principals` and
//! `auth.two_factor_credentials`, as UCloud's auth-service migrations
//! (`V1__Initial.sql`, `V4__2FA.sql`, `V14__Emails.sql`, `V17__ASyncDBConvert.sql`) and
//! the current `core2` schema leave them.
//!
//! - Principals of `dtype` `PASSWORD` become users: `id` is the username, `email`,
//!   `role` `ADMIN` makes an admin. The password is PBKDF2-HMAC-SHA512 with UCloud's
//!   10000 iterations over `hashed_password` (32 bytes) and `salt` (16 bytes).
//! - Other principals (`WAYF` federated logins, `SERVICE`, `PROVIDER`) sign in without
//!   a password here-unknown: skipped.
//! - The newest `enforced` credential's `shared_secret` (base32, plaintext in UCloud)
//!   becomes the active TOTP factor. Unconfirmed credentials (`enforced = false`; the
//!   Kotlin service left one beside every confirmed one) are not carried over.

use std::collections::HashMap;

use diesel::sql_types::{Binary, Bool, Nullable, Text};
use diesel::QueryableByName;

use super::source::SourceDb;
use super::{Outcome, Record, SourceTotp, SourceUser};
use crate::passwords::ucloud_hash;
use crate::{CoreError, CoreResult};

/// UCloud's `PasswordHashingService` (Kotlin) and `util.HashPassword` (Go).
pub(crate) const ITERATIONS: u32 = 10000;

#[derive(QueryableByName)]
struct Principal {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    dtype: String,
    #[diesel(sql_type = Nullable<Text>)]
    role: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    email: Option<String>,
    #[diesel(sql_type = Nullable<Binary>)]
    hashed_password: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Binary>)]
    salt: Option<Vec<u8>>,
}

#[derive(QueryableByName)]
struct Credential {
    #[diesel(sql_type = Text)]
    principal_id: String,
    #[diesel(sql_type = Bool)]
    enforced: bool,
    #[diesel(sql_type = Text)]
    shared_secret: String,
}

pub(crate) fn read(db: &mut SourceDb) -> CoreResult<Vec<Record>> {
    if !matches!(db, SourceDb::Postgres(_)) {
        return Err(CoreError::InvalidConfig(
            "source database: UCloud keeps its users in PostgreSQL (give a postgres:// URL)".into(),
        ));
    }
    if !db.has_table("auth", "principals")? {
        return Err(CoreError::InvalidConfig(
            "source database: no table auth.principals (is this UCloud's database?)".into(),
        ));
    }
    let principals: Vec<Principal> = db.load(
        "SELECT id::text AS id, dtype::text AS dtype, role::text AS role, email::text AS email, \
         hashed_password, salt FROM auth.principals ORDER BY id",
    )?;
    // Oldest first, so the newest enforced credential of a principal wins.
    let credentials: Vec<Credential> = if db.has_table("auth", "two_factor_credentials")? {
        db.load(
            "SELECT principal_id::text AS principal_id, enforced, shared_secret::text AS shared_secret \
             FROM auth.two_factor_credentials ORDER BY id",
        )?
    } else {
        Vec::new()
    };
    let mut enforced: HashMap<&str, &str> = HashMap::new();
    for c in credentials.iter().filter(|c| c.enforced) {
        enforced.insert(&c.principal_id, &c.shared_secret);
    }
    let mut records = Vec::with_capacity(principals.len());
    for p in &principals {
        let name = p.id.clone();
        if p.dtype != "PASSWORD" {
            let why = match p.dtype.as_str() {
                "WAYF" => "signs in through WAYF, not with a password: not carried over".into(),
                other => format!("a {other} principal, not a person: not carried over"),
            };
            records.push(Record::left(name, Outcome::Skipped, why));
            continue;
        }
        let role = p.role.as_deref().unwrap_or("USER");
        if !matches!(role, "USER" | "ADMIN") {
            let why = format!("role {role}: not carried over");
            records.push(Record::left(name, Outcome::Skipped, why));
            continue;
        }
        let (Some(hash), Some(salt)) = (&p.hashed_password, &p.salt) else {
            records.push(Record::left(name, Outcome::Skipped, "no password"));
            continue;
        };
        if hash.len() < 32 || salt.len() < 8 {
            records.push(Record::left(
                name,
                Outcome::Invalid,
                "malformed password hash",
            ));
            continue;
        }
        let totp = match enforced.get(p.id.as_str()) {
            Some(secret) => match SourceTotp::from_base32(secret, true) {
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
            email: p.email.clone().filter(|e| !e.trim().is_empty()),
            email_confirmed: false,
            phone: None,
            phone_confirmed: false,
            is_admin: role == "ADMIN",
            password_hash: ucloud_hash(ITERATIONS, salt, hash),
            totp,
            email_factor: false,
        }));
    }
    Ok(records)
}

//! AuthEndpoints: ASP.NET Core Identity's tables as Entity Framework Core creates them
//! (`AspNetUsers`, `AspNetUserTokens`; the `IdentityUser` columns of Identity's
//! `Extensions.Stores`), read from PostgreSQL (Npgsql), SQLite or MySQL (Pomelo).
//! SQL Server databases cannot be read here (no driver): export them to one of those.
//!
//! - Users with a `PasswordHash` (Identity's versioned format, kept as it is) come over
//!   with `Email`, `EmailConfirmed`, `PhoneNumber`, `PhoneNumberConfirmed`; users
//!   without one (external logins only) are skipped.
//! - `TwoFactorEnabled` with an authenticator key (`AspNetUserTokens`, login provider
//!   `[AspNetUserStore]`, name `AuthenticatorKey`, base32) is an active TOTP factor;
//!   `TwoFactorEnabled` without one is AuthEndpoints' email two-step verification. A
//!   key of a user who never turned two-factor on was never confirmed: not carried over.

use std::collections::HashMap;

use diesel::sql_types::{Bool, Nullable, Text};
use diesel::QueryableByName;

use super::source::SourceDb;
use super::{Outcome, Record, SourceTotp, SourceUser};
use crate::passwords::identity_hash;
use crate::{CoreError, CoreResult};

#[derive(QueryableByName)]
struct IdentityUser {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Nullable<Text>)]
    user_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    email: Option<String>,
    #[diesel(sql_type = Bool)]
    email_confirmed: bool,
    #[diesel(sql_type = Nullable<Text>)]
    password_hash: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    phone_number: Option<String>,
    #[diesel(sql_type = Bool)]
    phone_number_confirmed: bool,
    #[diesel(sql_type = Bool)]
    two_factor_enabled: bool,
}

#[derive(QueryableByName)]
struct Token {
    #[diesel(sql_type = Text)]
    user_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    value: Option<String>,
}

const KEY_FILTER: &str = "WHERE LoginProvider = '[AspNetUserStore]' AND Name = 'AuthenticatorKey'";

fn users_sql(kind: &str) -> String {
    let text = |c: &str| match kind {
        "postgres" => format!("\"{c}\"::text"),
        _ => format!("CAST(\"{c}\" AS TEXT)"),
    };
    format!(
        "SELECT {} AS id, \"UserName\" AS user_name, \"Email\" AS email, \
         \"EmailConfirmed\" AS email_confirmed, \"PasswordHash\" AS password_hash, \
         \"PhoneNumber\" AS phone_number, \"PhoneNumberConfirmed\" AS phone_number_confirmed, \
         \"TwoFactorEnabled\" AS two_factor_enabled FROM \"AspNetUsers\" ORDER BY \"UserName\"",
        text("Id")
    )
}

fn tokens_sql(kind: &str) -> String {
    let id = match kind {
        "postgres" => "\"UserId\"::text",
        _ => "CAST(\"UserId\" AS TEXT)",
    };
    let filter = KEY_FILTER
        .replace("LoginProvider", "\"LoginProvider\"")
        .replace("Name ", "\"Name\" ");
    format!("SELECT {id} AS user_id, \"Value\" AS value FROM \"AspNetUserTokens\" {filter}")
}

fn load(db: &mut SourceDb) -> CoreResult<(Vec<IdentityUser>, Vec<Token>)> {
    let has_tokens = db.has_table("public", "AspNetUserTokens")?;
    #[cfg(feature = "mysql")]
    if let SourceDb::Mysql(conn) = db {
        use super::source::source_error;
        use mysql::prelude::Queryable;
        type Row = (
            String,
            Option<String>,
            Option<String>,
            i64,
            Option<String>,
            Option<String>,
            i64,
            i64,
        );
        let users = conn
            .query_map(
                "SELECT CAST(Id AS CHAR), UserName, Email, EmailConfirmed <> 0, PasswordHash, \
                 PhoneNumber, PhoneNumberConfirmed <> 0, TwoFactorEnabled <> 0 \
                 FROM AspNetUsers ORDER BY UserName",
                |(id, user_name, email, confirmed, password_hash, phone, phone_ok, two): Row| {
                    IdentityUser {
                        id,
                        user_name,
                        email,
                        email_confirmed: confirmed != 0,
                        password_hash,
                        phone_number: phone,
                        phone_number_confirmed: phone_ok != 0,
                        two_factor_enabled: two != 0,
                    }
                },
            )
            .map_err(source_error)?;
        let tokens = match has_tokens {
            true => conn
                .query_map(
                    format!(
                        "SELECT CAST(UserId AS CHAR), Value FROM AspNetUserTokens {KEY_FILTER}"
                    ),
                    |(user_id, value): (String, Option<String>)| Token { user_id, value },
                )
                .map_err(source_error)?,
            false => Vec::new(),
        };
        return Ok((users, tokens));
    }
    let kind = db.kind();
    let users = db.load(&users_sql(kind))?;
    let tokens = match has_tokens {
        true => db.load(&tokens_sql(kind))?,
        false => Vec::new(),
    };
    Ok((users, tokens))
}

pub(crate) fn read(db: &mut SourceDb) -> CoreResult<Vec<Record>> {
    if !db.has_table("public", "AspNetUsers")? {
        return Err(CoreError::InvalidConfig(
            "source database: no table AspNetUsers (is this an ASP.NET Core Identity database?)"
                .into(),
        ));
    }
    let (users, tokens) = load(db)?;
    let keys: HashMap<String, String> = tokens
        .into_iter()
        .filter_map(|t| Some((t.user_id, t.value?)))
        .collect();
    let mut records = Vec::with_capacity(users.len());
    for u in users {
        let Some(name) = u.user_name.clone().filter(|n| !n.is_empty()) else {
            let why = format!("user {} has no UserName", u.id);
            records.push(Record::left(
                format!("(id {})", u.id),
                Outcome::Skipped,
                why,
            ));
            continue;
        };
        let Some(hash) = u.password_hash.as_deref().filter(|h| !h.trim().is_empty()) else {
            let why = "no password (external logins only)";
            records.push(Record::left(name, Outcome::Skipped, why));
            continue;
        };
        let key = keys.get(&u.id).filter(|_| u.two_factor_enabled);
        let totp = match key {
            Some(key) => match SourceTotp::from_base32(key, true) {
                Some(totp) => Some(totp),
                None => {
                    let why = "authenticator key is not base32 of 80 bits or more";
                    records.push(Record::left(name, Outcome::Invalid, why));
                    continue;
                }
            },
            None => None,
        };
        let email = u.email.clone().filter(|e| !e.trim().is_empty());
        let email_factor = u.two_factor_enabled && totp.is_none();
        if email_factor && email.is_none() {
            let why = "two-step verification on, but no email address to send codes to";
            records.push(Record::left(name, Outcome::Invalid, why));
            continue;
        }
        records.push(Record::User(SourceUser {
            username: name,
            email,
            email_confirmed: u.email_confirmed,
            phone: u.phone_number.clone().filter(|p| !p.trim().is_empty()),
            phone_confirmed: u.phone_number_confirmed,
            is_admin: false,
            password_hash: identity_hash(hash),
            totp,
            email_factor,
        }));
    }
    Ok(records)
}

//! Account operations for dialects with self-service users: registration with an email
//! address, email confirmation, password change and reset, deletion, and two-step
//! verification by email codes (an email factor beside the TOTP authenticator).

use diesel::prelude::*;

use crate::audit;
use crate::codes::{claim_all, has_live_code, redeem, CodePurpose};
use crate::crypto::{hash_password, verify_password, Password};
use crate::db::schema::{
    challenges, email_factors, one_time_codes, sessions as session_rows, totp_factors, users,
};
use crate::db::{write_tx, DbConnection};
use crate::sessions::{self, Session};
use crate::throttle;
use crate::users::{find_by_id, UserRow};
use crate::{Core, CoreError, CoreResult, Inner, Origin, User};

// Both backends have lower(); addresses are compared case-insensitively (ASCII letters:
// what SQLite's lower() folds).
diesel::define_sql_function!(fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>);

/// The second factors a user has turned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SecondFactors {
    pub email: bool,
    pub totp: bool,
    /// An active SMS factor (a verified mobile number).
    pub sms: bool,
}

impl SecondFactors {
    pub fn any(self) -> bool {
        self.email || self.totp || self.sms
    }
}

/// The result of [`Core::sign_in`].
#[derive(Debug, Clone)]
pub enum SignIn {
    /// No second factor: signed in.
    Complete(Session),
    /// The password was right; a second factor must follow.
    SecondFactorRequired { user: User, factors: SecondFactors },
}

pub(crate) fn email_factor_enabled(conn: &mut DbConnection, user_id: &str) -> CoreResult<bool> {
    let n: i64 = email_factors::table
        .filter(email_factors::user_id.eq(user_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub(crate) fn second_factors(conn: &mut DbConnection, user_id: &str) -> CoreResult<SecondFactors> {
    Ok(SecondFactors {
        email: email_factor_enabled(conn, user_id)?,
        totp: sessions::has_active_factor(conn, user_id)?,
        sms: crate::sms::sms_factor_active(conn, user_id)?,
    })
}

/// Whether the user has a second factor whose codes are sent (email or SMS). Logins
/// that can carry only an authenticator code must refuse such a user, never let them
/// in on the password alone.
pub(crate) fn sent_code_factor(conn: &mut DbConnection, user_id: &str) -> CoreResult<bool> {
    Ok(email_factor_enabled(conn, user_id)? || crate::sms::sms_factor_active(conn, user_id)?)
}

pub(crate) fn live_user(conn: &mut DbConnection, user_id: &str) -> CoreResult<UserRow> {
    match find_by_id(conn, user_id)? {
        Some(u) if !u.disabled => Ok(u),
        Some(_) => Err(CoreError::UserDisabled),
        None => Err(CoreError::UserNotFound),
    }
}

fn set_password_hash(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    user: &UserRow,
    hash: &str,
) -> CoreResult<()> {
    diesel::update(users::table.find(&user.id))
        .set(users::password_hash.eq(hash))
        .execute(conn)?;
    // A new password ends every session and every outstanding reset link.
    diesel::update(session_rows::table.filter(session_rows::user_id.eq(&user.id)))
        .set(session_rows::revoked.eq(true))
        .execute(conn)?;
    diesel::update(
        one_time_codes::table
            .filter(one_time_codes::user_id.eq(&user.id))
            .filter(one_time_codes::purpose.eq(CodePurpose::ResetPassword.as_str())),
    )
    .set(one_time_codes::used.eq(true))
    .execute(conn)?;
    audit::record(
        inner,
        conn,
        origin,
        "password.changed",
        Some((&user.id, &user.username)),
        None,
    )
}

impl Core {
    /// The second factors the user has turned on.
    pub async fn second_factors(&self, user_id: String) -> CoreResult<SecondFactors> {
        self.run(move |_, conn| second_factors(conn, &user_id))
            .await
    }

    /// The one user with this email address (case-insensitive); `None` when there is
    /// none, or when several share it (ambiguous, so nobody).
    pub async fn user_by_email(&self, email: String) -> CoreResult<Option<User>> {
        self.run(move |_, conn| {
            let rows: Vec<UserRow> = users::table
                .filter(lower(users::email).eq(email.trim().to_ascii_lowercase()))
                .select(UserRow::as_select())
                .limit(2)
                .load(conn)?;
            Ok(match <[UserRow; 1]>::try_from(rows) {
                Ok([user]) => Some(user.into()),
                Err(_) => None,
            })
        })
        .await
    }

    /// Password sign-in for dialects whose login answers with tokens or with "second
    /// factor required". Whatever the dialect, a user with any second factor gets no
    /// session here.
    pub async fn sign_in(
        &self,
        origin: Origin,
        username: String,
        password: Password,
    ) -> CoreResult<SignIn> {
        let user = self.authenticate(&origin, &username, password).await?;
        self.run(move |inner, conn| {
            let factors = second_factors(conn, &user.id)?;
            if factors.any() {
                return Ok(SignIn::SecondFactorRequired { user, factors });
            }
            write_tx(conn, |conn| {
                Ok(SignIn::Complete(sessions::create(
                    inner, conn, &origin, user, false,
                )?))
            })
        })
        .await
    }

    /// Checks the password only (under its brute-force limit), for a login whose second
    /// step follows in another request. Opens no session.
    pub async fn first_factor(
        &self,
        origin: Origin,
        username: String,
        password: Password,
    ) -> CoreResult<(User, SecondFactors)> {
        let user = self.authenticate(&origin, &username, password).await?;
        let user_id = user.id.clone();
        let factors = self
            .run(move |_, conn| second_factors(conn, &user_id))
            .await?;
        Ok((user, factors))
    }

    /// Turns on two-step verification by email with a code of purpose
    /// `EnableTwoFactor` that was sent to the user's confirmed address.
    pub async fn enable_email_two_factor(
        &self,
        origin: Origin,
        user_id: String,
        code: String,
    ) -> CoreResult<()> {
        self.run(move |inner, conn| {
            let user = live_user(conn, &user_id)?;
            if email_factor_enabled(conn, &user.id)? {
                return Err(CoreError::AlreadyBound);
            }
            redeem(
                inner,
                conn,
                &origin,
                &user,
                CodePurpose::EnableTwoFactor,
                &code,
                |conn| {
                    diesel::insert_into(email_factors::table)
                        .values((
                            email_factors::user_id.eq(&user.id),
                            email_factors::created_at.eq(inner.now()),
                        ))
                        .execute(conn)?;
                    // Codes sent before the change are void, as Identity's stamp rotation did.
                    diesel::update(
                        one_time_codes::table
                            .filter(one_time_codes::user_id.eq(&user.id))
                            .filter(one_time_codes::used.eq(false)),
                    )
                    .set(one_time_codes::used.eq(true))
                    .execute(conn)?;
                    audit::record(
                        inner,
                        conn,
                        &origin,
                        "email_2fa.enabled",
                        Some((&user.id, &user.username)),
                        None,
                    )
                },
            )
        })
        .await
    }

    /// Completes a two-step login with an emailed code of purpose `Login`.
    pub async fn login_with_emailed_code(
        &self,
        origin: Origin,
        user_id: String,
        code: String,
    ) -> CoreResult<Session> {
        self.run(move |inner, conn| {
            let user = live_user(conn, &user_id)?;
            if !email_factor_enabled(conn, &user.id)? {
                return Err(CoreError::NoSecondFactor);
            }
            redeem(
                inner,
                conn,
                &origin,
                &user,
                CodePurpose::Login,
                &code,
                |conn| sessions::create(inner, conn, &origin, user.clone().into(), true),
            )
        })
        .await
    }

    /// Whether a code of `purpose` is outstanding for the user (a login step was begun).
    pub async fn code_outstanding(
        &self,
        user_id: String,
        purpose: CodePurpose,
    ) -> CoreResult<bool> {
        self.run(move |inner, conn| has_live_code(inner, conn, &user_id, purpose))
            .await
    }

    /// Completes a login begun with `begin_authenticator_login` (so the password was
    /// checked) with an authenticator code (single use, lockout-limited, see
    /// `verify_totp`).
    pub async fn login_with_totp(
        &self,
        origin: Origin,
        user_id: String,
        code: String,
    ) -> CoreResult<Session> {
        if !self
            .code_outstanding(user_id.clone(), CodePurpose::AuthenticatorLogin)
            .await?
        {
            return Err(CoreError::InvalidChallenge);
        }
        self.verify_totp(origin.clone(), user_id.clone(), code)
            .await?;
        self.run(move |inner, conn| {
            let user = live_user(conn, &user_id)?;
            write_tx(conn, |conn| {
                if !claim_all(inner, conn, &user.id, CodePurpose::AuthenticatorLogin)? {
                    return Err(CoreError::InvalidChallenge);
                }
                sessions::create(inner, conn, &origin, user.into(), true)
            })
        })
        .await
    }

    /// Confirms the user's email address with a `ConfirmEmail` code.
    pub async fn confirm_email(
        &self,
        origin: Origin,
        user_id: String,
        code: String,
    ) -> CoreResult<()> {
        self.run(move |inner, conn| {
            let user = live_user(conn, &user_id)?;
            redeem(
                inner,
                conn,
                &origin,
                &user,
                CodePurpose::ConfirmEmail,
                &code,
                |conn| {
                    diesel::update(users::table.find(&user.id))
                        .set(users::email_confirmed.eq(true))
                        .execute(conn)?;
                    audit::record(
                        inner,
                        conn,
                        &origin,
                        "email.confirmed",
                        Some((&user.id, &user.username)),
                        None,
                    )
                },
            )
        })
        .await
    }

    /// Changes the password after checking the current one (under the password
    /// brute-force limit of the username).
    pub async fn change_password(
        &self,
        origin: Origin,
        user_id: String,
        current: Password,
        new: Password,
    ) -> CoreResult<()> {
        // Argon2 (check and hash) runs between the database steps, holding no connection.
        let id = user_id.clone();
        let user = self.run(move |_, conn| live_user(conn, &id)).await?;
        self.authenticate(&origin, &user.username, current).await?;
        let hash = self
            .cpu(move |inner| hash_password(inner.rng(), &new))
            .await??;
        self.run(move |inner, conn| {
            let user = live_user(conn, &user_id)?;
            write_tx(conn, |conn| {
                set_password_hash(inner, conn, &origin, &user, &hash)
            })
        })
        .await
    }

    /// Whether `password` is the user's current one (no throttle: the caller has
    /// already proven who it is and compares against a new password).
    pub async fn password_matches(&self, user_id: String, password: Password) -> CoreResult<bool> {
        let hash = self
            .run(move |_, conn| Ok(live_user(conn, &user_id)?.password_hash))
            .await?;
        self.cpu(move |_| {
            hash.as_deref()
                .is_some_and(|h| verify_password(h, &password))
        })
        .await
    }

    /// Sets a new password with a `ResetPassword` code; ends every session.
    pub async fn reset_password(
        &self,
        origin: Origin,
        user_id: String,
        code: String,
        new: Password,
    ) -> CoreResult<()> {
        let hash = self
            .cpu(move |inner| hash_password(inner.rng(), &new))
            .await??;
        self.run(move |inner, conn| {
            let user = live_user(conn, &user_id)?;
            redeem(
                inner,
                conn,
                &origin,
                &user,
                CodePurpose::ResetPassword,
                &code,
                |conn| {
                    set_password_hash(inner, conn, &origin, &user, &hash)?;
                    throttle::clear(conn, &throttle::password_key(&user.username))
                },
            )
        })
        .await
    }

    /// Whether the session was ended (revoked, as by a password change, or expired).
    /// An unknown session is not reported as ended: its user was deleted, which the
    /// caller sees when it loads the user.
    pub async fn session_ended(&self, session_id: String) -> CoreResult<bool> {
        self.run(move |inner, conn| {
            let row: Option<(bool, i64)> = session_rows::table
                .filter(session_rows::id.eq(&session_id))
                .select((session_rows::revoked, session_rows::expires_at))
                .get_result(conn)
                .optional()?;
            Ok(row.is_some_and(|(revoked, expires_at)| revoked || expires_at <= inner.now()))
        })
        .await
    }

    /// Deletes the user with their factors, codes and sessions.
    pub async fn delete_user(&self, origin: Origin, user_id: String) -> CoreResult<()> {
        self.run(move |inner, conn| {
            write_tx(conn, |conn| {
                let user = find_by_id(conn, &user_id)?.ok_or(CoreError::UserNotFound)?;
                // Explicit deletes: SQLite enforces ON DELETE CASCADE only per connection.
                diesel::delete(one_time_codes::table.filter(one_time_codes::user_id.eq(&user.id)))
                    .execute(conn)?;
                diesel::delete(email_factors::table.filter(email_factors::user_id.eq(&user.id)))
                    .execute(conn)?;
                crate::files::delete_user_rows(conn, &user.id)?;
                diesel::delete(session_rows::table.filter(session_rows::user_id.eq(&user.id)))
                    .execute(conn)?;
                diesel::delete(challenges::table.filter(challenges::user_id.eq(&user.id)))
                    .execute(conn)?;
                diesel::delete(totp_factors::table.filter(totp_factors::user_id.eq(&user.id)))
                    .execute(conn)?;
                diesel::delete(users::table.find(&user.id)).execute(conn)?;
                throttle::clear(conn, &throttle::codes_key(&user.id))?;
                audit::record(
                    inner,
                    conn,
                    &origin,
                    "user.deleted",
                    Some((&user.id, &user.username)),
                    None,
                )
            })
        })
        .await
    }
}

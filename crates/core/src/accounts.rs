//! What changes an account as a whole: email confirmation, password change and reset,
//! resetting every second factor (operator, UCloud's and ZStack's admin resets), and
//! deleting the user. Each ends what it must: a new password or a factor reset ends
//! every session; a deletion removes everything the user had.

use diesel::prelude::*;

use crate::audit;
use crate::codes::{redeem, CodePurpose};
use crate::db::schema::{challenges, one_time_codes, users};
use crate::db::{write_tx, DbConnection};
use crate::dialect_state::files;
use crate::factors::totp::{self, PendingFactor, TotpFactorInfo};
use crate::factors::{self};
use crate::lockout;
use crate::passwords::{hash_password, Password};
use crate::tokens::sessions;
use crate::users::{find_by_id, find_by_username, live_user, require_admin, UserRow};
use crate::{Actor, Core, CoreError, CoreResult, Inner, Origin};

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
    sessions::revoke_all(conn, &user.id)?;
    diesel::update(
        one_time_codes::table
            .filter(one_time_codes::user_id.eq(&user.id))
            .filter(one_time_codes::purpose.eq(CodePurpose::ResetPassword.as_str())),
    )
    .set(one_time_codes::used.eq(true))
    .execute(conn)?;
    audit::record(inner, conn, origin, "password.changed", user, None)
}

/// Removes every second factor of the user and their pending codes, forgets their code
/// failures and ends their sessions.
fn reset_factors(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    user: &UserRow,
) -> CoreResult<()> {
    factors::remove_all(conn, &user.id)?;
    lockout::clear(conn, &lockout::codes_key(&user.id))?;
    sessions::revoke_all(conn, &user.id)?;
    audit::record(inner, conn, origin, "factors.reset", user, None)
}

impl Core {
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
                    audit::record(inner, conn, &origin, "email.confirmed", &user, None)
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
            .hashing(move |inner| hash_password(inner.rng(), &new))
            .await??;
        self.run(move |inner, conn| {
            let user = live_user(conn, &user_id)?;
            write_tx(conn, |conn| {
                set_password_hash(inner, conn, &origin, &user, &hash)
            })
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
            .hashing(move |inner| hash_password(inner.rng(), &new))
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
                    lockout::clear(conn, &lockout::password_key(&user.username))
                },
            )
        })
        .await
    }

    /// Removes every second factor of `username` (TOTP, email, SMS, pending ones and
    /// their codes) and ends their sessions, so the user can enroll again.
    pub async fn reset_second_factors(
        &self,
        origin: Origin,
        actor: Actor,
        username: String,
    ) -> CoreResult<()> {
        self.run(move |inner, conn| {
            write_tx(conn, |conn| {
                require_admin(conn, &actor)?;
                let user = find_by_username(conn, &username)?.ok_or(CoreError::UserNotFound)?;
                reset_factors(inner, conn, &origin, &user)
            })
        })
        .await
    }

    /// Replaces every factor of `username` with a new pending TOTP factor (lost device;
    /// ZStack's reset). Only an admin may, and only with the user's password, as
    /// ZStack's reset requires.
    pub async fn reissue_totp(
        &self,
        origin: Origin,
        actor: Actor,
        username: String,
        password: Password,
    ) -> CoreResult<TotpFactorInfo> {
        // Only an admin gets to have a password checked here.
        self.run(move |_, conn| require_admin(conn, &actor)).await?;
        let user = self.authenticate(&origin, &username, password).await?;
        self.run(move |inner, conn| {
            let pending = PendingFactor::new(inner);
            write_tx(conn, |conn| {
                let user = live_user(conn, &user.id)?;
                reset_factors(inner, conn, &origin, &user)?;
                pending.insert(inner, conn, &user.id)
            })?;
            totp::factor_of(conn, &user.id)?
                .ok_or(CoreError::NoSecondFactor)?
                .info(inner)
        })
        .await
    }

    /// Deletes the user with their factors, codes, sessions and files.
    pub async fn delete_user(&self, origin: Origin, user_id: String) -> CoreResult<()> {
        self.run(move |inner, conn| {
            write_tx(conn, |conn| {
                let user = find_by_id(conn, &user_id)?.ok_or(CoreError::UserNotFound)?;
                // Explicit deletes: SQLite enforces ON DELETE CASCADE only per connection.
                diesel::delete(challenges::table.filter(challenges::user_id.eq(&user.id)))
                    .execute(conn)?;
                factors::remove_all(conn, &user.id)?;
                diesel::delete(one_time_codes::table.filter(one_time_codes::user_id.eq(&user.id)))
                    .execute(conn)?;
                files::delete_user_rows(conn, &user.id)?;
                sessions::delete_all(conn, &user.id)?;
                diesel::delete(users::table.find(&user.id)).execute(conn)?;
                lockout::clear(conn, &lockout::codes_key(&user.id))?;
                audit::record(inner, conn, &origin, "user.deleted", &user, None)
            })
        })
        .await
    }
}

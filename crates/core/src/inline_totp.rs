//! TOTP for dialects whose clients send the code with the login instead of answering a
//! challenge (ZStack's `twofatoken::<code>`): fetching the pending secret, logging in
//! with a code (which confirms a pending factor), and an admin re-issuing a factor.
//! Codes go through the same `CodeCheck` as challenge answers: single use, counted
//! toward the per-user lockout.

use diesel::prelude::*;

use crate::audit;
use crate::challenges::{CodeCheck, PendingFactor};
use crate::crypto::Password;
use crate::db::schema::{totp_factors, users};
use crate::db::{write_tx, DbConnection};
use crate::sessions::{self, Session};
use crate::throttle;
use crate::totp;
use crate::users::{require_admin, UserRow};
use crate::{Actor, Core, CoreError, CoreResult, Inner, Origin, User};

/// A user's TOTP factor as dialects show it.
#[derive(Debug, Clone)]
pub struct TotpFactorInfo {
    /// 32 hex digits.
    pub id: String,
    pub user_id: String,
    pub username: String,
    /// The base32 secret while the factor is pending; `None` once it is active, so an
    /// active secret is never disclosed again.
    pub secret_base32: Option<String>,
    pub active: bool,
    pub created_at: i64,
    /// The last change: activation, else creation.
    pub updated_at: i64,
}

/// The result of a login that carries its code with it.
#[derive(Debug, Clone)]
pub enum CodeLogin {
    Complete(Session),
    /// Password right, but a code is needed and none was sent.
    CodeRequired {
        user: User,
    },
}

/// A factor with its user's name, selected with `FactorRow::as_select()`.
#[derive(Queryable, Selectable)]
#[diesel(table_name = totp_factors)]
pub(crate) struct FactorRow {
    pub(crate) id: String,
    pub(crate) user_id: String,
    pub(crate) secret_sealed: Vec<u8>,
    pub(crate) active: bool,
    pub(crate) created_at: i64,
    pub(crate) activated_at: Option<i64>,
    #[diesel(select_expression = users::username)]
    pub(crate) username: String,
}

impl FactorRow {
    pub(crate) fn info(self, inner: &Inner) -> CoreResult<TotpFactorInfo> {
        let secret_base32 = if self.active {
            None
        } else {
            let secret = inner.secrets.open(&self.id, &self.secret_sealed)?;
            Some(totp::secret_to_base32(&secret))
        };
        Ok(TotpFactorInfo {
            updated_at: self.activated_at.unwrap_or(self.created_at),
            id: self.id,
            user_id: self.user_id,
            username: self.username,
            secret_base32,
            active: self.active,
            created_at: self.created_at,
        })
    }
}

fn factor_of(conn: &mut DbConnection, user_id: &str) -> CoreResult<Option<FactorRow>> {
    Ok(totp_factors::table
        .inner_join(users::table)
        .filter(totp_factors::user_id.eq(user_id))
        .select(FactorRow::as_select())
        .get_result(conn)
        .optional()?)
}

fn user_row(conn: &mut DbConnection, user: &User) -> CoreResult<UserRow> {
    crate::users::find_by_id(conn, &user.id)?.ok_or(CoreError::UserNotFound)
}

impl Core {
    /// After a password check: the user's TOTP factor, created pending on the first
    /// call. Later calls return the same pending secret; an active factor comes back
    /// without its secret.
    pub async fn pending_totp(
        &self,
        origin: Origin,
        username: String,
        password: Password,
    ) -> CoreResult<TotpFactorInfo> {
        let user = self.authenticate(&origin, &username, password).await?;
        self.run(move |inner, conn| {
            let row = user_row(conn, &user)?;
            let pending = PendingFactor::new(inner);
            let created = write_tx(conn, |conn| {
                if factor_of(conn, &row.id)?.is_none() {
                    pending.insert(inner, conn, &row.id)?;
                    audit::record(
                        inner,
                        conn,
                        &origin,
                        "totp.setup_started",
                        user.subject(),
                        None,
                    )?;
                }
                Ok(())
            });
            match created {
                // A concurrent first call inserted it (one factor per user is unique).
                Ok(()) | Err(CoreError::UserExists) => {}
                Err(e) => return Err(e),
            }
            factor_of(conn, &row.id)?
                .ok_or(CoreError::NoSecondFactor)?
                .info(inner)
        })
        .await
    }

    /// Password login with the code sent alongside. The password is checked first, so
    /// an unauthenticated caller learns nothing about the user's factor and cannot
    /// spend the user's code attempts. Then:
    /// - an active factor always needs a code (no dialect is a bypass);
    /// - `code_required` (a dialect-wide switch) demands one from everybody, and
    ///   `NoSecondFactor` when the user has no factor at all;
    /// - a code for a pending factor confirms it (binding at first login).
    ///
    /// The session is an opaque-token session of `ttl` seconds.
    pub async fn login_with_code(
        &self,
        origin: Origin,
        username: String,
        password: Password,
        code: Option<String>,
        code_required: bool,
        ttl: i64,
    ) -> CoreResult<CodeLogin> {
        let user = self.authenticate(&origin, &username, password).await?;
        self.run(move |inner, conn| {
            let row = user_row(conn, &user)?;
            let factor = factor_of(conn, &row.id)?;
            // A second factor this login cannot carry (email or SMS codes) is still a
            // second factor: no session on the password (or a pending factor) alone.
            if !factor.as_ref().is_some_and(|f| f.active)
                && crate::accounts::sent_code_factor(conn, &row.id)?
            {
                return Err(CoreError::NoSecondFactor);
            }
            let needs_code = code_required || factor.as_ref().is_some_and(|f| f.active);
            let (code, factor) = match (code, factor) {
                (None, _) if needs_code => return Ok(CodeLogin::CodeRequired { user }),
                (Some(_), None) if code_required => return Err(CoreError::NoSecondFactor),
                (Some(code), Some(factor)) => (code, factor),
                // No code needed, or a code for a user without any factor: password only.
                _ => {
                    return write_tx(conn, |conn| {
                        sessions::create_opaque(inner, conn, &origin, user, false, ttl)
                    })
                    .map(CodeLogin::Complete)
                }
            };
            let check = CodeCheck {
                inner,
                origin: &origin,
                user: &row,
            };
            let step = check.matching_step(conn, &factor.id, &factor.secret_sealed, &code)?;
            let activate = !factor.active;
            let outcome = write_tx(conn, |conn| {
                check.accept_step(conn, &factor.id, step, activate, "with login")?;
                if activate {
                    audit::record(inner, conn, &origin, "totp.enrolled", check.subject(), None)?;
                }
                sessions::create_opaque(inner, conn, &origin, user.clone(), true, ttl)
            });
            check.count_replay(conn, outcome).map(CodeLogin::Complete)
        })
        .await
    }

    /// Replaces `username`'s TOTP factor with a new pending one (lost device). Only an
    /// admin may, and only with the user's password, as ZStack's reset requires.
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
            let row = user_row(conn, &user)?;
            let pending = PendingFactor::new(inner);
            write_tx(conn, |conn| {
                diesel::delete(totp_factors::table.filter(totp_factors::user_id.eq(&row.id)))
                    .execute(conn)?;
                pending.insert(inner, conn, &row.id)?;
                throttle::clear(conn, &throttle::codes_key(&row.id))?;
                audit::record(inner, conn, &origin, "factors.reset", user.subject(), None)
            })?;
            factor_of(conn, &row.id)?
                .ok_or(CoreError::NoSecondFactor)?
                .info(inner)
        })
        .await
    }
}

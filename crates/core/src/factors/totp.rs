//! The authenticator app (TOTP, see `otp.rs`): one factor per user, pending until a
//! correct code confirms it, then active. A code is accepted once: the factor's last
//! used step moves forward in one conditional UPDATE (`last_step < step`), so of two
//! concurrent answers with the same code exactly one updates the row. Every code is
//! checked under the user's code lockout (`lockout::code_attempt`).

use diesel::prelude::*;

use crate::audit;
use crate::db::schema::{totp_factors, users};
use crate::db::{cached_statement, write_tx, DbConnection};
use crate::lockout::{self, Attempt};
use crate::metrics::{self, Factor, Outcome};
use crate::otp;
use crate::passwords::Password;
use crate::random::random_hex;
use crate::users::{live_user, UserRow};
use crate::{Core, CoreError, CoreResult, Inner, Origin};

/// Where a user's authenticator is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorState {
    None,
    /// Enrolment begun, not yet confirmed with a code.
    Pending,
    Active,
}

/// A user's TOTP factor as dialects show it.
#[derive(Debug, Clone)]
pub struct TotpFactorInfo {
    /// 32 hex digits.
    pub id: String,
    pub user_id: String,
    pub username: String,
    /// The base32 secret while the factor is pending; `None` once it is active, so an
    /// active secret is never disclosed again, and `None` to anyone but its owner.
    pub secret_base32: Option<String>,
    pub active: bool,
    pub created_at: i64,
    /// The last change: activation, else creation.
    pub updated_at: i64,
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
        let viewer = self.user_id.clone();
        self.info_seen_by(inner, &viewer)
    }

    /// The factor as `viewer` (a user id) may see it: a pending secret only shown to
    /// its owner, to nobody else, admins included.
    pub(crate) fn info_seen_by(self, inner: &Inner, viewer: &str) -> CoreResult<TotpFactorInfo> {
        let secret_base32 = if self.active || self.user_id != viewer {
            None
        } else {
            let secret = inner.secrets.open(&self.id, &self.secret_sealed)?;
            Some(otp::secret_to_base32(&secret))
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

    pub(crate) fn sealed(&self) -> Sealed {
        Sealed {
            id: self.id.clone(),
            secret: self.secret_sealed.clone(),
        }
    }
}

/// A factor's id and its sealed secret: what checking a code needs.
pub(crate) struct Sealed {
    pub(crate) id: String,
    pub(crate) secret: Vec<u8>,
}

/// The user's factor, pending or active, with the user's name.
pub(crate) fn factor_of(conn: &mut DbConnection, user_id: &str) -> CoreResult<Option<FactorRow>> {
    Ok(totp_factors::table
        .inner_join(users::table)
        .filter(totp_factors::user_id.eq(user_id))
        .select(FactorRow::as_select())
        .get_result(conn)
        .optional()?)
}

pub(crate) fn state(conn: &mut DbConnection, user_id: &str) -> CoreResult<FactorState> {
    let active: Option<bool> = totp_factors::table
        .filter(totp_factors::user_id.eq(user_id))
        .select(totp_factors::active)
        .get_result(conn)
        .optional()?;
    Ok(match active {
        None => FactorState::None,
        Some(false) => FactorState::Pending,
        Some(true) => FactorState::Active,
    })
}

/// The user's active factor, if any.
pub(crate) fn active(conn: &mut DbConnection, user_id: &str) -> CoreResult<Option<Sealed>> {
    let found: Option<(String, Vec<u8>)> = totp_factors::table
        .filter(totp_factors::user_id.eq(user_id))
        .filter(totp_factors::active.eq(true))
        .select((totp_factors::id, totp_factors::secret_sealed))
        .get_result(conn)
        .optional()?;
    Ok(found.map(|(id, secret)| Sealed { id, secret }))
}

pub(crate) fn delete(conn: &mut DbConnection, user_id: &str) -> CoreResult<()> {
    diesel::delete(totp_factors::table.filter(totp_factors::user_id.eq(user_id))).execute(conn)?;
    Ok(())
}

/// A new, not yet confirmed factor: secret and id drawn and the secret sealed before
/// any transaction, inserted inside one.
pub(crate) struct PendingFactor {
    pub(crate) id: String,
    pub(crate) secret: Vec<u8>,
    sealed: Vec<u8>,
}

impl PendingFactor {
    pub(crate) fn new(inner: &Inner) -> Self {
        let secret = otp::generate_secret(inner.rng());
        let id = random_hex(inner.rng(), 16);
        let sealed = inner.secrets.seal(inner.rng(), &id, &secret);
        PendingFactor { id, secret, sealed }
    }

    pub(crate) fn insert(
        &self,
        inner: &Inner,
        conn: &mut DbConnection,
        user_id: &str,
    ) -> CoreResult<()> {
        diesel::insert_into(totp_factors::table)
            .values((
                totp_factors::id.eq(&self.id),
                totp_factors::user_id.eq(user_id),
                totp_factors::secret_sealed.eq(&self.sealed),
                totp_factors::active.eq(false),
                totp_factors::last_step.eq(-1i64),
                totp_factors::created_at.eq(inner.now()),
            ))
            .execute(conn)?;
        Ok(())
    }
}

/// The audit event of an accepted code.
pub(crate) const ACCEPTED: &str = "code.accepted";

// The single-use rule of every code of an active factor, one cached statement.
cached_statement!(TakeStep { factor_id: String, step: i64 } =>
    "UPDATE totp_factors SET last_step = ", (step: BigInt), " WHERE id = ", (factor_id: Text),
    " AND active = TRUE AND last_step < ", (step: BigInt));

/// Moves the factor's last used step forward to `step` (confirming a pending factor
/// when `activate`), or `IncorrectCode` if that step was already used (a replay).
fn take_step(
    inner: &Inner,
    conn: &mut DbConnection,
    factor_id: &str,
    step: i64,
    activate: bool,
) -> CoreResult<()> {
    let advanced = if activate {
        let pending = totp_factors::table
            .filter(totp_factors::id.eq(factor_id))
            .filter(totp_factors::active.eq(false))
            .filter(totp_factors::last_step.lt(step));
        diesel::update(pending)
            .set((
                totp_factors::active.eq(true),
                totp_factors::activated_at.eq(inner.now()),
                totp_factors::last_step.eq(step),
            ))
            .execute(conn)?
    } else {
        TakeStep {
            factor_id: factor_id.to_owned(),
            step,
        }
        .execute(conn)?
    };
    match advanced {
        1 => Ok(()),
        _ => Err(CoreError::IncorrectCode),
    }
}

/// One authenticator code of `user` for `factor`, under the user's code lockout: a
/// match takes its step (single use; `activate` confirms a pending factor) and runs
/// `then` in the same transaction; a wrong or replayed code is counted. `what` names
/// the use in the audit log.
#[allow(clippy::too_many_arguments)]
pub(crate) fn verify<T>(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    user: &UserRow,
    factor: &Sealed,
    code: &str,
    (activate, what): (bool, &str),
    then: impl FnOnce(&mut DbConnection) -> CoreResult<T>,
) -> CoreResult<T> {
    let take = taking(inner, origin, user, factor, (activate, what), then);
    verify_with(inner, conn, origin, user, factor, code, take)
}

/// [`verify`] with the matched step's effects done by `take` (see [`check_with`]).
pub(crate) fn verify_with<T>(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    user: &UserRow,
    factor: &Sealed,
    code: &str,
    take: impl FnOnce(&mut DbConnection, i64) -> CoreResult<Option<T>>,
) -> CoreResult<T> {
    let who = (user.subject(), Factor::Totp);
    lockout::code_attempt(inner, conn, origin, who, |conn| {
        check_with(inner, conn, origin, factor, code, take)
    })
}

/// [`verify`] without the user's lockout, for a caller that limits the attempts some
/// other way (a pending login's own tries): the match, the step taken, `then`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check<T>(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    user: &UserRow,
    factor: &Sealed,
    code: &str,
    (activate, what): (bool, &str),
    then: impl FnOnce(&mut DbConnection) -> CoreResult<T>,
) -> CoreResult<Attempt<T>> {
    let take = taking(inner, origin, user, factor, (activate, what), then);
    check_with(inner, conn, origin, factor, code, take)
}

/// Matches `code` against the factor's secret; a match's step goes to `take`, which
/// takes it with every effect of the code, all or nothing, and returns `None` when the
/// step was already used (a replay).
pub(crate) fn check_with<T>(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    factor: &Sealed,
    code: &str,
    take: impl FnOnce(&mut DbConnection, i64) -> CoreResult<Option<T>>,
) -> CoreResult<Attempt<T>> {
    let secret = inner.secrets.open(&factor.id, &factor.secret)?;
    let Some(step) = otp::matching_step(&secret, code, inner.now())? else {
        metrics::verification(origin, Factor::Totp, Outcome::Wrong);
        return Ok(Attempt::Rejected("wrong code"));
    };
    match take(conn, step)? {
        Some(value) => {
            metrics::verification(origin, Factor::Totp, Outcome::Accepted);
            Ok(Attempt::Accepted(value))
        }
        None => {
            metrics::verification(origin, Factor::Totp, Outcome::Replayed);
            Ok(Attempt::Rejected("code already used"))
        }
    }
}

/// The general way to take a matched step: the step and `then`, in a savepoint, so that
/// a replay (or `then` failing) undoes both.
fn taking<'a, T>(
    inner: &'a Inner,
    origin: &'a Origin,
    user: &'a UserRow,
    factor: &'a Sealed,
    (activate, what): (bool, &'a str),
    then: impl FnOnce(&mut DbConnection) -> CoreResult<T> + 'a,
) -> impl FnOnce(&mut DbConnection, i64) -> CoreResult<Option<T>> + 'a {
    move |conn, step| {
        let taken = write_tx(conn, |conn| {
            take_step(inner, conn, &factor.id, step, activate)?;
            audit::record(inner, conn, origin, ACCEPTED, user, Some(what))?;
            if activate {
                audit::record(inner, conn, origin, "totp.enrolled", user, None)?;
            }
            then(conn)
        });
        match taken {
            Ok(value) => Ok(Some(value)),
            Err(CoreError::IncorrectCode) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Core {
    pub async fn totp_state(&self, user_id: String) -> CoreResult<FactorState> {
        self.run(move |_, conn| state(conn, &user_id)).await
    }

    /// Checks a code of the user's active authenticator without a challenge (a proof
    /// before a change, or a login that carries the code). Single use and lockout
    /// limited exactly like a challenge answer.
    pub async fn verify_totp(
        &self,
        origin: Origin,
        user_id: String,
        code: String,
    ) -> CoreResult<()> {
        self.run(move |inner, conn| {
            let user = live_user(conn, &user_id)?;
            let factor = active(conn, &user.id)?.ok_or(CoreError::NoSecondFactor)?;
            let direct = (false, "direct");
            verify(inner, conn, &origin, &user, &factor, &code, direct, |_| {
                Ok(())
            })
        })
        .await
    }

    /// After a password check: the user's TOTP factor, created pending on the first
    /// call (ZStack's Get secret). Later calls return the same pending secret; an
    /// active factor comes back without its secret.
    pub async fn pending_totp(
        &self,
        origin: Origin,
        username: String,
        password: Password,
    ) -> CoreResult<TotpFactorInfo> {
        let user = self.authenticate(&origin, &username, password).await?;
        self.run(move |inner, conn| {
            let pending = PendingFactor::new(inner);
            let created = write_tx(conn, |conn| {
                if factor_of(conn, &user.id)?.is_none() {
                    pending.insert(inner, conn, &user.id)?;
                    audit::record(inner, conn, &origin, "totp.setup_started", &user, None)?;
                }
                Ok(())
            });
            match created {
                // A concurrent first call inserted it (one factor per user is unique).
                Ok(()) | Err(CoreError::Conflict) => {}
                Err(e) => return Err(e),
            }
            factor_of(conn, &user.id)?
                .ok_or(CoreError::NoSecondFactor)?
                .info(inner)
        })
        .await
    }
}

//! TOTP enrollment and the challenges that complete a setup or a login.
//!
//! Answering a challenge is a read (no lock: the TOTP check is CPU work) followed by one
//! write transaction of conditional UPDATEs. `used = FALSE` makes a challenge single-use
//! and `last_step < step` makes a code single-use, atomically, on both backends: of two
//! concurrent answers with the same code exactly one updates a row.

use diesel::prelude::*;

use crate::audit;
use crate::crypto::{hash_token, Password};
use crate::db::schema::{challenges, totp_factors, users};
use crate::db::{write_tx, DbConnection};
use crate::random::{random_hex, random_uuid};
use crate::sessions::{self, Session};
use crate::throttle::{self, CODES};
use crate::totp;
use crate::users::{find_by_id, find_by_username, require_admin, UserRow};
use crate::{Actor, Core, CoreError, CoreResult, Inner, Origin, User};

const SETUP: &str = "setup";
const LOGIN: &str = "login";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorState {
    None,
    Pending,
    Active,
}

/// What a user needs to add the authenticator: show `qr_png_data_uri` or `secret`,
/// then answer `challenge_id` with a code.
#[derive(Debug, Clone)]
pub struct TotpSetup {
    pub secret_base32: String,
    pub otpauth_uri: String,
    pub qr_png_data_uri: String,
    pub challenge_id: String,
}

/// The result of a password login.
#[derive(Debug, Clone)]
pub enum LoginStep {
    /// No second factor: signed in.
    Complete(Session),
    /// A second factor is needed: answer this login challenge.
    SecondFactor { user: User, challenge_id: String },
}

#[derive(Debug, Clone)]
pub enum ChallengeOutcome {
    /// The authenticator is now active.
    SetupCompleted { user: User },
    /// The login is complete.
    LoggedIn {
        session: Session,
        service: Option<String>,
    },
}

#[derive(Queryable)]
struct PendingChallenge {
    kind: String,
    dialect: String,
    service: Option<String>,
    factor_id: String,
    expires_at: i64,
    used: bool,
    secret_sealed: Vec<u8>,
    active: bool,
}

fn factor_state(conn: &mut DbConnection, user_id: &str) -> CoreResult<FactorState> {
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

/// Stores a challenge and returns its id; only the id's hash is kept.
fn insert_challenge(
    inner: &Inner,
    conn: &mut DbConnection,
    kind: &str,
    user_id: &str,
    factor_id: &str,
    origin: &Origin,
    service: Option<&str>,
) -> CoreResult<String> {
    let id = random_uuid(inner.rng());
    let now = inner.now();
    diesel::insert_into(challenges::table)
        .values((
            challenges::id_hash.eq(hash_token(&id)),
            challenges::kind.eq(kind),
            challenges::user_id.eq(user_id),
            challenges::factor_id.eq(factor_id),
            challenges::dialect.eq(&origin.dialect),
            challenges::service.eq(service),
            challenges::created_at.eq(now),
            challenges::expires_at.eq(now + inner.cfg.challenge_ttl),
            challenges::used.eq(false),
        ))
        .execute(conn)?;
    Ok(id)
}

/// A new, not yet confirmed TOTP factor: secret and id drawn and the secret sealed
/// before any transaction, inserted inside one.
pub(crate) struct PendingFactor {
    pub(crate) id: String,
    pub(crate) secret: Vec<u8>,
    sealed: Vec<u8>,
}

impl PendingFactor {
    pub(crate) fn new(inner: &Inner) -> Self {
        let secret = totp::generate_secret(inner.rng());
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

/// One code attempt by one user: the lockout check, the TOTP match, the atomic
/// single-use step update, and the failure count, shared by every way a code arrives.
pub(crate) struct CodeCheck<'a> {
    pub(crate) inner: &'a Inner,
    pub(crate) origin: &'a Origin,
    pub(crate) user: &'a UserRow,
}

impl CodeCheck<'_> {
    pub(crate) fn subject(&self) -> audit::Subject<'_> {
        Some((self.user.id.as_str(), self.user.username.as_str()))
    }

    /// The step `code` matches, checked outside any transaction (it is CPU work).
    /// Refused while the user is locked out; a wrong code is counted.
    pub(crate) fn matching_step(
        &self,
        conn: &mut DbConnection,
        factor_id: &str,
        sealed: &[u8],
        code: &str,
    ) -> CoreResult<i64> {
        let now = self.inner.now();
        throttle::check(conn, &throttle::codes_key(&self.user.id), now)?;
        let secret = self.inner.secrets.open(factor_id, sealed)?;
        match totp::matching_step(&secret, code, now)? {
            Some(step) => Ok(step),
            None => {
                record_code_failure(self.inner, conn, self.origin, self.user, "wrong code")?;
                Err(CoreError::IncorrectCode)
            }
        }
    }

    /// Inside the write transaction: moves the factor's last used step forward to
    /// `step`, or fails with `IncorrectCode` if that step was already used (a replay).
    /// `activate` confirms a pending factor instead.
    pub(crate) fn accept_step(
        &self,
        conn: &mut DbConnection,
        factor_id: &str,
        step: i64,
        activate: bool,
        what: &str,
    ) -> CoreResult<()> {
        let now = self.inner.now();
        let factor = totp_factors::table
            .filter(totp_factors::id.eq(factor_id))
            .filter(totp_factors::active.eq(!activate))
            .filter(totp_factors::last_step.lt(step));
        let advanced = if activate {
            diesel::update(factor)
                .set((
                    totp_factors::active.eq(true),
                    totp_factors::activated_at.eq(now),
                    totp_factors::last_step.eq(step),
                ))
                .execute(conn)?
        } else {
            diesel::update(factor)
                .set(totp_factors::last_step.eq(step))
                .execute(conn)?
        };
        if advanced != 1 {
            return Err(CoreError::IncorrectCode);
        }
        throttle::clear(conn, &throttle::codes_key(&self.user.id))?;
        audit::record(
            self.inner,
            conn,
            self.origin,
            "code.accepted",
            self.subject(),
            Some(what),
        )
    }

    /// After the write transaction: a replay rolled it back and is counted as a failure.
    pub(crate) fn count_replay<T>(
        &self,
        conn: &mut DbConnection,
        outcome: CoreResult<T>,
    ) -> CoreResult<T> {
        if let Err(CoreError::IncorrectCode) = outcome {
            record_code_failure(
                self.inner,
                conn,
                self.origin,
                self.user,
                "code already used",
            )?;
        }
        outcome
    }
}

/// Counts a wrong (or replayed) code against the user and audits it.
pub(crate) fn record_code_failure(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    user: &UserRow,
    why: &str,
) -> CoreResult<()> {
    write_tx(conn, |conn| {
        let locked =
            throttle::record_failure(conn, &CODES, &throttle::codes_key(&user.id), inner.now())?;
        let subject = Some((user.id.as_str(), user.username.as_str()));
        audit::record(inner, conn, origin, "code.rejected", subject, Some(why))?;
        if let Some(until) = locked {
            audit::record(
                inner,
                conn,
                origin,
                "code.locked",
                subject,
                Some(&format!("until {until}")),
            )?;
        }
        Ok(())
    })
}

impl Core {
    pub async fn totp_state(&self, user_id: String) -> CoreResult<FactorState> {
        self.run(move |_, conn| factor_state(conn, &user_id)).await
    }

    /// Starts (or restarts) authenticator setup: a fresh pending secret replaces any
    /// earlier unconfirmed one, together with its challenges.
    pub async fn begin_totp_setup(
        &self,
        origin: Origin,
        user_id: String,
        issuer: String,
    ) -> CoreResult<TotpSetup> {
        let (user, secret, challenge_id) = self
            .run(move |inner, conn| {
                let pending = PendingFactor::new(inner);
                write_tx(conn, |conn| {
                    let user = find_by_id(conn, &user_id)?.ok_or(CoreError::UserNotFound)?;
                    if factor_state(conn, &user.id)? == FactorState::Active {
                        return Err(CoreError::AlreadyBound);
                    }
                    diesel::delete(totp_factors::table.filter(totp_factors::user_id.eq(&user.id)))
                        .execute(conn)?;
                    pending.insert(inner, conn, &user.id)?;
                    let factor_id = &pending.id;
                    let secret = pending.secret.clone();
                    let challenge =
                        insert_challenge(inner, conn, SETUP, &user.id, factor_id, &origin, None)?;
                    audit::record(
                        inner,
                        conn,
                        &origin,
                        "totp.setup_started",
                        Some((&user.id, &user.username)),
                        None,
                    )?;
                    Ok((User::from(user), secret, challenge))
                })
            })
            .await?;
        // Rendering the QR code is CPU work: off the async threads, without a connection.
        let otpauth_uri = totp::otpauth_uri(&issuer, &user.username, &secret);
        let uri = otpauth_uri.clone();
        let qr_png_data_uri = self.cpu(move |_| totp::qr_png_data_uri(&uri)).await??;
        Ok(TotpSetup {
            secret_base32: totp::secret_to_base32(&secret),
            qr_png_data_uri,
            otpauth_uri,
            challenge_id,
        })
    }

    /// Password login. A user with an active second factor gets a login challenge
    /// instead of a session, whatever the dialect.
    pub async fn password_login(
        &self,
        origin: Origin,
        username: String,
        password: Password,
        service: Option<String>,
    ) -> CoreResult<LoginStep> {
        let user = self.authenticate(&origin, &username, password).await?;
        self.run(move |inner, conn| {
            let factor: Option<String> = totp_factors::table
                .filter(totp_factors::user_id.eq(&user.id))
                .filter(totp_factors::active.eq(true))
                .select(totp_factors::id)
                .get_result(conn)
                .optional()?;
            write_tx(conn, |conn| match factor {
                Some(factor_id) => {
                    let challenge_id = insert_challenge(
                        inner,
                        conn,
                        LOGIN,
                        &user.id,
                        &factor_id,
                        &origin,
                        service.as_deref(),
                    )?;
                    Ok(LoginStep::SecondFactor { user, challenge_id })
                }
                // A second factor this login cannot carry is still a second factor.
                None if crate::accounts::sent_code_factor(conn, &user.id)? => {
                    Err(CoreError::NoSecondFactor)
                }
                None => Ok(LoginStep::Complete(sessions::create(
                    inner, conn, &origin, user, false,
                )?)),
            })
        })
        .await
    }

    /// A login challenge for a user whose first factor the caller has verified; `None`
    /// when the user has no active second factor. Completing it still needs a code.
    pub async fn start_login_challenge(
        &self,
        origin: Origin,
        user_id: String,
        service: Option<String>,
    ) -> CoreResult<Option<String>> {
        self.run(move |inner, conn| {
            let factor: Option<String> = totp_factors::table
                .filter(totp_factors::user_id.eq(&user_id))
                .filter(totp_factors::active.eq(true))
                .select(totp_factors::id)
                .get_result(conn)
                .optional()?;
            factor
                .map(|factor_id| {
                    insert_challenge(
                        inner,
                        conn,
                        LOGIN,
                        &user_id,
                        &factor_id,
                        &origin,
                        service.as_deref(),
                    )
                })
                .transpose()
        })
        .await
    }

    /// Answers a setup or login challenge with a TOTP code.
    pub async fn answer_challenge(
        &self,
        origin: Origin,
        challenge_id: String,
        code: String,
    ) -> CoreResult<ChallengeOutcome> {
        self.run(move |inner, conn| {
            let id_hash = hash_token(&challenge_id);
            let now = inner.now();
            let found: Option<(PendingChallenge, UserRow)> = challenges::table
                .inner_join(totp_factors::table)
                .inner_join(users::table)
                .filter(challenges::id_hash.eq(&id_hash))
                .select((
                    (
                        challenges::kind,
                        challenges::dialect,
                        challenges::service,
                        challenges::factor_id,
                        challenges::expires_at,
                        challenges::used,
                        totp_factors::secret_sealed,
                        totp_factors::active,
                    ),
                    UserRow::as_select(),
                ))
                .get_result(conn)
                .optional()?;
            let (challenge, user) = match found {
                // A challenge is answered through the dialect that issued it.
                Some((c, u))
                    if !c.used
                        && c.expires_at > now
                        && !u.disabled
                        && c.dialect == origin.dialect =>
                {
                    (c, u)
                }
                _ => return Err(CoreError::InvalidChallenge),
            };
            let setup = challenge.kind == SETUP;
            if setup && challenge.active {
                return Err(CoreError::AlreadyBound);
            }
            let check = CodeCheck {
                inner,
                origin: &origin,
                user: &user,
            };
            let step =
                check.matching_step(conn, &challenge.factor_id, &challenge.secret_sealed, &code)?;
            let outcome = write_tx(conn, |conn| {
                let claimed = diesel::update(
                    challenges::table
                        .filter(challenges::id_hash.eq(&id_hash))
                        .filter(challenges::used.eq(false))
                        .filter(challenges::expires_at.gt(now)),
                )
                .set(challenges::used.eq(true))
                .execute(conn)?;
                if claimed != 1 {
                    return Err(CoreError::InvalidChallenge);
                }
                check.accept_step(conn, &challenge.factor_id, step, setup, &challenge.kind)?;
                if setup {
                    audit::record(inner, conn, &origin, "totp.enrolled", check.subject(), None)?;
                    Ok(ChallengeOutcome::SetupCompleted {
                        user: user.clone().into(),
                    })
                } else {
                    let session =
                        sessions::create(inner, conn, &origin, user.clone().into(), true)?;
                    Ok(ChallengeOutcome::LoggedIn {
                        session,
                        service: challenge.service.clone(),
                    })
                }
            });
            check.count_replay(conn, outcome)
        })
        .await
    }

    /// Checks a code of the user's active authenticator without a challenge (for
    /// dialects that send the code with the login). Single use and brute-force limited
    /// exactly like a challenge answer.
    pub async fn verify_totp(
        &self,
        origin: Origin,
        user_id: String,
        code: String,
    ) -> CoreResult<()> {
        self.run(move |inner, conn| {
            let found: Option<(String, Vec<u8>, UserRow)> = totp_factors::table
                .inner_join(users::table)
                .filter(totp_factors::user_id.eq(&user_id))
                .filter(totp_factors::active.eq(true))
                .select((
                    totp_factors::id,
                    totp_factors::secret_sealed,
                    UserRow::as_select(),
                ))
                .get_result(conn)
                .optional()?;
            let (factor_id, sealed, user) = found.ok_or(CoreError::NoSecondFactor)?;
            if user.disabled {
                return Err(CoreError::UserDisabled);
            }
            let check = CodeCheck {
                inner,
                origin: &origin,
                user: &user,
            };
            let step = check.matching_step(conn, &factor_id, &sealed, &code)?;
            let outcome = write_tx(conn, |conn| {
                check.accept_step(conn, &factor_id, step, false, "direct")
            });
            check.count_replay(conn, outcome)
        })
        .await
    }

    /// Removes every second factor of `username` (and its challenges and code
    /// failures), so the user can enroll again.
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
                diesel::delete(totp_factors::table.filter(totp_factors::user_id.eq(&user.id)))
                    .execute(conn)?;
                crate::sms::delete_sms_factor(conn, &user.id)?;
                throttle::clear(conn, &throttle::codes_key(&user.id))?;
                audit::record(
                    inner,
                    conn,
                    &origin,
                    "factors.reset",
                    Some((&user.id, &user.username)),
                    None,
                )
            })
        })
        .await
    }
}

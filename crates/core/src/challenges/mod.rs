//! Challenges (UCloud's `challengeId`s): a setup challenge confirms a new authenticator,
//! a login challenge completes a login whose password was right. Each is single use,
//! expires, is answered through the dialect that issued it, and only its hash is
//! stored. Answering one is a TOTP code check (`factors::totp::verify`: lockout,
//! single-use step) with the challenge claimed in the same transaction; on PostgreSQL a
//! login challenge's accepted answer writes everything in one statement
//! (`one_statement.rs`).

mod one_statement;

use diesel::prelude::*;

use crate::audit;
use crate::crypto::hash_token;
use crate::db::schema::{challenges, totp_factors, users};
use crate::db::{cached_statement, write_tx, DbConnection};
use crate::factors::totp::{self, PendingFactor, Sealed};
use crate::factors::FactorState;
use crate::metrics::{self, Factor, Outcome};
use crate::otp;
use crate::random::random_uuid;
use crate::tokens::sessions::{self, Session};
use crate::users::{find_by_id, UserRow};
use crate::{Core, CoreError, CoreResult, Inner, Origin, User};

const SETUP: &str = "setup";
pub(crate) const LOGIN: &str = "login";

/// What a user needs to add the authenticator: show `qr_png_data_uri` or `secret`,
/// then answer `challenge_id` with a code.
#[derive(Debug, Clone)]
pub struct TotpSetup {
    pub secret_base32: String,
    pub otpauth_uri: String,
    pub qr_png_data_uri: String,
    pub challenge_id: String,
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

/// Stores a challenge of `kind` for the user's factor and returns its id; only the
/// id's hash is kept.
pub(crate) fn insert(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    (kind, user_id, factor_id): (&str, &str, &str),
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

/// A live challenge of this dialect with its factor and user.
fn live(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    id_hash: &str,
) -> CoreResult<(PendingChallenge, UserRow)> {
    let found: Option<(PendingChallenge, UserRow)> = challenges::table
        .inner_join(totp_factors::table)
        .inner_join(users::table)
        .filter(challenges::id_hash.eq(id_hash))
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
    match found {
        // A challenge is answered through the dialect that issued it.
        Some((c, u))
            if !c.used
                && c.expires_at > inner.now()
                && !u.disabled
                && c.dialect == origin.dialect =>
        {
            Ok((c, u))
        }
        Some((c, u)) if !u.disabled && c.dialect == origin.dialect => {
            let outcome = match c.used {
                true => Outcome::Replayed,
                false => Outcome::Expired,
            };
            metrics::verification(origin, Factor::Totp, outcome);
            Err(CoreError::InvalidChallenge)
        }
        _ => Err(CoreError::InvalidChallenge),
    }
}

// The claim of every answer, one cached statement (also part of `one_statement`).
cached_statement!(Claim { id_hash: String, now: i64 } =>
    "UPDATE challenges SET used = TRUE WHERE id_hash = ", (id_hash: Text),
    " AND used = FALSE AND expires_at > ", (now: BigInt));

/// Uses up the challenge; of two concurrent answers exactly one claims it.
fn claim(inner: &Inner, conn: &mut DbConnection, id_hash: &str) -> CoreResult<()> {
    let claimed = Claim {
        id_hash: id_hash.to_owned(),
        now: inner.now(),
    }
    .execute(conn)?;
    match claimed {
        1 => Ok(()),
        _ => Err(CoreError::InvalidChallenge),
    }
}

impl Core {
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
                    if totp::state(conn, &user.id)? == FactorState::Active {
                        return Err(CoreError::AlreadyBound);
                    }
                    totp::delete(conn, &user.id)?;
                    pending.insert(inner, conn, &user.id)?;
                    let ids = (SETUP, user.id.as_str(), pending.id.as_str());
                    let challenge = insert(inner, conn, &origin, ids, None)?;
                    audit::record(inner, conn, &origin, "totp.setup_started", &user, None)?;
                    Ok((User::from(user), pending.secret.clone(), challenge))
                })
            })
            .await?;
        // Rendering the QR code is CPU work: off the async threads, without a connection.
        let otpauth_uri = otp::otpauth_uri(&issuer, &user.username, &secret);
        let uri = otpauth_uri.clone();
        let qr_png_data_uri = self.cpu(move |_| otp::qr_png_data_uri(&uri)).await??;
        Ok(TotpSetup {
            secret_base32: otp::secret_to_base32(&secret),
            qr_png_data_uri,
            otpauth_uri,
            challenge_id,
        })
    }

    /// A login challenge for a user whose first factor the caller has verified; `None`
    /// when the user has no active authenticator. Completing it still needs a code.
    pub async fn start_login_challenge(
        &self,
        origin: Origin,
        user_id: String,
        service: Option<String>,
    ) -> CoreResult<Option<String>> {
        self.run(move |inner, conn| {
            let Some(factor) = totp::active(conn, &user_id)? else {
                return Ok(None);
            };
            let ids = (LOGIN, user_id.as_str(), factor.id.as_str());
            insert(inner, conn, &origin, ids, service.as_deref()).map(Some)
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
            let (challenge, user) = live(inner, conn, &origin, &id_hash)?;
            let setup = challenge.kind == SETUP;
            if setup && challenge.active {
                return Err(CoreError::AlreadyBound);
            }
            let factor = Sealed {
                id: challenge.factor_id.clone(),
                secret: challenge.secret_sealed.clone(),
            };
            if !setup && matches!(conn, DbConnection::Postgresql(_)) {
                let session = sessions::new(inner, user.clone().into(), true);
                let ids = (id_hash.as_str(), LOGIN, factor.id.as_str());
                // One statement for the step, the claim, the session and the audit.
                let answer = |conn: &mut DbConnection, step| {
                    one_statement::answer_login(inner, conn, &origin, &user, ids, step, session)
                };
                let session =
                    totp::verify_with(inner, conn, &origin, &user, &factor, &code, answer)?;
                let service = challenge.service;
                return Ok(ChallengeOutcome::LoggedIn { session, service });
            }
            let use_ = (setup, challenge.kind.as_str());
            totp::verify(inner, conn, &origin, &user, &factor, &code, use_, |conn| {
                claim(inner, conn, &id_hash)?;
                if setup {
                    return Ok(ChallengeOutcome::SetupCompleted {
                        user: user.clone().into(),
                    });
                }
                let session = sessions::create(inner, conn, &origin, user.clone().into(), true)?;
                Ok(ChallengeOutcome::LoggedIn {
                    session,
                    service: challenge.service.clone(),
                })
            })
        })
        .await
    }
}

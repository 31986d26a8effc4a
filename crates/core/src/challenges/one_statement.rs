//! A login challenge's accepted answer on PostgreSQL, in one statement: the factor's
//! step taken, the challenge claimed, the session and the two audit rows inserted, each
//! conditional on the one before, in one round trip where the general path
//! (`factors::totp::verify` with a closure) sends seven. diesel's `PgConnection` has no
//! pipelining, so this is how the statements become one. The step and the claim are
//! the general path's own cached statements ([`TakeStep`], [`Claim`]), so their rules
//! are written once. It runs inside the code lockout's transaction, like the general
//! path: a step already used writes nothing (a replay, counted by the caller); a
//! challenge that cannot be claimed leaves only the step, which the caller's rollback
//! undoes. SQLite has no data-modifying CTEs; there a group-commit batch already makes
//! the statements cheap.

use diesel::prelude::*;
use diesel::sql_types::Bool;

use super::Claim;
use crate::audit;
use crate::crypto::hash_token;
use crate::db::{cached_statement, DbConnection};
use crate::factors::totp::{TakeStep, ACCEPTED};
use crate::tokens::sessions::{self, NewSession, Session};
use crate::users::UserRow;
use crate::{CoreError, CoreResult, Inner, Origin};

cached_statement!(AnswerLogin {
    take: TakeStep,
    claim: Claim,
    session_id: String,
    user_id: String,
    dialect: String,
    refresh_hash: String,
    csrf_hash: Option<String>,
    created_at: i64,
    expires_at: i64,
    now: i64,
    accepted: String,
    kind: String,
    login: String,
    login_detail: String,
    username: String,
    ip: Option<String>,
} =>
    "WITH stepped AS (", [take], " RETURNING 1), \
     claimed AS (", [claim], " AND EXISTS (SELECT 1 FROM stepped) RETURNING 1), \
     signed_in AS (INSERT INTO sessions \
         (id, user_id, dialect, refresh_hash, csrf_hash, created_at, expires_at, revoked) \
         SELECT ", (session_id: Text), ", ", (user_id: Text), ", ", (dialect: Text), ", ",
         (refresh_hash: Text), ", ", (csrf_hash: Nullable<Text>), ", ", (created_at: BigInt), ", ",
         (expires_at: BigInt), ", FALSE WHERE EXISTS (SELECT 1 FROM claimed) RETURNING 1), \
     audited AS (INSERT INTO audit_log (at, event, user_id, username, dialect, ip, detail) \
         SELECT ", (now: BigInt), ", e.event, ", (user_id: Text), ", ", (username: Text), ", ",
         (dialect: Text), ", ", (ip: Nullable<Text>), ", e.detail \
         FROM (VALUES (1, ", (accepted: Text), ", ", (kind: Text), "), (2, ", (login: Text), ", ",
         (login_detail: Text), ")) AS e(n, event, detail) \
         WHERE EXISTS (SELECT 1 FROM signed_in) ORDER BY e.n) \
     SELECT EXISTS (SELECT 1 FROM stepped) AS stepped, EXISTS (SELECT 1 FROM claimed) AS claimed");

#[derive(QueryableByName)]
struct Outcome {
    #[diesel(sql_type = Bool)]
    stepped: bool,
    #[diesel(sql_type = Bool)]
    claimed: bool,
}

/// Takes `step` of the login challenge `id_hash` (of `kind`, for factor `factor_id`)
/// and signs `user` in with the new `session`; `None` if the step was already used,
/// `InvalidChallenge` if the challenge was claimed or expired meanwhile.
#[allow(clippy::too_many_arguments)]
pub(super) fn answer_login(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    user: &UserRow,
    (id_hash, kind, factor_id): (&str, &str, &str),
    step: i64,
    NewSession {
        session,
        created_at,
    }: NewSession,
) -> CoreResult<Option<Session>> {
    let now = inner.now();
    let statement = AnswerLogin {
        take: TakeStep {
            factor_id: factor_id.to_owned(),
            step,
        },
        claim: Claim {
            id_hash: id_hash.to_owned(),
            now,
        },
        session_id: session.id.clone(),
        user_id: user.id.clone(),
        dialect: origin.dialect.clone(),
        refresh_hash: hash_token(&session.refresh_token),
        csrf_hash: session.csrf_token.as_deref().map(hash_token),
        created_at,
        expires_at: session.expires_at,
        now,
        accepted: ACCEPTED.to_owned(),
        kind: kind.to_owned(),
        login: sessions::LOGIN_EVENT.to_owned(),
        login_detail: sessions::login_detail(session.mfa).to_owned(),
        username: user.username.clone(),
        ip: origin.ip.clone(),
    };
    let outcome: Outcome = statement.get_result(conn)?;
    match (outcome.stepped, outcome.claimed) {
        (false, _) => Ok(None),
        (true, false) => Err(CoreError::InvalidChallenge),
        (true, true) => {
            let user = Some(user.username.as_str());
            audit::trace(origin, ACCEPTED, user, Some(kind));
            audit::trace(
                origin,
                sessions::LOGIN_EVENT,
                user,
                Some(sessions::login_detail(session.mfa)),
            );
            Ok(Some(session))
        }
    }
}

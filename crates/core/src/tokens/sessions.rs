//! Sessions: refresh tokens and CSRF tokens stored hashed, revocation, expiry, and the
//! generation that access tokens of some dialects carry.

use diesel::prelude::*;
use subtle::ConstantTimeEq;

use crate::audit;
use crate::crypto::hash_token;
use crate::db::schema::{sessions, users};
use crate::db::{write_tx, DbConnection};
use crate::factors::Factors;
use crate::random::random_hex;
use crate::users::UserRow;
use crate::{Core, CoreError, CoreResult, Inner, Origin, User};

/// A signed-in session as returned at login and refresh. The plaintext tokens exist
/// only here; the database holds their hashes.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub user: User,
    /// Whether the user has an active second factor.
    pub mfa: bool,
    pub refresh_token: String,
    /// Present when the session was created or its CSRF token rotated.
    pub csrf_token: Option<String>,
    pub expires_at: i64,
}

#[derive(Queryable)]
struct SessionRow {
    id: String,
    dialect: String,
    csrf_hash: Option<String>,
    expires_at: i64,
    revoked: bool,
}

/// Ends every session of the user (a new password, a reset of their factors).
pub(crate) fn revoke_all(conn: &mut DbConnection, user_id: &str) -> CoreResult<()> {
    diesel::update(sessions::table.filter(sessions::user_id.eq(user_id)))
        .set(sessions::revoked.eq(true))
        .execute(conn)?;
    Ok(())
}

/// Deletes every session of the user (the user is being deleted).
pub(crate) fn delete_all(conn: &mut DbConnection, user_id: &str) -> CoreResult<()> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)?;
    Ok(())
}

/// 32 hex digits, the first 10 the creation time in Unix seconds: new ids go to the end
/// of the `sessions_id` index rather than to a random leaf (see the migration
/// `sessions_in_insertion_order`); the other 88 bits are random, for uniqueness. Not a
/// secret: the tokens are.
fn new_session_id(inner: &Inner) -> String {
    format!("{:010x}{}", inner.now(), random_hex(inner.rng(), 11))
}

/// Creates a session row; call inside the write transaction that completed the login.
pub(crate) fn create(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    user: User,
    mfa: bool,
) -> CoreResult<Session> {
    let session = new(inner, user, mfa);
    store(inner, conn, origin, session)
}

/// A session drawn (its id and tokens) but not stored yet, with its creation time, the
/// one `expires_at` is counted from.
pub(crate) struct NewSession {
    pub(crate) session: Session,
    pub(crate) created_at: i64,
}

/// The values of a session [`create`] makes, not stored yet.
pub(crate) fn new(inner: &Inner, user: User, mfa: bool) -> NewSession {
    let id = new_session_id(inner);
    let token = random_hex(inner.rng(), 32);
    let csrf = random_hex(inner.rng(), 32);
    let ttl = inner.cfg.refresh_token_ttl;
    drawn(inner, (id, user), mfa, token, Some(csrf), ttl)
}

/// Creates a session identified only by an opaque token of 32 hex digits (ZStack's
/// session uuid), living `ttl` seconds. The token is `Session::refresh_token`.
pub(crate) fn create_opaque(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    user: User,
    mfa: bool,
    ttl: i64,
) -> CoreResult<Session> {
    let id = new_session_id(inner);
    let token = random_hex(inner.rng(), 16);
    let session = drawn(inner, (id, user), mfa, token, None, ttl);
    store(inner, conn, origin, session)
}

fn drawn(
    inner: &Inner,
    (id, user): (String, User),
    mfa: bool,
    refresh_token: String,
    csrf_token: Option<String>,
    ttl: i64,
) -> NewSession {
    let now = inner.now();
    let session = Session {
        id,
        user,
        mfa,
        refresh_token,
        csrf_token,
        expires_at: now + ttl,
    };
    NewSession {
        session,
        created_at: now,
    }
}

/// The audit event of a new session and its detail.
pub(crate) const LOGIN_EVENT: &str = "login";

pub(crate) fn login_detail(mfa: bool) -> &'static str {
    if mfa {
        "two factors"
    } else {
        "password only"
    }
}

fn store(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    NewSession {
        session,
        created_at,
    }: NewSession,
) -> CoreResult<Session> {
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(&session.id),
            sessions::user_id.eq(&session.user.id),
            sessions::dialect.eq(&origin.dialect),
            sessions::refresh_hash.eq(hash_token(&session.refresh_token)),
            sessions::csrf_hash.eq(session.csrf_token.as_deref().map(hash_token)),
            sessions::created_at.eq(created_at),
            sessions::expires_at.eq(session.expires_at),
            sessions::revoked.eq(false),
        ))
        .execute(conn)?;
    let detail = login_detail(session.mfa);
    audit::record(
        inner,
        conn,
        origin,
        LOGIN_EVENT,
        &session.user,
        Some(detail),
    )?;
    Ok(session)
}

/// Looks up a live session of `dialect` by its refresh token.
fn live_session(
    inner: &Inner,
    conn: &mut DbConnection,
    dialect: &str,
    refresh_token: &str,
) -> CoreResult<(SessionRow, UserRow)> {
    let found: Option<(SessionRow, UserRow)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::refresh_hash.eq(hash_token(refresh_token)))
        .select((
            (
                sessions::id,
                sessions::dialect,
                sessions::csrf_hash,
                sessions::expires_at,
                sessions::revoked,
            ),
            UserRow::as_select(),
        ))
        .get_result(conn)
        .optional()?;
    match found {
        Some((s, u))
            if s.dialect == dialect && !s.revoked && s.expires_at > inner.now() && !u.disabled =>
        {
            Ok((s, u))
        }
        _ => Err(CoreError::InvalidToken),
    }
}

impl Core {
    /// Looks up the session behind a refresh token. With `csrf`, the CSRF token must
    /// match (constant time) and is rotated.
    pub async fn refresh_session(
        &self,
        origin: Origin,
        refresh_token: String,
        csrf: Option<String>,
    ) -> CoreResult<Session> {
        self.run(move |inner, conn| {
            let (row, user) = live_session(inner, conn, &origin.dialect, &refresh_token)?;
            let mut csrf_token = None;
            if let Some(given) = csrf {
                let expected = row.csrf_hash.as_deref().unwrap_or("");
                if !bool::from(hash_token(&given).as_bytes().ct_eq(expected.as_bytes())) {
                    return Err(CoreError::InvalidToken);
                }
                let fresh = random_hex(inner.rng(), 32);
                diesel::update(sessions::table.find(hash_token(&refresh_token)))
                    .set(sessions::csrf_hash.eq(hash_token(&fresh)))
                    .execute(conn)?;
                csrf_token = Some(fresh);
            }
            let mfa = Factors::load(conn, &user.id)?.any();
            Ok(Session {
                id: row.id,
                user: user.into(),
                mfa,
                refresh_token,
                csrf_token,
                expires_at: row.expires_at,
            })
        })
        .await
    }

    /// Refreshes a session whose access tokens carry its generation: the generation
    /// moves on (so every earlier access token stops working) and the session comes
    /// back with the same refresh token and the new generation.
    pub async fn refresh_generation(
        &self,
        origin: Origin,
        refresh_token: String,
    ) -> CoreResult<(Session, i64)> {
        self.run(move |inner, conn| {
            write_tx(conn, |conn| {
                let (row, user) = live_session(inner, conn, &origin.dialect, &refresh_token)?;
                let key = hash_token(&refresh_token);
                diesel::update(sessions::table.find(&key))
                    .set(sessions::generation.eq(sessions::generation + 1))
                    .execute(conn)?;
                let generation: i64 = sessions::table
                    .find(&key)
                    .select(sessions::generation)
                    .get_result(conn)?;
                audit::record(inner, conn, &origin, "session.refreshed", &user, None)?;
                let mfa = Factors::load(conn, &user.id)?.any();
                Ok((
                    Session {
                        id: row.id,
                        user: user.into(),
                        mfa,
                        refresh_token,
                        csrf_token: None,
                        expires_at: row.expires_at,
                    },
                    generation,
                ))
            })
        })
        .await
    }

    /// The current generation of a live session (not revoked or expired, its user
    /// enabled); `None` otherwise.
    pub async fn session_generation(&self, session_id: String) -> CoreResult<Option<i64>> {
        self.run(move |inner, conn| {
            let row: Option<(i64, bool, i64, bool)> = sessions::table
                .inner_join(users::table)
                .filter(sessions::id.eq(&session_id))
                .select((
                    sessions::generation,
                    sessions::revoked,
                    sessions::expires_at,
                    users::disabled,
                ))
                .get_result(conn)
                .optional()?;
            Ok(row.and_then(|(generation, revoked, expires_at, disabled)| {
                (!revoked && expires_at > inner.now() && !disabled).then_some(generation)
            }))
        })
        .await
    }

    /// Revokes the session behind a refresh token.
    pub async fn logout(&self, origin: Origin, refresh_token: String) -> CoreResult<()> {
        self.run(move |inner, conn| {
            let (_, user) = live_session(inner, conn, &origin.dialect, &refresh_token)?;
            write_tx(conn, |conn| {
                diesel::update(sessions::table.find(hash_token(&refresh_token)))
                    .set(sessions::revoked.eq(true))
                    .execute(conn)?;
                audit::record(inner, conn, &origin, "logout", &user, None)
            })
        })
        .await
    }

    /// Whether the session was ended (revoked, as by a password change, or expired).
    /// An unknown session is not reported as ended: its user was deleted, which the
    /// caller sees when it loads the user.
    pub async fn session_ended(&self, session_id: String) -> CoreResult<bool> {
        self.run(move |inner, conn| {
            let row: Option<(bool, i64)> = sessions::table
                .filter(sessions::id.eq(&session_id))
                .select((sessions::revoked, sessions::expires_at))
                .get_result(conn)
                .optional()?;
            Ok(row.is_some_and(|(revoked, expires_at)| revoked || expires_at <= inner.now()))
        })
        .await
    }
}

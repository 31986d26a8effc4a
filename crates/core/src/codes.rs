//! One-time codes sent to a user (by email or SMS, see [`Channel`]): random, stored
//! only as a keyed hash, bound to a purpose, short-lived, at most [`MAX_ATTEMPTS`] wrong
//! tries each, single use, and at most [`MAX_SENDS`] sends per user per [`SEND_WINDOW`].
//! Wrong codes also count toward the user's `lockout::CODES` lockout, which every
//! second factor shares.
//!
//! Sending is three steps so that a failed delivery leaves nothing usable: the code is
//! stored undelivered, the message is sent outside any transaction, and only then is
//! the code marked delivered (superseding older codes of the same purpose). A failed
//! send deletes the row again.

use diesel::prelude::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::audit;
use crate::db::schema::one_time_codes;
use crate::db::{write_tx, DbConnection};
use crate::delivery::{Channel, Template};
use crate::lockout::{self, Attempt};
use crate::metrics::{self, Factor, Outcome};
use crate::random::{hex, random_bytes, random_hex};
use crate::users::{find_by_id, lock_user, UserRow};
use crate::{Core, CoreError, CoreResult, Inner, Origin};

/// Wrong tries after which a code is dead.
pub const MAX_ATTEMPTS: i32 = 5;
/// Sends allowed per user within [`SEND_WINDOW`] seconds.
pub const MAX_SENDS: i64 = 5;
pub const SEND_WINDOW: i64 = 600;

/// The channel of codes that are never sent (login steps awaiting an app's code).
pub(crate) const NOT_SENT: &str = "none";

/// What a code may be used for; a code of one purpose never completes another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    /// Proves control of the mailbox (or phone) before its 2FA is turned on.
    EnableTwoFactor,
    /// The second step of a login.
    Login,
    /// Confirms the email address (sent as a link).
    ConfirmEmail,
    /// Sets a new password without the old one (sent as a link).
    ResetPassword,
    /// Not sent: records that a login's password step passed, so that an authenticator
    /// code may complete it (see `Core::begin_authenticator_login`).
    AuthenticatorLogin,
    /// Proves control of the phone of a pending SMS factor (Saasu opt-in).
    EnableSms,
    /// The second step of a login by SMS.
    SmsLogin,
    /// Confirms that the holder of a session may turn its SMS factor off.
    DisableTwoFactor,
}

impl CodePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CodePurpose::EnableTwoFactor => "enable-2fa",
            CodePurpose::Login => "login",
            CodePurpose::ConfirmEmail => "confirm-email",
            CodePurpose::ResetPassword => "reset-password",
            CodePurpose::AuthenticatorLogin => "authenticator-login",
            CodePurpose::EnableSms => "enable-sms",
            CodePurpose::SmsLogin => "sms-login",
            CodePurpose::DisableTwoFactor => "disable-2fa",
        }
    }

    /// The factor a code of this purpose proves, as `/metrics` counts its checks.
    pub fn factor(self) -> Factor {
        match self {
            CodePurpose::EnableSms | CodePurpose::SmsLogin | CodePurpose::DisableTwoFactor => {
                Factor::Sms
            }
            CodePurpose::AuthenticatorLogin => Factor::Totp,
            CodePurpose::EnableTwoFactor
            | CodePurpose::Login
            | CodePurpose::ConfirmEmail
            | CodePurpose::ResetPassword => Factor::Email,
        }
    }

    /// Whether codes of this purpose are messages to the user (else only a record).
    pub fn is_sent(self) -> bool {
        self != CodePurpose::AuthenticatorLogin
    }

    /// Seconds a code stays valid.
    pub fn ttl(self) -> i64 {
        match self {
            CodePurpose::EnableTwoFactor
            | CodePurpose::Login
            | CodePurpose::AuthenticatorLogin
            | CodePurpose::EnableSms
            | CodePurpose::SmsLogin
            | CodePurpose::DisableTwoFactor => 600,
            CodePurpose::ConfirmEmail => 24 * 3600,
            CodePurpose::ResetPassword => 3600,
        }
    }
}

/// The shape of a code: typed digits, or a long token carried in a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeFormat {
    Digits(u32),
    /// 32 random bytes as hex.
    Token,
}

fn generate(inner: &Inner, format: CodeFormat) -> String {
    match format {
        CodeFormat::Digits(n) => (0..n)
            .map(|_| {
                // Rejection sampling: bytes of 250 and more would bias the digits.
                loop {
                    let b = random_bytes(inner.rng(), 1)[0];
                    if b < 250 {
                        break char::from(b'0' + b % 10);
                    }
                }
            })
            .collect(),
        CodeFormat::Token => random_hex(inner.rng(), 32),
    }
}

/// HMAC-SHA256 of the code under a key derived from the master key, bound to the
/// code's row, so a database dump alone does not let anyone test guesses offline.
pub(crate) fn code_hash(inner: &Inner, code_id: &str, code: &str) -> String {
    code_hash_under(&inner.cfg.master_key, code_id, code)
}

fn code_hash_under(master_key: &[u8; 32], code_id: &str, code: &str) -> String {
    let mut key = Hmac::<Sha256>::new_from_slice(master_key).expect("any key length");
    key.update(b"twofa one-time code key v1");
    let derived = key.finalize().into_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(&derived).expect("any key length");
    mac.update(code_id.as_bytes());
    mac.update(&[0]);
    mac.update(code.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Whether `code` is the one hashed as `stored`, under the current master key or (for
/// a code sent before a key rotation) a previous one.
fn code_matches(inner: &Inner, code_id: &str, code: &str, stored: &str) -> bool {
    std::iter::once(&inner.cfg.master_key)
        .chain(&inner.cfg.previous_master_keys)
        .fold(false, |found, key| {
            let hash = code_hash_under(key, code_id, code);
            found | bool::from(hash.as_bytes().ct_eq(stored.as_bytes()))
        })
}

#[derive(Queryable)]
struct LiveCode {
    id: String,
    code_hash: String,
}

/// The newest usable code of `purpose` for the user, if any.
fn live_code(
    inner: &Inner,
    conn: &mut DbConnection,
    user_id: &str,
    purpose: CodePurpose,
) -> CoreResult<Option<LiveCode>> {
    Ok(one_time_codes::table
        .filter(one_time_codes::user_id.eq(user_id))
        .filter(one_time_codes::purpose.eq(purpose.as_str()))
        .filter(one_time_codes::delivered.eq(true))
        .filter(one_time_codes::used.eq(false))
        .filter(one_time_codes::attempts.lt(MAX_ATTEMPTS))
        .filter(one_time_codes::expires_at.gt(inner.now()))
        .order(one_time_codes::created_at.desc())
        .select((one_time_codes::id, one_time_codes::code_hash))
        .first(conn)
        .optional()?)
}

/// Whether the user's newest delivered code of `purpose` expired unused (so a rejected
/// answer is counted as expired rather than wrong; the failure path only).
fn expired_code(
    inner: &Inner,
    conn: &mut DbConnection,
    user_id: &str,
    purpose: CodePurpose,
) -> CoreResult<bool> {
    let newest: Option<(bool, i64)> = one_time_codes::table
        .filter(one_time_codes::user_id.eq(user_id))
        .filter(one_time_codes::purpose.eq(purpose.as_str()))
        .filter(one_time_codes::delivered.eq(true))
        .order(one_time_codes::created_at.desc())
        .select((one_time_codes::used, one_time_codes::expires_at))
        .first(conn)
        .optional()?;
    Ok(newest.is_some_and(|(used, expires_at)| !used && expires_at <= inner.now()))
}

/// Uses up every outstanding code of `purpose` of the user; whether there was one.
pub(crate) fn claim_all(
    inner: &Inner,
    conn: &mut DbConnection,
    user_id: &str,
    purpose: CodePurpose,
) -> CoreResult<bool> {
    let claimed = diesel::update(
        one_time_codes::table
            .filter(one_time_codes::user_id.eq(user_id))
            .filter(one_time_codes::purpose.eq(purpose.as_str()))
            .filter(one_time_codes::delivered.eq(true))
            .filter(one_time_codes::used.eq(false))
            .filter(one_time_codes::expires_at.gt(inner.now())),
    )
    .set(one_time_codes::used.eq(true))
    .execute(conn)?;
    Ok(claimed > 0)
}

/// Voids every unused code of the user (a factor change makes earlier codes moot).
pub(crate) fn void_all(conn: &mut DbConnection, user_id: &str) -> CoreResult<()> {
    diesel::update(
        one_time_codes::table
            .filter(one_time_codes::user_id.eq(user_id))
            .filter(one_time_codes::used.eq(false)),
    )
    .set(one_time_codes::used.eq(true))
    .execute(conn)?;
    Ok(())
}

/// Checks `code` against the user's live code of `purpose` under the user's code
/// lockout and, if it matches, marks it used and runs `then` in the same transaction
/// (so the code and the change it authorizes commit together). Wrong codes are counted
/// per code and per user.
pub(crate) fn redeem<T>(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    user: &UserRow,
    purpose: CodePurpose,
    code: &str,
    then: impl FnOnce(&mut DbConnection) -> CoreResult<T>,
) -> CoreResult<T> {
    let factor = purpose.factor();
    let count = |outcome| metrics::verification(origin, factor, outcome);
    lockout::code_attempt(inner, conn, origin, (user.subject(), factor), |conn| {
        let Some(live) = live_code(inner, conn, &user.id, purpose)? else {
            count(match expired_code(inner, conn, &user.id, purpose)? {
                true => Outcome::Expired,
                false => Outcome::Wrong,
            });
            return Ok(Attempt::Rejected(purpose.as_str()));
        };
        if !code_matches(inner, &live.id, code.trim(), &live.code_hash) {
            diesel::update(one_time_codes::table.find(&live.id))
                .set(one_time_codes::attempts.eq(one_time_codes::attempts + 1))
                .execute(conn)?;
            count(Outcome::Wrong);
            return Ok(Attempt::Rejected(purpose.as_str()));
        }
        match write_tx(conn, |conn| {
            claim(inner, conn, origin, user, (&live, purpose), then)
        }) {
            Ok(value) => {
                count(Outcome::Accepted);
                Ok(Attempt::Accepted(value))
            }
            Err(CoreError::IncorrectCode) => {
                count(Outcome::Replayed);
                Ok(Attempt::Rejected("code already used"))
            }
            Err(e) => Err(e),
        }
    })
}

/// Uses up a matched code (of two concurrent redemptions exactly one updates the row)
/// and runs what it authorizes.
fn claim<T>(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    user: &UserRow,
    (live, purpose): (&LiveCode, CodePurpose),
    then: impl FnOnce(&mut DbConnection) -> CoreResult<T>,
) -> CoreResult<T> {
    let claimed = diesel::update(
        one_time_codes::table
            .filter(one_time_codes::id.eq(&live.id))
            .filter(one_time_codes::used.eq(false))
            .filter(one_time_codes::attempts.lt(MAX_ATTEMPTS))
            .filter(one_time_codes::expires_at.gt(inner.now())),
    )
    .set(one_time_codes::used.eq(true))
    .execute(conn)?;
    if claimed != 1 {
        return Err(CoreError::IncorrectCode);
    }
    audit::record(
        inner,
        conn,
        origin,
        "code.accepted",
        user,
        Some(purpose.as_str()),
    )?;
    then(conn)
}

/// A code row as stored: only the keyed hash of the code.
struct NewCode<'a> {
    id: &'a str,
    user_id: &'a str,
    purpose: CodePurpose,
    channel: &'a str,
    hash: &'a str,
    delivered: bool,
}

fn insert(inner: &Inner, conn: &mut DbConnection, code: NewCode<'_>) -> CoreResult<()> {
    let now = inner.now();
    diesel::insert_into(one_time_codes::table)
        .values((
            one_time_codes::id.eq(code.id),
            one_time_codes::user_id.eq(code.user_id),
            one_time_codes::purpose.eq(code.purpose.as_str()),
            one_time_codes::channel.eq(code.channel),
            one_time_codes::code_hash.eq(code.hash),
            one_time_codes::delivered.eq(code.delivered),
            one_time_codes::used.eq(false),
            one_time_codes::attempts.eq(0),
            one_time_codes::created_at.eq(now),
            one_time_codes::expires_at.eq(now + code.purpose.ttl()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Refuses a send beyond [`MAX_SENDS`] in [`SEND_WINDOW`] with `Locked` (for a code
/// nobody is sent, beyond as many of its purpose).
fn check_send_limit(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    user: &UserRow,
    purpose: CodePurpose,
) -> CoreResult<()> {
    let now = inner.now();
    let mut recent = one_time_codes::table
        .filter(one_time_codes::user_id.eq(&user.id))
        .filter(one_time_codes::created_at.gt(now - SEND_WINDOW))
        .select(one_time_codes::created_at)
        .order(one_time_codes::created_at.asc())
        .into_boxed();
    // Messages count together whatever they were for; codes nobody is sent (a pending
    // authenticator login) count only against their own purpose.
    recent = match purpose.is_sent() {
        true => recent.filter(one_time_codes::channel.ne(NOT_SENT)),
        false => recent.filter(one_time_codes::purpose.eq(purpose.as_str())),
    };
    let recent: Vec<i64> = recent.load(conn)?;
    if recent.len() as i64 >= MAX_SENDS {
        let retry_after = (recent[0] + SEND_WINDOW - now).max(1);
        audit::record(
            inner,
            conn,
            origin,
            "code.send_limited",
            user,
            Some(purpose.as_str()),
        )?;
        return Err(CoreError::Locked { retry_after });
    }
    Ok(())
}

/// Where a channel's message goes for a user: their address on it, if any.
pub(crate) type Destination = fn(&mut DbConnection, &UserRow) -> CoreResult<Option<String>>;

/// A code to send: what for, in which shape, over which channel, to where.
pub(crate) struct Send {
    pub(crate) purpose: CodePurpose,
    pub(crate) format: CodeFormat,
    pub(crate) channel: Channel,
    pub(crate) destination: Destination,
    pub(crate) template: Template,
}

/// Sends the user a fresh code, rendered into the template (`{code}`). Fails with
/// `Locked` after [`MAX_SENDS`] sends in [`SEND_WINDOW`], with `NoDestination` when the
/// user has no address on the channel, and with `DeliveryFailed` (leaving no usable
/// code) when the message cannot be sent. A delivered code replaces earlier ones of its
/// purpose. Three steps, so that nothing is held while the message goes out.
pub(crate) async fn send(
    core: &Core,
    origin: Origin,
    user_id: String,
    send: Send,
) -> CoreResult<()> {
    let (purpose, channel) = (send.purpose, send.channel);
    let audit_origin = origin.clone();
    let (user, destination, code_id, code) = core
        .run(move |inner, conn| {
            let code_id = random_hex(inner.rng(), 16);
            let code = generate(inner, send.format);
            let hash = code_hash(inner, &code_id, &code);
            write_tx(conn, |conn| {
                // Concurrent sends count in turn.
                lock_user(conn, &user_id)?;
                let user = find_by_id(conn, &user_id)?.ok_or(CoreError::UserNotFound)?;
                let destination = (send.destination)(conn, &user)?
                    .filter(|d| !d.trim().is_empty())
                    .ok_or(CoreError::NoDestination)?;
                check_send_limit(inner, conn, &origin, &user, purpose)?;
                let (id, channel) = (code_id.as_str(), channel.as_str());
                let row = NewCode {
                    id,
                    user_id: &user.id,
                    purpose,
                    channel,
                    hash: &hash,
                    delivered: false,
                };
                insert(inner, conn, row)?;
                Ok((user, destination, code_id, code))
            })
        })
        .await?;
    let (subject, body) = send.template.render(&code);
    let sent = core
        .inner
        .delivery
        .send(channel, &destination, &subject, &body)
        .await;
    let delivered = sent.is_ok();
    metrics::delivery(channel, delivered);
    core.run(move |inner, conn| {
        write_tx(conn, |conn| {
            settle(
                inner,
                conn,
                &audit_origin,
                &user,
                (&code_id, purpose, channel),
                delivered,
            )
        })
    })
    .await?;
    sent
}

/// After the send: a delivered code becomes usable and supersedes older ones of its
/// purpose; an undelivered one is deleted.
fn settle(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    user: &UserRow,
    (code_id, purpose, channel): (&str, CodePurpose, Channel),
    delivered: bool,
) -> CoreResult<()> {
    // One user's sends settle in turn: each supersedes the others' rows.
    lock_user(conn, &user.id)?;
    let detail = format!("{} by {}", purpose.as_str(), channel.as_str());
    if !delivered {
        diesel::delete(one_time_codes::table.find(code_id)).execute(conn)?;
        return audit::record(
            inner,
            conn,
            origin,
            "code.delivery_failed",
            user,
            Some(&detail),
        );
    }
    diesel::update(
        one_time_codes::table
            .filter(one_time_codes::user_id.eq(&user.id))
            .filter(one_time_codes::purpose.eq(purpose.as_str()))
            .filter(one_time_codes::used.eq(false))
            .filter(one_time_codes::id.ne(code_id)),
    )
    .set(one_time_codes::used.eq(true))
    .execute(conn)?;
    diesel::update(one_time_codes::table.find(code_id))
        .set(one_time_codes::delivered.eq(true))
        .execute(conn)?;
    audit::record(inner, conn, origin, "code.sent", user, Some(&detail))
}

/// A pending login step that no code was sent for (one awaiting an authenticator
/// app's code): a row that can only be claimed, never redeemed, for
/// [`CodePurpose::ttl`].
/// Takes one of at most `tries` attempts from the user's live code of `purpose`, in a
/// statement of its own that commits whatever the attempt finds (row-locked on
/// PostgreSQL, so concurrent attempts take distinct tries). `false`: no such code, or
/// none left.
pub(crate) fn take_try(
    inner: &Inner,
    conn: &mut DbConnection,
    user_id: &str,
    purpose: CodePurpose,
    tries: i32,
) -> CoreResult<bool> {
    let taken = diesel::update(
        one_time_codes::table
            .filter(one_time_codes::user_id.eq(user_id))
            .filter(one_time_codes::purpose.eq(purpose.as_str()))
            .filter(one_time_codes::used.eq(false))
            .filter(one_time_codes::expires_at.gt(inner.now()))
            .filter(one_time_codes::attempts.lt(tries)),
    )
    .set(one_time_codes::attempts.eq(one_time_codes::attempts + 1))
    .execute(conn)?;
    Ok(taken > 0)
}

/// Records a code nobody is sent (a pending authenticator login), limited like sends.
pub(crate) fn insert_unsent(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    user: &UserRow,
    purpose: CodePurpose,
) -> CoreResult<()> {
    check_send_limit(inner, conn, origin, user, purpose)?;
    let id = random_hex(inner.rng(), 16);
    // An unguessable value nobody is told.
    let hash = code_hash(inner, &id, &random_hex(inner.rng(), 32));
    let row = NewCode {
        id: &id,
        user_id: &user.id,
        purpose,
        channel: NOT_SENT,
        hash: &hash,
        delivered: true,
    };
    insert(inner, conn, row)
}

fn email_of(_: &mut DbConnection, user: &UserRow) -> CoreResult<Option<String>> {
    Ok(user.email.clone())
}

impl Core {
    /// Emails the user a fresh code of `purpose`, rendered into `template` (`{code}`);
    /// see [`send`] for the limits and failures.
    pub async fn email_code(
        &self,
        origin: Origin,
        user_id: String,
        purpose: CodePurpose,
        format: CodeFormat,
        template: Template,
    ) -> CoreResult<()> {
        let channel = Channel::Email;
        let destination: Destination = email_of;
        send(
            self,
            origin,
            user_id,
            Send {
                purpose,
                format,
                channel,
                destination,
                template,
            },
        )
        .await
    }

    /// Checks a code of `purpose` without any further effect (single use, limited).
    pub async fn redeem_code(
        &self,
        origin: Origin,
        user_id: String,
        purpose: CodePurpose,
        code: String,
    ) -> CoreResult<()> {
        self.run(move |inner, conn| {
            let user = find_by_id(conn, &user_id)?.ok_or(CoreError::UserNotFound)?;
            redeem(inner, conn, &origin, &user, purpose, &code, |_| Ok(()))
        })
        .await
    }
}

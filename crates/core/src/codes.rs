//! One-time codes sent to a user (by email or SMS, see [`Channel`]): random, stored
//! only as a keyed hash, bound to a purpose, short-lived, at most [`MAX_ATTEMPTS`] wrong
//! tries each, single use, and at most [`MAX_SENDS`] sends per user per [`SEND_WINDOW`].
//! Wrong codes also count toward the user's `throttle::CODES` lockout, which every
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
use crate::challenges::record_code_failure;
use crate::db::schema::{one_time_codes, sms_factors};
use crate::db::{write_tx, DbConnection};
use crate::delivery::{Channel, Template};
use crate::random::{hex, random_bytes, random_hex};
use crate::throttle;
use crate::users::{find_by_id, lock_user, UserRow};
use crate::{Core, CoreError, CoreResult, Inner, Origin, User};

/// Wrong tries after which a code is dead.
pub const MAX_ATTEMPTS: i32 = 5;
/// Sends allowed per user within [`SEND_WINDOW`] seconds.
pub const MAX_SENDS: i64 = 5;
pub const SEND_WINDOW: i64 = 600;

/// The channel of codes that are never sent (login steps awaiting an app's code).
const NOT_SENT: &str = "none";

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
fn code_hash(inner: &Inner, code_id: &str, code: &str) -> String {
    let mut key = Hmac::<Sha256>::new_from_slice(&inner.cfg.master_key).expect("any key length");
    key.update(b"twofa one-time code key v1");
    let derived = key.finalize().into_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(&derived).expect("any key length");
    mac.update(code_id.as_bytes());
    mac.update(&[0]);
    mac.update(code.as_bytes());
    hex(&mac.finalize().into_bytes())
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

/// Whether an unused code of `purpose` is outstanding for the user.
pub(crate) fn has_live_code(
    inner: &Inner,
    conn: &mut DbConnection,
    user_id: &str,
    purpose: CodePurpose,
) -> CoreResult<bool> {
    Ok(live_code(inner, conn, user_id, purpose)?.is_some())
}

/// Checks `code` against the user's live code of `purpose` and, if it matches, marks
/// it used and runs `then` in the same write transaction (so the code and the change
/// it authorizes commit together). Refused while the user is locked out; wrong codes
/// are counted per code and per user.
pub(crate) fn redeem<T>(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    user: &UserRow,
    purpose: CodePurpose,
    code: &str,
    then: impl FnOnce(&mut DbConnection) -> CoreResult<T>,
) -> CoreResult<T> {
    let now = inner.now();
    throttle::check(conn, &throttle::codes_key(&user.id), now)?;
    let live = live_code(inner, conn, &user.id, purpose)?;
    let matched = live.as_ref().is_some_and(|c| {
        bool::from(
            code_hash(inner, &c.id, code.trim())
                .as_bytes()
                .ct_eq(c.code_hash.as_bytes()),
        )
    });
    let live = match live {
        Some(live) if matched => live,
        other => {
            if let Some(c) = other {
                diesel::update(one_time_codes::table.find(&c.id))
                    .set(one_time_codes::attempts.eq(one_time_codes::attempts + 1))
                    .execute(conn)?;
            }
            record_code_failure(inner, conn, origin, user, purpose.as_str())?;
            return Err(CoreError::IncorrectCode);
        }
    };
    let outcome = write_tx(conn, |conn| {
        // Single use: of two concurrent redemptions exactly one updates the row.
        let claimed = diesel::update(
            one_time_codes::table
                .filter(one_time_codes::id.eq(&live.id))
                .filter(one_time_codes::used.eq(false))
                .filter(one_time_codes::attempts.lt(MAX_ATTEMPTS))
                .filter(one_time_codes::expires_at.gt(now)),
        )
        .set(one_time_codes::used.eq(true))
        .execute(conn)?;
        if claimed != 1 {
            return Err(CoreError::IncorrectCode);
        }
        throttle::clear(conn, &throttle::codes_key(&user.id))?;
        audit::record(
            inner,
            conn,
            origin,
            "code.accepted",
            Some((&user.id, &user.username)),
            Some(purpose.as_str()),
        )?;
        then(conn)
    });
    if let Err(CoreError::IncorrectCode) = outcome {
        record_code_failure(inner, conn, origin, user, "code already used")?;
    }
    outcome
}

impl Core {
    /// Sends the user a fresh code of `purpose` through `channel`, rendered into
    /// `template` (`{code}`). Fails with `Locked` after [`MAX_SENDS`] sends in
    /// [`SEND_WINDOW`], and with `DeliveryFailed` (leaving no usable code) when the
    /// message cannot be sent. A delivered code replaces earlier ones of its purpose.
    pub async fn send_code(
        &self,
        origin: Origin,
        user_id: String,
        purpose: CodePurpose,
        format: CodeFormat,
        channel: Channel,
        template: Template,
    ) -> CoreResult<()> {
        let audit_origin = origin.clone();
        let (user, destination, code_id, code) = self
            .run(move |inner, conn| {
                let code_id = random_hex(inner.rng(), 16);
                let code = generate(inner, format);
                let hash = code_hash(inner, &code_id, &code);
                let now = inner.now();
                write_tx(conn, |conn| {
                    // Concurrent sends count in turn.
                    lock_user(conn, &user_id)?;
                    let user = find_by_id(conn, &user_id)?.ok_or(CoreError::UserNotFound)?;
                    let destination = match channel {
                        Channel::Email => user.email.clone(),
                        // The number of the SMS factor, pending (opt-in) or active.
                        Channel::Sms => sms_factors::table
                            .find(&user.id)
                            .select(sms_factors::phone)
                            .get_result(conn)
                            .optional()?,
                    }
                    .filter(|d| !d.trim().is_empty())
                    .ok_or_else(|| CoreError::InvalidInput("no address to send to".into()))?;
                    let recent: Vec<i64> = one_time_codes::table
                        .filter(one_time_codes::user_id.eq(&user.id))
                        .filter(one_time_codes::created_at.gt(now - SEND_WINDOW))
                        .filter(one_time_codes::channel.ne(NOT_SENT))
                        .select(one_time_codes::created_at)
                        .order(one_time_codes::created_at.asc())
                        .load(conn)?;
                    if recent.len() as i64 >= MAX_SENDS {
                        let retry_after = (recent[0] + SEND_WINDOW - now).max(1);
                        audit::record(
                            inner,
                            conn,
                            &origin,
                            "code.send_limited",
                            Some((&user.id, &user.username)),
                            Some(purpose.as_str()),
                        )?;
                        return Err(CoreError::Locked { retry_after });
                    }
                    diesel::insert_into(one_time_codes::table)
                        .values((
                            one_time_codes::id.eq(&code_id),
                            one_time_codes::user_id.eq(&user.id),
                            one_time_codes::purpose.eq(purpose.as_str()),
                            one_time_codes::channel.eq(channel.as_str()),
                            one_time_codes::code_hash.eq(&hash),
                            one_time_codes::delivered.eq(false),
                            one_time_codes::used.eq(false),
                            one_time_codes::attempts.eq(0),
                            one_time_codes::created_at.eq(now),
                            one_time_codes::expires_at.eq(now + purpose.ttl()),
                        ))
                        .execute(conn)?;
                    Ok((User::from(user), destination, code_id, code))
                })
            })
            .await?;
        let (subject, body) = template.render(&code);
        let sent = self
            .inner
            .delivery
            .send(channel, &destination, &subject, &body)
            .await;
        let delivered = sent.is_ok();
        self.run(move |inner, conn| {
            let origin = audit_origin;
            write_tx(conn, |conn| {
                let subject = Some((user.id.as_str(), user.username.as_str()));
                let detail = format!("{} by {}", purpose.as_str(), channel.as_str());
                match delivered {
                    true => {
                        diesel::update(
                            one_time_codes::table
                                .filter(one_time_codes::user_id.eq(&user.id))
                                .filter(one_time_codes::purpose.eq(purpose.as_str()))
                                .filter(one_time_codes::used.eq(false))
                                .filter(one_time_codes::id.ne(&code_id)),
                        )
                        .set(one_time_codes::used.eq(true))
                        .execute(conn)?;
                        diesel::update(one_time_codes::table.find(&code_id))
                            .set(one_time_codes::delivered.eq(true))
                            .execute(conn)?;
                        audit::record(inner, conn, &origin, "code.sent", subject, Some(&detail))
                    }
                    false => {
                        diesel::delete(one_time_codes::table.find(&code_id)).execute(conn)?;
                        audit::record(
                            inner,
                            conn,
                            &origin,
                            "code.delivery_failed",
                            subject,
                            Some(&detail),
                        )
                    }
                }
            })
        })
        .await?;
        sent
    }

    /// Records that the user passed a login's password step, so that
    /// `login_with_totp` may complete it within [`CodePurpose::ttl`]. Nothing is sent.
    pub async fn begin_authenticator_login(
        &self,
        origin: Origin,
        user_id: String,
    ) -> CoreResult<()> {
        self.run(move |inner, conn| {
            let id = random_hex(inner.rng(), 16);
            // An unguessable value nobody is told: this row can only be claimed, not redeemed.
            let hash = code_hash(inner, &id, &random_hex(inner.rng(), 32));
            let now = inner.now();
            let purpose = CodePurpose::AuthenticatorLogin;
            write_tx(conn, |conn| {
                let user = find_by_id(conn, &user_id)?.ok_or(CoreError::UserNotFound)?;
                diesel::insert_into(one_time_codes::table)
                    .values((
                        one_time_codes::id.eq(&id),
                        one_time_codes::user_id.eq(&user.id),
                        one_time_codes::purpose.eq(purpose.as_str()),
                        one_time_codes::channel.eq(NOT_SENT),
                        one_time_codes::code_hash.eq(&hash),
                        one_time_codes::delivered.eq(true),
                        one_time_codes::used.eq(false),
                        one_time_codes::attempts.eq(0),
                        one_time_codes::created_at.eq(now),
                        one_time_codes::expires_at.eq(now + purpose.ttl()),
                    ))
                    .execute(conn)?;
                audit::record(
                    inner,
                    conn,
                    &origin,
                    "login.awaiting_authenticator",
                    Some((&user.id, &user.username)),
                    None,
                )
            })
        })
        .await
    }

    /// Checks a code of `purpose` without any further effect (single use, limited).
    pub async fn redeem_code(
        &self,
        origin: Origin,
        user_id: String,
        purpose: CodePurpose,
        code: String,
    ) -> CoreResult<User> {
        self.run(move |inner, conn| {
            let user = find_by_id(conn, &user_id)?.ok_or(CoreError::UserNotFound)?;
            redeem(inner, conn, &origin, &user, purpose, &code, |_| Ok(()))?;
            Ok(user.into())
        })
        .await
    }
}

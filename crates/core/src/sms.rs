//! The SMS factor: a verified mobile number that receives a one-time code at every
//! login. Opting in stores the number pending and texts a code (purpose `EnableSms`);
//! the code makes the factor active. An active number serves one user only. Codes
//! follow `codes.rs` (hashed, 10 minutes, 5 tries, single use, send limits, the shared
//! code lockout); only their length (7 digits, as Saasu's) is chosen here.
//!
//! Turning the factor off needs a fresh proof beyond the session: a code texted for
//! that purpose, or a code of the user's authenticator.

use diesel::prelude::*;

use crate::accounts::{live_user, second_factors, SignIn};
use crate::audit;
use crate::codes::{redeem, CodeFormat, CodePurpose};
use crate::crypto::Password;
use crate::db::schema::{one_time_codes, sms_factors, users};
use crate::db::{write_tx, DbConnection};
use crate::delivery::{Channel, Template};
use crate::random::random_bytes;
use crate::sessions::{self, Session};
use crate::users::lock_user;
use crate::{Core, CoreError, CoreResult, Origin};

/// SMS codes are 7 digits (Saasu's "7-digit security code").
pub const SMS_CODE: CodeFormat = CodeFormat::Digits(7);

/// The number's E.164 form. Accepts international numbers (`+61 499 999 999`) and
/// Australian national ones (`0499999999`); anything that is not a valid number for its
/// region is refused.
pub fn normalize_mobile(input: &str) -> CoreResult<String> {
    let invalid = || CoreError::InvalidInput(INVALID_MOBILE.into());
    let trimmed = input.trim();
    if trimmed.is_empty() || trimmed.len() > 32 {
        return Err(invalid());
    }
    let number =
        phonenumber::parse(Some(phonenumber::country::Id::AU), trimmed).map_err(|_| invalid())?;
    if !phonenumber::is_valid(&number) {
        return Err(invalid());
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

pub(crate) fn sms_factor_active(conn: &mut DbConnection, user_id: &str) -> CoreResult<bool> {
    let n: i64 = sms_factors::table
        .filter(sms_factors::user_id.eq(user_id))
        .filter(sms_factors::active.eq(true))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub(crate) fn delete_sms_factor(conn: &mut DbConnection, user_id: &str) -> CoreResult<()> {
    diesel::delete(sms_factors::table.filter(sms_factors::user_id.eq(user_id))).execute(conn)?;
    Ok(())
}

#[derive(Queryable)]
struct SmsFactorRow {
    phone: String,
    provider_user_id: i64,
    active: bool,
}

fn sms_factor(conn: &mut DbConnection, user_id: &str) -> CoreResult<Option<SmsFactorRow>> {
    Ok(sms_factors::table
        .find(user_id)
        .select((
            sms_factors::phone,
            sms_factors::provider_user_id,
            sms_factors::active,
        ))
        .get_result(conn)
        .optional()?)
}

fn number_taken(conn: &mut DbConnection, phone: &str, user_id: &str) -> CoreResult<bool> {
    let n: i64 = sms_factors::table
        .filter(sms_factors::phone.eq(phone))
        .filter(sms_factors::active.eq(true))
        .filter(sms_factors::user_id.ne(user_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Opt-in by a user with an authenticator, without one of its codes.
pub const AUTHENTICATOR_CODE_REQUIRED: &str =
    "This account has an authenticator app: send one of its codes as Otp to add a mobile number.";
/// Opt-in by a user whose second factor is email.
pub const EMAIL_FACTOR_ON: &str =
    "This account has two-factor authentication by email: turn it off before adding a mobile number.";
/// A mobile number that does not parse as a valid number.
pub const INVALID_MOBILE: &str = "the mobile number is not valid";
pub const NUMBER_TAKEN: &str = "the mobile number is already used for two-factor authentication";

/// The outcome of [`Core::sms_login`].
#[derive(Debug, Clone)]
pub enum SmsLogin {
    /// Signed in (with a second factor when the user has one).
    Complete(Session),
    /// No code given: one was texted to the user's verified mobile.
    CodeSent,
    /// No code given and none is sent: the user's factor is an authenticator app.
    CodeRequired,
}

/// The outcome of [`Core::sms_opt_out`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOut {
    /// No code given: one was texted to the verified mobile; repeat with it.
    CodeSent,
    /// The SMS factor (or a pending opt-in) is gone.
    Removed,
}

/// Whether a code looks like an authenticator's (6 digits) rather than a texted one.
fn authenticator_shaped(code: &str) -> bool {
    let code = code.trim();
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

impl Core {
    /// Starts an SMS opt-in: stores `mobile` (normalised) as the user's pending SMS
    /// factor under a fresh provider id, and texts it a 7-digit `EnableSms` code
    /// rendered into `template`. Returns the provider id the verification must name.
    /// A failed send (or the send limit) leaves no pending opt-in behind.
    ///
    /// A user who already has an authenticator proves it with one of its codes
    /// (`proof`), so a stolen access token cannot add the thief's phone as a way around
    /// it; an email factor cannot be proven here, so its users are refused.
    pub async fn sms_opt_in(
        &self,
        origin: Origin,
        user_id: String,
        mobile: String,
        proof: Option<String>,
        template: Template,
    ) -> CoreResult<i64> {
        let phone = normalize_mobile(&mobile)?;
        let id = user_id.clone();
        let factors = self.run(move |_, conn| second_factors(conn, &id)).await?;
        if factors.totp {
            let code = proof
                .filter(|c| !c.trim().is_empty())
                .ok_or_else(|| CoreError::InvalidInput(AUTHENTICATOR_CODE_REQUIRED.into()))?;
            self.verify_totp(origin.clone(), user_id.clone(), code)
                .await?;
        } else if factors.email {
            return Err(CoreError::InvalidInput(EMAIL_FACTOR_ON.into()));
        }
        let id = user_id.clone();
        let audit_origin = origin.clone();
        let provider_user_id = self
            .run(move |inner, conn| {
                // A positive .NET `int`, unique among SMS factors.
                let draw = || {
                    let b = random_bytes(inner.rng(), 4);
                    (i64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff)).max(1)
                };
                write_tx(conn, |conn| {
                    // A double submit replaces the pending number in turn, rather than
                    // colliding on the user's one row as if another user held the number.
                    lock_user(conn, &id)?;
                    let user = live_user(conn, &id)?;
                    if sms_factor_active(conn, &user.id)? {
                        return Err(CoreError::AlreadyBound);
                    }
                    if number_taken(conn, &phone, &user.id)? {
                        return Err(CoreError::InvalidInput(NUMBER_TAKEN.into()));
                    }
                    let mut provider_user_id = draw();
                    while sms_factors::table
                        .filter(sms_factors::provider_user_id.eq(provider_user_id))
                        .count()
                        .get_result::<i64>(conn)?
                        > 0
                    {
                        provider_user_id = draw();
                    }
                    delete_sms_factor(conn, &user.id)?;
                    diesel::insert_into(sms_factors::table)
                        .values((
                            sms_factors::user_id.eq(&user.id),
                            sms_factors::phone.eq(&phone),
                            sms_factors::provider_user_id.eq(provider_user_id),
                            sms_factors::active.eq(false),
                            sms_factors::created_at.eq(inner.now()),
                        ))
                        .execute(conn)?;
                    audit::record(
                        inner,
                        conn,
                        &origin,
                        "sms_2fa.opt_in_started",
                        Some((&user.id, &user.username)),
                        None,
                    )?;
                    Ok(provider_user_id)
                })
            })
            .await?;
        let sent = self
            .send_code(
                audit_origin,
                user_id.clone(),
                CodePurpose::EnableSms,
                SMS_CODE,
                Channel::Sms,
                template,
            )
            .await;
        if let Err(e) = sent {
            // No half-done opt-in: the pending number goes with the undelivered code.
            self.run(move |_, conn| {
                diesel::delete(
                    sms_factors::table
                        .filter(sms_factors::user_id.eq(&user_id))
                        .filter(sms_factors::provider_user_id.eq(provider_user_id))
                        .filter(sms_factors::active.eq(false)),
                )
                .execute(conn)?;
                Ok(())
            })
            .await?;
            return Err(e);
        }
        Ok(provider_user_id)
    }

    /// Completes an SMS opt-in with the provider id it answered and the texted code:
    /// the SMS factor becomes active and the number the user's confirmed phone. A
    /// mismatched provider id is refused like a wrong code.
    pub async fn sms_verify_opt_in(
        &self,
        origin: Origin,
        user_id: String,
        provider_user_id: i64,
        code: String,
    ) -> CoreResult<()> {
        self.run(move |inner, conn| {
            let user = live_user(conn, &user_id)?;
            let pending = match sms_factor(conn, &user.id)? {
                Some(f) if f.active => return Err(CoreError::AlreadyBound),
                Some(f) if f.provider_user_id == provider_user_id => f,
                _ => {
                    crate::challenges::record_code_failure(
                        inner,
                        conn,
                        &origin,
                        &user,
                        "unknown provider user id",
                    )?;
                    return Err(CoreError::IncorrectCode);
                }
            };
            redeem(
                inner,
                conn,
                &origin,
                &user,
                CodePurpose::EnableSms,
                &code,
                |conn| {
                    if number_taken(conn, &pending.phone, &user.id)? {
                        return Err(CoreError::InvalidInput(NUMBER_TAKEN.into()));
                    }
                    let activated = diesel::update(
                        sms_factors::table
                            .filter(sms_factors::user_id.eq(&user.id))
                            .filter(sms_factors::provider_user_id.eq(provider_user_id))
                            .filter(sms_factors::active.eq(false)),
                    )
                    .set((
                        sms_factors::active.eq(true),
                        sms_factors::activated_at.eq(inner.now()),
                    ))
                    .execute(conn)
                    .map_err(|e| match CoreError::from(e) {
                        // A concurrent verification of the same number by another user.
                        CoreError::UserExists => CoreError::InvalidInput(NUMBER_TAKEN.into()),
                        other => other,
                    })?;
                    if activated != 1 {
                        return Err(CoreError::IncorrectCode);
                    }
                    diesel::update(users::table.find(&user.id))
                        .set((
                            users::phone.eq(&pending.phone),
                            users::phone_confirmed.eq(true),
                        ))
                        .execute(conn)?;
                    audit::record(
                        inner,
                        conn,
                        &origin,
                        "sms_2fa.enabled",
                        Some((&user.id, &user.username)),
                        None,
                    )
                },
            )
        })
        .await
    }

    /// Turns the SMS factor off. Without a code a fresh `DisableTwoFactor` code is
    /// texted to the verified number (`CodeSent`); with one, it must be that texted
    /// code or a code of the user's authenticator. A pending opt-in is simply dropped.
    pub async fn sms_opt_out(
        &self,
        origin: Origin,
        user_id: String,
        code: Option<String>,
        template: Template,
    ) -> CoreResult<OptOut> {
        let id = user_id.clone();
        let (active, totp) = self
            .run(move |_, conn| {
                let user = live_user(conn, &id)?;
                let factor = sms_factor(conn, &user.id)?;
                match factor {
                    None => Err(CoreError::NoSecondFactor),
                    Some(f) if !f.active => {
                        delete_sms_factor(conn, &user.id)?;
                        Ok((false, false))
                    }
                    Some(_) => Ok((true, second_factors(conn, &user.id)?.totp)),
                }
            })
            .await?;
        if !active {
            return Ok(OptOut::Removed);
        }
        let code = match code.filter(|c| !c.trim().is_empty()) {
            None => {
                self.send_code(
                    origin,
                    user_id,
                    CodePurpose::DisableTwoFactor,
                    SMS_CODE,
                    Channel::Sms,
                    template,
                )
                .await?;
                return Ok(OptOut::CodeSent);
            }
            Some(code) => code,
        };
        let by_authenticator = totp && authenticator_shaped(&code);
        if by_authenticator {
            self.verify_totp(origin.clone(), user_id.clone(), code.clone())
                .await?;
        }
        self.run(move |inner, conn| {
            let user = live_user(conn, &user_id)?;
            let remove = |conn: &mut DbConnection| {
                let removed = diesel::delete(
                    sms_factors::table
                        .filter(sms_factors::user_id.eq(&user.id))
                        .filter(sms_factors::active.eq(true)),
                )
                .execute(conn)?;
                if removed != 1 {
                    return Err(CoreError::NoSecondFactor);
                }
                // Outstanding texted codes die with the factor.
                diesel::update(
                    one_time_codes::table
                        .filter(one_time_codes::user_id.eq(&user.id))
                        .filter(one_time_codes::channel.eq(Channel::Sms.as_str()))
                        .filter(one_time_codes::used.eq(false)),
                )
                .set(one_time_codes::used.eq(true))
                .execute(conn)?;
                audit::record(
                    inner,
                    conn,
                    &origin,
                    "sms_2fa.disabled",
                    Some((&user.id, &user.username)),
                    Some(if by_authenticator {
                        "authenticator code"
                    } else {
                        "texted code"
                    }),
                )?;
                Ok(OptOut::Removed)
            };
            if by_authenticator {
                write_tx(conn, remove)
            } else {
                redeem(
                    inner,
                    conn,
                    &origin,
                    &user,
                    CodePurpose::DisableTwoFactor,
                    &code,
                    remove,
                )
            }
        })
        .await
    }

    /// Password login that carries an optional second-factor code (Saasu's
    /// `token-2fa`). The password is checked first. Then:
    /// - no second factor: signed in;
    /// - an active SMS factor and no code: a 7-digit `SmsLogin` code is texted;
    /// - an authenticator and no code (no SMS factor): `CodeRequired`, nothing sent;
    /// - a code: an authenticator code (6 digits) when the user has an authenticator,
    ///   else the texted login code; either single use and lockout-limited;
    /// - only an email factor: `NoSecondFactor` (this login cannot carry its codes).
    pub async fn sms_login(
        &self,
        origin: Origin,
        username: String,
        password: Password,
        code: Option<String>,
        template: Template,
    ) -> CoreResult<SmsLogin> {
        let (user, factors) = match self.sign_in(origin.clone(), username, password).await? {
            SignIn::Complete(session) => return Ok(SmsLogin::Complete(session)),
            SignIn::SecondFactorRequired { user, factors } => (user, factors),
        };
        let code = code.filter(|c| !c.trim().is_empty());
        if !factors.sms && !factors.totp {
            return Err(CoreError::NoSecondFactor);
        }
        let code = match code {
            None if factors.sms => {
                self.send_code(
                    origin,
                    user.id,
                    CodePurpose::SmsLogin,
                    SMS_CODE,
                    Channel::Sms,
                    template,
                )
                .await?;
                return Ok(SmsLogin::CodeSent);
            }
            None => return Ok(SmsLogin::CodeRequired),
            Some(code) => code,
        };
        if factors.totp && (authenticator_shaped(&code) || !factors.sms) {
            self.verify_totp(origin.clone(), user.id.clone(), code)
                .await?;
            let session = self
                .run(move |inner, conn| {
                    write_tx(conn, |conn| {
                        sessions::create(inner, conn, &origin, user, true)
                    })
                })
                .await?;
            return Ok(SmsLogin::Complete(session));
        }
        self.run(move |inner, conn| {
            let row = live_user(conn, &user.id)?;
            redeem(
                inner,
                conn,
                &origin,
                &row,
                CodePurpose::SmsLogin,
                &code,
                |conn| {
                    if !sms_factor_active(conn, &row.id)? {
                        return Err(CoreError::NoSecondFactor);
                    }
                    sessions::create(inner, conn, &origin, user.clone(), true)
                },
            )
        })
        .await
        .map(SmsLogin::Complete)
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_mobile;

    #[test]
    fn mobile_numbers_normalise() {
        assert_eq!(normalize_mobile("0499999999").unwrap(), "+61499999999");
        assert_eq!(normalize_mobile("0412 345 678").unwrap(), "+61412345678");
        assert_eq!(normalize_mobile("+61 412 345 678").unwrap(), "+61412345678");
        assert_eq!(normalize_mobile("+14155552671").unwrap(), "+14155552671");
        for bad in [
            "",
            "abc",
            "04",
            "+99912",
            "0412345678901234567890123456789012345",
        ] {
            assert!(normalize_mobile(bad).is_err(), "{bad}");
        }
    }
}

//! The SMS factor: a verified mobile number that receives a one-time code at every
//! login. Opting in stores the number pending and texts a code (purpose `EnableSms`);
//! the code makes the factor active. An active number serves one user only. Codes
//! follow `codes.rs` (hashed, 10 minutes, 5 tries, single use, send limits, the shared
//! code lockout); only their length (7 digits) is chosen here.
//!
//! Turning the factor off needs a fresh proof beyond the session: a code texted for
//! that purpose, or a code of the user's authenticator.

use diesel::prelude::*;

use super::totp::{self, FactorState};
use crate::audit;
use crate::codes::{self, redeem, CodeFormat, CodePurpose, Destination, Send};
use crate::db::schema::{one_time_codes, sms_factors, users};
use crate::db::{write_tx, DbConnection};
use crate::delivery::{Channel, Template};
use crate::lockout::{self, Attempt};
use crate::metrics::{self, Factor, Outcome};
use crate::random::random_bytes;
use crate::users::{live_user, lock_user, UserRow};
use crate::{Core, CoreError, CoreResult, Inner, Origin};

/// SMS codes are 7 digits (Saasu's "7-digit security code").
pub const SMS_CODE: CodeFormat = CodeFormat::Digits(7);

/// The number's E.164 form. Accepts international numbers (`+61 499 999 999`) and
/// Australian national ones (`0499999999`); anything that is not a valid number for its
/// region is refused.
pub fn normalize_mobile(input: &str) -> CoreResult<String> {
    let invalid = || CoreError::InvalidPhoneNumber;
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

pub(crate) fn active(conn: &mut DbConnection, user_id: &str) -> CoreResult<bool> {
    let n: i64 = sms_factors::table
        .filter(sms_factors::user_id.eq(user_id))
        .filter(sms_factors::active.eq(true))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub(crate) fn delete(conn: &mut DbConnection, user_id: &str) -> CoreResult<()> {
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

/// The number of the user's SMS factor, pending (opt-in) or active: where texts go.
fn phone_of(conn: &mut DbConnection, user: &UserRow) -> CoreResult<Option<String>> {
    Ok(sms_factors::table
        .find(&user.id)
        .select(sms_factors::phone)
        .get_result(conn)
        .optional()?)
}

/// Texts the user a fresh 7-digit code of `purpose` (see `codes::send`).
pub(crate) async fn text_code(
    core: &Core,
    origin: Origin,
    user_id: String,
    purpose: CodePurpose,
    template: Template,
) -> CoreResult<()> {
    let destination: Destination = phone_of;
    let (format, channel) = (SMS_CODE, Channel::Sms);
    let send = Send {
        purpose,
        format,
        channel,
        destination,
        template,
    };
    codes::send(core, origin, user_id, send).await
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
pub(crate) fn authenticator_shaped(code: &str) -> bool {
    let code = code.trim();
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

/// A positive .NET `int`, unique among SMS factors: Saasu's ProviderUserId.
fn draw_provider_user_id(inner: &Inner, conn: &mut DbConnection) -> CoreResult<i64> {
    loop {
        let b = random_bytes(inner.rng(), 4);
        let id = (i64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff)).max(1);
        let taken: i64 = sms_factors::table
            .filter(sms_factors::provider_user_id.eq(id))
            .count()
            .get_result(conn)?;
        if taken == 0 {
            return Ok(id);
        }
    }
}

/// Stores `phone` as the user's pending SMS factor (replacing an earlier pending one)
/// and returns its provider id.
fn store_pending(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    user_id: &str,
    phone: &str,
) -> CoreResult<i64> {
    write_tx(conn, |conn| {
        // A double submit replaces the pending number in turn, rather than colliding on
        // the user's one row as if another user held the number.
        lock_user(conn, user_id)?;
        let user = live_user(conn, user_id)?;
        if active(conn, &user.id)? {
            return Err(CoreError::AlreadyBound);
        }
        if number_taken(conn, phone, &user.id)? {
            return Err(CoreError::PhoneNumberTaken);
        }
        let provider_user_id = draw_provider_user_id(inner, conn)?;
        delete(conn, &user.id)?;
        diesel::insert_into(sms_factors::table)
            .values((
                sms_factors::user_id.eq(&user.id),
                sms_factors::phone.eq(phone),
                sms_factors::provider_user_id.eq(provider_user_id),
                sms_factors::active.eq(false),
                sms_factors::created_at.eq(inner.now()),
            ))
            .execute(conn)?;
        audit::record(inner, conn, origin, "sms_2fa.opt_in_started", &user, None)?;
        Ok(provider_user_id)
    })
}

/// Makes the pending factor with `provider_user_id` active and its number the user's
/// confirmed phone (after its code matched).
fn activate(
    inner: &Inner,
    conn: &mut DbConnection,
    user: &UserRow,
    phone: &str,
    provider_user_id: i64,
) -> CoreResult<()> {
    if number_taken(conn, phone, &user.id)? {
        return Err(CoreError::PhoneNumberTaken);
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
        CoreError::Conflict => CoreError::PhoneNumberTaken,
        other => other,
    })?;
    if activated != 1 {
        return Err(CoreError::IncorrectCode);
    }
    diesel::update(users::table.find(&user.id))
        .set((users::phone.eq(phone), users::phone_confirmed.eq(true)))
        .execute(conn)?;
    Ok(())
}

/// Removes the active SMS factor and voids the codes texted for it.
fn remove_active(conn: &mut DbConnection, user_id: &str) -> CoreResult<()> {
    let removed = diesel::delete(
        sms_factors::table
            .filter(sms_factors::user_id.eq(user_id))
            .filter(sms_factors::active.eq(true)),
    )
    .execute(conn)?;
    if removed != 1 {
        return Err(CoreError::NoSecondFactor);
    }
    diesel::update(
        one_time_codes::table
            .filter(one_time_codes::user_id.eq(user_id))
            .filter(one_time_codes::channel.eq(Channel::Sms.as_str()))
            .filter(one_time_codes::used.eq(false)),
    )
    .set(one_time_codes::used.eq(true))
    .execute(conn)?;
    Ok(())
}

impl Core {
    /// Starts an SMS opt-in: stores `mobile` (normalised) as the user's pending SMS
    /// factor under a fresh provider id, and texts it a 7-digit `EnableSms` code
    /// rendered into `template`. Returns the provider id the verification must name.
    /// A failed send (or the send limit) leaves no pending opt-in behind.
    ///
    /// A user who already has an authenticator proves it with one of its codes
    /// (`proof`, else `ProofRequired`), so a stolen access token cannot add the thief's
    /// phone as a way around it; an email factor cannot be proven here, so its users
    /// are refused (`OtherFactorActive`).
    pub async fn sms_opt_in(
        &self,
        origin: Origin,
        user_id: String,
        mobile: String,
        proof: Option<String>,
        template: Template,
    ) -> CoreResult<i64> {
        let phone = normalize_mobile(&mobile)?;
        let factors = self.second_factors(user_id.clone()).await?;
        if factors.totp {
            let code = proof
                .filter(|c| !c.trim().is_empty())
                .ok_or(CoreError::ProofRequired)?;
            self.verify_totp(origin.clone(), user_id.clone(), code)
                .await?;
        } else if factors.email {
            return Err(CoreError::OtherFactorActive);
        }
        let (id, o) = (user_id.clone(), origin.clone());
        let provider_user_id = self
            .run(move |inner, conn| store_pending(inner, conn, &o, &id, &phone))
            .await?;
        let purpose = CodePurpose::EnableSms;
        if let Err(e) = text_code(self, origin, user_id.clone(), purpose, template).await {
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
    /// mismatched provider id is refused (and counted) like a wrong code.
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
                    let unknown = |_: &mut DbConnection| {
                        metrics::verification(&origin, Factor::Sms, Outcome::Wrong);
                        Ok(Attempt::<()>::Rejected("unknown provider user id"))
                    };
                    let who = (user.subject(), Factor::Sms);
                    return lockout::code_attempt(inner, conn, &origin, who, unknown);
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
                    activate(inner, conn, &user, &pending.phone, provider_user_id)?;
                    audit::record(inner, conn, &origin, "sms_2fa.enabled", &user, None)
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
        let totp = self
            .run(move |_, conn| {
                let user = live_user(conn, &id)?;
                match sms_factor(conn, &user.id)? {
                    None => Err(CoreError::NoSecondFactor),
                    Some(f) if !f.active => delete(conn, &user.id).map(|()| None),
                    Some(_) => Ok(Some(totp::state(conn, &user.id)? == FactorState::Active)),
                }
            })
            .await?;
        let Some(totp) = totp else {
            return Ok(OptOut::Removed);
        };
        let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
            let purpose = CodePurpose::DisableTwoFactor;
            text_code(self, origin, user_id, purpose, template).await?;
            return Ok(OptOut::CodeSent);
        };
        let by_authenticator = totp && authenticator_shaped(&code);
        if by_authenticator {
            self.verify_totp(origin.clone(), user_id.clone(), code.clone())
                .await?;
        }
        self.run(move |inner, conn| {
            let user = live_user(conn, &user_id)?;
            let how = if by_authenticator {
                "authenticator code"
            } else {
                "texted code"
            };
            let remove = |conn: &mut DbConnection| {
                remove_active(conn, &user.id)?;
                audit::record(inner, conn, &origin, "sms_2fa.disabled", &user, Some(how))?;
                Ok(OptOut::Removed)
            };
            match by_authenticator {
                true => write_tx(conn, remove),
                false => redeem(
                    inner,
                    conn,
                    &origin,
                    &user,
                    CodePurpose::DisableTwoFactor,
                    &code,
                    remove,
                ),
            }
        })
        .await
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

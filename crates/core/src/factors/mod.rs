//! The one view of a user's second factors: which they have, what a login must pass,
//! and removing them all. Factors belong to the user, not to a dialect; every login
//! path asks [`Factors::login_needs`], so no dialect is a bypass.
//!
//! One file per factor: `totp` (the authenticator app), `email` and `sms` (codes sent
//! by `codes.rs`).

pub mod email;
pub mod sms;
pub mod totp;

pub use totp::FactorState;

use crate::codes;
use crate::db::DbConnection;
use crate::{Core, CoreError, CoreResult};

/// The second factors a user has turned on (active ones only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Factors {
    /// An authenticator app (TOTP).
    pub totp: bool,
    /// Codes by email.
    pub email: bool,
    /// Codes by SMS to a verified mobile number.
    pub sms: bool,
}

/// The kinds of code a login can carry to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Carries {
    pub(crate) totp: bool,
    pub(crate) sms: bool,
}

/// What a login must pass after the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    /// No second factor: the password suffices.
    Nothing,
    /// A code of a factor the login carries.
    Code,
}

impl Factors {
    pub(crate) fn load(conn: &mut DbConnection, user_id: &str) -> CoreResult<Factors> {
        Ok(Factors {
            totp: totp::state(conn, user_id)? == FactorState::Active,
            email: email::enabled(conn, user_id)?,
            sms: sms::active(conn, user_id)?,
        })
    }

    pub fn any(self) -> bool {
        self.totp || self.email || self.sms
    }

    /// The rule every login path shares: a user without factors passes on the password;
    /// a user with a factor the login carries needs its code; a user whose factors this
    /// login cannot carry is refused (`NoSecondFactor`), never let in on the password.
    pub(crate) fn login_needs(self, carries: Carries) -> CoreResult<Needs> {
        match (
            self.any(),
            (self.totp && carries.totp) || (self.sms && carries.sms),
        ) {
            (false, _) => Ok(Needs::Nothing),
            (true, true) => Ok(Needs::Code),
            (true, false) => Err(CoreError::NoSecondFactor),
        }
    }
}

/// Removes every factor of the user, pending or active (their challenges go with the
/// TOTP factor), and voids every unused code sent to them.
pub(crate) fn remove_all(conn: &mut DbConnection, user_id: &str) -> CoreResult<()> {
    totp::delete(conn, user_id)?;
    email::delete(conn, user_id)?;
    sms::delete(conn, user_id)?;
    codes::void_all(conn, user_id)
}

impl Core {
    /// The second factors the user has turned on.
    pub async fn second_factors(&self, user_id: String) -> CoreResult<Factors> {
        self.run(move |_, conn| Factors::load(conn, &user_id)).await
    }
}

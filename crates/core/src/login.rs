//! Every way to log in, each on the password step (`Core::authenticate`) and the one
//! factor rule (`Factors::login_needs`): a password alone never gives a session to a
//! user with a second factor, whatever the dialect. The variants differ only in how the
//! second factor arrives:
//! - `sign_in` / `first_factor`: the password only; a second factor follows elsewhere;
//! - `password_login`: an authenticator user gets a login challenge (`challenges.rs`);
//! - `login_with_code`: the authenticator code comes with the password (ZStack);
//! - `sms_login`: a texted or authenticator code comes with the password (Saasu);
//! - `login_with_emailed_code` / `login_with_totp`: the second step of a two-step login
//!   whose password step was `first_factor` (AuthEndpoints).

use crate::audit;
use crate::challenges::{self, LOGIN};
use crate::codes::{self, claim_all, redeem, take_try, CodePurpose};
use crate::db::write_tx;
use crate::delivery::Template;
use crate::factors::totp::{self, FactorRow};
use crate::factors::{self, sms, Carries, Factors, Needs};
use crate::lockout::Attempt;
use crate::metrics::{Factor, Outcome};
use crate::passwords::Password;
use crate::tokens::sessions::{self, Session};
use crate::users::{find_by_id, live_user, LoginName};
use crate::{Core, CoreError, CoreResult, Origin, User};

/// The result of [`Core::sign_in`].
#[derive(Debug, Clone)]
pub enum SignIn {
    /// No second factor: signed in.
    Complete(Session),
    /// The password was right; a second factor must follow.
    SecondFactorRequired { user: User, factors: Factors },
}

/// The result of [`Core::password_login`].
#[derive(Debug, Clone)]
pub enum LoginStep {
    /// No second factor: signed in.
    Complete(Session),
    /// A second factor is needed: answer this login challenge.
    SecondFactor { user: User, challenge_id: String },
}

/// The result of [`Core::login_with_code`].
#[derive(Debug, Clone)]
pub enum CodeLogin {
    Complete(Session),
    /// Password right, but a code is needed and none was sent.
    CodeRequired {
        user: User,
    },
}

/// The result of [`Core::sms_login`].
#[derive(Debug, Clone)]
pub enum SmsLogin {
    /// Signed in (with a second factor when the user has one).
    Complete(Session),
    /// No code given: one was texted to the user's verified mobile.
    CodeSent,
    /// No code given and none is sent: the user's factor is an authenticator app.
    CodeRequired,
}

const AUTHENTICATOR: Carries = Carries {
    totp: true,
    sms: false,
};

/// Codes one pending authenticator login takes before it dies.
pub const PENDING_LOGIN_TRIES: i32 = 5;

impl Core {
    /// Password sign-in for dialects whose login answers with tokens or with "second
    /// factor required". Whatever the dialect, a user with any second factor gets no
    /// session here.
    pub async fn sign_in(
        &self,
        origin: Origin,
        username: impl Into<LoginName>,
        password: Password,
    ) -> CoreResult<SignIn> {
        let user = self.authenticate(&origin, username, password).await?;
        self.run(move |inner, conn| {
            let factors = Factors::load(conn, &user.id)?;
            if factors.any() {
                return Ok(SignIn::SecondFactorRequired { user, factors });
            }
            let session = write_tx(conn, |conn| {
                sessions::create(inner, conn, &origin, user, false)
            })?;
            Ok(SignIn::Complete(session))
        })
        .await
    }

    /// Checks the password only (under its brute-force limit), for a login whose second
    /// step follows in another request. Opens no session.
    pub async fn first_factor(
        &self,
        origin: Origin,
        username: String,
        password: Password,
    ) -> CoreResult<(User, Factors)> {
        let user = self.authenticate(&origin, &username, password).await?;
        let factors = self.second_factors(user.id.clone()).await?;
        Ok((user, factors))
    }

    /// Password login that answers an authenticator user with a login challenge. A user
    /// whose factors this login cannot carry (email, SMS) is refused.
    pub async fn password_login(
        &self,
        origin: Origin,
        username: String,
        password: Password,
        service: Option<String>,
    ) -> CoreResult<LoginStep> {
        let user = self.authenticate(&origin, &username, password).await?;
        self.run(move |inner, conn| {
            let needs = Factors::load(conn, &user.id)?.login_needs(AUTHENTICATOR)?;
            write_tx(conn, |conn| match (needs, totp::active(conn, &user.id)?) {
                (Needs::Code, Some(factor)) => {
                    let ids = (LOGIN, user.id.as_str(), factor.id.as_str());
                    let challenge_id =
                        challenges::insert(inner, conn, &origin, ids, service.as_deref())?;
                    Ok(LoginStep::SecondFactor { user, challenge_id })
                }
                _ => Ok(LoginStep::Complete(sessions::create(
                    inner, conn, &origin, user, false,
                )?)),
            })
        })
        .await
    }

    /// Password login with the authenticator code sent alongside (ZStack). The password
    /// is checked first, so an unauthenticated caller learns nothing about the user's
    /// factor and cannot spend the user's code attempts. Then:
    /// - an active factor always needs a code; factors this login cannot carry refuse;
    /// - `code_required` (a dialect-wide switch) demands one from everybody, and
    ///   `NoSecondFactor` when the user has no factor at all;
    /// - a code for a pending factor confirms it (binding at first login).
    ///
    /// The session is an opaque-token session of `ttl` seconds.
    pub async fn login_with_code(
        &self,
        origin: Origin,
        username: String,
        password: Password,
        code: Option<String>,
        code_required: bool,
        ttl: i64,
    ) -> CoreResult<CodeLogin> {
        let user = self.authenticate(&origin, &username, password).await?;
        self.run(move |inner, conn| {
            let row = live_user(conn, &user.id)?;
            let needs = Factors::load(conn, &row.id)?.login_needs(AUTHENTICATOR)?;
            let factor: Option<FactorRow> = totp::factor_of(conn, &row.id)?;
            let (code, factor) = match (code, factor) {
                (None, _) if code_required || needs == Needs::Code => {
                    return Ok(CodeLogin::CodeRequired { user })
                }
                (Some(_), None) if code_required => return Err(CoreError::NoSecondFactor),
                (Some(code), Some(factor)) => (code, factor),
                // No code needed, or a code for a user without any factor: password only.
                _ => {
                    let session = write_tx(conn, |conn| {
                        sessions::create_opaque(inner, conn, &origin, user, false, ttl)
                    })?;
                    return Ok(CodeLogin::Complete(session));
                }
            };
            let use_ = (!factor.active, "with login");
            totp::verify(
                inner,
                conn,
                &origin,
                &row,
                &factor.sealed(),
                &code,
                use_,
                |conn| sessions::create_opaque(inner, conn, &origin, user.clone(), true, ttl),
            )
            .map(CodeLogin::Complete)
        })
        .await
    }

    /// Password login that carries an optional second-factor code (Saasu). The password
    /// is checked first. Then:
    /// - no second factor: signed in;
    /// - an active SMS factor and no code: a 7-digit `SmsLogin` code is texted;
    /// - an authenticator and no code (no SMS factor): `CodeRequired`, nothing sent;
    /// - a code: an authenticator code (6 digits) when the user has an authenticator,
    ///   else the texted login code; either single use and lockout-limited;
    /// - only an email factor: `NoSecondFactor` (this login cannot carry its codes).
    pub async fn sms_login(
        &self,
        origin: Origin,
        username: impl Into<LoginName>,
        password: Password,
        code: Option<String>,
        template: Template,
    ) -> CoreResult<SmsLogin> {
        let (user, factors) = match self.sign_in(origin.clone(), username, password).await? {
            SignIn::Complete(session) => return Ok(SmsLogin::Complete(session)),
            SignIn::SecondFactorRequired { user, factors } => (user, factors),
        };
        factors.login_needs(Carries {
            totp: true,
            sms: true,
        })?;
        let code = match code.filter(|c| !c.trim().is_empty()) {
            None if factors.sms => {
                sms::text_code(self, origin, user.id, CodePurpose::SmsLogin, template).await?;
                return Ok(SmsLogin::CodeSent);
            }
            None => return Ok(SmsLogin::CodeRequired),
            Some(code) => code,
        };
        let by_authenticator = factors.totp && (sms::authenticator_shaped(&code) || !factors.sms);
        self.run(move |inner, conn| {
            let row = live_user(conn, &user.id)?;
            let session = |conn: &mut _| sessions::create(inner, conn, &origin, user.clone(), true);
            if by_authenticator {
                let factor = totp::active(conn, &row.id)?.ok_or(CoreError::NoSecondFactor)?;
                let use_ = (false, "with login");
                return totp::verify(inner, conn, &origin, &row, &factor, &code, use_, session);
            }
            redeem(
                inner,
                conn,
                &origin,
                &row,
                CodePurpose::SmsLogin,
                &code,
                |conn| {
                    if !sms::active(conn, &row.id)? {
                        return Err(CoreError::NoSecondFactor);
                    }
                    session(conn)
                },
            )
        })
        .await
        .map(SmsLogin::Complete)
    }

    /// Records that the user passed a login's password step, so that
    /// `login_with_totp` may complete it within [`CodePurpose::ttl`]. Nothing is sent.
    pub async fn begin_authenticator_login(
        &self,
        origin: Origin,
        user_id: String,
    ) -> CoreResult<()> {
        self.run(move |inner, conn| {
            write_tx(conn, |conn| {
                let user = find_by_id(conn, &user_id)?.ok_or(CoreError::UserNotFound)?;
                let purpose = CodePurpose::AuthenticatorLogin;
                codes::insert_unsent(inner, conn, &origin, &user, purpose)?;
                audit::record(
                    inner,
                    conn,
                    &origin,
                    "login.awaiting_authenticator",
                    &user,
                    None,
                )
            })
        })
        .await
    }

    /// Completes a login begun with `begin_authenticator_login` (so the password was
    /// checked) with an authenticator code, single use. The step is keyed only by the
    /// user (AuthEndpoints' confirm carries just an email), so anyone may send guesses:
    /// they count against the pending login, which dies after [`PENDING_LOGIN_TRIES`],
    /// never against the user's lockout; and no pending login answers as a wrong code.
    pub async fn login_with_totp(
        &self,
        origin: Origin,
        user_id: String,
        code: String,
    ) -> CoreResult<Session> {
        self.run(move |inner, conn| {
            let user = live_user(conn, &user_id)?;
            let purpose = CodePurpose::AuthenticatorLogin;
            // The try is taken, and committed, before the code is looked at.
            if !take_try(inner, conn, &user.id, purpose, PENDING_LOGIN_TRIES)? {
                let why = Some("no pending login");
                crate::metrics::verification(&origin, Factor::Totp, Outcome::Wrong);
                audit::record(inner, conn, &origin, "code.rejected", &user, why)?;
                return Err(CoreError::IncorrectCode);
            }
            let factor = totp::active(conn, &user.id)?.ok_or(CoreError::IncorrectCode)?;
            let attempt = totp::check(
                inner,
                conn,
                &origin,
                &user,
                &factor,
                &code,
                (false, "direct"),
                |conn| {
                    if !claim_all(inner, conn, &user.id, purpose)? {
                        return Err(CoreError::IncorrectCode);
                    }
                    sessions::create(inner, conn, &origin, user.clone().into(), true)
                },
            )?;
            match attempt {
                Attempt::Accepted(session) => Ok(session),
                Attempt::Rejected(why) => {
                    audit::record(inner, conn, &origin, "code.rejected", &user, Some(why))?;
                    Err(CoreError::IncorrectCode)
                }
            }
        })
        .await
    }

    /// Completes a two-step login with an emailed code of purpose `Login`.
    pub async fn login_with_emailed_code(
        &self,
        origin: Origin,
        user_id: String,
        code: String,
    ) -> CoreResult<Session> {
        self.run(move |inner, conn| {
            let user = live_user(conn, &user_id)?;
            if !factors::email::enabled(conn, &user.id)? {
                return Err(CoreError::NoSecondFactor);
            }
            redeem(
                inner,
                conn,
                &origin,
                &user,
                CodePurpose::Login,
                &code,
                |conn| sessions::create(inner, conn, &origin, user.clone().into(), true),
            )
        })
        .await
    }
}

//! The AuthEndpoints dialect: madeyoga/AuthEndpoints v1.4.x (MVC) `/users/...` and
//! `/jwt/...` endpoints over twofa-core, with two-step verification by emailed codes.
//! Wire contract: shared/dialects/authendpoints.md (status codes and the five body
//! kinds of ASP.NET Core MVC), with replayable, unlimited, purpose-less codes and the
//! leaked password hash fixed.

pub mod error;
mod extract;
mod jwt;
mod tokens;
mod twostep;
mod users;
pub mod wire;

use actix_web::web;
use twofa_core::{Core, Template};
use twofa_web::openapi::BearerJwt;
use utoipa::OpenApi;

pub use tokens::NAME_CLAIM;

pub const DIALECT: &str = "authendpoints";

/// Settings of this dialect: TOML table `[authendpoints]`, flags `--authendpoints-*`.
/// The defaults are [`Default`]'s, shown in `--help` and the README.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct AuthEndpointsSettings {
    /// Path to mount the AuthEndpoints routes under instead of the root (`/users`, `/jwt`)
    #[arg(id = "authendpoints.prefix", long = "authendpoints-prefix",
        env = "TWOFA_AUTHENDPOINTS_PREFIX", default_value_t = AuthEndpointsSettings::default().prefix, global = true)]
    pub prefix: String,
    /// `iss` of AuthEndpoints JWTs
    #[arg(id = "authendpoints.jwt_issuer", long = "authendpoints-jwt-issuer",
        env = "TWOFA_AUTHENDPOINTS_JWT_ISSUER", default_value_t = AuthEndpointsSettings::default().jwt_issuer, global = true)]
    pub jwt_issuer: String,
    /// `aud` of AuthEndpoints JWTs
    #[arg(id = "authendpoints.jwt_audience", long = "authendpoints-jwt-audience",
        env = "TWOFA_AUTHENDPOINTS_JWT_AUDIENCE", default_value_t = AuthEndpointsSettings::default().jwt_audience, global = true)]
    pub jwt_audience: String,
    /// Seconds (reference: 120 min access, 2880 min refresh).
    #[arg(skip = AuthEndpointsSettings::default().access_token_ttl)]
    #[serde(skip)]
    pub access_token_ttl: i64,
    #[arg(skip = AuthEndpointsSettings::default().refresh_token_ttl)]
    #[serde(skip)]
    pub refresh_token_ttl: i64,
    /// Link in AuthEndpoints confirmation mails; `{uid}` and `{token}` are filled in
    #[arg(id = "authendpoints.email_confirmation_url", long = "authendpoints-email-confirmation-url",
        env = "TWOFA_AUTHENDPOINTS_EMAIL_CONFIRMATION_URL",
        default_value_t = AuthEndpointsSettings::default().email_confirmation_url, global = true)]
    pub email_confirmation_url: String,
    /// Link in AuthEndpoints password reset mails; `{uid}` and `{token}` are filled in
    #[arg(id = "authendpoints.password_reset_url", long = "authendpoints-password-reset-url",
        env = "TWOFA_AUTHENDPOINTS_PASSWORD_RESET_URL",
        default_value_t = AuthEndpointsSettings::default().password_reset_url, global = true)]
    pub password_reset_url: String,
    /// TOML file replacing AuthEndpoints mails: tables `enable_2fa`, `login` (with `{code}`), `confirm_email`, `reset_password` (with `{link}`), each with `subject` and `body` [default: the reference's wording]
    #[arg(
        id = "authendpoints.templates",
        long = "authendpoints-templates",
        env = "TWOFA_AUTHENDPOINTS_TEMPLATES",
        global = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub templates: Option<std::path::PathBuf>,
    /// Mail templates (`{code}`; `{link}` in the link mails), reference §2.6; the
    /// server fills them from `templates`.
    #[arg(skip = AuthEndpointsSettings::default().enable_2fa_mail)]
    #[serde(skip)]
    pub enable_2fa_mail: Template,
    #[arg(skip = AuthEndpointsSettings::default().login_mail)]
    #[serde(skip)]
    pub login_mail: Template,
    #[arg(skip = AuthEndpointsSettings::default().confirm_email_mail)]
    #[serde(skip)]
    pub confirm_email_mail: Template,
    #[arg(skip = AuthEndpointsSettings::default().reset_password_mail)]
    #[serde(skip)]
    pub reset_password_mail: Template,
    /// Whether `POST /users` creates accounts (`open`) or answers 403 (`closed`); accounts made here sign in on every mounted dialect [default: open when AuthEndpoints is the only dialect mounted, else closed]
    #[arg(
        id = "authendpoints.registration",
        long = "authendpoints-registration",
        env = "TWOFA_AUTHENDPOINTS_REGISTRATION",
        value_enum,
        global = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration: Option<Registration>,
    #[arg(skip = AuthEndpointsSettings::default().max_body_bytes)]
    #[serde(skip)]
    pub max_body_bytes: usize,
}

impl Default for AuthEndpointsSettings {
    fn default() -> Self {
        AuthEndpointsSettings {
            prefix: String::new(),
            jwt_issuer: "webapi".into(),
            jwt_audience: "webapi".into(),
            access_token_ttl: 120 * 60,
            refresh_token_ttl: 2880 * 60,
            email_confirmation_url: "http://localhost:8080/account/email/confirm/{uid}/{token}"
                .into(),
            password_reset_url: "http://localhost:8080/account/password/reset/{uid}/{token}"
                .into(),
            templates: None,
            enable_2fa_mail: Template::new(
                "Enabling two-factor authentication (2FA) on your user account",
                "You're receiving this email because you requested a 2 factor authentication for your user account\nPlease enter this code to finish enabling 2fa:\n\n{code}\n\nThanks for using our site!",
            ),
            login_mail: Template::new(
                "Login verification code",
                "We noticed you\u{2019}re trying to log in. Please enter this code to finish logging in:\n\n{code}\n\nThanks for using our site!",
            ),
            confirm_email_mail: Template::new(
                "Email Confirmation",
                "You're receiving this email because you registered an account on our site.\nPlease open this link to confirm your email address:\n\n{link}\n\nThanks for using our site!",
            ),
            reset_password_mail: Template::new(
                "Password Reset",
                "You're receiving this email because you requested a password reset for your user account.\nPlease open this link to choose a new password:\n\n{link}\n\nThanks for using our site!",
            ),
            registration: None,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// `authendpoints.registration`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// `POST /users` creates accounts, as AuthEndpoints does.
    Open,
    /// `POST /users` is refused.
    Closed,
}

impl AuthEndpointsSettings {
    /// Registration as set; unset (the dialect alone, as the product) it is open.
    pub fn registration_open(&self) -> bool {
        self.registration != Some(Registration::Closed)
    }
}

fn services(cfg: &mut web::ServiceConfig) {
    cfg.service(users::register)
        .service(users::me)
        .service(users::verify_email)
        .service(users::verify_email_confirm)
        .service(users::set_password)
        .service(users::reset_password)
        .service(users::reset_password_confirm)
        .service(users::delete_user)
        .service(twostep::enable)
        .service(twostep::enable_confirm)
        .service(twostep::login)
        .service(twostep::confirm)
        .service(jwt::create)
        .service(jwt::refresh)
        .service(jwt::verify);
}

/// Mounts the dialect's routes at `settings.prefix`.
pub fn configure(
    core: Core,
    settings: AuthEndpointsSettings,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let prefix = settings.prefix.trim_end_matches('/').to_string();
        let core = web::Data::new(core);
        let settings = web::Data::new(settings);
        if prefix.is_empty() {
            // Not an empty scope: it would answer 404 for every other dialect's path.
            cfg.app_data(core).app_data(settings).configure(services);
        } else {
            cfg.service(
                web::scope(&prefix)
                    .app_data(core)
                    .app_data(settings)
                    .configure(services),
            );
        }
    }
}

/// The OpenAPI document of this dialect.
#[derive(OpenApi)]
#[openapi(
    info(title = "twofa: AuthEndpoints dialect", description = "madeyoga/AuthEndpoints v1.4.x: two-step verification by email (and authenticator app), and the user and JWT endpoints it depends on."),
    paths(
        users::register,
        users::me,
        users::verify_email,
        users::verify_email_confirm,
        users::set_password,
        users::reset_password,
        users::reset_password_confirm,
        users::delete_user,
        twostep::enable,
        twostep::enable_confirm,
        twostep::login,
        twostep::confirm,
        jwt::create,
        jwt::refresh,
        jwt::verify,
    ),
    modifiers(&BearerJwt)
)]
pub struct AuthEndpointsApi;

//! The UCloud dialect: UCloud's `/auth/...` two-factor API over twofa-core.
//! Wire contract: shared/dialects/ucloud.md (the Kotlin service's status codes and
//! `{"why","errorCode"}` errors, with replay, reuse and brute force fixed).

mod admin;
pub mod error;
mod extract;
mod login;
mod tokens;
mod twofactor;
pub mod wire;

use actix_web::web;
use twofa_core::Core;
use twofa_web::openapi::BearerJwt;
use utoipa::OpenApi;

pub const DIALECT: &str = "ucloud";

/// Settings of this dialect: TOML table `[ucloud]`, flags `--ucloud-*`. The defaults
/// are [`Default`]'s, shown in `--help` and the README.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct UcloudSettings {
    /// Issuer shown in authenticator apps for UCloud enrollments
    #[arg(id = "ucloud.issuer", long = "ucloud-issuer", env = "TWOFA_UCLOUD_ISSUER",
        default_value_t = UcloudSettings::default().issuer, global = true)]
    pub issuer: String,
    /// Mark UCloud's refresh-token cookie `Secure` (set behind HTTPS)
    #[arg(id = "ucloud.secure_cookies", long = "secure-cookies", env = "TWOFA_SECURE_COOKIES",
        action = clap::ArgAction::Set, default_value_t = UcloudSettings::default().secure_cookies,
        global = true)]
    pub secure_cookies: bool,
    #[arg(skip = UcloudSettings::default().max_body_bytes)]
    #[serde(skip)]
    pub max_body_bytes: usize,
}

impl Default for UcloudSettings {
    fn default() -> Self {
        UcloudSettings {
            issuer: "UCloud".into(),
            secure_cookies: false,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Mounts the dialect's routes (at the root, as UCloud serves them).
pub fn configure(core: Core, settings: UcloudSettings) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(core))
            .app_data(web::Data::new(settings))
            .service(login::login)
            .service(twofactor::status)
            .service(twofactor::create_credentials)
            .service(twofactor::answer_challenge)
            .service(tokens::refresh)
            .service(tokens::refresh_web)
            .service(tokens::logout)
            .service(tokens::logout_web)
            .service(admin::reset_mfa);
    }
}

/// The OpenAPI document of this dialect.
#[derive(OpenApi)]
#[openapi(
    info(title = "twofa: UCloud dialect", description = "UCloud's two-factor authentication API (auth.twofactor) and the login calls it depends on."),
    paths(
        login::login,
        twofactor::status,
        twofactor::create_credentials,
        twofactor::answer_challenge,
        tokens::refresh,
        tokens::refresh_web,
        tokens::logout,
        tokens::logout_web,
        admin::reset_mfa,
    ),
    modifiers(&BearerJwt)
)]
pub struct UcloudApi;

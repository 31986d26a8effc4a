//! The ZStack dialect: ZStack Cloud's two-factor API family (`/zstack/v1/...`) and the
//! account login that carries `twofatoken::<code>`, over twofa-core.
//! Wire contract: shared/dialects/zstack.md (variant A/B inventories, 503 `{"error"}`
//! bodies, plain-text 400s), with replayable codes, missing brute-force limits and
//! re-disclosed secrets fixed.

mod config;
pub mod error;
mod extract;
mod jobs;
pub mod query;
mod sessions;
mod twofa;
pub mod wire;

use actix_web::{web, HttpRequest, HttpResponse};
use twofa_core::Core;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub const DIALECT: &str = "zstack";
/// Where the dialect is mounted.
pub const PREFIX: &str = "/zstack/v1";

/// Settings of this dialect: TOML table `[zstack]`, flags `--zstack-*`. The defaults
/// are [`Default`]'s, shown in `--help` and the README.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct ZstackSettings {
    /// Lifetime of ZStack sessions in seconds (ZStack's `identity/session.timeout`)
    #[arg(id = "zstack.session_timeout", long = "zstack-session-timeout",
        env = "TWOFA_ZSTACK_SESSION_TIMEOUT", default_value_t = ZstackSettings::default().session_timeout,
        value_parser = clap::value_parser!(i64).range(1..), global = true)]
    pub session_timeout: i64,
    /// ZStack's `twofa.enable` until an admin sets it through the API (then the database value holds)
    #[arg(id = "zstack.twofa_enable", long = "zstack-twofa-enable", env = "TWOFA_ZSTACK_TWOFA_ENABLE",
        action = clap::ArgAction::Set, default_value_t = ZstackSettings::default().twofa_enable,
        global = true)]
    pub twofa_enable: bool,
    #[arg(skip = ZstackSettings::default().max_body_bytes)]
    #[serde(skip)]
    pub max_body_bytes: usize,
}

impl Default for ZstackSettings {
    fn default() -> Self {
        ZstackSettings {
            session_timeout: 7200,
            twofa_enable: false,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// ZStack answers unmapped paths with 404 plain text.
async fn no_mapping(req: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain;charset=UTF-8")
        .body(format!("no api mapping to {}", req.path()))
}

/// ZStack maps `/twofactorauthentication/secrets` to a query (GET) and an action
/// (PUT) only; other methods fail in its dispatcher with a plain-text 500.
async fn no_creational_api() -> HttpResponse {
    HttpResponse::InternalServerError()
        .content_type("text/plain;charset=UTF-8")
        .body("No creational API found for the path[/v1/twofactorauthentication/secrets]")
}

/// Mounts the dialect's routes under `/zstack/v1`.
pub fn configure(core: Core, settings: ZstackSettings) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.service(
            web::scope(PREFIX)
                .app_data(web::Data::new(core))
                .app_data(web::Data::new(settings))
                .service(sessions::login)
                .service(sessions::logout)
                .service(sessions::procedures)
                .service(twofa::state)
                .service(twofa::get_secret)
                .service(twofa::query_secrets)
                .service(twofa::get_secret_by_uuid)
                .service(twofa::reset)
                .service(jobs::poll)
                .service(config::update_twofa_enable)
                .route(
                    "/twofactorauthentication/secrets",
                    web::post().to(no_creational_api),
                )
                .route(
                    "/twofactorauthentication/secrets",
                    web::delete().to(no_creational_api),
                )
                .default_service(web::to(no_mapping)),
        );
    }
}

struct OAuthHeader;

impl Modify for OAuthHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "oauth",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`OAuth <session uuid>` from `PUT /zstack/v1/accounts/login`",
            ))),
        );
    }
}

/// The OpenAPI document of this dialect.
#[derive(OpenApi)]
#[openapi(
    info(title = "twofa: ZStack dialect", description = "ZStack Cloud's two-factor authentication APIs (GetTwoFactorAuthenticationState/Secret, QueryTwoFactorAuthentication, ResetTwoFactorAuthenticationSecret), account login with `twofatoken::<code>`, async job polling and the `twofa.enable` global config. API-level errors are HTTP 503 `{\"error\":{\"code\",\"description\",\"details\"}}`; REST-layer errors are 400 plain text."),
    servers((url = "/zstack/v1")),
    paths(
        sessions::login,
        sessions::logout,
        sessions::procedures,
        twofa::state,
        twofa::get_secret,
        twofa::query_secrets,
        twofa::get_secret_by_uuid,
        twofa::reset,
        jobs::poll,
        config::update_twofa_enable,
    ),
    modifiers(&OAuthHeader)
)]
pub struct ZstackApi;

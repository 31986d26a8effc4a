//! The Saasu dialect: Saasu API v2's OAuth endpoints (`/authorisation/token`,
//! `token-2fa`, `refresh`, `ping`) and its SMS two-factor family (`/User/opt-in-to-2fa`,
//! `verify-2fa-opt-in`, `opt-out-from-2fa`) over twofa-core, in JSON and XML.
//! Wire contract: shared/dialects/saasu.md. As ASP.NET Web API routes them, paths match
//! case-insensitively and with a trailing slash, and query names case-insensitively.

pub mod error;
mod extract;
mod oauth;
mod tokens;
mod user;
pub mod wire;

use actix_web::http::{Method, StatusCode};
use actix_web::{guard, web, HttpRequest, HttpResponse};
use twofa_core::{Core, Template};
use twofa_web::non_blank;
use twofa_web::openapi::BearerJwt;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use error::ApiError;
use extract::{Ctx, Format};

pub const DIALECT: &str = "saasu";

/// Settings of this dialect: TOML table `[saasu]`, flags `--saasu-*`. The defaults are
/// [`Default`]'s, shown in `--help` and the README.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct SaasuSettings {
    /// Path to mount the Saasu routes under instead of the root (`/authorisation`, `/User`)
    #[arg(id = "saasu.prefix", long = "saasu-prefix", env = "TWOFA_SAASU_PREFIX",
        default_value_t = SaasuSettings::default().prefix, global = true)]
    pub prefix: String,
    /// Lifetime of Saasu access tokens, seconds
    #[arg(id = "saasu.access_token_ttl", long = "saasu-access-token-ttl",
        env = "TWOFA_SAASU_ACCESS_TOKEN_TTL", default_value_t = SaasuSettings::default().access_token_ttl,
        value_parser = clap::value_parser!(i64).range(1..), global = true)]
    pub access_token_ttl: i64,
    /// Scheme and host of Saasu's absolute `_links` hrefs, e.g. `https://api.example.com` [default: from the request: Host, or X-Forwarded-* behind a proxy]
    #[arg(id = "saasu.public_url", long = "saasu-public-url", env = "TWOFA_SAASU_PUBLIC_URL",
        value_parser = non_blank, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Texts (`{code}` is the 7-digit code).
    #[arg(skip = SaasuSettings::default().sms_opt_in)]
    #[serde(skip)]
    pub sms_opt_in: Template,
    #[arg(skip = SaasuSettings::default().sms_login)]
    #[serde(skip)]
    pub sms_login: Template,
    #[arg(skip = SaasuSettings::default().sms_opt_out)]
    #[serde(skip)]
    pub sms_opt_out: Template,
    #[arg(skip = SaasuSettings::default().max_body_bytes)]
    #[serde(skip)]
    pub max_body_bytes: usize,
}

impl Default for SaasuSettings {
    fn default() -> Self {
        let text = |body: &str| Template::new("", body);
        SaasuSettings {
            prefix: String::new(),
            access_token_ttl: 10800,
            public_url: None,
            sms_opt_in: text(
                "{code} is your security code to turn on two-factor authentication. It expires in 10 minutes.",
            ),
            sms_login: text("{code} is your security code to sign in. It expires in 10 minutes."),
            sms_opt_out: text(
                "{code} is your security code to turn off two-factor authentication. It expires in 10 minutes.",
            ),
            max_body_bytes: 64 * 1024,
        }
    }
}

/// The endpoints, found by path without regard to case or a trailing slash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Token,
    Token2fa,
    Refresh,
    Ping,
    OptIn,
    VerifyOptIn,
    OptOut,
}

impl Endpoint {
    fn find(prefix: &str, path: &str) -> Option<Endpoint> {
        let path = path.to_ascii_lowercase();
        let rest = path.strip_prefix(prefix)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        Endpoint::ALL.into_iter().find(|e| e.route() == rest)
    }

    const ALL: [Endpoint; 7] = [
        Endpoint::Token,
        Endpoint::Token2fa,
        Endpoint::Refresh,
        Endpoint::Ping,
        Endpoint::OptIn,
        Endpoint::VerifyOptIn,
        Endpoint::OptOut,
    ];

    /// The endpoint's path below the prefix, as metrics and logs name its route.
    fn route(self) -> &'static str {
        match self {
            Endpoint::Token => "/authorisation/token",
            Endpoint::Token2fa => "/authorisation/token-2fa",
            Endpoint::Refresh => "/authorisation/refresh",
            Endpoint::Ping => "/authorisation/ping",
            Endpoint::OptIn => "/user/opt-in-to-2fa",
            Endpoint::VerifyOptIn => "/user/verify-2fa-opt-in",
            Endpoint::OptOut => "/user/opt-out-from-2fa",
        }
    }

    fn method(self) -> Method {
        match self {
            Endpoint::Ping => Method::GET,
            _ => Method::POST,
        }
    }
}

/// One entry point for every Saasu path: routes by endpoint and method, and renders
/// errors in the negotiated format.
async fn dispatch(req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let format = Format::negotiate(&req);
    let prefix = req
        .app_data::<web::Data<SaasuSettings>>()
        .map(|s| normalized_prefix(&s.prefix))
        .unwrap_or_default();
    let Some(endpoint) = Endpoint::find(&prefix, req.path()) else {
        return ApiError::Message(
            StatusCode::NOT_FOUND,
            "No HTTP resource was found that matches the request URI.".into(),
        )
        .render(format);
    };
    twofa_web::name_route(&req, DIALECT, endpoint.route());
    if req.method() != endpoint.method() {
        return ApiError::Message(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "The requested resource does not support http method '{}'.",
                req.method()
            ),
        )
        .render(format);
    }
    let ctx = match Ctx::new(req, payload).await {
        Ok(ctx) => ctx,
        Err(e) => return e.render(format),
    };
    let outcome = match endpoint {
        Endpoint::Token => oauth::token(&ctx).await,
        Endpoint::Token2fa => oauth::token_2fa(&ctx).await,
        Endpoint::Refresh => oauth::refresh(&ctx).await,
        Endpoint::Ping => oauth::ping(&ctx).await,
        Endpoint::OptIn => user::opt_in(&ctx).await,
        Endpoint::VerifyOptIn => user::verify_opt_in(&ctx).await,
        Endpoint::OptOut => user::opt_out(&ctx).await,
    };
    outcome.unwrap_or_else(|e| e.render(ctx.format))
}

fn normalized_prefix(prefix: &str) -> String {
    let p = prefix.trim().trim_end_matches('/').to_ascii_lowercase();
    if p.is_empty() || p.starts_with('/') {
        p
    } else {
        format!("/{p}")
    }
}

/// Mounts the dialect at `settings.prefix`: one resource that takes exactly the Saasu
/// paths (any case, optional trailing slash) and leaves every other path alone.
pub fn configure(core: Core, settings: SaasuSettings) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let prefix = normalized_prefix(&settings.prefix);
        let mut settings = settings;
        settings.prefix = prefix.clone();
        cfg.service(
            web::resource("/{saasu_path:.*}")
                .guard(guard::fn_guard(move |ctx| {
                    Endpoint::find(&prefix, ctx.head().uri.path()).is_some()
                }))
                .app_data(web::Data::new(core))
                .app_data(web::Data::new(settings))
                .route(web::route().to(dispatch)),
        );
    }
}

/// Saasu's legacy key, `?WsAccessKey=` beside `FileId`.
struct WsAccessKey;

impl Modify for WsAccessKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "ws_access_key",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("WsAccessKey"))),
        );
    }
}

/// Every answer comes in the format the request negotiated ([`extract::Format`]): each
/// response documented as `application/json` is also `text/json`, `application/xml` and
/// `text/xml` (the XML root is the .NET class name, as `XmlSerializer` writes it).
struct NegotiatedAnswers;

impl utoipa::Modify for NegotiatedAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                for response in operation.responses.responses.values_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    let Some(json) = response.content.get("application/json").cloned() else {
                        continue;
                    };
                    for mime in ["text/json", "application/xml", "text/xml"] {
                        response.content.insert(mime.to_string(), json.clone());
                    }
                }
            }
        }
    }
}

/// The OpenAPI document of this dialect.
#[derive(OpenApi)]
#[openapi(
    info(title = "twofa: Saasu dialect", description = "Saasu API v2: OAuth password grant with SMS two-factor login (token-2fa), FileId scoping, and the SMS 2FA opt-in family. Bodies in JSON or XML (Content-Type and Accept: application/json, text/json, application/xml, text/xml); token requests also form-encoded. Paths and query names are case-insensitive."),
    paths(
        oauth::token,
        oauth::token_2fa,
        oauth::refresh,
        oauth::ping,
        user::opt_in,
        user::verify_opt_in,
        user::opt_out,
    ),
    modifiers(&BearerJwt, &WsAccessKey, &NegotiatedAnswers)
)]
pub struct SaasuApi;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_ignore_case_and_trailing_slash() {
        assert_eq!(
            Endpoint::find("", "/authorisation/Ping"),
            Some(Endpoint::Ping)
        );
        assert_eq!(
            Endpoint::find("", "/USER/Opt-In-To-2FA/"),
            Some(Endpoint::OptIn)
        );
        assert_eq!(Endpoint::find("", "/users/me"), None);
        assert_eq!(
            Endpoint::find("/saasu", "/Saasu/authorisation/token"),
            Some(Endpoint::Token)
        );
        assert_eq!(Endpoint::find("/saasu", "/authorisation/token"), None);
        assert_eq!(normalized_prefix("saasu/"), "/saasu");
    }
}

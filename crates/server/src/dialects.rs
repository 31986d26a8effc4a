//! The dialects this binary is built with. Adding one is a line here.

use actix_web::web::ServiceConfig;
use twofa_core::Core;
use utoipa::OpenApi;

use crate::config::Settings;

pub struct Dialect {
    pub name: &'static str,
    /// Where the server serves its OpenAPI document.
    pub doc_path: &'static str,
    pub openapi: fn() -> utoipa::openapi::OpenApi,
    pub mount: fn(&mut ServiceConfig, Core, &Settings),
}

pub const ALL: &[Dialect] = &[
    Dialect {
        name: twofa_api_ucloud::DIALECT,
        doc_path: "/openapi/ucloud.json",
        openapi: twofa_api_ucloud::UcloudApi::openapi,
        mount: |cfg, core, settings| {
            let ucloud = twofa_api_ucloud::UcloudSettings {
                issuer: settings.ucloud_issuer.clone(),
                secure_cookies: settings.secure_cookies,
                ..Default::default()
            };
            twofa_api_ucloud::configure(core, ucloud)(cfg)
        },
    },
    Dialect {
        name: twofa_api_zstack::DIALECT,
        doc_path: "/openapi/zstack.json",
        openapi: twofa_api_zstack::ZstackApi::openapi,
        mount: |cfg, core, settings| {
            let zstack = twofa_api_zstack::ZstackSettings {
                session_timeout: settings.zstack_session_timeout,
                twofa_enable_default: settings.zstack_twofa_enable,
                ..Default::default()
            };
            twofa_api_zstack::configure(core, zstack)(cfg)
        },
    },
    Dialect {
        name: twofa_api_authendpoints::DIALECT,
        doc_path: "/openapi/authendpoints.json",
        openapi: twofa_api_authendpoints::AuthEndpointsApi::openapi,
        mount: |cfg, core, settings| {
            let mut ae = twofa_api_authendpoints::AuthEndpointsSettings::default();
            let set = |target: &mut String, value: &Option<String>| {
                if let Some(v) = value {
                    *target = v.clone();
                }
            };
            set(&mut ae.prefix, &settings.authendpoints_prefix);
            set(&mut ae.jwt_issuer, &settings.authendpoints_jwt_issuer);
            set(&mut ae.jwt_audience, &settings.authendpoints_jwt_audience);
            set(
                &mut ae.email_confirmation_url,
                &settings.authendpoints_email_confirmation_url,
            );
            set(
                &mut ae.password_reset_url,
                &settings.authendpoints_password_reset_url,
            );
            let templates = &settings.authendpoints_templates;
            for (target, given) in [
                (&mut ae.enable_2fa_mail, &templates.enable_2fa),
                (&mut ae.login_mail, &templates.login),
                (&mut ae.confirm_email_mail, &templates.confirm_email),
                (&mut ae.reset_password_mail, &templates.reset_password),
            ] {
                if let Some(t) = given {
                    *target = twofa_core::Template::new(t.subject.clone(), t.body.clone());
                }
            }
            twofa_api_authendpoints::configure(core, ae)(cfg)
        },
    },
    Dialect {
        name: twofa_api_saasu::DIALECT,
        doc_path: "/openapi/saasu.json",
        openapi: twofa_api_saasu::SaasuApi::openapi,
        mount: |cfg, core, settings| {
            let mut saasu = twofa_api_saasu::SaasuSettings {
                public_url: settings.saasu_public_url.clone(),
                ..Default::default()
            };
            if let Some(prefix) = &settings.saasu_prefix {
                saasu.prefix = prefix.clone();
            }
            if let Some(ttl) = settings.saasu_access_token_ttl {
                saasu.access_token_ttl = ttl;
            }
            twofa_api_saasu::configure(core, saasu)(cfg)
        },
    },
];

pub fn find(name: &str) -> Option<&'static Dialect> {
    ALL.iter().find(|d| d.name == name)
}

/// The committed documents in `openapi/` must match what the code generates.
#[cfg(test)]
mod tests {
    #[test]
    fn committed_openapi_documents_match_the_code() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi");
        for dialect in super::ALL {
            let path = dir.join(format!("{}.json", dialect.name));
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            let generated = crate::openapi_json(dialect);
            assert!(
                committed == generated,
                "{} is out of date: run `cargo run -p twofa-server -- openapi --out openapi`",
                path.display()
            );
        }
    }
}

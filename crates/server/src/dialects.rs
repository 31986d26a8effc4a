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
    /// Prefixes of the route patterns it mounts, which tell `/metrics` and the request
    /// log whose a matched route is (Saasu names its routes itself: one resource).
    pub route_prefixes: fn(&Settings) -> Vec<String>,
}

pub const ALL: &[Dialect] = &[
    Dialect {
        name: twofa_api_ucloud::DIALECT,
        doc_path: "/openapi/ucloud.json",
        openapi: twofa_api_ucloud::UcloudApi::openapi,
        mount: |cfg, core, settings| {
            twofa_api_ucloud::configure(core, settings.ucloud.clone())(cfg)
        },
        route_prefixes: |_| vec!["/auth/".into(), "/api/supportAssistFnd/".into()],
    },
    Dialect {
        name: twofa_api_zstack::DIALECT,
        doc_path: "/openapi/zstack.json",
        openapi: twofa_api_zstack::ZstackApi::openapi,
        mount: |cfg, core, settings| {
            twofa_api_zstack::configure(core, settings.zstack.clone())(cfg)
        },
        route_prefixes: |_| vec!["/zstack/".into()],
    },
    Dialect {
        name: twofa_api_authendpoints::DIALECT,
        doc_path: "/openapi/authendpoints.json",
        openapi: twofa_api_authendpoints::AuthEndpointsApi::openapi,
        mount: |cfg, core, settings| {
            twofa_api_authendpoints::configure(core, settings.authendpoints.clone())(cfg)
        },
        route_prefixes: |settings| {
            let prefix = settings.authendpoints.prefix.trim_end_matches('/');
            vec![format!("{prefix}/users"), format!("{prefix}/jwt/")]
        },
    },
    Dialect {
        name: twofa_api_saasu::DIALECT,
        doc_path: "/openapi/saasu.json",
        openapi: twofa_api_saasu::SaasuApi::openapi,
        mount: |cfg, core, settings| twofa_api_saasu::configure(core, settings.saasu.clone())(cfg),
        route_prefixes: |_| Vec::new(),
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

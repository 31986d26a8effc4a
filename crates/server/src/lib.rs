//! The twofa server: configuration, the core's keys and database, and an actix app
//! that mounts the enabled dialects with their OpenAPI documents and Swagger UI.

pub mod config;
pub mod dialects;
pub mod middleware;
pub mod telemetry;

use actix_web::middleware::from_fn;
use actix_web::{get, web, App, HttpResponse, HttpServer};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use twofa_core::crypto::{load_or_create_key_file, parse_key, parse_keys};
use twofa_core::{Core, CoreConfig, CoreError, OsRandom, SystemClock};
use utoipa_swagger_ui::{SwaggerUi, Url};

pub use config::Settings;
use dialects::Dialect;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// `twofa keys rotate` found secrets that no configured master key opens.
    #[error("{0} TOTP secrets open with none of the configured master keys: add the key they were sealed with to previous_master_keys and rerun")]
    Rotation(u64),
    /// A command used wrongly.
    #[error("{0}")]
    Usage(&'static str),
}

/// A key from its setting, or from (a freshly created, mode 0600) file in the data dir.
fn key(setting: Option<&str>, file: &Path) -> Result<[u8; 32], CoreError> {
    match setting {
        Some(text) => parse_key(text),
        None => load_or_create_key_file(file, &OsRandom),
    }
}

/// The data dir 0700 and the files the server keeps there 0600, whatever the umask:
/// a SQLite database is created empty with mode 0600 before SQLite opens it, and SQLite
/// gives its `-wal` and `-shm` files the database's mode; existing files are restricted.
/// Key and outbox files are created 0600 where they are written (`twofa_core::files`).
pub fn prepare_files(settings: &Settings) -> Result<(), ServerError> {
    use twofa_core::files;
    files::private_dir(&settings.data_dir)?;
    let url = settings.database_url();
    if twofa_core::db::Backend::of_url(&url) == twofa_core::db::Backend::Sqlite {
        let db = Path::new(twofa_core::db::sqlite_path(&url));
        if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
            files::private_dir(dir)?;
        }
        files::private_file(db)?;
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            files::restrict_if_present(Path::new(&name))?;
        }
    }
    for name in [
        "master.key",
        "jwt.key",
        "admin-password",
        "outbox/sms.jsonl",
    ] {
        files::restrict_if_present(&settings.data_dir.join(name))?;
    }
    Ok(())
}

/// Opens the database (creating the data dir and key files as needed) and migrates it.
pub fn open_core(settings: &Settings) -> Result<Core, ServerError> {
    prepare_files(settings)?;
    let master_key = key(
        settings.master_key.as_deref(),
        &settings.data_dir.join("master.key"),
    )?;
    let jwt_key = key(
        settings.jwt_key.as_deref(),
        &settings.data_dir.join("jwt.key"),
    )?;
    let mut cfg = CoreConfig::new(settings.database_url(), master_key, jwt_key.to_vec());
    let previous = |keys: &Option<String>| parse_keys(keys.as_deref().unwrap_or(""));
    cfg.previous_master_keys = previous(&settings.previous_master_keys)?;
    cfg.previous_jwt_keys = previous(&settings.previous_jwt_keys)?
        .iter()
        .map(|k| k.to_vec())
        .collect();
    if let Some(size) = settings.pool_size {
        cfg.pool_size = size;
    }
    cfg.mail = twofa_core::MailConfig {
        smtp_url: settings.smtp_url.clone(),
        from: settings.mail_from.clone(),
        outbox_dir: settings.data_dir.join("outbox").join("mail"),
    };
    cfg.sms = twofa_core::SmsConfig {
        webhook_url: settings.sms_webhook_url.clone(),
        webhook_token: settings.sms_webhook_token.clone(),
        timeout: std::time::Duration::from_secs(settings.sms_timeout),
        outbox_dir: settings.data_dir.join("outbox"),
    };
    Ok(Core::open(cfg, Arc::new(SystemClock), Arc::new(OsRandom))?)
}

/// The OpenAPI document of a dialect as committed in `openapi/`.
pub fn openapi_json(dialect: &Dialect) -> String {
    let mut json = (dialect.openapi)()
        .to_pretty_json()
        .expect("OpenAPI documents serialize");
    json.push('\n');
    json
}

fn enabled(settings: &Settings) -> impl Iterator<Item = &'static Dialect> + '_ {
    settings
        .enabled
        .iter()
        .filter_map(|name| dialects::find(name))
}

/// Liveness and database reachability.
#[get("/healthz")]
async fn healthz(core: web::Data<Core>) -> HttpResponse {
    match core.ping().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ok"})),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "unavailable"}))
        }
    }
}

/// Mounts the enabled dialects, `/healthz`, the OpenAPI documents at
/// `/openapi/<dialect>.json`, Swagger UI at `/swagger-ui/` and, unless `metrics.bind`
/// gives it a listener of its own, `/metrics`.
pub fn configure(
    core: Core,
    settings: Settings,
) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    move |cfg| {
        cfg.app_data(web::Data::new(core.clone())).service(healthz);
        if settings.metrics.bind.is_none() {
            telemetry::mount_metrics(cfg);
        }
        let docs: Vec<(Url<'static>, utoipa::openapi::OpenApi)> = enabled(&settings)
            .map(|d| (Url::new(d.name, d.doc_path), (d.openapi)()))
            .collect();
        if !docs.is_empty() {
            cfg.service(SwaggerUi::new("/swagger-ui/{_:.*}").urls(docs));
        }
        for dialect in enabled(&settings) {
            (dialect.mount)(cfg, core.clone(), &settings);
        }
    }
}

/// Which dialect owns each route prefix, for the request metrics and log.
fn route_owners(settings: &Settings) -> telemetry::RouteOwners {
    let prefixes = enabled(settings)
        .flat_map(|d| {
            (d.route_prefixes)(settings)
                .into_iter()
                .map(move |p| (p, d.name))
        })
        .collect();
    telemetry::RouteOwners::new(prefixes)
}

/// Serves only `/metrics` on `addr`, on a thread of its own with one worker, for the
/// life of the process (it does not hold up the main server's graceful stop).
fn bind_metrics(addr: &str) -> Result<SocketAddr, ServerError> {
    let listener = std::net::TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("twofa-metrics-http".into())
        .spawn(move || {
            let served = actix_web::rt::System::new().block_on(async move {
                HttpServer::new(|| {
                    App::new()
                        .wrap(from_fn(middleware::security_headers))
                        .configure(telemetry::mount_metrics)
                })
                .workers(1)
                .disable_signals()
                .listen(listener)?
                .run()
                .await
            });
            if let Err(e) = served {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        })?;
    Ok(local)
}

/// Binds the HTTP server; returns it (not yet awaited) and the bound addresses.
/// SIGTERM stops it gracefully: in-flight requests finish first. Installs the metrics
/// recorder, and starts the `metrics.bind` listener when that is set.
pub fn bind(
    core: Core,
    settings: &Settings,
) -> Result<(actix_web::dev::Server, Vec<SocketAddr>), ServerError> {
    telemetry::exporter();
    if let Some(addr) = &settings.metrics.bind {
        let local = bind_metrics(addr)?;
        tracing::info!(addr = %local, "metrics listening");
    }
    let app = configure(core, settings.clone());
    let owners = Arc::new(route_owners(settings));
    let body_timeout = Duration::from_secs(settings.body_timeout);
    let mut server = HttpServer::new(move || {
        let owners = owners.clone();
        App::new()
            .wrap(from_fn(move |req, next| {
                middleware::body_deadline(body_timeout, req, next)
            }))
            .wrap(from_fn(middleware::security_headers))
            .wrap(from_fn(move |req, next| {
                telemetry::observe_requests(owners.clone(), req, next)
            }))
            .configure(app.clone())
    })
    // Headers must arrive within the body's deadline too; a connection is closed
    // within a second of its answer when the client does not.
    .client_request_timeout(body_timeout)
    .client_disconnect_timeout(Duration::from_secs(1))
    .shutdown_timeout(30);
    if let Some(workers) = settings.workers {
        server = server.workers(workers);
    }
    let server = server.bind(&settings.bind)?;
    let addrs = server.addrs();
    Ok((server.run(), addrs))
}

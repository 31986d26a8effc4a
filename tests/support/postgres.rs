//! A fresh PostgreSQL database per test, on the server named by
//! `TWOFA_TEST_POSTGRES_URL` (`.ci/run` sets it). Without it the PostgreSQL variants are
//! skipped locally, and fail under CI, where skipping would hide a broken backend.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

pub const ENV: &str = "TWOFA_TEST_POSTGRES_URL";

/// The URL of a new, empty database, or `None` (with a note) when no server is configured.
pub fn fresh_database(test: &str) -> Option<String> {
    let server_url = configured_server(ENV, test)?;
    let name = unique_database_name();
    let mut admin =
        PgConnection::establish(&server_url).unwrap_or_else(|e| panic!("{ENV}={server_url}: {e}"));
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create test database");
    let (base, query) = match server_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server_url.as_str(), String::new()),
    };
    let base = base.rsplit_once('/').map(|(b, _)| b).unwrap_or(base);
    Some(format!("{base}/{name}{query}"))
}

/// The database server named by the variable `env`, or `None` (with a note) when it is
/// not set: skipped locally, a failure under CI.
pub fn configured_server(env: &str, test: &str) -> Option<String> {
    let Ok(server_url) = std::env::var(env) else {
        assert!(std::env::var("CI").is_err(), "{env} must be set under CI");
        eprintln!("skipping {test}: {env} is not set");
        return None;
    };
    Some(server_url)
}

/// A database name no other test (or test process) uses.
pub fn unique_database_name() -> String {
    format!(
        "twofa_t_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

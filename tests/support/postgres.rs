//! A fresh PostgreSQL database per test, on the server named by
//! `TWOFA_TEST_POSTGRES_URL` (`.ci/run` sets it). Without it the PostgreSQL variants are
//! skipped locally, and fail under CI, where skipping would hide a broken backend.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

pub const ENV: &str = "TWOFA_TEST_POSTGRES_URL";

/// The URL of a new, empty database, or `None` (with a note) when no server is configured.
pub fn fresh_database(test: &str) -> Option<String> {
    let Ok(server_url) = std::env::var(ENV) else {
        assert!(std::env::var("CI").is_err(), "{ENV} must be set under CI");
        eprintln!("skipping PostgreSQL variant of {test}: {ENV} is not set");
        return None;
    };
    let name = format!(
        "twofa_t_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
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

//! What an operator watches: Prometheus `/metrics` (the `metrics` facade, which the core
//! records into too, rendered by `metrics-exporter-prometheus`), the request log line
//! and the request id.
//!
//! Per request the middleware costs two clock reads, the matched route's name (actix
//! keeps the matched resource, so no second routing), a lookup in this worker's table
//! of metric handles (built once per route and status) and a few atomic adds; the log
//! line only where the `twofa::request` target is enabled.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tracing::Instrument;
use twofa_core::metrics as core_metrics;

/// `twofa_http_requests_total{dialect, route, status}`.
pub const HTTP_REQUESTS: &str = "twofa_http_requests_total";
/// `twofa_http_request_duration_seconds{dialect, route, status}`.
pub const HTTP_DURATION: &str = "twofa_http_request_duration_seconds";

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The installed recorder and the process collector, rendered at `/metrics`.
pub struct Exporter {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

impl Exporter {
    /// The metrics in Prometheus' text format, process metrics read just now.
    pub fn render(&self) -> String {
        self.process.collect();
        self.handle.render()
    }
}

/// The process-wide exporter, installed as the `metrics` recorder on first use. (If
/// another recorder was installed first, `/metrics` shows only what it renders.)
pub fn exporter() -> &'static Exporter {
    static EXPORTER: OnceLock<Exporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(core_metrics::DB_BATCH_SIZE.into()),
                    BATCH_BUCKETS,
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was installed already; /metrics may be empty");
        }
        // Histogram samples are kept until upkeep folds them into buckets: without a
        // scrape they would pile up.
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("twofa-metrics".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            });
        describe();
        let process = metrics_process::Collector::default();
        process.describe();
        metrics::gauge!("twofa_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        Exporter { handle, process }
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by dialect, matched route pattern and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        "Seconds from a request's arrival to its answer, by dialect, route and status"
    );
    describe_counter!(core_metrics::VERIFICATIONS, "Second-factor code checks by dialect, factor (totp, email, sms) and outcome (accepted, wrong, replayed, expired, locked_out)");
    describe_counter!(
        core_metrics::CODES_SENT,
        "One-time codes delivered, by channel (email, sms)"
    );
    describe_counter!(
        core_metrics::DELIVERY_FAILURES,
        "One-time codes that could not be delivered, by channel"
    );
    describe_counter!(
        core_metrics::LOCKOUTS_STARTED,
        "Brute-force lockouts started, by policy"
    );
    describe_histogram!(
        core_metrics::DB_BATCH_SIZE,
        "SQLite: jobs committed together in one group commit"
    );
    describe_histogram!(
        core_metrics::DB_COMMIT_SECONDS,
        "SQLite: seconds from BEGIN to COMMIT of one group commit"
    );
    describe_histogram!(
        core_metrics::DB_POOL_WAIT_SECONDS,
        "PostgreSQL: seconds a request waited for a pooled connection"
    );
    describe_counter!(
        core_metrics::DB_POOL_TIMEOUTS,
        "PostgreSQL: requests that got no pooled connection in time"
    );
    describe_gauge!(
        "twofa_build_info",
        "Always 1; the labels tell the running build"
    );
}

/// `GET /metrics`.
pub async fn metrics_route() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(exporter().render())
}

/// Mounts `GET /metrics`.
pub fn mount_metrics(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics_route));
}

/// Which dialect serves a matched route pattern: the first whose prefix it starts with
/// (the longest prefixes first); the server's own routes are `server`.
#[derive(Debug, Clone, Default)]
pub struct RouteOwners {
    prefixes: Vec<(String, &'static str)>,
}

impl RouteOwners {
    pub fn new(mut prefixes: Vec<(String, &'static str)>) -> Self {
        prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        RouteOwners { prefixes }
    }

    pub fn dialect(&self, pattern: &str) -> &'static str {
        self.prefixes
            .iter()
            .find(|(prefix, _)| pattern.starts_with(prefix.as_str()))
            .map_or("server", |(_, dialect)| dialect)
    }
}

/// One route's metric handles, per status, in one worker.
struct RouteHandles {
    dialect: &'static str,
    by_status: Vec<(u16, Counter, Histogram)>,
}

thread_local! {
    /// Route pattern -> handles. Bounded by the routes and statuses there are.
    static HANDLES: RefCell<HashMap<String, RouteHandles>> = RefCell::new(HashMap::new());
}

/// A request that matched no route.
const UNMATCHED: &str = "unmatched";

/// Counts the request; returns the route's dialect (`named`, else its owner's).
fn observe(
    owners: &RouteOwners,
    (route, named): (&str, Option<&'static str>),
    status: u16,
    took: Duration,
) -> &'static str {
    HANDLES.with(|handles| {
        let mut handles = handles.borrow_mut();
        if !handles.contains_key(route) {
            let dialect = match (route, named) {
                (_, Some(dialect)) => dialect,
                (UNMATCHED, None) => "none",
                _ => owners.dialect(route),
            };
            let entry = RouteHandles {
                dialect,
                by_status: Vec::new(),
            };
            handles.insert(route.to_string(), entry);
        }
        let entry = handles.get_mut(route).expect("inserted above");
        let dialect = entry.dialect;
        let found = entry.by_status.iter().position(|(s, ..)| *s == status);
        let i = found.unwrap_or_else(|| {
            let labels = [
                ("dialect", dialect.to_string()),
                ("route", route.to_string()),
                ("status", status.to_string()),
            ];
            let counter = metrics::counter!(HTTP_REQUESTS, &labels);
            let histogram = metrics::histogram!(HTTP_DURATION, &labels);
            entry.by_status.push((status, counter, histogram));
            entry.by_status.len() - 1
        });
        let (_, counter, histogram) = &entry.by_status[i];
        counter.increment(1);
        histogram.record(took.as_secs_f64());
        dialect
    })
}

/// A fresh request id: 16 hex digits, unique in this process (a bijection of a
/// counter that starts at a random point), not guessable from the previous one.
fn request_id() -> [u8; 16] {
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    let next = NEXT.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        AtomicU64::new(h.finish())
    });
    // splitmix64's finalizer: a bijection on u64.
    let mut z = next.fetch_add(1, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = b"0123456789abcdef"[((z >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Counts and times every request by dialect, route pattern and status, logs it (target
/// `twofa::request`, at info) with its request id, and returns the id as `X-Request-Id`.
/// Logs inside the handler carry the id too (a `request` span at debug).
pub async fn observe_requests(
    owners: Arc<RouteOwners>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let id = request_id();
    let id_str = std::str::from_utf8(&id).expect("hex digits");
    let method = req.method().clone();
    let span = tracing::debug_span!("request", request_id = id_str);
    let result = next.call(req).instrument(span).await;
    let took = started.elapsed();
    let (mut res, route, named) = match result {
        Ok(res) => {
            let named = res
                .request()
                .extensions()
                .get::<twofa_web::RouteName>()
                .copied();
            let route = match named {
                Some(name) => Some(name.route.to_string()),
                None => res.request().match_pattern(),
            };
            (res.map_into_boxed_body(), route, named.map(|n| n.dialect))
        }
        // Errors of middleware (handlers' come as responses): no request to name.
        Err(e) => {
            let status = e.as_response_error().status_code().as_u16();
            observe(&owners, (UNMATCHED, None), status, took);
            return Err(e);
        }
    };
    // A pattern that takes any path (`{tail:.*}`, Saasu's one resource, whose guard
    // picks its paths) names nothing unless the dialect named the route.
    let route = route
        .filter(|r| named.is_some() || !r.contains(":.*}"))
        .unwrap_or_else(|| UNMATCHED.to_string());
    let status = res.status().as_u16();
    let dialect = observe(&owners, (&route, named), status, took);
    tracing::info!(
        target: "twofa::request",
        request_id = id_str,
        method = method.as_str(),
        dialect,
        route = route.as_str(),
        status,
        latency_ms = took.as_secs_f64() * 1000.0,
        "request"
    );
    if let Ok(value) = HeaderValue::from_bytes(&id) {
        res.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_differ_and_are_hex() {
        let a = request_id();
        let b = request_id();
        assert_ne!(a, b);
        assert!(a.iter().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn routes_belong_to_the_longest_prefix() {
        let owners = RouteOwners::new(vec![
            ("/auth/".into(), "ucloud"),
            ("/auth/x/".into(), "other"),
            ("/zstack/".into(), "zstack"),
        ]);
        assert_eq!(owners.dialect("/auth/login"), "ucloud");
        assert_eq!(owners.dialect("/auth/x/y"), "other");
        assert_eq!(owners.dialect("/zstack/v1/accounts/login"), "zstack");
        assert_eq!(owners.dialect("/healthz"), "server");
    }
}

//! What the core counts, through the `metrics` facade: the server installs a recorder
//! (Prometheus at `/metrics`); without one every call here is a no-op. Each outcome is
//! counted where its rule lives, once, whichever dialect asked. Never a code, secret
//! or user in a label: labels are a closed set of words (and the dialect's name).

use crate::delivery::Channel;
use crate::Origin;

/// `twofa_verifications_total{dialect, factor, outcome}`.
pub const VERIFICATIONS: &str = "twofa_verifications_total";
/// `twofa_codes_sent_total{channel}`.
pub const CODES_SENT: &str = "twofa_codes_sent_total";
/// `twofa_code_delivery_failures_total{channel}`.
pub const DELIVERY_FAILURES: &str = "twofa_code_delivery_failures_total";
/// `twofa_lockouts_started_total{policy}`.
pub const LOCKOUTS_STARTED: &str = "twofa_lockouts_started_total";
/// `twofa_db_batch_size`: jobs in one SQLite group commit.
pub const DB_BATCH_SIZE: &str = "twofa_db_batch_size";
/// `twofa_db_commit_seconds`: one SQLite group commit, BEGIN to COMMIT.
pub const DB_COMMIT_SECONDS: &str = "twofa_db_commit_seconds";
/// `twofa_db_pool_wait_seconds`: PostgreSQL, the wait for a pooled connection.
pub const DB_POOL_WAIT_SECONDS: &str = "twofa_db_pool_wait_seconds";
/// `twofa_db_pool_timeouts_total`: PostgreSQL, no connection came in time.
pub const DB_POOL_TIMEOUTS: &str = "twofa_db_pool_timeouts_total";

/// The second factor a code was checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    Totp,
    Email,
    Sms,
}

impl Factor {
    pub fn as_str(self) -> &'static str {
        match self {
            Factor::Totp => "totp",
            Factor::Email => "email",
            Factor::Sms => "sms",
        }
    }
}

/// What one code check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// Not the code (or no code to check it against).
    Wrong,
    /// The right code, used already.
    Replayed,
    /// The code, or what it answers (a challenge), is past its expiry.
    Expired,
    /// Not looked at: the user's codes are locked out.
    LockedOut,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Wrong => "wrong",
            Outcome::Replayed => "replayed",
            Outcome::Expired => "expired",
            Outcome::LockedOut => "locked_out",
        }
    }
}

pub(crate) fn verification(origin: &Origin, factor: Factor, outcome: Outcome) {
    ::metrics::counter!(
        VERIFICATIONS,
        "dialect" => origin.dialect.clone(),
        "factor" => factor.as_str(),
        "outcome" => outcome.as_str()
    )
    .increment(1);
}

pub(crate) fn delivery(channel: Channel, delivered: bool) {
    let name = if delivered {
        CODES_SENT
    } else {
        DELIVERY_FAILURES
    };
    ::metrics::counter!(name, "channel" => channel.as_str()).increment(1);
}

pub(crate) fn lockout_started(policy: &'static str) {
    ::metrics::counter!(LOCKOUTS_STARTED, "policy" => policy).increment(1);
}

pub(crate) fn batch(jobs: usize, commit: std::time::Duration) {
    ::metrics::histogram!(DB_BATCH_SIZE).record(jobs as f64);
    ::metrics::histogram!(DB_COMMIT_SECONDS).record(commit.as_secs_f64());
}

pub(crate) fn pool_wait(waited: std::time::Duration, got: bool) {
    ::metrics::histogram!(DB_POOL_WAIT_SECONDS).record(waited.as_secs_f64());
    if !got {
        ::metrics::counter!(DB_POOL_TIMEOUTS).increment(1);
    }
}

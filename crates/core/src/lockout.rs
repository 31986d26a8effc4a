//! Every brute-force counter: kept in the database, so they hold across every instance
//! that shares it, and checked and recorded in one transaction, so they are exact under
//! concurrency. Keys name what is limited (a username's password, a user's codes, a
//! client address's registrations).
//!
//! Two ways to count, by how long the check takes:
//! - [`code_attempt`]: a code check is microseconds of CPU, so the counter row is held
//!   (locked on PostgreSQL; SQLite has one writer) while the code is evaluated and the
//!   failure recorded: of any number of concurrent guesses, at most the policy's limit
//!   is ever evaluated, and exactly one after each lockout ends.
//! - [`check`] before and [`record`] after: a password check is argon2, far too slow to
//!   hold a lock (or a connection) over, so concurrent password guesses can pass the
//!   check together; how many can is bounded by how many argon2 checks run at once.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer};

use crate::audit::{self, Subject};
use crate::db::schema::throttles;
use crate::db::{cached_statement, write_tx, DbConnection};
use crate::metrics::{self, Factor, Outcome};
use crate::{CoreError, CoreResult, Inner, Origin};

/// How failures turn into lockouts.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// What it limits, as `/metrics` names it (`twofa_lockouts_started_total{policy}`).
    pub name: &'static str,
    /// Failures that trigger a lockout.
    pub max_failures: i32,
    /// Failures older than this no longer count; `None` counts consecutive failures
    /// until a success clears them.
    pub window: Option<i64>,
    /// Lockout length for the n-th lockout (n >= 1).
    pub lockout_secs: fn(i32) -> i64,
    /// Quiet time after a lockout ends before the lockout count starts over.
    pub forget_after: i64,
}

/// Password logins, as UCloud does it: 5 failures within 5 minutes lock the username
/// for 5^n seconds (n = 1..5, so at most about 52 minutes).
pub const PASSWORD: Policy = Policy {
    name: "password",
    max_failures: 5,
    window: Some(300),
    lockout_secs: |n| 5i64.pow(n.clamp(1, 5) as u32),
    forget_after: 3600,
};

/// Second-factor codes: after 5 consecutive wrong codes every further code of that user
/// is refused for 30 s, doubling with each further failure up to an hour.
pub const CODES: Policy = Policy {
    name: "codes",
    max_failures: 5,
    window: None,
    lockout_secs: |n| (30i64 << (n.clamp(1, 8) - 1)).min(3600),
    forget_after: i64::MAX,
};

/// Self-service registrations (AuthEndpoints' `POST /users`): 10 attempts per client
/// address per hour; the 11th within the hour is refused for an hour.
pub const REGISTRATION: Policy = Policy {
    name: "registration",
    max_failures: 10,
    window: Some(3600),
    lockout_secs: |_| 3600,
    forget_after: 3600,
};

/// Password-reset requests (AuthEndpoints' `POST /users/reset_password`, whose answers
/// tell unknown, unconfirmed and confirmed addresses apart): 20 per client address an
/// hour, refused for an hour after that.
pub const RESET_BY_CLIENT: Policy = Policy {
    name: "reset_by_client",
    max_failures: 20,
    ..REGISTRATION
};

/// The same requests per address asked about: 5 an hour.
pub const RESET_BY_EMAIL: Policy = Policy {
    name: "reset_by_email",
    max_failures: 5,
    ..REGISTRATION
};

/// Password failures per client address, whichever users it tries: 100 in 10 minutes
/// lock the address out of password checks for 10 minutes.
pub const PASSWORD_BY_CLIENT: Policy = Policy {
    name: "password_by_client",
    max_failures: 100,
    window: Some(600),
    lockout_secs: |_| 600,
    forget_after: 3600,
};

pub fn password_client_key(ip: Option<&str>) -> String {
    format!("password-client:{}", ip.unwrap_or("unknown"))
}

pub fn registration_key(ip: Option<&str>) -> String {
    format!("registration:{}", ip.unwrap_or("unknown"))
}

pub fn password_key(username: &str) -> String {
    format!("password:{}", username.to_lowercase())
}

pub fn codes_key(user_id: &str) -> String {
    format!("codes:{user_id}")
}

/// A counter as stored: read by key (`Selectable`) or returned by the upsert's SQL.
#[derive(Debug, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = throttles)]
struct Row {
    #[diesel(sql_type = Integer)]
    failures: i32,
    #[diesel(sql_type = BigInt)]
    window_start: i64,
    #[diesel(sql_type = Integer)]
    lockouts: i32,
    #[diesel(sql_type = BigInt)]
    locked_until: i64,
}

// Creates the key's row if needed and adds `failures` to it, in one statement that
// takes the row lock on PostgreSQL (held until the transaction ends). diesel's
// MultiBackend has no `on_conflict`; both backends take this SQL.
cached_statement!(Upsert { key: String, failures: i32, now: i64 } =>
    "INSERT INTO throttles (key, failures, window_start, lockouts, locked_until) VALUES (",
    (key: Text), ", ", (failures: Integer), ", ", (now: BigInt), ", 0, 0) \
     ON CONFLICT (key) DO UPDATE SET failures = throttles.failures + ", (failures: Integer),
    " RETURNING failures, window_start, lockouts, locked_until");

fn upsert(conn: &mut DbConnection, key: &str, now: i64, failures: i32) -> CoreResult<Row> {
    let key = key.to_owned();
    Ok(Upsert { key, failures, now }.get_result(conn)?)
}

fn refuse_if_locked(row: &Row, now: i64) -> CoreResult<()> {
    if row.locked_until > now {
        return Err(CoreError::Locked {
            retry_after: row.locked_until - now,
        });
    }
    Ok(())
}

/// Holds `key`'s counter until the transaction ends; `Err(Locked)` while it is locked,
/// else whether it has failures or lockouts on record (that a success must clear).
/// On PostgreSQL that takes the row's lock (an upsert, so that a first attempt has a
/// row to lock). A SQLite write transaction already excludes every other writer
/// (`BEGIN IMMEDIATE`, or the group-commit thread), so there a read holds it. Either
/// way an accepted code after a clean record writes nothing more to `throttles`.
fn hold(conn: &mut DbConnection, key: &str, now: i64) -> CoreResult<bool> {
    let row = match conn {
        DbConnection::Sqlite(_) => match counter(conn, key)? {
            Some(row) => row,
            None => return Ok(false),
        },
        DbConnection::Postgresql(_) => upsert(conn, key, now, 0)?,
    };
    refuse_if_locked(&row, now)?;
    Ok(row.failures != 0 || row.lockouts != 0 || row.locked_until != 0)
}

/// The key's counter, if it has one (a read, no lock).
fn counter(conn: &mut DbConnection, key: &str) -> CoreResult<Option<Row>> {
    Ok(throttles::table
        .find(key)
        .select(Row::as_select())
        .get_result(conn)
        .optional()?)
}

/// Counts one failure of a held key; returns the lockout end when it caused a lockout.
fn record_failure(
    conn: &mut DbConnection,
    policy: &Policy,
    key: &str,
    now: i64,
) -> CoreResult<Option<i64>> {
    let row = upsert(conn, key, now, 1)?;
    let (mut failures, mut window_start, mut lockouts) =
        (row.failures, row.window_start, row.lockouts);
    if let Some(window) = policy.window {
        if now - window_start >= window {
            failures = 1;
            window_start = now;
        }
    }
    if row.locked_until > 0 && now.saturating_sub(row.locked_until) >= policy.forget_after {
        lockouts = 0;
    }
    let mut locked_until = row.locked_until;
    let mut new_lockout = None;
    if failures >= policy.max_failures {
        lockouts += 1;
        locked_until = now + (policy.lockout_secs)(lockouts);
        new_lockout = Some(locked_until);
        crate::metrics::lockout_started(policy.name);
        if policy.window.is_some() {
            // A new round of attempts starts after the lockout.
            failures = 0;
            window_start = locked_until;
        }
    }
    diesel::update(throttles::table.find(key))
        .set((
            throttles::failures.eq(failures),
            throttles::window_start.eq(window_start),
            throttles::lockouts.eq(lockouts),
            throttles::locked_until.eq(locked_until),
        ))
        .execute(conn)?;
    Ok(new_lockout)
}

/// `Err(Locked)` while `key` is locked out at `now` (a read: see [`record`]).
pub(crate) fn check(conn: &mut DbConnection, key: &str, now: i64) -> CoreResult<()> {
    match counter(conn, key)? {
        Some(row) => refuse_if_locked(&row, now),
        None => Ok(()),
    }
}

/// Counts one failure of a check made outside the transaction (a password), in one
/// transaction under the counter's lock; returns the lockout end when it started one.
pub(crate) fn record(
    conn: &mut DbConnection,
    policy: &Policy,
    key: &str,
    now: i64,
) -> CoreResult<Option<i64>> {
    write_tx(conn, |conn| record_failure(conn, policy, key, now))
}

/// Takes one of the attempts `policy` allows `key`, exactly under concurrency: refused
/// (`Err(Locked)`) while the key is locked; the attempt that reaches the limit is
/// allowed and starts the lockout.
pub(crate) fn take_attempt(
    conn: &mut DbConnection,
    policy: &Policy,
    key: &str,
    now: i64,
) -> CoreResult<()> {
    write_tx(conn, |conn| {
        hold(conn, key, now)?;
        record_failure(conn, policy, key, now).map(|_| ())
    })
}

impl crate::Core {
    /// Counts a self-service registration attempt from `origin`'s address against
    /// [`REGISTRATION`]; `Err(Locked)` once the address has used them up.
    pub async fn count_registration(&self, origin: Origin) -> CoreResult<()> {
        let key = registration_key(origin.ip.as_deref());
        self.take_attempts(vec![(REGISTRATION, key)]).await
    }

    /// Counts a password-reset request from `origin` about `email` against
    /// [`RESET_BY_CLIENT`] and [`RESET_BY_EMAIL`]; `Err(Locked)` once either is used up.
    pub async fn count_reset_request(&self, origin: Origin, email: &str) -> CoreResult<()> {
        let client = format!("reset:client:{}", origin.ip.as_deref().unwrap_or("unknown"));
        let email = format!("reset:email:{}", email.trim().to_lowercase());
        self.take_attempts(vec![(RESET_BY_CLIENT, client), (RESET_BY_EMAIL, email)])
            .await
    }

    /// Takes one attempt of each key, in one transaction: a refusal takes none.
    async fn take_attempts(&self, keys: Vec<(Policy, String)>) -> CoreResult<()> {
        self.run(move |inner, conn| {
            write_tx(conn, |conn| {
                for (policy, key) in &keys {
                    take_attempt(conn, policy, key, inner.now())?;
                }
                Ok(())
            })
        })
        .await
    }
}

/// Forgets the failures of `key` (after a success).
pub(crate) fn clear(conn: &mut DbConnection, key: &str) -> CoreResult<()> {
    diesel::delete(throttles::table.find(key)).execute(conn)?;
    Ok(())
}

/// What a code check found (each check counts its outcome in `metrics` itself, being
/// the one that knows whether a rejected code was wrong, replayed or expired).
pub(crate) enum Attempt<T> {
    /// The code matched and its effects are done.
    Accepted(T),
    /// Wrong (or replayed): counted against the user, with this reason in the audit.
    Rejected(&'static str),
}

/// One code attempt by `user` (who is only named, not loaded), exact under concurrency: the user's code counter is held
/// for the whole transaction, `check` runs under it (and does the attempt's effects
/// when the code is right), and a rejection is counted and audited before the
/// transaction commits. A success clears the counter. Errors of `check` roll back all.
pub(crate) fn code_attempt<T>(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    (user, factor): (Subject<'_>, Factor),
    check: impl FnOnce(&mut DbConnection) -> CoreResult<Attempt<T>>,
) -> CoreResult<T> {
    let key = codes_key(user.id);
    let now = inner.now();
    write_tx(conn, |conn| {
        let recorded = match hold(conn, &key, now) {
            Ok(recorded) => recorded,
            Err(e) => {
                if matches!(e, CoreError::Locked { .. }) {
                    metrics::verification(origin, factor, Outcome::LockedOut);
                }
                return Err(e);
            }
        };
        match check(conn)? {
            Attempt::Accepted(value) => {
                if recorded {
                    clear(conn, &key)?;
                }
                Ok(Ok(value))
            }
            Attempt::Rejected(why) => {
                let locked = record_failure(conn, &CODES, &key, now)?;
                audit::record(inner, conn, origin, "code.rejected", user, Some(why))?;
                if let Some(until) = locked {
                    let until = format!("until {until}");
                    audit::record(inner, conn, origin, "code.locked", user, Some(&until))?;
                }
                Ok(Err(CoreError::IncorrectCode))
            }
        }
    })?
}

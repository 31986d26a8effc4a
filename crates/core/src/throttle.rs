//! Brute-force limits kept in the database, so they hold across every instance that
//! shares it. Keys name what is limited (a username's password, a user's codes), never
//! only an IP address.

use diesel::prelude::*;

use crate::db::schema::throttles;
use crate::db::DbConnection;
use crate::{CoreError, CoreResult};

/// How failures turn into lockouts.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
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
    max_failures: 5,
    window: Some(300),
    lockout_secs: |n| 5i64.pow(n.clamp(1, 5) as u32),
    forget_after: 3600,
};

/// Second-factor codes: after 5 consecutive wrong codes every further code of that user
/// is refused for 30 s, doubling with each further failure up to an hour.
pub const CODES: Policy = Policy {
    max_failures: 5,
    window: None,
    lockout_secs: |n| (30i64 << (n.clamp(1, 8) - 1)).min(3600),
    forget_after: i64::MAX,
};

pub fn password_key(username: &str) -> String {
    format!("password:{}", username.to_lowercase())
}

pub fn codes_key(user_id: &str) -> String {
    format!("codes:{user_id}")
}

#[derive(Debug, Queryable)]
struct Row {
    failures: i32,
    window_start: i64,
    lockouts: i32,
    locked_until: i64,
}

/// `Err(Locked)` while `key` is locked out at `now`.
pub(crate) fn check(conn: &mut DbConnection, key: &str, now: i64) -> CoreResult<()> {
    let locked_until: Option<i64> = throttles::table
        .find(key)
        .select(throttles::locked_until)
        .get_result(conn)
        .optional()?;
    match locked_until {
        Some(until) if until > now => Err(CoreError::Locked {
            retry_after: until - now,
        }),
        _ => Ok(()),
    }
}

/// Counts one failure; returns the lockout end when this failure caused a lockout.
/// Call inside a write transaction: the increment takes the row lock first, so
/// concurrent failures on PostgreSQL are never lost.
pub(crate) fn record_failure(
    conn: &mut DbConnection,
    policy: &Policy,
    key: &str,
    now: i64,
) -> CoreResult<Option<i64>> {
    let bumped = diesel::update(throttles::table.find(key))
        .set(throttles::failures.eq(throttles::failures + 1))
        .execute(conn)?;
    if bumped == 0 {
        // Two first failures may race to create the row; one insert quietly loses.
        // (diesel's MultiBackend has no on_conflict; both backends take this SQL and `$n`.)
        diesel::sql_query(
            "INSERT INTO throttles (key, failures, window_start, lockouts, locked_until) \
             VALUES ($1, 0, $2, 0, 0) ON CONFLICT (key) DO NOTHING",
        )
        .bind::<diesel::sql_types::Text, _>(key)
        .bind::<diesel::sql_types::BigInt, _>(now)
        .execute(conn)?;
        diesel::update(throttles::table.find(key))
            .set(throttles::failures.eq(throttles::failures + 1))
            .execute(conn)?;
    }
    let row: Row = throttles::table
        .find(key)
        .select((
            throttles::failures,
            throttles::window_start,
            throttles::lockouts,
            throttles::locked_until,
        ))
        .get_result(conn)?;

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

/// Forgets the failures of `key` (after a success).
pub(crate) fn clear(conn: &mut DbConnection, key: &str) -> CoreResult<()> {
    diesel::delete(throttles::table.find(key)).execute(conn)?;
    Ok(())
}

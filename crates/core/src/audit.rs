//! The audit log: every enrollment, verification, failure, lockout, reset and login.

use diesel::prelude::*;
use serde::Serialize;

use crate::db::deferred_audit::{self, AuditRow};
use crate::db::schema::audit_log;
use crate::db::DbConnection;
use crate::{Core, CoreResult, Inner, Origin};

#[derive(Debug, Clone, Serialize, Queryable)]
pub struct AuditEvent {
    pub id: i64,
    pub at: i64,
    pub event: String,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub dialect: String,
    pub ip: Option<String>,
    pub detail: Option<String>,
}

/// Who an event is about: pass `&User`, `&UserRow`, or `None` for no one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
}

/// Records one event, written with the COMMIT of the transaction it is recorded in (see
/// `db::deferred_audit`). Never given a secret: details name outcomes, not codes.
pub(crate) fn record<'a>(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    event: &str,
    subject: impl Into<Option<Subject<'a>>>,
    detail: Option<&str>,
) -> CoreResult<()> {
    let subject = subject.into().map(|s| (s.id, s.name));
    let row = AuditRow {
        at: inner.now(),
        event: event.to_owned(),
        user_id: subject.map(|s| s.0.to_owned()),
        username: subject.map(|s| s.1.to_owned()),
        dialect: origin.dialect.clone(),
        ip: origin.ip.clone(),
        detail: detail.map(str::to_owned),
    };
    deferred_audit::add(conn, row)?;
    trace(origin, event, subject.map(|s| s.1), detail);
    Ok(())
}

/// The log line of an audit event (for events written by a statement of their own).
pub(crate) fn trace(origin: &Origin, event: &str, username: Option<&str>, detail: Option<&str>) {
    tracing::debug!(event, user = username, dialect = %origin.dialect, ip = origin.ip.as_deref(), detail, "audit");
}

impl Core {
    /// The newest events first, optionally for one username.
    pub async fn audit_events(
        &self,
        username: Option<String>,
        limit: i64,
    ) -> CoreResult<Vec<AuditEvent>> {
        self.run(move |_, conn| {
            let mut query = audit_log::table
                .order(audit_log::id.desc())
                .limit(limit)
                .into_boxed();
            if let Some(name) = username {
                query = query.filter(audit_log::username.eq(name));
            }
            Ok(query.load(conn)?)
        })
        .await
    }
}

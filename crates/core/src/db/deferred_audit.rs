//! Audit rows recorded inside a transaction wait here and go in with one INSERT just
//! before its COMMIT. An accepted answer records two events: on PostgreSQL each INSERT
//! was a round trip of its own, and in a SQLite group-commit batch (batch.rs) a whole
//! batch's events now take one statement instead of two per answer. A savepoint that
//! rolls back drops the rows recorded inside it, so what commits is what was recorded
//! by the parts that committed, as before. Outside a transaction a row is written at once.

use diesel::prelude::*;
use std::cell::RefCell;

use super::schema::audit_log;
use super::DbConnection;
use crate::error::CoreError;

/// One event of the audit log, as `audit::record` makes it.
pub(crate) struct AuditRow {
    pub(crate) at: i64,
    pub(crate) event: String,
    pub(crate) user_id: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) dialect: String,
    pub(crate) ip: Option<String>,
    pub(crate) detail: Option<String>,
}

/// Rows per INSERT: SQLite binds at most 32,766 parameters in one statement.
const ROWS_PER_INSERT: usize = 1024;

thread_local! {
    /// The rows of the transaction open on this thread (a transaction never leaves the
    /// thread that began it: write_tx runs its closure in place, a batch on its thread).
    static PENDING: RefCell<Vec<AuditRow>> = const { RefCell::new(Vec::new()) };
}

/// Writes `row` now, or with the COMMIT of the transaction open on this thread.
pub(crate) fn add(conn: &mut DbConnection, row: AuditRow) -> Result<(), CoreError> {
    if super::in_transaction() {
        PENDING.with(|p| p.borrow_mut().push(row));
        return Ok(());
    }
    insert(conn, &[row])
}

/// Where a savepoint begins, for [`rollback_to`].
pub(super) fn mark() -> usize {
    PENDING.with(|p| p.borrow().len())
}

/// Drops the rows recorded since `mark` (their savepoint rolled back).
pub(super) fn rollback_to(mark: usize) {
    PENDING.with(|p| p.borrow_mut().truncate(mark));
}

/// Drops every waiting row (the transaction rolled back).
pub(super) fn discard() {
    rollback_to(0);
}

/// Inserts every waiting row, in order; called inside the transaction, before COMMIT.
pub(super) fn flush(conn: &mut DbConnection) -> Result<(), CoreError> {
    let rows = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    insert(conn, &rows)
}

fn insert(conn: &mut DbConnection, rows: &[AuditRow]) -> Result<(), CoreError> {
    // diesel's MultiConnection has no multi-row INSERT, so each backend's own is used;
    // and tuples of plain values, since rows of a struct would make SQLite's one INSERT
    // per row.
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let values: Vec<_> = chunk
            .iter()
            .map(|r| {
                (
                    audit_log::at.eq(r.at),
                    audit_log::event.eq(&r.event),
                    audit_log::user_id.eq(&r.user_id),
                    audit_log::username.eq(&r.username),
                    audit_log::dialect.eq(&r.dialect),
                    audit_log::ip.eq(&r.ip),
                    audit_log::detail.eq(&r.detail),
                )
            })
            .collect();
        let insert = diesel::insert_into(audit_log::table).values(values);
        match conn {
            DbConnection::Sqlite(c) => insert.execute(c)?,
            DbConnection::Postgresql(c) => insert.execute(c)?,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::batch::{Batcher, Completion};
    use crate::db::{connect, write_tx};
    use std::sync::mpsc;

    fn row(event: &str) -> AuditRow {
        AuditRow {
            at: 1,
            event: event.into(),
            user_id: None,
            username: Some("ann".into()),
            dialect: "test".into(),
            ip: None,
            detail: None,
        }
    }

    fn events(conn: &mut DbConnection) -> Vec<String> {
        audit_log::table
            .order(audit_log::id)
            .select(audit_log::event)
            .load(conn)
            .unwrap()
    }

    fn failing(conn: &mut DbConnection, event: &str) -> Result<(), CoreError> {
        add(conn, row(event))?;
        Err(CoreError::IncorrectCode)
    }

    /// Rows wait for their transaction's COMMIT, in order, and leave with a savepoint or
    /// a transaction that rolls back; outside a transaction a row is written at once.
    #[test]
    fn rows_commit_with_their_transaction_only() {
        let dir = tempfile::tempdir().unwrap();
        let pool = connect(dir.path().join("t.sqlite3").to_str().unwrap(), 1).unwrap();
        let mut conn = pool.get().unwrap();
        add(&mut conn, row("outside")).unwrap();
        assert_eq!(events(&mut conn), ["outside"]);
        write_tx(&mut conn, |conn| {
            add(conn, row("kept"))?;
            assert!(write_tx(conn, |conn| failing(conn, "undone")).is_err());
            add(conn, row("after"))?;
            assert_eq!(events(conn), ["outside"], "nothing before the COMMIT");
            Ok(())
        })
        .unwrap();
        assert_eq!(events(&mut conn), ["outside", "kept", "after"]);
        assert!(write_tx(&mut conn, |conn| failing(conn, "rolled back")).is_err());
        // More rows than one INSERT takes.
        write_tx(&mut conn, |conn| {
            (0..ROWS_PER_INSERT + 5).try_for_each(|i| add(conn, row(&format!("bulk{i}"))))
        })
        .unwrap();
        let all = events(&mut conn);
        assert_eq!(all.len(), 3 + ROWS_PER_INSERT + 5);
        assert_eq!(all[3], "bulk0");
        assert_eq!(all.last().unwrap(), &format!("bulk{}", ROWS_PER_INSERT + 4));
    }

    /// In a group-commit batch the rows of every job go in with the batch's COMMIT,
    /// except those of a job's part that rolled back.
    #[test]
    fn a_batch_commits_the_rows_of_its_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let path = path.to_str().unwrap();
        let pool = connect(path, 2).unwrap();
        let batcher = Batcher::start(pool.get().unwrap(), path, 64 << 20).unwrap();
        let (done, finished) = mpsc::channel();
        type Step = fn(&mut DbConnection) -> Result<(), CoreError>;
        let jobs: [Step; 3] = [
            |conn| write_tx(conn, |conn| add(conn, row("first"))),
            |conn| write_tx(conn, |conn| failing(conn, "undone")),
            |conn| add(conn, row("outside write_tx")),
        ];
        for job in jobs {
            let done = done.clone();
            batcher
                .submit(Box::new(move |conn| {
                    let outcome = job(conn).is_ok();
                    Box::new(move |committed: Result<(), String>| {
                        done.send((outcome, committed)).unwrap()
                    }) as Completion
                }))
                .unwrap();
        }
        let outcomes: Vec<_> = (0..3).map(|_| finished.recv().unwrap()).collect();
        assert!(outcomes.iter().all(|(_, committed)| committed.is_ok()));
        assert_eq!(
            outcomes.iter().map(|o| o.0).collect::<Vec<_>>(),
            [true, false, true]
        );
        let mut conn = pool.get().unwrap();
        assert_eq!(events(&mut conn), ["first", "outside write_tx"]);
    }
}

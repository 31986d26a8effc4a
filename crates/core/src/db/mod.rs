//! Storage: one diesel `MultiConnection` over SQLite (embedded default) and PostgreSQL,
//! pooled with r2d2. The backend is chosen by the URL scheme.
//!
//! Lookups by a unique key use `get_result`, not `first`: `first` binds its `LIMIT`
//! as a parameter, and SQLite re-prepares a statement whose LIMIT parameter is bound
//! anew, on every run (a sixth of the database thread in profiles).

pub(crate) mod batch;
pub(crate) mod deferred_audit;
pub mod schema;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::error::CoreError;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

pub type DbPool = Pool<ConnectionManager<DbConnection>>;
pub type PooledDb = PooledConnection<ConnectionManager<DbConnection>>;

/// Which backend a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// SQLite gets one connection, owned by the group-commit thread (db/batch.rs): it has
    /// one writer anyway, and every commit would reset other connections' page caches.
    pub fn default_pool_size(self) -> u32 {
        match self {
            Backend::Sqlite => 1,
            Backend::Postgres => 16,
        }
    }

    pub fn of_url(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// Per-connection settings: SQLite needs WAL, foreign keys and a busy timeout on every
/// connection, since they are connection-scoped pragmas.
#[derive(Debug)]
struct ConnectionSetup;

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for ConnectionSetup {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        if let DbConnection::Sqlite(c) = conn {
            // busy_timeout first, so the others wait for a lock instead of failing. A
            // larger checkpoint interval copies hot pages back to the file less often (the
            // server's own writer leaves checkpoints to a background thread). The page
            // cache is 32 MiB: 64 MiB answered no faster (a COMMIT after a page split
            // scans the whole cache, README "Where the time goes"; the kernel's page
            // cache serves the rest to pread()) and held the server's RSS at 118 MiB.
            c.batch_execute(
                "PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; \
                 PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 10000; \
                 PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY;",
            )
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// The file of a SQLite URL (a path, or `sqlite://` and a path).
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://").unwrap_or(url)
}

/// Opens a pool on `url` (a `postgres://` URL, or a SQLite file path or `sqlite://` URL)
/// and runs the embedded migrations.
pub fn connect(url: &str, max_size: u32) -> Result<DbPool, CoreError> {
    let target = sqlite_path(url);
    if Backend::of_url(url) == Backend::Sqlite {
        // WAL is a property of the file: set it once, before the pool opens connections.
        let mut conn = SqliteConnection::establish(target)
            .map_err(|e| CoreError::Storage(format!("cannot open database: {e}")))?;
        conn.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL;")?;
    }
    if Backend::of_url(url) == Backend::Postgres {
        // One connection first, so that its own error (TLS, certificate, authentication,
        // host) is told at once rather than as r2d2's timeout after 30 s of retries.
        PgConnection::establish(url)
            .map_err(|e| CoreError::Storage(format!("cannot connect to PostgreSQL: {e}")))?;
    }
    let pool = Pool::builder()
        .max_size(max_size)
        // A broken connection shows itself on use; a ping before every use costs more.
        .test_on_check_out(false)
        .connection_customizer(Box::new(ConnectionSetup))
        .build(ConnectionManager::<DbConnection>::new(target))
        .map_err(|e| CoreError::Storage(format!("cannot open database: {e}")))?;
    let mut conn = pool.get()?;
    migrate(&mut conn)?;
    Ok(pool)
}

fn migrate(conn: &mut DbConnection) -> Result<(), CoreError> {
    let result = match conn {
        DbConnection::Postgresql(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ()),
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
    };
    result.map_err(|e| CoreError::Storage(format!("migration failed: {e}")))
}

/// A fixed SQL statement as a type of its own, so diesel prepares it once and keeps it in
/// its statement cache. `batch_execute` parses its text on every call (for the two
/// savepoint commands of every job, a tenth of the database thread's time), diesel marks
/// every `UpdateStatement` unsafe to cache (its SET list may vary), and `sql_query` is
/// never cached, so those were parsed anew on each run. Each use declares its own type,
/// since the statement cache knows a statement by its type alone. A part is SQL text,
/// a bind (`(field: SqlType)`, of `diesel::sql_types`), or another cached statement held
/// in a field (`[field]`), so that a statement built of others repeats none of their
/// rules. Rows come back with `get_result`/`load` into a `QueryableByName`:
/// `cached_statement!(Name { a: String, b: i64 } => "… ", (a: Text), " … ", (b: BigInt));`
macro_rules! cached_statement {
    ($name:ident { $($field:ident: $ty:ty),* $(,)? } => $($part:tt),+ $(,)?) => {
        pub(crate) struct $name {
            $(pub(crate) $field: $ty),*
        }

        impl diesel::query_builder::QueryId for $name {
            type QueryId = $name;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl diesel::query_builder::Query for $name {
            type SqlType = diesel::sql_types::Untyped;
        }

        impl<DB> diesel::query_builder::QueryFragment<DB> for $name
        where
            DB: diesel::backend::Backend
                + diesel::sql_types::HasSqlType<diesel::sql_types::Text>
                + diesel::sql_types::HasSqlType<diesel::sql_types::BigInt>
                + diesel::sql_types::HasSqlType<diesel::sql_types::Integer>,
            String: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
            i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
            i32: diesel::serialize::ToSql<diesel::sql_types::Integer, DB>,
        {
            fn walk_ast<'b>(
                &'b self,
                mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
            ) -> diesel::QueryResult<()> {
                #[allow(unused_imports)]
                use diesel::sql_types::*;
                $(cached_statement!(@part self, out, $part);)+
                Ok(())
            }
        }

        impl<C> diesel::RunQueryDsl<C> for $name {}
    };
    (@part $self:ident, $out:ident, ($field:ident: $st:ty)) => {
        $out.push_bind_param::<$st, _>(&$self.$field)?;
    };
    (@part $self:ident, $out:ident, [$field:ident]) => {
        diesel::query_builder::QueryFragment::<DB>::walk_ast(&$self.$field, $out.reborrow())?;
    };
    (@part $self:ident, $out:ident, $sql:expr) => {
        $out.push_sql($sql);
    };
}
pub(crate) use cached_statement;

cached_statement!(Savepoint {} => "SAVEPOINT write_tx");
cached_statement!(ReleaseSavepoint {} => "RELEASE write_tx");

/// A nested transaction: a savepoint, so that a failure undoes only this part.
fn savepoint<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, CoreError>,
) -> Result<T, CoreError> {
    use diesel::RunQueryDsl;
    Savepoint {}.execute(conn)?;
    let audit_mark = deferred_audit::mark();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)));
    if !matches!(outcome, Ok(Ok(_))) {
        deferred_audit::rollback_to(audit_mark);
        let _ = conn.batch_execute("ROLLBACK TO write_tx; RELEASE write_tx");
    }
    match outcome {
        Ok(Ok(value)) => {
            ReleaseSavepoint {}.execute(conn)?;
            Ok(value)
        }
        Ok(Err(e)) => Err(e),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

thread_local! {
    /// Set while this thread has a transaction of its own open (outside group commit).
    static IN_TX: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` in a write transaction; nested in another one (or inside a group-commit
/// batch, batch.rs) it becomes a savepoint, so that a failure undoes only its own part
/// while the enclosing transaction goes on (e.g. a rejected code's count commits while
/// the effects of the code roll back). SQLite gets `BEGIN IMMEDIATE` so that a
/// transaction which reads before it writes takes the write lock up front instead of
/// failing with SQLITE_BUSY when it upgrades; PostgreSQL uses row locks.
pub fn write_tx<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, CoreError>,
) -> Result<T, CoreError> {
    if in_transaction() {
        return savepoint(conn, f);
    }
    let begin = match conn {
        DbConnection::Sqlite(_) => "BEGIN IMMEDIATE",
        DbConnection::Postgresql(_) => "BEGIN",
    };
    conn.batch_execute(begin)?;
    // A panic must not hand a connection with an open transaction back to the pool.
    IN_TX.with(|t| t.set(true));
    // The waiting audit rows go in last, inside the transaction.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        f(conn).and_then(|value| deferred_audit::flush(conn).map(|()| value))
    }));
    IN_TX.with(|t| t.set(false));
    if !matches!(outcome, Ok(Ok(_))) {
        deferred_audit::discard();
        // The original error matters more than a failed rollback.
        let _ = conn.batch_execute("ROLLBACK");
    }
    match outcome {
        Ok(Ok(value)) => {
            conn.batch_execute("COMMIT")?;
            Ok(value)
        }
        Ok(Err(e)) => Err(e),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Whether this thread has a transaction open (its own, or a group-commit batch's).
pub(crate) fn in_transaction() -> bool {
    batch::in_batch() || IN_TX.with(std::cell::Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::migration::MigrationSource;
    use diesel::sqlite::Sqlite;
    use diesel::RunQueryDsl;

    /// The migration that rebuilds `sessions` as a rowid table keeps every session and
    /// its columns, and its revert gives them back too.
    #[test]
    fn reordering_the_sessions_table_keeps_every_session() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        let migrations = MigrationSource::<Sqlite>::migrations(&SQLITE_MIGRATIONS).unwrap();
        let at = migrations
            .iter()
            .position(|m| {
                m.name()
                    .to_string()
                    .ends_with("sessions_in_insertion_order")
            })
            .unwrap();
        conn.applied_migrations().unwrap(); // creates diesel's bookkeeping table
        for m in &migrations[..at] {
            conn.run_migration(m).unwrap();
        }
        conn.batch_execute(
            "INSERT INTO users (id, username, created_at) VALUES ('u1', 'ann', 1);
             INSERT INTO sessions (refresh_hash, id, user_id, dialect, csrf_hash, created_at,
                 expires_at, revoked, generation)
             VALUES ('h2', 's2', 'u1', 'saasu', NULL, 20, 200, TRUE, 7),
                    ('h1', 's1', 'u1', 'ucloud', 'c1', 10, 100, FALSE, 0);",
        )
        .unwrap();
        #[derive(diesel::QueryableByName)]
        struct Text {
            #[diesel(sql_type = diesel::sql_types::Text)]
            text: String,
        }
        let sessions = |conn: &mut SqliteConnection| -> Vec<String> {
            diesel::sql_query(
                "SELECT refresh_hash || id || user_id || dialect || COALESCE(csrf_hash, '-')
                     || created_at || expires_at || revoked || generation AS text
                 FROM sessions ORDER BY refresh_hash",
            )
            .load::<Text>(conn)
            .unwrap()
            .into_iter()
            .map(|r| r.text)
            .collect()
        };
        let before = sessions(&mut conn);
        assert_eq!(before.len(), 2);
        let layout = |conn: &mut SqliteConnection| {
            diesel::sql_query("SELECT sql AS text FROM sqlite_master WHERE name = 'sessions'")
                .get_result::<Text>(conn)
                .unwrap()
                .text
        };
        assert!(layout(&mut conn).contains("WITHOUT ROWID"));

        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        assert!(!layout(&mut conn).contains("WITHOUT ROWID"));
        assert_eq!(sessions(&mut conn), before);
        conn.revert_last_migration(SQLITE_MIGRATIONS).unwrap();
        assert!(layout(&mut conn).contains("WITHOUT ROWID"));
        assert_eq!(sessions(&mut conn), before);
    }
}

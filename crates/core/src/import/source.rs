//! The source database of an import, only ever read: PostgreSQL and SQLite through
//! diesel (`sql_query`), MySQL/MariaDB through the pure-Rust `mysql` client (cargo
//! feature `mysql`). Errors name the database's complaint, never the URL (it may hold
//! a password).

use diesel::connection::SimpleConnection;
use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::SqlQuery;
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel::{Connection, QueryableByName, RunQueryDsl};

use crate::{CoreError, CoreResult};

pub(crate) enum SourceDb {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
    #[cfg(feature = "mysql")]
    Mysql(mysql::Conn),
}

pub(crate) fn source_error(e: impl std::fmt::Display) -> CoreError {
    CoreError::Storage(format!("source database: {e}"))
}

impl SourceDb {
    pub(crate) fn open(url: &str) -> CoreResult<SourceDb> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut conn = PgConnection::establish(url).map_err(source_error)?;
            // Nothing here writes; make sure of it.
            conn.batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                .map_err(source_error)?;
            return Ok(SourceDb::Postgres(conn));
        }
        if let Some(rest) = url
            .strip_prefix("mysql://")
            .or_else(|| url.strip_prefix("mariadb://"))
        {
            return open_mysql(rest);
        }
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        // SQLite would create a missing file; an import reads an existing one.
        if !std::path::Path::new(path).is_file() {
            return Err(CoreError::InvalidConfig(
                "source database: no such SQLite file (give postgres://…, mysql://… or the path of a SQLite file)".into(),
            ));
        }
        let mut conn = SqliteConnection::establish(path).map_err(source_error)?;
        conn.batch_execute("PRAGMA query_only = ON; PRAGMA busy_timeout = 10000;")
            .map_err(source_error)?;
        Ok(SourceDb::Sqlite(conn))
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            SourceDb::Postgres(_) => "postgres",
            SourceDb::Sqlite(_) => "sqlite",
            #[cfg(feature = "mysql")]
            SourceDb::Mysql(_) => "mysql",
        }
    }

    /// Rows of `sql` on a diesel backend (PostgreSQL or SQLite).
    pub(crate) fn load<T>(&mut self, sql: &str) -> CoreResult<Vec<T>>
    where
        T: QueryableByName<Pg> + QueryableByName<Sqlite> + 'static,
    {
        let query: SqlQuery = diesel::sql_query(sql);
        match self {
            SourceDb::Postgres(c) => query.load(c).map_err(source_error),
            SourceDb::Sqlite(c) => query.load(c).map_err(source_error),
            #[cfg(feature = "mysql")]
            SourceDb::Mysql(_) => Err(CoreError::Internal(
                "a diesel query on a MySQL source".into(),
            )),
        }
    }

    /// Whether `table` exists (in `schema`, on PostgreSQL).
    pub(crate) fn has_table(&mut self, schema: &str, table: &str) -> CoreResult<bool> {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let quote = |s: &str| s.replace('\'', "''");
        let sql = match self {
            SourceDb::Postgres(_) => format!(
                "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = '{}' AND table_name = '{}'",
                quote(schema),
                quote(table)
            ),
            SourceDb::Sqlite(_) => format!(
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = '{}'",
                quote(table)
            ),
            #[cfg(feature = "mysql")]
            SourceDb::Mysql(c) => {
                use mysql::prelude::Queryable;
                let n: Option<i64> = c
                    .exec_first(
                        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                        (table,),
                    )
                    .map_err(source_error)?;
                return Ok(n.unwrap_or(0) > 0);
            }
        };
        Ok(self.load::<Count>(&sql)?.first().is_some_and(|c| c.n > 0))
    }
}

#[cfg(feature = "mysql")]
fn open_mysql(rest: &str) -> CoreResult<SourceDb> {
    let opts = mysql::Opts::from_url(&format!("mysql://{rest}")).map_err(|_| {
        CoreError::InvalidConfig("source database: not a valid mysql:// URL".into())
    })?;
    let mut conn = mysql::Conn::new(opts).map_err(source_error)?;
    use mysql::prelude::Queryable;
    conn.query_drop("SET SESSION TRANSACTION READ ONLY")
        .map_err(source_error)?;
    Ok(SourceDb::Mysql(conn))
}

#[cfg(not(feature = "mysql"))]
fn open_mysql(_rest: &str) -> CoreResult<SourceDb> {
    Err(CoreError::InvalidConfig(
        "source database: this build has no MySQL client (cargo feature `import-mysql`)".into(),
    ))
}

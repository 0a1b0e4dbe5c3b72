//! Database connection: SQLite or PostgreSQL, chosen at run time from the URL.
//!
//! Queries are written once with `$1`-style placeholders (both SQLite and PostgreSQL accept
//! them) and run through [`on_db!`], which expands the same code for each backend so each
//! expansion is type-checked against its own driver. We deliberately avoid `sqlx::Any`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::config::{Config, redact_url_password};

pub static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
pub static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// A connection pool to one of the supported databases.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Runs `$body` with `$pool` bound to the concrete pool and `$DB` to the concrete
/// `sqlx::Database` type, once per backend.
#[macro_export]
macro_rules! on_db {
    ($db:expr, |$pool:ident, $DB:ident| $body:expr) => {
        match $db {
            $crate::store::db::Db::Sqlite($pool) => {
                #[allow(dead_code)]
                type $DB = ::sqlx::Sqlite;
                $body
            }
            $crate::store::db::Db::Postgres($pool) => {
                #[allow(dead_code)]
                type $DB = ::sqlx::Postgres;
                $body
            }
        }
    };
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open the database at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    #[error("applying migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}

impl Db {
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Connects according to the configuration, creating the SQLite file if needed.
    pub async fn connect(config: &Config) -> Result<Db, DbError> {
        let url = config.database_url();
        let shown = redact_url_password(&url);
        let connect_err = |source| DbError::Connect {
            url: shown.clone(),
            source,
        };
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(&url)
                .map_err(connect_err)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(config.database.sqlite_busy_timeout)
                .foreign_keys(true)
                .pragma("temp_store", "memory")
                // Rows cross from SQLite's worker thread in a channel; room for a whole page
                // lets the worker finish without waiting for the reader.
                .row_buffer_size(1024);
            let pool = SqlitePoolOptions::new()
                .max_connections(config.database.max_connections)
                .min_connections(1)
                .acquire_timeout(config.database.acquire_timeout)
                .connect_with(options)
                .await
                .map_err(connect_err)?;
            Ok(Db::Sqlite(pool))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(&url)
                .map_err(connect_err)?
                .application_name("monti");
            let pool = PgPoolOptions::new()
                .max_connections(config.database.max_connections)
                .acquire_timeout(config.database.acquire_timeout)
                // A pool keeps working across a database restart: a connection that sat idle
                // is checked before use and replaced if broken. Checking busy connections on
                // every acquire would cost a round trip per query.
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for > Duration::from_secs(5) {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .idle_timeout(Some(Duration::from_secs(300)))
                .connect_with(options)
                .await
                .map_err(connect_err)?;
            Ok(Db::Postgres(pool))
        } else {
            Err(DbError::UnsupportedUrl(shown))
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self {
            Db::Sqlite(_) => &SQLITE_MIGRATIONS,
            Db::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies pending migrations; returns how many were applied.
    pub async fn migrate(&self) -> Result<usize, DbError> {
        let before = self.applied_versions().await.unwrap_or_default().len();
        on_db!(self, |pool, DB| self.migrator().run(pool).await)?;
        let after = self.applied_versions().await?.len();
        Ok(after.saturating_sub(before))
    }

    async fn applied_versions(&self) -> Result<Vec<i64>, sqlx::Error> {
        let sql = "SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version";
        on_db!(self, |pool, DB| sqlx::query_scalar::<DB, i64>(sql)
            .fetch_all(pool)
            .await)
    }

    /// Whether the database answers and every embedded migration has been applied.
    pub async fn readiness(&self) -> Result<(), String> {
        on_db!(self, |pool, DB| sqlx::query_scalar::<DB, i64>(
            "SELECT CAST(1 AS BIGINT)"
        )
        .fetch_one(pool)
        .await)
        .map_err(|e| format!("database unreachable: {e}"))?;
        let applied = self
            .applied_versions()
            .await
            .map_err(|e| format!("cannot read migrations: {e}"))?;
        let missing: Vec<i64> = self
            .migrator()
            .iter()
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("migrations not applied: {missing:?} (run `monti migrate`)"))
        }
    }

    pub async fn close(&self) {
        on_db!(self, |pool, DB| pool.close().await)
    }
}

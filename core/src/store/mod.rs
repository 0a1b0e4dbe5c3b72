//! Persistence, and the only room that holds SQL. The database handle is private to this
//! module; every tenant-owned read and write takes a [`TenantScope`] or a [`TenantId`], which
//! only the authentication layer or an explicit [`SystemActor`] can obtain: a request can name
//! ids, but it can never name the tenant, so another tenant's rows are out of reach by
//! construction.

pub mod accounts;
pub mod agent_reports;
pub mod alert_rules;
pub mod audit;
pub mod call_records;
pub mod calls;
pub mod credentials;
pub(crate) mod db;
pub mod entities;
pub mod events;
pub mod floor;
pub mod invitations;
pub mod list;
pub mod mail_outbox;
pub mod oidc_providers;
pub mod plugins;
pub mod provisioning;
pub mod recording_sources;
pub mod rekey;
pub mod reports;
pub mod resource;
pub mod saved_reports;
mod scope;
pub mod sessions;
pub mod telephony;
pub mod tenants;
pub mod tokens;

use crate::config::Config;
use crate::domain::Validation;
use crate::secrets::SecretBox;

use db::Db;
pub use db::{Backend, DbError};
pub use list::{ListParams, Page};
pub use resource::{Listable, Writable};
pub use scope::{Dimension, SystemActor, TenantId, TenantScope, Visibility};

/// The store: a database plus the key that protects stored secrets.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    pub secrets: SecretBox,
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("{0}")]
    DataDir(String),
    #[error("{0}")]
    SecretKey(String),
    #[error("{0}")]
    Upgrade(String),
}

impl Store {
    /// Connects to the configured database, applies pending migrations and loads the key that
    /// seals stored secrets (creating it in the data directory on first start).
    pub async fn open(config: &Config) -> Result<Store, OpenError> {
        let url = config.database_url();
        if url.starts_with("sqlite:") || config.secret_key.is_none() {
            crate::config::prepare_data_dir(&config.data_dir).map_err(|e| OpenError::DataDir(format!("{e:#}")))?;
        }
        let db = Db::connect(config).await?;
        let applied = db.migrate().await?;
        if applied > 0 {
            tracing::info!(applied, "database migrations applied");
        }
        let secrets = match &config.secret_key {
            Some(key) => SecretBox::from_base64(key.expose()),
            None => SecretBox::load_or_create(&config.data_dir),
        }
        .map_err(|e| OpenError::SecretKey(e.to_string()))?;
        let store = Store { db, secrets };
        // Data the schema alone cannot bring in line (once; nothing to do afterwards).
        match call_records::rekey_legacy(&store).await {
            Ok(0) => {}
            Ok(rekeyed) => tracing::info!(rekeyed, "imported CDRs are now identified by their fields"),
            Err(e) => {
                return Err(OpenError::Upgrade(format!(
                    "identifying imported CDRs by their fields: {e}"
                )));
            }
        }
        match events::backfill_calls(&store).await {
            Ok(0) => {}
            Ok(read) => tracing::info!(read, "the call history now holds the calls of the stored events"),
            Err(e) => return Err(OpenError::Upgrade(format!("building the call history: {e}"))),
        }
        Ok(store)
    }

    /// Connects and applies pending migrations only (`monti migrate`); the number applied.
    pub async fn migrate(config: &Config) -> Result<usize, OpenError> {
        if config.database_url().starts_with("sqlite:") {
            crate::config::prepare_data_dir(&config.data_dir).map_err(|e| OpenError::DataDir(format!("{e:#}")))?;
        }
        let db = Db::connect(config).await?;
        let applied = db.migrate().await?;
        db.close().await;
        Ok(applied)
    }

    /// The same database with another sealing key (after `monti rekey`, say).
    pub fn with_secrets(&self, secrets: SecretBox) -> Store {
        Store {
            db: self.db.clone(),
            secrets,
        }
    }

    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Whether the database answers a trivial query now.
    pub async fn readiness(&self) -> Result<(), String> {
        self.db.readiness().await
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.db.close().await
    }
}

/// A value bound into a query. Nulls carry their type because PostgreSQL needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
    Json(serde_json::Value),
}

/// Binds a sequence of [`SqlValue`]s onto a query, in order.
#[macro_export]
macro_rules! bind_values {
    ($query:expr, $values:expr) => {{
        let mut query = $query;
        for value in $values {
            query = match value {
                $crate::store::SqlValue::Text(v) => query.bind(v),
                $crate::store::SqlValue::OptText(v) => query.bind(v),
                $crate::store::SqlValue::Int(v) => query.bind(v),
                $crate::store::SqlValue::OptInt(v) => query.bind(v),
                $crate::store::SqlValue::Bool(v) => query.bind(v),
                $crate::store::SqlValue::Json(v) => query.bind(::sqlx::types::Json(v)),
            };
        }
        query
    }};
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} not found")]
    NotFound { kind: &'static str },
    #[error("{message}")]
    Conflict { field: Option<String>, message: String },
    #[error("the {kind} was changed by someone else (now at version {current})")]
    PreconditionFailed { kind: &'static str, current: i64 },
    #[error("invalid input")]
    Invalid(Validation),
    #[error("{0}")]
    BadRequest(String),
    /// The caller may see the thing but not do this to it (not theirs, say).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    LimitReached(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Too much work queued; the caller should retry shortly.
    #[error("{0}")]
    Busy(String),
    #[error("internal storage error: {0}")]
    Internal(String),
}

impl From<Validation> for StoreError {
    fn from(v: Validation) -> Self {
        StoreError::Invalid(v)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::WorkerCrashed | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::RowNotFound => StoreError::NotFound { kind: "row" },
            sqlx::Error::Database(db) => match db.kind() {
                ErrorKind::UniqueViolation => StoreError::Conflict {
                    field: None,
                    message: db.message().to_owned(),
                },
                ErrorKind::ForeignKeyViolation => StoreError::Conflict {
                    field: None,
                    message: "the change conflicts with related records".into(),
                },
                _ => {
                    let code = db.code().unwrap_or_default();
                    let postgres = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some();
                    if is_unavailable_code(&code, postgres) {
                        StoreError::Unavailable(db.message().to_owned())
                    } else {
                        StoreError::Internal(format!("{e} (code {code})"))
                    }
                }
            },
            _ => StoreError::Internal(e.to_string()),
        }
    }
}

/// Error codes that mean "the database cannot serve this now", not "the request is wrong".
fn is_unavailable_code(code: &str, postgres: bool) -> bool {
    // SQLite primary codes (extended codes keep them in the low byte): 5 BUSY, 6 LOCKED,
    // 8 READONLY, 10 IOERR, 13 FULL, 14 CANTOPEN. PostgreSQL classes: 08 connection,
    // 28 authorization (e.g. rotated password), 3D database missing, 53 insufficient
    // resources, 55 not in prerequisite state (connections disallowed), 57 operator
    // intervention (e.g. shutdown).
    if !postgres {
        return code
            .parse::<i64>()
            .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 8 | 10 | 13 | 14));
    }
    ["08", "28", "3D", "53", "55", "57"]
        .iter()
        .any(|class| code.starts_with(class))
}

pub type StoreResult<T> = Result<T, StoreError>;

//! Persistence. Every tenant-owned read and write goes through a [`TenantScope`], which only
//! the authentication layer (or the operator's CLI) can create: a request can name ids, but it
//! can never name the tenant, so another tenant's rows are out of reach by construction.

pub mod accounts;
pub mod alert_rules;
pub mod audit;
pub mod call_records;
pub mod credentials;
pub mod entities;
pub mod events;
pub mod invitations;
pub mod list;
pub mod oidc_providers;
pub mod plugins;
pub mod rekey;
pub mod resource;
pub mod sessions;
pub mod tenants;
pub mod tokens;

use crate::db::Db;
use crate::domain::{Role, Validation};
use crate::secrets::SecretBox;

pub use list::{ListParams, Page};
pub use resource::{Listable, Writable};

/// The tenant a caller acts for, established from verified credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope {
    tenant_id: String,
    tenant_slug: String,
    role: Role,
    actor: String,
    visibility: Visibility,
}

/// Which parts of a tenant a scoped supervisor sees. `None` means everything; `Some(ids)` only
/// the listed teams (or locations).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Visibility {
    pub teams: Option<Vec<String>>,
    pub locations: Option<Vec<String>>,
}

impl Visibility {
    /// From a membership's scopes, where an empty list means "not limited".
    pub fn from_scopes(teams: Vec<String>, locations: Vec<String>) -> Self {
        Self {
            teams: (!teams.is_empty()).then_some(teams),
            locations: (!locations.is_empty()).then_some(locations),
        }
    }

    pub fn is_limited(&self) -> bool {
        self.teams.is_some() || self.locations.is_some()
    }

    pub fn allowed(&self, dimension: Dimension) -> Option<&[String]> {
        match dimension {
            Dimension::Team => self.teams.as_deref(),
            Dimension::Location => self.locations.as_deref(),
        }
    }

    /// Whether one team (or location) is visible.
    pub fn includes(&self, dimension: Dimension, id: &str) -> bool {
        self.allowed(dimension).is_none_or(|ids| ids.iter().any(|i| i == id))
    }

    /// Whether a row in `team` at `location` is visible.
    pub fn admits(&self, team: Option<&str>, location: Option<&str>) -> bool {
        let fits = |allowed: &Option<Vec<String>>, value: Option<&str>| match allowed {
            None => true,
            Some(ids) => value.is_some_and(|v| ids.iter().any(|id| id == v)),
        };
        fits(&self.teams, team) && fits(&self.locations, location)
    }
}

/// What a visibility restriction is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Team,
    Location,
}

impl TenantScope {
    /// Only for code that has verified who the caller is (token lookup, operator CLI).
    pub(crate) fn verified(tenant_id: String, tenant_slug: String, role: Role, actor: String) -> Self {
        Self {
            tenant_id,
            tenant_slug,
            role,
            actor,
            visibility: Visibility::default(),
        }
    }

    /// Narrows what this caller sees (a supervisor scoped to teams or locations).
    pub(crate) fn with_visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = visibility;
        self
    }

    pub fn visibility(&self) -> &Visibility {
        &self.visibility
    }

    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }
    pub fn tenant_slug(&self) -> &str {
        &self.tenant_slug
    }
    pub fn role(&self) -> Role {
        self.role
    }
    /// Who acts (for attribution): `token:<id>`, `cli`, later `user:<id>`.
    pub fn actor(&self) -> &str {
        &self.actor
    }
}

/// The store: a database plus the key that protects stored secrets.
#[derive(Clone, Debug)]
pub struct Store {
    pub db: Db,
    pub secrets: SecretBox,
}

impl Store {
    pub fn new(db: Db, secrets: SecretBox) -> Self {
        Self { db, secrets }
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

//! Generic create/read/update/delete/list for tenant-owned collections.
//!
//! A collection describes its table, fields and validation once (see `entities/`); this module
//! turns that into SQL that is always restricted to the caller's tenant, with optimistic
//! concurrency (a `version` per row), referential checks that explain themselves, and unique
//! violations reported against the field that caused them.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, Row};

use super::list::{Field, FieldKind, ListParams, Page, Restriction, TenantFilter, build_list_query, encode_cursor};
use super::{Dimension, SqlValue, Store, StoreError, StoreResult, TenantScope};
use crate::domain::time::now_ms;
use crate::domain::{Validation, new_id};
use crate::secrets::SecretBox;
use crate::{bind_values, on_db};

/// A readable, tenant-owned collection.
pub trait Listable:
    Sized + Send + Unpin + 'static + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow>
{
    /// Singular noun for messages ("agent").
    const KIND: &'static str;
    /// Plural, used in URLs and as the API tag ("agents").
    const COLLECTION: &'static str;
    /// FROM clause (a table, or a join for composite views).
    const FROM: &'static str;
    /// Column list; must produce the fields `FromRow` expects.
    const SELECT: &'static str;
    const ID_COLUMN: &'static str = "id";
    const TENANT_COLUMN: &'static str = "tenant_id";
    /// Fields clients may filter and sort by.
    const FIELDS: &'static [Field];
    /// Columns matched by `?q=` (case-insensitive substring).
    const SEARCH: &'static [&'static str] = &[];
    /// One line for the API reference.
    const DESCRIPTION: &'static str;
    /// Whether database triggers keep a version of this collection in `collection_versions`
    /// (under the table name in `FROM`), which lets list pages be cached and given ETags.
    const VERSIONED: bool = false;
    /// Columns a scoped caller's visibility applies to (agents by team and location).
    const RESTRICTED_BY: &'static [(&'static str, Dimension)] = &[];
    /// A column naming the agent a row belongs to (or none): a scoped caller sees the row only
    /// with the agent, so another team's SIP endpoint or direct number stays out of sight.
    const AGENT_REFERENCE: Option<&'static str> = None;

    /// What the API returns for a row.
    type View: Serialize + utoipa::ToSchema + Send + 'static;
    fn view(self) -> Self::View;
    fn id(&self) -> &str;
    fn version(&self) -> i64;

    fn id_field() -> Field {
        Field::new("id", Self::ID_COLUMN, FieldKind::Text).sort_only()
    }
}

/// A column that points at another collection; checked so the error names the field.
pub struct Reference {
    pub column: &'static str,
    pub field: &'static str,
    pub table: &'static str,
    pub target_column: &'static str,
    pub kind: &'static str,
}

/// Rows elsewhere that block deleting a row of this collection.
pub struct Dependent {
    pub table: &'static str,
    pub column: &'static str,
    pub label: &'static str,
}

/// A unique index and the field it protects.
pub struct Unique {
    /// Substrings of the database's error that identify the index (SQLite and PostgreSQL
    /// word it differently).
    pub needles: &'static [&'static str],
    pub field: &'static str,
    pub message: &'static str,
}

/// What a collection's input mapping may need besides the input.
pub struct WriteContext<'a> {
    pub tenant_id: &'a str,
    pub id: &'a str,
    pub secrets: &'a SecretBox,
}

pub type Columns = Vec<(&'static str, SqlValue)>;

/// A collection clients may create, update and delete.
pub trait Writable: Listable {
    const TABLE: &'static str;
    const ID_PREFIX: &'static str;
    const UNIQUE: &'static [Unique] = &[];
    const REFERENCES: &'static [Reference] = &[];
    const DEPENDENTS: &'static [Dependent] = &[];
    /// Key in the tenant's `limits` capping how many rows it may have.
    const LIMIT_KEY: Option<&'static str> = None;

    type Create: DeserializeOwned + utoipa::ToSchema + Send + 'static;
    type Update: DeserializeOwned + utoipa::ToSchema + Send + 'static;

    fn insert_columns(input: Self::Create, cx: &WriteContext<'_>) -> Result<Columns, Validation>;
    fn update_columns(input: Self::Update, current: &Self, cx: &WriteContext<'_>) -> Result<Columns, Validation>;
}

pub async fn list<R: Listable>(store: &Store, scope: &TenantScope, params: &ListParams) -> StoreResult<Page<R::View>> {
    let restrictions = restrictions::<R>(scope);
    let owner = TenantFilter::Tenant {
        column: R::TENANT_COLUMN,
        id: scope.tenant_id(),
    };
    list_filtered::<R>(store, owner, &restrictions, params).await
}

/// A page of rows chosen by owner and restrictions; `list` is the tenant-scoped form.
pub async fn list_filtered<R: Listable>(
    store: &Store,
    owner: TenantFilter<'_>,
    restrictions: &[Restriction<'_>],
    params: &ListParams,
) -> StoreResult<Page<R::View>> {
    let spec = params.parse(R::FIELDS, R::id_field(), !R::SEARCH.is_empty())?;
    let query = build_list_query(R::SELECT, R::FROM, owner, restrictions, R::SEARCH, &spec);
    let limit = spec.limit as usize;
    let (items, last_keys, more) = on_db!(&store.db, |pool, DB| {
        let rows = bind_values!(sqlx::query::<DB>(&query.sql), query.args)
            .fetch_all(pool)
            .await?;
        let more = rows.len() > limit;
        let mut items = Vec::with_capacity(rows.len().min(limit));
        let mut last_keys = Vec::new();
        for (i, row) in rows.iter().take(limit).enumerate() {
            items.push(R::from_row(row)?.view());
            if i + 1 == limit.min(rows.len()) {
                for (k, (field, _)) in spec.sort.iter().enumerate() {
                    let col = format!("_sort_key_{k}");
                    last_keys.push(match field.kind {
                        FieldKind::Text => serde_json::Value::from(row.try_get::<String, _>(col.as_str())?),
                        FieldKind::Int | FieldKind::Time => {
                            serde_json::Value::from(row.try_get::<i64, _>(col.as_str())?)
                        }
                        FieldKind::Bool => serde_json::Value::from(row.try_get::<bool, _>(col.as_str())?),
                    });
                }
            }
        }
        Ok::<_, StoreError>((items, last_keys, more))
    })?;
    let next_cursor = more.then(|| encode_cursor(&spec, last_keys));
    Ok(Page { items, next_cursor })
}

/// The version of a tenant's collection (0 before its first change).
pub async fn collection_version<R: Listable>(store: &Store, scope: &TenantScope) -> StoreResult<i64> {
    let version: Option<i64> = on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, i64>(
            "SELECT version FROM collection_versions WHERE tenant_id = $1 AND collection = $2",
        )
        .bind(scope.tenant_id())
        .bind(R::FROM)
        .fetch_optional(pool)
        .await
    })?;
    Ok(version.unwrap_or(0))
}

// What a caller's visibility keeps is turned into SQL here and only here: collections through
// `restrictions`, and the store's own queries about agents (queue members, alerts) through the
// functions after it, so a scoped supervisor sees the same agents everywhere.

/// What the caller's visibility keeps of this collection (lists, single rows and counts all use
/// it).
pub fn restrictions<R: Listable>(scope: &TenantScope) -> Vec<Restriction<'_>> {
    let visibility = scope.visibility();
    let mut out: Vec<Restriction<'_>> = R::RESTRICTED_BY
        .iter()
        .filter_map(|(column, dimension)| {
            Some(Restriction::In {
                column,
                allowed: visibility.allowed(*dimension)?,
            })
        })
        .collect();
    out.extend(R::AGENT_REFERENCE.and_then(|column| agent_reference(scope, column)));
    out
}

/// The caller's visibility of agents as `(column, allowed ids)` pairs of the agents table.
pub fn agent_restrictions(scope: &TenantScope) -> Vec<(&'static str, &[String])> {
    use super::entities::agents::Agent;
    Agent::RESTRICTED_BY
        .iter()
        .filter_map(|(column, dimension)| Some((*column, scope.visibility().allowed(*dimension)?)))
        .collect()
}

/// Keeps rows whose `column` names no agent or an agent the caller sees; `None` for a caller
/// who sees every agent.
pub fn agent_reference<'a>(scope: &'a TenantScope, column: &'a str) -> Option<Restriction<'a>> {
    scope.visibility().is_limited().then(|| Restriction::Through {
        column,
        table: super::entities::agents::Agent::FROM,
        tenant_id: scope.tenant_id(),
        inner: agent_restrictions(scope),
    })
}

/// ` AND …` keeping rows of the agents table (its columns prefixed with `prefix`, e.g. `a.`)
/// that the caller sees; empty for a caller who sees every agent.
pub fn visible_agents(scope: &TenantScope, args: &mut Vec<SqlValue>, prefix: &str) -> String {
    let mut sql = String::new();
    for (column, allowed) in agent_restrictions(scope) {
        sql.push_str(" AND ");
        sql.push_str(&super::list::restriction_condition(
            args,
            &format!("{prefix}{column}"),
            allowed,
        ));
    }
    sql
}

/// The agents the caller sees as a subquery selecting `select` (an expression over the agents
/// table, e.g. `'agent:' || id`); `None` for a caller who sees every agent.
pub fn visible_agent_ids(scope: &TenantScope, args: &mut Vec<SqlValue>, select: &str) -> Option<String> {
    scope.visibility().is_limited().then(|| {
        super::list::rows_passing(
            args,
            select,
            super::entities::agents::Agent::FROM,
            scope.tenant_id(),
            &agent_restrictions(scope),
        )
    })
}

/// One row by id; a row outside the caller's tenant or visibility is "not found".
pub async fn get<R: Listable>(store: &Store, scope: &TenantScope, id: &str) -> StoreResult<R> {
    let mut args = vec![
        SqlValue::Text(scope.tenant_id().to_owned()),
        SqlValue::Text(id.to_owned()),
    ];
    let mut sql = format!(
        "SELECT {} FROM {} WHERE {} = $1 AND {} = $2",
        R::SELECT,
        R::FROM,
        R::TENANT_COLUMN,
        R::ID_COLUMN
    );
    for restriction in restrictions::<R>(scope) {
        let condition = restriction.condition(&mut args);
        sql.push_str(" AND ");
        sql.push_str(&condition);
    }
    let row = on_db!(&store.db, |pool, DB| {
        bind_values!(sqlx::query_as::<DB, R>(&sql), args)
            .fetch_optional(pool)
            .await
    })?;
    row.ok_or(StoreError::NotFound { kind: R::KIND })
}

async fn check_references<R: Writable>(store: &Store, scope: &TenantScope, columns: &Columns) -> StoreResult<()> {
    let mut problems = Validation::new();
    for reference in R::REFERENCES {
        let Some((_, value)) = columns.iter().find(|(c, _)| *c == reference.column) else {
            continue;
        };
        let id = match value {
            SqlValue::Text(id) | SqlValue::OptText(Some(id)) => id,
            _ => continue,
        };
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE tenant_id = $1 AND {} = $2",
            reference.table, reference.target_column
        );
        let count: i64 = on_db!(&store.db, |pool, DB| {
            sqlx::query_scalar::<DB, i64>(&sql)
                .bind(scope.tenant_id())
                .bind(id)
                .fetch_one(pool)
                .await
        })?;
        if count == 0 {
            problems.add(reference.field, format!("no {} with id `{id}` exists", reference.kind));
        }
    }
    Ok(problems.finish()?)
}

async fn check_limit<R: Writable>(store: &Store, scope: &TenantScope) -> StoreResult<()> {
    let Some(key) = R::LIMIT_KEY else {
        return Ok(());
    };
    let limits = super::tenants::limits(store, scope.tenant()).await?;
    let Some(max) = limits.get(key).and_then(serde_json::Value::as_i64) else {
        return Ok(());
    };
    let sql = format!("SELECT COUNT(*) FROM {} WHERE tenant_id = $1", R::TABLE);
    let count: i64 = on_db!(&store.db, |pool, DB| {
        sqlx::query_scalar::<DB, i64>(&sql)
            .bind(scope.tenant_id())
            .fetch_one(pool)
            .await
    })?;
    if count >= max {
        return Err(StoreError::LimitReached(format!(
            "this tenant may have at most {max} {} (limit `{key}`)",
            R::COLLECTION
        )));
    }
    Ok(())
}

/// Turns a unique violation into a conflict naming the field.
fn explain_unique<R: Writable>(error: StoreError) -> StoreError {
    match error {
        StoreError::Conflict { field: None, message } => {
            for unique in R::UNIQUE {
                if unique.needles.iter().any(|n| message.contains(n)) {
                    return StoreError::Conflict {
                        field: Some(unique.field.into()),
                        message: unique.message.into(),
                    };
                }
            }
            StoreError::Conflict {
                field: None,
                message: format!("this {} conflicts with an existing one", R::KIND),
            }
        }
        other => other,
    }
}

pub async fn create<R: Writable>(store: &Store, scope: &TenantScope, input: R::Create) -> StoreResult<R> {
    let id = new_id(R::ID_PREFIX);
    let cx = WriteContext {
        tenant_id: scope.tenant_id(),
        id: &id,
        secrets: &store.secrets,
    };
    let columns = R::insert_columns(input, &cx)?;
    check_references::<R>(store, scope, &columns).await?;
    check_limit::<R>(store, scope).await?;
    let now = now_ms();
    let mut names = vec!["id", "tenant_id", "created_at", "updated_at", "version"];
    let mut values = vec![
        SqlValue::Text(id.clone()),
        SqlValue::Text(scope.tenant_id().to_owned()),
        SqlValue::Int(now),
        SqlValue::Int(now),
        SqlValue::Int(1),
    ];
    for (name, value) in columns {
        names.push(name);
        values.push(value);
    }
    let placeholders: Vec<String> = (1..=values.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({}) RETURNING {}",
        R::TABLE,
        names.join(", "),
        placeholders.join(", "),
        R::SELECT
    );
    on_db!(&store.db, |pool, DB| bind_values!(
        sqlx::query_as::<DB, R>(&sql),
        values
    )
    .fetch_one(pool)
    .await)
    .map_err(|e| explain_unique::<R>(e.into()))
}

/// Checks an `If-Match` precondition against the stored version.
fn check_precondition<R: Listable>(current: &R, expected: Option<i64>) -> StoreResult<()> {
    match expected {
        Some(v) if v != current.version() => Err(StoreError::PreconditionFailed {
            kind: R::KIND,
            current: current.version(),
        }),
        _ => Ok(()),
    }
}

pub async fn update<R: Writable>(
    store: &Store,
    scope: &TenantScope,
    id: &str,
    expected_version: Option<i64>,
    input: R::Update,
) -> StoreResult<R> {
    let current: R = get(store, scope, id).await?;
    check_precondition(&current, expected_version)?;
    let cx = WriteContext {
        tenant_id: scope.tenant_id(),
        id,
        secrets: &store.secrets,
    };
    let columns = R::update_columns(input, &current, &cx)?;
    check_references::<R>(store, scope, &columns).await?;
    if columns.is_empty() {
        return Ok(current);
    }
    let mut sets = Vec::new();
    let mut values = Vec::new();
    for (name, value) in columns {
        values.push(value);
        sets.push(format!("{name} = ${}", values.len()));
    }
    values.push(SqlValue::Int(now_ms()));
    sets.push(format!("updated_at = ${}", values.len()));
    let n = values.len();
    values.push(SqlValue::Text(scope.tenant_id().to_owned()));
    values.push(SqlValue::Text(id.to_owned()));
    // Guarding on the version read above turns a concurrent update into 412, not a lost write.
    values.push(SqlValue::Int(current.version()));
    let sql = format!(
        "UPDATE {} SET {}, version = version + 1 WHERE tenant_id = ${} AND id = ${} AND version = ${} RETURNING {}",
        R::TABLE,
        sets.join(", "),
        n + 1,
        n + 2,
        n + 3,
        R::SELECT
    );
    let updated = on_db!(&store.db, |pool, DB| bind_values!(
        sqlx::query_as::<DB, R>(&sql),
        values
    )
    .fetch_optional(pool)
    .await)
    .map_err(|e| explain_unique::<R>(e.into()))?;
    match updated {
        Some(row) => Ok(row),
        None => {
            let now: R = get(store, scope, id).await?;
            Err(StoreError::PreconditionFailed {
                kind: R::KIND,
                current: now.version(),
            })
        }
    }
}

pub async fn delete<R: Writable>(
    store: &Store,
    scope: &TenantScope,
    id: &str,
    expected_version: Option<i64>,
) -> StoreResult<()> {
    let current: R = get(store, scope, id).await?;
    check_precondition(&current, expected_version)?;
    let mut blockers = Vec::new();
    for dependent in R::DEPENDENTS {
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE tenant_id = $1 AND {} = $2",
            dependent.table, dependent.column
        );
        let count: i64 = on_db!(&store.db, |pool, DB| {
            sqlx::query_scalar::<DB, i64>(&sql)
                .bind(scope.tenant_id())
                .bind(id)
                .fetch_one(pool)
                .await
        })?;
        if count > 0 {
            blockers.push(format!("{count} {}", dependent.label));
        }
    }
    if !blockers.is_empty() {
        return Err(StoreError::Conflict {
            field: None,
            message: format!("cannot delete this {}: still used by {}", R::KIND, blockers.join(", ")),
        });
    }
    let sql = format!(
        "DELETE FROM {} WHERE tenant_id = $1 AND id = $2 AND version = $3",
        R::TABLE
    );
    let result = on_db!(&store.db, |pool, DB| {
        sqlx::query::<DB>(&sql)
            .bind(scope.tenant_id())
            .bind(id)
            .bind(current.version())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict { .. } => StoreError::Conflict {
            field: None,
            message: format!("cannot delete this {}: other records still refer to it", R::KIND),
        },
        other => other,
    })?;
    if result == 0 {
        let now: R = get(store, scope, id).await?;
        return Err(StoreError::PreconditionFailed {
            kind: R::KIND,
            current: now.version(),
        });
    }
    Ok(())
}

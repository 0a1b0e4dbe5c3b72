use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{Stamps, set};
use crate::domain::time::now_ms;
use crate::domain::{Validation, validate};
use crate::on_db;
use crate::store::list::{Field, FieldKind};
use crate::store::resource::{self, Columns, Dependent, Listable, Unique, Writable, WriteContext};
use crate::store::{SqlValue, Store, StoreError, StoreResult, TenantScope};

/// Ring strategies as Asterisk's app_queue names them.
pub const STRATEGIES: &[&str] = &[
    "ringall",
    "leastrecent",
    "fewestcalls",
    "random",
    "rrmemory",
    "rrordered",
    "linear",
    "wrandom",
];
const MAX_MEMBERS: usize = 5000;

/// How a queue's service level is computed (KPIS.md).
pub const SL_VARIANTS: &[&str] = &[
    "answered_and_abandoned",
    "answered_only",
    "abandons_within_threshold_met",
    "offered",
    "exclude_short_abandons",
];

/// A queue callers wait in, with its service-level objective.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct Queue {
    pub id: String,
    pub name: String,
    pub description: String,
    /// How calls are offered to members (Asterisk app_queue strategy).
    pub strategy: String,
    /// Answered within this many seconds counts as "in service level".
    pub sl_threshold_s: i64,
    /// Target share of calls in service level, in percent.
    pub sl_target_pct: i64,
    /// After-call work time granted to agents, in seconds.
    pub wrap_up_s: i64,
    /// Service-level definition: `answered_and_abandoned` (default), `answered_only`,
    /// `abandons_within_threshold_met`, `offered` or `exclude_short_abandons`.
    pub sl_variant: String,
    /// Callers who hang up within this many seconds are short abandons (0: none are).
    pub short_abandon_s: i64,
    /// Whether short abandons count in the abandon rate.
    pub abandon_rate_counts_short: bool,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub stamps: Stamps,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueCreate {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Default `rrmemory`.
    pub strategy: Option<String>,
    /// Default 20.
    pub sl_threshold_s: Option<i64>,
    /// Default 80.
    pub sl_target_pct: Option<i64>,
    /// Default 0.
    pub wrap_up_s: Option<i64>,
    /// Default `answered_and_abandoned`.
    pub sl_variant: Option<String>,
    /// Default 0.
    pub short_abandon_s: Option<i64>,
    /// Default true.
    pub abandon_rate_counts_short: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub strategy: Option<String>,
    pub sl_threshold_s: Option<i64>,
    pub sl_target_pct: Option<i64>,
    pub wrap_up_s: Option<i64>,
    pub sl_variant: Option<String>,
    pub short_abandon_s: Option<i64>,
    pub abandon_rate_counts_short: Option<bool>,
}

impl Listable for Queue {
    const KIND: &'static str = "queue";
    const COLLECTION: &'static str = "queues";
    const FROM: &'static str = "queues";
    const SELECT: &'static str = "id, name, description, strategy, sl_threshold_s, sl_target_pct, wrap_up_s, sl_variant, short_abandon_s, \
         abandon_rate_counts_short, created_at, updated_at, version";
    const FIELDS: &'static [Field] = &[
        Field::new("name", "name", FieldKind::Text),
        Field::new("strategy", "strategy", FieldKind::Text),
        Field::new("created_at", "created_at", FieldKind::Time).sort_only(),
        Field::new("updated_at", "updated_at", FieldKind::Time).sort_only(),
    ];
    const SEARCH: &'static [&'static str] = &["name", "description"];
    const DESCRIPTION: &'static str = "Queues callers wait in, with service-level targets and members.";
    const VERSIONED: bool = true;
    type View = Queue;
    fn view(self) -> Queue {
        self
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn version(&self) -> i64 {
        self.stamps.version
    }
}

struct Settings {
    strategy: Option<String>,
    sl_threshold_s: Option<i64>,
    sl_target_pct: Option<i64>,
    wrap_up_s: Option<i64>,
    sl_variant: Option<String>,
    short_abandon_s: Option<i64>,
    abandon_rate_counts_short: Option<bool>,
}

fn check_settings(v: &mut Validation, s: Settings) -> Columns {
    let mut columns = Columns::new();
    set(&mut columns, v, "strategy", s.strategy, |x| {
        validate::one_of(&x, STRATEGIES).map(SqlValue::Text)
    });
    set(&mut columns, v, "sl_threshold_s", s.sl_threshold_s, |x| {
        validate::int_range(x, 1, 3600).map(SqlValue::Int)
    });
    set(&mut columns, v, "sl_target_pct", s.sl_target_pct, |x| {
        validate::int_range(x, 1, 100).map(SqlValue::Int)
    });
    set(&mut columns, v, "wrap_up_s", s.wrap_up_s, |x| {
        validate::int_range(x, 0, 3600).map(SqlValue::Int)
    });
    set(&mut columns, v, "sl_variant", s.sl_variant, |x| {
        validate::one_of(&x, SL_VARIANTS).map(SqlValue::Text)
    });
    set(&mut columns, v, "short_abandon_s", s.short_abandon_s, |x| {
        validate::int_range(x, 0, 600).map(SqlValue::Int)
    });
    if let Some(counts) = s.abandon_rate_counts_short {
        columns.push(("abandon_rate_counts_short", SqlValue::Bool(counts)));
    }
    columns
}

impl Writable for Queue {
    const TABLE: &'static str = "queues";
    const ID_PREFIX: &'static str = "que";
    const UNIQUE: &'static [Unique] = &[Unique {
        needles: &["queues_name", "queues.name"],
        field: "name",
        message: "a queue with this name already exists",
    }];
    const DEPENDENTS: &'static [Dependent] = &[Dependent {
        table: "dids",
        column: "route_queue_id",
        label: "phone numbers",
    }];
    type Create = QueueCreate;
    type Update = QueueUpdate;

    fn insert_columns(input: QueueCreate, _: &WriteContext<'_>) -> Result<Columns, Validation> {
        let mut v = Validation::new();
        let name = v.check("name", validate::name(&input.name, 100));
        let description = v.check("description", validate::text(&input.description, 1000));
        let mut columns = vec![
            ("name", SqlValue::Text(name.unwrap_or_default())),
            ("description", SqlValue::Text(description.unwrap_or_default())),
        ];
        columns.extend(check_settings(
            &mut v,
            Settings {
                strategy: Some(input.strategy.unwrap_or_else(|| "rrmemory".into())),
                sl_threshold_s: Some(input.sl_threshold_s.unwrap_or(20)),
                sl_target_pct: Some(input.sl_target_pct.unwrap_or(80)),
                wrap_up_s: Some(input.wrap_up_s.unwrap_or(0)),
                sl_variant: Some(input.sl_variant.unwrap_or_else(|| SL_VARIANTS[0].into())),
                short_abandon_s: Some(input.short_abandon_s.unwrap_or(0)),
                abandon_rate_counts_short: Some(input.abandon_rate_counts_short.unwrap_or(true)),
            },
        ));
        v.finish()?;
        Ok(columns)
    }

    fn update_columns(input: QueueUpdate, _: &Queue, _: &WriteContext<'_>) -> Result<Columns, Validation> {
        let mut v = Validation::new();
        let mut columns = Columns::new();
        set(&mut columns, &mut v, "name", input.name, |n| {
            validate::name(&n, 100).map(SqlValue::Text)
        });
        set(&mut columns, &mut v, "description", input.description, |d| {
            validate::text(&d, 1000).map(SqlValue::Text)
        });
        columns.extend(check_settings(
            &mut v,
            Settings {
                strategy: input.strategy,
                sl_threshold_s: input.sl_threshold_s,
                sl_target_pct: input.sl_target_pct,
                wrap_up_s: input.wrap_up_s,
                sl_variant: input.sl_variant,
                short_abandon_s: input.short_abandon_s,
                abandon_rate_counts_short: input.abandon_rate_counts_short,
            },
        ));
        v.finish()?;
        Ok(columns)
    }
}

/// An agent's membership in a queue. Lower penalty is offered calls first.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct QueueMember {
    pub agent_id: String,
    pub agent_name: String,
    pub penalty: i64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueMemberInput {
    pub agent_id: String,
    #[serde(default)]
    pub penalty: i64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PenaltyInput {
    #[serde(default)]
    pub penalty: i64,
}

/// The queue's members the caller may see (a scoped supervisor: the agents of its teams and
/// locations).
pub async fn members(store: &Store, scope: &TenantScope, queue_id: &str) -> StoreResult<Vec<QueueMember>> {
    resource::get::<Queue>(store, scope, queue_id).await?;
    let mut args = vec![
        SqlValue::Text(scope.tenant_id().to_owned()),
        SqlValue::Text(queue_id.to_owned()),
    ];
    let visible = resource::visible_agents(scope, &mut args, "a.");
    let sql = format!(
        "SELECT m.agent_id, a.name AS agent_name, m.penalty FROM queue_members m \
         JOIN agents a ON a.tenant_id = m.tenant_id AND a.id = m.agent_id \
         WHERE m.tenant_id = $1 AND m.queue_id = $2{visible} ORDER BY m.penalty, a.name, m.agent_id"
    );
    Ok(on_db!(&store.db, |pool, DB| {
        crate::bind_values!(sqlx::query_as::<DB, QueueMember>(&sql), args)
            .fetch_all(pool)
            .await
    })?)
}

/// ` AND …` limiting `queue_members` rows to agents the caller sees; empty for a caller who
/// sees them all.
fn visible_members(scope: &TenantScope, args: &mut Vec<SqlValue>) -> String {
    resource::agent_reference(scope, "agent_id")
        .map(|restriction| format!(" AND {}", restriction.condition(args)))
        .unwrap_or_default()
}

/// Of `ids`, the agents that do not exist, or that the caller does not see.
async fn missing_agents(store: &Store, scope: &TenantScope, ids: &[String]) -> StoreResult<Vec<String>> {
    let mut missing = Vec::new();
    for chunk in ids.chunks(500) {
        let mut args = vec![SqlValue::Text(scope.tenant_id().to_owned())];
        let placeholders: Vec<String> = chunk
            .iter()
            .map(|id| {
                args.push(SqlValue::Text(id.clone()));
                format!("${}", args.len())
            })
            .collect();
        let visible = resource::visible_agents(scope, &mut args, "");
        let sql = format!(
            "SELECT id FROM agents WHERE tenant_id = $1 AND id IN ({}){visible}",
            placeholders.join(", ")
        );
        let found: Vec<String> = on_db!(&store.db, |pool, DB| {
            crate::bind_values!(sqlx::query_scalar::<DB, String>(&sql), args)
                .fetch_all(pool)
                .await
        })?;
        missing.extend(chunk.iter().filter(|id| !found.contains(id)).cloned());
    }
    Ok(missing)
}

/// Replaces the whole member list in one transaction.
pub async fn replace_members(
    store: &Store,
    scope: &TenantScope,
    queue_id: &str,
    input: Vec<QueueMemberInput>,
) -> StoreResult<Vec<QueueMember>> {
    resource::get::<Queue>(store, scope, queue_id).await?;
    let mut v = Validation::new();
    if input.len() > MAX_MEMBERS {
        v.add("", format!("a queue may have at most {MAX_MEMBERS} members"));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, m) in input.iter().enumerate() {
        v.check(&format!("{i}/penalty"), validate::int_range(m.penalty, 0, 1000));
        if !seen.insert(m.agent_id.as_str()) {
            v.add(&format!("{i}/agent_id"), "this agent is listed twice");
        }
    }
    v.finish()?;
    let ids: Vec<String> = input.iter().map(|m| m.agent_id.clone()).collect();
    let missing = missing_agents(store, scope, &ids).await?;
    if !missing.is_empty() {
        let mut v = Validation::new();
        for (i, m) in input.iter().enumerate().filter(|(_, m)| missing.contains(&m.agent_id)) {
            v.add(
                &format!("{i}/agent_id"),
                format!("no agent with id `{}` exists", m.agent_id),
            );
        }
        return Err(v.into());
    }
    let now = now_ms();
    // A scoped caller replaces the members it sees; the others stay.
    let mut args = vec![
        SqlValue::Text(scope.tenant_id().to_owned()),
        SqlValue::Text(queue_id.to_owned()),
    ];
    let visible = visible_members(scope, &mut args);
    let delete = format!("DELETE FROM queue_members WHERE tenant_id = $1 AND queue_id = $2{visible}");
    on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        crate::bind_values!(sqlx::query::<DB>(&delete), args.clone())
            .execute(&mut *tx)
            .await?;
        for m in &input {
            sqlx::query::<DB>(
                "INSERT INTO queue_members (tenant_id, queue_id, agent_id, penalty, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(scope.tenant_id())
            .bind(queue_id)
            .bind(&m.agent_id)
            .bind(m.penalty)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        touch_queue::<DB>(&mut tx, scope, queue_id, now).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(())
    })?;
    members(store, scope, queue_id).await
}

/// Adds an agent to a queue or changes its penalty.
pub async fn put_member(
    store: &Store,
    scope: &TenantScope,
    queue_id: &str,
    agent_id: &str,
    penalty: i64,
) -> StoreResult<QueueMember> {
    resource::get::<Queue>(store, scope, queue_id).await?;
    if let Err(e) = validate::int_range(penalty, 0, 1000) {
        return Err(Validation::single("penalty", e).into());
    }
    if !missing_agents(store, scope, &[agent_id.to_owned()]).await?.is_empty() {
        return Err(StoreError::NotFound { kind: "agent" });
    }
    let now = now_ms();
    on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        sqlx::query::<DB>(
            "INSERT INTO queue_members (tenant_id, queue_id, agent_id, penalty, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, queue_id, agent_id) DO UPDATE SET penalty = excluded.penalty",
        )
        .bind(scope.tenant_id())
        .bind(queue_id)
        .bind(agent_id)
        .bind(penalty)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        touch_queue::<DB>(&mut tx, scope, queue_id, now).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(())
    })?;
    members(store, scope, queue_id)
        .await?
        .into_iter()
        .find(|m| m.agent_id == agent_id)
        .ok_or(StoreError::NotFound { kind: "queue member" })
}

pub async fn remove_member(store: &Store, scope: &TenantScope, queue_id: &str, agent_id: &str) -> StoreResult<()> {
    resource::get::<Queue>(store, scope, queue_id).await?;
    let now = now_ms();
    let mut args = vec![
        SqlValue::Text(scope.tenant_id().to_owned()),
        SqlValue::Text(queue_id.to_owned()),
        SqlValue::Text(agent_id.to_owned()),
    ];
    let visible = visible_members(scope, &mut args);
    let delete = format!("DELETE FROM queue_members WHERE tenant_id = $1 AND queue_id = $2 AND agent_id = $3{visible}");
    let removed = on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        let removed = crate::bind_values!(sqlx::query::<DB>(&delete), args.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        touch_queue::<DB>(&mut tx, scope, queue_id, now).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(removed)
    })?;
    if removed == 0 {
        Err(StoreError::NotFound { kind: "queue member" })
    } else {
        Ok(())
    }
}

/// Membership is part of the queue's state: changing it bumps the queue's version so cached
/// copies (ETags) go stale.
async fn touch_queue<DB>(
    tx: &mut sqlx::Transaction<'_, DB>,
    scope: &TenantScope,
    queue_id: &str,
    now: i64,
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    sqlx::query::<DB>("UPDATE queues SET version = version + 1, updated_at = $1 WHERE tenant_id = $2 AND id = $3")
        .bind(now)
        .bind(scope.tenant_id())
        .bind(queue_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

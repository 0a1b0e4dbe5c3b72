//! Bulk set-up of a tenant's floor (the simulator's scenarios, the demo): thousands of agents
//! in a few statements, matched to what the tenant already has by name or extension.

use std::collections::HashMap;

use super::{Store, StoreResult, TenantScope};
use crate::on_db;

/// Rows per INSERT when creating agents and memberships in bulk.
const ROWS_PER_INSERT: usize = 500;

/// Rows the provisioning matches by a natural key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// Teams by name.
    Teams,
    /// Locations by name.
    Locations,
    /// Queues by name.
    Queues,
    /// Agents by extension.
    AgentExtensions,
}

impl Named {
    fn table_and_key(self) -> (&'static str, &'static str) {
        match self {
            Named::Teams => ("teams", "name"),
            Named::Locations => ("locations", "name"),
            Named::Queues => ("queues", "name"),
            Named::AgentExtensions => ("agents", "extension"),
        }
    }
}

/// The tenant's rows of one kind: natural key → id.
pub async fn ids_by_name(store: &Store, scope: &TenantScope, named: Named) -> StoreResult<HashMap<String, String>> {
    let (table, column) = named.table_and_key();
    let sql = format!("SELECT {column}, id FROM {table} WHERE tenant_id = $1 AND {column} IS NOT NULL");
    let rows: Vec<(String, String)> = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, (String, String)>(&sql)
            .bind(scope.tenant_id())
            .fetch_all(pool)
            .await
    })?;
    Ok(rows.into_iter().collect())
}

/// An agent to create, with the queues it answers (at penalty 0).
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub id: String,
    pub name: String,
    pub team_id: Option<String>,
    pub location_id: Option<String>,
    pub extension: String,
    pub interface: String,
    pub skills: Vec<String>,
    pub queue_ids: Vec<String>,
}

/// Creates the agents and their queue memberships in one transaction.
pub async fn insert_agents(store: &Store, scope: &TenantScope, agents: &[NewAgent]) -> StoreResult<()> {
    let tenant = scope.tenant_id();
    let now = crate::domain::time::now_ms();
    let members: Vec<(&str, &str)> = agents
        .iter()
        .flat_map(|a| a.queue_ids.iter().map(move |q| (q.as_str(), a.id.as_str())))
        .collect();
    on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        for chunk in agents.chunks(ROWS_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::<DB>::new(
                "INSERT INTO agents (id, tenant_id, name, team_id, location_id, extension, interface, skills, \
                 created_at, updated_at, version) ",
            );
            insert.push_values(chunk, |mut b, a| {
                b.push_bind(a.id.clone())
                    .push_bind(tenant)
                    .push_bind(a.name.clone())
                    .push_bind(a.team_id.clone())
                    .push_bind(a.location_id.clone())
                    .push_bind(a.extension.clone())
                    .push_bind(a.interface.clone())
                    .push_bind(sqlx::types::Json(&a.skills))
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(1i64);
            });
            insert.build().execute(&mut *tx).await?;
        }
        for chunk in members.chunks(ROWS_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::<DB>::new(
                "INSERT INTO queue_members (tenant_id, queue_id, agent_id, penalty, created_at) ",
            );
            insert.push_values(chunk, |mut b, (queue, agent)| {
                b.push_bind(tenant)
                    .push_bind(*queue)
                    .push_bind(*agent)
                    .push_bind(0i64)
                    .push_bind(now);
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(())
    })?;
    Ok(())
}

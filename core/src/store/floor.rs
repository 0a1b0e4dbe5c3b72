//! The rows a tenant's live floor is built from: teams, locations, queues with their service
//! settings, agents and queue memberships, each in id order.

use super::{Store, StoreResult, TenantScope};
use crate::on_db;

/// id, name, service-level threshold (s), target (%), variant, short abandon (s), whether
/// short abandons count in the abandon rate.
pub type QueueRow = (String, String, i64, i64, String, i64, bool);

/// id, name, team, location, extension, interface.
pub type AgentRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub struct FloorRows {
    /// (id, name)
    pub teams: Vec<(String, String)>,
    /// (id, name)
    pub locations: Vec<(String, String)>,
    pub queues: Vec<QueueRow>,
    pub agents: Vec<AgentRow>,
    /// (agent id, queue id)
    pub members: Vec<(String, String)>,
}

pub async fn rows(store: &Store, scope: &TenantScope) -> StoreResult<FloorRows> {
    Ok(on_db!(&store.db, |pool, DB| {
        let teams: Vec<(String, String)> =
            sqlx::query_as::<DB, (String, String)>("SELECT id, name FROM teams WHERE tenant_id = $1 ORDER BY id")
                .bind(scope.tenant_id())
                .fetch_all(pool)
                .await?;
        let locations: Vec<(String, String)> =
            sqlx::query_as::<DB, (String, String)>("SELECT id, name FROM locations WHERE tenant_id = $1 ORDER BY id")
                .bind(scope.tenant_id())
                .fetch_all(pool)
                .await?;
        let queues: Vec<QueueRow> = sqlx::query_as::<DB, QueueRow>(
            "SELECT id, name, sl_threshold_s, sl_target_pct, sl_variant, short_abandon_s, abandon_rate_counts_short \
             FROM queues WHERE tenant_id = $1 ORDER BY id",
        )
        .bind(scope.tenant_id())
        .fetch_all(pool)
        .await?;
        let agents: Vec<AgentRow> = sqlx::query_as::<DB, AgentRow>(
            "SELECT id, name, team_id, location_id, extension, interface FROM agents WHERE tenant_id = $1 ORDER BY id",
        )
        .bind(scope.tenant_id())
        .fetch_all(pool)
        .await?;
        let members: Vec<(String, String)> =
            sqlx::query_as::<DB, (String, String)>("SELECT agent_id, queue_id FROM queue_members WHERE tenant_id = $1")
                .bind(scope.tenant_id())
                .fetch_all(pool)
                .await?;
        Ok::<_, sqlx::Error>(FloorRows {
            teams,
            locations,
            queues,
            agents,
            members,
        })
    })?)
}

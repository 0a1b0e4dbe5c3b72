//! The rows a tenant's PBX configuration is written from: endpoints, agents' interfaces,
//! queues with members, and numbers.

use super::{Store, StoreResult, TenantScope};
use crate::on_db;

/// id, name, auth username, sealed password, transport, codecs (JSON), context, max contacts.
pub type EndpointRow = (String, String, String, Option<String>, String, String, String, i64);
/// id, name, own interface, first endpoint's name.
pub type AgentRow = (String, String, Option<String>, Option<String>);
/// id, name, strategy, service-level threshold (s), wrap-up (s).
pub type QueueRow = (String, String, String, i64, i64);
/// queue id, agent id, penalty.
pub type MemberRow = (String, String, i64);
/// number, description, route type, queue, agent, endpoint, external number.
pub type DidRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Everything the configuration export reads, in a stable order.
pub struct TelephonyRows {
    pub endpoints: Vec<EndpointRow>,
    pub agents: Vec<AgentRow>,
    pub queues: Vec<QueueRow>,
    pub members: Vec<MemberRow>,
    pub dids: Vec<DidRow>,
}

pub async fn rows(store: &Store, scope: &TenantScope) -> StoreResult<TelephonyRows> {
    let tenant = scope.tenant_id();
    let endpoints: Vec<EndpointRow> = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, EndpointRow>(
            "SELECT id, name, auth_username, password_enc, transport, codecs, context, max_contacts \
             FROM endpoints WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(pool)
        .await
    })?;
    // Agents' interfaces: their own, else their endpoint's.
    let agents: Vec<AgentRow> = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, AgentRow>(
            "SELECT a.id, a.name, a.interface, (SELECT e.name FROM endpoints e WHERE e.tenant_id = a.tenant_id \
             AND e.agent_id = a.id ORDER BY e.name LIMIT 1) FROM agents a WHERE a.tenant_id = $1",
        )
        .bind(tenant)
        .fetch_all(pool)
        .await
    })?;
    let queues: Vec<QueueRow> = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, QueueRow>(
            "SELECT id, name, strategy, sl_threshold_s, wrap_up_s FROM queues WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(pool)
        .await
    })?;
    let members: Vec<MemberRow> = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, MemberRow>(
            "SELECT queue_id, agent_id, penalty FROM queue_members WHERE tenant_id = $1 ORDER BY queue_id, agent_id",
        )
        .bind(tenant)
        .fetch_all(pool)
        .await
    })?;
    let dids: Vec<DidRow> = on_db!(&store.db, |pool, DB| {
        sqlx::query_as::<DB, DidRow>(
            "SELECT number, description, route_type, route_queue_id, route_agent_id, route_endpoint_id, route_number \
             FROM dids WHERE tenant_id = $1 ORDER BY number",
        )
        .bind(tenant)
        .fetch_all(pool)
        .await
    })?;
    Ok(TelephonyRows {
        endpoints,
        agents,
        queues,
        members,
        dids,
    })
}

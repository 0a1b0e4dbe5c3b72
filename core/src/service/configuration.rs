//! A tenant's configuration collections (teams, locations, queues, agents, numbers, SIP
//! endpoints) and its queues' members: creating, changing and deleting, one audited flow each
//! for the REST API and the admin pages. Which role may do it is the caller's scope (checked
//! where the scope was obtained); what is valid is the collection's own mapping in the store.

use serde::Serialize;
use serde_json::Value;

use crate::store::StoreResult;
use crate::store::audit::{self, AuditEvent, Origin, Outcome};
use crate::store::entities::queues::{self, QueueMember, QueueMemberInput};
use crate::store::resource::{self, Writable};
use crate::store::{Store, TenantScope};

/// The audit action for `verb` on a collection of kind `kind` (`sip_endpoint.update`).
fn action(kind: &str, verb: &str) -> String {
    format!("{}.{verb}", kind.replace(' ', "_"))
}

fn snapshot(view: &impl Serialize) -> Option<Value> {
    serde_json::to_value(view).ok()
}

async fn record(
    store: &Store,
    scope: &TenantScope,
    origin: &Origin,
    action: &str,
    target: (&str, &str),
    change: (Option<Value>, Option<Value>),
) {
    let event = AuditEvent::in_tenant(scope, action, Outcome::Success)
        .target(target.0, target.1)
        .change(change.0, change.1);
    audit::record(store, event, origin).await;
    tracing::info!(
        actor = scope.actor(),
        tenant = scope.tenant_slug(),
        kind = target.0,
        id = target.1,
        action,
        "configuration changed"
    );
}

/// A row as written: what the API answers with.
pub struct Saved<V> {
    pub id: String,
    pub version: i64,
    pub view: V,
}

impl<V> Saved<V> {
    fn of<R: Writable<View = V>>(row: R) -> Self {
        Saved {
            id: row.id().to_owned(),
            version: row.version(),
            view: row.view(),
        }
    }
}

/// Creates a row in the caller's tenant.
pub async fn create<R: Writable>(
    store: &Store,
    scope: &TenantScope,
    origin: &Origin,
    input: R::Create,
) -> StoreResult<Saved<R::View>> {
    let saved = Saved::of(resource::create::<R>(store, scope, input).await?);
    let after = snapshot(&saved.view);
    record(
        store,
        scope,
        origin,
        &action(R::KIND, "create"),
        (R::KIND, &saved.id),
        (None, after),
    )
    .await;
    Ok(saved)
}

/// Changes row `id`, at `expected_version` when given.
pub async fn update<R: Writable>(
    store: &Store,
    scope: &TenantScope,
    origin: &Origin,
    id: &str,
    expected_version: Option<i64>,
    input: R::Update,
) -> StoreResult<Saved<R::View>> {
    let before: R = resource::get(store, scope, id).await?;
    let before = snapshot(&before.view());
    let saved = Saved::of(resource::update::<R>(store, scope, id, expected_version, input).await?);
    let after = snapshot(&saved.view);
    record(
        store,
        scope,
        origin,
        &action(R::KIND, "update"),
        (R::KIND, id),
        (before, after),
    )
    .await;
    Ok(saved)
}

/// Deletes row `id`, at `expected_version` when given; refused while other rows need it.
pub async fn delete<R: Writable>(
    store: &Store,
    scope: &TenantScope,
    origin: &Origin,
    id: &str,
    expected_version: Option<i64>,
) -> StoreResult<()> {
    let before: R = resource::get(store, scope, id).await?;
    let before = snapshot(&before.view());
    resource::delete::<R>(store, scope, id, expected_version).await?;
    record(
        store,
        scope,
        origin,
        &action(R::KIND, "delete"),
        (R::KIND, id),
        (before, None),
    )
    .await;
    Ok(())
}

/// Makes `input` the whole membership of queue `queue_id`.
pub async fn replace_members(
    store: &Store,
    scope: &TenantScope,
    origin: &Origin,
    queue_id: &str,
    input: Vec<QueueMemberInput>,
) -> StoreResult<Vec<QueueMember>> {
    let before = snapshot(&queues::members(store, scope, queue_id).await?);
    let members = queues::replace_members(store, scope, queue_id, input).await?;
    let after = snapshot(&members);
    record(
        store,
        scope,
        origin,
        "queue.members",
        ("queue", queue_id),
        (before, after),
    )
    .await;
    Ok(members)
}

/// Adds agent `agent_id` to queue `queue_id` with `penalty`, or changes its penalty.
pub async fn put_member(
    store: &Store,
    scope: &TenantScope,
    origin: &Origin,
    queue_id: &str,
    agent_id: &str,
    penalty: i64,
) -> StoreResult<QueueMember> {
    let member = queues::put_member(store, scope, queue_id, agent_id, penalty).await?;
    let after = snapshot(&member);
    record(
        store,
        scope,
        origin,
        "queue.member_put",
        ("queue", queue_id),
        (None, after),
    )
    .await;
    Ok(member)
}

/// Takes agent `agent_id` out of queue `queue_id`.
pub async fn remove_member(
    store: &Store,
    scope: &TenantScope,
    origin: &Origin,
    queue_id: &str,
    agent_id: &str,
) -> StoreResult<()> {
    queues::remove_member(store, scope, queue_id, agent_id).await?;
    let removed = Some(serde_json::json!({ "agent_id": agent_id }));
    record(
        store,
        scope,
        origin,
        "queue.member_remove",
        ("queue", queue_id),
        (removed, None),
    )
    .await;
    Ok(())
}

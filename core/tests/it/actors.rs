//! Work nobody signed in for is audited under the system actor that did it — an inbound hook,
//! the simulator — never under a person or a borrowed administrator.

use serde_json::json;

use crate::common::{self, TestServer};
use monti::domain::Role;
use monti::store::{SystemActor, tenants};

/// (actor, action, target) of the tenant's audit entries, oldest first.
async fn audit(s: &TestServer, slug: &str) -> Vec<(String, String, String)> {
    let scope = tenants::system_scope(&s.store, slug, SystemActor::Operator)
        .await
        .unwrap();
    let params = monti::store::ListParams(vec![("limit".into(), "500".into()), ("sort".into(), "at".into())]);
    monti::store::resource::list::<monti::store::audit::AuditRow>(&s.store, &scope, &params)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.actor, e.action, e.target_id.unwrap_or_default()))
        .collect()
}

/// Agents named by events are created when the tenant asks for it: the entry for each names
/// who sent the event.
async fn auto_creating_tenant(s: &TestServer) -> String {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let tenant = tenants::by_slug(&s.store, "acme").await.unwrap().unwrap();
    let update: tenants::TenantUpdate =
        serde_json::from_value(json!({ "features": { "auto_create_agents": true } })).unwrap();
    tenants::update(&s.store, &tenant.id, None, update, true).await.unwrap();
    admin
}

async fn created_by(s: &TestServer, name_detail: &str) -> Vec<String> {
    let scope = tenants::system_scope(&s.store, "acme", SystemActor::Operator)
        .await
        .unwrap();
    let params = monti::store::ListParams(vec![("limit".into(), "500".into())]);
    monti::store::resource::list::<monti::store::audit::AuditRow>(&s.store, &scope, &params)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.action == "agent.create" && e.detail.as_deref().is_some_and(|d| d.contains(name_detail)))
        .map(|e| e.actor)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_hook_brings_in_is_audited_as_the_hook() {
    let s = TestServer::start(common::Backend::Sqlite).await.unwrap();
    let admin = auto_creating_tenant(&s).await;
    let bytes = crate::plugins::component("monti-example-webhook");
    let installed = s
        .client
        .post(s.url("/api/v1/plugins"))
        .bearer_auth(&admin)
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(installed.status(), 201);
    let installed: serde_json::Value = installed.json().await.unwrap();
    let id = installed["id"].as_str().unwrap().to_owned();
    s.patch(
        "/api/v1/plugins/state-hook",
        &admin,
        json!({ "enabled": true, "approve_capabilities": true }),
    )
    .await
    .expect(200);
    let url = s.url(&format!("/hooks/acme/{id}/state"));
    let report = json!({ "id": "r1", "agent": "7007", "state": "available",
                         "at_ms": chrono::Utc::now().timestamp_millis() });
    // Enabling applies within a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let status = s.client.post(&url).json(&report).send().await.unwrap().status();
        if status == 202 || std::time::Instant::now() > deadline {
            assert_eq!(status, 202);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let actors = created_by(&s, "`7007`").await;
    assert_eq!(
        actors,
        vec![format!("system:hooks:{id}")],
        "{:#?}",
        audit(&s, "acme").await
    );
    // The installation itself was the admin's doing, through the API.
    let entries = audit(&s, "acme").await;
    let install = entries
        .iter()
        .find(|(_, action, _)| action == "plugin.install")
        .unwrap();
    assert!(install.0.starts_with("token:"), "{install:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_simulator_brings_in_is_audited_as_the_simulator() {
    let s = TestServer::start(common::Backend::Sqlite).await.unwrap();
    auto_creating_tenant(&s).await;
    let scope = tenants::system_scope(&s.store, "acme", SystemActor::Simulator)
        .await
        .unwrap();
    let sink = monti::simulate::Sink::Local {
        live: s.app.live.clone(),
        scope,
    };
    let event: monti::domain::events::Event = serde_json::from_value(json!({
        "id": "sim-1", "source": "simulator", "at": chrono::Utc::now().to_rfc3339(),
        "type": "agent_login", "agent": "8008"
    }))
    .unwrap();
    let mut sent = Default::default();
    sink.send(vec![event], &mut sent).await.unwrap();
    assert_eq!(created_by(&s, "`8008`").await, vec!["system:simulator".to_owned()]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_connectors_stream_brings_in_is_audited_as_the_plugin_runtime() {
    let pbx = monti::asterisk::AmiSimulator::start("monti", "ami-pw").await.unwrap();
    pbx.add_member("sales", "PJSIP/1003", "Cleo");
    let s = TestServer::start_with(common::Backend::Sqlite, |c| {
        c.plugins.private_networks = vec!["acme".into()];
    })
    .await
    .unwrap();
    let admin = auto_creating_tenant(&s).await;
    crate::asterisk::install_connector(&s, &admin, pbx.port(), "ami-pw").await;
    // Cleo is known to the PBX only: the connector's resync names her and she is created.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let actors = loop {
        let actors = created_by(&s, "1003").await;
        if !actors.is_empty() || std::time::Instant::now() > deadline {
            break actors;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        actors,
        vec!["system:plugins".to_owned()],
        "{:#?}",
        audit(&s, "acme").await
    );
    // The admin's own steps stay theirs: installing and enabling.
    let entries = audit(&s, "acme").await;
    for action in ["plugin.install", "plugin.update"] {
        let entry = entries.iter().find(|(_, a, _)| a == action).expect(action);
        assert!(entry.0.starts_with("token:"), "{entry:?}");
    }
    s.stop().await;
}

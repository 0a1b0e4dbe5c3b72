//! The whole Asterisk path over real TCP: the AMI simulator ↔ the host's stream ↔ the connector
//! plugin ↔ the live floor. The connector logs in with MD5 (the host writes the key), resyncs,
//! follows members' states and pauses, and resyncs again after the PBX drops the connection.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use monti::asterisk::ari_sim::member_channel_id;
use monti::asterisk::{AmiSimulator, AriSimulator};
use serde_json::{Value, json};

mod ari;
mod connector;
mod control;
mod files;

/// Waits until the tenant's snapshot satisfies `ready`.
async fn floor_until(
    server: &common::TestServer,
    token: &str,
    what: &str,
    ready: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let agents = server.get("/api/v1/live/snapshot", token).await.body["agents"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if ready(&agents) {
            return agents;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{what}: {agents:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn state_of<'a>(agents: &'a [Value], name: &str) -> (&'a str, &'a str) {
    let agent = agents.iter().find(|a| a["name"] == json!(name)).expect(name);
    (
        agent["state"].as_str().unwrap_or_default(),
        agent["reason"].as_str().unwrap_or_default(),
    )
}

/// Uploads the connector (built for wasm32-wasip2) into the tenant, configures it for the PBX
/// at 127.0.0.1:`port` with `password`, approves what it asks for and enables it.
pub(crate) async fn install_connector(server: &common::TestServer, admin: &str, port: u16, password: &str) {
    install_connector_matching(server, admin, port, password, "interface").await;
}

async fn install_connector_matching(
    server: &common::TestServer,
    admin: &str,
    port: u16,
    password: &str,
    match_by: &str,
) {
    let config = json!({ "host": "127.0.0.1", "port": port, "username": "monti", "auth": "md5", "match_by": match_by });
    install_connector_with(server, admin, config, json!({ "password": password })).await;
}

/// The connector built for wasm32-wasip2, uploaded into the tenant (not configured or enabled).
pub(crate) async fn upload_connector(server: &common::TestServer, admin: &str) {
    let wasm = monti_plugin_test::build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/asterisk"))
        .expect("the connector builds");
    let installed = server
        .client
        .post(server.url("/api/v1/plugins"))
        .bearer_auth(admin)
        .header("content-type", "application/wasm")
        .body(std::fs::read(wasm).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(installed.status(), 201);
}

/// As [`install_connector`], with the whole configuration and secrets given.
async fn install_connector_with(server: &common::TestServer, admin: &str, config: Value, secrets: Value) {
    upload_connector(server, admin).await;
    server
        .patch(
            "/api/v1/plugins/asterisk",
            admin,
            json!({
                "config": config,
                "secrets": secrets,
                "enabled": true,
                "approve_capabilities": true,
            }),
        )
        .await
        .expect(200);
}

/// A tenant `acme` with agents Ana (1001) and Ben (1002), its Asterisk connector enabled and
/// connected to a simulated PBX where both are members of `sales`; returns when both are
/// available on the floor. (simulator, server, admin token, Ana's id, Ben's id)
async fn connected_tenant() -> (AmiSimulator, common::TestServer, String, String, String) {
    connected_tenant_with(None).await
}

/// As [`connected_tenant`], with the connector also configured for `ari` (user `monti`,
/// password `ari-pw`) when given.
async fn connected_tenant_with(
    ari: Option<&AriSimulator>,
) -> (AmiSimulator, common::TestServer, String, String, String) {
    let pbx = AmiSimulator::start("monti", "ami-pw").await.unwrap();
    pbx.add_member("sales", "PJSIP/1001", "Ana");
    pbx.add_member("sales", "PJSIP/1002", "Ben");
    let server = common::TestServer::start_with(common::Backend::Sqlite, |c| {
        c.plugins.private_networks = vec!["acme".into()];
    })
    .await
    .unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    let mut ids = Vec::new();
    for (name, extension) in [("Ana", "1001"), ("Ben", "1002")] {
        let created = server
            .post(
                "/api/v1/agents",
                &admin,
                json!({ "name": name, "extension": extension }),
            )
            .await;
        created.expect(201);
        ids.push(created.body["id"].as_str().unwrap().to_owned());
    }
    let mut config = json!({ "host": "127.0.0.1", "port": pbx.port(), "username": "monti" });
    let mut secrets = json!({ "password": "ami-pw" });
    if let Some(ari) = ari {
        config["ari_host"] = json!("127.0.0.1");
        config["ari_port"] = json!(ari.port());
        config["ari_user"] = json!("monti");
        secrets["ari_password"] = json!("ari-pw");
    }
    install_connector_with(&server, &admin, config, secrets).await;
    floor_until(&server, &admin, "both available", |agents| {
        agents.len() == 2 && agents.iter().all(|a| a["state"] == json!("available"))
    })
    .await;
    let ben = ids.pop().unwrap();
    let ana = ids.pop().unwrap();
    (pbx, server, admin, ana, ben)
}

/// A supervisor of `acme` (Sue), signed in on the board in Chromium.
async fn supervisor_on_board(browser: &common::browser::Browser, server: &common::TestServer) -> common::browser::Page {
    common::account(
        &server.store,
        "sue@example.com",
        "correct horse battery staple",
        Some(("acme", monti::domain::Role::Supervisor)),
        false,
    )
    .await;
    let mut page = browser.page().await;
    page.sign_in_at(&server.url("/board"), "sue@example.com", "correct horse battery staple")
        .await;
    page
}

fn pauses(pbx: &AmiSimulator) -> Vec<(String, String, String)> {
    pbx.actions()
        .iter()
        .filter(|a| a.get("Action") == Some("QueuePause"))
        .map(|a| {
            (
                a.get("Interface").unwrap_or_default().to_owned(),
                a.get("Paused").unwrap_or_default().to_owned(),
                a.get("Reason").unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn rand_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Plays a contact-center event on both halves of the simulated PBX.
fn play(ami: &AmiSimulator, ari: &AriSimulator, body: monti::domain::events::EventBody) {
    let event = monti::domain::events::Event {
        v: 1,
        id: format!("test-{}", rand_id()),
        source: "test".into(),
        at: chrono::Utc::now(),
        body,
    };
    ami.play(&event);
    ari.play(&event);
}

/// Puts Ana (1001) on queue call `call` of a new queue `sales`, and waits until the board
/// knows which call it is.
async fn ana_takes_call(ami: &AmiSimulator, ari: &AriSimulator, server: &common::TestServer, admin: &str, call: &str) {
    use monti::domain::events::EventBody;
    // Events about a queue Monti does not know are refused: the tenant has `sales`.
    server
        .post("/api/v1/queues", admin, json!({ "name": "sales" }))
        .await
        .expect(201);
    play(
        ami,
        ari,
        EventBody::CallerJoin {
            queue: "sales".into(),
            call: call.into(),
        },
    );
    play(
        ami,
        ari,
        EventBody::CallerAnswer {
            queue: "sales".into(),
            call: call.into(),
            agent: "1001".into(),
            wait_s: 4.0,
        },
    );
    floor_until(server, admin, "Ana on the call", |agents| {
        agents
            .iter()
            .any(|a| a["name"] == json!("Ana") && a["state"] == json!("on_queue_call") && a["call"] == json!(call))
    })
    .await;
}

/// Waits until `ready` holds of the ARI simulator.
async fn ari_until(ari: &AriSimulator, what: &str, ready: impl Fn(&AriSimulator) -> bool) {
    let started = Instant::now();
    while !ready(ari) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{what}: channels {:?}, bridges {:?}, requests {:?}",
            ari.channel_ids(),
            ari.bridge_ids(),
            ari.requests()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The listening-in bridge of `mode`, once it holds the snoop and the supervisor's channels:
/// (bridge, snoop channel, supervisor channel).
async fn snoop_session(ari: &AriSimulator, mode: &str) -> (String, Value, Value) {
    let prefix = format!("monti-{mode}-");
    ari_until(ari, &format!("a {mode} bridge with two channels"), |ari| {
        ari.bridge_ids()
            .iter()
            .any(|b| b.starts_with(&prefix) && ari.bridge_channels(b).is_some_and(|c| c.len() == 2))
    })
    .await;
    let bridge = ari.bridge_ids().into_iter().find(|b| b.starts_with(&prefix)).unwrap();
    let channels: Vec<Value> = ari
        .bridge_channels(&bridge)
        .unwrap()
        .iter()
        .filter_map(|c| ari.channel(c))
        .collect();
    let snoop = channels
        .iter()
        .find(|c| c.get("snoops").is_some())
        .expect("a snoop channel")
        .clone();
    let supervisor = channels
        .iter()
        .find(|c| c.get("snoops").is_none())
        .expect("the supervisor's channel")
        .clone();
    (bridge, snoop, supervisor)
}

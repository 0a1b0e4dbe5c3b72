//! The whole Asterisk path over real TCP: the AMI simulator ↔ the host's stream ↔ the connector
//! plugin ↔ the live floor. The connector logs in with MD5 (the host writes the key), resyncs,
//! follows members' states and pauses, and resyncs again after the PBX drops the connection.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use monti::asterisk::AmiSimulator;
use serde_json::{Value, json};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_follows_the_pbx_through_the_connector() {
    let pbx = AmiSimulator::start("monti", "ami-pw").await.unwrap();
    pbx.add_member("sales", "PJSIP/1001", "Ana");
    pbx.add_member("sales", "PJSIP/1002", "Ben");
    pbx.add_member("support", "PJSIP/1002", "Ben");

    let server = common::TestServer::start_with(common::Backend::Sqlite, |c| {
        c.plugins.private_networks = vec!["acme".into()];
    })
    .await
    .unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    for (name, extension) in [("Ana", "1001"), ("Ben", "1002")] {
        server
            .post(
                "/api/v1/agents",
                &admin,
                json!({ "name": name, "extension": extension }),
            )
            .await
            .expect(201);
    }
    let wasm = monti_plugin_test::build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/asterisk"))
        .expect("the connector builds");
    let installed = server
        .client
        .post(server.url("/api/v1/plugins"))
        .bearer_auth(&admin)
        .header("content-type", "application/wasm")
        .body(std::fs::read(wasm).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(installed.status(), 201);
    let enabled = server
        .patch(
            "/api/v1/plugins/asterisk",
            &admin,
            json!({
                "config": { "host": "127.0.0.1", "port": pbx.port(), "username": "monti", "auth": "md5" },
                "secrets": { "password": "ami-pw" },
                "enabled": true,
                "approve_capabilities": true,
            }),
        )
        .await;
    enabled.expect(200);

    // Within the heartbeat: connected, logged in, resynced; both agents available.
    let agents = floor_until(&server, &admin, "both available", |agents| {
        agents.len() == 2 && agents.iter().all(|a| a["state"] == json!("available"))
    })
    .await;
    assert_eq!(agents.len(), 2);
    let actions: Vec<String> = pbx
        .actions()
        .iter()
        .map(|a| a.get("Action").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(actions[..3], ["Challenge", "Login", "QueueStatus"], "{actions:?}");
    let login = pbx
        .actions()
        .into_iter()
        .find(|a| a.get("Action") == Some("Login"))
        .unwrap();
    assert!(login.get("Secret").is_none(), "an MD5 login sends no password");

    // A call on Ana's phone, a pause for Ben: on the board within moments.
    pbx.set_status("PJSIP/1001", 2);
    pbx.pause("PJSIP/1002", true, "lunch");
    let agents = floor_until(&server, &admin, "call and pause", |agents| {
        state_of(agents, "Ana").0 == "on_direct_call" && state_of(agents, "Ben") == ("paused", "lunch")
    })
    .await;
    assert_eq!(state_of(&agents, "Ben"), ("paused", "lunch"));

    // The PBX restarts; meanwhile Ana's call ends and Ben's pause is lifted, unseen. The
    // connector reconnects (the host paces it) and the resync puts the floor right.
    pbx.drop_connections();
    pbx.quietly("PJSIP/1001", |m| m.status = 1);
    pbx.quietly("PJSIP/1002", |m| {
        m.paused = false;
        m.reason.clear();
    });
    floor_until(&server, &admin, "resynced after the restart", |agents| {
        state_of(agents, "Ana").0 == "available" && state_of(agents, "Ben").0 == "available"
    })
    .await;
    let resyncs = pbx
        .actions()
        .iter()
        .filter(|a| a.get("Action") == Some("QueueStatus"))
        .count();
    assert!(resyncs >= 2, "a resync after the reconnect");

    // The plugin's page shows it: runs, no failure, what it logged.
    let record = server.get("/api/v1/plugins/asterisk", &admin).await.body;
    assert_eq!(record["failures"], json!(0), "{record}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_reported_and_retried_without_hammering() {
    let pbx = AmiSimulator::start("monti", "right").await.unwrap();
    pbx.add_member("sales", "PJSIP/1001", "Ana");
    let server = common::TestServer::start_with(common::Backend::Sqlite, |c| {
        c.plugins.private_networks = vec!["acme".into()];
    })
    .await
    .unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    let wasm = monti_plugin_test::build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/asterisk"))
        .expect("the connector builds");
    server
        .client
        .post(server.url("/api/v1/plugins"))
        .bearer_auth(&admin)
        .header("content-type", "application/wasm")
        .body(std::fs::read(wasm).unwrap())
        .send()
        .await
        .unwrap();
    server
        .patch(
            "/api/v1/plugins/asterisk",
            &admin,
            json!({
                "config": { "host": "127.0.0.1", "port": pbx.port(), "username": "monti" },
                "secrets": { "password": "wrong" },
                "enabled": true,
                "approve_capabilities": true,
            }),
        )
        .await
        .expect(200);
    let started = Instant::now();
    loop {
        let record = server.get("/api/v1/plugins/asterisk", &admin).await.body;
        let logs = record["last_logs"].to_string();
        if logs.contains("login refused") || logs.contains("refused the login") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{record}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Each refusal is followed by a pause before the next try (1 s, 2 s, 4 s …).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let logins = pbx
        .actions()
        .iter()
        .filter(|a| a.get("Action") == Some("Login"))
        .count();
    assert!((1..=4).contains(&logins), "{logins} logins in about 5 s");
    server.stop().await;
}

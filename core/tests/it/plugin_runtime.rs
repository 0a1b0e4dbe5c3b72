//! What a stream plugin's page and API show about its connection, driven through the Asterisk
//! connector against the AMI simulator: the lines it logged, the last disconnect and why, the
//! message rate, and the address the tenant approves.

use crate::common;

use std::time::{Duration, Instant};

use monti::asterisk::AmiSimulator;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

fn config(port: u16) -> Value {
    json!({ "host": "127.0.0.1", "port": port, "username": "monti", "auth": "md5", "match_by": "interface" })
}

/// A PBX with one member, a server that may reach it, and the connector enabled against it.
async fn connected() -> (AmiSimulator, common::TestServer, String) {
    let pbx = AmiSimulator::start("monti", "ami-pw").await.unwrap();
    pbx.add_member("sales", "PJSIP/1001", "Ana");
    let server = common::TestServer::start_with(common::Backend::Sqlite, |c| {
        c.plugins.private_networks = vec!["acme".into()];
    })
    .await
    .unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    server
        .post("/api/v1/agents", &admin, json!({ "name": "Ana", "extension": "1001" }))
        .await
        .expect(201);
    crate::asterisk::upload_connector(&server, &admin).await;
    server
        .patch(
            "/api/v1/plugins/asterisk",
            &admin,
            json!({
                "config": config(pbx.port()),
                "secrets": { "password": "ami-pw" },
                "enabled": true,
                "approve_capabilities": true,
            }),
        )
        .await
        .expect(200);
    (pbx, server, admin)
}

/// The installation's record once `ready` holds (within 20 s).
async fn record_until(server: &common::TestServer, admin: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let record = server.get("/api/v1/plugins/asterisk", admin).await.body;
        if ready(&record) {
            return record;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{what}: {record}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn signed_in_admin(server: &common::TestServer) -> common::Visitor {
    common::account(
        &server.store,
        "ada@example.com",
        PASSWORD,
        Some(("acme", monti::domain::Role::TenantAdmin)),
        false,
    )
    .await;
    let mut ada = common::Visitor::new(server);
    assert_eq!(ada.sign_in("ada@example.com", PASSWORD).await.status, 303);
    ada
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_plugins_log_lines_survive_the_heartbeat_and_a_disconnect_is_kept() {
    let (pbx, server, admin) = connected().await;
    let live = |r: &Value| r["status"]["connection"] == json!("live");
    let record = record_until(&server, &admin, "live", live).await;
    // Right after logging in a few messages have arrived: the rate is what arrived in the last
    // minute, not a millisecond's worth scaled up to one.
    let status = &record["status"];
    let messages = status["messages"].as_u64().unwrap();
    let per_minute = status["messages_per_minute"].as_u64().unwrap();
    assert!(messages > 0, "{status}");
    assert!(
        per_minute <= messages,
        "{per_minute} a minute after {messages} messages: {status}"
    );

    // Heartbeats (every 5 s) run the connector without logging anything; what it said when it
    // connected stays on its record.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let record = server.get("/api/v1/plugins/asterisk", &admin).await.body;
    let logs = record["last_logs"].to_string();
    for said in ["connected", "logged in to the PBX", "in step with the PBX"] {
        assert!(logs.contains(said), "`{said}` in {logs}");
    }
    assert_eq!(record["last_disconnect"], Value::Null, "{record}");

    // The PBX drops the connection; the connector is back within moments, and the record
    // still says when and why it went.
    pbx.drop_connections();
    let record = record_until(&server, &admin, "disconnect recorded and back live", |r| {
        live(r) && r["last_disconnect"].is_object()
    })
    .await;
    let disconnect = &record["last_disconnect"];
    assert_eq!(disconnect["kind"], json!("server_closed"), "{disconnect}");
    assert_eq!(disconnect["was_connected"], json!(true), "{disconnect}");
    assert!(
        disconnect["reason"].as_str().unwrap().contains("closed the connection"),
        "{disconnect}"
    );
    assert_eq!(
        disconnect["destination"],
        json!(format!("tcp://127.0.0.1:{}", pbx.port()))
    );
    let at = chrono::DateTime::parse_from_rfc3339(disconnect["at"].as_str().unwrap()).expect("a time");
    assert!(
        (chrono::Utc::now() - at.to_utc()).num_seconds().abs() < 60,
        "{disconnect}"
    );
    // Its lines about the drop reach the record too.
    let record = record_until(&server, &admin, "the drop logged", |r| {
        r["last_logs"].to_string().contains("the connection to the PBX closed")
    })
    .await;
    assert!(record["last_logs"].to_string().contains("connected"), "{record}");

    // Operators count disconnects by installation and reason.
    let id = record["id"].as_str().unwrap();
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("plugin_stream_disconnects_total{{installation=\"{id}\",reason=\"server_closed\"}}");
    assert!(metrics.contains(&series), "{series} in /metrics");

    // The plugin's page shows it.
    let mut ada = signed_in_admin(&server).await;
    let page = ada.get("/admin/plugins/asterisk").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("id=\"last-disconnect\"") && page.body.contains("data-kind=\"server_closed\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("closed the connection"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approval_list_names_the_configured_address() {
    let server = common::TestServer::start_with(common::Backend::Sqlite, |c| {
        c.plugins.private_networks = vec!["acme".into()];
    })
    .await
    .unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    crate::asterisk::upload_connector(&server, &admin).await;
    let mut ada = signed_in_admin(&server).await;

    // Not configured yet: the template is all there is to show.
    let page = ada.get("/admin/plugins/asterisk").await;
    assert_eq!(page.status, 200);
    // Pages escape the slash.
    let body = page.body.replace("&#x2F;", "/");
    assert!(body.contains("id=\"approval\""), "{body}");
    assert!(body.contains("tcp://${host}:${port}"), "{body}");

    // Configured: the tenant approves a connection to that PBX.
    server
        .patch("/api/v1/plugins/asterisk", &admin, json!({ "config": config(5038) }))
        .await
        .expect(200);
    let body = ada.get("/admin/plugins/asterisk").await.body.replace("&#x2F;", "/");
    let approval = body.split("id=\"approval\"").nth(1).expect("the approval list");
    let approval = approval.split("</div>").next().unwrap();
    assert!(
        approval.contains("keep a connection open to tcp://127.0.0.1:5038"),
        "{approval}"
    );
    assert!(
        approval.contains("use the secret `password`, sent only to tcp://127.0.0.1:5038"),
        "{approval}"
    );
    assert!(
        !approval.contains("${host}") && !approval.contains("${port}"),
        "{approval}"
    );
    // ARI is not configured: its template is what there is to show.
    assert!(approval.contains("ws://${ari_host}:${ari_port}"), "{approval}");
    server.stop().await;
}

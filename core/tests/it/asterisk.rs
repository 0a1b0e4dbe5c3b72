//! The whole Asterisk path over real TCP: the AMI simulator ↔ the host's stream ↔ the connector
//! plugin ↔ the live floor. The connector logs in with MD5 (the host writes the key), resyncs,
//! follows members' states and pauses, and resyncs again after the PBX drops the connection.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use monti::asterisk::ari_sim::member_channel_id;
use monti::asterisk::{AmiSimulator, AriSimulator};
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

/// As [`install_connector`], with the whole configuration and secrets given.
async fn install_connector_with(server: &common::TestServer, admin: &str, config: Value, secrets: Value) {
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
    install_connector(&server, &admin, pbx.port(), "ami-pw").await;

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
    // The plugin's page shows the connection as the connector reports it.
    let started = Instant::now();
    let status = loop {
        let status = server.get("/api/v1/plugins/asterisk", &admin).await.body["status"].clone();
        if status["connection"] == json!("live") || started.elapsed() > Duration::from_secs(10) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["connection"], json!("live"), "{status}");
    assert_eq!(status["agents_logged_in"], json!(2), "{status}");
    assert!(status["messages"].as_u64().unwrap() > 0, "{status}");

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
    install_connector(&server, &admin, pbx.port(), "wrong").await;
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

#[test]
fn importing_cdrs_counts_what_the_file_holds_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(
        common::monti_cli(
            &data,
            &["admin", "tenant", "create", "--slug", "acme", "--name", "Acme"]
        )
        .0
    );
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cdr/cdr.csv");
    let file = file.to_str().unwrap();
    let (ok, out, err) = common::monti_cli(&data, &["import", "cdr", file, "--tenant", "acme", "--timezone", "UTC"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("218 lines: 218 records added, 0 already there, 0 refused"),
        "{out}"
    );
    for line in ["     133 ANSWERED", "      83 NO ANSWER", "       2 BUSY"] {
        assert!(out.contains(line), "{line} in {out}");
    }
    // Again: nothing new.
    let (ok, out, _) = common::monti_cli(&data, &["import", "cdr", file, "--tenant", "acme", "--timezone", "UTC"]);
    assert!(ok);
    assert!(out.contains("218 lines: 0 records added, 218 already there"), "{out}");

    // Broken lines are reported with their numbers; the good ones are imported once.
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines: Vec<&str> = text.lines().take(3).collect();
    lines.insert(1, "\"\",\"only\",\"three\"");
    lines.insert(3, "\"\",\"791\",\"715\",\"hq\",\"\",\"x\",\"y\",\"Dial\",\"\",\"yesterday\",\"\",\"2017-06-20 09:49:32\",10,0,\"NO ANSWER\",\"DOCUMENTATION\",\"1\",\"\"");
    lines.push("\"unterminated");
    let broken = dir.path().join("broken.csv");
    std::fs::write(&broken, lines.join("\n")).unwrap();
    let other = common::monti_cli(
        &data,
        &["admin", "tenant", "create", "--slug", "beta", "--name", "Beta"],
    );
    assert!(other.0);
    let broken = broken.to_str().unwrap();
    let (ok, out, err) = common::monti_cli(
        &data,
        &["import", "cdr", broken, "--tenant", "beta", "--timezone", "UTC"],
    );
    assert!(!ok, "a partial import says so");
    assert!(
        out.contains("6 lines: 3 records added, 0 already there, 3 refused"),
        "{out}"
    );
    assert!(err.contains("line 2: 3 columns"), "{err}");
    assert!(
        err.contains("line 4: start `yesterday` is not YYYY-MM-DD HH:MM:SS"),
        "{err}"
    );
    assert!(err.contains("line 6: field 1 has no closing quote"), "{err}");
    let (_, out, _) = common::monti_cli(
        &data,
        &["import", "cdr", broken, "--tenant", "beta", "--timezone", "UTC"],
    );
    assert!(out.contains("0 records added, 3 already there"), "{out}");
}

#[test]
fn a_hand_made_queue_log_gives_hand_computed_kpis() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(
        common::monti_cli(
            &data,
            &["admin", "tenant", "create", "--slug", "acme", "--name", "Acme"]
        )
        .0
    );
    // Four callers in `sales`: answered after 10 s (talk 100 s), answered after 30 s (talk
    // 200 s), abandoned after 5 s, timed out after 60 s. One caller in `support`, answered at
    // once. An agent logs in and pauses. A line of garbage.
    let log = "\
1700000000|NONE|NONE|NONE|QUEUESTART|
1700000001|MANAGER|sales|PJSIP/2001|ADDMEMBER|
1700000010|c1|sales|NONE|ENTERQUEUE||1001|1
1700000020|c1|sales|PJSIP/2001|CONNECT|10|c1.5|2
1700000120|c1|sales|PJSIP/2001|COMPLETECALLER|10|100|1
1700000200|c2|sales|NONE|ENTERQUEUE||1002|1
1700000230|c2|sales|PJSIP/2002|CONNECT|30|c2.5|3
1700000430|c2|sales|PJSIP/2002|COMPLETEAGENT|30|200|1
1700000300|c3|sales|NONE|ENTERQUEUE||1003|2
1700000305|c3|sales|NONE|ABANDON|2|2|5
this is not a queue_log line
1700000400|c4|sales|NONE|ENTERQUEUE||1004|1
1700000460|c4|sales|NONE|EXITWITHTIMEOUT|1|1|60
1700000500|c5|support|NONE|ENTERQUEUE||1005|1
1700000500|c5|support|PJSIP/2001|CONNECT|0|c5.5|1
1700000560|c5|support|PJSIP/2001|COMPLETECALLER|0|60|1
1700000600|MANAGER|sales|PJSIP/2001|PAUSE|lunch
";
    let file = dir.path().join("queue_log");
    std::fs::write(&file, log).unwrap();
    let file = file.to_str().unwrap();
    let (ok, out, err) = common::monti_cli(&data, &["import", "queue-log", file, "--tenant", "acme"]);
    assert!(!ok, "one line was refused");
    assert!(
        err.contains("line 11: 1 fields; a queue_log line has at least 5"),
        "{err}"
    );
    // 16 good lines: QUEUESTART says nothing; 5 joins, 3 answers (each with its call start),
    // 3 ends, 2 leaves, a login and a pause: 18 events.
    assert!(
        out.contains("17 lines: 18 events added, 0 already there, 1 refused"),
        "{out}"
    );
    // sales: offered 4, answered 2, abandoned 1; SL(20 s) = answered within 20 s / (answered +
    // abandoned) = 1/3; ASA = (10 + 30) / 2; AHT = (100 + 200) / 2; abandon rate = 1/4.
    let sales = out.lines().find(|l| l.starts_with("sales")).expect(&out);
    let fields: Vec<&str> = sales.split_whitespace().collect();
    assert_eq!(
        fields,
        [
            "sales", "4", "2", "1", "33.3", "%", "20.0", "s", "150.0", "s", "25.0", "%"
        ],
        "{out}"
    );
    let support = out.lines().find(|l| l.starts_with("support")).expect(&out);
    let fields: Vec<&str> = support.split_whitespace().collect();
    assert_eq!(
        fields,
        [
            "support", "1", "1", "0", "100.0", "%", "0.0", "s", "60.0", "s", "0.0", "%"
        ]
    );
    // Importing again adds nothing.
    let (_, out, _) = common::monti_cli(&data, &["import", "queue-log", file, "--tenant", "acme"]);
    assert!(out.contains("0 events added, 18 already there"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenants_telephony_is_exported_as_asterisk_configuration() {
    let server = common::TestServer::start(common::Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    let supervisor = server.tenant("acme", monti::domain::Role::Supervisor).await;
    let ana = server
        .post(
            "/api/v1/agents",
            &admin,
            json!({ "name": "Ana", "extension": "1001", "interface": "PJSIP/ana-desk" }),
        )
        .await;
    ana.expect(201);
    let ben = server
        .post("/api/v1/agents", &admin, json!({ "name": "Ben", "extension": "1002" }))
        .await;
    ben.expect(201);
    server
        .post(
            "/api/v1/endpoints",
            &admin,
            json!({ "name": "ana-desk", "password": "a-long-sip-password", "codecs": ["opus"] }),
        )
        .await
        .expect(201);
    let queue = server
        .post("/api/v1/queues", &admin, json!({ "name": "sales", "wrap_up_s": 15 }))
        .await;
    queue.expect(201);
    let queue_id = queue.body["id"].as_str().unwrap().to_owned();
    server
        .put(
            &format!("/api/v1/queues/{queue_id}/members"),
            &admin,
            json!([{ "agent_id": ana.body["id"], "penalty": 1 }, { "agent_id": ben.body["id"] }]),
        )
        .await
        .expect(200);
    server
        .post(
            "/api/v1/dids",
            &admin,
            json!({ "number": "+4930123456", "description": "Hotline", "route_type": "queue", "route_target": queue_id }),
        )
        .await
        .expect(201);

    let get = |file: &str, token: &str| {
        server
            .client
            .get(server.url(&format!("/api/v1/telephony/asterisk/{file}")))
            .bearer_auth(token)
            .send()
    };
    let pjsip = get("pjsip.conf", &admin).await.unwrap();
    assert_eq!(pjsip.status(), 200);
    assert!(
        pjsip.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("pjsip.conf")
    );
    let pjsip = pjsip.text().await.unwrap();
    assert!(pjsip.contains("[ana-desk]\ntype = endpoint"), "{pjsip}");
    assert!(pjsip.contains("password = a-long-sip-password"), "{pjsip}");
    assert!(pjsip.contains("allow = opus"), "{pjsip}");
    let queues = get("queues.conf", &admin).await.unwrap().text().await.unwrap();
    assert!(
        queues.contains("[sales]\nstrategy = rrmemory\nservicelevel = 20\nwrapuptime = 15"),
        "{queues}"
    );
    assert!(
        queues.contains("member => PJSIP/ana-desk,1,Ana,PJSIP/ana-desk"),
        "{queues}"
    );
    assert!(queues.contains("; Ben has no interface"), "{queues}");
    let dialplan = get("extensions.conf", &admin).await.unwrap().text().await.unwrap();
    assert!(
        dialplan.contains("[monti-acme-dids]\nexten => +4930123456,1,NoOp(Hotline)\n same => n,Queue(sales)"),
        "{dialplan}"
    );
    // Passwords inside: a supervisor may not; unknown files are 404.
    assert_eq!(get("pjsip.conf", &supervisor).await.unwrap().status(), 403);
    assert_eq!(get("sip.conf", &admin).await.unwrap().status(), 404);
    // Every download is audited.
    let audit = server.get("/api/v1/audit?action=telephony.export", &admin).await.body;
    assert!(audit.to_string().contains("telephony.export"), "{audit}");
    server.stop().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisors_pause_agents_on_the_pbx_through_the_api() {
    let (pbx, server, admin, _ana, ben) = connected_tenant().await;
    let supervisor = server.tenant("acme", monti::domain::Role::Supervisor).await;
    let viewer = server.tenant("acme", monti::domain::Role::Viewer).await;
    let pause = format!("/api/v1/live/agents/{ben}/pause");
    server
        .post(&pause, &viewer, json!({ "reason": "x" }))
        .await
        .expect_problem(403);
    let sent = server.post(&pause, &supervisor, json!({ "reason": "coaching" })).await;
    sent.expect(202);
    assert!(
        sent.body["answer"].as_str().unwrap().contains("QueuePause"),
        "{}",
        sent.body
    );
    assert_eq!(pauses(&pbx), [("PJSIP/1002".into(), "true".into(), "coaching".into())]);
    let agents = floor_until(&server, &admin, "Ben paused", |agents| {
        state_of(agents, "Ben") == ("paused", "coaching")
    })
    .await;
    assert_eq!(state_of(&agents, "Ana").0, "available");
    server
        .post(&format!("/api/v1/live/agents/{ben}/unpause"), &supervisor, json!({}))
        .await
        .expect(202);
    floor_until(&server, &admin, "Ben back", |agents| {
        state_of(agents, "Ben").0 == "available"
    })
    .await;
    // Bad input is refused before anything is sent.
    let long = "x".repeat(81);
    server
        .post(&pause, &supervisor, json!({ "reason": long }))
        .await
        .expect_problem(400);
    server
        .post(&format!("/api/v1/live/agents/{ben}/dance"), &supervisor, json!({}))
        .await
        .expect_problem(404);
    assert_eq!(pauses(&pbx).len(), 2);
    // Another tenant neither sees Ben nor has a connector.
    let other = server.tenant("other", monti::domain::Role::TenantAdmin).await;
    server.post(&pause, &other, json!({})).await.expect_problem(404);
    let oli = server
        .post("/api/v1/agents", &other, json!({ "name": "Oli", "extension": "9" }))
        .await;
    let oli = oli.body["id"].as_str().unwrap().to_owned();
    server
        .post(&format!("/api/v1/live/agents/{oli}/pause"), &other, json!({}))
        .await
        .expect_problem(409);
    // Audited, with what the connector answered.
    let audit = server.get("/api/v1/audit?action=agent.pause", &admin).await.body;
    assert!(audit.to_string().contains("QueuePause"), "{audit}");
    server.stop().await;
}

/// Acceptance: a supervisor pauses an agent from the board, the PBX receives the QueuePause
/// action, and the state comes back to the board as paused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_pauses_an_agent_from_the_board() {
    let Some(browser) = common::browser::Browser::launch().await else {
        return;
    };
    let (pbx, server, _admin, ana, _ben) = connected_tenant().await;
    let wait = Duration::from_secs(15);
    let mut page = supervisor_on_board(&browser, &server).await;
    let row = format!("li.agent[data-agent='{ana}']");
    assert!(
        page.wait_for(
            &format!("document.querySelector(\"{row}[data-state='available']\") !== null"),
            wait
        )
        .await,
        "Ana on the board"
    );
    page.click(&format!("{row} a.agent-name")).await;
    assert!(
        page.wait_for("document.querySelector('#pause') !== null", wait).await,
        "the drawer offers a pause"
    );
    page.fill("#pause-reason", "lunch").await;
    page.click("#pause").await;
    // The PBX receives the QueuePause for Ana's interface, with the reason …
    let started = Instant::now();
    while pauses(&pbx).is_empty() {
        let shown = page.eval("document.body.innerText.slice(0, 400)").await;
        assert!(
            started.elapsed() < wait,
            "no QueuePause reached the PBX; the page says {shown}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pauses(&pbx), [("PJSIP/1001".into(), "true".into(), "lunch".into())]);
    // … and the board shows Ana paused once the PBX confirms.
    page.goto(&server.url("/board")).await;
    assert!(
        page.wait_for(
            &format!("document.querySelector(\"{row}[data-state='paused']\") !== null"),
            wait
        )
        .await,
        "the board shows Ana paused"
    );
    // Click-to-call from the drawer: the PBX is asked to ring Ana's phone, then dial.
    page.click(&format!("{row} a.agent-name")).await;
    assert!(
        page.wait_for("document.querySelector('#call-number') !== null", wait)
            .await,
        "the drawer offers a call"
    );
    page.fill("#call-number", "+4930123").await;
    page.click("#call").await;
    let started = Instant::now();
    let originate = loop {
        if let Some(found) = pbx.actions().into_iter().find(|a| a.get("Action") == Some("Originate")) {
            break found;
        }
        assert!(started.elapsed() < wait, "no Originate reached the PBX");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (originate.get("Channel"), originate.get("Exten")),
        (Some("PJSIP/1001"), Some("+4930123"))
    );
    browser.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_to_call_logout_and_call_actions_reach_the_pbx() {
    let (pbx, server, admin, ana, ben) = connected_tenant().await;
    let supervisor = server.tenant("acme", monti::domain::Role::Supervisor).await;
    // Click-to-call: Ana's phone rings first, then dials the number.
    let call = server
        .post(
            &format!("/api/v1/live/agents/{ana}/call"),
            &supervisor,
            json!({ "number": "+4930123" }),
        )
        .await;
    call.expect(202);
    let originate = pbx
        .actions()
        .into_iter()
        .find(|a| a.get("Action") == Some("Originate"))
        .expect("an Originate");
    assert_eq!(originate.get("Channel"), Some("PJSIP/1001"));
    assert_eq!(originate.get("Exten"), Some("+4930123"));
    assert_eq!(originate.get("Context"), Some("from-internal"));
    server
        .post(
            &format!("/api/v1/live/agents/{ana}/call"),
            &supervisor,
            json!({ "number": "1; Hangup" }),
        )
        .await
        .expect_problem(400);
    // Log Ben out of his queues: the PBX removes him and the floor follows.
    server
        .post(&format!("/api/v1/live/agents/{ben}/logout"), &supervisor, json!({}))
        .await
        .expect(202);
    floor_until(&server, &admin, "Ben logged out", |agents| {
        state_of(agents, "Ben").0 == "logged_out"
    })
    .await;
    // Calls the connector does not know, and what needs ARI, are refused with the reason.
    let unknown = server
        .post("/api/v1/live/calls/1800000000.42/hangup", &supervisor, json!({}))
        .await;
    unknown.expect_problem(422);
    assert!(
        unknown.body["detail"].as_str().unwrap().contains("no call"),
        "{}",
        unknown.body
    );
    let hold = server
        .post("/api/v1/live/calls/1800000000.42/hold", &supervisor, json!({}))
        .await;
    hold.expect_problem(422);
    assert!(hold.body["detail"].as_str().unwrap().contains("ARI"), "{}", hold.body);
    server
        .post("/api/v1/live/calls/x/transfer", &supervisor, json!({ "to": "" }))
        .await
        .expect_problem(400);
    let audit = server.get("/api/v1/audit?action=agent.call", &admin).await.body;
    assert!(audit.to_string().contains("Originate"), "{audit}");
    // After new configuration, the admin has the PBX reload; a supervisor may not.
    server
        .post("/api/v1/telephony/reload", &supervisor, json!({}))
        .await
        .expect_problem(403);
    server
        .post("/api/v1/telephony/reload", &admin, json!({}))
        .await
        .expect(202);
    assert!(pbx.actions().iter().any(|a| a.get("Action") == Some("Reload")));
    server.stop().await;
}

/// `monti demo --asterisk`: the demo floor runs PBX → connector → live state; agents take calls
/// on the board as the simulated Asterisk reports them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_through_a_simulated_asterisk() {
    use tokio::io::AsyncBufReadExt;
    let wasm = monti_plugin_test::build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/asterisk"))
        .expect("the connector builds");
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_monti"))
        .args([
            "demo",
            "--asterisk",
            "--agents",
            "200",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--asterisk-plugin")
        .arg(&wasm)
        .env_remove("MONTI_DATABASE_URL")
        .env("MONTI_DATA_DIR", dir.path())
        .env("MONTI_LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let token = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim().starts_with("monti_") {
                return Some(line.trim().to_owned());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .expect("the demo prints an API token");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let client = reqwest::Client::new();
    let get = |path: &str| {
        client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .bearer_auth(&token)
            .send()
    };
    let started = Instant::now();
    let (first, on_calls) = loop {
        let snapshot: Value = get("/api/v1/live/snapshot").await.unwrap().json().await.unwrap();
        let agents = snapshot["agents"].as_array().cloned().unwrap_or_default();
        let on_calls = agents.iter().filter(|a| a["state"] == json!("on_queue_call")).count();
        if on_calls >= 10 {
            break (agents, on_calls);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no calls on the floor: {snapshot}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(first.len(), 200);
    assert!(on_calls >= 10);
    // The connector's status is written with its run record, at most a second late.
    let started = Instant::now();
    loop {
        let status: Value = get("/api/v1/plugins/asterisk").await.unwrap().json().await.unwrap();
        if status["status"]["connection"] == json!("live") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The floor keeps moving: within a few seconds some agent's state changed.
    let since = |agents: &[Value]| -> Vec<String> { agents.iter().map(|a| a["since"].to_string()).collect() };
    let before = since(&first);
    let started = Instant::now();
    loop {
        let snapshot: Value = get("/api/v1/live/snapshot").await.unwrap().json().await.unwrap();
        let now = since(snapshot["agents"].as_array().unwrap());
        if now != before {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the floor stands still");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = child.kill().await;
}

/// The same stores on PostgreSQL: imported CDRs and queue_log events, capability approvals and
/// re-sealing secrets under a new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_approvals_and_key_rotation_work_on_postgres() {
    let Some(server) = common::TestServer::start(common::Backend::Postgres).await else {
        return;
    };
    let _ = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    let scope = monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cdr/cdr.csv")).unwrap();
    let (report, counts) = monti::import::cdr::import(&server.store, &scope, &text, chrono_tz::UTC, false)
        .await
        .unwrap();
    assert_eq!((report.added, report.refused.len()), (218, 0));
    assert_eq!(
        counts,
        [
            ("ANSWERED".to_owned(), 133),
            ("NO ANSWER".to_owned(), 83),
            ("BUSY".to_owned(), 2)
        ]
    );
    let (again, _) = monti::import::cdr::import(&server.store, &scope, &text, chrono_tz::UTC, false)
        .await
        .unwrap();
    assert_eq!((again.added, again.already), (0, 218));
    let stored = monti::store::call_records::dispositions(&server.store, &scope)
        .await
        .unwrap();
    assert_eq!(stored[0], ("ANSWERED".to_owned(), 133));
    let log = "1700000010|c1|sales|NONE|ENTERQUEUE||1001|1\n1700000020|c1|sales|PJSIP/2001|CONNECT|10|c1.5|2\n";
    let (report, figures) = monti::import::queue_log::import(&server.store, &scope, log, &Default::default(), false)
        .await
        .unwrap();
    assert_eq!(report.added, 3);
    assert_eq!(figures["sales"].counters.answered, 1);

    // Approvals: nothing approved, then everything the package asks for.
    let wasm = monti_plugin_test::build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/asterisk"))
        .expect("the connector builds");
    let bytes = std::fs::read(wasm).unwrap();
    let engine = monti::plugins::PluginEngine::new(4).unwrap();
    let plugin = engine.validate(&bytes).unwrap();
    monti::store::plugins::store_package(&server.store, &plugin.digest, &plugin.manifest, &bytes)
        .await
        .unwrap();
    let installed = monti::store::plugins::install(&server.store, &scope, &plugin.digest, "{}")
        .await
        .unwrap();
    assert!(
        !monti::store::plugins::unapproved(&server.store, &installed)
            .await
            .unwrap()
            .is_empty()
    );
    let approved = monti::store::plugins::approve(&server.store, &scope, &installed.id)
        .await
        .unwrap();
    assert!(
        monti::store::plugins::unapproved(&server.store, &approved)
            .await
            .unwrap()
            .is_empty()
    );
    let tenants = monti::store::plugins::tenants_with_enabled(&server.store)
        .await
        .unwrap();
    assert!(tenants.is_empty(), "not enabled yet");

    // A secret sealed, re-sealed under a new key, still readable with it.
    monti::store::plugins::set_secret(&server.store, &scope, &installed.id, "password", "pw-1")
        .await
        .unwrap();
    let (new_key, _) = monti::secrets::SecretBox::generate();
    let resealed = monti::store::rekey::reseal_all(&server.store, &new_key).await.unwrap();
    assert!(resealed.contains(&("plugin secrets", 1)), "{resealed:?}");
    let reopened = server.store.with_secrets(new_key);
    let secrets = monti::store::plugins::secrets(&reopened, scope.tenant(), &installed.id)
        .await
        .unwrap();
    assert_eq!(secrets.get("password").map(String::as_str), Some("pw-1"));
    server.stop().await;
}

/// Acceptance: the captured AMI sessions, replayed by the simulator line for line over TCP to
/// the connector in a running server, put the floor in the states stated here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_sessions_replayed_over_tcp_give_the_stated_states() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/asterisk/tests/fixtures/panoramisk");
    let cases: [(&str, &[(&str, &str)]); 3] = [
        (
            "queue_status.yaml",
            &[
                ("213", "available"),
                ("214", "available"),
                ("220", "available"),
                ("333", "available"),
                ("859", "available"),
                // Paused, but its phone is unavailable: that shows first.
                ("999", "unavailable"),
            ],
        ),
        ("agent_loggued_in.yaml", &[("401", "available"), ("402", "available")]),
        ("agent_not_in_pause.yaml", &[("999", "available")]),
    ];
    for (capture, expected) in cases {
        let pbx = AmiSimulator::start("monti", "ami-pw").await.unwrap();
        pbx.replay(&std::fs::read_to_string(fixtures.join(capture)).unwrap());
        let server = common::TestServer::start_with(common::Backend::Sqlite, |c| {
            c.plugins.private_networks = vec!["acme".into()];
        })
        .await
        .unwrap();
        let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
        for (extension, _) in expected {
            server
                .post(
                    "/api/v1/agents",
                    &admin,
                    json!({ "name": extension, "extension": extension }),
                )
                .await
                .expect(201);
        }
        install_connector_matching(&server, &admin, pbx.port(), "ami-pw", "member_name").await;
        floor_until(&server, &admin, capture, |agents| {
            expected.iter().all(|(name, state)| {
                agents
                    .iter()
                    .any(|a| a["name"] == json!(name) && a["state"] == json!(state))
            })
        })
        .await;
        assert!(
            pbx.actions().iter().any(|a| a.get("Action") == Some("QueueStatus")),
            "{capture}: replayed as the answer to the resync"
        );
        server.stop().await;
    }
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

/// Hold and listening in go through ARI: the connector logs in to the event socket with the
/// password placed by the host, snoops on the agent's own channel and rings the supervisor
/// into a bridge with it, ends the session when either side leaves, and holds calls that an
/// ARI application controls (a dial-plan queue call is refused with the reason).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ari_listens_in_whispers_and_holds_through_the_connector() {
    let ari = AriSimulator::start("monti", "ari-pw").await.unwrap();
    let (ami, server, admin, ana, _ben) = connected_tenant_with(Some(&ari)).await;
    let supervisor = server.tenant("acme", monti::domain::Role::Supervisor).await;
    // The event socket is open, authenticated by the host (the plugin never had the password).
    let started = Instant::now();
    loop {
        let status = server.get("/api/v1/plugins/asterisk", &admin).await.body["status"].clone();
        if status["ari"]["connection"] == json!("live") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "ARI never connected: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ari.requests().iter().any(|r| r == "GET /ari/events?app=monti"),
        "{:?}",
        ari.requests()
    );

    let call = "1800000000.7";
    ana_takes_call(&ami, &ari, &server, &admin, call).await;
    // No phone given: refused before anything is sent.
    server
        .post(&format!("/api/v1/live/agents/{ana}/listen"), &supervisor, json!({}))
        .await
        .expect_problem(400);
    // Listen: a snoop on Ana's own channel that hears both sides and says nothing, and the
    // supervisor's phone, in one bridge.
    let listen = server
        .post(
            &format!("/api/v1/live/agents/{ana}/listen"),
            &supervisor,
            json!({ "supervisor": "PJSIP/2001" }),
        )
        .await;
    listen.expect(202);
    assert!(
        listen.body["answer"].as_str().unwrap().contains("ringing PJSIP/2001"),
        "{}",
        listen.body
    );
    let (listen_bridge, snoop, sup) = snoop_session(&ari, "listen").await;
    assert_eq!(
        snoop["snoops"],
        json!({ "channel": member_channel_id(call), "spy": "both", "whisper": "none" })
    );
    assert!(sup["name"].as_str().unwrap().starts_with("PJSIP/2001-"), "{sup}");
    // The supervisor hangs up: the connector ends the session (the snoop goes, the bridge too).
    ari.hang_up(sup["id"].as_str().unwrap());
    let snoop_id = snoop["id"].as_str().unwrap().to_owned();
    ari_until(&ari, "the listen session ended", |ari| {
        !ari.bridge_ids().contains(&listen_bridge) && ari.channel(&snoop_id).is_none()
    })
    .await;

    // Whisper by the call's id, with an extension for the phone (rung through the dial plan).
    let whisper = server
        .post(
            &format!("/api/v1/live/calls/{call}/whisper"),
            &supervisor,
            json!({ "supervisor": "2001" }),
        )
        .await;
    whisper.expect(202);
    let (whisper_bridge, snoop, sup) = snoop_session(&ari, "whisper").await;
    assert_eq!(
        snoop["snoops"]["whisper"],
        json!("out"),
        "the agent hears the supervisor, the caller does not"
    );
    assert!(
        sup["name"].as_str().unwrap().starts_with("Local/2001@from-internal-"),
        "{sup}"
    );
    // Hold: a queue call from the dial plan is not Stasis's; Asterisk refuses, the reason shown.
    let hold = server
        .post(&format!("/api/v1/live/calls/{call}/hold"), &supervisor, json!({}))
        .await;
    hold.expect_problem(422);
    assert!(
        hold.body["detail"].as_str().unwrap().contains("dial plan"),
        "{}",
        hold.body
    );
    // The call ends: the snoop goes with Ana's channel, and the connector clears up the rest.
    use monti::domain::events::EventBody;
    play(
        &ami,
        &ari,
        EventBody::CallEnd {
            call: call.into(),
            agent: "1001".into(),
            queue: Some("sales".into()),
            talk_s: 30.0,
            hold_s: 0.0,
            wrap_s: None,
        },
    );
    let sup_id = sup["id"].as_str().unwrap().to_owned();
    ari_until(&ari, "the whisper session ended with the call", |ari| {
        !ari.bridge_ids().contains(&whisper_bridge) && ari.channel(&sup_id).is_none()
    })
    .await;
    // A call an ARI application controls can be held and taken off hold.
    ari.stasis_call("1800000000.9", "monti");
    server
        .post("/api/v1/live/calls/1800000000.9/hold", &supervisor, json!({}))
        .await
        .expect(202);
    assert_eq!(ari.channel("1800000000.9").unwrap()["held"], json!(true));
    server
        .post("/api/v1/live/calls/1800000000.9/unhold", &supervisor, json!({}))
        .await
        .expect(202);
    assert_eq!(ari.channel("1800000000.9").unwrap()["held"], json!(false));
    server
        .post("/api/v1/live/calls/1800000000.404/hold", &supervisor, json!({}))
        .await
        .expect_problem(422);
    // Ana is on no call now: the agent's call actions say so.
    server
        .post(&format!("/api/v1/live/agents/{ana}/hangup"), &supervisor, json!({}))
        .await
        .expect_problem(409);
    let audit = server.get("/api/v1/audit?action=call.listen", &admin).await.body;
    assert!(audit.to_string().contains("ringing PJSIP/2001"), "{audit}");
    server.stop().await;
}

/// A wrong ARI password shows on the plugin's page; the right one, once saved, connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ari_password_is_shown_and_a_corrected_one_connects() {
    let ari = AriSimulator::start("monti", "right-pw").await.unwrap();
    let (_ami, server, admin, _ana, _ben) = connected_tenant_with(Some(&ari)).await;
    let status_until = |what: &'static str, ready: fn(&Value) -> bool| {
        let (server, admin) = (&server, &admin);
        async move {
            let started = Instant::now();
            loop {
                let status = server.get("/api/v1/plugins/asterisk", admin).await.body["status"].clone();
                if ready(&status["ari"]) {
                    return status;
                }
                assert!(started.elapsed() < Duration::from_secs(30), "{what}: {status}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let status = status_until("the refusal shown", |ari| {
        ari["last_error"].as_str().is_some_and(|e| e.contains("401"))
    })
    .await;
    assert_eq!(status["ari"]["connection"], json!("disconnected"), "{status}");
    server
        .patch(
            "/api/v1/plugins/asterisk",
            &admin,
            json!({ "secrets": { "ari_password": "right-pw" } }),
        )
        .await
        .expect(200);
    status_until("connected with the corrected password", |ari| {
        ari["connection"] == json!("live")
    })
    .await;
    server.stop().await;
}

/// From the board: the drawer of an agent on a call offers listening in (the supervisor's
/// phone rings into a snoop bridge over ARI) and hanging up (a manager `Hangup` on the caller's
/// channel).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_listens_in_and_hangs_up_from_the_board() {
    let Some(browser) = common::browser::Browser::launch().await else {
        return;
    };
    let ari = AriSimulator::start("monti", "ari-pw").await.unwrap();
    let (ami, server, admin, ana, _ben) = connected_tenant_with(Some(&ari)).await;
    let call = "1800000000.21";
    ana_takes_call(&ami, &ari, &server, &admin, call).await;
    let wait = Duration::from_secs(15);
    let mut page = supervisor_on_board(&browser, &server).await;
    let row = format!("li.agent[data-agent='{ana}']");
    assert!(
        page.wait_for(
            &format!("document.querySelector(\"{row}[data-state='on_queue_call']\") !== null"),
            wait
        )
        .await,
        "Ana on a call on the board"
    );
    page.click(&format!("{row} a.agent-name")).await;
    assert!(
        page.wait_for(
            &format!("document.querySelector(\".call-control[data-call='{call}'] #listen\") !== null"),
            wait
        )
        .await,
        "the drawer offers the call's actions"
    );
    page.fill("#supervisor-phone", "PJSIP/2001").await;
    page.click("#listen").await;
    let (_bridge, snoop, supervisor) = snoop_session(&ari, "listen").await;
    assert_eq!(snoop["snoops"]["channel"], json!(member_channel_id(call)));
    assert!(supervisor["name"].as_str().unwrap().starts_with("PJSIP/2001-"));
    assert!(
        page.wait_for("document.querySelector('#control-result.notice') !== null", wait)
            .await,
        "the drawer says it was sent"
    );
    page.click("#hangup").await;
    let started = Instant::now();
    let hangup = loop {
        if let Some(found) = ami.actions().into_iter().find(|a| a.get("Action") == Some("Hangup")) {
            break found;
        }
        assert!(started.elapsed() < wait, "no Hangup reached the PBX");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(hangup.get("Channel"), Some(format!("PJSIP/trunk-{call}").as_str()));
    // Audited once the connector has answered, which can be after the PBX saw the action.
    let started = Instant::now();
    loop {
        let audit = server.get("/api/v1/audit?action=call.hangup", &admin).await.body;
        if audit.to_string().contains(call) {
            break;
        }
        assert!(started.elapsed() < wait, "the hang-up is audited: {audit}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_tenants_connector_lets_go_of_the_pbx() {
    let (pbx, server, _admin, _, _) = connected_tenant().await;
    assert_eq!(pbx.logged_in_sessions(), 1, "the connector is logged in");
    let platform = server.platform_token().await;
    let tenant = monti::store::tenants::by_slug(&server.store, "acme")
        .await
        .unwrap()
        .unwrap();
    server
        .patch(
            &format!("/api/v1/tenants/{}", tenant.id),
            &platform,
            json!({ "suspended": true }),
        )
        .await
        .expect(200);
    let started = Instant::now();
    while pbx.logged_in_sessions() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the connection is closed on suspension"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // It stays closed: a suspended tenant's plugins do not start again on the next heartbeat.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(pbx.logged_in_sessions(), 0);
    server.stop().await;
}

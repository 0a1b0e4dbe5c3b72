//! The connector over AMI: logging in, following the floor, reconnecting, replayed captures,
//! the demo on a simulated Asterisk, and letting go of the PBX when the tenant is suspended.

use super::*;

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

/// `monti demo --asterisk`: the demo floor runs PBX → connector → live state; agents take calls
/// on the board as the simulated Asterisk reports them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_through_a_simulated_asterisk() {
    let wasm = monti_plugin_test::build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/asterisk"))
        .expect("the connector builds");
    let args = ["--asterisk", "--agents", "200", "--asterisk-plugin"].map(std::ffi::OsStr::new);
    let demo = common::Demo::start(&[&args[..], &[wasm.as_os_str()]].concat()).await;
    let (port, token) = (demo.port, demo.token.clone());
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
    drop(demo);
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

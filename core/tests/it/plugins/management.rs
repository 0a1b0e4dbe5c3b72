//! Installing and managing a tenant's plugins: the floor they move, the API, the admin page in a browser, operator policy, dead letters.

use super::*;

/// The whole path: PBX events posted to the ingest API reach the tenant's enabled plugin, and
/// what it emits moves the live floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installed_plugin_sees_the_tenants_events_and_moves_the_floor() {
    let server = common::TestServer::start(common::Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    server
        .post(
            "/api/v1/agents",
            &admin,
            serde_json::json!({ "name": "Ana", "extension": "1001" }),
        )
        .await
        .expect(201);
    let other = server.tenant("other", monti::domain::Role::TenantAdmin).await;
    server
        .post(
            "/api/v1/agents",
            &other,
            serde_json::json!({ "name": "Oli", "extension": "1001" }),
        )
        .await
        .expect(201);
    // Installed as `monti plugin install --tenant acme --enable` does.
    let bytes = component("monti-example-minimal");
    let plugin = engine().validate(&bytes).expect("valid");
    let scope = monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let installed = install_package(&server.store, &scope, &plugin, &bytes, r#"{"pause_after":2}"#).await;
    assert!(!installed.enabled, "installed disabled");
    monti::store::plugins::set_enabled(&server.store, &scope, "wellbeing", true)
        .await
        .unwrap();

    let at = |s: i64| (chrono::Utc::now() - chrono::Duration::seconds(60 - s)).to_rfc3339();
    let call_end = |id: &str, s: i64| serde_json::json!({ "id": id, "source": "pbx", "at": at(s), "type": "call_end", "call": id, "agent": "1001", "talk_s": 30.0 });
    for token in [&admin, &other] {
        let reply = server
            .post(
                "/api/v1/events",
                token,
                serde_json::json!([
                    { "id": "login", "source": "pbx", "at": at(0), "type": "agent_login", "agent": "1001" },
                    call_end("c1", 10),
                    call_end("c2", 20),
                ]),
            )
            .await;
        assert_eq!(reply.body["accepted"], serde_json::json!(3), "{}", reply.body);
    }
    // The plugin runs after the answer; the floor shows its break within moments.
    let started = Instant::now();
    let ana = loop {
        let snapshot = server.get("/api/v1/live/snapshot", &admin).await.body;
        let ana = snapshot["agents"][0].clone();
        if ana["reason"] == serde_json::json!("wellbeing") || started.elapsed() > Duration::from_secs(10) {
            break ana;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ana["state"], serde_json::json!("paused"), "{ana}");
    assert_eq!(ana["reason"], serde_json::json!("wellbeing"));
    // The other tenant has no plugin: its agent is untouched.
    let oli = server.get("/api/v1/live/snapshot", &other).await.body["agents"][0].clone();
    assert_eq!(oli["state"], serde_json::json!("wrap_up"), "{oli}");
    // The installation's record: a run, no failure, its log line.
    let record = monti::store::plugins::get(&server.store, &scope, "wellbeing")
        .await
        .unwrap();
    assert_eq!((record.invocations, record.failures), (1, 0));
    assert!(record.last_logs.contains("time for a break"), "{}", record.last_logs);
    // The emitted event is stored with the plugin as its source.
    let stored = monti::store::events::since(&server.store, &scope, 0).await.unwrap();
    assert!(
        stored
            .iter()
            .any(|e| e.source == "plugin:wellbeing" && e.id == "wellbeing-c2")
    );
    // Operators see it in the metrics.
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Labelled by the installation id Monti made, not the plugin's own id.
    let label = format!("{{installation=\"{}\"}}", installed.id);
    for series in [
        format!("plugin_invocations_total{label}"),
        format!("plugin_host_calls_total{label}"),
        "plugin_duration_seconds".to_owned(),
        format!("plugin_memory_high_water_bytes{label}"),
        format!("plugin_circuit_open{label} 0"),
    ] {
        assert!(metrics.contains(&series), "{series} in /metrics");
    }
    assert!(!metrics.contains("wellbeing"), "no tenant-chosen names on /metrics");
    server.stop().await;
}

/// A tenant admin manages plugins through the API; others may not; everything is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_admins_manage_plugins_through_the_api() {
    use serde_json::json;
    let server = common::TestServer::start(common::Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    let supervisor = server.tenant("acme", monti::domain::Role::Supervisor).await;
    let upload = |token: &str, mime: &str, body: Vec<u8>| {
        server
            .client
            .post(server.url("/api/v1/plugins"))
            .bearer_auth(token)
            .header("content-type", mime)
            .body(body)
            .send()
    };
    let bytes = component("monti-example-minimal");
    let refused = upload(&supervisor, "application/wasm", bytes.clone()).await.unwrap();
    assert_eq!(refused.status(), 403);
    let wrong_type = upload(&admin, "application/json", bytes.clone()).await.unwrap();
    assert_eq!(wrong_type.status(), 415);
    let garbage = upload(&admin, "application/wasm", b"\0asm garbage".to_vec())
        .await
        .unwrap();
    assert_eq!(garbage.status(), 422);
    let problem: serde_json::Value = garbage.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not an installable plugin"),
        "{problem}"
    );

    let installed = upload(&admin, "application/wasm", bytes.clone()).await.unwrap();
    assert_eq!(installed.status(), 201);
    let installed: serde_json::Value = installed.json().await.unwrap();
    assert_eq!(installed["plugin_id"], json!("wellbeing"));
    assert_eq!(installed["enabled"], json!(false));
    assert_eq!(installed["manifest"]["limits"]["cpu_ms"], json!(50));

    // Enabling with a configuration outside the schema is refused, field by field.
    let bad = server
        .patch(
            "/api/v1/plugins/wellbeing",
            &admin,
            json!({ "enabled": true, "config": { "pause_after": 0, "colour": "red" } }),
        )
        .await;
    bad.expect_problem(422);
    let mut pointers = bad.pointers();
    pointers.sort();
    assert_eq!(pointers, vec!["/config/colour", "/config/pause_after"]);
    // What the plugin asks for must be approved before it runs.
    let unapproved = server
        .patch(
            "/api/v1/plugins/wellbeing",
            &admin,
            json!({ "enabled": true, "config": { "pause_after": 3 } }),
        )
        .await;
    unapproved.expect_problem(409);
    assert_eq!(
        unapproved.body["capabilities"],
        json!(["emit events into live monitoring", "store up to 64 KiB"])
    );
    let good = server
        .patch(
            "/api/v1/plugins/wellbeing",
            &admin,
            json!({ "enabled": true, "approve_capabilities": true, "config": { "pause_after": 3 } }),
        )
        .await;
    good.expect(200);
    assert_eq!(good.body["enabled"], json!(true));
    assert_eq!(good.body["config"], json!({ "pause_after": 3 }));
    // The same component again is an upgrade that keeps configuration and enablement.
    let again = upload(&admin, "application/wasm", bytes.clone()).await.unwrap();
    assert_eq!(again.status(), 200);
    let list = server.get("/api/v1/plugins", &supervisor).await;
    list.expect(200);
    assert_eq!(list.body["items"][0]["enabled"], json!(true));
    assert_eq!(list.body["items"][0]["config"], json!({ "pause_after": 3 }));
    // A version asking for more is installed disabled, showing only what is new, until approved.
    let newer = String::from_utf8(manifest_section(&bytes))
        .unwrap()
        .replace("version = \"1.0.0\"", "version = \"1.1.0\"");
    let more = with_manifest(&bytes, &newer, "http = [\"https://crm.example\"]");
    let upgraded = upload(&admin, "application/wasm", more).await.unwrap();
    assert_eq!(upgraded.status(), 200);
    let upgraded: serde_json::Value = upgraded.json().await.unwrap();
    assert_eq!(upgraded["version"], json!("1.1.0"));
    assert_eq!(upgraded["enabled"], json!(false));
    assert_eq!(
        upgraded["pending_capabilities"],
        json!(["send HTTP requests to https://crm.example"])
    );
    let refused = server
        .patch("/api/v1/plugins/wellbeing", &admin, json!({ "enabled": true }))
        .await;
    refused.expect_problem(409);
    assert_eq!(
        refused.body["capabilities"],
        json!(["send HTTP requests to https://crm.example"])
    );
    let approved = server
        .patch(
            "/api/v1/plugins/wellbeing",
            &admin,
            json!({ "enabled": true, "approve_capabilities": true }),
        )
        .await;
    approved.expect(200);
    assert_eq!(approved.body["pending_capabilities"], json!([]));
    assert_eq!(
        approved.body["config"],
        json!({ "pause_after": 3 }),
        "configuration kept"
    );
    // Another tenant sees nothing of it.
    let other = server.tenant("other", monti::domain::Role::TenantAdmin).await;
    assert_eq!(server.get("/api/v1/plugins", &other).await.body["items"], json!([]));
    server
        .get("/api/v1/plugins/wellbeing", &other)
        .await
        .expect_problem(404);

    // Secrets the plugin does not declare are refused; values are never shown.
    server
        .patch(
            "/api/v1/plugins/wellbeing",
            &admin,
            json!({ "secrets": { "api-token": "x" } }),
        )
        .await
        .expect_problem(422);
    let misbehaving = upload(&admin, "application/wasm", component("monti-test-misbehaving"))
        .await
        .unwrap();
    assert_eq!(misbehaving.status(), 201);
    let set = server
        .patch(
            "/api/v1/plugins/misbehaving",
            &admin,
            json!({ "secrets": { "token": "very-secret-value" } }),
        )
        .await;
    set.expect(200);
    assert_eq!(set.body["secrets"], json!(["token"]));
    assert!(!set.text.contains("very-secret-value"), "never shown: {}", set.text);
    let scope = monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let installation = monti::store::plugins::get(&server.store, &scope, "misbehaving")
        .await
        .unwrap();
    let opened = monti::store::plugins::secrets(&server.store, scope.tenant(), &installation.id)
        .await
        .unwrap();
    assert_eq!(opened.get("token").map(String::as_str), Some("very-secret-value"));
    if let common::RawDb::Sqlite(pool) = &server.raw_db().await {
        let sealed: String = sqlx::query_scalar("SELECT sealed FROM plugin_secrets")
            .fetch_one(pool)
            .await
            .unwrap();
        assert!(!sealed.contains("very-secret-value"), "stored sealed");
    }
    server.delete("/api/v1/plugins/wellbeing", &admin).await.expect(204);
    server
        .get("/api/v1/plugins/wellbeing", &admin)
        .await
        .expect_problem(404);
    let audit = server.get("/api/v1/audit?target_kind=plugin", &admin).await.body;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "plugin.install",
        "plugin.update",
        "plugin.upgrade",
        "plugin.secret.set",
        "plugin.remove",
    ] {
        assert!(actions.contains(&action), "{action} audited: {actions:?}");
    }
    server.stop().await;
}

/// A tenant admin installs, configures and enables a plugin in the browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_installs_and_configures_a_plugin_in_the_browser() {
    let Some(browser) = common::browser::Browser::launch().await else {
        return;
    };
    let server = common::TestServer::start(common::Backend::Sqlite).await.unwrap();
    server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    common::account(
        &server.store,
        "ada@example.com",
        "correct horse battery staple",
        Some(("acme", monti::domain::Role::TenantAdmin)),
        false,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("wellbeing.wasm");
    std::fs::write(&wasm, component("monti-example-minimal")).unwrap();
    let wait = Duration::from_secs(15);

    let mut page = browser.page().await;
    page.sign_in_at(
        &server.url("/admin/plugins"),
        "ada@example.com",
        "correct horse battery staple",
    )
    .await;
    assert!(page.wait_for("location.pathname === '/admin/plugins'", wait).await);
    // Choose the file as a person would, then install.
    page.choose_file("#component", &wasm).await;
    page.click("#upload").await;
    assert!(
        page.wait_for("location.pathname === '/admin/plugins/wellbeing'", wait)
            .await,
        "installed, on its page: {}",
        page.text().await
    );
    assert_eq!(
        page.eval("document.querySelector('#f-pause_after').value").await,
        serde_json::json!("10"),
        "the form comes from the manifest's schema, with its default"
    );
    // Out of range: the field says why.
    page.fill("#f-pause_after", "0").await;
    page.click("#save").await;
    assert!(
        page.wait_for("document.querySelector('.field.invalid .field-error') !== null", wait)
            .await,
        "the error is shown at the field"
    );
    page.fill("#f-pause_after", "4").await;
    page.click("#save").await;
    assert!(
        page.wait_for(
            "document.querySelector('#enable') !== null && document.querySelector('.field.invalid') === null",
            wait
        )
        .await
    );
    // What the plugin asks for is listed above the button that approves it.
    assert!(
        page.wait_for(
            "document.querySelector('#approval') !== null \
             && document.querySelector('#approval').textContent.includes('emit events into live monitoring') \
             && document.querySelector('#enable').textContent.includes('Approve')",
            wait
        )
        .await,
        "the capabilities to approve are shown"
    );
    page.click("#enable").await;
    assert!(
        page.wait_for("document.querySelector('#disable') !== null", wait).await,
        "enabled"
    );
    assert!(
        page.wait_for("document.querySelector('#approval') === null", wait)
            .await,
        "nothing left to approve"
    );
    let scope = monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let installed = monti::store::plugins::get(&server.store, &scope, "wellbeing")
        .await
        .unwrap();
    assert!(installed.enabled);
    assert_eq!(installed.config, r#"{"pause_after":4}"#);
    browser.close().await;
    server.stop().await;
}

/// A batch a plugin keeps failing on is retried, then kept as a dead letter to inspect and
/// replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_batches_are_retried_then_dead_lettered_and_can_be_replayed() {
    use serde_json::json;
    let server = common::TestServer::start(common::Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    server
        .post("/api/v1/agents", &admin, json!({ "name": "Ana", "extension": "1001" }))
        .await
        .expect(201);
    let bytes = component("monti-test-misbehaving");
    let plugin = engine().validate(&bytes).expect("valid");
    let scope = monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let installed = install_package(&server.store, &scope, &plugin, &bytes, "{}").await;
    monti::store::plugins::set_enabled(&server.store, &scope, &installed.id, true)
        .await
        .unwrap();
    let at = chrono::Utc::now().to_rfc3339();
    server
        .post(
            "/api/v1/events",
            &admin,
            json!([{ "id": "flaky", "source": "crm", "at": at, "type": "agent_login", "agent": "1001" }]),
        )
        .await
        .expect(200);
    // The first try and two retries fail (it says retrying may help): a dead letter.
    let started = Instant::now();
    let letters = loop {
        let letters = server.get("/api/v1/plugins/misbehaving/dead-letters", &admin).await;
        letters.expect(200);
        if !letters.body["items"].as_array().unwrap().is_empty() || started.elapsed() > Duration::from_secs(15) {
            break letters.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let letter = &letters["items"][0];
    assert_eq!(letter["attempts"], json!(3), "{letters}");
    assert_eq!(letter["error"], json!("try 3 failed"));
    assert_eq!(letter["events"][0]["id"], json!("flaky"), "the batch is kept as it was");
    // The admin page shows it, with a form for the plugin's secret (write-only).
    common::account(
        &server.store,
        "ada@example.com",
        "correct horse battery staple",
        Some(("acme", monti::domain::Role::TenantAdmin)),
        false,
    )
    .await;
    let mut ada = common::Visitor::new(&server);
    assert_eq!(
        ada.sign_in("ada@example.com", "correct horse battery staple")
            .await
            .status,
        303
    );
    let page = ada.get("/admin/plugins/misbehaving").await;
    assert_eq!(page.status, 200);
    let letter_id = letter["id"].as_str().unwrap();
    assert!(page.body.contains(&format!("data-letter=\"{letter_id}\"")) && page.body.contains("try 3 failed"));
    assert!(page.body.contains("id=\"plugin-secrets\"") && page.body.contains("type=\"password\""));
    let saved = ada
        .post("/admin/plugins/misbehaving/secrets", &[("token", "from-the-form")])
        .await;
    assert_eq!(saved.status, 303);
    let opened = monti::store::plugins::secrets(&server.store, scope.tenant(), &installed.id)
        .await
        .unwrap();
    assert_eq!(opened.get("token").map(String::as_str), Some("from-the-form"));
    assert!(
        !ada.get("/admin/plugins/misbehaving")
            .await
            .body
            .contains("from-the-form"),
        "never shown again"
    );
    // The fourth try works: replaying removes it.
    let id = letter["id"].as_str().unwrap();
    let replayed = server
        .post(
            &format!("/api/v1/plugins/misbehaving/dead-letters/{id}/replay"),
            &admin,
            json!({}),
        )
        .await;
    replayed.expect(200);
    assert_eq!(replayed.body["replayed"], json!(true));
    let letters = server
        .get("/api/v1/plugins/misbehaving/dead-letters", &admin)
        .await
        .body;
    assert_eq!(letters["items"], json!([]));
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!("plugin_dead_letters{{installation=\"{}\"}}", installed.id)),
        "the dead-letter depth is a gauge"
    );
    let record = monti::store::plugins::get(&server.store, &scope, "misbehaving")
        .await
        .unwrap();
    assert_eq!(record.invocations, 4);
    assert!(record.last_logs.contains("worked on try 4"), "{}", record.last_logs);
    // Another tenant cannot see or replay it.
    let other = server.tenant("other", monti::domain::Role::TenantAdmin).await;
    server
        .get("/api/v1/plugins/misbehaving/dead-letters", &other)
        .await
        .expect_problem(404);
    server.stop().await;
}

/// The operator decides which plugins tenants may install, or turns plugins off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_restrict_which_plugins_tenants_may_install() {
    let bytes = component("monti-example-minimal");
    for (tweak, says) in [
        (
            (|c: &mut monti::config::Config| c.plugins.allowed = vec!["state-hook".into()])
                as fn(&mut monti::config::Config),
            "does not allow the plugin `wellbeing`",
        ),
        (|c: &mut monti::config::Config| c.plugins.enabled = false, "turned off"),
        (
            |c: &mut monti::config::Config| {
                c.plugins.denied_capabilities =
                    [("acme".to_owned(), vec![monti::config::PluginCapability::EmitsEvents])].into();
            },
            "asks for emits_events, which the operator does not allow",
        ),
        (
            |c: &mut monti::config::Config| {
                c.plugins.denied_capabilities = [("*".to_owned(), vec![monti::config::PluginCapability::Kv])].into();
            },
            "asks for kv",
        ),
    ] {
        let server = common::TestServer::start_with(common::Backend::Sqlite, tweak)
            .await
            .unwrap();
        let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
        let refused = server
            .client
            .post(server.url("/api/v1/plugins"))
            .bearer_auth(&admin)
            .header("content-type", "application/wasm")
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
        let problem: serde_json::Value = refused.json().await.unwrap();
        assert!(problem["detail"].as_str().unwrap().contains(says), "{problem}");
        server.stop().await;
    }

    // A capability taken away after installation is gone at run time: the stream is refused.
    let server = common::TestServer::start_with(common::Backend::Sqlite, |c| {
        c.plugins.denied_capabilities = [("acme".to_owned(), vec![monti::config::PluginCapability::Streams])].into();
    })
    .await
    .unwrap();
    let _ = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    let misbehaving = component("monti-test-misbehaving");
    let plugin = engine().validate(&misbehaving).unwrap();
    let scope = monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    install_package(
        &server.store,
        &scope,
        &plugin,
        &misbehaving,
        r#"{"host":"pbx.example.com","port":5038}"#,
    )
    .await;
    monti::store::plugins::set_enabled(&server.store, &scope, "misbehaving", true)
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let record = monti::store::plugins::get(&server.store, &scope, "misbehaving")
            .await
            .unwrap();
        if record.last_logs.contains("stream refused")
            && record.last_logs.contains("is not granted to this installation")
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(12), "{}", record.last_logs);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

/// The dead-letter gauge of an installation counts its own dead letters, not those of the same
/// plugin in other tenants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installations_dead_letter_depth_is_its_own() {
    let server = common::TestServer::start(common::Backend::Sqlite).await.unwrap();
    let misbehaving = component("monti-test-misbehaving");
    let plugin = engine().validate(&misbehaving).unwrap();
    let mut installations = Vec::new();
    for (slug, letters) in [("acme", 1), ("globex", 3)] {
        let _ = server.tenant(slug, monti::domain::Role::TenantAdmin).await;
        let scope = monti::store::tenants::system_scope(&server.store, slug, monti::store::SystemActor::Operator)
            .await
            .unwrap();
        let installed = install_package(&server.store, &scope, &plugin, &misbehaving, "{}").await;
        for _ in 0..letters {
            monti::store::plugins::add_dead_letter(&server.store, scope.tenant(), &installed.id, &[], "failed", 3)
                .await
                .unwrap();
        }
        installations.push((scope, installed.id));
    }
    for ((scope, id), expected) in installations.iter().zip([1, 3]) {
        let depth = monti::store::plugins::dead_letter_depth(&server.store, scope.tenant(), id)
            .await
            .unwrap();
        assert_eq!(depth, expected, "{}", scope.tenant_slug());
    }
    // Asked in the wrong tenant, an installation has none.
    let (acme, _) = &installations[0];
    let (_, globex_installation) = &installations[1];
    let depth = monti::store::plugins::dead_letter_depth(&server.store, acme.tenant(), globex_installation)
        .await
        .unwrap();
    assert_eq!(depth, 0);
    server.stop().await;
}

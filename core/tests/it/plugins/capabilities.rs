//! What the host grants a running plugin: outbound HTTP, secrets, a hook URL, a line stream, the key rotation beneath its secrets, the tenant's shared quota.

use super::*;

/// Outbound HTTP goes only to granted destinations, and not to private addresses unless the
/// operator allows them; what comes back reaches the plugin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_only_to_granted_public_destinations() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 2048];
            let _ = socket.read(&mut request).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")
                .await;
        }
    });
    let url = format!("http://127.0.0.1:{port}/status");
    let run = |grants: Grants| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let outcome = misbehave_with(&format!("http {url}"), &grants, &Limits::default()).expect("runs");
            outcome.logs.last().map(|l| l.message.clone()).unwrap_or_default()
        })
    };
    let not_granted = run(Grants::default()).await.unwrap();
    assert!(
        not_granted.contains("NotGranted") && not_granted.contains("not granted"),
        "{not_granted}"
    );
    let origin = format!("http://127.0.0.1:{port}");
    let private = run(Grants {
        http: vec![origin.clone()],
        ..Grants::default()
    })
    .await
    .unwrap();
    assert!(private.contains("private or local address"), "{private}");
    let allowed = run(Grants {
        http: vec![origin],
        allow_private_networks: true,
        ..Grants::default()
    })
    .await
    .unwrap();
    assert_eq!(allowed, "status 200, body hello");

    // A destination that never answers holds the invocation only for its wall-clock budget.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let waited = tokio::task::spawn_blocking(move || {
        let grants = Grants {
            http: vec![format!("http://127.0.0.1:{silent_port}")],
            allow_private_networks: true,
            ..Grants::default()
        };
        let limits = Limits {
            wall: Duration::from_millis(300),
            ..Limits::default()
        };
        misbehave_with(&format!("http http://127.0.0.1:{silent_port}/"), &grants, &limits).expect("runs")
    })
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "held for {:?}",
        started.elapsed()
    );
    let last = &waited.logs.last().unwrap().message;
    assert!(last.starts_with("refused:") && last.contains("Transport("), "{last}");
}

/// A secret reaches the destination it is bound to, placed by the host; the plugin only holds
/// a handle, and the use is reported for the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_injected_by_the_host_and_never_seen_by_the_plugin() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = vec![0u8; 4096];
            let n = socket.read(&mut request).await.unwrap_or(0);
            let text = String::from_utf8_lossy(&request[..n]).to_lowercase();
            let auth = text
                .lines()
                .find_map(|l| l.strip_prefix("authorization: ").map(str::to_owned))
                .unwrap_or_default();
            let _ = seen_tx.send(auth);
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        }
    });
    let origin = format!("http://127.0.0.1:{port}");
    let grants = Grants {
        http: vec![origin.clone(), "http://127.0.0.2:9".into()],
        allow_private_networks: true,
        secrets: [("token".to_owned(), (origin.clone(), "s3cret-value".to_owned()))].into(),
        ..Grants::default()
    };
    let run = |target: String, grants: Grants| {
        tokio::task::spawn_blocking(move || {
            misbehave_with(&format!("secret-http {target}"), &grants, &Limits::default()).expect("runs")
        })
    };
    let used = run(format!("{origin}/api"), grants.clone()).await.unwrap();
    assert_eq!(
        seen.recv().await.unwrap(),
        "bearer s3cret-value",
        "the host put it in, over the plugin's own header"
    );
    let logs: Vec<&str> = used.logs.iter().map(|l| l.message.as_str()).collect();
    assert!(logs.contains(&"status 200, secret token"), "{logs:?}");
    assert!(
        !logs.iter().any(|l| l.contains("s3cret")),
        "the value never reaches the plugin: {logs:?}"
    );
    assert_eq!(
        used.secret_uses,
        vec![("token".to_owned(), format!("http://127.0.0.1:{port}"))]
    );

    // Another granted destination is still the wrong one for this secret.
    let elsewhere = run("http://127.0.0.2:9/".into(), grants).await.unwrap();
    let last = &elsewhere.logs.last().unwrap().message;
    assert!(last.contains("may only be sent to"), "{last}");
    assert!(elsewhere.secret_uses.is_empty());
    // Without the secret configured, the handle is refused.
    let none = run(format!("{origin}/api"), Grants::default()).await.unwrap();
    assert!(
        none.logs.last().unwrap().message.contains("no secret"),
        "{:?}",
        none.logs
    );
}

/// A webhook plugin answers `/hooks/{tenant}/{installation}/…` with the request as sent, and what
/// it emits moves the floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_plugin_answers_its_hook_url() {
    use serde_json::json;
    let server = common::TestServer::start(common::Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    server
        .post("/api/v1/agents", &admin, json!({ "name": "Ana", "extension": "1001" }))
        .await
        .expect(201);
    let bytes = component("monti-example-webhook");
    let plugin = engine().validate(&bytes).expect("a valid webhook plugin");
    assert_eq!(plugin.manifest.world, "webhook");
    let scope = monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let installed = install_package(&server.store, &scope, &plugin, &bytes, r#"{"shared_token":"t0k"}"#).await;
    let url = server.url(&format!("/hooks/acme/{}/state", installed.id));
    let post = |token: &str, body: serde_json::Value| {
        server
            .client
            .post(&url)
            .header("x-hook-token", token)
            .json(&body)
            .send()
    };
    let report = |id: &str| {
        json!({ "id": id, "agent": "1001", "state": "paused", "reason": "training",
                "at_ms": chrono::Utc::now().timestamp_millis() })
    };
    // Disabled: there is no hook.
    assert_eq!(post("t0k", report("r0")).await.unwrap().status(), 404);
    monti::store::plugins::set_enabled(&server.store, &scope, &installed.id, true)
        .await
        .unwrap();
    // Enabling applies within a second (the tenant's installations are looked up at most once
    // a second, so unknown hooks cost no query).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut status = post("wrong", report("r1")).await.unwrap().status();
    while status == 404 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        status = post("wrong", report("r1")).await.unwrap().status();
    }
    assert_eq!(status, 401, "the plugin checks its caller");
    let accepted = post("t0k", report("r2")).await.unwrap();
    assert_eq!(accepted.status(), 202);
    assert_eq!(accepted.headers()["content-type"], "application/json");
    let snapshot = server.get("/api/v1/live/snapshot", &admin).await.body;
    assert_eq!(snapshot["agents"][0]["state"], json!("paused"), "{snapshot}");
    assert_eq!(snapshot["agents"][0]["reason"], json!("training"));
    // The plugin's own answers for what it does not do; Monti's 404 for unknown installations.
    let get = server
        .client
        .get(&url)
        .header("x-hook-token", "t0k")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 404);
    let bad = post("t0k", json!({ "agent": "1001" })).await.unwrap();
    assert_eq!(bad.status(), 400);
    let unknown = server
        .client
        .post(server.url("/hooks/acme/inst_nothing/state"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let other_tenant = server
        .client
        .post(server.url(&format!("/hooks/nobody/{}/state", installed.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(other_tenant.status(), 404);
    let record = monti::store::plugins::get(&server.store, &scope, "state-hook")
        .await
        .unwrap();
    assert_eq!(record.invocations, 4, "every call is a run");
    // A flood is cut off at the installation's rate (50 a second, bursts of 100) with 429 and
    // Retry-After; the plugin does not run for those.
    let mut limited = None;
    for _ in 0..300 {
        let reply = post("t0k", json!({ "agent": "1001" })).await.unwrap();
        if reply.status() == 429 {
            limited = Some(reply);
            break;
        }
    }
    let limited = limited.expect("the flood was limited");
    assert!(limited.headers().contains_key("retry-after"));
    let problem: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(problem["status"], json!(429), "{problem}");
    server.stop().await;
}

/// A plugin that keeps a TCP line stream: the host connects for it (the destination comes from
/// its configuration), delivers lines to `on-stream`, sends what it writes, reconnects when the
/// server drops the connection, and refuses private addresses unless the operator allows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_keeps_a_line_stream_through_the_host() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let install = |server: &common::TestServer| {
        let store = server.store.clone();
        async move {
            let bytes = component("monti-test-misbehaving");
            let plugin = engine().validate(&bytes).expect("valid");
            let scope = monti::store::tenants::system_scope(&store, "acme", monti::store::SystemActor::Operator)
                .await
                .unwrap();
            let config = serde_json::json!({ "host": "127.0.0.1", "port": port }).to_string();
            install_package(&store, &scope, &plugin, &bytes, &config).await;
            monti::store::plugins::set_enabled(&store, &scope, "misbehaving", true)
                .await
                .unwrap();
        }
    };

    // Without the operator's say-so, 127.0.0.1 is not reached.
    let server = common::TestServer::start(common::Backend::Sqlite).await.unwrap();
    let _ = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    install(&server).await;
    let scope = monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        // The plugin hears why: its stream closed, and its log says so.
        let record = monti::store::plugins::list(&server.store, &scope).await.unwrap();
        if record[0].last_logs.contains("private or local address") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(12), "{}", record[0].last_logs);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = tokio::time::timeout(Duration::from_millis(500), listener.accept()).await;
    assert!(refused.is_err(), "connected to a private address without permission");
    drop(server);

    let server = common::TestServer::start_with(common::Backend::Sqlite, |config| {
        config.plugins.private_networks = vec!["acme".into()];
    })
    .await
    .unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    server
        .post(
            "/api/v1/agents",
            &admin,
            serde_json::json!({ "name": "Ana", "extension": "1001" }),
        )
        .await
        .expect(201);
    install(&server).await;
    // The heartbeat opens the stream within its period; the plugin greets on `opened`.
    let (socket, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the host connects for the plugin")
        .unwrap();
    let (reader, mut writer) = socket.into_split();
    let mut reader = tokio::io::BufReader::new(reader).lines();
    async fn next_line(reader: &mut tokio::io::Lines<tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>>) -> String {
        tokio::time::timeout(Duration::from_secs(10), reader.next_line())
            .await
            .expect("a line in time")
            .unwrap()
            .expect("not closed")
    }
    assert_eq!(next_line(&mut reader).await, "hello");
    writer.write_all(b"echo ping\r\n").await.unwrap();
    assert_eq!(next_line(&mut reader).await, "ping");
    // A line the plugin turns into an event moves the floor.
    writer.write_all(b"Login: 1001\r\n").await.unwrap();
    let started = Instant::now();
    loop {
        let snapshot = server.get("/api/v1/live/snapshot", &admin).await.body;
        if snapshot["agents"][0]["state"] == serde_json::json!("available") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{snapshot}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The server cuts the connection in the middle of a line: the half line is not delivered,
    // the plugin hears `closed` and reopens, and the host connects again.
    writer.write_all(b"Login: 99").await.unwrap();
    drop(writer);
    drop(reader);
    let (socket, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the host reconnects")
        .unwrap();
    let mut reader = tokio::io::BufReader::new(socket).lines();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), reader.next_line())
            .await
            .unwrap()
            .unwrap()
            .as_deref(),
        Some("hello")
    );
    let agents = server.get("/api/v1/live/snapshot", &admin).await.body["agents"].clone();
    assert_eq!(agents.as_array().unwrap().len(), 1, "no agent 99: {agents}");
}

/// `monti secrets rotate-key` re-encrypts what is sealed at rest under a new key, which then
/// replaces the old; a secret that does not open stops it before anything changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_key_re_encrypts_secrets_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let monti = |args: &[&str]| common::monti_cli(&data, args);
    let (ok, _, err) = monti(&["admin", "tenant", "create", "--slug", "acme", "--name", "Acme"]);
    assert!(ok, "{err}");
    let config = monti::config::Config {
        data_dir: data.clone(),
        ..Default::default()
    };
    let open = || monti::store::Store::open(&config);
    let store = open().await.unwrap();
    let scope = monti::store::tenants::system_scope(&store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let bytes = component("monti-test-misbehaving");
    let plugin = engine().validate(&bytes).unwrap();
    let installed = install_package(&store, &scope, &plugin, &bytes, "{}").await;
    monti::store::plugins::set_secret(&store, &scope, "misbehaving", "token", "s3cret-value")
        .await
        .unwrap();
    let old_key = std::fs::read_to_string(data.join("secret.key")).unwrap();
    store.close().await;

    let (ok, out, err) = monti(&["secrets", "rotate-key"]);
    assert!(ok, "{err}");
    assert!(out.contains("     1 plugin secrets"), "{out}");
    let new_key = std::fs::read_to_string(data.join("secret.key")).unwrap();
    assert_ne!(new_key, old_key);
    let kept: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("secret.key.old-"))
        .collect();
    assert_eq!(kept.len(), 1, "the old key is kept beside");
    assert!(!data.join("secret.key.new").exists());
    // The server, with the new key, reads the secret as before.
    let store = open().await.unwrap();
    let secrets = monti::store::plugins::secrets(&store, scope.tenant(), &installed.id)
        .await
        .unwrap();
    assert_eq!(secrets.get("token").map(String::as_str), Some("s3cret-value"));

    // A value that does not open: refused, nothing changed, the key stays.
    monti::store::plugins::set_secret(&store, &scope, "misbehaving", "other", "x")
        .await
        .unwrap();
    let raw = common::raw_db(&config).await;
    let pool = raw.sqlite();
    sqlx::query("UPDATE plugin_secrets SET sealed = 'v1.AAAA.AAAA' WHERE name = 'other'")
        .execute(pool)
        .await
        .unwrap();
    store.close().await;
    let (ok, _, err) = monti(&["secrets", "rotate-key"]);
    assert!(!ok);
    assert!(
        err.contains("nothing was changed") && err.contains("plugin secrets"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(data.join("secret.key")).unwrap(), new_key);
    assert!(!data.join("secret.key.new").exists());
    let store = open().await.unwrap();
    let secrets = monti::store::plugins::secrets(&store, scope.tenant(), &installed.id)
        .await
        .unwrap();
    assert_eq!(secrets.get("token").map(String::as_str), Some("s3cret-value"));
}

/// What all of a tenant's plugins may use per minute: calls beyond it wait (a retry, then a dead
/// letter to replay), emitting beyond it is refused to the plugin; another tenant is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_plugins_share_a_quota_per_minute() {
    let server = common::TestServer::start_with(common::Backend::Sqlite, |c| {
        c.plugins.tenant_quota.invocations = 2;
        c.plugins.tenant_quota.events = 5;
    })
    .await
    .unwrap();
    let bytes = component("monti-test-misbehaving");
    let plugin = engine().validate(&bytes).unwrap();
    monti::store::plugins::store_package(&server.store, &plugin.digest, &plugin.manifest, &bytes)
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for slug in ["acme", "other"] {
        let token = server.tenant(slug, monti::domain::Role::TenantAdmin).await;
        server
            .post(
                "/api/v1/agents",
                &token,
                serde_json::json!({ "name": "Ana", "extension": "1001" }),
            )
            .await
            .expect(201);
        let scope = monti::store::tenants::system_scope(&server.store, slug, monti::store::SystemActor::Operator)
            .await
            .unwrap();
        monti::store::plugins::install(&server.store, &scope, &plugin.digest, "{}")
            .await
            .unwrap();
        monti::store::plugins::set_enabled(&server.store, &scope, "misbehaving", true)
            .await
            .unwrap();
        tokens.push((token, scope));
    }
    let at = chrono::Utc::now().to_rfc3339();
    let body =
        |id: &str| serde_json::json!([{ "id": id, "source": "pbx", "at": at, "type": "agent_login", "agent": "1001" }]);
    let (acme, acme_scope) = &tokens[0];
    // Call 1 emits: 20,000 asked, 5 allowed this minute: refused to the plugin.
    server.post("/api/v1/events", acme, body("emit-many")).await.expect(200);
    // Call 2 works; call 3 is over the quota and ends as a dead letter.
    server.post("/api/v1/events", acme, body("nothing")).await.expect(200);
    server.post("/api/v1/events", acme, body("count")).await.expect(200);
    let started = Instant::now();
    let letters = loop {
        let letters = monti::store::plugins::dead_letters(&server.store, acme_scope, "misbehaving")
            .await
            .unwrap();
        if letters.iter().any(|l| l.error.contains("calls a minute")) || started.elapsed() > Duration::from_secs(10) {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let quota_letter = letters
        .iter()
        .find(|l| l.error.contains("used their 2 calls a minute"))
        .unwrap_or_else(|| panic!("{letters:?}"));
    assert!(
        quota_letter.events.contains("\"count\""),
        "the batch is kept: {}",
        quota_letter.events
    );
    let emit_letter = letters
        .iter()
        .find(|l| l.events.contains("emit-many"))
        .unwrap_or_else(|| panic!("{letters:?}"));
    assert!(emit_letter.error.contains("QuotaExceeded"), "{}", emit_letter.error);
    // The other tenant's plugins have their own minute.
    let (other, other_scope) = &tokens[1];
    server.post("/api/v1/events", other, body("count")).await.expect(200);
    let started = Instant::now();
    loop {
        let record = monti::store::plugins::get(&server.store, other_scope, "misbehaving")
            .await
            .unwrap();
        if record.last_logs.contains("call number") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{}", record.last_logs);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

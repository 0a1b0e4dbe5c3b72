//! The `monti` binary as an operator uses it.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_monti");

fn monti(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("MONTI_DATABASE_URL")
        .env("MONTI_DATA_DIR", dir.join("data"))
        .output()
        .expect("run monti")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let out = monti(dir.path(), &["version"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), format!("monti {}", env!("CARGO_PKG_VERSION")));
    let out = monti(dir.path(), &["--help"]);
    for command in ["serve", "demo", "migrate", "config", "healthcheck", "admin"] {
        assert!(text(&out.stdout).contains(command), "help lists {command}");
    }
}

#[test]
fn admin_commands_manage_tenants_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let out = monti(dir.path(), &["migrate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = monti(
        dir.path(),
        &[
            "admin",
            "tenant",
            "create",
            "--slug",
            "acme",
            "--name",
            "Acme",
            "--timezone",
            "Europe/Berlin",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("created tenant acme"));
    let dup = monti(
        dir.path(),
        &["admin", "tenant", "create", "--slug", "acme", "--name", "Again"],
    );
    assert!(!dup.status.success());
    assert!(text(&dup.stderr).contains("already exists"), "{}", text(&dup.stderr));
    let bad = monti(
        dir.path(),
        &[
            "admin",
            "tenant",
            "create",
            "--slug",
            "Bad Slug",
            "--name",
            "X",
            "--timezone",
            "Nowhere/City",
        ],
    );
    assert!(!bad.status.success());
    let err = text(&bad.stderr);
    assert!(err.contains("slug:") && err.contains("timezone:"), "{err}");
    let list = monti(dir.path(), &["admin", "tenant", "list"]);
    assert!(text(&list.stdout).contains("acme") && text(&list.stdout).contains("Europe/Berlin"));
    // Only the token goes to stdout.
    let out = monti(
        dir.path(),
        &[
            "admin",
            "token",
            "create",
            "--tenant",
            "acme",
            "--role",
            "supervisor",
            "--expires",
            "30d",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout);
    assert_eq!(token.lines().count(), 1);
    assert!(
        token.trim().starts_with("monti_") && token.trim().len() == 49,
        "{token}"
    );
    // The flow the API and the admin page use: the same checks, the same words.
    let short = monti(
        dir.path(),
        &["admin", "token", "create", "--tenant", "acme", "--expires", "10s"],
    );
    assert!(
        !short.status.success() && text(&short.stderr).contains("expires_in: must be at least one minute"),
        "{}",
        text(&short.stderr)
    );
    let unknown = monti(dir.path(), &["admin", "token", "create", "--tenant", "nope"]);
    assert!(!unknown.status.success() && text(&unknown.stderr).contains("no tenant with slug `nope`"));
    let bad_role = monti(
        dir.path(),
        &["admin", "token", "create", "--tenant", "acme", "--role", "janitor"],
    );
    assert!(!bad_role.status.success() && text(&bad_role.stderr).contains("unknown role"));
    let listed = monti(dir.path(), &["admin", "token", "list", "--tenant", "acme"]);
    let listing = text(&listed.stdout);
    assert!(
        listing.contains("supervisor") && listing.contains("active"),
        "{listing}"
    );
    assert!(!listing.contains(token.trim()), "the list never shows secrets");
    let id = listing
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let revoked = monti(dir.path(), &["admin", "token", "revoke", &id]);
    assert!(revoked.status.success());
    assert!(text(&monti(dir.path(), &["admin", "token", "list", "--tenant", "acme"]).stdout).contains("revoked"));
    let platform = monti(dir.path(), &["admin", "token", "create", "--platform"]);
    assert!(platform.status.success(), "{}", text(&platform.stderr));
}

#[test]
fn config_check_explains_problems_with_key_and_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("monti.toml"),
        "listen = \"not an address\"\ncolour = \"blue\"\n[http]\nmax_body_bytes = 10\n",
    )
    .unwrap();
    let out = monti(dir.path(), &["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("`listen`") && err.contains("monti.toml"), "{err}");
    std::fs::write(
        dir.path().join("monti.toml"),
        "colour = \"blue\"\n[http]\nmax_body_bytes = 10\n",
    )
    .unwrap();
    let out = monti(dir.path(), &["config", "check"]);
    let err = text(&out.stderr);
    assert!(
        err.contains("`http.max_body_bytes`") && err.contains("at least 1024"),
        "{err}"
    );
    std::fs::write(dir.path().join("monti.toml"), "colour = \"blue\"\n").unwrap();
    let out = monti(dir.path(), &["config", "check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("warning: `colour`") && text(&out.stdout).contains("unknown key"));
}

#[test]
fn config_print_never_shows_secrets_and_layers_apply() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("monti.toml"),
        "listen = \"127.0.0.1:7000\"\nlog_format = \"json\"\n",
    )
    .unwrap();
    let secret_file = dir.path().join("db-url");
    std::fs::write(&secret_file, "postgres://monti:hunter2@db.internal/monti\n").unwrap();
    let out = Command::new(BIN)
        .args(["config", "print", "--listen", "127.0.0.1:9999"])
        .current_dir(dir.path())
        .env("MONTI_DATABASE_URL_FILE", &secret_file)
        .env("MONTI_SECRET_KEY", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=")
        .env("MONTI_LOG_FORMAT", "pretty")
        .env("MONTI_HTTP__MAX_BODY_BYTES", "2048")
        .output()
        .unwrap();
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !printed.contains("hunter2") && printed.contains("monti:****@db.internal"),
        "{printed}"
    );
    assert!(!printed.contains("c2VjcmV0"), "{printed}");
    assert!(
        printed.contains("listen = \"127.0.0.1:9999\""),
        "flags beat the file: {printed}"
    );
    assert!(
        printed.contains("log_format = \"pretty\""),
        "env beats the file: {printed}"
    );
    assert!(printed.contains("max_body_bytes = 2048"), "{printed}");
}

#[test]
fn unusable_data_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = Command::new(BIN)
        .args(["migrate", "--data-dir"])
        .arg(&file)
        .current_dir(dir.path())
        .env_remove("MONTI_DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot create data directory"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn demo_serves_prints_a_working_token_and_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(BIN)
        .args(["demo", "--agents", "60", "--listen", &listen])
        .current_dir(dir.path())
        .env_remove("MONTI_DATABASE_URL")
        .env("MONTI_DATA_DIR", dir.path().join("data"))
        .env("MONTI_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://{listen}");
    let started = Instant::now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let healthy = rt.block_on(async {
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
                return r.status() == 200;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    });
    assert!(healthy, "demo did not become healthy");
    let hc = Command::new(BIN)
        .args(["healthcheck", "--url", &base])
        .output()
        .unwrap();
    assert!(hc.status.success(), "{}", text(&hc.stdout));
    // Stop it (SIGTERM) and read what it printed.
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "graceful stop exits 0: {}", text(&out.stderr));
    let printed = text(&out.stdout);
    let token = printed
        .split_whitespace()
        .find(|w| w.starts_with("monti_"))
        .expect("token printed")
        .to_owned();
    assert!(printed.contains(&base));
    let logs = text(&out.stderr);
    assert!(
        logs.lines().any(|l| l.starts_with('{') && l.contains("\"ready_ms\"")),
        "JSON logs: {logs}"
    );
    // Run again: the tenant is reused, a new token is printed and works.
    let child = Command::new(BIN)
        .args(["demo", "--agents", "60", "--listen", &listen])
        .current_dir(dir.path())
        .env_remove("MONTI_DATABASE_URL")
        .env("MONTI_DATA_DIR", dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let agents = rt.block_on(async {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(r) = client
                .get(format!("{base}/api/v1/agents?limit=500"))
                .bearer_auth(&token)
                .send()
                .await
            {
                return r.json::<serde_json::Value>().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        serde_json::Value::Null
    });
    assert_eq!(agents["items"].as_array().map(Vec::len), Some(60), "{agents}");
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let out = child.wait_with_output().unwrap();
    assert!(text(&out.stdout).contains("already present"));
    let hc = Command::new(BIN)
        .args(["healthcheck", "--url", &base])
        .output()
        .unwrap();
    assert!(!hc.status.success(), "healthcheck fails when nothing listens");
}

#[test]
fn simulate_provisions_a_tenant_and_feeds_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let created = monti(
        dir.path(),
        &["admin", "tenant", "create", "--slug", "acme", "--name", "Acme"],
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let base = format!("http://{listen}");
    let mut server = Command::new(BIN)
        .args(["serve", "--listen", &listen])
        .current_dir(dir.path())
        .env_remove("MONTI_DATABASE_URL")
        .env("MONTI_DATA_DIR", dir.path().join("data"))
        .env("MONTI_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    rt.block_on(async {
        let started = Instant::now();
        while client.get(format!("{base}/readyz")).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "server not ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    // Bad arguments are explained, not attempted.
    let refused = monti(
        dir.path(),
        &["simulate", "--url", &base, "--tenant", "acme", "--speed", "30"],
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("needs a --duration"),
        "{}",
        text(&refused.stderr)
    );

    let run = monti(
        dir.path(),
        &[
            "simulate",
            "--url",
            &base,
            "--tenant",
            "acme",
            "--provision",
            "--agents",
            "60",
            "--seed",
            "7",
            "--speed",
            "max",
            "--duration",
            "20m",
        ],
    );
    let said = text(&run.stderr);
    assert!(run.status.success(), "{said}");
    assert!(said.contains("60 agents created"), "{said}");
    assert!(said.contains(" 0 rejected"), "{said}");
    // The server's floor moved: the simulated agents are logged in and working.
    let token = text(
        &monti(
            dir.path(),
            &["admin", "token", "create", "--tenant", "acme", "--role", "viewer"],
        )
        .stdout,
    )
    .trim()
    .to_owned();
    let snapshot: serde_json::Value = rt.block_on(async {
        client
            .get(format!("{base}/api/v1/live/snapshot"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(snapshot["agents"].as_array().map(Vec::len), Some(60));
    let logged_out = snapshot["states"]["logged_out"].as_u64().unwrap_or(0);
    assert!(logged_out < 60, "agents logged in: {}", snapshot["states"]);
    let offered: u64 = snapshot["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["today"]["offered"].as_u64().unwrap_or(0))
        .sum();
    assert!(offered > 0, "calls were offered: {}", snapshot["queues"]);
    // Running it again provisions nothing new; the same seed at another time is new events.
    let again = monti(
        dir.path(),
        &[
            "simulate",
            "--url",
            &base,
            "--tenant",
            "acme",
            "--provision",
            "--agents",
            "60",
            "--speed",
            "max",
            "--duration",
            "1m",
        ],
    );
    assert!(
        text(&again.stderr).contains("0 agents created, 60 were there"),
        "{}",
        text(&again.stderr)
    );
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn operators_manage_accounts_from_the_command_line_and_each_step_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let monti = |args: &[&str]| crate::common::monti_cli(&data, args);
    let (ok, _, err) = monti(&["admin", "tenant", "create", "--slug", "acme", "--name", "Acme"]);
    assert!(ok, "{err}");
    let (ok, password, err) = monti(&[
        "admin",
        "user",
        "create",
        "--email",
        "ana@acme.example",
        "--name",
        "Ana",
        "--tenant",
        "acme",
        "--role",
        "agent",
    ]);
    assert!(ok && password.trim().len() >= 16, "{password} {err}");
    // The same policy as everywhere: a password that is too short is refused with why.
    let weak = Command::new(BIN)
        .args([
            "admin",
            "user",
            "create",
            "--email",
            "ben@acme.example",
            "--password-stdin",
        ])
        .env_remove("MONTI_DATABASE_URL")
        .env("MONTI_DATA_DIR", &data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(b"short\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(!weak.status.success());
    assert!(text(&weak.stderr).contains("password"), "{}", text(&weak.stderr));
    let (ok, out, err) = monti(&["admin", "user", "disable", "--email", "ana@acme.example"]);
    assert!(ok && out.contains("disabled ana@acme.example"), "{out} {err}");
    let (ok, out, err) = monti(&["admin", "user", "enable", "--email", "ana@acme.example"]);
    assert!(ok && out.contains("enabled ana@acme.example"), "{out} {err}");
    let (ok, out, err) = monti(&["admin", "user", "reset-link", "--email", "ana@acme.example"]);
    assert!(ok && out.trim().contains("/reset?token="), "{out} {err}");
    let audit = crate::common::audit_in_data_dir(&data, "acme");
    let steps: Vec<(&str, &str)> = audit
        .iter()
        .filter(|(_, action)| action.starts_with("user."))
        .map(|(actor, action)| (actor.as_str(), action.as_str()))
        .collect();
    assert_eq!(
        steps,
        [("cli", "user.create"), ("cli", "user.disable"), ("cli", "user.enable")],
        "{audit:#?}"
    );
}

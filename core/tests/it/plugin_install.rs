//! Installing a plugin is one flow: the REST API, the admin page, the command line and the demo
//! all go through it, so the operator's policy refuses a plugin alike everywhere — the demo
//! used to install its Asterisk connector past it.

use crate::common::{self, TestServer, Visitor, account};
use monti::domain::Role;
use monti::store::{SystemActor, tenants};

const REFUSAL: &str = "the operator does not allow the plugin `asterisk` on this server";

fn only_the_state_hook(config: &mut monti::config::Config) {
    config.plugins.allowed = vec!["state-hook".into()];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_policy_refuses_a_plugin_alike_everywhere() {
    let s = TestServer::start_with(common::Backend::Sqlite, only_the_state_hook)
        .await
        .unwrap();
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let connector = crate::plugins::component("monti-plugin-asterisk");

    // The REST API.
    let api = s
        .client
        .post(s.url("/api/v1/plugins"))
        .bearer_auth(&admin)
        .header("content-type", "application/wasm")
        .body(connector.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 403);
    let problem: serde_json::Value = api.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains(REFUSAL), "{problem}");

    // The admin page's upload form.
    account(
        &s.store,
        "ada@acme.example",
        "correct horse battery",
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let mut ui = Visitor::new(&s);
    assert_eq!(
        ui.sign_in("ada@acme.example", "correct horse battery").await.status,
        303
    );
    ui.get("/admin/plugins").await;
    let boundary = "monti-test-boundary-7d3f";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"_csrf\"\r\n\r\n{}\r\n",
            ui.csrf.clone().expect("a CSRF token")
        )
        .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"component\"; filename=\"asterisk.wasm\"\r\n\
             Content-Type: application/wasm\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&connector);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let page = s
        .client
        .post(s.url("/admin/plugins"))
        .header("cookie", ui.cookie_header())
        .header("x-csrf-token", ui.csrf.clone().unwrap())
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
    let body = page.text().await.unwrap();
    assert!(body.contains(REFUSAL), "{body}");

    // The command line, with the same policy in its configuration.
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("asterisk.wasm");
    std::fs::write(&wasm, &connector).unwrap();
    let toml = dir.path().join("monti.toml");
    std::fs::write(&toml, "[plugins]\nallowed = [\"state-hook\"]\n").unwrap();
    let (ok, _, err) = common::monti_cli(
        &s.config.data_dir,
        &[
            "--config",
            toml.to_str().unwrap(),
            "plugin",
            "install",
            wasm.to_str().unwrap(),
            "--tenant",
            "acme",
        ],
    );
    assert!(!ok && err.contains(REFUSAL), "{err}");

    // The demo's connector, through the running server's policy.
    let scope = tenants::system_scope(&s.store, "acme", SystemActor::Demo)
        .await
        .unwrap();
    let scenario = monti::demo::scenario(4, 1);
    let demo = monti::demo::connect_asterisk(&s.app, &scope, &scenario, &connector).await;
    let error = format!("{:#}", demo.err().expect("the demo is refused too"));
    assert!(error.contains(REFUSAL), "{error}");

    // Nothing was installed, and nobody was recorded as having installed it.
    let listed = s.get("/api/v1/plugins", &admin).await;
    assert_eq!(listed.body["items"], serde_json::json!([]), "{}", listed.text);
    let actions = common::audit_actions(&s, Some("acme")).await;
    assert!(
        !actions.iter().any(|(action, _)| action.starts_with("plugin.")),
        "{actions:?}"
    );
    s.stop().await;
}

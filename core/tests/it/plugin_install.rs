//! Installing a plugin is one flow: the REST API, the admin page, the command line and the demo
//! all go through it, so the operator's policy refuses a plugin alike everywhere — the demo
//! used to install its Asterisk connector past it.

use crate::common::{self, TestServer, account};
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

    // The admin page's upload form, in a browser, as a tenant admin uses it.
    account(
        &s.store,
        "ada@acme.example",
        "correct horse battery",
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("asterisk.wasm");
    std::fs::write(&wasm, &connector).unwrap();
    if let Some(browser) = common::browser::Browser::launch().await {
        let wait = std::time::Duration::from_secs(15);
        let mut page = browser.page().await;
        page.sign_in_at(&s.url("/admin/plugins"), "ada@acme.example", "correct horse battery")
            .await;
        assert!(page.wait_for("location.pathname === '/admin/plugins'", wait).await);
        page.choose_file("#component", &wasm).await;
        page.click("#upload").await;
        assert!(
            page.wait_for(&format!("document.body.innerText.includes({REFUSAL:?})"), wait)
                .await,
            "the page says why: {}",
            page.text().await
        );
        assert_eq!(
            page.eval("location.pathname").await,
            serde_json::json!("/admin/plugins"),
            "still on the plugin list, nothing installed"
        );
    }

    // The command line, with the same policy in its configuration.
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

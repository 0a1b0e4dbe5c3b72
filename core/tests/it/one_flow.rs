//! A flow offered in several places is one flow: asked for through the REST API, its page in a
//! browser or the command line, it is refused for the same reason in the same words, and when
//! it happens it is audited alike, under whoever asked.

use std::time::Duration;

use serde_json::json;

use crate::common::{self, TestServer, account};
use monti::domain::Role;
use monti::store::{SystemActor, tenants};

const TOO_SHORT: &str = "must be at least one minute";

/// (actor, action) of tenant `slug`'s audit entries for `action`, oldest first.
async fn entries(s: &TestServer, slug: &str, action: &str) -> Vec<String> {
    let scope = tenants::system_scope(&s.store, slug, SystemActor::Operator)
        .await
        .unwrap();
    let params = monti::store::ListParams(vec![("limit".into(), "500".into()), ("sort".into(), "at".into())]);
    monti::store::resource::list::<monti::store::audit::AuditRow>(&s.store, &scope, &params)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.action == action && e.outcome == "success")
        .map(|e| e.actor)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_one_flow_for_the_api_the_page_and_the_command_line() {
    let s = TestServer::start(common::Backend::Sqlite).await.unwrap();
    let admin = s.tenant("acme", Role::TenantAdmin).await;

    // The REST API: a lifetime under a minute is refused at its field, a month is fine.
    let refused = s
        .post(
            "/api/v1/tokens",
            &admin,
            json!({ "name": "api", "role": "viewer", "expires_in": "30s" }),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.to_string().contains(TOO_SHORT), "{}", refused.body);
    s.post(
        "/api/v1/tokens",
        &admin,
        json!({ "name": "api", "role": "viewer", "expires_in": "30d" }),
    )
    .await
    .expect(201);

    // The tokens page, in a browser, as a tenant admin uses it.
    let role = Some(("acme", Role::TenantAdmin));
    account(&s.store, "ada@acme.example", "correct horse battery", role, false).await;
    let browser = common::browser::Browser::launch().await;
    if let Some(browser) = &browser {
        let wait = Duration::from_secs(15);
        let mut page = browser.page().await;
        page.sign_in_at(&s.url("/admin/tokens"), "ada@acme.example", "correct horse battery")
            .await;
        assert!(page.wait_for("location.pathname === '/admin/tokens'", wait).await);
        let create = |lifetime: &'static str| {
            format!(
                "(() => {{ document.querySelector('#token-name').value = 'page'; \
                 document.querySelector('#token-role').value = 'viewer'; \
                 document.querySelector('#token-expires').value = '{lifetime}'; \
                 document.querySelector('form[action=\"/admin/tokens\"] button[type=submit]').click(); \
                 return true; }})()"
            )
        };
        page.eval(&create("30s")).await;
        assert!(
            page.wait_for(&format!("document.body.innerText.includes({TOO_SHORT:?})"), wait)
                .await,
            "the page says why: {}",
            page.text().await
        );
        page.eval(&create("30d")).await;
        assert!(
            page.wait_for("document.querySelector('#new-token') !== null", wait)
                .await,
            "the page shows the new token once: {}",
            page.text().await
        );
    }

    // The command line.
    let cli = |lifetime: &str| {
        common::monti_cli(
            &s.config.data_dir,
            &[
                "admin",
                "token",
                "create",
                "--tenant",
                "acme",
                "--name",
                "cli",
                "--role",
                "viewer",
                "--expires",
                lifetime,
            ],
        )
    };
    let (ok, _, err) = cli("30s");
    assert!(!ok && err.contains(TOO_SHORT), "{err}");
    let (ok, out, err) = cli("30d");
    assert!(ok && out.trim().starts_with("monti_"), "{out} {err}");

    // The same outcome each time: a viewer token that expires, audited under who asked.
    let listed = s.get("/api/v1/tokens?limit=50", &admin).await;
    let viewer_tokens: Vec<&serde_json::Value> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["role"] == json!("viewer"))
        .collect();
    let expected = if browser.is_some() { 3 } else { 2 };
    assert_eq!(viewer_tokens.len(), expected, "{}", listed.body);
    assert!(
        viewer_tokens.iter().all(|t| !t["expires_at"].is_null()),
        "{}",
        listed.body
    );
    let actors = entries(&s, "acme", "token.create").await;
    let who: Vec<&str> = actors
        .iter()
        .map(|a| a.split(':').next().unwrap_or_default())
        .filter(|kind| *kind != "test")
        .collect();
    let mut expected_who = vec!["token"];
    if browser.is_some() {
        expected_who.push("user");
    }
    expected_who.push("cli");
    assert_eq!(who, expected_who, "{actors:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_one_flow_for_the_api_the_platform_page_and_the_command_line() {
    let s = TestServer::start(common::Backend::Sqlite).await.unwrap();
    let platform = s.platform_token().await;
    // What the refusal says, as the API words it.
    let refused = s
        .post(
            "/api/v1/tenants",
            &platform,
            json!({ "slug": "Not A Slug", "name": "Bad" }),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    let why = refused.body["errors"]
        .as_array()
        .and_then(|errors| errors.iter().find(|e| e["pointer"] == json!("/slug")))
        .and_then(|e| e["detail"].as_str())
        .expect("the slug's error")
        .to_owned();
    s.post(
        "/api/v1/tenants",
        &platform,
        json!({ "slug": "by-api", "name": "By API" }),
    )
    .await
    .expect(201);

    // The platform page, in a browser.
    account(&s.store, "ops@example.com", "correct horse battery", None, true).await;
    let browser = common::browser::Browser::launch().await;
    if let Some(browser) = &browser {
        let wait = Duration::from_secs(15);
        let mut page = browser.page().await;
        page.sign_in_at(&s.url("/platform/tenants"), "ops@example.com", "correct horse battery")
            .await;
        assert!(page.wait_for("location.pathname === '/platform/tenants'", wait).await);
        let create = |slug: &str| {
            format!(
                "(() => {{ document.querySelector('#t-slug').value = {slug:?}; \
                 document.querySelector('#t-name').value = 'By page'; \
                 document.querySelector('form[action=\"/platform/tenants\"] button[type=submit]').click(); \
                 return true; }})()"
            )
        };
        page.eval(&create("Not A Slug")).await;
        assert!(
            page.wait_for(&format!("document.body.innerText.includes({why:?})"), wait)
                .await,
            "the page says why: {}",
            page.text().await
        );
        page.eval(&create("by-page")).await;
        assert!(
            page.wait_for("document.body.innerText.includes('by-page')", wait).await,
            "the new tenant is listed: {}",
            page.text().await
        );
    }

    // The command line.
    let cli = |slug: &str| {
        common::monti_cli(
            &s.config.data_dir,
            &["admin", "tenant", "create", "--slug", slug, "--name", "By CLI"],
        )
    };
    let (ok, _, err) = cli("Not A Slug");
    assert!(!ok && err.contains(&why), "{err}");
    let (ok, _, err) = cli("by-cli");
    assert!(ok, "{err}");

    // Each tenant exists and its creation is in its own audit log, under who asked.
    let mut made = vec![("by-api", "token:")];
    if browser.is_some() {
        made.push(("by-page", "user:"));
    }
    made.push(("by-cli", "cli"));
    for (slug, actor) in made {
        let actors = entries(&s, slug, "tenant.create").await;
        assert_eq!(actors.len(), 1, "{slug}: {actors:?}");
        assert!(actors[0].starts_with(actor), "{slug}: {actors:?}");
    }
    s.stop().await;
}

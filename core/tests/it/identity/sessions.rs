//! First-run setup, signing in and out, idle sessions, disabled accounts and password changes,
//! the pages in German.

use super::*;

both_backends!(first_run_setup_creates_the_first_admin_once);
async fn first_run_setup_creates_the_first_admin_once(s: &TestServer) {
    let token = monti::web::auth_pages::prepare_setup(&s.store)
        .await
        .unwrap()
        .expect("no admin yet: a setup link");
    let mut v = Visitor::new(s);
    assert_eq!(v.get("/setup").await.status, 403, "no token, no setup");
    assert_eq!(v.get("/setup?token=guess").await.status, 403);
    let page = v.get(&format!("/setup?token={token}")).await;
    assert_eq!(page.status, 200);
    let weak = v
        .post(
            "/setup",
            &[
                ("token", &token),
                ("display_name", "Olga"),
                ("email", "olga@example.com"),
                ("password", "short"),
                ("confirm", "short"),
            ],
        )
        .await;
    assert_eq!(weak.status, 422);
    assert!(
        weak.body.contains("field-error") && weak.body.contains("at least 12"),
        "{}",
        weak.body
    );
    let done = v
        .post(
            "/setup",
            &[
                ("token", &token),
                ("display_name", "Olga"),
                ("email", "olga@example.com"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/"));
    let session = done
        .set_cookies
        .iter()
        .find(|c| c.starts_with("monti_session="))
        .expect("session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    let home = v.get("/").await;
    assert_eq!(home.status, 200);
    assert!(
        home.body.contains("/platform/tenants"),
        "a platform admin sees the tenants: {}",
        home.body
    );
    // The link works once: afterwards setup is closed, even with the same token.
    let mut other = Visitor::new(s);
    assert_eq!(other.get(&format!("/setup?token={token}")).await.status, 303);
    other.get("/login").await;
    let again = other
        .post(
            "/setup",
            &[
                ("token", &token),
                ("display_name", "Eve"),
                ("email", "eve@example.com"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(again.status, 403);
    assert!(monti::web::auth_pages::prepare_setup(&s.store).await.unwrap().is_none());
    let actions = audit_actions(s, None).await;
    assert!(
        actions.contains(&("platform.setup".into(), "success".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("platform.setup".into(), "denied".into())),
        "{actions:?}"
    );
}

both_backends!(local_sign_in_sessions_and_sign_out);
async fn local_sign_in_sessions_and_sign_out(s: &TestServer) {
    s.tenant("acme", Role::Viewer).await;
    account(
        &s.store,
        "ana@example.com",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let mut a = Visitor::new(s);
    // Anonymous visitors are sent to sign in, and learn nothing.
    let home = a.get("/").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.location.as_deref(), Some("/login"));
    let wrong = a.sign_in("ana@example.com", "not the password").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("id=\"login-error\""));
    let unknown = a.sign_in("nobody@example.com", PASSWORD).await;
    assert_eq!(
        unknown.status, 401,
        "unknown accounts look exactly like wrong passwords"
    );
    let ok = a.sign_in("ana@example.com", PASSWORD).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert!(a.get("/").await.body.contains("Tenant acme"));
    // A second browser.
    let mut b = Visitor::new(s);
    assert_eq!(
        b.sign_in("ANA@example.com", PASSWORD).await.status,
        303,
        "emails are case-insensitive"
    );
    let account_page = a.get("/account").await;
    assert_eq!(
        account_page.body.matches("/revoke\"").count(),
        2,
        "both sessions are listed"
    );
    // Sign out everywhere else: b's session ends, a's stays.
    assert_eq!(a.post("/account/sessions/revoke-others", &[]).await.status, 303);
    assert_eq!(b.get("/account").await.status, 303, "b was signed out");
    assert_eq!(a.get("/account").await.status, 200);
    // Sign out.
    let out = a.post("/logout", &[]).await;
    assert_eq!(out.status, 303);
    assert!(!a.has_cookie("monti_session"));
    assert_eq!(a.get("/account").await.status, 303);
    let actions = audit_actions(s, Some("acme")).await;
    for expected in [
        ("session.sign_in", "failure"),
        ("session.sign_in", "success"),
        ("session.revoke_all", "success"),
        ("session.sign_out", "success"),
    ] {
        assert!(
            actions.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {actions:?}"
        );
    }
    // An address without an account names nobody: counted in metrics and logged, not audited.
    let platform = audit_actions(s, None).await;
    assert!(
        !platform.contains(&("session.sign_in".into(), "failure".into())),
        "{platform:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_end() {
    let s = TestServer::start_with(common::Backend::Sqlite, |c| {
        c.auth.session_idle_timeout = std::time::Duration::from_secs(1);
    })
    .await
    .unwrap();
    s.tenant("acme", Role::Viewer).await;
    account(
        &s.store,
        "ana@example.com",
        PASSWORD,
        Some(("acme", Role::Viewer)),
        false,
    )
    .await;
    let mut v = Visitor::new(&s);
    assert_eq!(v.sign_in("ana@example.com", PASSWORD).await.status, 303);
    assert_eq!(v.get("/account").await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    assert_eq!(v.get("/account").await.status, 303, "idle too long");
    s.stop().await;
}

both_backends!(disabled_accounts_and_password_changes);
async fn disabled_accounts_and_password_changes(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let id = account(
        &s.store,
        "ana@example.com",
        PASSWORD,
        Some(("acme", Role::Supervisor)),
        false,
    )
    .await;
    let mut a = Visitor::new(s);
    let mut b = Visitor::new(s);
    assert_eq!(a.sign_in("ana@example.com", PASSWORD).await.status, 303);
    assert_eq!(b.sign_in("ana@example.com", PASSWORD).await.status, 303);
    a.get("/account").await;
    let wrong = a
        .post(
            "/account/password",
            &[
                ("current", "nope nope nope"),
                ("password", "a new passphrase here"),
                ("confirm", "a new passphrase here"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 422);
    let changed = a
        .post(
            "/account/password",
            &[
                ("current", PASSWORD),
                ("password", "a new passphrase here"),
                ("confirm", "a new passphrase here"),
            ],
        )
        .await;
    assert_eq!(changed.status, 303);
    assert_eq!(
        b.get("/account").await.status,
        303,
        "other sessions end on a password change"
    );
    assert_eq!(a.get("/account").await.status, 200);
    assert_eq!(Visitor::new(s).sign_in("ana@example.com", PASSWORD).await.status, 401);
    assert_eq!(
        Visitor::new(s)
            .sign_in("ana@example.com", "a new passphrase here")
            .await
            .status,
        303
    );
    // An admin disables the member (through the API, as through the users page): the session
    // in the tenant ends and sign-in stops.
    s.patch(&format!("/api/v1/users/{id}"), &admin, json!({ "disabled": true }))
        .await
        .expect(200);
    assert_eq!(a.get("/").await.status, 303, "signed out of the tenant");
    monti::store::accounts::set_disabled(&s.store, &id, true).await.unwrap();
    assert_eq!(a.get("/account").await.status, 303, "a disabled account has no session");
    assert_eq!(
        Visitor::new(s)
            .sign_in("ana@example.com", "a new passphrase here")
            .await
            .status,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_speaks_german_including_validation_messages() {
    let s = TestServer::start(common::Backend::Sqlite).await.unwrap();
    s.tenant("acme", Role::Viewer).await;
    account(
        &s.store,
        "ute@example.com",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let mut v = Visitor::new(&s);
    v.sign_in("ute@example.com", PASSWORD).await;
    v.get("/account").await;
    assert_eq!(v.post("/account/locale", &[("locale", "de")]).await.status, 303);
    let form = v.get("/admin/teams/new").await;
    assert!(
        form.body.contains("<html lang=\"de\">") && form.body.contains("Beschreibung"),
        "{}",
        form.body
    );
    let invalid = v.post("/admin/teams", &[("name", ""), ("description", "")]).await;
    assert_eq!(invalid.status, 422);
    assert!(invalid.body.contains("darf nicht leer sein"), "{}", invalid.body);
    assert!(invalid.body.contains("Bitte korrigieren Sie die markierten Felder."));
    v.post("/admin/teams", &[("name", "Nord"), ("description", "")]).await;
    v.get("/admin/teams/new").await;
    let taken = v.post("/admin/teams", &[("name", "nord"), ("description", "")]).await;
    assert!(
        taken.body.contains("ein Team mit diesem Namen gibt es schon"),
        "{}",
        taken.body
    );
    s.stop().await;
}

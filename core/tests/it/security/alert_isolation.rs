//! Alert rules are code a tenant runs on the server: one tenant's hostile rules must not delay
//! another's alerts, a rule that keeps running over its budget is suspended (audited, shown,
//! resumed by saving it), a builtin that swallows a callback's error cannot make a stopped rule
//! fire, testing a rule is for rule editors and bounded, and rules cannot point at another
//! tenant's queues or teams.

use std::time::{Duration, Instant};

use monti::domain::Role;
use serde_json::{Value, json};

use crate::common::{TestServer, Visitor, account};

/// Polls `GET path` until `ready` (at most `limit`).
async fn until(
    server: &TestServer,
    token: &str,
    path: &str,
    limit: Duration,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let body = server.get(path, token).await.body;
        if ready(&body) {
            return body;
        }
        assert!(started.elapsed() < limit, "{what}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn agents(server: &TestServer, token: &str, count: usize) {
    for n in 0..count {
        server
            .post(
                "/api/v1/agents",
                token,
                json!({ "name": format!("Agent {n}"), "extension": format!("{}", 3000 + n) }),
            )
            .await
            .expect(201);
    }
}

async fn rule(server: &TestServer, token: &str, name: &str, scope: &str, expression: &str, for_s: i64) -> String {
    let created = server
        .post(
            "/api/v1/alert-rules",
            token,
            json!({ "name": name, "scope": scope, "expression": expression, "for_s": for_s }),
        )
        .await;
    created.expect(201);
    created.id()
}

/// Endless loops, expensive builtins in loops, a comparer that never returns — on every agent —
/// and many endless rules besides.
const HOSTILE: [(&str, &str, &str); 4] = [
    ("Endless", "agent", "loop { } true"),
    (
        "Sorting forever",
        "agent",
        "let a = []; for i in 0..1000 { a.push((i * 7919) % 1000); } loop { let b = a; b.sort(); b.reverse(); } true",
    ),
    (
        "Scanning forever",
        "agent",
        "let s = \"\"; s.pad(9000, \"x\"); loop { s.index_of(\"y\"); s.to_upper(); } true",
    ),
    (
        "Comparer that loops",
        "agent",
        "let a = []; for i in 0..1000 { a.push(1000 - i); } a.sort(|x, y| { loop { } }); true",
    ),
];

/// Tenant B's always-true rule fires within its `for` + 2 s while tenant A runs hostile rules;
/// A's rules are then suspended (shown on the rule, audited as the system), and run again once
/// saved.
async fn hostile_tenants_are_contained(server: &TestServer) {
    let hostile = server.tenant("hostile", Role::TenantAdmin).await;
    let calm = server.tenant("calm", Role::TenantAdmin).await;
    agents(server, &hostile, 150).await;
    let mut hostile_rules = Vec::new();
    for (name, scope, expression) in HOSTILE {
        hostile_rules.push(rule(server, &hostile, name, scope, expression, 0).await);
    }
    for n in 0..30 {
        hostile_rules.push(rule(server, &hostile, &format!("Endless {n}"), "tenant", "loop { } true", 0).await);
    }
    // A's rules are running (a tick started).
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let for_s = 1;
    let started = Instant::now();
    rule(server, &calm, "Always", "tenant", "true", for_s).await;
    let limit = Duration::from_secs(for_s as u64 + 2);
    // Polled past the limit so a failure says by how much.
    let fired = until(
        server,
        &calm,
        "/api/v1/alerts",
        Duration::from_secs(60),
        "B's alert fires",
        |b| b["items"].as_array().is_some_and(|i| !i.is_empty()),
    )
    .await;
    let waited = started.elapsed();
    eprintln!("tenant B's rule (for {for_s} s) fired after {waited:?} with tenant A's hostile rules running");
    assert!(waited < limit, "B waited {waited:?} for an alert with `for` {for_s} s");
    assert_eq!(fired["items"][0]["rule_name"], json!("Always"), "{fired}");
    // Measured while A's rules still ran (not after they were all suspended).
    let still = server.get("/api/v1/alert-rules", &hostile).await.body;
    let running = still["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"]["suspended"].is_null())
        .count();
    assert!(running > 0, "A's rules were all suspended already: {still}");

    // A's hostile rules are suspended, say so and why, and the system is on record for it.
    let started = Instant::now();
    let listed = until(
        server,
        &hostile,
        "/api/v1/alert-rules",
        Duration::from_secs(40),
        "all suspended",
        |b| {
            b["items"]
                .as_array()
                .is_some_and(|items| items.iter().all(|r| r["status"]["suspended"].is_object()))
        },
    )
    .await;
    eprintln!(
        "tenant A's {} hostile rules were all suspended {:?} later",
        hostile_rules.len(),
        started.elapsed()
    );
    let endless = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == json!("Endless"))
        .unwrap()
        .clone();
    let reason = endless["status"]["suspended"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("time budget") && reason.contains("stopped"),
        "{endless}"
    );
    assert!(
        endless["status"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("suspended"),
        "{endless}"
    );
    let audit = server
        .get("/api/v1/audit?action=alert_rule.suspend", &hostile)
        .await
        .body;
    let entries = audit["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), hostile_rules.len(), "{audit}");
    assert!(entries.iter().all(|e| e["actor"] == json!("system:rules")), "{audit}");
    // The calm tenant has nothing suspended and nothing in its audit about it.
    let calm_audit = server.get("/api/v1/audit?action=alert_rule.suspend", &calm).await.body;
    assert_eq!(calm_audit["items"], json!([]), "{calm_audit}");

    // Saved again (fixed), the rule runs again.
    let id = endless["id"].as_str().unwrap();
    server
        .patch(
            &format!("/api/v1/alert-rules/{id}"),
            &hostile,
            json!({ "expression": "agent.state == \"paused\"" }),
        )
        .await
        .expect(200);
    until(
        server,
        &hostile,
        &format!("/api/v1/alert-rules/{id}"),
        Duration::from_secs(10),
        "resumed",
        |r| r["status"]["suspended"].is_null() && r["status"]["evaluated"].as_u64() == Some(150),
    )
    .await;
}

crate::both_backends!(hostile_tenants_are_contained);

/// rhai's `sort` with a comparer swallows the comparer's errors: a comparer that loops (or
/// throws) must fail the rule, not let it hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_inside_a_callback_fails_the_rule() {
    let server = TestServer::start(crate::common::Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", Role::TenantAdmin).await;
    agents(&server, &admin, 5).await;
    for (expression, says) in [
        ("let a = [3, 1, 2]; a.sort(|x, y| { loop { } }); true", "stopped"),
        (
            "let a = [3, 1, 2]; a.sort(|x, y| { throw \"no order\" }); true",
            "no order",
        ),
        (
            "let a = [3, 1, 2]; let b = a.order(|x, y| { loop { } }); true",
            "stopped",
        ),
        (
            "let a = [1, 1, 2]; a.dedup(|x, y| { throw \"no dedup\" }); true",
            "no dedup",
        ),
    ] {
        let tested = server
            .post(
                "/api/v1/alert-rules/test",
                &admin,
                json!({ "scope": "agent", "expression": expression }),
            )
            .await;
        tested.expect(200);
        assert_eq!(tested.body["holding"], json!([]), "{expression}: {}", tested.body);
        let error = tested.body["error"]["message"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{expression}: {}", tested.body);
    }
    // Saved, it never fires and says why.
    let id = rule(
        &server,
        &admin,
        "Sorts forever",
        "agent",
        "let a = [3, 1, 2]; a.sort(|x, y| { loop { } }); true",
        0,
    )
    .await;
    let shown = until(
        &server,
        &admin,
        &format!("/api/v1/alert-rules/{id}"),
        Duration::from_secs(10),
        "failing",
        |r| r["status"]["error"].is_object(),
    )
    .await;
    assert!(
        shown["status"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stopped"),
        "{shown}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let alerts = server.get("/api/v1/alerts?state=all", &admin).await.body;
    assert_eq!(alerts["items"], json!([]), "{alerts}");
    // A comparer that works still sorts.
    let fine = server
        .post(
            "/api/v1/alert-rules/test",
            &admin,
            json!({ "scope": "tenant", "expression": "let a = [3, 1, 2]; a.sort(|x, y| x - y); a == [1, 2, 3]" }),
        )
        .await;
    assert_eq!(fine.body["holding"].as_array().map(Vec::len), Some(1), "{}", fine.body);
    server.stop().await;
}

/// Testing a rule runs it on the server: viewers and supervisors may not (API or UI), and a
/// hostile rule's test is bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testing_a_rule_is_for_editors_and_bounded() {
    let server = TestServer::start(crate::common::Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", Role::TenantAdmin).await;
    agents(&server, &admin, 150).await;
    let draft = json!({ "scope": "agent", "expression": HOSTILE[1].2 });
    for role in [Role::Viewer, Role::Supervisor, Role::Agent] {
        let token = server.tenant("acme", role).await;
        server
            .post("/api/v1/alert-rules/test", &token, draft.clone())
            .await
            .expect_problem(403);
        // The syntax check (compiling only) stays open to those who see the rules.
        if role != Role::Agent {
            server
                .post("/api/v1/alert-rules/check", &token, draft.clone())
                .await
                .expect(200);
        }
    }
    account(
        &server.store,
        "viewer@example.com",
        "correct horse battery staple",
        Some(("acme", Role::Viewer)),
        false,
    )
    .await;
    let mut viewer = Visitor::new(&server);
    viewer
        .sign_in("viewer@example.com", "correct horse battery staple")
        .await;
    viewer.get("/admin/alert-rules").await;
    assert!(viewer.csrf.is_some(), "a page with the CSRF token");
    let page = viewer
        .post(
            "/admin/alert-rules/test",
            &[("scope", "agent"), ("expression", HOSTILE[1].2)],
        )
        .await;
    assert_eq!(page.status, 403, "{}", page.body);

    // An editor's test of a hostile rule on 150 agents ends within a tick's budget.
    let started = Instant::now();
    let tested = server.post("/api/v1/alert-rules/test", &admin, draft).await;
    let took = started.elapsed();
    eprintln!("testing a hostile rule on 150 agents took {took:?}");
    tested.expect(200);
    assert!(tested.body["error"]["message"].is_string(), "{}", tested.body);
    assert!(took < Duration::from_secs(1), "the test took {took:?}");
    server.stop().await;
}

/// A rule narrowed to another tenant's queue or team would match nothing; it is refused.
async fn rules_use_their_own_tenants_queues_and_teams(server: &TestServer) {
    let own = server.tenant("own", Role::TenantAdmin).await;
    let other = server.tenant("other", Role::TenantAdmin).await;
    let own_queue = server
        .post("/api/v1/queues", &own, json!({ "name": "Sales" }))
        .await
        .id();
    let own_team = server.post("/api/v1/teams", &own, json!({ "name": "Blue" })).await.id();
    let their_queue = server
        .post("/api/v1/queues", &other, json!({ "name": "Sales" }))
        .await
        .id();
    let their_team = server
        .post("/api/v1/teams", &other, json!({ "name": "Blue" }))
        .await
        .id();

    let refused = server
        .post(
            "/api/v1/alert-rules",
            &own,
            json!({ "name": "Theirs", "scope": "agent", "expression": "true", "queues": [own_queue, their_queue] }),
        )
        .await;
    refused.expect_problem(422);
    assert_eq!(refused.pointers(), ["/queues"], "{}", refused.body);
    assert!(refused.text.contains(&their_queue), "{}", refused.text);
    let refused = server
        .post(
            "/api/v1/alert-rules",
            &own,
            json!({ "name": "Theirs", "scope": "agent", "expression": "true", "teams": [their_team] }),
        )
        .await;
    refused.expect_problem(422);
    assert_eq!(refused.pointers(), ["/teams"], "{}", refused.body);
    server
        .post(
            "/api/v1/alert-rules",
            &own,
            json!({ "name": "Made up", "scope": "queue", "expression": "true", "queues": ["queue_nope"] }),
        )
        .await
        .expect_problem(422);

    let id = rule(server, &own, "Ours", "agent", "true", 60).await;
    server
        .patch(
            &format!("/api/v1/alert-rules/{id}"),
            &own,
            json!({ "queues": [own_queue], "teams": [own_team] }),
        )
        .await
        .expect(200);
    let patched = server
        .patch(
            &format!("/api/v1/alert-rules/{id}"),
            &own,
            json!({ "teams": [their_team] }),
        )
        .await;
    patched.expect_problem(422);
    assert_eq!(patched.pointers(), ["/teams"], "{}", patched.body);
    let kept = server.get(&format!("/api/v1/alert-rules/{id}"), &own).await.body;
    assert_eq!(kept["teams"], json!([own_team]), "{kept}");
}

crate::both_backends!(rules_use_their_own_tenants_queues_and_teams);

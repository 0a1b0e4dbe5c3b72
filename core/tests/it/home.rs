//! The home page of someone who watches the floor is today's overview: per queue the calls
//! offered, the service level against its target, the abandon rate and a sparkline by half
//! hour, with the alerts firing; the figures are the board's.

use serde_json::json;

use crate::common::{self, TestServer};
use monti::domain::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisors_home_page_is_todays_overview() {
    let s = TestServer::start(common::Backend::Sqlite).await.unwrap();
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    s.post("/api/v1/queues", &admin, json!({ "name": "Sales" }))
        .await
        .expect(201);
    s.post("/api/v1/agents", &admin, json!({ "name": "Ana", "extension": "1001" }))
        .await
        .expect(201);
    // Four callers: three answered within the threshold, one hung up.
    let now = chrono::Utc::now().to_rfc3339();
    let event = |id: String, body: serde_json::Value| {
        let mut e = json!({ "id": id, "source": "test", "at": now });
        e.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        e
    };
    let mut events: Vec<serde_json::Value> = (0..4)
        .map(|n| {
            event(
                format!("j{n}"),
                json!({ "type": "caller_join", "queue": "Sales", "call": format!("c{n}") }),
            )
        })
        .collect();
    for n in 0..3 {
        events.push(event(
            format!("a{n}"),
            json!({ "type": "caller_answer", "queue": "Sales", "call": format!("c{n}"), "agent": "1001", "wait_s": 5.0 }),
        ));
    }
    events.push(event(
        "l3".into(),
        json!({ "type": "caller_leave", "queue": "Sales", "call": "c3", "reason": "abandon", "wait_s": 40.0 }),
    ));
    s.post("/api/v1/events", &admin, json!(events)).await.expect(200);

    let mut sam = common::signed_in_member(
        &s,
        "sam@acme.example",
        "correct horse battery",
        "acme",
        Role::Supervisor,
    )
    .await;
    let home = sam.get("/").await;
    assert_eq!(home.status, 200);
    let body = &home.body;
    assert!(body.contains("<th scope=\"row\">Sales</th>"), "{body}");
    // Offered 4; 75 % against the 80 % target, shown as below it; 25 % abandoned.
    assert!(body.contains("<td>4</td>"), "{body}");
    assert!(body.contains("class=\"sl bad\">75% <small>/ 80%</small>"), "{body}");
    assert!(body.contains("<td>25%</td>"), "{body}");
    // The sparkline's last half hour holds the four calls.
    let label = body
        .split("aria-label=\"Calls by half hour: ")
        .nth(1)
        .unwrap_or_default();
    let counts: Vec<u64> = label
        .split('"')
        .next()
        .unwrap_or_default()
        .split(", ")
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 4, "{label}");
    assert_eq!(counts.last(), Some(&4), "{label}");
    assert!(body.contains("<svg class=\"spark\""), "{body}");
    // In a browser: no error in the console, nothing wider than the window; a screenshot is
    // left in the target directory to look at.
    if let Some(browser) = common::browser::Browser::launch().await {
        let mut page = browser.page().await;
        page.sign_in_at(&s.url("/"), "sam@acme.example", "correct horse battery")
            .await;
        page.resize(1280, 800).await;
        page.goto(&s.url("/")).await;
        assert_eq!(page.errors().await, Vec::<String>::new());
        let wide = page
            .eval("document.documentElement.scrollWidth <= window.innerWidth")
            .await;
        assert_eq!(wide, json!(true), "the page fits the window");
        let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("home-supervisor.png");
        page.screenshot(&shot).await;
        browser.close().await;
    }
    // An agent does not watch the floor: no overview.
    let mut ana = common::signed_in_member(&s, "ana@acme.example", "correct horse battery", "acme", Role::Agent).await;
    let home = ana.get("/").await;
    assert!(!home.body.contains("Calls by half hour"), "{}", home.body);
    s.stop().await;
}

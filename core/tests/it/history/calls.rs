//! The call history: browsing, filtering, paging, one call's detail, the CSV export, scopes and
//! other tenants, and bad input.

use super::*;

use chrono::{Duration, SecondsFormat, Utc};

/// Five calls an hour ago (newest first: c4 outbound by Ana; c3 in Sales answered by Ben after
/// timing out of Support; c2 abandoned in Sales; c1 in Sales answered by Ana).
async fn five_calls(s: &TestServer, admin: &str) -> chrono::DateTime<Utc> {
    let base = Utc::now() - Duration::minutes(60);
    let events = [
        (0, json!({ "type": "caller_join", "queue": "Sales", "call": "c1" })),
        (5, json!({ "type": "agent_state", "agent": "1001", "state": "ringing" })),
        (
            10,
            json!({ "type": "caller_answer", "queue": "Sales", "call": "c1", "agent": "1001", "wait_s": 10.0 }),
        ),
        (
            10,
            json!({ "type": "call_start", "call": "c1", "agent": "1001", "queue": "Sales", "direction": "inbound" }),
        ),
        (60, json!({ "type": "caller_join", "queue": "Sales", "call": "c2" })),
        (
            90,
            json!({ "type": "caller_leave", "queue": "Sales", "call": "c2", "reason": "abandon", "wait_s": 30.0 }),
        ),
        (120, json!({ "type": "caller_join", "queue": "Support", "call": "c3" })),
        (
            130,
            json!({ "type": "call_end", "call": "c1", "agent": "1001", "queue": "Sales", "talk_s": 110.0, "hold_s": 10.0, "wrap_s": 20.0 }),
        ),
        (
            180,
            json!({ "type": "caller_leave", "queue": "Support", "call": "c3", "reason": "timeout", "wait_s": 60.0 }),
        ),
        (180, json!({ "type": "caller_join", "queue": "Sales", "call": "c3" })),
        (
            185,
            json!({ "type": "caller_answer", "queue": "Sales", "call": "c3", "agent": "1002", "wait_s": 5.0 }),
        ),
        (
            300,
            json!({ "type": "call_end", "call": "c3", "agent": "1002", "queue": "Sales", "talk_s": 115.0 }),
        ),
        (
            400,
            json!({ "type": "call_start", "call": "c4", "agent": "1001", "direction": "outbound" }),
        ),
        (
            460,
            json!({ "type": "call_end", "call": "c4", "agent": "1001", "talk_s": 60.0 }),
        ),
    ];
    send(s, admin, base, &events).await;
    base
}

fn range(base: chrono::DateTime<Utc>) -> String {
    let t = |d: chrono::DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Secs, true);
    format!(
        "from={}&to={}",
        t(base - Duration::minutes(5)),
        t(base + Duration::minutes(30))
    )
}

fn ids(reply: &common::Reply) -> Vec<String> {
    reply.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {}", reply.text))
        .iter()
        .map(|c| {
            format!(
                "{}@{}",
                c["call_id"].as_str().unwrap(),
                c["queue"]["name"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

both_backends!(calls_are_browsed_filtered_and_paged);
async fn calls_are_browsed_filtered_and_paged(s: &TestServer) {
    let (admin, north, ana, _ben, sales, _support) = floor(s).await;
    let base = five_calls(s, &admin).await;
    let r = range(base);
    let all = s.get(&format!("/api/v1/calls?{r}"), &admin).await;
    all.expect(200);
    assert_eq!(
        ids(&all),
        ["c4@-", "c3@Sales", "c3@Support", "c2@Sales", "c1@Sales"],
        "newest first, a row per queue the call went through"
    );
    let c1 = &all.body["items"][4];
    assert_eq!(c1["agent"]["name"], "Ana");
    assert_eq!(c1["outcome"], "answered");
    assert_eq!(
        (c1["wait_s"].as_f64(), c1["talk_s"].as_f64()),
        (Some(10.0), Some(110.0))
    );
    assert_eq!(c1["wrap_s"].as_f64(), Some(20.0));
    assert_eq!(c1["duration_s"].as_f64(), Some(130.0), "from joining to hanging up");
    assert_eq!(all.body["items"][0]["direction"], "outbound");
    assert_eq!(all.body["items"][2]["outcome"], "timeout");
    assert!(all.body["next_cursor"].is_null());

    let filtered = |query: String| {
        let admin = admin.clone();
        async move {
            ids(&s
                .get(&format!("/api/v1/calls?{r}&{query}", r = range(base)), &admin)
                .await)
        }
    };
    assert_eq!(
        filtered(format!("queue={sales}")).await,
        ["c3@Sales", "c2@Sales", "c1@Sales"]
    );
    assert_eq!(filtered("queue=none".into()).await, ["c4@-"]);
    assert_eq!(filtered(format!("agent={ana}")).await, ["c4@-", "c1@Sales"]);
    assert_eq!(filtered(format!("team={north}")).await, ["c4@-", "c1@Sales"]);
    assert_eq!(filtered("outcome=abandoned".into()).await, ["c2@Sales"]);
    assert_eq!(filtered("direction=outbound".into()).await, ["c4@-"]);
    assert_eq!(filtered("min_duration=100".into()).await, ["c3@Sales", "c1@Sales"]);
    assert_eq!(filtered("max_duration=30".into()).await, ["c2@Sales"]);
    // Counted rather than started: c1 was answered 10 s after it joined.
    let counted = |from: i64, to: i64| {
        let t = |s: i64| (base + Duration::seconds(s)).to_rfc3339_opts(SecondsFormat::Secs, true);
        format!("from={}&to={}&by=counted", t(from), t(to))
    };
    assert_eq!(
        ids(&s.get(&format!("/api/v1/calls?{}", counted(5, 11)), &admin).await),
        ["c1@Sales"]
    );
    assert!(ids(&s.get(&format!("/api/v1/calls?{}", counted(0, 5)), &admin).await).is_empty());

    // Pages of two: every call once, in order, however the pages fall.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/calls?{}&limit=2&cursor={c}", range(base)),
            None => format!("/api/v1/calls?{}&limit=2", range(base)),
        };
        let page = s.get(&path, &admin).await;
        page.expect(200);
        seen.extend(ids(&page));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids(&all));

    // One call: its rows and timeline.
    let c3 = s.get("/api/v1/calls/c3", &admin).await;
    c3.expect(200);
    assert_eq!(c3.body["legs"].as_array().unwrap().len(), 2);
    let kinds: Vec<&str> = c3.body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "caller_join",
            "caller_leave",
            "caller_join",
            "caller_answer",
            "call_end"
        ],
        "{}",
        c3.text
    );
    let c1 = s.get("/api/v1/calls/c1", &admin).await;
    let kinds: Vec<&str> = c1.body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.starts_with(&["caller_join", "agent_state", "caller_answer", "call_start"]),
        "the agent ringing is part of the call's story: {kinds:?}"
    );
    s.get("/api/v1/calls/nope", &admin).await.expect_problem(404);
}

both_backends!(other_tenants_and_other_teams_see_none_of_it);
async fn other_tenants_and_other_teams_see_none_of_it(s: &TestServer) {
    let (admin, north, _ana, ben, _sales, _support) = floor(s).await;
    let base = five_calls(s, &admin).await;
    let r = range(base);
    let other = s.tenant("globex", Role::TenantAdmin).await;
    assert!(ids(&s.get(&format!("/api/v1/calls?{r}"), &other).await).is_empty());
    s.get("/api/v1/calls/c1", &other).await.expect_problem(404);
    let export = s.get(&format!("/api/v1/calls/export?{r}"), &other).await;
    assert_eq!(export.text.lines().count(), 1, "the header alone: {}", export.text);
    // A supervisor of North sees the calls North's agents handled, not the South's nor the
    // callers nobody answered.
    let scoped = s
        .post(
            "/api/v1/tokens",
            &admin,
            json!({ "name": "north", "role": "supervisor", "team_scope": [north] }),
        )
        .await
        .expect(201)
        .body["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        ids(&s.get(&format!("/api/v1/calls?{r}"), &scoped).await),
        ["c4@-", "c1@Sales"]
    );
    s.get("/api/v1/calls/c3", &scoped).await.expect_problem(404);
    s.get("/api/v1/calls/c1", &scoped).await.expect(200);
    // Ben removed, every agent left is North's: Ben's calls still are not North's.
    s.delete(&format!("/api/v1/agents/{ben}"), &admin).await.expect(204);
    assert_eq!(
        ids(&s.get(&format!("/api/v1/calls?{r}"), &scoped).await),
        ["c4@-", "c1@Sales"]
    );
    s.get("/api/v1/calls/c3", &scoped).await.expect_problem(404);
    let export = s.get(&format!("/api/v1/calls/export?{r}"), &scoped).await;
    assert_eq!(export.text.lines().count(), 3, "{}", export.text);
    // Agents and viewers do not look back.
    for role in [Role::Agent, Role::Viewer] {
        let token = s.tenant("acme", role).await;
        s.get(&format!("/api/v1/calls?{r}"), &token).await.expect_problem(403);
    }
}

both_backends!(bad_filters_are_explained);
async fn bad_filters_are_explained(s: &TestServer) {
    let (admin, ..) = floor(s).await;
    let cases = [
        ("from=2026-12-02&to=2026-12-01", "/to"),
        ("from=2026-12-02&to=2026-12-01T23:00:00Z", "/to"),
        ("from=2020-01-01&to=2026-01-01", "/to"),
        ("from=yesterday", "/from"),
        ("queue=nope", "/queue"),
        ("agent=nobody", "/agent"),
        ("team=nope", "/team"),
        ("outcome=lost", "/outcome"),
        ("direction=sideways", "/direction"),
        ("limit=0", "/limit"),
        ("limit=100000", "/limit"),
        ("min_duration=-1", "/min_duration"),
        ("cursor=garbage!", "/cursor"),
        ("tz=Mars/Olympus", "/tz"),
    ];
    for (query, pointer) in cases {
        let reply = s.get(&format!("/api/v1/calls?{query}"), &admin).await;
        reply.expect_problem(422);
        assert_eq!(reply.pointers(), [pointer], "{query}: {}", reply.text);
    }
    s.get("/api/v1/calls?colour=red", &admin).await.expect_problem(400);
    // An export is not limited to a page's range.
    s.get("/api/v1/calls/export?from=2020-01-01&to=2026-01-01", &admin)
        .await
        .expect(200);
}

both_backends!(the_export_holds_every_matching_call_as_rfc_4180);
async fn the_export_holds_every_matching_call_as_rfc_4180(s: &TestServer) {
    let (admin, ..) = floor(s).await;
    let base = five_calls(s, &admin).await;
    let r = range(base);
    let export = s.get(&format!("/api/v1/calls/export?{r}"), &admin).await;
    export.expect(200);
    assert_eq!(export.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(
        export
            .header("content-disposition")
            .unwrap()
            .contains("monti-calls-acme.csv")
    );
    let lines: Vec<&str> = export.text.split("\r\n").collect();
    assert_eq!(
        lines.len(),
        7,
        "a header, five calls and the final line end: {}",
        export.text
    );
    assert!(lines[0].starts_with("call_id,started_at,queue,agent,"));
    assert!(lines[1].starts_with("c4,"), "{}", lines[1]);
    assert!(lines[5].starts_with("c1,") && lines[5].contains(",Sales,Ana,inbound,answered,10.0,"));
    // Times in the tenant's zone, with the offset.
    assert!(
        lines[5].contains("+01:00") || lines[5].contains("+02:00"),
        "{}",
        lines[5]
    );
    // More than a page of the API: the export pages by itself.
    let many: Vec<(i64, Value)> = (0..1_200)
        .map(|i| {
            (
                i,
                json!({ "type": "caller_leave", "queue": "Support", "call": format!("m{i}"), "reason": "abandon", "wait_s": 1.0 }),
            )
        })
        .collect();
    let later = base + Duration::minutes(40);
    for chunk in many.chunks(500) {
        send(s, &admin, later, chunk).await;
    }
    let t = |d: chrono::DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Secs, true);
    let export = s
        .get(
            &format!(
                "/api/v1/calls/export?from={}&to={}",
                t(later - Duration::seconds(5)),
                t(later + Duration::hours(1))
            ),
            &admin,
        )
        .await;
    assert_eq!(export.text.matches("\r\n").count(), 1_201);
    let audit = common::audit_actions(s, Some("acme")).await;
    assert!(audit.iter().any(|(action, _)| action == "calls.export"), "{audit:?}");
}

/// Imported CDRs complete the calls they belong to (caller, destination, disposition), and a
/// CDR no event told of is a call of its own; cells that would run as spreadsheet formulas do
/// not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_cdrs_complete_the_history() {
    let Some(s) = TestServer::start(common::Backend::Sqlite).await else {
        return;
    };
    let (admin, ..) = floor(&s).await;
    let base = five_calls(&s, &admin).await;
    let cdr = |call: &str, src: &str, dst: &str, start: chrono::DateTime<Utc>, disposition: &str| {
        let t = |d: chrono::DateTime<Utc>| d.format("%Y-%m-%d %H:%M:%S").to_string();
        let src = src.replace('"', "\"\"");
        format!(
            "\"\",\"{src}\",\"{dst}\",\"from-trunk\",\"\"\"Caller\"\" <{src}>\",\"PJSIP/trunk-0001\",\"PJSIP/1001-0002\",\"Queue\",\"sales\",\"{}\",\"{}\",\"{}\",130,120,\"{disposition}\",\"DOCUMENTATION\",\"{call}\",\"\"",
            t(start),
            t(start + Duration::seconds(10)),
            t(start + Duration::seconds(130)),
        )
    };
    let file = s.config.data_dir.join("Master.csv");
    std::fs::write(
        &file,
        [
            cdr("c1", "+4930123456", "4930999", base, "ANSWERED"),
            cdr(
                "x9",
                "=HYPERLINK(\"http://evil\")",
                "4930999",
                base + Duration::minutes(8),
                "NO ANSWER",
            ),
        ]
        .join("\n"),
    )
    .unwrap();
    let (ok, out, err) = common::monti_cli(
        &s.config.data_dir,
        &[
            "import",
            "cdr",
            file.to_str().unwrap(),
            "--tenant",
            "acme",
            "--timezone",
            "UTC",
        ],
    );
    assert!(ok, "{out}{err}");
    let r = range(base);
    let c1 = s.get("/api/v1/calls/c1", &admin).await;
    assert_eq!(c1.body["legs"][0]["caller"], "+4930123456", "{}", c1.text);
    assert_eq!(c1.body["legs"][0]["disposition"], "ANSWERED");
    assert_eq!(c1.body["records"].as_array().unwrap().len(), 1);
    let by_caller = s.get(&format!("/api/v1/calls?{r}&caller=%2B4930"), &admin).await;
    assert_eq!(ids(&by_caller), ["c1@Sales"]);
    let by_destination = s
        .get(
            &format!("/api/v1/calls?{r}&destination=4930&disposition=NO+ANSWER"),
            &admin,
        )
        .await;
    assert_eq!(ids(&by_destination), ["x9@-"]);
    let export = s.get(&format!("/api/v1/calls/export?{r}"), &admin).await;
    let x9 = export.text.lines().find(|l| l.starts_with("x9,")).unwrap().to_owned();
    assert!(
        x9.contains(",\"'=HYPERLINK(\"\"http://evil\"\")\","),
        "a formula is text: {x9}"
    );
    assert!(export.text.contains(",\"'+4930123456\","), "{}", export.text);
    s.stop().await;
}

/// In Chromium: a supervisor browses the calls, narrows them to a queue (the list and the URL
/// follow), pages, and opens one call's timeline; without an error in the console, and within
/// a laptop's width.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_browses_calls_in_the_browser() {
    let Some(s) = TestServer::start(common::Backend::Sqlite).await else {
        return;
    };
    let Some(browser) = common::browser::Browser::launch().await else {
        s.stop().await;
        return;
    };
    let (admin, _north, _ana, _ben, sales, _support) = floor(&s).await;
    let base = five_calls(&s, &admin).await;
    common::account(
        &s.store,
        "sue@acme.example",
        "correct horse battery staple",
        Some(("acme", Role::Supervisor)),
        false,
    )
    .await;
    let mut page = browser.page().await;
    page.resize(1280, 800).await;
    page.sign_in_at(
        &s.url(&format!("/calls?{}", range(base))),
        "sue@acme.example",
        "correct horse battery staple",
    )
    .await;
    let rows = "document.querySelectorAll('#calls tbody tr[data-call]').length";
    assert!(
        page.wait_for(&format!("{rows} === 5"), std::time::Duration::from_secs(10))
            .await,
        "five calls after signing in: {}",
        page.text().await
    );
    // Choosing a queue narrows the list in place and keeps the view in the URL.
    page.eval(&format!(
        "(() => {{ const s = document.querySelector('#c-queue'); s.value = '{sales}'; \
         s.dispatchEvent(new Event('change', {{ bubbles: true }})); }})()"
    ))
    .await;
    assert!(
        page.wait_for(&format!("{rows} === 3"), std::time::Duration::from_secs(10))
            .await,
        "three calls in Sales: {}",
        page.text().await
    );
    let search = page.eval("location.search").await;
    assert!(
        search.as_str().unwrap_or_default().contains(&format!("queue={sales}")),
        "{search}"
    );
    let wide = page
        .eval("document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    assert_eq!(wide, json!(true), "the list fits a laptop's window");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("calls-list.png");
    page.screenshot(&shot).await;
    // One call: where it waited, who answered, what the agent did.
    page.click("#calls tr[data-call='c1'] a").await;
    assert!(
        page.wait_for(
            "document.querySelector('#call-timeline') !== null",
            std::time::Duration::from_secs(10)
        )
        .await
    );
    let timeline = page.eval("document.querySelector('#call-timeline').innerText").await;
    let timeline = timeline.as_str().unwrap_or_default();
    for words in ["Joined the queue", "Ringing", "Answered", "Hung up", "Ana", "Sales"] {
        assert!(timeline.contains(words), "{words} in {timeline}");
    }
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("call-detail.png");
    page.screenshot(&shot).await;
    assert_eq!(page.errors().await, Vec::<String>::new());
    browser.close().await;
    s.stop().await;
}

both_backends!(events_one_by_one_in_any_order_make_the_same_row);
async fn events_one_by_one_in_any_order_make_the_same_row(s: &TestServer) {
    let (admin, ..) = floor(s).await;
    let base = Utc::now() - Duration::minutes(30);
    let story = |call: &str| {
        vec![
            (0, json!({ "type": "caller_join", "queue": "Sales", "call": call })),
            (
                12,
                json!({ "type": "caller_answer", "queue": "Sales", "call": call, "agent": "1001", "wait_s": 12.0 }),
            ),
            (
                12,
                json!({ "type": "call_start", "call": call, "agent": "1001", "queue": "Sales", "direction": "inbound" }),
            ),
            (
                100,
                json!({ "type": "call_end", "call": call, "agent": "1001", "queue": "Sales", "talk_s": 80.0, "hold_s": 8.0, "wrap_s": 15.0 }),
            ),
            // A leave for an earlier moment, as a retried batch might bring: the answer stands.
            (
                5,
                json!({ "type": "caller_leave", "queue": "Sales", "call": call, "reason": "timeout", "wait_s": 5.0 }),
            ),
        ]
    };
    // Each event its own request (so each meets the stored row), forwards and backwards.
    for event in story("forward") {
        send(s, &admin, base, std::slice::from_ref(&event)).await;
    }
    for event in story("backward").into_iter().rev() {
        send(s, &admin, base, std::slice::from_ref(&event)).await;
    }
    let row = |call: &str| {
        let admin = admin.clone();
        let call = call.to_owned();
        async move {
            let mut leg = s.get(&format!("/api/v1/calls/{call}"), &admin).await.body["legs"][0].clone();
            leg["call_id"] = json!("-");
            leg
        }
    };
    let forward = row("forward").await;
    assert_eq!(forward["outcome"], "answered", "{forward}");
    assert_eq!(forward["wait_s"].as_f64(), Some(12.0));
    assert_eq!(forward["talk_s"].as_f64(), Some(80.0));
    assert_eq!(forward["wrap_s"].as_f64(), Some(15.0));
    assert_eq!(row("backward").await, forward);
}

// Prefix filters read per number when a prefix stands for a few (a DID, a caller's number) and
// as a range when it stands for many: pages by cursor hold every matching call once, newest
// first, either way, and equal the calls filtered by hand.
both_backends!(prefix_filters_page_through_every_matching_call);
async fn prefix_filters_page_through_every_matching_call(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let tenant = monti::store::tenants::by_slug(&s.store, "acme")
        .await
        .unwrap()
        .unwrap()
        .id;
    let raw = s.raw_db().await;
    let base = (Utc::now() - Duration::hours(2)).timestamp_millis();
    // 60 calls: three DIDs 4930100..2 in turn (some in the same millisecond, where the call id
    // decides), and 40 more DIDs 4930200NN, one call each.
    // (started, call id, caller, destination)
    type Row = (i64, String, String, String);
    let mut all: Vec<Row> = Vec::new();
    for i in 0..60i64 {
        let started = base + (i / 2) * 1000;
        let destination = if i < 20 {
            format!("493010{}", i % 3)
        } else {
            format!("4930200{:02}", i - 20)
        };
        let caller = format!("+49170{}", i % 2);
        raw.execute(
            &format!(
                "INSERT INTO calls (tenant_id, call_id, queue, direction, started_at, caller, destination) \
                 VALUES ('{tenant}', 'p{i:02}', '', 'inbound', {started}, '{caller}', '{destination}')"
            ),
            &[],
        )
        .await
        .unwrap();
        all.push((started, format!("p{i:02}"), caller, destination));
    }
    let from = chrono::DateTime::from_timestamp_millis(base - 60_000).unwrap();
    let range = format!(
        "from={}&to={}",
        from.to_rfc3339_opts(SecondsFormat::Secs, true).replace('+', "%2B"),
        (Utc::now() + Duration::minutes(1))
            .to_rfc3339_opts(SecondsFormat::Secs, true)
            .replace('+', "%2B")
    );
    let every = |filter: &str| {
        let filter = filter.to_owned();
        let range = range.clone();
        let admin = admin.clone();
        async move {
            let mut seen = Vec::new();
            let mut cursor = String::new();
            for _ in 0..30 {
                let page = s
                    .get(&format!("/api/v1/calls?{range}&{filter}&limit=7{cursor}"), &admin)
                    .await;
                page.expect(200);
                seen.extend(
                    page.body["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| c["call_id"].as_str().unwrap().to_owned()),
                );
                match page.body["next_cursor"].as_str() {
                    Some(next) => cursor = format!("&cursor={next}"),
                    None => return seen,
                }
            }
            panic!("{filter}: more pages than calls");
        }
    };
    let expected = |keep: &dyn Fn(&Row) -> bool| {
        let mut rows: Vec<&Row> = all.iter().filter(|r| keep(r)).collect();
        rows.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
        rows.into_iter().map(|r| r.1.clone()).collect::<Vec<_>>()
    };
    // A DID's prefix standing for three numbers.
    let got = every("destination=49301").await;
    assert_eq!(got, expected(&|r| r.3.starts_with("49301")));
    assert_eq!(got.len(), 20);
    // One number exactly, with another filter beside it.
    let got = every("destination=4930101&caller=%2B491701").await;
    assert_eq!(got, expected(&|r| r.3 == "4930101" && r.2 == "+491701"));
    // A caller's whole number.
    let got = every("caller=%2B491700").await;
    assert_eq!(got, expected(&|r| r.2 == "+491700"));
    // A prefix standing for more numbers than are read one by one.
    let got = every("destination=4930").await;
    assert_eq!(got, expected(&|r| r.3.starts_with("4930")));
    assert_eq!(got.len(), 60);
    let got = every("destination=49302").await;
    assert_eq!(got.len(), 40);
    // A prefix no call has.
    assert!(every("destination=5555").await.is_empty());
}

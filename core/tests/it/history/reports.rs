//! Queue reports: the same figures as the live board, cells that open exactly their calls, an
//! export that is the chart's series, bad input.

use super::*;

use chrono::{Duration, Utc};
use monti::store::{SystemActor, tenants};

const VARIANTS: [&str; 5] = [
    "answered_and_abandoned",
    "answered_only",
    "abandons_within_threshold_met",
    "offered",
    "exclude_short_abandons",
];

/// The demo's floor (60 agents) with short abandons counted apart, and a simulated day from two hours before today's midnight (Berlin) until now: (admin token,
/// events sent).
async fn simulated_day(s: &TestServer) -> (String, usize) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let scope = tenants::system_scope(&s.store, "acme", SystemActor::Operator)
        .await
        .unwrap();
    let scenario = monti::demo::scenario(60, 7);
    monti::simulate::provision(&s.store, &scope, &scenario).await.unwrap();
    let queues = s.get("/api/v1/queues?limit=100", &admin).await;
    for (i, q) in queues.body["items"].as_array().unwrap().iter().enumerate() {
        s.patch(
            &format!("/api/v1/queues/{}", q["id"].as_str().unwrap()),
            &admin,
            json!({ "short_abandon_s": 5, "abandon_rate_counts_short": i % 2 == 0 }),
        )
        .await
        .expect(200);
    }
    let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let midnight = monti::service::history::day_start(Utc::now(), berlin);
    let start = midnight - Duration::hours(2);
    let now = Utc::now() - Duration::seconds(5);
    let params = monti::sim::SimParams {
        run_id: "report".into(),
        // Busier than staffed, so that callers wait, abandon and time out.
        load: 1.6,
        ..Default::default()
    };
    let mut sim = monti::sim::Simulation::new(&scenario, params, start.timestamp_millis());
    let mut events = Vec::new();
    sim.advance(now.timestamp_millis(), &mut events);
    for chunk in events.chunks(2_000) {
        let reply = s.post("/api/v1/events", &admin, json!(chunk)).await;
        reply.expect(200);
        assert_eq!(
            reply.body["rejected"],
            0,
            "{}",
            &reply.text[..reply.text.len().min(2000)]
        );
    }
    (admin, events.len())
}

fn close(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() < 1e-9,
        _ => a == b,
    }
}

both_backends!(todays_report_is_the_boards_today);
async fn todays_report_is_the_boards_today(s: &TestServer) {
    let (admin, sent) = simulated_day(s).await;
    let queues: Vec<String> = s.get("/api/v1/queues?limit=100", &admin).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap().to_owned())
        .collect();
    // With each service-level variant in turn (the counters stay; the definition changes).
    for variant in VARIANTS {
        for id in &queues {
            s.patch(
                &format!("/api/v1/queues/{id}"),
                &admin,
                json!({ "sl_variant": variant }),
            )
            .await
            .expect(200);
        }
        let board = s.get("/api/v1/live/snapshot", &admin).await;
        board.expect(200);
        let report = s.get("/api/v1/reports/queues?bucket=day", &admin).await;
        report.expect(200);
        let series = report.body["queues"].as_array().unwrap();
        assert_eq!(series.len(), queues.len(), "{}", report.text);
        let mut offered = 0;
        for q in board.body["queues"].as_array().unwrap() {
            let today = &q["today"];
            let mine = series
                .iter()
                .find(|r| r["id"] == q["id"])
                .unwrap_or_else(|| panic!("{} in the report", q["id"]));
            assert_eq!(mine["settings"]["service_level_variant"], variant);
            let total = &mine["total"];
            for key in [
                "offered",
                "answered",
                "abandoned",
                "service_level",
                "asa_s",
                "aht_s",
                "abandon_rate",
            ] {
                assert!(
                    close(&today[key], &total[key]),
                    "{variant}: {} {key}: board {} report {} ({sent} events)",
                    q["name"],
                    today[key],
                    total[key],
                );
            }
            offered += today["offered"].as_u64().unwrap();
        }
        assert!(offered > 0, "the simulated day offered calls");
    }
}

both_backends!(every_cell_opens_its_calls_and_the_export_is_the_series);
async fn every_cell_opens_its_calls_and_the_export_is_the_series(s: &TestServer) {
    let (admin, _) = simulated_day(s).await;
    let report = s.get("/api/v1/reports/queues?bucket=30m", &admin).await;
    report.expect(200);
    let mut checked = 0;
    for q in report.body["queues"].as_array().unwrap() {
        let points = q["points"].as_array().unwrap();
        let span = chrono::DateTime::parse_from_rfc3339(report.body["to"].as_str().unwrap()).unwrap()
            - chrono::DateTime::parse_from_rfc3339(report.body["from"].as_str().unwrap()).unwrap();
        assert_eq!(points.len() as i64, span.num_minutes() / 30, "today in half hours");
        for p in points.iter().filter(|p| p["offered"].as_u64() > Some(0)).take(4) {
            let calls = p["calls"].as_str().unwrap();
            let page = s.get(&format!("/api/v1/calls?{calls}&limit=500"), &admin).await;
            page.expect(200);
            let items = page.body["items"].as_array().unwrap();
            assert_eq!(
                items.len() as u64,
                p["offered"].as_u64().unwrap(),
                "{}: {calls}",
                q["name"]
            );
            let abandoned = s
                .get(&format!("/api/v1/calls?{calls}&outcome=abandoned&limit=500"), &admin)
                .await;
            assert_eq!(
                abandoned.body["items"].as_array().unwrap().len() as u64,
                p["abandoned"].as_u64().unwrap()
            );
            checked += 1;
        }
    }
    assert!(checked > 0);
    for q in report.body["queues"].as_array().unwrap() {
        // The heatmap holds every call of the range, once.
        let heat: u64 = q["heatmap"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|day| day.as_array().unwrap().iter().map(|n| n.as_u64().unwrap()))
            .sum();
        assert_eq!(heat, q["total"]["offered"].as_u64().unwrap(), "{}", q["name"]);
        // Staffing is there wherever there were calls and handling.
        for p in q["points"].as_array().unwrap() {
            if p["offered"].as_u64() > Some(0) && p["aht_s"].is_number() {
                assert!(p["agents_needed"].as_u64() >= Some(1), "{p}");
            }
        }
    }
    // The export: a line per queue and point, the same numbers.
    let export = s.get("/api/v1/reports/queues/export?bucket=30m", &admin).await;
    export.expect(200);
    let mut lines = export.text.split("\r\n").filter(|l| !l.is_empty());
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let series: Vec<(&Value, &Value)> = report.body["queues"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|q| q["points"].as_array().unwrap().iter().map(move |p| (q, p)))
        .collect();
    assert_eq!(rows.len(), series.len());
    for (row, (q, p)) in rows.iter().zip(&series) {
        assert_eq!(row[0], q["name"].as_str().unwrap());
        for (i, key) in header.iter().enumerate().skip(3) {
            let cell = row[i];
            let expected = &p[*key];
            if expected.is_null() {
                assert_eq!(cell, "", "{key}");
            } else {
                let parsed: f64 = cell.parse().unwrap_or_else(|_| panic!("{key}: {cell}"));
                // The same number; JSON is read here without correct rounding of the last bit.
                let expected = expected.as_f64().unwrap();
                assert!(
                    (parsed - expected).abs() <= expected.abs() * 1e-15,
                    "{key} of {}: {parsed} {expected}",
                    p["label"]
                );
            }
        }
    }
}

both_backends!(reports_refuse_what_they_cannot_answer);
async fn reports_refuse_what_they_cannot_answer(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let cases = [
        ("from=2026-12-02&to=2026-12-01", "/to"),
        ("from=2020-01-01&to=2026-01-01", "/to"),
        ("bucket=fortnight", "/bucket"),
        ("bucket=15m&from=2026-01-01&to=2026-03-01", "/bucket"),
        ("tz=Nowhere/Else", "/tz"),
    ];
    for (query, pointer) in cases {
        let reply = s.get(&format!("/api/v1/reports/queues?{query}"), &admin).await;
        reply.expect_problem(422);
        assert_eq!(reply.pointers(), [pointer], "{query}: {}", reply.text);
    }
    s.get("/api/v1/reports/queues?colour=red", &admin)
        .await
        .expect_problem(400);
    // Another tenant's queue is no queue here.
    let other = s.tenant("globex", Role::TenantAdmin).await;
    let theirs = s
        .post("/api/v1/queues", &other, json!({ "name": "Theirs" }))
        .await
        .expect(201)
        .id();
    s.get(&format!("/api/v1/reports/queues?queue={theirs}"), &admin)
        .await
        .expect_problem(404);
    s.get("/api/v1/reports/queues?queue=que_nope", &admin)
        .await
        .expect_problem(404);
    for role in [Role::Agent, Role::Viewer] {
        let token = s.tenant("acme", role).await;
        s.get("/api/v1/reports/queues", &token).await.expect_problem(403);
    }
}

/// In Chromium: a supervisor opens yesterday's report of a queue for a simulated day, sees the
/// chart and the table, clicks the worst half hour and gets its calls — as many as the cell
/// said — and opens one; checked at a laptop's and a wallboard's width, without console errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_drills_from_the_worst_half_hour_to_a_call() {
    let Some(s) = TestServer::start_with(common::Backend::Sqlite, super::recordings::allow_recordings).await else {
        return;
    };
    let Some(browser) = common::browser::Browser::launch().await else {
        s.stop().await;
        return;
    };
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let scope = tenants::system_scope(&s.store, "acme", SystemActor::Operator)
        .await
        .unwrap();
    let scenario = monti::demo::scenario(60, 11);
    monti::simulate::provision(&s.store, &scope, &scenario).await.unwrap();
    let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let today = monti::service::history::day_start(Utc::now(), berlin);
    let yesterday = today - Duration::hours(24);
    let params = monti::sim::SimParams {
        run_id: "yday".into(),
        load: 1.5,
        surges: monti::demo::surges(&scenario),
        ..Default::default()
    };
    let mut sim = monti::sim::Simulation::new(&scenario, params, yesterday.timestamp_millis());
    let mut events = Vec::new();
    sim.advance(today.timestamp_millis() - 1, &mut events);
    for chunk in events.chunks(5_000) {
        s.post("/api/v1/events", &admin, json!(chunk)).await.expect(200);
    }
    let queue = s.get("/api/v1/queues?limit=1&sort=name", &admin).await.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    common::account(
        &s.store,
        "sue@acme.example",
        "correct horse battery staple",
        Some(("acme", Role::Supervisor)),
        false,
    )
    .await;
    let day = yesterday.with_timezone(&berlin).format("%Y-%m-%d").to_string();
    let mut page = browser.page().await;
    page.resize(1280, 800).await;
    page.sign_in_at(
        &s.url(&format!("/reports/queues?from={day}&to={day}&bucket=30m&queue={queue}")),
        "sue@acme.example",
        "correct horse battery staple",
    )
    .await;
    let wait = std::time::Duration::from_secs(10);
    assert!(
        page.wait_for("document.querySelectorAll('.report-chart a.bar').length === 48", wait)
            .await,
        "48 half hours charted: {}",
        page.text().await
    );
    assert_eq!(
        page.eval("document.querySelectorAll('.report-table tbody tr').length")
            .await,
        json!(48)
    );
    let wide = page
        .eval("document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    assert_eq!(wide, json!(true), "the report fits a laptop's window");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-1280.png");
    page.screenshot(&shot).await;
    page.resize(3840, 2160).await;
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-3840.png");
    page.screenshot(&shot).await;
    page.resize(1280, 800).await;
    // The worst half hour: the lowest service level among those with calls.
    let worst = page
        .eval(
            "(() => { let worst = null; for (const tr of document.querySelectorAll('.report-table tbody tr')) { \
               const sl = parseFloat(tr.children[5].innerText); const offered = parseInt(tr.querySelector('a.offered').innerText); \
               if (offered > 0 && !isNaN(sl) && (worst === null || sl < worst.sl)) worst = { sl, offered, label: tr.dataset.label }; } \
               return worst; })()",
        )
        .await;
    let offered = worst["offered"].as_u64().expect("a half hour with calls");
    let label = worst["label"].as_str().unwrap().to_owned();
    page.click(&format!(".report-table tr[data-label='{label}'] a.offered"))
        .await;
    assert!(
        page.wait_for("document.querySelector('#calls-count') !== null", wait)
            .await
    );
    let count = page.eval("document.querySelector('#calls-count').innerText").await;
    assert_eq!(
        count.as_str().unwrap_or_default(),
        if offered == 1 {
            "1 call".to_owned()
        } else {
            format!("{offered} calls")
        },
        "the calls of {label}"
    );
    let rows = page
        .eval("document.querySelectorAll('#calls tbody tr[data-call]').length")
        .await;
    assert_eq!(rows.as_u64(), Some(offered.min(50)));
    // The PBX recorded the call: its file is where the tenant's pattern says.
    let call = page
        .eval("document.querySelector('#calls tbody tr[data-call]').dataset.call")
        .await;
    let call = call.as_str().expect("a call in the list").to_owned();
    let recordings = super::recordings::recordings_dir(&s.config);
    std::fs::write(recordings.join(format!("{call}.wav")), super::recordings::wav(20.0)).unwrap();
    s.put(
        "/api/v1/recordings/source",
        &admin,
        json!({ "kind": "directory", "location": recordings.display().to_string(), "pattern": "{call}.wav" }),
    )
    .await
    .expect(200);
    page.watch_network().await;
    page.click("#calls tbody tr[data-call] a").await;
    assert!(
        page.wait_for("document.querySelector('#call-timeline li') !== null", wait)
            .await
    );
    let timeline = page.eval("document.querySelector('#call-timeline').innerText").await;
    assert!(
        timeline.as_str().unwrap_or_default().contains("Joined the queue"),
        "{timeline}"
    );
    // Play it (muted: a test has no one to hear it), then seek to the middle.
    assert!(
        page.wait_for("document.querySelector('#recording-player') !== null", wait)
            .await,
        "a player on the call's page: {}",
        page.text().await
    );
    // Press its play button (muted first: a test has no one to hear it).
    page.eval("document.querySelector('#recording-player').muted = true")
        .await;
    page.press_at("#recording-player", 25.0).await;
    let known = page
        .wait_for("document.querySelector('#recording-player').duration > 19", wait)
        .await;
    assert!(
        known,
        "the player knows the recording's length: {} {:?}",
        page.eval("(() => { const p = document.querySelector('#recording-player'); return [p.currentSrc, p.networkState, p.readyState, p.error && p.error.message]; })()")
            .await,
        page.responses().await
    );
    page.eval("(() => { const p = document.querySelector('#recording-player'); p.currentTime = p.duration / 2; return true; })()")
        .await;
    assert!(
        page.wait_for(
            "(() => { const p = document.querySelector('#recording-player'); return !p.seeking && p.currentTime >= 10 && p.readyState >= 2; })()",
            wait
        )
        .await,
        "the player seeked to the middle: {}",
        page.eval("(() => { const p = document.querySelector('#recording-player'); return [p.currentTime, p.readyState, p.seeking, p.error && p.error.message]; })()")
            .await
    );
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("call-recording-1280.png");
    page.screenshot(&shot).await;
    let media: Vec<(String, u16)> = page
        .responses()
        .await
        .into_iter()
        .filter(|(url, _)| url.contains("/recordings/"))
        .collect();
    assert!(
        media.iter().any(|(_, status)| *status == 206),
        "the player asked for ranges: {media:?}"
    );
    // The report is worth a weekly email: saved from the report with its filters.
    page.goto(&s.url(&format!("/reports/queues?from={day}&to={day}&bucket=30m&queue={queue}")))
        .await;
    page.click("#report-save").await;
    assert!(
        page.wait_for("document.querySelector('#saved-report-form') !== null", wait)
            .await
    );
    page.fill("#s-name", "Yesterday in the first queue").await;
    page.eval("document.querySelector('#s-period').value = 'yesterday'; document.querySelector('#s-frequency').value = 'weekly'; true")
        .await;
    page.fill("#s-recipients", "sue@acme.example").await;
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("saved-report-1280.png");
    page.screenshot(&shot).await;
    page.click("#saved-report-form button[type=submit]").await;
    assert!(
        page.wait_for("document.querySelector('#saved-reports') !== null", wait)
            .await,
        "saved: {}",
        page.text().await
    );
    let listed = page.text().await;
    assert!(
        listed.contains("Yesterday in the first queue") && listed.contains("Mondays at 07:00"),
        "{listed}"
    );
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("saved-reports-1280.png");
    page.screenshot(&shot).await;
    let audit = common::audit_actions(&s, Some("acme")).await;
    assert!(audit.iter().any(|(a, _)| a == "recordings.play"), "{audit:?}");
    assert!(audit.iter().any(|(a, _)| a == "reports.saved.create"), "{audit:?}");
    assert_eq!(page.errors().await, Vec::<String>::new());
    browser.close().await;
    s.stop().await;
}

both_backends!(weeks_start_on_the_tenants_day);
async fn weeks_start_on_the_tenants_day(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    s.post("/api/v1/queues", &admin, json!({ "name": "Sales" }))
        .await
        .expect(201);
    let first_week = |body: &Value| {
        body["queues"][0]["points"][0]["label"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    // Wednesday 2026-12-02 to Sunday 2026-12-20.
    let range = "from=2026-12-02&to=2026-12-20&bucket=week";
    let monday = s.get(&format!("/api/v1/reports/queues?{range}"), &admin).await;
    monday.expect(200);
    assert_eq!(first_week(&monday.body), "2026-11-30");
    assert_eq!(monday.body["week_start"], "monday");
    s.patch("/api/v1/tenant", &admin, json!({ "week_start": "sunday" }))
        .await
        .expect(200);
    let sunday = s.get(&format!("/api/v1/reports/queues?{range}"), &admin).await;
    assert_eq!(first_week(&sunday.body), "2026-11-29");
    let reply = s
        .patch("/api/v1/tenant", &admin, json!({ "week_start": "friday" }))
        .await;
    reply.expect_problem(422);
    assert_eq!(reply.pointers(), ["/week_start"]);
}

both_backends!(kept_day_summaries_follow_every_change_of_their_calls);
/// Reports keep a summary per queue and day; every way a day's calls change afterwards (a late
/// call, a call whose outcome moves to another day, new queue settings) shows in the next
/// report, and a range that starts or ends inside a quarter hour counts exactly its calls.
async fn kept_day_summaries_follow_every_change_of_their_calls(s: &TestServer) {
    let (admin, _, _, _, sales, _) = floor(s).await;
    let earlier = (Utc::now() - Duration::days(2))
        .date_naive()
        .and_hms_opt(10, 0, 0)
        .unwrap()
        .and_utc();
    send(
        s,
        &admin,
        earlier,
        &[
            (0, json!({ "type": "caller_join", "queue": "Sales", "call": "k1" })),
            (
                25,
                json!({ "type": "caller_answer", "queue": "Sales", "call": "k1", "agent": "1001", "wait_s": 25.0 }),
            ),
        ],
    )
    .await;
    let day = earlier.date_naive();
    let report = |extra: String| {
        let admin = admin.clone();
        let sales = sales.clone();
        async move {
            let r = s
                .get(&format!("/api/v1/reports/queues?queue={sales}&tz=UTC&{extra}"), &admin)
                .await;
            r.expect(200);
            r.body["queues"][0]["total"].clone()
        }
    };
    let that_day = || report(format!("from={day}&to={day}&bucket=day"));
    let total = that_day().await;
    assert_eq!(
        (total["answered"].as_u64(), total["abandoned"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(total["service_level"].as_f64(), Some(0.0), "{total}");

    // A late caller who abandoned that day.
    send(
        s,
        &admin,
        earlier,
        &[(
            600,
            json!({ "type": "caller_leave", "queue": "Sales", "call": "k2", "reason": "abandon", "wait_s": 40.0 }),
        )],
    )
    .await;
    let total = that_day().await;
    assert_eq!(
        (total["offered"].as_u64(), total["abandoned"].as_u64()),
        (Some(2), Some(1)),
        "{total}"
    );

    // New settings: 25 s now within the threshold.
    s.patch(
        &format!("/api/v1/queues/{sales}"),
        &admin,
        json!({ "sl_threshold_s": 30 }),
    )
    .await
    .expect(200);
    let total = that_day().await;
    assert_eq!(total["offered"].as_u64(), Some(2), "{total}");
    assert!(total["service_level"].as_f64().unwrap() > 0.0, "{total}");

    // The answered call's outcome moves to the next day: it leaves its day's summary.
    send(
        s,
        &admin,
        earlier + Duration::days(1),
        &[(
            0,
            json!({ "type": "caller_leave", "queue": "Sales", "call": "k1", "reason": "timeout", "wait_s": 30.0 }),
        )],
    )
    .await;
    let total = that_day().await;
    assert_eq!(
        (total["offered"].as_u64(), total["answered"].as_u64()),
        (Some(1), Some(0)),
        "{total}"
    );

    // A range that ends inside a quarter hour (10:00 to 10:05) holds the abandon at 10:00:30
    // and not the one at 10:10, which share no quarter with it but would share its summary.
    let at = |m: u32| {
        day.and_hms_opt(10, m, 0)
            .unwrap()
            .and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    send(
        s,
        &admin,
        earlier,
        &[(
            30,
            json!({ "type": "caller_leave", "queue": "Sales", "call": "k3", "reason": "abandon", "wait_s": 30.0 }),
        )],
    )
    .await;
    let part = report(format!("from={}&to={}&bucket=15m", at(0), at(5))).await;
    assert_eq!(
        (part["offered"].as_u64(), part["abandoned"].as_u64()),
        (Some(1), Some(1)),
        "{part}"
    );
    let whole = report(format!("from={}&to={}&bucket=15m", at(0), at(15))).await;
    assert_eq!(
        (whole["offered"].as_u64(), whole["abandoned"].as_u64()),
        (Some(2), Some(2)),
        "{whole}"
    );
}

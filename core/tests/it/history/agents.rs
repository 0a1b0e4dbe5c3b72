//! Agent reports: time per state and pause reason, calls handled (and the calls behind them),
//! missed rings, occupancy, teams; kept days that follow late events; scopes and bad input.

use super::*;

use chrono::{Duration, NaiveTime, Utc};

/// A scripted day two days back (UTC): Ana works 08:00–12:00 with a missed ring, one call and
/// two pauses; Ben has been logged in since the day before and leaves at 09:00. Returns the
/// admin token, the day, and the ids of North, Ana, Ben.
async fn scripted_day(s: &TestServer) -> (String, chrono::NaiveDate, String, String, String) {
    let (admin, north, ana, ben, ..) = floor(s).await;
    let day = (Utc::now() - Duration::days(2)).date_naive();
    let at = |h: u32, m: u32, sec: u32| day.and_time(NaiveTime::from_hms_opt(h, m, sec).unwrap()).and_utc();
    let midnight = at(0, 0, 0);
    let o = |h: u32, m: u32, sec: u32| (at(h, m, sec) - midnight).num_seconds();
    send(
        s,
        &admin,
        midnight,
        &[
            (-17 * 3600, json!({ "type": "agent_login", "agent": "1002" })),
            // Ben's outbound call, its wrap-up never reported.
            (
                o(8, 0, 0),
                json!({ "type": "call_start", "call": "b1", "agent": "1002", "direction": "outbound" }),
            ),
            (
                o(8, 5, 0),
                json!({ "type": "call_end", "call": "b1", "agent": "1002", "talk_s": 300.0 }),
            ),
            (o(8, 0, 0), json!({ "type": "agent_login", "agent": "1001" })),
            (o(8, 10, 0), json!({ "type": "agent_state", "agent": "1001", "state": "ringing" })),
            (o(8, 10, 20), json!({ "type": "agent_state", "agent": "1001", "state": "available" })),
            (o(8, 29, 50), json!({ "type": "caller_join", "queue": "Sales", "call": "a1" })),
            (
                o(8, 30, 0),
                json!({ "type": "caller_answer", "queue": "Sales", "call": "a1", "agent": "1001", "wait_s": 10.0 }),
            ),
            (
                o(8, 35, 0),
                json!({ "type": "call_end", "call": "a1", "agent": "1001", "queue": "Sales", "talk_s": 290.0, "hold_s": 10.0, "wrap_s": 60.0 }),
            ),
            (o(8, 36, 0), json!({ "type": "agent_state", "agent": "1001", "state": "available" })),
            (
                o(9, 0, 0),
                json!({ "type": "agent_state", "agent": "1001", "state": "paused", "reason": "lunch" }),
            ),
            (o(9, 0, 0), json!({ "type": "agent_logout", "agent": "1002" })),
            (
                o(9, 30, 0),
                json!({ "type": "agent_state", "agent": "1001", "state": "paused", "reason": "coaching" }),
            ),
            (o(10, 0, 0), json!({ "type": "agent_state", "agent": "1001", "state": "available" })),
            (o(12, 0, 0), json!({ "type": "agent_logout", "agent": "1001" })),
        ],
    )
    .await;
    (admin, day, north, ana, ben)
}

fn agent<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("{id} in {report}"))
}

both_backends!(an_agents_day_in_states_pauses_and_calls);
async fn an_agents_day_in_states_pauses_and_calls(s: &TestServer) {
    let (admin, day, north, ana, ben) = scripted_day(s).await;
    let range = format!("from={day}&to={day}&tz=UTC");
    let report = s.get(&format!("/api/v1/reports/agents?{range}"), &admin).await;
    report.expect(200);
    let a = &agent(&report.body, &ana)["total"];
    assert_eq!(a["logged_in_s"], 14_400.0, "{a}");
    assert_eq!(a["states_s"]["available"], 10_420.0, "{a}");
    assert_eq!(a["states_s"]["ringing"], 20.0, "{a}");
    assert_eq!(a["states_s"]["on_queue_call"], 300.0, "{a}");
    assert_eq!(a["states_s"]["wrap_up"], 60.0, "{a}");
    assert_eq!(a["states_s"]["paused"], 3_600.0, "{a}");
    assert_eq!(a["pauses_s"]["lunch"], 1_800.0, "{a}");
    assert_eq!(a["pauses_s"]["coaching"], 1_800.0, "{a}");
    assert_eq!(a["handled"], 1, "{a}");
    assert_eq!(
        (a["talk_s"].as_f64(), a["hold_s"].as_f64(), a["wrap_s"].as_f64()),
        (Some(290.0), Some(10.0), Some(60.0))
    );
    assert_eq!(a["aht_s"], 360.0, "{a}");
    assert!(
        (a["occupancy"].as_f64().unwrap() - 360.0 / 10_780.0).abs() < 1e-12,
        "{a}"
    );
    assert_eq!(a["missed_rings"], 1, "{a}");
    // Ben stood logged in from the day before until 09:00.
    let b = &agent(&report.body, &ben)["total"];
    assert_eq!(b["logged_in_s"], 9.0 * 3600.0, "{b}");
    assert_eq!(b["handled"], 1, "{b}");
    assert_eq!(b["states_s"]["on_direct_call"], 300.0, "{b}");
    assert_eq!(
        (b["talk_s"].as_f64(), b["wrap_s"].as_f64()),
        (Some(300.0), Some(0.0)),
        "{b}"
    );

    // A week bucket covers its whole week, and the calls behind it are that week's.
    let weekly = s
        .get(&format!("/api/v1/reports/agents?{range}&bucket=week"), &admin)
        .await;
    weekly.expect(200);
    let w = &agent(&weekly.body, &ana)["total"];
    assert_eq!(w["handled"], 1, "{w}");
    let week_calls = s
        .get(&format!("/api/v1/calls?{}", w["calls"].as_str().unwrap()), &admin)
        .await;
    assert_eq!(
        week_calls.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        week_calls.text
    );
    // A range that ends at 09:00 holds what happened until then.
    let morning = s
        .get(
            &format!("/api/v1/reports/agents?from={day}&to={day}T09:00&tz=UTC"),
            &admin,
        )
        .await;
    morning.expect(200);
    let m = &agent(&morning.body, &ana)["total"];
    assert_eq!(m["logged_in_s"], 3_600.0, "{m}");

    // The calls behind "handled" are exactly that many.
    let calls = s
        .get(&format!("/api/v1/calls?{}", a["calls"].as_str().unwrap()), &admin)
        .await;
    calls.expect(200);
    assert_eq!(calls.body["items"].as_array().unwrap().len(), 1, "{}", calls.text);
    assert_eq!(calls.body["items"][0]["call_id"], "a1");

    // Teams add up their agents; a team narrows the report.
    let teams = report.body["teams"].as_array().unwrap();
    let north_total = teams.iter().find(|t| t["id"] == north).unwrap();
    assert_eq!(north_total["agents"], 1);
    assert_eq!(north_total["total"]["logged_in_s"], 14_400.0);
    let only_north = s
        .get(&format!("/api/v1/reports/agents?{range}&team={north}"), &admin)
        .await;
    only_north.expect(200);
    assert_eq!(
        only_north.body["agents"].as_array().unwrap().len(),
        1,
        "{}",
        only_north.text
    );

    // One agent by the hour: the 09:00 hour is lunch, then coaching.
    let hourly = s
        .get(&format!("/api/v1/reports/agents?{range}&agent={ana}&bucket=1h"), &admin)
        .await;
    hourly.expect(200);
    let points = agent(&hourly.body, &ana)["points"].as_array().unwrap().clone();
    assert_eq!(points.len(), 24);
    assert_eq!(points[8]["logged_in_s"], 3_600.0, "{}", points[8]);
    assert_eq!(points[8]["missed_rings"], 1);
    assert_eq!(points[9]["pauses_s"]["lunch"], 1_800.0, "{}", points[9]);
    assert_eq!(points[9]["pauses_s"]["coaching"], 1_800.0, "{}", points[9]);
    let summed: f64 = points.iter().map(|p| p["logged_in_s"].as_f64().unwrap()).sum();
    assert_eq!(summed, 14_400.0, "the hours add up to the day");

    // A late event about that day: the kept day follows.
    send(
        s,
        &admin,
        day.and_time(NaiveTime::from_hms_opt(11, 0, 0).unwrap()).and_utc(),
        &[
            (
                0,
                json!({ "type": "agent_state", "agent": "1001", "state": "paused", "reason": "break" }),
            ),
            (
                900,
                json!({ "type": "agent_state", "agent": "1001", "state": "available" }),
            ),
        ],
    )
    .await;
    let again = s.get(&format!("/api/v1/reports/agents?{range}"), &admin).await;
    let a = &agent(&again.body, &ana)["total"];
    assert_eq!(a["pauses_s"]["break"], 900.0, "{a}");
    assert_eq!(a["states_s"]["available"], 10_420.0 - 900.0, "{a}");
    assert_eq!(a["logged_in_s"], 14_400.0, "{a}");

    // The CSV holds the same numbers.
    let csv = s.get(&format!("/api/v1/reports/agents/export?{range}"), &admin).await;
    csv.expect(200);
    let line = csv.text.lines().find(|l| l.starts_with("Ana,")).expect("Ana's line");
    assert!(line.contains(",14400,"), "{line}");
    assert!(line.contains("break=900"), "{line}");
}

both_backends!(agent_reports_are_scoped_and_refuse_what_they_cannot_answer);
async fn agent_reports_are_scoped_and_refuse_what_they_cannot_answer(s: &TestServer) {
    let (admin, day, north, ana, ben) = scripted_day(s).await;
    let range = format!("from={day}&to={day}&tz=UTC");
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
    let mine = s.get(&format!("/api/v1/reports/agents?{range}"), &scoped).await;
    mine.expect(200);
    let ids: Vec<&str> = mine.body["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![ana.as_str()]);
    s.get(&format!("/api/v1/reports/agents?{range}&agent={ben}"), &scoped)
        .await
        .expect_problem(404);
    let other = s.tenant("globex", Role::TenantAdmin).await;
    let theirs = s.get(&format!("/api/v1/reports/agents?{range}"), &other).await;
    theirs.expect(200);
    assert!(theirs.body["agents"].as_array().unwrap().is_empty(), "{}", theirs.text);
    s.get(&format!("/api/v1/reports/agents?{range}&agent={ana}"), &other)
        .await
        .expect_problem(404);
    for (query, field) in [
        (format!("{range}&bucket=15m"), "bucket"),
        (format!("{range}&bucket=fortnight"), "bucket"),
        (format!("from={day}&to=2000-01-01&tz=UTC"), "to"),
        (format!("from={day}&to={day}&tz=Mars/Olympus"), "tz"),
    ] {
        let reply = s.get(&format!("/api/v1/reports/agents?{query}"), &admin).await;
        reply.expect_problem(422);
        assert!(
            reply.pointers().iter().any(|p| p.contains(field)),
            "{query}: {}",
            reply.text
        );
    }
    s.get(&format!("/api/v1/reports/agents?{range}&team=nope"), &admin)
        .await
        .expect_problem(404);
    s.get(&format!("/api/v1/reports/agents?{range}&colour=red"), &admin)
        .await
        .expect_problem(400);
    let agent_token = s.tenant("acme", Role::Agent).await;
    s.get(&format!("/api/v1/reports/agents?{range}"), &agent_token)
        .await
        .expect_problem(403);
}

// The last month is made ahead in the background: after a pass, every day of it is kept for
// the tenant's time zone and every queue, and the first report reads them as they are.
both_backends!(report_days_are_made_ahead);
async fn report_days_are_made_ahead(s: &TestServer) {
    let (admin, day, _north, ana, _ben) = scripted_day(s).await;
    let days = monti::config::ReportsConfig::default().days_ahead;
    let ahead = monti::service::report_days::ReportDays::new(s.store.clone(), s.app.live.clone(), days);
    assert_eq!(ahead.make_all().await.unwrap(), 1);
    let raw = s.raw_db().await;
    let kept = |sql: &'static str| {
        let raw = &raw;
        async move { raw.text(sql).await.unwrap_or_default().parse::<i64>().unwrap() }
    };
    let agent_days = kept("SELECT CAST(COUNT(*) AS TEXT) FROM agent_report_days WHERE tz = 'Europe/Berlin'").await;
    assert_eq!(agent_days, i64::from(days), "every day of the month");
    let queue_days = kept("SELECT CAST(COUNT(DISTINCT day) AS TEXT) FROM report_days").await;
    assert!(queue_days >= i64::from(days), "{queue_days}");
    let summaries = raw
        .text("SELECT MAX(summary) FROM agent_report_days")
        .await
        .unwrap_or_default();
    let made = kept("SELECT CAST(COUNT(*) AS TEXT) FROM agent_report_days").await;
    // The report over the scripted day reads the kept day: nothing new is made.
    let report = s
        .get(&format!("/api/v1/reports/agents?from={day}&to={day}"), &admin)
        .await;
    report.expect(200);
    assert!(
        agent(&report.body, &ana)["total"]["handled"].as_u64() == Some(1),
        "{}",
        report.text
    );
    assert_eq!(kept("SELECT CAST(COUNT(*) AS TEXT) FROM agent_report_days").await, made);
    assert_eq!(
        raw.text("SELECT MAX(summary) FROM agent_report_days")
            .await
            .unwrap_or_default(),
        summaries
    );
}

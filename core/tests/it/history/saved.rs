//! Saved and scheduled reports: kept, checked and scoped like the reports they name; emailed
//! through a real SMTP server with the report's CSV attached, equal to its export.

use super::*;

use chrono::{Duration, Utc};
use common::smtp::SmtpServer;
use mail_parser::MimeHeaders as _;
use monti::service::saved_reports::Scheduler;

/// A token of `role` limited to `teams`, issued by `admin`.
async fn token(s: &TestServer, admin: &str, name: &str, role: &str, teams: &[&str]) -> (String, String) {
    let reply = s
        .post(
            "/api/v1/tokens",
            admin,
            json!({ "name": name, "role": role, "team_scope": teams }),
        )
        .await;
    reply.expect(201);
    (
        reply.body["secret"].as_str().unwrap().to_owned(),
        reply.body["token"]["id"]
            .as_str()
            .or(reply.body["id"].as_str())
            .unwrap_or_default()
            .to_owned(),
    )
}

both_backends!(saved_reports_are_kept_checked_and_scoped);
async fn saved_reports_are_kept_checked_and_scoped(s: &TestServer) {
    let (admin, north, _ana, _ben, sales, _support) = floor(s).await;
    let created = s
        .post(
            "/api/v1/reports/saved",
            &admin,
            json!({
                "name": "Sales yesterday", "kind": "queues", "period": "yesterday",
                "params": { "queue": sales, "bucket": "30m" },
                "schedule": { "frequency": "weekly", "weekday": "monday", "time": "07:30",
                              "recipients": ["ops@example.com", " OPS@example.com ", "lead@example.com"] },
            }),
        )
        .await;
    created.expect(201);
    let id = created.id();
    assert_eq!(created.header("etag"), Some("\"1\""));
    let yesterday = (Utc::now().with_timezone(&chrono_tz::Europe::Berlin).date_naive() - Duration::days(1)).to_string();
    let query = created.body["query"].as_str().unwrap();
    assert!(
        query.contains(&format!("from={yesterday}")) && query.contains(&format!("to={yesterday}")),
        "{query}"
    );
    assert!(query.contains(&format!("queue={sales}")), "{query}");
    assert_eq!(
        created.body["schedule"]["recipients"],
        json!(["ops@example.com", "lead@example.com"]),
        "one address once"
    );
    // The next Monday at 07:30 in Berlin, in the future.
    let next: chrono::DateTime<Utc> = created.body["next_run_at"].as_str().unwrap().parse().unwrap();
    let local = next.with_timezone(&chrono_tz::Europe::Berlin);
    assert!(next > Utc::now() && next - Utc::now() <= Duration::days(7), "{next}");
    assert_eq!((local.format("%A %H:%M").to_string()), "Monday 07:30".to_owned());
    // What the saved query gives is the report itself.
    s.get(&format!("/api/v1/reports/queues?{query}"), &admin)
        .await
        .expect(200);

    // Bad input, each on its field.
    let base = json!({ "name": "x", "kind": "queues", "period": "today" });
    let with = |patch: Value| {
        let mut body = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (body, pointer) in [
        (with(json!({ "period": "fortnight" })), "/period"),
        (with(json!({ "kind": "calls" })), "/kind"),
        (with(json!({ "name": " " })), "/name"),
        (with(json!({ "params": { "queue": "nope" } })), "/params/queue"),
        (with(json!({ "params": { "team": north } })), "/params/team"),
        (with(json!({ "params": { "bucket": "5m" } })), "/params/bucket"),
        (with(json!({ "params": { "tz": "Mars/Olympus" } })), "/params/tz"),
        (with(json!({ "period": "custom" })), "/from"),
        (with(json!({ "from": "2026-01-01", "to": "2026-01-02" })), "/from"),
        (
            with(json!({ "period": "custom", "from": "2026-02-01", "to": "2026-01-01" })),
            "/to",
        ),
        (
            with(json!({ "schedule": { "frequency": "daily", "time": "07:00", "recipients": [] } })),
            "/schedule/recipients",
        ),
        (
            with(json!({ "schedule": { "frequency": "daily", "time": "25:00", "recipients": ["a@example.com"] } })),
            "/schedule/time",
        ),
        (
            with(json!({ "schedule": { "frequency": "hourly", "time": "07:00", "recipients": ["a@example.com"] } })),
            "/schedule/frequency",
        ),
        (
            with(json!({ "schedule": { "frequency": "weekly", "time": "07:00", "recipients": ["a@example.com"] } })),
            "/schedule/weekday",
        ),
        (
            with(
                json!({ "schedule": { "frequency": "daily", "time": "07:00", "recipients": ["a@example.com, b@example.com"] } }),
            ),
            "/schedule/recipients",
        ),
        (
            with(json!({ "schedule": { "frequency": "daily", "time": "07:00",
                "recipients": (0..21).map(|n| format!("p{n}@example.com")).collect::<Vec<_>>() } })),
            "/schedule/recipients",
        ),
    ] {
        let reply = s.post("/api/v1/reports/saved", &admin, body.clone()).await;
        reply.expect_problem(422);
        assert!(reply.pointers().contains(&pointer.to_owned()), "{body}: {}", reply.text);
    }
    let unknown = s
        .post("/api/v1/reports/saved", &admin, with(json!({ "surprise": 1 })))
        .await;
    unknown.expect_problem(422);
    assert!(unknown.pointers().contains(&"/surprise".to_owned()), "{}", unknown.text);
    let taken = s
        .post(
            "/api/v1/reports/saved",
            &admin,
            with(json!({ "name": "Sales yesterday" })),
        )
        .await;
    taken.expect_problem(409);

    // Another tenant sees none of it.
    let other = s.tenant("globex", Role::TenantAdmin).await;
    let theirs = s.get("/api/v1/reports/saved", &other).await;
    theirs.expect(200);
    assert_eq!(theirs.body["items"], json!([]));
    let path = format!("/api/v1/reports/saved/{id}");
    s.get(&path, &other).await.expect_problem(404);
    s.put(&path, &other, with(json!({ "name": "mine" })))
        .await
        .expect_problem(404);
    s.post(&format!("{path}/send"), &other, json!({}))
        .await
        .expect_problem(404);
    s.get(&format!("{path}/mail"), &other).await.expect_problem(404);
    s.delete(&path, &other).await.expect_problem(404);
    // Its queue is no parameter for another tenant's report.
    let reply = s
        .post(
            "/api/v1/reports/saved",
            &other,
            with(json!({ "params": { "queue": sales } })),
        )
        .await;
    reply.expect_problem(422);
    assert!(reply.pointers().contains(&"/params/queue".to_owned()), "{}", reply.text);

    // A supervisor sees the tenant's list, changes only their own; a viewer sees none.
    let (supervisor, _) = token(s, &admin, "north", "supervisor", &[&north]).await;
    let listed = s.get("/api/v1/reports/saved", &supervisor).await;
    listed.expect(200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    s.put(&path, &supervisor, with(json!({ "name": "taken over" })))
        .await
        .expect_problem(403);
    s.delete(&path, &supervisor).await.expect_problem(403);
    s.post(&format!("{path}/send"), &supervisor, json!({}))
        .await
        .expect_problem(403);
    let own = s
        .post(
            "/api/v1/reports/saved",
            &supervisor,
            json!({ "name": "North week", "kind": "agents", "period": "this_week", "params": { "team": north } }),
        )
        .await;
    own.expect(201);
    let own_path = format!("/api/v1/reports/saved/{}", own.id());
    let renamed = s
        .put(
            &own_path,
            &supervisor,
            json!({ "name": "North, this week", "kind": "agents", "period": "this_week", "params": { "team": north } }),
        )
        .await;
    renamed.expect(200);
    assert_eq!(renamed.body["version"], json!(2));
    assert_eq!(renamed.body["next_run_at"], Value::Null, "not scheduled");
    let (viewer, _) = token(s, &admin, "wall", "viewer", &[]).await;
    s.get("/api/v1/reports/saved", &viewer).await.expect_problem(403);

    // A stale change is refused; the admin may change and delete anyone's.
    let stale = s
        .call(
            reqwest::Method::PUT,
            &own_path,
            &admin,
            Some(json!({ "name": "stale", "kind": "agents", "period": "today" })),
        )
        .await;
    stale.expect(200);
    let refused = s
        .client
        .put(s.url(&own_path))
        .bearer_auth(&admin)
        .header("if-match", "\"2\"")
        .json(&json!({ "name": "late", "kind": "agents", "period": "today" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 412);
    s.delete(&own_path, &admin).await.expect(204);

    // Due on either backend: two instances make it once, its emails wait in the outbox (no
    // mail server here), and it moves on to next Monday. An edit of a report that is due
    // keeps it due.
    let raw = s.raw_db().await;
    raw.execute(
        &format!("UPDATE saved_reports SET next_run_at = 1 WHERE id = '{id}'"),
        &[],
    )
    .await
    .unwrap();
    let kept = s
        .put(
            &path,
            &admin,
            json!({
                "name": "Sales, yesterday", "kind": "queues", "period": "yesterday",
                "params": { "queue": sales, "bucket": "30m" },
                "schedule": { "frequency": "weekly", "weekday": "monday", "time": "07:30",
                              "recipients": ["ops@example.com", "lead@example.com"] },
            }),
        )
        .await;
    kept.expect(200);
    assert_eq!(kept.body["next_run_at"], json!("1970-01-01T00:00:00.001Z"), "still due");
    let url = s.config.public_url();
    let one = Scheduler::new(s.store.clone(), s.app.live.clone(), url.clone());
    let two = Scheduler::new(s.store.clone(), s.app.live.clone(), url);
    let (a, b) = tokio::join!(one.run_due(), two.run_due());
    assert!(a.unwrap() + b.unwrap() <= 1);
    let mail = s.get(&format!("{path}/mail"), &admin).await;
    mail.expect(200);
    let mut to: Vec<&str> = mail.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["recipient"].as_str().unwrap())
        .collect();
    to.sort();
    assert_eq!(to, vec!["lead@example.com", "ops@example.com"], "{}", mail.text);
    let after = s.get(&path, &admin).await;
    let next: chrono::DateTime<Utc> = after.body["next_run_at"].as_str().unwrap().parse().unwrap();
    assert!(
        next > Utc::now() && next - Utc::now() <= Duration::days(7),
        "{}",
        after.text
    );
    assert_eq!(after.body["last_error"], Value::Null, "{}", after.text);
    s.get(&own_path, &admin).await.expect_problem(404);
    let actions: Vec<String> = common::audit_actions(s, Some("acme"))
        .await
        .into_iter()
        .map(|(action, _)| action)
        .collect();
    for action in ["reports.saved.create", "reports.saved.update", "reports.saved.delete"] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
}

/// Parses what the SMTP server received: (subject, text body, attachment name, attachment).
fn parsed(message: &Value) -> (String, String, String, String) {
    let raw = message["data"].as_str().unwrap_or_default();
    let mail = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .expect("a MIME message");
    let attachment = mail.attachment(0).expect("an attachment");
    (
        mail.subject().unwrap_or_default().to_owned(),
        mail.body_text(0).unwrap_or_default().into_owned(),
        attachment.attachment_name().unwrap_or_default().to_owned(),
        String::from_utf8(attachment.contents().to_vec()).unwrap(),
    )
}

async fn received(smtp: &SmtpServer, count: usize) -> Vec<Value> {
    for _ in 0..150 {
        let got = smtp.received();
        if got.len() >= count {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{count} emails expected, got {}", smtp.received().len());
}

/// Sent now and on schedule: a scoped supervisor's agent report reaches both recipients with
/// their team's figures in the body and the CSV equal to the export; when its owner can no
/// longer read reports, the schedule sends nothing and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_report_is_emailed_with_its_csv_as_its_owner_sees_it() {
    let Some(smtp) = SmtpServer::start(false).await else {
        return;
    };
    let s = TestServer::start_with(common::Backend::Sqlite, |c| common::smtp::mail_through(c, smtp.port))
        .await
        .unwrap();
    let (admin, north, ..) = floor(&s).await;
    let day = (Utc::now() - Duration::days(2)).date_naive();
    let base = day.and_hms_opt(0, 0, 0).unwrap().and_utc();
    send(
        &s,
        &admin,
        base,
        &[
            (8 * 3600, json!({ "type": "agent_login", "agent": "1001" })),
            (8 * 3600, json!({ "type": "agent_login", "agent": "1002" })),
            (
                9 * 3600,
                json!({ "type": "caller_join", "queue": "Sales", "call": "m1" }),
            ),
            (
                9 * 3600 + 5,
                json!({ "type": "caller_answer", "queue": "Sales", "call": "m1", "agent": "1001", "wait_s": 5.0 }),
            ),
            (
                9 * 3600 + 305,
                json!({ "type": "call_end", "call": "m1", "agent": "1001", "queue": "Sales", "talk_s": 300.0 }),
            ),
            (12 * 3600, json!({ "type": "agent_logout", "agent": "1001" })),
            (12 * 3600, json!({ "type": "agent_logout", "agent": "1002" })),
        ],
    )
    .await;
    let (supervisor, token_id) = token(&s, &admin, "north lead", "supervisor", &[&north]).await;
    let created = s
        .post(
            "/api/v1/reports/saved",
            &supervisor,
            json!({
                "name": "North day", "kind": "agents", "period": "custom", "from": day.to_string(), "to": day.to_string(),
                "params": { "tz": "UTC" },
                "schedule": { "frequency": "daily", "time": "06:00", "recipients": ["ops@example.com", "lead@example.com"] },
            }),
        )
        .await;
    created.expect(201);
    let id = created.id();
    let query = created.body["query"].as_str().unwrap().to_owned();
    let sent = s
        .post(&format!("/api/v1/reports/saved/{id}/send"), &supervisor, json!({}))
        .await;
    sent.expect(202);
    assert_eq!(sent.body["queued"], json!(2));
    // Pressing it again at once does not mail everyone again.
    s.post(&format!("/api/v1/reports/saved/{id}/send"), &supervisor, json!({}))
        .await
        .expect_problem(403);
    let mails = received(&smtp, 2).await;
    let export = s
        .client
        .get(s.url(&format!("/api/v1/reports/agents/export?{query}")))
        .bearer_auth(&supervisor)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut to: Vec<String> = Vec::new();
    for mail in &mails {
        to.extend(
            mail["to"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_owned()),
        );
        let (subject, body, name, csv) = parsed(mail);
        assert!(
            subject.contains("North day") && subject.contains(&day.to_string()),
            "{subject}"
        );
        assert!(body.contains("Ana"), "the team's agent: {body}");
        assert!(!body.contains("Ben"), "not another team's: {body}");
        assert!(body.contains(&format!("/reports/agents?{}", query)), "{body}");
        assert!(name.ends_with(".csv"), "{name}");
        assert_eq!(csv, export, "the attachment is the export");
        assert!(csv.contains("Ana") && !csv.contains("Ben"), "{csv}");
    }
    to.sort();
    assert_eq!(to, vec!["lead@example.com", "ops@example.com"]);
    let outbox = s.get(&format!("/api/v1/reports/saved/{id}/mail"), &supervisor).await;
    outbox.expect(200);
    for _ in 0..50 {
        let states: Vec<Value> = s
            .get(&format!("/api/v1/reports/saved/{id}/mail"), &supervisor)
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["state"].clone())
            .collect();
        if states == vec![json!("sent"), json!("sent")] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let states = s.get(&format!("/api/v1/reports/saved/{id}/mail"), &supervisor).await;
    assert!(
        states.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "sent"),
        "{}",
        states.text
    );

    // Due: the scheduler sends it once, however many instances look, and moves it on a day.
    let raw = s.raw_db().await;
    raw.execute("UPDATE saved_reports SET next_run_at = 1 WHERE id = ?", &[&id])
        .await
        .unwrap();
    let url = s.config.public_url();
    let one = Scheduler::new(s.store.clone(), s.app.live.clone(), url.clone());
    let two = Scheduler::new(s.store.clone(), s.app.live.clone(), url);
    let (a, b) = tokio::join!(one.run_due(), two.run_due());
    // The server's own scheduler may have taken it first: one run in all, whoever made it.
    assert!(a.unwrap() + b.unwrap() <= 1, "one run between instances");
    received(&smtp, 4).await;
    let after = s.get(&format!("/api/v1/reports/saved/{id}"), &supervisor).await;
    let next: chrono::DateTime<Utc> = after.body["next_run_at"].as_str().unwrap().parse().unwrap();
    assert!(
        next > Utc::now() && next - Utc::now() <= Duration::days(1),
        "{}",
        after.text
    );
    assert_eq!(after.body["last_error"], Value::Null);
    assert!(after.body["last_run_at"].is_string());

    // The owner's token is revoked: the next run sends nothing and the report says why.
    s.delete(&format!("/api/v1/tokens/{token_id}"), &admin)
        .await
        .expect(204);
    raw.execute("UPDATE saved_reports SET next_run_at = 1 WHERE id = ?", &[&id])
        .await
        .unwrap();
    assert_eq!(one.run_due().await.unwrap(), 0);
    let failed = s.get(&format!("/api/v1/reports/saved/{id}"), &admin).await;
    assert!(
        failed.body["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("can no longer read reports"),
        "{}",
        failed.text
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(smtp.received().len(), 4, "nothing more was sent");
    s.stop().await;
}

/// A mail server that refuses: the email waits for its retry with the server's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_report_email_is_retried_with_the_reason() {
    let Some(smtp) = SmtpServer::start(true).await else {
        return;
    };
    let s = TestServer::start_with(common::Backend::Sqlite, |c| common::smtp::mail_through(c, smtp.port))
        .await
        .unwrap();
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let created = s
        .post(
            "/api/v1/reports/saved",
            &admin,
            json!({ "name": "Today", "kind": "queues", "period": "today",
                    "schedule": { "frequency": "daily", "time": "18:00", "recipients": ["ops@example.com"] } }),
        )
        .await;
    created.expect(201);
    let id = created.id();
    s.post(&format!("/api/v1/reports/saved/{id}/send"), &admin, json!({}))
        .await
        .expect(202);
    let mut last = Value::Null;
    for _ in 0..100 {
        last = s.get(&format!("/api/v1/reports/saved/{id}/mail"), &admin).await.body["items"][0].clone();
        if last["attempts"].as_i64().unwrap_or(0) >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(last["state"], json!("pending"), "{last}");
    assert_eq!(last["attempts"], json!(1), "{last}");
    assert!(
        last["last_error"].as_str().unwrap_or_default().contains("451"),
        "{last}"
    );
    s.stop().await;
}

// The pages, as a supervisor uses them without JavaScript: from a report to a new saved
// report with its filters, a refused form shown again with the reasons beside the fields,
// saved, listed, changed, sent and deleted.
both_backends!(saved_reports_through_the_pages);
async fn saved_reports_through_the_pages(s: &TestServer) {
    let (_admin, _north, _ana, _ben, sales, _support) = floor(s).await;
    let mut v =
        common::signed_in_member(s, "lead@example.com", "correct horse battery", "acme", Role::Supervisor).await;
    let report = v.get(&format!("/reports/queues?queue={sales}&bucket=1h")).await;
    assert_eq!(report.status, 200);
    assert!(report.body.contains("id=\"report-save\""), "the report offers saving");
    let form = v
        .get(&format!(
            "/reports/saved/new?kind=queues&queue={sales}&bucket=1h&from=2026-11-02T00:00&to=2026-11-08T00:00"
        ))
        .await;
    assert_eq!(form.status, 200);
    assert!(
        form.body.contains(&format!("<option value=\"{sales}\" selected>")),
        "{}",
        form.body
    );
    assert!(form.body.contains("value=\"2026-11-02\""), "the custom dates are kept");
    assert!(
        form.body.contains("value=\"2026-11-07\""),
        "a range ending at midnight ends the day before"
    );
    let mut fields = vec![
        ("kind", "queues"),
        ("name", "Sales weekly"),
        ("queue", sales.as_str()),
        ("bucket", "1h"),
        ("period", "last_week"),
        ("from", "2026-11-02"),
        ("to", ""),
        ("frequency", "weekly"),
        ("weekday", "friday"),
        ("time", "7 o'clock"),
        ("recipients", "ops@example.com\nnot an address"),
    ];
    let refused = v.post("/reports/saved", &fields).await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("id=\"e-time\""), "{}", refused.body);
    assert!(refused.body.contains("id=\"e-recipients\""), "{}", refused.body);
    assert!(
        refused.body.contains("value=\"Sales weekly\""),
        "what was typed is kept"
    );
    fields[9] = ("time", "07:15");
    fields[10] = ("recipients", "ops@example.com\nlead@example.com");
    let saved = v.post("/reports/saved", &fields).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let list = v.get("/reports/saved").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body.contains("Sales weekly") && list.body.contains("Fridays at 07:15"),
        "{}",
        list.body
    );
    let id = list
        .body
        .split("data-saved-report=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let edit = v.get(&format!("/reports/saved/{id}")).await;
    assert_eq!(edit.status, 200);
    assert!(edit.body.contains("ops@example.com\nlead@example.com"), "{}", edit.body);
    let version = edit
        .body
        .split("name=\"version\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    fields[1] = ("name", "Sales, every Friday");
    let mut changed_fields = fields.clone();
    changed_fields.push(("version", version.as_str()));
    let changed = v.post(&format!("/reports/saved/{id}"), &changed_fields).await;
    assert_eq!(changed.status, 303, "{}", changed.body);
    // No mail server here: sending queues the emails, which wait with the reason.
    let sent = v.post(&format!("/reports/saved/{id}/send"), &[]).await;
    assert_eq!(sent.status, 303);
    let list = v.get(sent.location.as_deref().unwrap()).await;
    assert!(list.body.contains("id=\"sent-notice\""));
    let mut shown = String::new();
    for _ in 0..50 {
        shown = v.get(&format!("/reports/saved/{id}")).await.body;
        if shown.contains("no SMTP server is configured") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        shown.contains("id=\"saved-report-mail\"") && shown.contains("no SMTP server is configured"),
        "{shown}"
    );
    let deleted = v.post(&format!("/reports/saved/{id}/delete"), &[]).await;
    assert_eq!(deleted.status, 303);
    assert!(v.get("/reports/saved").await.body.contains("id=\"no-saved-reports\""));
}

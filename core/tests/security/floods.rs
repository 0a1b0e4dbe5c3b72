//! Floods and probes that cost the server more than they should: event bodies read whole before
//! they are counted, query strings with thousands of filters, made-up ids on admin pages, and a
//! `/metrics` that anyone may read with tenants' words in its labels.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use monti::domain::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Backend, TestServer, Visitor, account};

const PASSWORD: &str = "correct horse battery staple";

// --- event ingest bodies ------------------------------------------------------------------

/// What a server answered to a body sent a chunk at a time.
#[derive(Debug)]
struct SlowPost {
    status: u16,
    body: String,
    /// Chunks written before the answer arrived.
    chunks_sent: usize,
}

/// Whether `got` holds a whole HTTP response (headers and a `Content-Length` body).
fn response_complete(got: &[u8]) -> bool {
    let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    got.len() >= end + 4 + length
}

/// POSTs `chunks` copies of `chunk` to `path` over a plain connection, one every 5 ms, and
/// stops sending as soon as any answer arrives.
async fn post_slowly(
    server: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
    chunk: &[u8],
    chunks: usize,
) -> SlowPost {
    let addr = server.config.listen;
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        chunk.len() * chunks
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes()).await.expect("send the head");
    let answered = Arc::new(AtomicBool::new(false));
    let reading = {
        let answered = answered.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        got.extend_from_slice(&buf[..n]);
                        answered.store(true, Ordering::SeqCst);
                        if response_complete(&got) {
                            break;
                        }
                    }
                }
            }
            got
        })
    };
    let mut chunks_sent = 0;
    while chunks_sent < chunks && !answered.load(Ordering::SeqCst) {
        // A server that stopped reading and closed makes writes fail: the answer is what counts.
        if writer.write_all(chunk).await.is_err() {
            break;
        }
        chunks_sent += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let got = tokio::time::timeout(Duration::from_secs(60), reading)
        .await
        .expect("an answer within a minute")
        .expect("the reader");
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer after {chunks_sent} chunks: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    SlowPost {
        status,
        body,
        chunks_sent,
    }
}

/// Chunks a server that waits for the whole body would read before answering; one that
/// answers early is done within a few, with ample margin for a busy machine.
const WHOLE_BODY: usize = 256;
const EARLY: usize = WHOLE_BODY / 4;

/// 64 KiB less one byte of `{}` lines: 16 MiB is [`WHOLE_BODY`] of them.
fn empty_event_lines() -> Vec<u8> {
    b"{}\n".repeat(21_845)
}

/// 16 MiB of empty NDJSON events are refused with 413 once the 10,001st arrives, while the
/// rest is still being sent: the server counts as it reads and never holds the whole body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_floods_are_refused_while_they_arrive() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", Role::TenantAdmin).await;
    let bearer = format!("Bearer {admin}");
    let chunk = empty_event_lines();
    let lines = post_slowly(
        &server,
        "/api/v1/events",
        &[("Authorization", &bearer), ("Content-Type", "application/x-ndjson")],
        &chunk,
        WHOLE_BODY,
    )
    .await;
    assert_eq!(lines.status, 413, "{lines:?}");
    let problem: Value = serde_json::from_str(&lines.body).expect("problem JSON");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("at most 10000 events"),
        "{problem}"
    );
    // 10,001 lines are 30 KB: the answer comes within the first few chunks.
    assert!(
        lines.chunks_sent <= EARLY,
        "answered after {} chunks of 64 KiB",
        lines.chunks_sent
    );

    // The same as a JSON array, counted element by element.
    let mut first = b"[".to_vec();
    first.extend(b"{},".repeat(21_845));
    let rest = b"{},".repeat(21_845);
    let array = post_slowly(
        &server,
        "/api/v1/events",
        &[("Authorization", &bearer), ("Content-Type", "application/json")],
        &[first, rest.repeat(15)].concat(),
        1,
    )
    .await;
    assert_eq!(array.status, 413, "{array:?}");

    // One endless line is refused once it passes the longest event, not at the end.
    let endless = post_slowly(
        &server,
        "/api/v1/events",
        &[("Authorization", &bearer), ("Content-Type", "application/x-ndjson")],
        &[b' '; 65_535],
        WHOLE_BODY,
    )
    .await;
    assert_eq!(endless.status, 413, "{endless:?}");
    assert!(
        endless.chunks_sent <= EARLY,
        "answered after {} chunks",
        endless.chunks_sent
    );

    // Below the limits a batch is still taken whole, in both formats.
    let at = chrono::Utc::now().to_rfc3339();
    let event = |id: &str| json!({ "id": id, "source": "pbx", "at": at, "type": "agent_login", "agent": "1001" });
    let ndjson = format!("{}\r\n\n{}", event("a"), event("b"));
    let reply = server
        .client
        .post(server.url("/api/v1/events"))
        .bearer_auth(&admin)
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let reply: Value = reply.json().await.unwrap();
    assert_eq!(reply["results"].as_array().map(Vec::len), Some(2), "{reply}");
    let reply = server
        .post(
            "/api/v1/events",
            &admin,
            json!([event("c"), { "id": "d, with [brackets] and \"quotes\"", "nested": { "a": [1, 2] } }]),
        )
        .await;
    reply.expect(200);
    assert_eq!(reply.body["results"][1]["id"], "d, with [brackets] and \"quotes\"");
    assert_eq!(reply.body["results"][1]["status"], "rejected");
    for (broken, why) in [
        ("[{}", "not closed"),
        ("{}", "`[`"),
        ("[{},]", "missing"),
        ("[{}] x", "trailing"),
    ] {
        let reply = server
            .client
            .post(server.url("/api/v1/events"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(broken)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 400, "{broken}");
        let problem: Value = reply.json().await.unwrap();
        assert!(problem["detail"].as_str().unwrap().contains(why), "{broken}: {problem}");
    }
    server.stop().await;
}

/// A caller without a valid token, or without the right to send events, is refused before any
/// of a large body is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_refuses_callers_before_reading_their_body() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let viewer = server.tenant("acme", Role::Viewer).await;
    let chunk = empty_event_lines();
    let anonymous = post_slowly(
        &server,
        "/api/v1/events",
        &[("Content-Type", "application/x-ndjson")],
        &chunk,
        WHOLE_BODY,
    )
    .await;
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert!(
        anonymous.chunks_sent <= EARLY,
        "answered after {} chunks",
        anonymous.chunks_sent
    );
    let forged = post_slowly(
        &server,
        "/api/v1/events",
        &[
            ("Authorization", "Bearer mnt_not-a-real-token"),
            ("Content-Type", "application/x-ndjson"),
        ],
        &chunk,
        WHOLE_BODY,
    )
    .await;
    assert_eq!(forged.status, 401, "{forged:?}");
    assert!(
        forged.chunks_sent <= EARLY,
        "answered after {} chunks",
        forged.chunks_sent
    );
    let bearer = format!("Bearer {viewer}");
    let not_allowed = post_slowly(
        &server,
        "/api/v1/events",
        &[("Authorization", &bearer), ("Content-Type", "application/x-ndjson")],
        &chunk,
        WHOLE_BODY,
    )
    .await;
    assert_eq!(not_allowed.status, 403, "{not_allowed:?}");
    assert!(
        not_allowed.chunks_sent <= EARLY,
        "answered after {} chunks",
        not_allowed.chunks_sent
    );
    server.stop().await;
}

// --- list query strings -------------------------------------------------------------------

/// Thousands of repeated filters once made SQLite refuse the query (500); every list now
/// answers 400 naming the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_query_strings_are_bounded() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", Role::TenantAdmin).await;
    let repeated = vec!["name=a"; 3000].join("&");
    let reply = server.get(&format!("/api/v1/agents?{repeated}"), &admin).await;
    reply.expect_problem(400);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("too many query parameters"),
        "{}",
        reply.body
    );
    let twice = server.get("/api/v1/agents?name=a&name=b", &admin).await;
    twice.expect_problem(400);
    assert!(
        twice.body["detail"]
            .as_str()
            .unwrap()
            .contains("`name` is given more than once"),
        "{}",
        twice.body
    );
    let long = server
        .get(&format!("/api/v1/agents?name={}", "a".repeat(5000)), &admin)
        .await;
    long.expect_problem(400);
    assert!(
        long.body["detail"].as_str().unwrap().contains("too long"),
        "{}",
        long.body
    );
    // Every list, whatever its filters: the count is refused before any name is looked at.
    let many = vec!["x=1"; 100].join("&");
    for list in [
        "teams",
        "locations",
        "agents",
        "queues",
        "dids",
        "endpoints",
        "users",
        "invitations",
        "tokens",
        "audit",
        "audit/export",
    ] {
        let reply = server.get(&format!("/api/v1/{list}?{many}"), &admin).await;
        assert_eq!(reply.status, 400, "{list}: {}", reply.body);
        assert!(
            reply.body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("too many query parameters"),
            "{list}: {}",
            reply.body
        );
    }
    // An ordinary list still works.
    server.get("/api/v1/agents?name=a&limit=5", &admin).await.expect(200);
    server.stop().await;
}

// --- made-up ids on admin pages -----------------------------------------------------------

/// A signed-in tenant admin who names something that does not exist on any admin page gets
/// 404, not a "storage unavailable" 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_pages_answer_unknown_ids_with_not_found() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    server.tenant("acme", Role::TenantAdmin).await;
    account(
        &server.store,
        "admin@acme.test",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let mut visitor = Visitor::new(&server);
    let signed_in = visitor.sign_in("admin@acme.test", PASSWORD).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    const MADE_UP: &str = "nope_00000000000000000000";
    let mut pages: Vec<String> = ["teams", "locations", "agents", "queues", "dids", "endpoints"]
        .iter()
        .map(|c| format!("/admin/{c}/{MADE_UP}"))
        .collect();
    pages.extend([
        format!("/admin/plugins/{MADE_UP}"),
        format!("/admin/alert-rules/{MADE_UP}"),
        format!("/board/agents/{MADE_UP}"),
    ]);
    let mut wrong = Vec::new();
    for page in &pages {
        let seen = visitor.get(page).await;
        if seen.status != 404 {
            wrong.push(format!("GET {page}: {}", seen.status));
        }
    }
    let mut forms: Vec<(String, Vec<(&str, &str)>)> = Vec::new();
    for c in ["teams", "locations", "agents", "queues", "dids", "endpoints"] {
        forms.push((format!("/admin/{c}/{MADE_UP}"), vec![("name", "x"), ("version", "1")]));
        forms.push((format!("/admin/{c}/{MADE_UP}/delete"), vec![("version", "1")]));
    }
    for (path, fields) in [
        (format!("/admin/users/{MADE_UP}"), vec![("role", "viewer")]),
        (format!("/admin/users/{MADE_UP}/reset-link"), vec![]),
        (format!("/admin/users/{MADE_UP}/remove"), vec![]),
        (format!("/admin/tokens/{MADE_UP}/revoke"), vec![]),
        (format!("/admin/sessions/{MADE_UP}/revoke"), vec![]),
        (format!("/admin/plugins/{MADE_UP}"), vec![]),
        (format!("/admin/plugins/{MADE_UP}/enable"), vec![]),
        (format!("/admin/plugins/{MADE_UP}/disable"), vec![]),
        (format!("/admin/plugins/{MADE_UP}/remove"), vec![]),
        (format!("/admin/plugins/{MADE_UP}/secrets"), vec![]),
        (
            format!("/admin/plugins/{MADE_UP}/dead-letters/{MADE_UP}/replay"),
            vec![],
        ),
        (
            format!("/admin/alert-rules/{MADE_UP}"),
            vec![
                ("name", "x"),
                ("scope", "agent"),
                ("expression", "false"),
                ("severity", "warning"),
                ("for_s", "0"),
                ("message", "x"),
            ],
        ),
        (format!("/admin/alert-rules/{MADE_UP}/delete"), vec![]),
        (
            format!("/admin/settings/sso/{MADE_UP}"),
            vec![
                ("display_name", "x"),
                ("issuer", "https://sso.example.com"),
                ("client_id", "x"),
            ],
        ),
        (format!("/admin/settings/sso/{MADE_UP}/delete"), vec![]),
        (format!("/alerts/{MADE_UP}/acknowledge"), vec![]),
        (format!("/alerts/rules/{MADE_UP}/silence"), vec![("minutes", "15")]),
        (format!("/board/agents/{MADE_UP}/pause"), vec![]),
    ] {
        forms.push((path, fields));
    }
    for (path, fields) in &forms {
        // A fresh CSRF token for every form, as a browser has from the page it posts from.
        visitor.get("/admin").await;
        let seen = visitor.post(path, fields).await;
        if seen.status != 404 {
            wrong.push(format!(
                "POST {path}: {} {}",
                seen.status,
                seen.location.unwrap_or_default()
            ));
        }
    }
    assert!(wrong.is_empty(), "not 404:\n{}", wrong.join("\n"));
    server.stop().await;
}

// --- /metrics -----------------------------------------------------------------------------

/// With `metrics.token` set, `/metrics` answers only requests bearing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_configured_token() {
    const TOKEN: &str = "metrics-token-for-the-test";
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.metrics.token = Some(monti::config::Secret::new(TOKEN));
    })
    .await
    .unwrap();
    let scrape = |token: Option<&str>| {
        let mut request = server.client.get(server.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let anonymous = scrape(None).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["content-type"],
        "application/problem+json",
        "a problem, not metrics"
    );
    let wrong = scrape(Some("metrics-token-for-the-tesT")).await.unwrap();
    assert_eq!(wrong.status(), 401);
    let shorter = scrape(Some("metrics")).await.unwrap();
    assert_eq!(shorter.status(), 401);
    let right = scrape(Some(TOKEN)).await.unwrap();
    assert_eq!(right.status(), 200);
    assert!(right.text().await.unwrap().contains("http_requests_total"));
    server.stop().await;
}

/// Plugin metrics are labelled with the installation id Monti made, never with the id a
/// plugin gives itself (a tenant's words on a page operators share).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_metrics_are_labelled_by_installation() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", Role::TenantAdmin).await;
    server
        .post("/api/v1/agents", &admin, json!({ "name": "Ana", "extension": "1001" }))
        .await
        .expect(201);
    let wasm =
        monti_plugin_test::build(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/plugins/minimal"))
            .expect("the example plugin builds");
    let installed = server
        .client
        .post(server.url("/api/v1/plugins"))
        .bearer_auth(&admin)
        .header("content-type", "application/wasm")
        .body(std::fs::read(wasm).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(installed.status(), 201);
    let installed: Value = installed.json().await.unwrap();
    let plugin_id = installed["plugin_id"].as_str().unwrap().to_owned();
    let installation = installed["id"].as_str().unwrap().to_owned();
    server
        .patch(
            &format!("/api/v1/plugins/{plugin_id}"),
            &admin,
            json!({ "enabled": true, "approve_capabilities": true }),
        )
        .await
        .expect(200);
    let at = chrono::Utc::now().to_rfc3339();
    server
        .post(
            "/api/v1/events",
            &admin,
            json!([{ "id": "login", "source": "pbx", "at": at, "type": "agent_login", "agent": "1001" }]),
        )
        .await
        .expect(200);
    let label = format!("installation=\"{installation}\"");
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = server
            .client
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics
            .lines()
            .any(|l| l.starts_with("plugin_invocations_total") && l.contains(&label))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let plugin_lines: Vec<&str> = metrics.lines().filter(|l| l.starts_with("plugin_")).collect();
    assert!(
        plugin_lines.iter().any(|l| l.contains(&label)),
        "the invocation is counted under its installation:\n{}",
        plugin_lines.join("\n")
    );
    let quoted = format!("\"{plugin_id}\"");
    for line in &plugin_lines {
        assert!(
            !line.contains("plugin=\"") && !line.contains(&quoted),
            "a label carries a plugin's own id: {line}"
        );
    }
    server.stop().await;
}

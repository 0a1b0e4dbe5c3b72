//! Floods and probes that cost the server more than they should: event bodies read whole before
//! they are counted, query strings with thousands of filters, made-up ids on admin pages, and a
//! `/metrics` that anyone may read with tenants' words in its labels.

use std::time::Duration;

use monti::domain::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Backend, TestServer, Visitor, account};

const PASSWORD: &str = "correct horse battery staple";

// --- event ingest bodies ------------------------------------------------------------------

/// Bytes written at a time by [`post_slowly`]: a refusal is seen within a few of them.
const PIECE: usize = 16 * 1024;

/// The pause after each piece. The body is paced so that a quarter of it takes seconds even on
/// a fast machine: a server that answers only after the whole body is far past that, one that
/// refuses early is far below it however busy the machine.
const PAUSE: Duration = Duration::from_millis(10);

/// Every flood below is about this large: just under the largest batch the server accepts
/// (`http.max_ingest_bytes`), so its declared length alone is no reason to refuse it.
const FLOOD: usize = 16 * 1024 * 1024 - 1024;

/// How a raw post ended.
#[derive(Debug)]
enum Answer {
    /// An HTTP answer (its body is whatever of it arrived).
    Http { status: u16, body: String },
    /// Closed or reset without an answer the client could read: a server that answers while
    /// the body is still arriving closes with unread bytes, and the reset this sends may discard
    /// the answer before the client reads it.
    Closed,
}

/// What a server did with a body sent a piece at a time.
#[derive(Debug)]
struct SlowPost {
    answer: Answer,
    /// Pieces written before the answer or the close.
    sent: usize,
    /// Pieces in the whole body.
    pieces: usize,
}

impl SlowPost {
    /// Asserts that the server refused before a quarter of the body had been sent, with `status`
    /// if its answer could be read; returns the answer's body then.
    #[track_caller]
    fn refused_early(&self, status: u16) -> Option<&str> {
        assert!(
            self.sent <= self.pieces / 4,
            "the server let {} of {} pieces of {PIECE} bytes in before refusing: {:?}",
            self.sent,
            self.pieces,
            self.answer
        );
        match &self.answer {
            Answer::Http { status: got, body } => {
                assert_eq!(*got, status, "{body}");
                Some(body)
            }
            Answer::Closed => None,
        }
    }
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

/// POSTs `body` to `path` over a plain connection, [`PIECE`] bytes at a time with a [`PAUSE`]
/// after each, reading the answer all along; writing stops as soon as an answer arrives or the
/// server closes the connection.
async fn post_slowly(server: &TestServer, path: &str, headers: &[(&str, &str)], body: &[u8]) -> SlowPost {
    let addr = server.config.listen;
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes()).await.expect("send the head");
    // True once the first bytes of an answer arrived; dropped when the reading is over.
    let (answered, mut heard) = tokio::sync::watch::channel(false);
    let reading = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        // A reset ends the reading with what had arrived.
        while let Ok(n @ 1..) = reader.read(&mut buf).await {
            got.extend_from_slice(&buf[..n]);
            answered.send_replace(true);
            if response_complete(&got) {
                break;
            }
        }
        got
    });
    let pieces = body.chunks(PIECE);
    let total = pieces.len();
    let mut sent = 0;
    for piece in pieces {
        if *heard.borrow() {
            break;
        }
        // A write blocked on a server that stopped reading gives way to its answer.
        let written = tokio::select! {
            written = writer.write_all(piece) => written,
            _ = heard.changed() => break,
        };
        if written.is_err() {
            break;
        }
        sent += 1;
        tokio::select! {
            () = tokio::time::sleep(PAUSE) => {}
            _ = heard.changed() => break,
        }
    }
    let got = tokio::time::timeout(Duration::from_secs(60), reading)
        .await
        .expect("an answer or a close within a minute")
        .expect("the reader");
    let text = String::from_utf8_lossy(&got).into_owned();
    let answer = match text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|s| s.parse().ok())
    {
        Some(status) => Answer::Http {
            status,
            body: text
                .split_once("\r\n\r\n")
                .map(|(_, b)| b.to_owned())
                .unwrap_or_default(),
        },
        None => Answer::Closed,
    };
    let post = SlowPost {
        answer,
        sent,
        pieces: total,
    };
    eprintln!("{path}: {post:?}");
    post
}

/// `line` repeated to [`FLOOD`] bytes (whole lines only).
fn flood_of(line: &[u8]) -> Vec<u8> {
    line.repeat(FLOOD / line.len())
}

fn assert_too_many_events(problem: &str) {
    let problem: Value = serde_json::from_str(problem).expect("problem JSON");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("at most 10000 events"),
        "{problem}"
    );
}

/// 16 MiB of empty events, as NDJSON and as a JSON array, and one endless line, are refused with
/// 413 while they are still being sent: the server counts as it reads and never holds the
/// whole body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_floods_are_refused_while_they_arrive() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", Role::TenantAdmin).await;
    let bearer = format!("Bearer {admin}");
    let ndjson = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/x-ndjson"),
    ];
    let json = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];

    // 10,001 empty events are 30 KB, a couple of pieces: the rest must not be waited for.
    let lines = post_slowly(&server, "/api/v1/events", &ndjson, &flood_of(b"{}\n")).await;
    if let Some(problem) = lines.refused_early(413) {
        assert_too_many_events(problem);
    }
    // The same as a JSON array, counted element by element.
    let array = [b"[".as_slice(), &flood_of(b"{},")].concat();
    let elements = post_slowly(&server, "/api/v1/events", &json, &array).await;
    if let Some(problem) = elements.refused_early(413) {
        assert_too_many_events(problem);
    }
    // One endless line is refused once it passes the longest event (64 KiB), not at the end.
    let endless = post_slowly(&server, "/api/v1/events", &ndjson, &flood_of(b" ")).await;
    endless.refused_early(413);

    // Just past the limit, sent whole (nothing is left unread to reset the connection): the
    // answer says why.
    for (content_type, body) in [
        ("application/x-ndjson", "{}\n".repeat(10_001)),
        ("application/json", format!("[{}{{}}]", "{},".repeat(10_000))),
    ] {
        let reply = server
            .client
            .post(server.url("/api/v1/events"))
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 413, "{content_type}");
        assert_too_many_events(&reply.text().await.unwrap());
    }

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
    let flood = flood_of(b"{}\n");
    let viewer = format!("Bearer {viewer}");
    for (authorization, status) in [
        (None, 401),
        (Some("Bearer mnt_not-a-real-token"), 401),
        (Some(viewer.as_str()), 403),
    ] {
        let mut headers = vec![("Content-Type", "application/x-ndjson")];
        headers.extend(authorization.map(|a| ("Authorization", a)));
        let refused = post_slowly(&server, "/api/v1/events", &headers, &flood).await;
        refused.refused_early(status);
    }
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
    // The first run compiles the component (slow in a debug build on a busy machine).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
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
        tokio::time::sleep(Duration::from_millis(100)).await;
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

// --- anonymous refusals ---------------------------------------------------------------------

/// A client at `address` (one of the loopback addresses, so the test's other calls come from
/// somewhere else), with connections kept alive.
fn client_at(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<std::net::IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// An address whose anonymous requests keep being refused (unknown hooks, forms without a
/// CSRF token, API calls without a credential) is held off: its open connection gets 429, its
/// new connection attempts are dropped (in the kernel on Linux). Other addresses, and a signed-in caller's own
/// refusals, are not charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_whose_anonymous_requests_keep_being_refused_is_held_off() {
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.http.anonymous_refusals_per_second = 0.1;
        c.http.anonymous_refusal_burst = 6;
        c.http.refused_client_hold = Duration::from_secs(120);
    })
    .await
    .unwrap();
    let admin = server.tenant("calm", Role::TenantAdmin).await;

    // A caller with a valid token may get as many refusals of its own as it likes.
    let member = client_at("127.0.0.3");
    for _ in 0..10 {
        let missing = member
            .get(server.url("/api/v1/agents/agt_missing"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
    }

    let attacker = client_at("127.0.0.2");
    let refusals = [
        attacker.post(server.url("/hooks/nobody/inst_x/x")).body("{}"),
        attacker.post(server.url("/hooks/calm/inst_made_up/x")).body("{}"),
        attacker
            .post(server.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("email=a%40b.c&password=x"),
        attacker.get(server.url("/api/v1/agents")),
        attacker
            .get(server.url("/api/v1/agents"))
            .bearer_auth("mnt_not_a_token"),
        attacker.post(server.url("/hooks/nobody/inst_y/x")).body("{}"),
    ];
    for request in refusals {
        let status = request.send().await.unwrap().status();
        assert!(
            [401, 403, 404].contains(&status.as_u16()),
            "refused, not held off yet: {status}"
        );
    }
    // The seventh refusal is over budget: from now on the address is held off.
    let over = attacker
        .post(server.url("/hooks/nobody/inst_z/x"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(over.status(), 404);
    let held = attacker.get(server.url("/login")).send().await.unwrap();
    assert_eq!(held.status(), 429, "the kept-alive connection is answered at once");
    let retry: u64 = held.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((100..=120).contains(&retry), "retry after the hold: {retry}");
    let fresh = client_at("127.0.0.2").get(server.url("/login")).send().await;
    assert!(fresh.is_err(), "a new connection is not served: {fresh:?}");
    // On Linux the listening socket's filter soon drops its connection attempts in the kernel:
    // connecting times out instead of being accepted and reset.
    #[cfg(target_os = "linux")]
    {
        let started = std::time::Instant::now();
        loop {
            let attempt = reqwest::Client::builder()
                .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
                .connect_timeout(Duration::from_millis(500))
                .build()
                .unwrap()
                .get(server.url("/login"))
                .send()
                .await;
            let error = attempt.expect_err("a held-off address is not served");
            if error.is_connect() && error.is_timeout() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "connection attempts are dropped before the handshake: {error:?}"
            );
        }
    }

    // Everyone else is served as before.
    let calm = client_at("127.0.0.4");
    let listed = calm
        .get(server.url("/api/v1/agents"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let member_still = member
        .get(server.url("/api/v1/agents"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(member_still.status(), 200);
    assert_eq!(calm.get(server.url("/login")).send().await.unwrap().status(), 200);
    server.stop().await;
}

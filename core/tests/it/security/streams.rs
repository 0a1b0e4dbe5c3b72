//! Live streams end with their credential: a revoked token, a signed-out or revoked session, a
//! changed role or scope ends every stream (SSE, WebSocket, the board's stream) within seconds,
//! not at the stream's 10-minute re-check. The WebSocket takes short-lived, single-use tickets
//! instead of tokens in the URL.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use monti::domain::Role;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::both_backends;
use crate::common::{TestServer, Visitor, account};

/// How soon a stream must end after a change made through this server: far below
/// [`PERIODIC`], so only the notice of the change can have ended it.
const WITHIN: Duration = Duration::from_secs(3);

/// The periodic credential check of tests about noticed changes: long enough that it never
/// runs while they wait.
const PERIODIC: Duration = Duration::from_secs(60);

/// Streams that learn of changes only from their periodic check.
fn noticed_changes_only(config: &mut monti::config::Config) {
    config.auth.stream_recheck_interval = PERIODIC;
}

const PASSWORD: &str = "correct horse battery staple";

fn ws_url(s: &TestServer, path: &str) -> String {
    s.url(path).replacen("http://", "ws://", 1)
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_socket(s: &TestServer, path: &str) -> Socket {
    tokio_tungstenite::connect_async(ws_url(s, path))
        .await
        .unwrap_or_else(|e| panic!("upgrade {path}: {e}"))
        .0
}

/// The next text message of a socket.
async fn next_text(socket: &mut Socket) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a message within 5 s")
            .expect("open")
            .expect("no error");
        if let Message::Text(text) = message {
            return text.to_string();
        }
    }
}

/// The first message of the WebSocket at `path`.
pub async fn first_message(s: &TestServer, path: &str) -> String {
    let mut socket = open_socket(s, path).await;
    next_text(&mut socket).await
}

/// The status of a WebSocket upgrade that is refused.
async fn refused(s: &TestServer, path: &str) -> u16 {
    match tokio_tungstenite::connect_async(ws_url(s, path)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("{path}: {e}"),
        Ok(_) => panic!("{path}: the upgrade was accepted"),
    }
}

/// Resolves with how long after `since` the socket closed (a close frame, or the end).
async fn socket_end(mut socket: Socket, since: Instant) -> Duration {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
            Ok(Some(Ok(Message::Close(_))) | None | Some(Err(_))) => return since.elapsed(),
            Ok(Some(Ok(_))) => {}
            Err(_) => return Duration::MAX,
        }
    }
}

/// Resolves with how long after `since` the SSE body ended.
async fn sse_end(mut response: reqwest::Response, since: Instant) -> Duration {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), response.chunk()).await {
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None) | Err(_)) => return since.elapsed(),
            Err(_) => return Duration::MAX,
        }
    }
}

async fn sse(s: &TestServer, path: &str, header: (&str, &str)) -> reqwest::Response {
    let mut response = s
        .client
        .get(s.url(path))
        .header(header.0, header.1)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    // Streams are open once their first bytes (the snapshot, or a keep-alive) arrive.
    let _ = tokio::time::timeout(Duration::from_millis(500), response.chunk()).await;
    response
}

async fn ticket(s: &TestServer, token: &str) -> String {
    let reply = s.post("/api/v1/live/tickets", token, json!({})).await;
    reply.expect(201);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(reply.body["expires_at"].is_string(), "{}", reply.text);
    reply.body["ticket"].as_str().expect("a ticket").to_owned()
}

/// An API token issued through the API: (id, secret).
async fn issue(s: &TestServer, admin: &str, role: &str) -> (String, String) {
    let reply = s
        .post("/api/v1/tokens", admin, json!({ "name": "streams", "role": role }))
        .await;
    reply.expect(201);
    (
        reply.body["id"].as_str().expect("token id").to_owned(),
        reply.body["secret"].as_str().expect("token secret").to_owned(),
    )
}

both_backends!(revoking_a_token_ends_its_streams_within_seconds, noticed_changes_only);
async fn revoking_a_token_ends_its_streams_within_seconds(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let (id, token) = issue(s, &admin, "viewer").await;
    let bearer = format!("Bearer {token}");
    let stream = sse(s, "/api/v1/live/stream", ("authorization", &bearer)).await;
    let by_ticket = open_socket(s, &format!("/api/v1/live/ws?ticket={}", ticket(s, &token).await)).await;
    let (by_header, _) = tokio_tungstenite::connect_async(bearer_request(&ws_url(s, "/api/v1/live/ws"), &token))
        .await
        .expect("upgrade with a header");
    // Streams stay open while the token is good.
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.delete(&format!("/api/v1/tokens/{id}"), &admin).await.expect(204);
    let revoked = Instant::now();
    s.get("/api/v1/live/snapshot", &token).await.expect_problem(401);
    let (sse_took, ticket_took, header_took) = tokio::join!(
        sse_end(stream, revoked),
        socket_end(by_ticket, revoked),
        socket_end(by_header, revoked)
    );
    eprintln!(
        "after revoking: SSE ended in {sse_took:?}, WebSocket (ticket) {ticket_took:?}, (header) {header_took:?}"
    );
    assert!(
        sse_took < WITHIN,
        "the SSE stream ended {sse_took:?} after the revocation"
    );
    assert!(
        ticket_took < WITHIN,
        "the ticket's WebSocket ended {ticket_took:?} after"
    );
    assert!(header_took < WITHIN, "the WebSocket ended {header_took:?} after");
}

/// A WebSocket request with `Authorization: Bearer` (machines can send headers).
fn bearer_request(url: &str, token: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().expect("request");
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

both_backends!(stream_tickets_are_single_use_bound_to_their_tenant_and_credential);
async fn stream_tickets_are_single_use_bound_to_their_tenant_and_credential(s: &TestServer) {
    let a = s.tenant("alpha", Role::TenantAdmin).await;
    let b = s.tenant("beta", Role::TenantAdmin).await;
    for (token, name) in [(&a, "Alma of Alpha"), (&b, "Bert of Beta")] {
        s.post("/api/v1/agents", token, json!({ "name": name }))
            .await
            .expect(201);
    }
    // A ticket works once.
    let first = ticket(s, &a).await;
    let snapshot: Value =
        serde_json::from_str(&first_message(s, &format!("/api/v1/live/ws?ticket={first}")).await).unwrap();
    assert_eq!(snapshot["type"], json!("snapshot"));
    let names = snapshot["data"]["agents"].to_string();
    assert!(names.contains("Alma of Alpha"), "{names}");
    assert!(
        !names.contains("Bert of Beta"),
        "a ticket streams its own tenant only: {names}"
    );
    assert_eq!(
        refused(s, &format!("/api/v1/live/ws?ticket={first}")).await,
        401,
        "a second use"
    );
    assert_eq!(
        refused(s, "/api/v1/live/ws?ticket=mst_made_up").await,
        401,
        "an unknown ticket"
    );
    // Tokens are no longer taken from the URL.
    assert_eq!(refused(s, &format!("/api/v1/live/ws?access_token={a}")).await, 401);
    assert_eq!(refused(s, "/api/v1/live/ws").await, 401);
    // A ticket ends with the credential it came from, even unused.
    let (id, viewer) = issue(s, &a, "viewer").await;
    let unused = ticket(s, &viewer).await;
    s.delete(&format!("/api/v1/tokens/{id}"), &a).await.expect(204);
    assert_eq!(refused(s, &format!("/api/v1/live/ws?ticket={unused}")).await, 401);
    // Tickets are for those who may watch the floor.
    let agent = s.tenant("alpha", Role::Agent).await;
    s.post("/api/v1/live/tickets", &agent, json!({}))
        .await
        .expect_problem(403);
    s.post("/api/v1/live/tickets", "monti_nonsense", json!({}))
        .await
        .expect_problem(401);
}

/// Signs in as a fresh supervisor of tenant `acme`; returns the visitor, the session cookie
/// (`name=value`) and the account id.
async fn signed_in_supervisor(s: &TestServer, email: &str) -> (Visitor, String, String) {
    let user = account(&s.store, email, PASSWORD, Some(("acme", Role::Supervisor)), false).await;
    let mut visitor = Visitor::new(s);
    let seen = visitor.sign_in(email, PASSWORD).await;
    assert_eq!(seen.status, 303);
    let cookie = seen
        .set_cookies
        .iter()
        .find(|c| c.starts_with("monti_session="))
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (visitor, cookie, user)
}

both_backends!(
    the_board_stream_ends_on_sign_out_and_on_a_changed_role_or_scope,
    noticed_changes_only
);
async fn the_board_stream_ends_on_sign_out_and_on_a_changed_role_or_scope(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let team = s
        .post("/api/v1/teams", &admin, json!({ "name": "North" }))
        .await
        .expect(201)
        .id();

    // Signing out.
    let (mut visitor, cookie, _) = signed_in_supervisor(s, "out@example.com").await;
    let board = sse(s, "/board/stream", ("cookie", &cookie)).await;
    assert_eq!(visitor.get("/account").await.status, 200);
    assert_eq!(visitor.post("/logout", &[]).await.status, 303);
    let signed_out = Instant::now();
    let took = sse_end(board, signed_out).await;
    eprintln!("the board stream ended {took:?} after signing out");
    assert!(took < WITHIN, "the board stream ended {took:?} after signing out");

    // A role change (supervisor to viewer) and a scope change (limited to a team).
    for (email, change) in [
        ("role@example.com", json!({ "role": "viewer" })),
        ("scope@example.com", json!({ "team_scope": [team] })),
    ] {
        let (_visitor, cookie, user) = signed_in_supervisor(s, email).await;
        let board = sse(s, "/board/stream", ("cookie", &cookie)).await;
        s.patch(&format!("/api/v1/users/{user}"), &admin, change.clone())
            .await
            .expect(200);
        let changed = Instant::now();
        let took = sse_end(board, changed).await;
        eprintln!("the board stream ended {took:?} after {change}");
        assert!(took < WITHIN, "the board stream ended {took:?} after {change}");
        // The session itself still works, with what it grants now.
        let again = s
            .client
            .get(s.url("/board/stream"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 200, "{change}: the board opens again");
    }
}

/// Frequent periodic checks and a short token cache, for a revocation this server does not hear of.
fn quick_periodic_checks(config: &mut monti::config::Config) {
    config.auth.stream_recheck_interval = Duration::from_secs(1);
    config.auth.token_cache_ttl = Duration::from_secs(1);
}

both_backends!(
    a_revocation_made_elsewhere_ends_streams_at_their_next_check,
    quick_periodic_checks
);
async fn a_revocation_made_elsewhere_ends_streams_at_their_next_check(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let (id, token) = issue(s, &admin, "viewer").await;
    let stream = sse(s, "/api/v1/live/stream", ("authorization", &format!("Bearer {token}"))).await;
    // As another instance or the CLI would: in the database, unannounced to this server.
    s.raw_db()
        .await
        .execute("UPDATE api_tokens SET revoked_at = 1 WHERE id = $1", &[&id])
        .await
        .unwrap();
    let took = sse_end(stream, Instant::now()).await;
    eprintln!("the stream ended {took:?} after a revocation made elsewhere");
    // Checks come every second and the cache trusts a token for a second: at most about 2 s,
    // with room for a busy machine. At the production defaults (5 s each) it would be up to 10 s.
    assert!(took < Duration::from_secs(8), "ended {took:?} after");
}

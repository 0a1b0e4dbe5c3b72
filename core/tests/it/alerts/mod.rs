//! Alert rules over the API, on a running server: rules checked as they are saved (syntax
//! errors with line and column), tested against the current floor, evaluated every second —
//! pending, firing after their `for`, resolved when the condition clears —, hostile rules
//! contained and explained, versions kept, alerts acknowledged, every change audited, tenants
//! kept apart. On SQLite and PostgreSQL.

use crate::both_backends;
use crate::common;

use std::time::{Duration, Instant};

use common::{Backend, TestServer};
use serde_json::{Value, json};

mod notifications;
mod rules;

fn event(id: &str, body: Value) -> Value {
    let mut event = json!({ "id": id, "source": "test", "at": chrono::Utc::now().to_rfc3339() });
    event.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
    event
}

/// Waits until `GET path` satisfies `ready`.
async fn until(server: &TestServer, token: &str, path: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let body = server.get(path, token).await.body;
        if ready(&body) {
            return body;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{what}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Tenant acme with a queue and an agent; its admin's, supervisor's and viewer's tokens.
async fn acme(server: &TestServer) -> (String, String, String) {
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    let supervisor = server.tenant("acme", monti::domain::Role::Supervisor).await;
    let viewer = server.tenant("acme", monti::domain::Role::Viewer).await;
    server
        .post("/api/v1/queues", &admin, json!({ "name": "Sales" }))
        .await
        .expect(201);
    server
        .post("/api/v1/agents", &admin, json!({ "name": "Ana", "extension": "1001" }))
        .await
        .expect(201);
    (admin, supervisor, viewer)
}

/// A webhook receiver: records what it was sent (body, `Monti-Signature`), answers `status`,
/// or never answers when `hang`.
async fn webhook(status: u16, hang: bool) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>) {
    use axum::routing::post;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let keep = keep.clone();
            async move {
                let signature = headers
                    .get("monti-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                keep.lock().unwrap().push((body, signature));
                if hang {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}

fn hmac_hex(secret: &str, text: &str) -> String {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Text as the page templates show it (HTML-escaped the way tera does).
fn as_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2F;")
}

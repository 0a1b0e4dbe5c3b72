//! Call history and reports: what the events and imports leave behind, browsed, filtered,
//! exported and summed, on both backends.

use crate::both_backends;
use crate::common;

use common::TestServer;
use monti::domain::Role;
use serde_json::{Value, json};

mod agents;
mod calls;
mod recordings;
mod reports;
mod saved;

/// A tenant with two teams (North: Ana 1001; South: Ben 1002) and two queues (Sales,
/// Support): (admin token, north team id, ana id, ben id, sales id, support id).
async fn floor(s: &TestServer) -> (String, String, String, String, String, String) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let north = s
        .post("/api/v1/teams", &admin, json!({ "name": "North" }))
        .await
        .expect(201)
        .id();
    let south = s
        .post("/api/v1/teams", &admin, json!({ "name": "South" }))
        .await
        .expect(201)
        .id();
    let ana = s
        .post(
            "/api/v1/agents",
            &admin,
            json!({ "name": "Ana", "extension": "1001", "team_id": north }),
        )
        .await
        .expect(201)
        .id();
    let ben = s
        .post(
            "/api/v1/agents",
            &admin,
            json!({ "name": "Ben", "extension": "1002", "team_id": south }),
        )
        .await
        .expect(201)
        .id();
    let sales = s
        .post("/api/v1/queues", &admin, json!({ "name": "Sales" }))
        .await
        .expect(201)
        .id();
    let support = s
        .post("/api/v1/queues", &admin, json!({ "name": "Support" }))
        .await
        .expect(201)
        .id();
    (admin, north, ana, ben, sales, support)
}

/// Numbers the events the tests send, so that every one is new.
static SENT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Posts events, each `(seconds after base, body)`, and checks all were accepted.
async fn send(s: &TestServer, token: &str, base: chrono::DateTime<chrono::Utc>, events: &[(i64, Value)]) {
    let batch: Vec<Value> = events
        .iter()
        .map(|(offset, body)| {
            let mut event = body.clone();
            event["id"] = json!(format!("h{}", SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
            event["source"] = json!("pbx1");
            event["at"] = json!((base + chrono::Duration::seconds(*offset)).to_rfc3339());
            event
        })
        .collect();
    let reply = s.post("/api/v1/events", token, json!(batch)).await;
    reply.expect(200);
    assert_eq!(reply.body["accepted"], json!(events.len()), "{}", reply.text);
}

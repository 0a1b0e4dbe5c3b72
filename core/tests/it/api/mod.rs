//! The REST API suite. Every test runs against SQLite and against PostgreSQL.

use crate::both_backends;
use crate::common;

use common::TestServer;
use monti::domain::Role;
use reqwest::Method;
use serde_json::{Value, json};

mod access;
mod live;
mod resources;

async fn seed_team(s: &TestServer, token: &str, name: &str) -> String {
    s.post("/api/v1/teams", token, json!({ "name": name }))
        .await
        .expect(201)
        .id()
}

const SUE_PASSWORD: &str = "correct horse battery staple";

/// The path of the invitation link an API answer carries (no mail server in these tests).
fn invitation_path(reply: &common::Reply) -> String {
    let link = reply.body["link"].as_str().expect("an invitation link");
    link[link.find("/invitations/").expect("an invitation path")..].to_owned()
}

/// Reads server-sent events from a streaming response: (event, id, data) each.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    async fn open(s: &TestServer, token: &str, last_event_id: Option<&str>) -> SseReader {
        let mut request = s.client.get(s.url("/api/v1/live/stream")).bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        SseReader {
            response,
            buffer: String::new(),
        }
    }

    /// The next event that is not a keep-alive comment, within 5 s.
    async fn next(&mut self) -> (String, String, Value) {
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("id:") {
                            id = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if event.is_empty() && data.is_empty() {
                        continue;
                    }
                    return (event, id, serde_json::from_str(&data).unwrap_or(Value::String(data)));
                }
                let chunk = self.response.chunk().await.unwrap().expect("the stream stays open");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("an event within 5 s")
    }
}

//! Identity and access through the browser-facing pages: first-run setup, local sign-in,
//! sessions, CSRF, throttling, scoped supervisors, suspended tenants, the audit trail.

use crate::both_backends;
use crate::common;

use common::{TestServer, Visitor, account, audit_actions};
use monti::domain::Role;
use monti::store::{ListParams, tenants};
use serde_json::json;

mod audit;
mod protection;
mod scopes;
mod sessions;

const PASSWORD: &str = "correct horse battery staple";

/// Accepts the invitation the API answered with, signed in as the invited account: adding an
/// existing account to a tenant takes its owner's consent.
async fn accept_invitation(s: &TestServer, invited: &common::Reply, email: &str) {
    invited.expect(202);
    let link = invited.body["link"].as_str().expect("an invitation link");
    let path = &link[link.find("/invitations/").expect("a link to the invitation")..];
    let mut v = Visitor::new(s);
    assert_eq!(v.sign_in(email, PASSWORD).await.status, 303);
    assert_eq!(v.get(path).await.status, 200);
    assert_eq!(v.post(&format!("{path}/accept"), &[]).await.status, 303);
}

/// A small SMTP server that accepts every message and keeps it (for the reset-email test).
struct SmtpSink {
    port: u16,
    messages: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

async fn smtp_sink() -> SmtpSink {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = messages.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            kept.lock().unwrap().push(std::mem::take(body));
                            data = None;
                            let _ = write.write_all(b"250 queued\r\n").await;
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            break;
                        }
                        _ => b"250 OK\r\n",
                    };
                    let _ = write.write_all(reply).await;
                }
            });
        }
    });
    SmtpSink { port, messages }
}

impl SmtpSink {
    /// Waits for the next message and returns it with quoted-printable undone.
    async fn next(&self, seen: usize) -> Option<String> {
        for _ in 0..100 {
            if let Some(m) = self.messages.lock().unwrap().get(seen) {
                return Some(m.replace("=\n", "").replace("=3D", "="));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        None
    }
}

fn reset_link_in(mail: &str) -> String {
    let start = mail.find("/reset?token=").expect("a reset link in the mail");
    let rest = &mail[start..];
    rest.split_whitespace().next().unwrap().to_owned()
}

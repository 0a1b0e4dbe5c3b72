//! A real SMTP server for tests (nodemailer's `smtp-server`, in `tests/smtp-server`), started per
//! test on a free port; what it receives is kept here.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp-server")
}

pub struct SmtpServer {
    _child: tokio::process::Child,
    pub port: u16,
    received: Arc<Mutex<Vec<Value>>>,
}

impl SmtpServer {
    /// Starts one; `refuse` answers every message with 451 (a server that is in trouble).
    pub async fn start(refuse: bool) -> Option<SmtpServer> {
        if let Err(e) = super::npm_ci(&dir(), "smtp-server") {
            super::service_missing("Node.js with npm (for smtp-server)", &e);
            return None;
        }
        let mut command = tokio::process::Command::new("node");
        command.arg("server.mjs").arg("0");
        if refuse {
            command.arg("refuse");
        }
        let mut child = command
            .current_dir(dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .ok()?;
        let mut lines = BufReader::new(child.stdout.take()?).lines();
        let port = tokio::time::timeout(Duration::from_secs(15), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(port) = line.strip_prefix("listening ") {
                    return port.trim().parse().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("the SMTP server starts");
        let received = Arc::new(Mutex::new(Vec::new()));
        let keep = received.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(message) = serde_json::from_str::<Value>(&line) {
                    keep.lock().unwrap().push(message);
                }
            }
        });
        Some(SmtpServer {
            _child: child,
            port,
            received,
        })
    }

    /// Messages received so far: `{"from", "to": [..], "data"}`.
    pub fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }
}

/// Points a server's configuration at the test SMTP server on 127.0.0.1:`port` (no TLS).
pub fn mail_through(config: &mut monti::config::Config, port: u16) {
    config.smtp.host = Some("127.0.0.1".into());
    config.smtp.port = port;
    config.smtp.security = monti::config::SmtpSecurity::None;
    config.smtp.from = "Monti <monti@example.com>".into();
}

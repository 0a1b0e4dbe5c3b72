//! The golden plugin of `monti:plugin@1.4.0`: an `alert-handler`. Built from the frozen published
//! contract, it receives alerts and, for each, logs it, counts it in its store and tells a
//! pager over HTTP with a secret placed by the host; what it does is recorded in
//! `expected.json`, and every later host must do exactly that again
//! (`sdk/test/tests/golden.rs`). Never change this crate or its
//! contract (`sdk/wit/1.4.0`): add a new golden version.

wit_bindgen::generate!({ world: "alert-handler", path: "../../wit/1.4.0" });

use monti::plugin::alerts::{AlertState, Severity};
use monti::plugin::http::{self, Placement, Request};
use monti::plugin::log::{Level, log};
use monti::plugin::{config, kv, secrets};

struct Golden;

impl Guest for Golden {
    fn handle_alerts(alerts: Vec<Alert>) -> Result<(), PluginError> {
        log(
            Level::Info,
            &format!("{} alerts, config {}", alerts.len(), config::get()),
        );
        for alert in &alerts {
            let state = match alert.state {
                AlertState::Firing => "firing",
                AlertState::Resolved => "resolved",
            };
            let severity = match alert.severity {
                Severity::Info => "info",
                Severity::Warning => "warning",
                Severity::Critical => "critical",
            };
            log(
                Level::Info,
                &format!(
                    "{state} {severity} {} v{} on {} ({}): {} since {} fired {} resolved {:?}",
                    alert.rule_name,
                    alert.rule_version,
                    alert.subject,
                    alert.subject_name,
                    alert.message,
                    alert.since_ms,
                    alert.fired_ms,
                    alert.resolved_ms
                ),
            );
            let seen = kv::get("seen").map_or(0, |v| v.len());
            let _ = kv::set("seen", &vec![b'x'; seen + 1]);
            if alert.state == AlertState::Firing {
                let pager = secrets::get("api").map_err(|_| PluginError {
                    message: "no secret".into(),
                    retryable: false,
                })?;
                let request = Request {
                    method: "POST".into(),
                    url: "https://api.example.com/page".into(),
                    headers: vec![("content-type".into(), "text/plain".into())],
                    body: Some(alert.message.clone().into_bytes()),
                    timeout_ms: Some(2_000),
                };
                match http::send_with_secret(&request, &pager, &Placement::Bearer) {
                    Ok(response) => log(Level::Info, &format!("paged: {}", response.status)),
                    Err(_) => log(Level::Warn, "the pager could not be reached"),
                }
            }
        }
        if alerts.iter().any(|a| a.rule_id == "fail") {
            return Err(PluginError {
                message: "asked to fail".into(),
                retryable: true,
            });
        }
        Ok(())
    }
}

export!(Golden);

#[cfg_attr(target_arch = "wasm32", unsafe(link_section = "monti-plugin"))]
#[used]
static MANIFEST: [u8; include_bytes!("../monti-plugin.toml").len()] = *include_bytes!("../monti-plugin.toml");

//! Pages the on-call person when an alert of the chosen severity fires, and tells them when it
//! resolves: a JSON `POST https://<pager_host>/v1/pages` with the token placed by the host. Pages
//! sent are counted in the store (`paged`), so a resolution is only sent for a page that went out.

use std::time::Duration;

use monti_plugin_sdk::alerts::{Alert, AlertState, Severity};
use monti_plugin_sdk::http::{Placement, Request};
use monti_plugin_sdk::{AlertHandler, ConfigCache, PluginError, kv, secrets, warn};
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    pager_host: String,
    #[serde(default = "critical")]
    min_severity: String,
}

fn critical() -> String {
    "critical".into()
}

fn rank(severity: Severity) -> u8 {
    match severity {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Critical => 2,
    }
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

/// The store key of a page sent for an alert.
fn key(alert: &Alert) -> String {
    format!("paged/{}/{}", alert.rule_id, alert.subject)
}

#[derive(Default)]
struct Pager {
    config: ConfigCache<Config>,
}

impl AlertHandler for Pager {
    fn handle_alerts(&mut self, alerts: Vec<Alert>) -> Result<(), PluginError> {
        let config = self.config.get()?;
        let threshold = match config.min_severity.as_str() {
            "info" => 0,
            "warning" => 1,
            _ => 2,
        };
        let token =
            secrets::get("token").map_err(|_| PluginError::permanent("no token is configured (the secret `token`)"))?;
        for alert in alerts.iter().filter(|a| rank(a.severity) >= threshold) {
            let resolved = alert.state == AlertState::Resolved;
            // A resolution is news only to someone who was paged.
            if resolved && kv::get(&key(alert)).is_none() {
                continue;
            }
            let body = serde_json::json!({
                "summary": format!("[{}] {}: {}", severity_name(alert.severity), alert.rule_name, alert.message),
                "state": if resolved { "resolved" } else { "firing" },
                "dedup_key": key(alert),
            });
            let sent = Request::post(format!("https://{}/v1/pages", config.pager_host))
                .json(&body)?
                .timeout(Duration::from_secs(5))
                .send_with_secret(&token, Placement::Bearer);
            match sent {
                Ok(response) if response.is_success() => {
                    if resolved {
                        kv::delete(&key(alert));
                    } else if let Err(error) = kv::set(&key(alert), b"1") {
                        warn!("cannot remember the page: {error}");
                    }
                }
                Ok(response) => {
                    return Err(PluginError::retryable(format!(
                        "the pager answered {}",
                        response.status
                    )));
                }
                Err(e) => return Err(PluginError::retryable(format!("the pager could not be reached: {e}"))),
            }
        }
        Ok(())
    }
}

monti_plugin_sdk::alert_handler!(Pager);
monti_plugin_sdk::manifest!("../monti-plugin.toml");

//! Telling people: what fired or resolved becomes notifications to the rule's targets — email
//! over SMTP, webhooks signed with HMAC-SHA256 — queued in the database and sent by a worker that
//! retries with growing pauses (10 s … 1 h) and keeps what never went out as failed, visible to
//! the tenant. Storms are grouped: all of a rule's changes in a tick make one notification per
//! target, and a target hears from a rule at most once a minute (`live.alert_notify_interval`;
//! what happens meanwhile is sent together then). Silenced rules (or subjects) send nothing until the silence ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::eval::AlertChange;
use crate::domain::retry::next_attempt;
use crate::store::Store;
use crate::store::alert_rules::{self, NotificationRow};

/// Alerts listed in one notification (the rest are counted).
const LISTED: usize = 20;
/// How long one webhook may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Changes held back per (rule, target) until the target may hear again
/// (`live.alert_notify_interval`, a minute by default).
#[derive(Debug, Default)]
pub struct Throttle {
    pub interval_ms: i64,
    last_sent: HashMap<(String, String), i64>,
    held: HashMap<(String, String), Vec<AlertChange>>,
}

impl Throttle {
    /// Adds a tick's changes for `rule` to `target`; returns what may go out now.
    pub fn offer(
        &mut self,
        rule: &str,
        target: &str,
        changes: Vec<AlertChange>,
        now_ms: i64,
    ) -> Option<Vec<AlertChange>> {
        let key = (rule.to_owned(), target.to_owned());
        let held = self.held.entry(key.clone()).or_default();
        held.extend(changes);
        if held.is_empty() {
            return None;
        }
        let due = self
            .last_sent
            .get(&key)
            .is_none_or(|last| now_ms - last >= self.interval_ms);
        if !due {
            return None;
        }
        self.last_sent.insert(key.clone(), now_ms);
        self.held.remove(&key)
    }

    /// (rule, target) pairs with changes waiting.
    pub fn waiting(&self) -> Vec<(String, String)> {
        self.held
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// One notification's summary line and the webhook body / email text.
pub fn compose(tenant_slug: &str, public_url: &str, target: &Value, changes: &[AlertChange]) -> (String, String) {
    let firing = changes.iter().filter(|c| c.resolved_ms.is_none()).count();
    let resolved = changes.len() - firing;
    let rule = &changes[0];
    let what = match (firing, resolved) {
        (1, 0) => "firing".to_owned(),
        (0, 1) => "resolved".to_owned(),
        (f, 0) => format!("{f} firing"),
        (0, r) => format!("{r} resolved"),
        (f, r) => format!("{f} firing, {r} resolved"),
    };
    let summary = format!("[{}] {}: {what}", rule.severity.as_str(), rule.rule_name);
    let time = |ms: i64| crate::domain::time::to_rfc3339(ms);
    if target.get("type").and_then(Value::as_str) == Some("webhook") {
        let alerts: Vec<Value> = changes
            .iter()
            .map(|c| {
                json!({
                    "state": if c.resolved_ms.is_some() { "resolved" } else { "firing" },
                    "subject": c.subject, "subject_name": c.subject_name, "message": c.message,
                    "since": time(c.since_ms), "fired_at": time(c.fired_ms), "resolved_at": c.resolved_ms.map(time),
                })
            })
            .collect();
        let body = json!({
            "type": if resolved == 0 { "alert.firing" } else if firing == 0 { "alert.resolved" } else { "alert.changed" },
            "tenant": tenant_slug,
            "rule": { "id": rule.rule_id, "name": rule.rule_name, "version": rule.rule_version, "severity": rule.severity },
            "alerts": alerts,
        });
        return (summary, body.to_string());
    }
    let mut text = String::new();
    for change in changes.iter().take(LISTED) {
        let state = if change.resolved_ms.is_some() {
            "RESOLVED"
        } else {
            "FIRING"
        };
        text.push_str(&format!(
            "{state}  {}  (since {})\n",
            change.message,
            time(change.since_ms)
        ));
    }
    if changes.len() > LISTED {
        text.push_str(&format!("… and {} more\n", changes.len() - LISTED));
    }
    text.push_str(&format!(
        "\nRule: {} ({})\nAlerts: {}/alerts\n",
        rule.rule_name,
        rule.severity.as_str(),
        public_url.trim_end_matches('/')
    ));
    (summary, text)
}

/// The `Monti-Signature` header for a webhook body: `t=<unix seconds>,v1=<hex HMAC-SHA256 of
/// "<t>.<body>">`, as receivers verify it.
pub fn signature(secret: &str, unix_s: i64, body: &str) -> String {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{unix_s}.{body}").as_bytes());
    let digest: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={unix_s},v1={digest}")
}

/// Sends queued notifications.
pub struct Delivery {
    store: Store,
    /// Notifications being sent now (a slow target is not tried twice at once).
    in_flight: std::sync::Mutex<std::collections::HashSet<String>>,
    mailer: Option<Arc<crate::mail::Mailer>>,
    client: reqwest::Client,
    /// Tenants (slugs) whose webhooks may reach private addresses (`plugins.private_networks`).
    private_tenants: Vec<String>,
}

impl Delivery {
    pub fn new(store: Store, mailer: Option<Arc<crate::mail::Mailer>>, private_tenants: Vec<String>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            store,
            in_flight: Default::default(),
            mailer,
            client,
            private_tenants,
        }
    }

    /// Sends what is due, every second; each notification on its own task, so a target that
    /// hangs holds up only itself.
    pub fn start(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = self.clone().send_due().await {
                    tracing::warn!(error = %e, "sending alert notifications failed");
                }
            }
        });
    }

    /// Starts sending every due notification not already on its way; returns how many.
    pub async fn send_due(self: Arc<Self>) -> crate::store::StoreResult<usize> {
        let now = crate::domain::time::now_ms();
        let due = alert_rules::due(&self.store, now, 100).await?;
        let mut started = 0;
        for row in due {
            if !self
                .in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(row.id.clone())
            {
                continue;
            }
            started += 1;
            let delivery = self.clone();
            tokio::spawn(async move {
                let outcome = delivery.send(&row).await;
                let next = match &outcome {
                    Ok(()) => None,
                    Err(_) => next_attempt(row.attempts + 1, crate::domain::time::now_ms()),
                };
                if let Err(why) = &outcome {
                    tracing::warn!(tenant = %row.tenant_slug, rule = %row.rule_id, attempt = row.attempts + 1, "an alert notification failed: {why}");
                    metrics::counter!("alert_notifications_failed_total").increment(1);
                } else {
                    metrics::counter!("alert_notifications_sent_total").increment(1);
                }
                if let Err(e) = alert_rules::attempted(&delivery.store, &row, outcome, next).await {
                    tracing::warn!(error = %e, "recording an alert notification's attempt failed");
                }
                delivery
                    .in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&row.id);
            });
        }
        Ok(started)
    }

    async fn send(&self, row: &NotificationRow) -> Result<(), String> {
        let target: Value = serde_json::from_str(&row.target).map_err(|e| format!("the target: {e}"))?;
        match target.get("type").and_then(Value::as_str) {
            Some("email") => {
                let mailer = self.mailer.as_ref().ok_or("no SMTP server is configured (smtp.host)")?;
                let to = target.get("to").and_then(Value::as_str).unwrap_or_default();
                mailer
                    .send(to, &row.summary, row.body.clone())
                    .await
                    .map_err(|e| e.to_string())
            }
            Some("webhook") => {
                let url = target.get("url").and_then(Value::as_str).unwrap_or_default();
                let parsed = url::Url::parse(url).map_err(|_| format!("`{url}` is not a URL"))?;
                let host = parsed.host_str().ok_or("the URL has no host")?.to_owned();
                let port = parsed.port_or_known_default().unwrap_or(443);
                let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(|e| format!("{host} does not resolve: {e}"))?
                    .collect();
                let allow_private = self.private_tenants.contains(&row.tenant_slug);
                if addresses.is_empty() || (!allow_private && addresses.iter().any(|a| !crate::net::is_public(a.ip())))
                {
                    return Err(format!(
                        "{host} resolves to a private or local address (the operator can allow private networks for this tenant)"
                    ));
                }
                let secret = alert_rules::signing_secret(&self.store, &row.tenant_id, &row.rule_id)
                    .await
                    .map_err(|e| format!("the rule's signing secret: {e}"))?;
                let unix = crate::domain::time::now_ms() / 1000;
                let client = reqwest::Client::builder()
                    .timeout(WEBHOOK_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::none())
                    .resolve_to_addrs(&host, &addresses)
                    .build()
                    .unwrap_or_else(|_| self.client.clone());
                let response = client
                    .post(parsed)
                    .header("content-type", "application/json")
                    .header("user-agent", concat!("Monti/", env!("CARGO_PKG_VERSION")))
                    .header("monti-signature", signature(&secret, unix, &row.body))
                    .body(row.body.clone())
                    .send()
                    .await
                    .map_err(|e| {
                        if e.is_timeout() {
                            format!("{host} did not answer within {} s", WEBHOOK_TIMEOUT.as_secs())
                        } else {
                            format!("{host}: {e}")
                        }
                    })?;
                if response.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("{host} answered {}", response.status()))
                }
            }
            other => Err(format!("unknown target type {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::eval::Severity;

    fn change(subject: &str, resolved: bool) -> AlertChange {
        AlertChange {
            rule_id: "r1".into(),
            rule_version: 1,
            rule_name: "Long pause".into(),
            severity: Severity::Info,
            subject: subject.into(),
            subject_name: subject.into(),
            message: format!("{subject} paused"),
            since_ms: 0,
            fired_ms: 0,
            resolved_ms: resolved.then_some(5),
        }
    }

    #[test]
    fn a_storm_is_grouped_and_throttled() {
        let mut throttle = Throttle {
            interval_ms: 60_000,
            ..Throttle::default()
        };
        let storm: Vec<AlertChange> = (0..500).map(|n| change(&format!("agent:{n}"), false)).collect();
        let sent = throttle.offer("r1", "t", storm, 0).unwrap();
        assert_eq!(sent.len(), 500, "one notification for the whole tick");
        let (summary, text) = compose("acme", "https://monti.example", &json!({"type": "email"}), &sent);
        assert_eq!(summary, "[info] Long pause: 500 firing");
        assert!(text.contains("… and 480 more"), "{text}");
        // Within the minute: held, then sent together.
        assert!(
            throttle
                .offer("r1", "t", vec![change("agent:1", true)], 10_000)
                .is_none()
        );
        assert!(
            throttle
                .offer("r1", "t", vec![change("agent:2", true)], 20_000)
                .is_none()
        );
        assert_eq!(throttle.waiting().len(), 1);
        let later = throttle.offer("r1", "t", Vec::new(), 60_000).unwrap();
        assert_eq!(later.len(), 2);
    }

    #[test]
    fn webhooks_are_signed_as_documented() {
        // python3 -c "import hmac,hashlib; print(hmac.new(b'whsec_test', b'1800000000.{\"a\":1}', hashlib.sha256).hexdigest())"
        assert_eq!(
            signature("whsec_test", 1_800_000_000, "{\"a\":1}"),
            "t=1800000000,v1=7de5e6bbc99c65ef0ddccacd4308ba03a5a12eb8859a0db070c5ca731c4fdc19"
        );
    }
}

//! A plugin's manifest (`monti-plugin.toml`), embedded in its component as the custom section
//! `monti-plugin` by the SDK's `manifest!` macro: who it is, which contract world and version it
//! implements, what it asks for, and how it wants failures handled.

use serde::{Deserialize, Serialize};

pub use crate::world::{Exports, World};

/// The custom section that carries the manifest.
pub const SECTION: &str = "monti-plugin";
/// The contract major version this host implements …
pub const CONTRACT_MAJOR: u64 = 1;
/// … up to this minor version (plugins built against any earlier 1.x load too).
pub const CONTRACT_MINOR: u64 = 4;
/// The most a manifest may ask for.
pub const MAX_CPU_MS: u32 = 5_000;
pub const MAX_MEMORY_MB: u32 = 256;
pub const MAX_KV_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Lower-case letters, digits and dashes.
    pub id: String,
    pub name: String,
    /// The plugin's own version, `MAJOR.MINOR.PATCH`.
    pub version: String,
    /// The contract world it implements (`world = "event-handler"`); an unknown one is refused
    /// when the manifest is read.
    pub world: World,
    /// The contract version it was built against, e.g. `1.0.0`.
    pub sdk: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub limits: RequestedLimits,
    /// JSON Schema of the configuration (an object schema); drives the admin form.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    #[serde(default)]
    pub failure_policy: FailurePolicy,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Bytes of key-value storage.
    #[serde(default)]
    pub kv_bytes: u64,
    /// Whether it emits events into live monitoring.
    #[serde(default)]
    pub emits_events: bool,
    /// Outbound HTTP destinations, `scheme://host[:port]`.
    #[serde(default)]
    pub http: Vec<String>,
    /// The secrets it uses, each bound to the one destination (`scheme://host[:port]`, also in
    /// `http`) the host may send it to.
    #[serde(default)]
    pub secrets: std::collections::BTreeMap<String, String>,
    /// Long-lived connections it asks the host to keep (`tcp://host:port`, `wss://…`).
    #[serde(default)]
    pub streams: Vec<String>,
}

impl Capabilities {
    /// What this asks for beyond `approved`, one line per capability, in words a tenant admin
    /// reads before saying yes. Empty: nothing new.
    pub fn beyond(&self, approved: &Capabilities) -> Vec<String> {
        let mut new = Vec::new();
        if self.emits_events && !approved.emits_events {
            new.push("emit events into live monitoring".to_owned());
        }
        if self.kv_bytes > approved.kv_bytes {
            new.push(if self.kv_bytes < 1024 {
                format!("store up to {} bytes", self.kv_bytes)
            } else {
                format!("store up to {} KiB", self.kv_bytes.div_ceil(1024))
            });
        }
        for destination in self.http.iter().filter(|d| !approved.http.contains(d)) {
            new.push(format!("send HTTP requests to {destination}"));
        }
        for (name, destination) in &self.secrets {
            if approved.secrets.get(name) != Some(destination) {
                new.push(format!("use the secret `{name}`, sent only to {destination}"));
            }
        }
        for destination in self.streams.iter().filter(|d| !approved.streams.contains(d)) {
            new.push(format!("keep a connection open to {destination}"));
        }
        new
    }

    /// Every capability it asks for, in words.
    pub fn describe(&self) -> Vec<String> {
        self.beyond(&Capabilities::default())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedLimits {
    pub cpu_ms: u32,
    pub memory_mb: u32,
    /// Keep an instance between batches instead of a fresh one per batch: for plugins whose
    /// start-up (parsing configuration, building tables) costs more than their work. The
    /// plugin must not rely on memory surviving: an instance is replaced after a failure and
    /// from time to time.
    #[serde(default)]
    pub warm: bool,
}

impl Default for RequestedLimits {
    fn default() -> Self {
        Self {
            cpu_ms: 200,
            memory_mb: 64,
            warm: false,
        }
    }
}

/// What happens to a batch the plugin fails on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Retry with back-off, then keep the batch as a dead letter to inspect and replay.
    #[default]
    RetryThenDeadLetter,
    /// Log and go on.
    Skip,
    /// Refuse what was being delivered (for plugins in a synchronous path).
    Reject,
}

fn semver(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

/// Reads the manifest out of a component.
pub fn read(component: &[u8]) -> Result<Manifest, String> {
    let mut found = None;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        let payload = payload.map_err(|e| format!("not a readable WebAssembly component: {e}"))?;
        if let wasmparser::Payload::CustomSection(section) = payload
            && section.name() == SECTION
        {
            if found.is_some() {
                return Err(format!("more than one `{SECTION}` section"));
            }
            found = Some(section.data().to_vec());
        }
    }
    let bytes = found.ok_or_else(|| {
        format!("no manifest: add `monti_plugin_sdk::manifest!(\"../monti-plugin.toml\");` to the plugin (section `{SECTION}`)")
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| "the manifest is not UTF-8".to_owned())?;
    let manifest: Manifest = toml::from_str(text).map_err(|e| format!("monti-plugin.toml: {e}"))?;
    manifest.check()?;
    Ok(manifest)
}

impl Manifest {
    /// Everything wrong with it, in one message.
    pub fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.id.is_empty()
            || self.id.len() > 64
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            problems.push("`id` must be 1 to 64 lower-case letters, digits and dashes".to_owned());
        }
        if self.name.trim().is_empty() || self.name.len() > 100 {
            problems.push("`name` must be 1 to 100 characters".into());
        }
        if semver(&self.version).is_none() {
            problems.push(format!("`version` `{}` is not MAJOR.MINOR.PATCH", self.version));
        }
        match semver(&self.sdk) {
            Some((major, minor, _)) if major == CONTRACT_MAJOR && minor > CONTRACT_MINOR => problems.push(format!(
                "built against monti:plugin@{}; this host implements up to {CONTRACT_MAJOR}.{CONTRACT_MINOR} (upgrade Monti)",
                self.sdk
            )),
            Some((major, _, _)) if major == CONTRACT_MAJOR => {}
            Some(_) => problems.push(format!(
                "built against monti:plugin@{}; this host implements {CONTRACT_MAJOR}.x",
                self.sdk
            )),
            None => problems.push(format!("`sdk` `{}` is not MAJOR.MINOR.PATCH", self.sdk)),
        }
        let since = self.world.since_minor();
        if semver(&self.sdk).is_some_and(|(_, minor, _)| minor < since) {
            problems.push(format!(
                "the `{}` world needs monti:plugin@{CONTRACT_MAJOR}.{since}.0 or later",
                self.world
            ));
        }
        if self.limits.cpu_ms == 0 || self.limits.cpu_ms > MAX_CPU_MS {
            problems.push(format!("`limits.cpu_ms` must be 1 to {MAX_CPU_MS}"));
        }
        if self.limits.memory_mb == 0 || self.limits.memory_mb > MAX_MEMORY_MB {
            problems.push(format!("`limits.memory_mb` must be 1 to {MAX_MEMORY_MB}"));
        }
        if self.capabilities.kv_bytes > MAX_KV_BYTES {
            problems.push(format!("`capabilities.kv_bytes` must be at most {MAX_KV_BYTES}"));
        }
        let declared = |name: &str| {
            self.config
                .as_ref()
                .and_then(|c| c.get("properties"))
                .and_then(|p| p.get(name))
                .is_some()
        };
        let all_destinations = self
            .capabilities
            .http
            .iter()
            .chain(&self.capabilities.streams)
            .chain(self.capabilities.secrets.values());
        for destination in all_destinations {
            for name in placeholders(destination) {
                if !declared(name) {
                    problems.push(format!(
                        "`{destination}` names `${{{name}}}`, which is not a property of `config`"
                    ));
                }
            }
        }
        for destination in &self.capabilities.streams {
            match url::Url::parse(&sample(destination)) {
                Ok(u) if u.scheme() == "tcp" && u.host_str().is_some() && u.port().is_some() => {}
                Ok(u) if matches!(u.scheme(), "ws" | "wss") && u.host_str().is_some() => {}
                _ => problems.push(format!(
                    "`capabilities.streams` entry `{destination}` must be tcp://host:port or ws[s]://host[:port]"
                )),
            }
        }
        for destination in &self.capabilities.http {
            match url::Url::parse(&sample(destination)) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() && u.path() == "/" => {}
                _ => problems.push(format!(
                    "`capabilities.http` entry `{destination}` must be scheme://host[:port]"
                )),
            }
        }
        for (name, destination) in &self.capabilities.secrets {
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                problems.push(format!(
                    "secret name `{name}` must be 1 to 64 letters, digits, dashes or underscores"
                ));
            }
            if !self
                .capabilities
                .http
                .iter()
                .chain(&self.capabilities.streams)
                .any(|h| h.trim_end_matches('/') == destination.trim_end_matches('/'))
            {
                problems.push(format!(
                    "secret `{name}` is bound to `{destination}`, which is not among `capabilities.http` or `capabilities.streams`"
                ));
            }
        }
        if let Some(schema) = &self.config
            && schema.get("type").and_then(|t| t.as_str()) != Some("object")
        {
            problems.push("`config` must be a JSON Schema with `type = \"object\"`".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// The configuration fields a destination names: `tcp://${ami_host}:${ami_port}`.
fn placeholders(destination: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = destination;
    while let Some(start) = rest.find("${") {
        let Some(end) = rest[start..].find('}') else { break };
        names.push(&rest[start + 2..start + end]);
        rest = &rest[start + end + 1..];
    }
    names
}

/// A destination with sample values in its placeholders, to check its shape.
fn sample(destination: &str) -> String {
    let mut out = destination.to_owned();
    for name in placeholders(destination) {
        let placeholder = format!("${{{name}}}");
        let after_host = out
            .find(&placeholder)
            .is_some_and(|at| out[..at].ends_with(':') && out[..at].matches(':').count() >= 2);
        out = out.replacen(&placeholder, if after_host { "1" } else { "h" }, 1);
    }
    out
}

/// A destination with its placeholders filled from the installation's configuration: what the
/// tenant admin granted by configuring the plugin. `None` when a field is missing or holds
/// anything but a host name, an address or a port.
pub fn expand(destination: &str, config: &serde_json::Value) -> Option<String> {
    let mut out = destination.to_owned();
    for name in placeholders(destination) {
        let value = match config.get(name)? {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) if n.is_u64() => n.to_string(),
            _ => return None,
        };
        let plain = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
        if !plain {
            return None;
        }
        out = out.replacen(&format!("${{{name}}}"), &value, 1);
    }
    Some(out)
}

/// [`expand`] over a list, leaving out what cannot be filled.
pub fn expand_all(destinations: &[String], config: &serde_json::Value) -> Vec<String> {
    destinations.iter().filter_map(|d| expand(d, config)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upgrade_shows_only_what_is_new() {
        let approved = Capabilities {
            kv_bytes: 1024,
            emits_events: true,
            http: vec!["https://api.example.com".into()],
            secrets: [("api".to_owned(), "https://api.example.com".to_owned())].into(),
            streams: Vec::new(),
        };
        assert!(approved.beyond(&approved).is_empty());
        let upgraded = Capabilities {
            kv_bytes: 4096,
            http: vec!["https://api.example.com".into(), "https://other.example".into()],
            streams: vec!["tcp://${host}:${port}".into()],
            ..approved.clone()
        };
        assert_eq!(
            upgraded.beyond(&approved),
            [
                "store up to 4 KiB",
                "send HTTP requests to https://other.example",
                "keep a connection open to tcp://${host}:${port}",
            ]
        );
        // Asking for less needs no approval.
        assert!(Capabilities::default().beyond(&approved).is_empty());
        assert_eq!(approved.describe().len(), 4);
    }

    #[test]
    fn destinations_can_name_configuration_fields() {
        let config = serde_json::json!({ "host": "pbx.lan", "port": 5038, "evil": "a/b@c", "neg": -1 });
        assert_eq!(
            expand("tcp://${host}:${port}", &config).as_deref(),
            Some("tcp://pbx.lan:5038")
        );
        assert_eq!(expand("https://${host}", &config).as_deref(), Some("https://pbx.lan"));
        assert_eq!(
            expand("https://fixed.example", &config).as_deref(),
            Some("https://fixed.example")
        );
        // Missing fields and values that would change the URL's shape grant nothing.
        assert_eq!(expand("tcp://${missing}:1", &config), None);
        assert_eq!(expand("https://${evil}", &config), None);
        assert_eq!(expand("tcp://h:${neg}", &config), None);
        assert_eq!(sample("tcp://${host}:${port}"), "tcp://h:1");
        assert_eq!(sample("wss://${host}/ari"), "wss://h/ari");
    }

    fn manifest(text: &str) -> Result<Manifest, String> {
        let m: Manifest = toml::from_str(text).map_err(|e| e.to_string())?;
        m.check().map(|()| m)
    }

    #[test]
    fn a_good_manifest_and_each_kind_of_bad_one() {
        let good = "id = \"wellbeing\"\nname = \"Wellbeing\"\nversion = \"1.2.3\"\nworld = \"event-handler\"\nsdk = \"1.0.0\"\n";
        let m = manifest(good).unwrap();
        assert_eq!(m.limits, RequestedLimits::default());
        let templated = format!(
            "{good}[capabilities]\nstreams = [\"tcp://${{host}}:${{port}}\"]\nhttp = [\"https://${{host}}:8089\"]\n\
             [config]\ntype = \"object\"\n[config.properties.host]\ntype = \"string\"\n[config.properties.port]\ntype = \"integer\"\n"
        );
        manifest(&templated).expect("destinations from configuration");
        assert_eq!(m.failure_policy, FailurePolicy::RetryThenDeadLetter);
        for (bad, says) in [
            (good.replace("wellbeing\"", "Well Being\""), "`id`"),
            (good.replace("1.2.3", "1.2"), "`version`"),
            (
                good.replace("sdk = \"1.0.0\"", "sdk = \"2.0.0\""),
                "this host implements 1.x",
            ),
            (
                good.replace("sdk = \"1.0.0\"", "sdk = \"1.9.0\""),
                "this host implements up to 1.4",
            ),
            (good.replace("event-handler", "billing"), "unknown world `billing`"),
            (good.replace("event-handler", "connector"), "needs monti:plugin@1.2.0"),
            (
                good.replace("event-handler", "alert-handler"),
                "needs monti:plugin@1.4.0",
            ),
            (format!("{good}[limits]\ncpu_ms = 99999\nmemory_mb = 8\n"), "cpu_ms"),
            (format!("{good}[capabilities]\nhttp = [\"ftp://x\"]\n"), "scheme://host"),
            (format!("{good}[config]\ntype = \"string\"\n"), "JSON Schema"),
            (
                format!("{good}[capabilities]\nstreams = [\"tcp://${{host}}:5038\"]\n"),
                "not a property of `config`",
            ),
            (
                format!("{good}[capabilities]\nstreams = [\"tcp://pbx\"]\n"),
                "tcp://host:port",
            ),
            (format!("{good}surprise = 1\n"), "unknown field"),
        ] {
            let error = manifest(&bad).expect_err(&bad);
            assert!(error.contains(says), "{bad}\n→ {error}");
        }
    }
}

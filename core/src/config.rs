//! Configuration: built-in defaults < `monti.toml` < `MONTI_*` environment < command-line flags.
//!
//! Nested keys use `__` in the environment (`MONTI_HTTP__MAX_BODY_BYTES`). Any key can be read
//! from a file instead by appending `_FILE` (`MONTI_DATABASE_URL_FILE=/run/secrets/db`), which is
//! how container orchestrators hand out secrets.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const ENV_PREFIX: &str = "MONTI_";
/// Environment variables that steer loading itself and are not configuration keys.
const ENV_CONTROL: &[&str] = &["CONFIG"];
/// Keys whose values must never be printed or logged.
const SECRET_KEYS: &[&str] = &["database_url", "secret_key", "smtp.password", "metrics.token"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// The URL people use to reach Monti (for links in printed output); derived from `listen`
    /// when unset.
    pub public_url: Option<String>,
    /// Directory for the embedded database, generated keys and template overrides.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; defaults to `sqlite://<data_dir>/monti.db`.
    pub database_url: Option<Secret>,
    /// `pretty` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `monti=debug,tower_http=info`.
    pub log_level: String,
    /// 32 bytes, base64: encrypts stored secrets (SIP passwords). Generated into
    /// `<data_dir>/secret.key` when unset; clustered installs must share one.
    pub secret_key: Option<Secret>,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub smtp: SmtpConfig,
    pub live: LiveConfig,
    pub plugins: PluginsConfig,
    pub metrics: MetricsConfig,
    pub recordings: RecordingsConfig,
    pub reports: ReportsConfig,
}

/// Reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportsConfig {
    /// How many days before today every tenant's queue and agent report days are kept made, in
    /// the background (soon after start, then hourly), so a month's report reads kept days.
    /// 0 makes days only when a report asks for them.
    pub days_ahead: u32,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        Self { days_ahead: 31 }
    }
}

/// Where tenants' call recordings may come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RecordingsConfig {
    /// Per tenant (by slug), the directories (local or mounted) its admins may choose a
    /// recording source in: the tenant's directory must be one of these or inside one. A tenant
    /// not listed can use S3-compatible buckets only, never the server's own files; no tenant can
    /// reach a directory listed for another.
    pub directories: BTreeMap<String, Vec<PathBuf>>,
    /// How long a recording's playback link works.
    #[serde(with = "human_duration")]
    pub link_lifetime: Duration,
}

impl Default for RecordingsConfig {
    fn default() -> Self {
        Self {
            directories: BTreeMap::new(),
            link_lifetime: Duration::from_secs(15 * 60),
        }
    }
}

/// Who may read `GET /metrics`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// When set, `/metrics` answers only requests with `Authorization: Bearer <token>` (401
    /// otherwise), as Prometheus sends with `authorization: { credentials: … }`.
    pub token: Option<Secret>,
}

/// What the operator allows tenants' plugins.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PluginsConfig {
    /// Off: no plugin can be installed and none runs.
    pub enabled: bool,
    /// Plugin ids tenants may install; empty: any.
    pub allowed: Vec<String>,
    /// Tenants (slugs) whose plugins may reach private and local addresses (a PBX on the LAN).
    pub private_networks: Vec<String>,
    /// Capabilities plugins may not have, by tenant slug (`"*"`: every tenant). A plugin that
    /// asks for one cannot be installed there, and an installed one loses it.
    pub denied_capabilities: std::collections::BTreeMap<String, Vec<PluginCapability>>,
    /// Requests a second each webhook installation takes at `/hooks/…` (bursts of twice that);
    /// beyond, callers get 429 with Retry-After.
    pub hook_rate: u32,
    /// What all of a tenant's plugins together may use per minute.
    pub tenant_quota: PluginQuota,
    /// Bytes of plugin packages a tenant's installations may keep stored together; an upload
    /// beyond is refused. Operators installing with `monti plugin install` are not held to it.
    pub tenant_package_bytes: u64,
}

/// Per tenant and minute, over all its plugins.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PluginQuota {
    /// Plugin calls (batches, stream deliveries, webhook requests, heartbeats).
    pub invocations: u64,
    /// Outbound HTTP requests.
    pub http_calls: u64,
    /// Events emitted into live monitoring.
    pub events: u64,
}

impl Default for PluginQuota {
    fn default() -> Self {
        Self {
            invocations: 60_000,
            http_calls: 6_000,
            events: 1_000_000,
        }
    }
}

/// A capability an operator can take away from a tenant's plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginCapability {
    /// Outbound HTTP.
    Http,
    /// Secrets (placed into outbound HTTP).
    Secrets,
    /// Long-lived connections.
    Streams,
    /// Emitting events into live monitoring.
    EmitsEvents,
    /// Key-value storage.
    Kv,
}

impl PluginCapability {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginCapability::Http => "http",
            PluginCapability::Secrets => "secrets",
            PluginCapability::Streams => "streams",
            PluginCapability::EmitsEvents => "emits_events",
            PluginCapability::Kv => "kv",
        }
    }

    /// Whether `capabilities` asks for this one.
    pub fn requested_by(self, capabilities: &monti_plugin_host::manifest::Capabilities) -> bool {
        match self {
            PluginCapability::Http => !capabilities.http.is_empty(),
            PluginCapability::Secrets => !capabilities.secrets.is_empty(),
            PluginCapability::Streams => !capabilities.streams.is_empty(),
            PluginCapability::EmitsEvents => capabilities.emits_events,
            PluginCapability::Kv => capabilities.kv_bytes > 0,
        }
    }
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allowed: Vec::new(),
            private_networks: Vec::new(),
            denied_capabilities: Default::default(),
            hook_rate: 50,
            tenant_quota: PluginQuota::default(),
            tenant_package_bytes: 128 << 20,
        }
    }
}

impl PluginsConfig {
    /// Whether tenant `tenant_slug` may install a plugin, and why not.
    pub fn admits(&self, tenant_slug: &str, manifest: &monti_plugin_host::manifest::Manifest) -> Result<(), String> {
        let plugin_id = &manifest.id;
        if !self.enabled {
            return Err("plugins are turned off on this server".into());
        }
        if !self.allowed.is_empty() && !self.allowed.iter().any(|a| a == plugin_id) {
            return Err(format!(
                "the operator does not allow the plugin `{plugin_id}` on this server"
            ));
        }
        let refused: Vec<&str> = self
            .denied(tenant_slug)
            .into_iter()
            .filter(|c| c.requested_by(&manifest.capabilities))
            .map(PluginCapability::as_str)
            .collect();
        if !refused.is_empty() {
            return Err(format!(
                "the plugin `{plugin_id}` asks for {}, which the operator does not allow plugins in this tenant",
                refused.join(", ")
            ));
        }
        Ok(())
    }

    /// Whether a package of `size` bytes fits beside the `stored` bytes the tenant keeps.
    pub fn admits_package(&self, stored: i64, size: usize) -> Result<(), String> {
        let total = u64::try_from(stored).unwrap_or(0).saturating_add(size as u64);
        if total > self.tenant_package_bytes {
            return Err(format!(
                "the tenant's plugins would take {} MiB of storage; this server allows {} MiB per tenant",
                total.div_ceil(1 << 20),
                self.tenant_package_bytes >> 20
            ));
        }
        Ok(())
    }

    /// The capabilities denied to the tenant's plugins.
    pub fn denied(&self, tenant_slug: &str) -> Vec<PluginCapability> {
        let mut denied: Vec<PluginCapability> = ["*", tenant_slug]
            .iter()
            .filter_map(|key| self.denied_capabilities.get(*key))
            .flatten()
            .copied()
            .collect();
        denied.dedup();
        denied
    }
}

/// The live path: boards, streams and the event history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LiveConfig {
    /// How often changes are pushed to boards and streams (they are gathered in between).
    #[serde(with = "human_duration")]
    pub tick: Duration,
    /// Batches of events that may wait to be stored before senders are asked to retry (503).
    pub writer_queue: usize,
    /// Stored events older than this are deleted (history, agent timelines); at least 2 days
    /// (the live floor replays the last 24 hours at start).
    #[serde(with = "human_duration")]
    pub retention: Duration,
    /// Colour bands for time in state, per state: seconds after which an agent is shown as
    /// "warn" and as "alert". States not listed have no bands.
    pub bands: std::collections::BTreeMap<String, [u32; 2]>,
    /// A notification target hears from an alert rule at most this often; what happens in
    /// between is sent together then.
    #[serde(with = "human_duration")]
    pub alert_notify_interval: Duration,
}

impl Default for LiveConfig {
    fn default() -> Self {
        let bands = [
            ("ringing", [15, 30]),
            ("on_queue_call", [600, 1200]),
            ("on_direct_call", [900, 1800]),
            ("wrap_up", [60, 180]),
            ("paused", [900, 1800]),
            ("unavailable", [60, 300]),
        ]
        .into_iter()
        .map(|(state, band)| (state.to_owned(), band))
        .collect();
        Self {
            tick: Duration::from_millis(250),
            writer_queue: 256,
            retention: Duration::from_secs(90 * 24 * 3600),
            bands,
            alert_notify_interval: Duration::from_secs(60),
        }
    }
}

/// Outgoing email (password reset links). Unset `host` means no email is sent and admins hand
/// out reset links themselves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SmtpConfig {
    pub host: Option<String>,
    pub port: u16,
    /// `starttls` (port 587), `tls` (port 465) or `none` (a relay on the same host).
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The sender, e.g. `Monti <monti@example.com>`.
    pub from: String,
    #[serde(with = "human_duration")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    Starttls,
    Tls,
    None,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: None,
            port: 587,
            security: SmtpSecurity::Starttls,
            username: None,
            password: None,
            from: "Monti <monti@localhost>".into(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Sign-in, sessions, single sign-on and rate limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Whether people may sign in with a local password (turn off to enforce single sign-on).
    pub local_login: bool,
    /// A session unused for this long ends.
    #[serde(with = "human_duration")]
    pub session_idle_timeout: Duration,
    /// A session ends this long after sign-in, however active.
    #[serde(with = "human_duration")]
    pub session_lifetime: Duration,
    /// `Secure` session cookies; by default on when `public_url` is https.
    pub secure_cookies: Option<bool>,
    /// How long an admin-made password reset link works.
    #[serde(with = "human_duration")]
    pub password_reset_lifetime: Duration,
    /// Sign-in attempts per minute from one client address.
    pub sign_in_per_minute_per_ip: u32,
    /// Failed attempts on one account before each further attempt must wait (1 s, 2 s, 4 s …).
    pub sign_in_free_failures: u32,
    /// The longest an account waits between attempts.
    #[serde(with = "human_duration")]
    pub sign_in_max_delay: Duration,
    /// Requests per second one API token may make (0 = unlimited), and the burst above that.
    pub api_rate_per_second: f64,
    pub api_burst: u32,
    /// Events per second one tenant may send (0 = unlimited), and the burst above that.
    pub ingest_events_per_second: f64,
    pub ingest_burst: u32,
    /// Let providers that tenant admins configure use plain http and private, loopback or
    /// link-local addresses. Off by default: otherwise a tenant admin could make the server
    /// fetch internal URLs. For tests and closed networks only.
    pub tenant_providers_private: bool,
    /// Keys of an identity provider are read again on an unknown key id at most this often.
    #[serde(with = "human_duration")]
    pub key_refresh_interval: Duration,
    /// How long a verified API token is trusted without asking the database again. A token
    /// revoked on another instance (or by the CLI) keeps working on this one for up to this long;
    /// on the instance that revoked it, it stops at once.
    #[serde(with = "human_duration")]
    pub token_cache_ttl: Duration,
    /// How often an open live stream checks its credential when it hears of no change. Changes
    /// made through this instance end streams at once; this bounds (with `token_cache_ttl`) how
    /// long a change made by another instance or the CLI takes.
    #[serde(with = "human_duration")]
    pub stream_recheck_interval: Duration,
    /// Origins allowed to call the API from a browser (CORS), e.g. `https://wall.example.com`.
    pub cors_origins: Vec<String>,
    /// OpenID Connect providers for single sign-on, by id (the id appears in callback URLs).
    pub oidc: BTreeMap<String, OidcProviderConfig>,
    /// Issuers whose JWT access tokens machine clients may present, by id.
    pub jwt: BTreeMap<String, JwtIssuerConfig>,
}

/// One OpenID Connect provider (Keycloak, Entra ID, Google, AWS IAM Identity Center …).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct OidcProviderConfig {
    /// The button text: "Sign in with …".
    pub display_name: String,
    /// Issuer URL; `/.well-known/openid-configuration` is read from it.
    pub issuer: String,
    pub client_id: String,
    /// For confidential clients; public clients rely on PKCE alone.
    pub client_secret: Option<Secret>,
    pub scopes: Vec<String>,
    /// The tenant (slug) people from this provider belong to. Or set `tenant_claim`.
    pub tenant: Option<String>,
    /// A claim (dotted JSON path) holding the tenant slug, for providers shared by tenants.
    pub tenant_claim: Option<String>,
    /// Claim (dotted JSON path) holding the values mapped to roles: `groups`,
    /// `realm_access.roles`, `resource_access.monti.roles` …
    pub roles_claim: String,
    /// Claim value → role (`tenant_admin`, `supervisor`, `agent`, `viewer`, `platform_admin`).
    /// Values are compared exactly: names, Keycloak group paths, opaque group ids.
    pub role_map: BTreeMap<String, String>,
    /// Role for people whose claims map to none; unset means they get no access.
    pub default_role: Option<String>,
    pub email_claim: String,
    pub name_claim: String,
    /// Also ask the userinfo endpoint for claims (some providers put groups only there).
    pub use_userinfo: bool,
}

/// An issuer of JWT access tokens for machine clients.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct JwtIssuerConfig {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud` (one of).
    pub audience: Vec<String>,
    /// Where the signing keys are; discovered from the issuer when unset.
    pub jwks_url: Option<String>,
    pub tenant: Option<String>,
    pub tenant_claim: Option<String>,
    pub roles_claim: String,
    pub role_map: BTreeMap<String, String>,
    pub default_role: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// A request taking longer than this is answered with 503.
    #[serde(with = "human_duration")]
    pub request_timeout: Duration,
    /// How long a shutdown waits for in-flight requests.
    #[serde(with = "human_duration")]
    pub shutdown_grace: Duration,
    /// Memory for cached list pages (0 turns the cache off).
    pub list_cache_bytes: usize,
    /// Largest event batch accepted by `POST /api/v1/events`, in bytes.
    pub max_ingest_bytes: usize,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
    /// A host of its own for `/hooks/…` (as in the `Host` header, e.g. `hooks.example.com`):
    /// when set, hooks are answered only there and nothing else is served on it, so plugin
    /// answers never share the UI's origin.
    pub hooks_host: Option<String>,
    /// Refused anonymous requests (unknown hooks, forms without a CSRF token, uploads before
    /// signing in, API calls without a valid credential) one client address may make per
    /// second on average before it is held off (0 turns the hold off).
    pub anonymous_refusals_per_second: f64,
    /// How many of those refusals an address may make at once.
    pub anonymous_refusal_burst: u32,
    /// How long an address that spent its refusal budget is held off: its new connections are
    /// closed on arrival and its requests answered 429.
    #[serde(with = "human_duration")]
    pub refused_client_hold: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    pub max_connections: u32,
    #[serde(with = "human_duration")]
    pub acquire_timeout: Duration,
    /// How long SQLite waits for a lock before giving up.
    #[serde(with = "human_duration")]
    pub sqlite_busy_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            data_dir: PathBuf::from("monti-data"),
            database_url: None,
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
            secret_key: None,
            http: HttpConfig::default(),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            smtp: SmtpConfig::default(),
            live: LiveConfig::default(),
            plugins: PluginsConfig::default(),
            metrics: MetricsConfig::default(),
            recordings: RecordingsConfig::default(),
            reports: ReportsConfig::default(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            local_login: true,
            session_idle_timeout: Duration::from_secs(12 * 3600),
            session_lifetime: Duration::from_secs(7 * 24 * 3600),
            secure_cookies: None,
            password_reset_lifetime: Duration::from_secs(24 * 3600),
            sign_in_per_minute_per_ip: 30,
            sign_in_free_failures: 5,
            sign_in_max_delay: Duration::from_secs(15 * 60),
            api_rate_per_second: 100.0,
            api_burst: 200,
            ingest_events_per_second: 20_000.0,
            ingest_burst: 100_000,
            tenant_providers_private: false,
            key_refresh_interval: Duration::from_secs(10),
            token_cache_ttl: Duration::from_secs(5),
            stream_recheck_interval: Duration::from_secs(5),
            cors_origins: Vec::new(),
            oidc: BTreeMap::new(),
            jwt: BTreeMap::new(),
        }
    }
}

impl OidcProviderConfig {
    /// Fills in the conventional defaults for fields left empty.
    pub fn normalized(mut self, id: &str) -> Self {
        if self.display_name.is_empty() {
            self.display_name = id.to_owned();
        }
        if self.scopes.is_empty() {
            self.scopes = vec!["openid".into(), "email".into(), "profile".into()];
        }
        if self.roles_claim.is_empty() {
            self.roles_claim = "groups".into();
        }
        if self.email_claim.is_empty() {
            self.email_claim = "email".into();
        }
        if self.name_claim.is_empty() {
            self.name_claim = "name".into();
        }
        self
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            list_cache_bytes: 64 * 1024 * 1024,
            max_ingest_bytes: 16 * 1024 * 1024,
            trust_forwarded_for: false,
            hooks_host: None,
            anonymous_refusals_per_second: 10.0,
            anonymous_refusal_burst: 200,
            refused_client_hold: Duration::from_secs(30),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            sqlite_busy_timeout: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// The database URL in force: the configured one or the embedded SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("monti.db").display()),
        }
    }

    /// Whether cookies get the `Secure` attribute.
    pub fn secure_cookies(&self) -> bool {
        self.auth
            .secure_cookies
            .unwrap_or_else(|| self.public_url().starts_with("https://"))
    }

    pub fn public_url(&self) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let host = if self.listen.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else if self.listen.is_ipv6() {
            format!("[{}]", self.listen.ip())
        } else {
            self.listen.ip().to_string()
        };
        format!("http://{host}:{}", self.listen.port())
    }

    /// The configuration as TOML with every secret replaced.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database_url = self
            .database_url
            .as_ref()
            .map(|url| Secret(redact_url_password(url.expose())));
        shown.secret_key = self.secret_key.as_ref().map(|_| Secret("[redacted]".into()));
        if shown.smtp.password.is_some() {
            shown.smtp.password = Some(Secret("[redacted]".into()));
        }
        if shown.metrics.token.is_some() {
            shown.metrics.token = Some(Secret("[redacted]".into()));
        }
        for provider in shown.auth.oidc.values_mut() {
            if provider.client_secret.is_some() {
                provider.client_secret = Some(Secret("[redacted]".into()));
            }
        }
        let mut out = String::from("# Effective configuration (secrets redacted)\n");
        if shown.database_url.is_none() {
            out.push_str(&format!("# database_url = \"{}\"  (default)\n", self.database_url()));
        }
        out.push_str(&toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n")));
        out
    }
}

/// A configuration value that must not appear in logs or printed output.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Replaces the password in `scheme://user:password@host/...` with `****`.
pub fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            format!("{}://{}:****{}", &url[..scheme_end], &authority[..colon], &rest[at..])
        }
        _ => url.to_owned(),
    }
}

/// Values given on the command line; `None` leaves the lower layers in force.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CliOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

/// Where configuration comes from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// An explicit config file (`--config` / `MONTI_CONFIG`); must exist.
    pub file: Option<PathBuf>,
    pub overrides: CliOverrides,
}

/// One problem found while loading or checking configuration, with the key and where it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub source: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` ({}): {}", self.key, self.source, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

/// A loaded configuration plus the warnings worth showing (unknown keys).
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Problem>,
}

fn default_config_file() -> Option<PathBuf> {
    let candidate = PathBuf::from("monti.toml");
    candidate.exists().then_some(candidate)
}

fn figment(sources: &Sources, env: &[(String, String)]) -> Result<Figment, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    let file = sources
        .file
        .clone()
        .or_else(|| lookup(env, "MONTI_CONFIG").map(PathBuf::from))
        .or_else(default_config_file);
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError {
                problems: vec![Problem {
                    key: "config".into(),
                    source: "command line / MONTI_CONFIG".into(),
                    message: format!("config file {} does not exist", path.display()),
                }],
            });
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let env = EnvVars::new(env)?;
    Ok(figment.merge(env).merge(Serialized::globals(&sources.overrides)))
}

fn lookup<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// `MONTI_*` variables as a figment provider. We do not use figment's own `Env` because it
/// reads the process environment directly; taking the pairs explicitly keeps loading a pure
/// function of its inputs (and testable), and lets `*_FILE` variables be resolved here.
struct EnvVars {
    values: Dict,
}

impl EnvVars {
    fn new(env: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut values = Dict::new();
        let mut problems = Vec::new();
        for (name, raw) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if ENV_CONTROL.contains(&rest) {
                continue;
            }
            let (rest, from_file) = match rest.strip_suffix("_FILE") {
                Some(stem) => (stem, true),
                None => (rest, false),
            };
            let key = rest.to_ascii_lowercase().replace("__", ".");
            let value = if from_file {
                match std::fs::read_to_string(raw) {
                    Ok(content) => Value::from(content.trim_end_matches(['\r', '\n']).to_owned()),
                    Err(e) => {
                        problems.push(Problem {
                            key,
                            source: format!("environment variable {name}"),
                            message: format!("cannot read {raw}: {e}"),
                        });
                        continue;
                    }
                }
            } else if is_secret_key(&key) {
                // Secrets are strings; never let them be reinterpreted as numbers.
                Value::from(raw.clone())
            } else {
                raw.parse::<Value>().unwrap_or_else(|never| match never {})
            };
            if let Value::Dict(_, nested) = figment::util::nest(&key, value) {
                merge_dict(&mut values, nested);
            }
        }
        if problems.is_empty() {
            Ok(Self { values })
        } else {
            Err(ConfigError { problems })
        }
    }
}

fn merge_dict(into: &mut Dict, from: Dict) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Dict(_, existing)), Value::Dict(_, incoming)) => merge_dict(existing, incoming),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

impl Provider for EnvVars {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable")
            .interpolater(|_profile, keys| format!("{ENV_PREFIX}{}", keys.join("__").to_ascii_uppercase()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

/// Loads configuration from the process environment.
pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
    load_with_env(sources, &env)
}

/// Loads configuration from the given `MONTI_*` variables (for tests and tooling).
pub fn load_with_env(sources: &Sources, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let figment = figment(sources, env)?;
    let config: Config = figment.extract().map_err(|e| ConfigError {
        problems: e
            .into_iter()
            .map(|err| {
                let key = if err.path.is_empty() {
                    "(root)".to_owned()
                } else {
                    err.path.join(".")
                };
                let source = match &err.metadata {
                    Some(meta) => describe_metadata(meta, &err.path),
                    None => "unknown source".into(),
                };
                Problem {
                    key,
                    source,
                    message: err.kind.to_string(),
                }
            })
            .collect(),
    })?;
    let mut problems = validate(&config, &figment);
    if !problems.is_empty() {
        problems.sort_by(|a, b| a.key.cmp(&b.key));
        return Err(ConfigError { problems });
    }
    Ok(Loaded {
        config,
        warnings: unknown_keys(&figment),
    })
}

fn describe_metadata(meta: &figment::Metadata, path: &[String]) -> String {
    if meta.name == "environment variable" {
        let keys: Vec<&str> = path.iter().map(String::as_str).collect();
        return format!("{} {}", meta.name, meta.interpolate(&Profile::Default, &keys));
    }
    describe_source(meta)
}

fn describe_source(meta: &figment::Metadata) -> String {
    match &meta.source {
        Some(figment::Source::File(path)) => format!("{} {}", meta.name, path.display()),
        Some(other) => format!("{} {other}", meta.name),
        None => meta.name.to_string(),
    }
}

fn source_of(figment: &Figment, key: &str) -> String {
    let path: Vec<String> = key.split('.').map(str::to_owned).collect();
    figment
        .find_metadata(key)
        .map(|meta| describe_metadata(meta, &path))
        .unwrap_or_else(|| "default".into())
}

/// The host (and port) of the public URL, as browsers send it in `Host`.
fn public_host(config: &Config) -> Option<String> {
    let url = url::Url::parse(&config.public_url()).ok()?;
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

fn validate(config: &Config, figment: &Figment) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut bad = |key: &str, message: String| {
        problems.push(Problem {
            key: key.into(),
            source: source_of(figment, key),
            message,
        });
    };
    let url = config.database_url();
    if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        bad(
            "database_url",
            format!(
                "unsupported database URL `{}`: use sqlite://PATH or postgres://USER@HOST/DB",
                redact_url_password(&url)
            ),
        );
    }
    if let Some(key) = &config.secret_key
        && crate::secrets::SecretBox::from_base64(key.expose()).is_err()
    {
        bad(
            "secret_key",
            "must be 32 random bytes encoded as base64 (try `openssl rand -base64 32`)".into(),
        );
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&config.log_level) {
        bad("log_level", format!("not a valid filter: {e}"));
    }
    if let Some(host) = &config.http.hooks_host
        && (host.is_empty() || host.contains(['/', ' ', '@']) || public_host(config).as_deref() == Some(host.as_str()))
    {
        bad(
            "http.hooks_host",
            "must be a host name (with a port if not the default), e.g. hooks.example.com, other than the public URL's"
                .into(),
        );
    }
    if config.http.max_body_bytes < 1024 {
        bad("http.max_body_bytes", "must be at least 1024".into());
    }
    if config
        .metrics
        .token
        .as_ref()
        .is_some_and(|t| t.expose().trim().is_empty())
    {
        bad(
            "metrics.token",
            "must not be empty; leave it unset to serve /metrics without a token".into(),
        );
    }
    for (tenant, dirs) in &config.recordings.directories {
        for dir in dirs {
            if !dir.is_absolute() || dir.components().any(|c| c == std::path::Component::ParentDir) {
                bad(
                    &format!("recordings.directories.{tenant}"),
                    format!("`{}` must be an absolute path without `..`", dir.display()),
                );
            }
        }
    }
    if !(Duration::from_secs(10)..=Duration::from_secs(24 * 3600)).contains(&config.recordings.link_lifetime) {
        bad("recordings.link_lifetime", "must be from 10s to 24h".into());
    }
    if config.auth.token_cache_ttl > Duration::from_secs(3600) {
        bad("auth.token_cache_ttl", "must be at most 1h".into());
    }
    if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&config.auth.stream_recheck_interval) {
        bad("auth.stream_recheck_interval", "must be from 100ms to 1h".into());
    }
    if !(Duration::from_millis(20)..=Duration::from_secs(10)).contains(&config.live.tick) {
        bad("live.tick", "must be from 20ms to 10s".into());
    }
    if config.live.writer_queue == 0 {
        bad("live.writer_queue", "must be at least 1".into());
    }
    if config.live.retention < Duration::from_secs(2 * 24 * 3600) {
        bad("live.retention", "must be at least 2 days".into());
    }
    for (state, [warn, alert]) in &config.live.bands {
        if !crate::domain::events::AgentState::ALL
            .iter()
            .any(|s| s.as_str() == state)
        {
            bad(&format!("live.bands.{state}"), "not an agent state".into());
        } else if warn >= alert {
            bad(
                &format!("live.bands.{state}"),
                "the warn threshold must be below the alert threshold".into(),
            );
        }
    }
    let refusals = config.http.anonymous_refusals_per_second;
    if !refusals.is_finite() || refusals < 0.0 {
        bad(
            "http.anonymous_refusals_per_second",
            "must be a number of at least 0".into(),
        );
    }
    if config.database.max_connections == 0 {
        bad("database.max_connections", "must be at least 1".into());
    }
    if let Some(url) = &config.public_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        bad("public_url", "must start with http:// or https://".into());
    }
    let role = |value: &str| {
        value
            .parse::<crate::domain::Role>()
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    for (id, provider) in &config.auth.oidc {
        let key = |field: &str| format!("auth.oidc.{id}.{field}");
        if !crate::domain::validate::slug(id).is_ok_and(|s| s == *id) {
            bad(
                &format!("auth.oidc.{id}"),
                "provider ids must be lowercase letters, digits and dashes".into(),
            );
        }
        if !(provider.issuer.starts_with("https://") || provider.issuer.starts_with("http://")) {
            bad(&key("issuer"), "must be the provider's issuer URL (https://…)".into());
        }
        if provider.client_id.is_empty() {
            bad(&key("client_id"), "is required".into());
        }
        if provider.tenant.is_some() && provider.tenant_claim.is_some() {
            bad(
                &key("tenant_claim"),
                "set either `tenant` or `tenant_claim`, not both".into(),
            );
        }
        for (value, mapped) in &provider.role_map {
            if let Err(e) = role(mapped) {
                bad(&key(&format!("role_map.\"{value}\"")), e);
            }
        }
        if let Some(Err(e)) = provider.default_role.as_deref().map(role) {
            bad(&key("default_role"), e);
        }
    }
    for (id, issuer) in &config.auth.jwt {
        let key = |field: &str| format!("auth.jwt.{id}.{field}");
        if issuer.issuer.is_empty() {
            bad(&key("issuer"), "is required".into());
        }
        if issuer.audience.is_empty() {
            bad(&key("audience"), "name at least one accepted audience".into());
        }
        if issuer.tenant.is_none() && issuer.tenant_claim.is_none() {
            bad(
                &key("tenant"),
                "set `tenant` or `tenant_claim` so tokens map to a tenant".into(),
            );
        }
        for (value, mapped) in &issuer.role_map {
            if let Err(e) = role(mapped) {
                bad(&key(&format!("role_map.\"{value}\"")), e);
            }
        }
        if let Some(Err(e)) = issuer.default_role.as_deref().map(role) {
            bad(&key("default_role"), e);
        }
    }
    if config.smtp.host.is_some() && config.smtp.from.parse::<lettre::message::Mailbox>().is_err() {
        bad(
            "smtp.from",
            "must be an address such as `Monti <monti@example.com>`".into(),
        );
    }
    if config.auth.session_idle_timeout > config.auth.session_lifetime {
        bad(
            "auth.session_idle_timeout",
            "must not be longer than auth.session_lifetime".into(),
        );
    }
    problems
}

/// Keys present in the merged configuration that Monti does not know.
fn unknown_keys(figment: &Figment) -> Vec<Problem> {
    let known = match serde_json::to_value(Config::default()) {
        Ok(value) => key_paths(&value),
        Err(_) => return Vec::new(),
    };
    let Ok(value) = figment.extract::<serde_json::Value>() else {
        return Vec::new();
    };
    // Named entries (`auth.oidc.<id>.…`) are checked against the fields of one entry.
    let entry_fields = |entry: serde_json::Value| key_paths(&entry);
    let named: [(&str, BTreeSet<String>); 2] = [
        (
            "auth.oidc.",
            entry_fields(serde_json::to_value(OidcProviderConfig::default()).unwrap_or_default()),
        ),
        (
            "auth.jwt.",
            entry_fields(serde_json::to_value(JwtIssuerConfig::default()).unwrap_or_default()),
        ),
    ];
    let known_named = |key: &str| {
        named.iter().any(|(prefix, fields)| {
            key.strip_prefix(prefix)
                .and_then(|rest| rest.split_once('.'))
                .is_some_and(|(_, field)| {
                    fields.contains(field) || fields.iter().any(|f| field.starts_with(&format!("{f}.")))
                })
        })
    };
    key_paths(&value)
        .into_iter()
        .filter(|k| !known.contains(k) && !known.iter().any(|kn| k.starts_with(&format!("{kn}."))))
        .filter(|k| !known_named(k))
        // Any state may have bands; `validate` names the ones that are not states.
        .filter(|k| !k.starts_with("live.bands."))
        .map(|key| Problem {
            source: source_of(figment, &key),
            message: "unknown key, ignored".into(),
            key,
        })
        .collect()
}

fn key_paths(value: &serde_json::Value) -> BTreeSet<String> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut BTreeSet<String>) {
        if let serde_json::Value::Object(map) = value {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if v.is_object() {
                    walk(&path, v, out);
                } else {
                    out.insert(path);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk("", value, &mut out);
    out
}

/// Whether a key holds a secret (for callers that print individual values).
pub fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.contains(&key) || key.ends_with(".client_secret")
}

/// Resolves the data directory and makes sure it exists and is writable.
pub fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let probe = dir.join(".monti-write-check");
    std::fs::write(&probe, b"ok").with_context(|| format!("data directory {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(s) => Ok(Duration::from_secs(s)),
            Raw::Text(t) => humantime::parse_duration(&t)
                .map_err(|e| serde::de::Error::custom(format!("`{t}` is not a duration like 30s or 5m: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn redacts_password_in_url() {
        assert_eq!(
            redact_url_password("postgres://monti:hunter2@db:5432/monti"),
            "postgres://monti:****@db:5432/monti"
        );
        assert_eq!(redact_url_password("sqlite://data/monti.db"), "sqlite://data/monti.db");
        assert_eq!(
            redact_url_password("postgres://monti@db/monti"),
            "postgres://monti@db/monti"
        );
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret([redacted])");
    }

    #[test]
    fn human_durations_parse() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            file.path(),
            "[http]\nrequest_timeout = \"2m\"\n[database]\nacquire_timeout = 7\n",
        )
        .unwrap();
        let loaded = load_with_env(
            &Sources {
                file: Some(file.path().into()),
                ..Default::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(loaded.config.http.request_timeout, Duration::from_secs(120));
        assert_eq!(loaded.config.database.acquire_timeout, Duration::from_secs(7));
        let _ = env(&[]);
    }
}

//! The host side of the contract: what each import does for a plugin instance.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

// The host interfaces (the `imports` world every other world includes), generated once; each
// world's bindings below reuse them, so one implementation serves every world. The contract is
// the newest published one: plugins built against an earlier 1.x import the same interfaces at
// their older version, which the linker satisfies with these.
wasmtime::component::bindgen!({
    world: "imports",
    path: "../../sdk/wit/1.4.0",
    with: {
        "monti:plugin/secrets.secret": SecretHandle,
    },
    imports: { default: trappable },
});

/// One world's bindings (its exports), with the host interfaces above.
macro_rules! world {
    ($(#[$doc:meta])* $module:ident, $world:literal) => {
        $(#[$doc])*
        pub mod $module {
            wasmtime::component::bindgen!({
                world: $world,
                path: "../../sdk/wit/1.4.0",
                with: {
                    "monti:plugin/types": super::monti::plugin::types,
                    "monti:plugin/log": super::monti::plugin::log,
                    "monti:plugin/config": super::monti::plugin::config,
                    "monti:plugin/kv": super::monti::plugin::kv,
                    "monti:plugin/secrets": super::monti::plugin::secrets,
                    "monti:plugin/http": super::monti::plugin::http,
                    "monti:plugin/events": super::monti::plugin::events,
                    "monti:plugin/streams": super::monti::plugin::streams,
                },
                imports: { default: trappable },
            });
        }
    };
}

world!(
    /// The `event-handler` world: `handle-events` and `on-stream`.
    event_handler,
    "event-handler"
);
world!(
    /// The `webhook` world: `handle-request`.
    webhook,
    "webhook"
);
world!(
    /// The `connector` world (1.2): the event handler's exports, and `handle-command`.
    connector,
    "connector"
);
world!(
    /// The `alert-handler` world (1.4): `handle-alerts`.
    alert_handler,
    "alert-handler"
);

use monti::plugin::types::{Denied, Event};
use monti::plugin::{config, events, http, kv, log, secrets, streams};

/// A secret the plugin asked for, by name; the value stays with the host.
pub struct SecretHandle {
    pub name: String,
}

/// Lines kept from one invocation (the newest win beyond this).
pub const MAX_LOG_LINES: usize = 200;
/// Longest log line kept, in bytes.
pub const MAX_LOG_LINE: usize = 2_000;

/// Everything one instance may touch.
pub struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub config_json: String,
    pub kv: BTreeMap<String, Vec<u8>>,
    pub kv_quota_bytes: usize,
    /// Whether this call wrote to the store (else the caller need not persist it).
    pub kv_changed: bool,
    pub max_emit: usize,
    pub emitted: Vec<Event>,
    pub logs: Vec<(log::Level, String)>,
    /// Granted secrets: name → (the origin it is bound to, value). Values never cross to the guest.
    pub secrets: BTreeMap<String, ((String, String, u16), String)>,
    /// Secrets put into requests: (name, destination).
    pub secret_uses: Vec<(String, String)>,
    pub http: HttpAccess,
    /// Granted stream destinations (see [`stream_destination`]) and who keeps them.
    pub streams: StreamAccess,
    /// Calls into the host this invocation made.
    pub host_calls: u32,
    /// Outbound requests that left: (destination origin, status; `None` when none came back).
    pub http_log: Vec<(String, Option<u16>)>,
}

/// Streams for one invocation.
#[derive(Default)]
pub struct StreamAccess {
    pub granted: Vec<String>,
    pub broker: Option<Arc<dyn StreamBroker>>,
}

/// Outbound HTTP for one invocation: where it may go, and how much.
pub struct HttpAccess {
    /// Granted destinations: (scheme, host, port).
    pub origins: Vec<(String, String, u16)>,
    /// The operator lets this tenant's plugins reach private addresses (a PBX on the LAN).
    pub allow_private: bool,
    /// Where requests go (`None`: no HTTP here).
    pub outbound: Option<Arc<dyn Outbound>>,
    pub calls_left: u32,
    /// When the invocation's wall-clock budget for waiting on the network ends.
    pub deadline: std::time::Instant,
    /// Time spent waiting on the network so far (not counted as the plugin's CPU time).
    pub waited: std::time::Duration,
}

/// Largest response body handed to a plugin.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// Longest an outbound call may take.
pub const MAX_HTTP_TIME: std::time::Duration = std::time::Duration::from_secs(10);

fn origin_of(url: &url::Url) -> Option<(String, String, u16)> {
    Some((
        url.scheme().to_owned(),
        url.host_str()?.to_ascii_lowercase(),
        url.port_or_known_default()?,
    ))
}

/// Parses `scheme://host[:port]` destinations as the manifest lists them.
pub fn origins(destinations: &[String]) -> Vec<(String, String, u16)> {
    destinations
        .iter()
        .filter_map(|d| url::Url::parse(d).ok())
        .filter_map(|u| origin_of(&u))
        .collect()
}

/// Where outbound HTTP goes once the host has checked it against the grants and placed any
/// secret. Monti's server sends it over the network ([`NetworkOutbound`]); the authors' test
/// harness answers from its script and records what the plugin sent.
pub trait Outbound: Send + Sync {
    /// Blocking: called from the thread that runs the plugin.
    fn send(
        &self,
        request: http::Request,
        url: url::Url,
        allow_private: bool,
    ) -> Result<http::Response, http::HttpError>;
}

/// Sends plugins' requests over the network from a tokio runtime: every resolved address is
/// checked (no loopback, private, link-local or metadata addresses unless the operator allows
/// them) and the checked addresses are the ones connected to; no redirects; size and time caps.
pub struct NetworkOutbound {
    runtime: tokio::runtime::Handle,
}

impl NetworkOutbound {
    /// Sends on the runtime this is called from (`None` outside one).
    pub fn current() -> Option<Self> {
        Some(Self {
            runtime: tokio::runtime::Handle::try_current().ok()?,
        })
    }
}

impl Outbound for NetworkOutbound {
    fn send(
        &self,
        request: http::Request,
        url: url::Url,
        allow_private: bool,
    ) -> Result<http::Response, http::HttpError> {
        // Plugins run on a blocking thread of the runtime, where blocking on it is allowed.
        self.runtime.block_on(fetch(request, url, allow_private))
    }
}

/// Keeps long-lived connections for one installation (`streams` in the contract) and delivers
/// what arrives to the plugin's `on-stream` export, outside the call that opened them. The host
/// has already checked the target against the installation's grants.
pub trait StreamBroker: Send + Sync {
    /// Opens a connection, or returns the one already open under `name`. `headers` go on a
    /// WebSocket's upgrade request (the host placed a secret there); none for TCP.
    fn open(&self, name: &str, target: &streams::Target, headers: Vec<(String, String)>) -> Result<u32, String>;
    fn send(&self, id: u32, data: Vec<u8>) -> Result<(), String>;
    fn close(&self, id: u32);
    /// Where an open stream leads, as [`stream_destination`] writes it.
    fn destination(&self, id: u32) -> Option<String>;
}

/// A stream target as the manifest lists them: `tcp://host:port` or a `ws://`/`wss://` URL.
pub fn stream_destination(target: &streams::Target) -> String {
    match target {
        streams::Target::TcpLines((host, port)) => format!("tcp://{}:{port}", host.to_ascii_lowercase()),
        streams::Target::Websocket(url) => url::Url::parse(url).ok().and_then(|u| origin_of(&u)).map_or_else(
            || url.clone(),
            |(scheme, host, port)| format!("{scheme}://{host}:{port}"),
        ),
    }
}

/// Normalises granted stream destinations to the form [`stream_destination`] gives.
pub fn stream_grants(destinations: &[String]) -> Vec<String> {
    destinations
        .iter()
        .filter_map(|d| {
            let url = url::Url::parse(d).ok()?;
            let host = url.host_str()?.to_ascii_lowercase();
            match url.scheme() {
                "tcp" => Some(format!("tcp://{host}:{}", url.port()?)),
                "ws" | "wss" => origin_of(&url).map(|(s, h, p)| format!("{s}://{h}:{p}")),
                _ => None,
            }
        })
        .collect()
}

async fn fetch(request: http::Request, url: url::Url, allow_private: bool) -> Result<http::Response, http::HttpError> {
    let transport = |e: &dyn std::fmt::Display| http::HttpError::Transport(e.to_string());
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| transport(&format!("{host} does not resolve: {e}")))?
        .collect();
    if !allow_private && addresses.iter().any(|a| !crate::net::is_public(a.ip())) {
        return Err(http::HttpError::Denied(Denied::NotGranted(format!(
            "{host} resolves to a private or local address"
        ))));
    }
    // The checked addresses are the ones connected to (no second lookup to rebind).
    let client = reqwest::Client::builder()
        .resolve_to_addrs(&host, &addresses)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(request.timeout_ms.map_or(MAX_HTTP_TIME, |ms| {
            std::time::Duration::from_millis(u64::from(ms)).min(MAX_HTTP_TIME)
        }))
        .build()
        .map_err(|e| transport(&e))?;
    let method = reqwest::Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| transport(&format!("`{}` is not an HTTP method", request.method)))?;
    let mut builder = client.request(method, url);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    if let Some(body) = request.body {
        builder = builder.body(body);
    }
    let mut response = builder.send().await.map_err(|e| transport(&e))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(http::HttpError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(http::Response { status, headers, body })
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    fn kv_bytes(&self) -> usize {
        self.kv.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    pub fn push_log(&mut self, level: log::Level, message: &str) {
        if self.logs.len() >= MAX_LOG_LINES {
            self.logs.remove(0);
        }
        let mut line = message.to_owned();
        if line.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        self.logs.push((level, line));
    }
}

type HostResult<T> = wasmtime::Result<T>;

impl HostState {
    /// An outbound request, checked against the grants, quotas and time left, then sent.
    fn send_granted(&mut self, request: http::Request) -> HostResult<Result<http::Response, http::HttpError>> {
        let Ok(url) = url::Url::parse(&request.url) else {
            return Ok(Err(http::HttpError::Transport(format!(
                "`{}` is not a URL",
                request.url
            ))));
        };
        let granted = origin_of(&url).is_some_and(|o| self.http.origins.contains(&o));
        if !granted {
            return Ok(Err(http::HttpError::Denied(Denied::NotGranted(format!(
                "outbound HTTP to {} is not granted to this installation",
                url.origin().ascii_serialization()
            )))));
        }
        if self.http.calls_left == 0 {
            return Ok(Err(http::HttpError::Denied(Denied::QuotaExceeded(
                "no more outbound calls in this invocation".into(),
            ))));
        }
        self.http.calls_left -= 1;
        let left = self.http.deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(Err(http::HttpError::Transport(
                "this invocation's time for outbound calls is used up".into(),
            )));
        }
        let mut request = request;
        let asked = request
            .timeout_ms
            .map_or(MAX_HTTP_TIME, |ms| std::time::Duration::from_millis(u64::from(ms)));
        request.timeout_ms = Some(asked.min(left).as_millis().max(1) as u32);
        let Some(outbound) = self.http.outbound.clone() else {
            return Ok(Err(http::HttpError::Transport(
                "outbound HTTP is not available here".into(),
            )));
        };
        let started = std::time::Instant::now();
        let destination = url.origin().ascii_serialization();
        let fetched = outbound.send(request, url, self.http.allow_private);
        self.http.waited += started.elapsed();
        self.http_log
            .push((destination, fetched.as_ref().ok().map(|r| r.status)));
        Ok(fetched)
    }
}

impl monti::plugin::types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) -> HostResult<()> {
        self.host_calls += 1;
        self.push_log(level, &message);
        Ok(())
    }
}

impl config::Host for HostState {
    fn get(&mut self) -> HostResult<String> {
        self.host_calls += 1;
        Ok(self.config_json.clone())
    }
}

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> HostResult<Option<Vec<u8>>> {
        self.host_calls += 1;
        Ok(self.kv.get(&key).cloned())
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> HostResult<Result<(), Denied>> {
        self.host_calls += 1;
        let old = self.kv.get(&key).map_or(0, |v| key.len() + v.len());
        if self.kv_bytes() - old + key.len() + value.len() > self.kv_quota_bytes {
            return Ok(Err(Denied::QuotaExceeded(format!(
                "the key-value store holds at most {} bytes",
                self.kv_quota_bytes
            ))));
        }
        self.kv_changed = true;
        self.kv.insert(key, value);
        Ok(Ok(()))
    }

    fn delete(&mut self, key: String) -> HostResult<()> {
        self.host_calls += 1;
        self.kv_changed |= self.kv.remove(&key).is_some();
        Ok(())
    }

    fn keys(&mut self, prefix: String) -> HostResult<Vec<String>> {
        self.host_calls += 1;
        Ok(self.kv.keys().filter(|k| k.starts_with(&prefix)).cloned().collect())
    }
}

impl secrets::HostSecret for HostState {
    fn name(&mut self, secret: Resource<SecretHandle>) -> HostResult<String> {
        self.host_calls += 1;
        Ok(self.table.get(&secret)?.name.clone())
    }

    fn drop(&mut self, secret: Resource<SecretHandle>) -> HostResult<()> {
        self.host_calls += 1;
        self.table.delete(secret)?;
        Ok(())
    }
}

impl secrets::Host for HostState {
    fn get(&mut self, name: String) -> HostResult<Result<Resource<SecretHandle>, Denied>> {
        self.host_calls += 1;
        if !self.secrets.contains_key(&name) {
            return Ok(Err(Denied::NotGranted(format!("no secret `{name}` is configured"))));
        }
        Ok(Ok(self.table.push(SecretHandle { name })?))
    }
}

impl http::Host for HostState {
    fn send(&mut self, request: http::Request) -> HostResult<Result<http::Response, http::HttpError>> {
        self.host_calls += 1;
        self.send_granted(request)
    }

    fn send_with_secret(
        &mut self,
        mut request: http::Request,
        secret: Resource<SecretHandle>,
        placement: http::Placement,
    ) -> HostResult<Result<http::Response, http::HttpError>> {
        self.host_calls += 1;
        let name = self.table.get(&secret)?.name.clone();
        let Some((bound, value)) = self.secrets.get(&name).cloned() else {
            return Ok(Err(http::HttpError::Denied(Denied::NotGranted(format!(
                "no secret `{name}`"
            )))));
        };
        let destination = url::Url::parse(&request.url).ok().and_then(|u| origin_of(&u));
        if destination.as_ref() != Some(&bound) {
            return Ok(Err(http::HttpError::Denied(Denied::NotGranted(format!(
                "secret `{name}` may only be sent to {}://{}:{}",
                bound.0, bound.1, bound.2
            )))));
        }
        // The plugin cannot set the header the secret goes into.
        let (header, header_value) = placed(placement, value);
        request.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&header));
        request.headers.push((header, header_value));
        self.secret_uses
            .push((name, format!("{}://{}:{}", bound.0, bound.1, bound.2)));
        self.send_granted(request)
    }
}

/// The header a secret goes into, and its value.
fn placed(placement: http::Placement, value: String) -> (String, String) {
    match placement {
        http::Placement::Bearer => ("authorization".to_owned(), format!("Bearer {value}")),
        http::Placement::Basic(user) => {
            use base64::Engine as _;
            let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{value}"));
            ("authorization".to_owned(), format!("Basic {pair}"))
        }
        http::Placement::Header(name) => (name.to_ascii_lowercase(), value),
    }
}

/// A stream destination as the HTTP origin it is for grants and secret bindings: a WebSocket's
/// upgrade is an HTTP request (`ws://h:p` → `http://h:p`, `wss` → `https`).
fn as_http_origin(destination: &str) -> String {
    if let Some(rest) = destination.strip_prefix("ws://") {
        format!("http://{rest}")
    } else if let Some(rest) = destination.strip_prefix("wss://") {
        format!("https://{rest}")
    } else {
        destination.to_owned()
    }
}

impl HostState {
    fn open_stream(
        &mut self,
        name: String,
        target: streams::Target,
        headers: Vec<(String, String)>,
    ) -> Result<u32, Denied> {
        let destination = stream_destination(&target);
        if !self.streams.granted.contains(&destination) {
            return Err(Denied::NotGranted(format!(
                "a stream to {destination} is not granted to this installation"
            )));
        }
        let Some(broker) = self.streams.broker.clone() else {
            return Err(Denied::NotGranted("streams are not available here".into()));
        };
        broker.open(&name, &target, headers).map_err(Denied::NotGranted)
    }
}

impl events::Host for HostState {
    fn emit(&mut self, events: Vec<Event>) -> HostResult<Result<(), Denied>> {
        self.host_calls += 1;
        if self.emitted.len() + events.len() > self.max_emit {
            return Ok(Err(Denied::QuotaExceeded(format!(
                "at most {} events per invocation",
                self.max_emit
            ))));
        }
        self.emitted.extend(events);
        Ok(Ok(()))
    }
}

impl streams::Host for HostState {
    fn open(&mut self, name: String, target: streams::Target) -> HostResult<Result<u32, Denied>> {
        self.host_calls += 1;
        Ok(self.open_stream(name, target, Vec::new()))
    }

    fn open_with_secret(
        &mut self,
        name: String,
        target: streams::Target,
        secret: Resource<SecretHandle>,
        placement: http::Placement,
    ) -> HostResult<Result<u32, Denied>> {
        self.host_calls += 1;
        let secret_name = self.table.get(&secret)?.name.clone();
        let Some(((scheme, host, port), value)) = self.secrets.get(&secret_name).cloned() else {
            return Ok(Err(Denied::NotGranted(format!("no secret `{secret_name}`"))));
        };
        if !matches!(target, streams::Target::Websocket(_)) {
            return Ok(Err(Denied::NotGranted(
                "a secret can be placed only on a WebSocket's upgrade request".into(),
            )));
        }
        let bound = format!("{scheme}://{host}:{port}");
        let destination = stream_destination(&target);
        if destination != bound && as_http_origin(&destination) != bound {
            return Ok(Err(Denied::NotGranted(format!(
                "secret `{secret_name}` may only be sent to {bound}"
            ))));
        }
        let header = placed(placement, value);
        let opened = self.open_stream(name, target, vec![header]);
        if opened.is_ok() {
            self.secret_uses.push((secret_name, bound));
        }
        Ok(opened)
    }

    fn send(&mut self, id: u32, data: Vec<u8>) -> HostResult<Result<(), Denied>> {
        self.host_calls += 1;
        let Some(broker) = self.streams.broker.clone() else {
            return Ok(Err(Denied::NotGranted(format!("no open stream {id}"))));
        };
        Ok(broker.send(id, data).map_err(Denied::NotGranted))
    }

    fn close(&mut self, id: u32) -> HostResult<()> {
        self.host_calls += 1;
        if let Some(broker) = &self.streams.broker {
            broker.close(id);
        }
        Ok(())
    }

    fn send_with_secret(
        &mut self,
        id: u32,
        data: Vec<u8>,
        placeholder: String,
        secret: Resource<SecretHandle>,
        form: streams::SecretForm,
    ) -> HostResult<Result<(), Denied>> {
        self.host_calls += 1;
        let name = self.table.get(&secret)?.name.clone();
        let Some(((scheme, host, port), value)) = self.secrets.get(&name).cloned() else {
            return Ok(Err(Denied::NotGranted(format!("no secret `{name}`"))));
        };
        let Some(broker) = self.streams.broker.clone() else {
            return Ok(Err(Denied::NotGranted(format!("no open stream {id}"))));
        };
        let bound = format!("{scheme}://{host}:{port}");
        match broker.destination(id) {
            None => return Ok(Err(Denied::NotGranted(format!("no open stream {id}")))),
            Some(destination) if destination != bound && as_http_origin(&destination) != bound => {
                return Ok(Err(Denied::NotGranted(format!(
                    "secret `{name}` may only be sent to {bound}"
                ))));
            }
            Some(_) => {}
        }
        let placeholder = placeholder.into_bytes();
        if placeholder.is_empty() || !data.windows(placeholder.len()).any(|w| w == placeholder.as_slice()) {
            return Ok(Err(Denied::NotGranted(
                "the placeholder does not occur in the data".into(),
            )));
        }
        let written = match form {
            streams::SecretForm::Plain => value,
            streams::SecretForm::Md5After(prefix) => {
                use md5::Digest as _;
                let digest = md5::Md5::digest(format!("{prefix}{value}").as_bytes());
                digest.iter().map(|b| format!("{b:02x}")).collect()
            }
        };
        let mut out = Vec::with_capacity(data.len() + written.len());
        let mut rest = data.as_slice();
        while let Some(at) = rest
            .windows(placeholder.len())
            .position(|w| w == placeholder.as_slice())
        {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(written.as_bytes());
            rest = &rest[at + placeholder.len()..];
        }
        out.extend_from_slice(rest);
        self.secret_uses.push((name, bound));
        Ok(broker.send(id, out).map_err(Denied::NotGranted))
    }
}

/// The `commands` interface only carries types (a connector's requests).
impl connector::monti::plugin::commands::Host for HostState {}

/// The `alerts` interface only carries types.
impl alert_handler::monti::plugin::alerts::Host for HostState {}

//! Long-lived connections the host keeps for plugins (`streams` in the contract): a TCP line
//! stream (a PBX's manager interface) or a WebSocket. What arrives goes to the tenant's plugin
//! worker, which hands it to the plugin's `on-stream` export in order with its event batches.
//!
//! A plugin opens a stream by name from any call and reopens it the same way after it closed;
//! the host paces reconnects (exponential back-off up to 30 s), so a plugin that reopens on every
//! `closed` cannot hammer a server that is down. Addresses are checked like outbound HTTP: no
//! private, loopback or link-local targets unless the operator allows them for the tenant.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use monti_plugin_host::StreamBroker;
use monti_plugin_host::wit::{StreamItem, Target};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

/// Longest line accepted on a TCP line stream; a longer one closes the connection.
pub const MAX_LINE: usize = 64 * 1024;
/// Largest WebSocket message accepted.
pub const MAX_MESSAGE: usize = 1 << 20;
/// Writes queued per connection before `send` is refused.
const OUTGOING: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Something that arrived for an installation.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub installation_id: String,
    pub stream: u32,
    pub item: StreamItem,
}

/// Where a tenant's arrivals go (its plugin worker); made on demand.
pub type Deliveries = Arc<dyn Fn(&str) -> Option<mpsc::Sender<Arrival>> + Send + Sync>;

/// Where installations' streams deliver, and the runtime their connections run on. The
/// streams themselves belong to their tenant's plugin runtime: forgetting a tenant closes them.
#[derive(Default)]
pub struct StreamHub {
    deliveries: Mutex<Option<Deliveries>>,
    runtime: Mutex<Option<tokio::runtime::Handle>>,
}

impl std::fmt::Debug for StreamHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamHub").finish_non_exhaustive()
    }
}

impl StreamHub {
    /// Connects the hub to the plugin workers (once, when the live service starts).
    pub fn deliver_to(&self, deliveries: Deliveries) {
        *self.deliveries.lock().unwrap_or_else(|e| e.into_inner()) = Some(deliveries);
        *self.runtime.lock().unwrap_or_else(|e| e.into_inner()) = tokio::runtime::Handle::try_current().ok();
    }

    /// New streams for one installation (`None` until the hub delivers somewhere).
    pub fn open_for(&self, tenant_id: &str, installation_id: &str, allow_private: bool) -> Option<InstallationStreams> {
        let deliveries = self.deliveries.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        let runtime = self.runtime.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        Some(InstallationStreams {
            tenant_id: tenant_id.to_owned(),
            installation_id: installation_id.to_owned(),
            allow_private: Mutex::new(allow_private),
            deliveries,
            runtime,
            connections: Mutex::new(HashMap::new()),
            last_disconnect: Arc::new(Mutex::new(None)),
        })
    }
}

/// Why a connection ended, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectKind {
    /// It could not be made (no address, refused, timed out, a failed handshake).
    ConnectFailed,
    /// The server closed it.
    ServerClosed,
    ReadFailed,
    WriteFailed,
    /// A line or message over the limit.
    TooLong,
    /// The plugin or its worker went away.
    Plugin,
}

impl DisconnectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectFailed => "connect_failed",
            Self::ServerClosed => "server_closed",
            Self::ReadFailed => "read_failed",
            Self::WriteFailed => "write_failed",
            Self::TooLong => "too_long",
            Self::Plugin => "plugin",
        }
    }
}

/// The last time one of an installation's connections ended on its own (not closed by the
/// plugin or the host), kept after the plugin has reconnected.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Disconnect {
    /// When, in ms since the epoch.
    pub at_ms: i64,
    pub kind: DisconnectKind,
    pub reason: String,
    /// Where it was connected to (`tcp://host:port`, or the WebSocket URL).
    pub destination: String,
    /// Whether it had been connected (a failed attempt had not).
    pub was_connected: bool,
}

impl Disconnect {
    /// As the API and the plugin's page show it.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "at": crate::domain::time::to_rfc3339(self.at_ms),
            "kind": self.kind,
            "reason": self.reason,
            "destination": self.destination,
            "was_connected": self.was_connected,
        })
    }
}

/// Why a connection ended.
struct Ended {
    kind: DisconnectKind,
    reason: String,
    was_connected: bool,
}

impl Ended {
    fn new(kind: DisconnectKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
            was_connected: true,
        }
    }

    /// It never got as far as a connection.
    fn unreachable(reason: impl Into<String>) -> Self {
        Self {
            kind: DisconnectKind::ConnectFailed,
            reason: reason.into(),
            was_connected: false,
        }
    }
}

/// Stream ids are unique in the process, so an id never reaches another installation's stream.
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// One connection an installation asked for.
struct Connection {
    id: u32,
    target: Target,
    outgoing: mpsc::Sender<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
    /// Consecutive attempts that ended without a working connection.
    failures: Arc<AtomicU32>,
    started: Instant,
}

/// The streams of one installation.
pub struct InstallationStreams {
    tenant_id: String,
    installation_id: String,
    allow_private: Mutex<bool>,
    deliveries: Deliveries,
    runtime: tokio::runtime::Handle,
    connections: Mutex<HashMap<String, Connection>>,
    last_disconnect: Arc<Mutex<Option<Disconnect>>>,
}

impl InstallationStreams {
    /// Follows the operator's setting for the tenant (it applies to the next connection).
    pub fn set_allow_private(&self, allow_private: bool) {
        *self.allow_private.lock().unwrap_or_else(|e| e.into_inner()) = allow_private;
    }

    pub fn last_disconnect(&self) -> Option<Disconnect> {
        self.last_disconnect.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn close_all(&self) {
        for (_, connection) in self.connections.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            connection.task.abort();
        }
    }

    fn spawn(
        &self,
        id: u32,
        target: Target,
        headers: Vec<(String, String)>,
        delay: Duration,
        failures: Arc<AtomicU32>,
    ) -> Connection {
        let (outgoing, to_send) = mpsc::channel(OUTGOING);
        let deliver = (self.deliveries)(&self.tenant_id);
        let allow_private = *self.allow_private.lock().unwrap_or_else(|e| e.into_inner());
        let installation_id = self.installation_id.clone();
        let task = self.runtime.spawn(connection(
            Link {
                tenant_id: self.tenant_id.clone(),
                installation_id,
                id,
                deliver,
                failures: failures.clone(),
                last_disconnect: self.last_disconnect.clone(),
            },
            target.clone(),
            headers,
            allow_private,
            delay,
            to_send,
        ));
        Connection {
            id,
            target,
            outgoing,
            task,
            failures,
            started: Instant::now(),
        }
    }
}

impl Drop for InstallationStreams {
    fn drop(&mut self) {
        self.close_all();
    }
}

impl StreamBroker for InstallationStreams {
    fn open(&self, name: &str, target: &Target, headers: Vec<(String, String)>) -> Result<u32, String> {
        let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = connections.get(name)
            && !existing.task.is_finished()
            && stream_target_eq(&existing.target, target)
        {
            return Ok(existing.id);
        }
        let (id, failures, delay) = match connections.remove(name) {
            Some(old) => {
                old.task.abort();
                let failures = old.failures.load(Ordering::Relaxed);
                // A connection that lasted a while was healthy: start over quickly.
                let failures = if old.started.elapsed() > MAX_BACKOFF {
                    0
                } else {
                    failures
                };
                let delay = backoff(failures);
                (old.id, Arc::new(AtomicU32::new(failures)), delay)
            }
            None => (
                NEXT_ID.fetch_add(1, Ordering::Relaxed),
                Arc::new(AtomicU32::new(0)),
                Duration::ZERO,
            ),
        };
        let connection = self.spawn(id, target.clone(), headers, delay, failures);
        connections.insert(name.to_owned(), connection);
        Ok(id)
    }

    fn send(&self, id: u32, data: Vec<u8>) -> Result<(), String> {
        let connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        let connection = connections
            .values()
            .find(|c| c.id == id)
            .ok_or_else(|| format!("no open stream {id}"))?;
        connection.outgoing.try_send(data).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => format!("stream {id} is not keeping up (256 writes queued)"),
            mpsc::error::TrySendError::Closed(_) => format!("stream {id} is closed"),
        })
    }

    fn destination(&self, id: u32) -> Option<String> {
        let connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        connections
            .values()
            .find(|c| c.id == id)
            .map(|c| monti_plugin_host::stream_destination(&c.target))
    }

    fn close(&self, id: u32) {
        let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        connections.retain(|_, c| {
            if c.id == id {
                c.task.abort();
            }
            c.id != id
        });
    }
}

fn stream_target_eq(a: &Target, b: &Target) -> bool {
    match (a, b) {
        (Target::TcpLines(a), Target::TcpLines(b)) => a == b,
        (Target::Websocket(a), Target::Websocket(b)) => a == b,
        _ => false,
    }
}

/// 0, 1 s, 2 s, 4 s … up to 30 s.
fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    Duration::from_secs(1u64 << failures.min(5).saturating_sub(1)).min(MAX_BACKOFF)
}

/// The upgrade request for `url`, with the headers the host placed (a secret, say).
fn upgrade_request(
    url: &str,
    headers: Vec<(String, String)>,
) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = url
        .into_client_request()
        .map_err(|e| format!("`{url}` is not a WebSocket URL: {e}"))?;
    for (name, value) in headers {
        let name = axum::http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a header name"))?;
        let value =
            axum::http::HeaderValue::from_str(&value).map_err(|_| "a header value that cannot be sent".to_owned())?;
        request.headers_mut().insert(name, value);
    }
    Ok(request)
}

/// Where a connection reports to.
struct Link {
    tenant_id: String,
    installation_id: String,
    id: u32,
    deliver: Option<mpsc::Sender<Arrival>>,
    failures: Arc<AtomicU32>,
    last_disconnect: Arc<Mutex<Option<Disconnect>>>,
}

impl Link {
    /// Waits for room in the worker's queue: a plugin that falls behind slows its reader (and
    /// so, through TCP, the sender) instead of losing lines.
    async fn deliver(&self, item: StreamItem) -> bool {
        let Some(deliver) = &self.deliver else {
            return false;
        };
        deliver
            .send(Arrival {
                installation_id: self.installation_id.clone(),
                stream: self.id,
                item,
            })
            .await
            .is_ok()
    }
}

async fn resolve(host: &str, port: u16, allow_private: bool) -> Result<Vec<std::net::SocketAddr>, String> {
    let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("{host} does not resolve: {e}"))?
        .collect();
    if addresses.is_empty() {
        return Err(format!("{host} has no addresses"));
    }
    if !allow_private && addresses.iter().any(|a| !crate::net::is_public(a.ip())) {
        return Err(format!(
            "{host} resolves to a private or local address (the operator can allow private networks for this tenant)"
        ));
    }
    Ok(addresses)
}

async fn connect_tcp(host: &str, port: u16, allow_private: bool) -> Result<tokio::net::TcpStream, String> {
    let addresses = resolve(host, port, allow_private).await?;
    let connect = tokio::net::TcpStream::connect(addresses.as_slice());
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!("cannot connect to {host}:{port}: {e}")),
        Err(_) => Err(format!("connecting to {host}:{port} timed out")),
    }
}

async fn connection(
    link: Link,
    target: Target,
    headers: Vec<(String, String)>,
    allow_private: bool,
    delay: Duration,
    to_send: mpsc::Receiver<Vec<u8>>,
) {
    tokio::time::sleep(delay).await;
    let ended = match &target {
        Target::TcpLines((host, port)) => match connect_tcp(host, *port, allow_private).await {
            Ok(stream) => lines(&link, stream, to_send).await,
            Err(e) => Ended::unreachable(e),
        },
        Target::Websocket(url) => websocket(&link, url, headers, allow_private, to_send).await,
    };
    link.failures.fetch_add(1, Ordering::Relaxed);
    record_disconnect(&link, &target, &ended);
    link.deliver(StreamItem::Closed(ended.reason)).await;
}

/// Keeps why the connection ended where the plugin's page and API find it, counts it, and
/// says so in the server's log: the plugin reconnects within moments, and its own status
/// shows only how that went.
fn record_disconnect(link: &Link, target: &Target, ended: &Ended) {
    let destination = monti_plugin_host::stream_destination(target);
    metrics::counter!(
        "plugin_stream_disconnects_total",
        "installation" => link.installation_id.clone(),
        "reason" => ended.kind.as_str()
    )
    .increment(1);
    tracing::warn!(
        tenant_id = %link.tenant_id,
        installation = %link.installation_id,
        stream = link.id,
        destination = %destination,
        kind = ended.kind.as_str(),
        reason = %ended.reason,
        "{}",
        if ended.was_connected {
            "a plugin's stream disconnected"
        } else {
            "a plugin's stream could not connect"
        }
    );
    *link.last_disconnect.lock().unwrap_or_else(|e| e.into_inner()) = Some(Disconnect {
        at_ms: crate::domain::time::now_ms(),
        kind: ended.kind,
        reason: ended.reason.clone(),
        destination,
        was_connected: ended.was_connected,
    });
}

/// Reads lines (without their `\r\n`; empty lines too, they delimit a PBX's messages) and
/// writes what the plugin sends. Returns why it ended.
async fn lines(link: &Link, stream: tokio::net::TcpStream, mut to_send: mpsc::Receiver<Vec<u8>>) -> Ended {
    use DisconnectKind::*;
    if !link.deliver(StreamItem::Opened).await {
        return Ended::new(Plugin, "the plugin is gone");
    }
    link.failures.store(0, Ordering::Relaxed);
    let (reader, mut writer) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        // What is left of the line limit (a read cut short by a write keeps its bytes).
        let mut limited = (&mut reader).take((MAX_LINE + 1).saturating_sub(line.len()) as u64);
        tokio::select! {
            read = limited.read_until(b'\n', &mut line) => {
                match read {
                    Ok(0) => return Ended::new(ServerClosed, "the server closed the connection"),
                    Ok(_) if line.len() > MAX_LINE && !line.ends_with(b"\n") => {
                        return Ended::new(TooLong, format!("a line longer than {MAX_LINE} bytes"));
                    }
                    Ok(_) => {
                        if !line.ends_with(b"\n") {
                            // The connection ended in the middle of a line: it is not delivered.
                            return Ended::new(ServerClosed, "the server closed the connection in the middle of a line");
                        }
                        while matches!(line.last(), Some(b'\n' | b'\r')) {
                            line.pop();
                        }
                        let text = String::from_utf8_lossy(&line).into_owned();
                        line.clear();
                        if !link.deliver(StreamItem::Line(text)).await {
                            return Ended::new(Plugin, "the plugin is gone");
                        }
                    }
                    Err(e) => return Ended::new(ReadFailed, format!("reading failed: {e}")),
                }
            }
            data = to_send.recv() => {
                let Some(data) = data else { return Ended::new(Plugin, "closed by the plugin") };
                if let Err(e) = writer.write_all(&data).await {
                    return Ended::new(WriteFailed, format!("writing failed: {e}"));
                }
            }
        }
    }
}

async fn websocket(
    link: &Link,
    url: &str,
    headers: Vec<(String, String)>,
    allow_private: bool,
    mut to_send: mpsc::Receiver<Vec<u8>>,
) -> Ended {
    use DisconnectKind::*;
    let Ok(parsed) = url::Url::parse(url) else {
        return Ended::unreachable(format!("`{url}` is not a URL"));
    };
    let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
        return Ended::unreachable(format!("`{url}` has no host"));
    };
    let tcp = match connect_tcp(host, port, allow_private).await {
        Ok(tcp) => tcp,
        Err(e) => return Ended::unreachable(e),
    };
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let request = match upgrade_request(url, headers) {
        Ok(request) => request,
        Err(e) => return Ended::unreachable(e),
    };
    let handshake = tokio_tungstenite::client_async_tls_with_config(request, tcp, Some(config), None);
    let mut socket = match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
        Ok(Ok((socket, _))) => socket,
        Ok(Err(e)) => return Ended::unreachable(format!("the WebSocket handshake with {host} failed: {e}")),
        Err(_) => return Ended::unreachable(format!("the WebSocket handshake with {host} timed out")),
    };
    if !link.deliver(StreamItem::Opened).await {
        return Ended::new(Plugin, "the plugin is gone");
    }
    link.failures.store(0, Ordering::Relaxed);
    use tokio_tungstenite::tungstenite::Message;
    loop {
        tokio::select! {
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if !link.deliver(StreamItem::Message(text.as_bytes().to_vec())).await {
                        return Ended::new(Plugin, "the plugin is gone");
                    }
                }
                Some(Ok(Message::Binary(bytes))) => {
                    if !link.deliver(StreamItem::Message(bytes.to_vec())).await {
                        return Ended::new(Plugin, "the plugin is gone");
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let reason = frame.map_or_else(|| "the server closed the WebSocket".into(), |f| format!("the server closed the WebSocket: {}", f.reason));
                    return Ended::new(ServerClosed, reason);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Ended::new(ReadFailed, format!("the WebSocket failed: {e}")),
                None => return Ended::new(ServerClosed, "the server closed the connection"),
            },
            data = to_send.recv() => {
                let Some(data) = data else { return Ended::new(Plugin, "closed by the plugin") };
                let message = match String::from_utf8(data) {
                    Ok(text) => Message::text(text),
                    Err(e) => Message::binary(e.into_bytes()),
                };
                if let Err(e) = socket.send(message).await {
                    return Ended::new(WriteFailed, format!("writing failed: {e}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Streams for one installation delivering to a channel, as the plugin worker would get them.
    fn streams() -> (InstallationStreams, mpsc::Receiver<Arrival>) {
        let (deliver, arrivals) = mpsc::channel(64);
        let hub = StreamHub::default();
        hub.deliver_to(Arc::new(move |_: &str| Some(deliver.clone())));
        (hub.open_for("t1", "inst_1", true).expect("the hub delivers"), arrivals)
    }

    async fn closed(arrivals: &mut mpsc::Receiver<Arrival>) -> String {
        loop {
            let arrival = tokio::time::timeout(Duration::from_secs(10), arrivals.recv())
                .await
                .expect("in time")
                .expect("open");
            if let StreamItem::Closed(why) = arrival.item {
                return why;
            }
        }
    }

    #[tokio::test]
    async fn a_connection_the_server_ends_is_kept_as_the_last_disconnect() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.write_all(b"Asterisk Call Manager/7.0.3\r\n").await.unwrap();
            // Then it hangs up.
        });
        let (streams, mut arrivals) = streams();
        assert!(streams.last_disconnect().is_none());
        let target = Target::TcpLines(("127.0.0.1".into(), port));
        streams.open("pbx", &target, Vec::new()).unwrap();
        let why = closed(&mut arrivals).await;
        let last = streams.last_disconnect().expect("kept");
        assert_eq!(last.kind, DisconnectKind::ServerClosed);
        assert_eq!(last.reason, why);
        assert!(last.was_connected);
        assert_eq!(last.destination, format!("tcp://127.0.0.1:{port}"));
        assert!(last.at_ms > 0);
        assert_eq!(last.view()["kind"], serde_json::json!("server_closed"));
    }

    #[tokio::test]
    async fn a_connection_that_cannot_be_made_is_kept_too() {
        // A port nobody listens on (bound, then let go).
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let (streams, mut arrivals) = streams();
        let target = Target::TcpLines(("127.0.0.1".into(), port));
        streams.open("pbx", &target, Vec::new()).unwrap();
        closed(&mut arrivals).await;
        let last = streams.last_disconnect().expect("kept");
        assert_eq!(last.kind, DisconnectKind::ConnectFailed);
        assert!(!last.was_connected);
        assert!(last.reason.contains("cannot connect"), "{}", last.reason);
    }
}

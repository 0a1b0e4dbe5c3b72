//! The PBX's REST interface (ARI), for what the manager interface cannot do: holding a call and
//! listening in on one. REST calls go out through the host's HTTP capability with the password
//! placed by the host (Basic authentication); the application's event WebSocket
//! (`/ari/events?app=…`) is a host stream opened with the same secret on its upgrade request.
//!
//! Listening in (protocols.md §1.4): a mixing bridge; a snoop channel on the agent's own channel
//! (`spy=both`, and `whisper` none, `out` or `both` for listen, whisper and barge); the
//! supervisor's phone originated into the application. Each enters the application
//! (`StasisStart`, its arguments naming the bridge) and is added to the bridge then. When
//! either leaves, or the call ends (the snoop channel goes with the channel it spies on), the
//! other is hung up and the bridge destroyed.

use std::collections::BTreeMap;
use std::time::Duration;

use monti_plugin_sdk::commands::{Snoop, SnoopMode};
use monti_plugin_sdk::http::{Placement, Request};
use monti_plugin_sdk::streams::Target;
use monti_plugin_sdk::{Error, PluginError, Stream, info, secrets, streams, warn};
use serde::{Deserialize, Serialize};

/// The stream's name.
pub const STREAM: &str = "ari";
/// The secret with the ARI user's password.
pub const SECRET: &str = "ari_password";
/// Arguments a channel enters the application with, before the bridge's id.
const SNOOP_ARG: &str = "monti-snoop";
const SUPERVISOR_ARG: &str = "monti-supervisor";

/// Where the REST interface is, from the configuration (`None`: not configured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub app: String,
}

impl Endpoint {
    fn base(&self) -> String {
        format!("http://{}:{}/ari", self.host, self.port)
    }

    fn events_url(&self) -> String {
        format!("ws://{}:{}/ari/events?app={}", self.host, self.port, encode(&self.app))
    }
}

/// One listening-in session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub call: String,
    pub mode: String,
    pub snoop_channel: Option<String>,
    pub supervisor_channel: Option<String>,
}

/// What the connector keeps about ARI between calls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AriState {
    pub stream: Option<Stream>,
    pub connected: bool,
    pub since_ms: i64,
    pub last_error: Option<String>,
    pub received: u64,
    /// Listening-in sessions by bridge id.
    pub sessions: BTreeMap<String, Session>,
}

impl AriState {
    /// The status the plugin's page shows under `ari`.
    pub fn status(&self, endpoint: Option<&Endpoint>) -> serde_json::Value {
        match endpoint {
            None => serde_json::json!({ "connection": "not configured" }),
            Some(_) => serde_json::json!({
                "connection": if self.connected { "live" } else { "disconnected" },
                "since": self.since_ms,
                "last_error": self.last_error,
                "events": self.received,
                "listening_in": self.sessions.len(),
            }),
        }
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An answer from the REST interface.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Answer {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// ARI's error text (`{"message": …}`), or the status.
    fn message(&self) -> String {
        self.body
            .get("message")
            .and_then(|m| m.as_str())
            .map_or_else(|| format!("status {}", self.status), str::to_owned)
    }
}

/// One REST call (`path` under `/ari`, with its query).
pub fn call(endpoint: &Endpoint, method: &str, path: &str) -> Result<Answer, PluginError> {
    let secret = secrets::get(SECRET)
        .map_err(|_| PluginError::permanent("no ARI password is configured (the secret `ari_password`)"))?;
    let sent = Request::new(method, format!("{}{path}", endpoint.base()))
        .header("accept", "application/json")
        .timeout(Duration::from_secs(5))
        .send_with_secret(&secret, Placement::Basic(endpoint.user.clone()));
    match sent {
        Ok(response) => Ok(Answer {
            status: response.status,
            body: response.json().unwrap_or(serde_json::Value::Null),
        }),
        Err(Error::Transport(why)) => Err(PluginError::retryable(format!(
            "cannot reach ARI at {}: {why}",
            endpoint.base()
        ))),
        Err(Error::TooLarge) => Err(PluginError::permanent("ARI answered with too much")),
        Err(denied) => Err(PluginError::permanent(format!("ARI: {denied:?}"))),
    }
}

/// Opens (or keeps) the application's event socket.
pub fn connect(state: &mut AriState, endpoint: &Endpoint) {
    let secret = match secrets::get(SECRET) {
        Ok(secret) => secret,
        Err(_) => {
            state.last_error = Some("no ARI password is configured (the secret `ari_password`)".into());
            return;
        }
    };
    let target = Target::Websocket(endpoint.events_url());
    match streams::open_with_secret(STREAM, &target, &secret, Placement::Basic(endpoint.user.clone())) {
        Ok(stream) => state.stream = Some(stream),
        Err(denied) => {
            let why = format!("cannot open ARI's event socket: {denied:?}");
            if state.last_error.as_deref() != Some(why.as_str()) {
                warn!("{why}");
            }
            state.last_error = Some(why);
        }
    }
}

/// Hold or take off hold. Asterisk holds only channels in an ARI application; a queue call
/// from the dial plan answers 409, which is explained.
pub fn hold(endpoint: &Endpoint, call: &str, on: bool) -> Result<String, PluginError> {
    let method = if on { "POST" } else { "DELETE" };
    let answer = self::call(endpoint, method, &format!("/channels/{}/hold", encode(call)))?;
    match answer.status {
        200..=299 => Ok(format!("{} {call}", if on { "held" } else { "took off hold" })),
        404 => Err(PluginError::permanent(format!("the PBX has no channel `{call}`"))),
        409 => Err(PluginError::permanent(format!(
            "Asterisk holds only calls that an ARI application controls, and `{call}` is in the dial plan (a queue call); the agent can hold it from the phone"
        ))),
        _ => Err(PluginError::permanent(format!("ARI refused: {}", answer.message()))),
    }
}

/// The supervisor's phone as an endpoint: `PJSIP/2001` as given, a number through the
/// dial plan (`Local/2001@from-internal`).
pub fn supervisor_endpoint(supervisor: &str, context: &str) -> Result<String, PluginError> {
    let supervisor = supervisor.trim();
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+' | b'*' | b'#' | b'@'))
    };
    match supervisor.split_once('/') {
        Some((tech, resource)) if plain(tech) && plain(resource) => Ok(supervisor.to_owned()),
        None if plain(supervisor) && !supervisor.contains('@') => Ok(format!("Local/{supervisor}@{context}")),
        _ => Err(PluginError::permanent(format!(
            "`{supervisor}` is not a phone to ring (an endpoint like PJSIP/2001, or an extension)"
        ))),
    }
}

/// Starts listening in (or whispering, or barging) on the agent's channel `agent_channel`.
pub fn snoop(
    state: &mut AriState,
    endpoint: &Endpoint,
    request_id: &str,
    request: &Snoop,
    agent: &str,
    agent_channel: &str,
    supervisor: &str,
) -> Result<String, PluginError> {
    let (mode, whisper) = match request.mode {
        SnoopMode::Listen => ("listen", "none"),
        SnoopMode::Whisper => ("whisper", "out"),
        SnoopMode::Barge => ("barge", "both"),
    };
    let id: String = request_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(60)
        .collect();
    let bridge = format!("monti-{mode}-{id}");
    let app = encode(&endpoint.app);
    let created = call(
        endpoint,
        "POST",
        &format!(
            "/bridges?type=mixing&bridgeId={}&name={}",
            encode(&bridge),
            encode(&format!("monti {mode}"))
        ),
    )?;
    if !created.ok() {
        return Err(PluginError::permanent(format!(
            "ARI did not make a bridge: {}",
            created.message()
        )));
    }
    let mut session = Session {
        call: request.call.clone(),
        mode: mode.into(),
        ..Session::default()
    };
    let snooped = call(
        endpoint,
        "POST",
        &format!(
            "/channels/{}/snoop?spy=both&whisper={whisper}&app={app}&appArgs={}",
            encode(agent_channel),
            encode(&format!("{SNOOP_ARG},{bridge}"))
        ),
    );
    let snooped = match snooped {
        Ok(answer) if answer.ok() => answer,
        other => {
            let why = match other {
                Ok(answer) if answer.status == 404 => {
                    format!("the agent's channel `{agent_channel}` is gone (the call ended?)")
                }
                Ok(answer) => answer.message(),
                Err(e) => e.message,
            };
            let _ = call(endpoint, "DELETE", &format!("/bridges/{}", encode(&bridge)));
            return Err(PluginError::permanent(format!("ARI could not snoop on {agent}: {why}")));
        }
    };
    session.snoop_channel = snooped.body.get("id").and_then(|v| v.as_str()).map(str::to_owned);
    let caller_id = format!("Monti {mode} {agent}");
    let rung = call(
        endpoint,
        "POST",
        &format!(
            "/channels?endpoint={}&app={app}&appArgs={}&callerId={}&timeout=30",
            encode(supervisor),
            encode(&format!("{SUPERVISOR_ARG},{bridge}")),
            encode(&caller_id)
        ),
    );
    match rung {
        Ok(answer) if answer.ok() => {
            session.supervisor_channel = answer.body.get("id").and_then(|v| v.as_str()).map(str::to_owned);
        }
        other => {
            let why = match other {
                Ok(answer) => answer.message(),
                Err(e) => e.message,
            };
            end_session(endpoint, &bridge, &session);
            return Err(PluginError::permanent(format!(
                "ARI could not ring {supervisor}: {why}"
            )));
        }
    }
    state.sessions.insert(bridge.clone(), session);
    info!("{mode} on {agent} ({}) for {supervisor}: bridge {bridge}", request.call);
    Ok(format!("ringing {supervisor} to {mode} on {agent} (bridge {bridge})"))
}

/// Hangs up what is left of a session and destroys its bridge.
fn end_session(endpoint: &Endpoint, bridge: &str, session: &Session) {
    for channel in [&session.snoop_channel, &session.supervisor_channel]
        .into_iter()
        .flatten()
    {
        let _ = call(endpoint, "DELETE", &format!("/channels/{}", encode(channel)));
    }
    let _ = call(endpoint, "DELETE", &format!("/bridges/{}", encode(bridge)));
}

/// An ARI event as far as the connector reads it.
#[derive(Debug, Deserialize)]
struct AriEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    channel: Option<ChannelRef>,
}

#[derive(Debug, Deserialize)]
struct ChannelRef {
    id: String,
}

/// Handles one message from the event socket. Anything that is not an event it knows is
/// ignored (counted, never fatal).
pub fn receive(state: &mut AriState, endpoint: &Endpoint, message: &[u8]) {
    state.received += 1;
    let event: AriEvent = match serde_json::from_slice(message) {
        Ok(event) => event,
        Err(e) => {
            warn!("ARI sent something that is not an event ({e}); ignored");
            return;
        }
    };
    let Some(channel) = event.channel.map(|c| c.id) else {
        return;
    };
    match event.kind.as_str() {
        "StasisStart" => {
            let (Some(role), Some(bridge)) = (event.args.first(), event.args.get(1)) else {
                return;
            };
            if role != SNOOP_ARG && role != SUPERVISOR_ARG {
                return;
            }
            if let Some(session) = state.sessions.get_mut(bridge) {
                let slot = if role == SNOOP_ARG {
                    &mut session.snoop_channel
                } else {
                    &mut session.supervisor_channel
                };
                slot.get_or_insert_with(|| channel.clone());
            }
            let added = call(
                endpoint,
                "POST",
                &format!("/bridges/{}/addChannel?channel={}", encode(bridge), encode(&channel)),
            );
            match added {
                Ok(answer) if answer.ok() => {}
                Ok(answer) => warn!("ARI did not add {channel} to {bridge}: {}", answer.message()),
                Err(e) => warn!("ARI did not add {channel} to {bridge}: {}", e.message),
            }
        }
        "StasisEnd" | "ChannelDestroyed" => {
            let ended = state.sessions.iter().find_map(|(bridge, s)| {
                (s.snoop_channel.as_deref() == Some(channel.as_str())
                    || s.supervisor_channel.as_deref() == Some(channel.as_str()))
                .then(|| bridge.clone())
            });
            if let Some(bridge) = ended
                && let Some(mut session) = state.sessions.remove(&bridge)
            {
                for slot in [&mut session.snoop_channel, &mut session.supervisor_channel] {
                    if slot.as_deref() == Some(channel.as_str()) {
                        *slot = None;
                    }
                }
                info!("{} on {} ended", session.mode, session.call);
                end_session(endpoint, &bridge, &session);
            }
        }
        "ChannelHold" | "ChannelUnhold" => info!("{}: {channel}", event.kind),
        _ => {}
    }
}

//! The REST interface (ARI) half of the Asterisk stand-in: an HTTP server under `/ari` with the
//! event WebSocket (`GET /ari/events?app=…`), shaped by the Swagger models Asterisk publishes
//! (protocols.md §1; `rest-api/api-docs/channels.json`, `bridges.json`, `events.json`):
//! Basic or `api_key` authentication; channels (list, get, originate, hang up, hold, snoop)
//! and bridges (create, add and remove channels, destroy) with the spec's error codes (404 no
//! such object, 409 not in a Stasis application, 422 not in Stasis for a bridge, 400 bad
//! parameters); and the events those operations raise, as JSON text frames, to the
//! applications they concern (or to every socket that asked for `subscribeAll`).
//!
//! Queue calls from the manager-interface half appear here as channels too
//! ([`AriSimulator::play`]): a caller's channel has the call's id, the answering member's channel
//! [`member_channel_id`] of it, as Asterisk's `AgentConnect` names them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use monti_domain::events::{Event, EventBody};

/// The system id the simulated Asterisk reports (`asterisk_id`).
pub const ASTERISK_ID: &str = "02:42:ac:11:00:02";

/// The id of the channel a queue member answers call `call` on (`DestUniqueid` in AMI).
pub fn member_channel_id(call: &str) -> String {
    format!("{call}.1")
}

/// The name of that channel (`PJSIP/1001-…`).
pub fn member_channel_name(agent: &str, call: &str) -> String {
    format!("PJSIP/{agent}-{call}")
}

/// A channel as ARI's `Channel` model describes it.
#[derive(Debug, Clone)]
struct Channel {
    id: String,
    name: String,
    state: &'static str,
    caller: (String, String),
    connected: (String, String),
    /// The Stasis application it is in.
    app: Option<String>,
    bridge: Option<String>,
    held: bool,
    /// For a snoop channel: whom it spies on, and how (`spy`, `whisper`).
    snoops: Option<(String, String, String)>,
    created: String,
}

impl Channel {
    fn new(id: &str, name: &str, state: &'static str) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            state,
            caller: (String::new(), String::new()),
            connected: (String::new(), String::new()),
            app: None,
            bridge: None,
            held: false,
            snoops: None,
            created: timestamp(),
        }
    }

    fn model(&self) -> Value {
        json!({
            "id": self.id,
            "protocol_id": "",
            "name": self.name,
            "state": self.state,
            "caller": { "name": self.caller.0, "number": self.caller.1 },
            "connected": { "name": self.connected.0, "number": self.connected.1 },
            "accountcode": "",
            "dialplan": {
                "context": "default",
                "exten": "s",
                "priority": 1,
                "app_name": if self.app.is_some() { "Stasis" } else { "" },
                "app_data": self.app.clone().unwrap_or_default(),
            },
            "creationtime": self.created,
            "language": "en",
        })
    }
}

/// A bridge as ARI's `Bridge` model describes it.
#[derive(Debug, Clone)]
struct Bridge {
    id: String,
    name: String,
    bridge_type: String,
    /// `stasis` for bridges an application made; `basic` for the dial plan's (app_queue's).
    class: &'static str,
    channels: Vec<String>,
    created: String,
}

impl Bridge {
    fn model(&self) -> Value {
        json!({
            "id": self.id,
            "technology": "simple_bridge",
            "bridge_type": self.bridge_type,
            "bridge_class": self.class,
            "creator": if self.class == "stasis" { "Stasis" } else { "" },
            "name": self.name,
            "channels": self.channels,
            "creationtime": self.created,
            "video_mode": "none",
        })
    }
}

#[derive(Debug, Default)]
struct World {
    channels: BTreeMap<String, Channel>,
    bridges: BTreeMap<String, Bridge>,
    /// Every request made, as `METHOD /path?query`.
    requests: Vec<String>,
    next: u64,
}

/// An event and the application it is for (`None`: only `subscribeAll` sockets get it).
#[derive(Debug, Clone)]
struct Raised {
    app: Option<String>,
    body: Value,
}

#[derive(Clone)]
struct Shared {
    world: Arc<Mutex<World>>,
    events: broadcast::Sender<Raised>,
    account: Arc<(String, String)>,
    /// How long an originated channel rings before it answers.
    answer_after: Duration,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn raise(&self, raised: Vec<Raised>) {
        for event in raised {
            let _ = self.events.send(event);
        }
    }
}

/// The running ARI simulator. Dropping it stops it.
pub struct AriSimulator {
    address: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AriSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn timestamp() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

/// An event of `kind` with `fields`, for `app`.
fn raised(app: Option<&str>, kind: &str, fields: Value) -> Raised {
    let mut body = json!({ "type": kind, "timestamp": timestamp(), "asterisk_id": ASTERISK_ID });
    if let (Some(object), Value::Object(fields)) = (body.as_object_mut(), fields) {
        object.extend(fields);
    }
    Raised {
        app: app.map(str::to_owned),
        body,
    }
}

impl World {
    fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Hangs a channel up: out of its bridge, out of Stasis, destroyed; snoops on it end too.
    fn hang_up(&mut self, id: &str, cause: u32, out: &mut Vec<Raised>) {
        let Some(channel) = self.channels.remove(id) else {
            return;
        };
        let app = channel.app.as_deref();
        out.push(raised(
            app,
            "ChannelHangupRequest",
            json!({ "cause": cause, "channel": channel.model() }),
        ));
        if let Some(bridge_id) = &channel.bridge
            && let Some(bridge) = self.bridges.get_mut(bridge_id)
        {
            bridge.channels.retain(|c| c != id);
            out.push(raised(
                app,
                "ChannelLeftBridge",
                json!({ "bridge": bridge.model(), "channel": channel.model() }),
            ));
            if bridge.class == "basic" && bridge.channels.is_empty() {
                let bridge = self.bridges.remove(bridge_id).map(|b| b.model());
                out.push(raised(None, "BridgeDestroyed", json!({ "bridge": bridge })));
            }
        }
        if app.is_some() {
            out.push(raised(app, "StasisEnd", json!({ "channel": channel.model() })));
        }
        let cause_txt = match cause {
            16 => "Normal Clearing",
            17 => "User busy",
            19 => "User alerting, no answer",
            _ => "Unknown",
        };
        out.push(raised(
            app,
            "ChannelDestroyed",
            json!({ "cause": cause, "cause_txt": cause_txt, "channel": channel.model() }),
        ));
        let snoops: Vec<String> = self
            .channels
            .values()
            .filter(|c| c.snoops.as_ref().is_some_and(|(target, _, _)| target == id))
            .map(|c| c.id.clone())
            .collect();
        for snoop in snoops {
            self.hang_up(&snoop, 16, out);
        }
    }

    fn enter_bridge(&mut self, bridge_id: &str, channel_id: &str, out: &mut Vec<Raised>) {
        let (Some(bridge), Some(channel)) = (self.bridges.get_mut(bridge_id), self.channels.get_mut(channel_id)) else {
            return;
        };
        if !bridge.channels.iter().any(|c| c == channel_id) {
            bridge.channels.push(channel_id.to_owned());
        }
        channel.bridge = Some(bridge_id.to_owned());
        out.push(raised(
            channel.app.as_deref(),
            "ChannelEnteredBridge",
            json!({ "bridge": bridge.model(), "channel": channel.model() }),
        ));
    }
}

/// An ARI error body (`{"message": …}`) with its status.
fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "message": message }))).into_response()
}

impl AriSimulator {
    /// Listens on 127.0.0.1 (a free port); `user`/`password` is the one ARI user (`ari.conf`).
    pub async fn start(user: &str, password: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (events, _) = broadcast::channel(1 << 14);
        let shared = Shared {
            world: Arc::new(Mutex::new(World::default())),
            events,
            account: Arc::new((user.to_owned(), password.to_owned())),
            answer_after: Duration::from_millis(50),
        };
        let app = Router::new()
            .route("/ari/events", get(events_socket))
            .route("/ari/asterisk/ping", get(ping))
            .route("/ari/channels", get(list_channels).post(originate))
            .route("/ari/channels/{id}", get(get_channel).delete(hangup))
            .route("/ari/channels/{id}/hold", post(hold).delete(unhold))
            .route("/ari/channels/{id}/snoop", post(snoop))
            .route("/ari/bridges", get(list_bridges).post(create_bridge))
            .route("/ari/bridges/{id}", get(get_bridge).delete(destroy_bridge))
            .route("/ari/bridges/{id}/addChannel", post(add_channel))
            .route("/ari/bridges/{id}/removeChannel", post(remove_channel))
            .layer(axum::middleware::from_fn_with_state(shared.clone(), authenticate))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { address, shared, task })
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Every request made so far, as `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    /// A channel as `GET /ari/channels/{id}` shows it, with what the model leaves out: the
    /// bridge it is in, whether it is held, and for a snoop channel whom it spies on and how.
    pub fn channel(&self, id: &str) -> Option<Value> {
        let world = self.shared.lock();
        world.channels.get(id).map(|c| {
            let mut model = c.model();
            model["bridge"] = json!(c.bridge);
            model["held"] = json!(c.held);
            model["stasis"] = json!(c.app);
            if let Some((target, spy, whisper)) = &c.snoops {
                model["snoops"] = json!({ "channel": target, "spy": spy, "whisper": whisper });
            }
            model
        })
    }

    /// Every channel's id.
    pub fn channel_ids(&self) -> Vec<String> {
        self.shared.lock().channels.keys().cloned().collect()
    }

    /// The bridge's channels, if it exists.
    pub fn bridge_channels(&self, id: &str) -> Option<Vec<String>> {
        self.shared.lock().bridges.get(id).map(|b| b.channels.clone())
    }

    /// The ids of the bridges that exist.
    pub fn bridge_ids(&self) -> Vec<String> {
        self.shared.lock().bridges.keys().cloned().collect()
    }

    /// A call answered by a queue member, as app_queue leaves it: the caller's channel (`call`)
    /// and the member's ([`member_channel_id`]) up, in a basic bridge, neither in Stasis.
    pub fn connect_call(&self, call: &str, agent: &str) {
        let mut out = Vec::new();
        {
            let mut world = self.shared.lock();
            if !world.channels.contains_key(call) {
                let mut caller = Channel::new(call, &format!("PJSIP/trunk-{call}"), "Up");
                caller.caller = (String::new(), "+4930555".into());
                out.push(raised(None, "ChannelCreated", json!({ "channel": caller.model() })));
                world.channels.insert(call.to_owned(), caller);
            }
            let member_id = member_channel_id(call);
            let mut member = Channel::new(&member_id, &member_channel_name(agent, call), "Up");
            member.caller = (agent.to_owned(), agent.to_owned());
            out.push(raised(None, "ChannelCreated", json!({ "channel": member.model() })));
            world.channels.insert(member_id.clone(), member);
            let bridge_id = format!("queue-{call}");
            world.bridges.insert(
                bridge_id.clone(),
                Bridge {
                    id: bridge_id.clone(),
                    name: String::new(),
                    bridge_type: "mixing".into(),
                    class: "basic",
                    channels: Vec::new(),
                    created: timestamp(),
                },
            );
            world.enter_bridge(&bridge_id, call, &mut out);
            world.enter_bridge(&bridge_id, &member_id, &mut out);
        }
        self.shared.raise(out);
    }

    /// A call an ARI application controls: a channel in Stasis `app` (where hold works).
    pub fn stasis_call(&self, call: &str, app: &str) {
        let mut out = Vec::new();
        {
            let mut world = self.shared.lock();
            let mut channel = Channel::new(call, &format!("PJSIP/trunk-{call}"), "Up");
            channel.app = Some(app.to_owned());
            out.push(raised(
                Some(app),
                "ChannelCreated",
                json!({ "channel": channel.model() }),
            ));
            out.push(raised(
                Some(app),
                "StasisStart",
                json!({ "args": [], "channel": channel.model() }),
            ));
            world.channels.insert(call.to_owned(), channel);
        }
        self.shared.raise(out);
    }

    /// Hangs a channel up (a party putting the phone down).
    pub fn hang_up(&self, id: &str) {
        let mut out = Vec::new();
        self.shared.lock().hang_up(id, 16, &mut out);
        self.shared.raise(out);
    }

    /// What a simulated contact-center event means for channels: a caller joining a queue has
    /// a channel; a member answering adds its own and a bridge; the call ending or the caller
    /// leaving hangs them up.
    pub fn play(&self, event: &Event) {
        match &event.body {
            EventBody::CallerJoin { call, .. } => {
                let mut out = Vec::new();
                {
                    let mut world = self.shared.lock();
                    if !world.channels.contains_key(call) {
                        let channel = Channel::new(call, &format!("PJSIP/trunk-{call}"), "Up");
                        out.push(raised(None, "ChannelCreated", json!({ "channel": channel.model() })));
                        world.channels.insert(call.clone(), channel);
                    }
                }
                self.shared.raise(out);
            }
            EventBody::CallerAnswer { call, agent, .. } => self.connect_call(call, agent),
            EventBody::CallEnd { call, .. } | EventBody::CallerLeave { call, .. } => {
                self.hang_up(&member_channel_id(call));
                self.hang_up(call);
            }
            _ => {}
        }
    }
}

/// Basic authentication or `api_key=user:password`, as `res_ari.c` accepts either.
async fn authenticate(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    let query = request.uri().query().unwrap_or_default().to_owned();
    shared.lock().requests.push(format!(
        "{} {}{}",
        request.method(),
        request.uri().path(),
        if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        }
    ));
    let (user, password) = &*shared.account;
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(b).ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let from_query = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "api_key")
        .map(|(_, v)| v.into_owned());
    let expected = format!("{user}:{password}");
    if from_header.as_deref() == Some(expected.as_str()) || from_query.as_deref() == Some(expected.as_str()) {
        return next.run(request).await;
    }
    let mut response = error(StatusCode::UNAUTHORIZED, "Authentication required");
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Basic realm=\"Asterisk REST Interface\""),
    );
    response
}

type Params = Query<BTreeMap<String, String>>;

async fn ping() -> Response {
    axum::Json(json!({ "asterisk_id": ASTERISK_ID, "ping": "pong", "timestamp": timestamp() })).into_response()
}

async fn events_socket(State(shared): State<Shared>, Query(params): Params, upgrade: WebSocketUpgrade) -> Response {
    let apps: Vec<String> = params
        .get("app")
        .map(|a| {
            a.split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if apps.is_empty() {
        return error(StatusCode::BAD_REQUEST, "Missing parameter app");
    }
    let all = params.get("subscribeAll").is_some_and(|v| v == "true" || v == "1");
    let receiver = shared.events.subscribe();
    upgrade
        .protocols(["ari"])
        .on_upgrade(move |socket| forward(socket, receiver, apps, all))
}

/// Sends a socket the events for its applications, each stamped with the one it is for.
async fn forward(mut socket: WebSocket, mut events: broadcast::Receiver<Raised>, apps: Vec<String>, all: bool) {
    loop {
        tokio::select! {
            event = events.recv() => {
                let event = match event {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let application = match &event.app {
                    Some(app) if apps.contains(app) => app.clone(),
                    _ if all => apps[0].clone(),
                    _ => continue,
                };
                let mut body = event.body;
                body["application"] = json!(application);
                if socket.send(Message::text(body.to_string())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn list_channels(State(shared): State<Shared>) -> Response {
    let world = shared.lock();
    axum::Json(world.channels.values().map(Channel::model).collect::<Vec<_>>()).into_response()
}

async fn get_channel(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    match shared.lock().channels.get(&id) {
        Some(channel) => axum::Json(channel.model()).into_response(),
        None => error(StatusCode::NOT_FOUND, "Channel not found"),
    }
}

/// `POST /channels`: a new channel to `endpoint`, into application `app` once it answers (or to
/// a dial-plan extension).
async fn originate(State(shared): State<Shared>, Query(params): Params) -> Response {
    let Some(endpoint) = params.get("endpoint").filter(|e| !e.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "Endpoint must be specified");
    };
    let Some((tech, resource)) = endpoint.split_once('/') else {
        return error(StatusCode::BAD_REQUEST, "Invalid endpoint specified");
    };
    if !matches!(tech, "PJSIP" | "SIP" | "IAX2" | "Local" | "DAHDI") || resource.is_empty() {
        return error(StatusCode::BAD_REQUEST, "Invalid endpoint specified");
    }
    let app = params.get("app").filter(|a| !a.is_empty()).cloned();
    if app.is_none() && params.get("extension").is_none_or(|e| e.is_empty()) {
        return error(StatusCode::BAD_REQUEST, "Application or extension must be specified");
    }
    let args: Vec<String> = params
        .get("appArgs")
        .map(|a| a.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let (model, id) = {
        let mut world = shared.lock();
        let n = world.next_id();
        let id = params
            .get("channelId")
            .cloned()
            .unwrap_or_else(|| format!("1700000000.{n}"));
        if world.channels.contains_key(&id) {
            return error(StatusCode::CONFLICT, "Channel with given unique ID already exists");
        }
        let mut channel = Channel::new(&id, &format!("{endpoint}-{n:08x}"), "Down");
        if let Some(caller) = params.get("callerId") {
            channel.caller = (caller.clone(), String::new());
        }
        let model = channel.model();
        world.channels.insert(id.clone(), channel);
        (model, id)
    };
    shared.raise(vec![raised(
        app.as_deref(),
        "ChannelCreated",
        json!({ "channel": model.clone() }),
    )]);
    // The phone rings, then answers; an application gets it then (StasisStart).
    let answering = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(answering.answer_after).await;
        let mut out = Vec::new();
        {
            let mut world = answering.lock();
            let Some(channel) = world.channels.get_mut(&id) else {
                return;
            };
            channel.state = "Up";
            channel.app = app.clone();
            out.push(raised(
                app.as_deref(),
                "ChannelStateChange",
                json!({ "channel": channel.model() }),
            ));
            if app.is_some() {
                out.push(raised(
                    app.as_deref(),
                    "StasisStart",
                    json!({ "args": args, "channel": channel.model() }),
                ));
            }
        }
        answering.raise(out);
    });
    axum::Json(model).into_response()
}

async fn hangup(State(shared): State<Shared>, Path(id): Path<String>, Query(params): Params) -> Response {
    let cause = match params.get("reason").map(String::as_str) {
        None | Some("normal") => 16,
        Some("busy") => 17,
        Some("no_answer") => 19,
        Some("congestion") => 34,
        Some("answered_elsewhere") => 26,
        Some(_) => return error(StatusCode::BAD_REQUEST, "Invalid reason for hangup provided"),
    };
    let mut out = Vec::new();
    {
        let mut world = shared.lock();
        if !world.channels.contains_key(&id) {
            return error(StatusCode::NOT_FOUND, "Channel not found");
        }
        world.hang_up(&id, cause, &mut out);
    }
    shared.raise(out);
    StatusCode::NO_CONTENT.into_response()
}

async fn set_hold(shared: Shared, id: String, held: bool) -> Response {
    let mut out = Vec::new();
    {
        let mut world = shared.lock();
        let Some(channel) = world.channels.get_mut(&id) else {
            return error(StatusCode::NOT_FOUND, "Channel not found");
        };
        if channel.app.is_none() {
            return error(StatusCode::CONFLICT, "Channel not in a Stasis application");
        }
        if channel.state != "Up" {
            return error(StatusCode::PRECONDITION_FAILED, "Channel in invalid state");
        }
        channel.held = held;
        let kind = if held { "ChannelHold" } else { "ChannelUnhold" };
        out.push(raised(
            channel.app.as_deref(),
            kind,
            json!({ "channel": channel.model() }),
        ));
    }
    shared.raise(out);
    StatusCode::NO_CONTENT.into_response()
}

async fn hold(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    set_hold(shared, id, true).await
}

async fn unhold(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    set_hold(shared, id, false).await
}

/// `POST /channels/{id}/snoop`: a `Snoop/…` channel that hears (`spy`) and speaks into
/// (`whisper`) the channel, straight into application `app`.
async fn snoop(State(shared): State<Shared>, Path(id): Path<String>, Query(params): Params) -> Response {
    let direction = |name: &str| match params.get(name).map(String::as_str) {
        None => Some("none".to_owned()),
        Some(d @ ("none" | "both" | "out" | "in")) => Some(d.to_owned()),
        Some(_) => None,
    };
    let (Some(spy), Some(whisper)) = (direction("spy"), direction("whisper")) else {
        return error(StatusCode::BAD_REQUEST, "Invalid direction specified");
    };
    let Some(app) = params.get("app").filter(|a| !a.is_empty()).cloned() else {
        return error(StatusCode::BAD_REQUEST, "Application name is required");
    };
    let args: Vec<String> = params
        .get("appArgs")
        .map(|a| a.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    let model = {
        let mut world = shared.lock();
        let Some(target) = world.channels.get(&id) else {
            return error(StatusCode::NOT_FOUND, "Channel not found");
        };
        let target_name = target.name.clone();
        let n = world.next_id();
        let snoop_id = params
            .get("snoopId")
            .cloned()
            .unwrap_or_else(|| format!("1700000000.{n}"));
        let mut channel = Channel::new(&snoop_id, &format!("Snoop/{target_name}-{n:08x}"), "Up");
        channel.app = Some(app.clone());
        channel.snoops = Some((id.clone(), spy, whisper));
        let model = channel.model();
        out.push(raised(
            Some(&app),
            "ChannelCreated",
            json!({ "channel": model.clone() }),
        ));
        out.push(raised(
            Some(&app),
            "StasisStart",
            json!({ "args": args, "channel": model.clone() }),
        ));
        world.channels.insert(snoop_id, channel);
        model
    };
    shared.raise(out);
    axum::Json(model).into_response()
}

async fn list_bridges(State(shared): State<Shared>) -> Response {
    let world = shared.lock();
    axum::Json(world.bridges.values().map(Bridge::model).collect::<Vec<_>>()).into_response()
}

async fn get_bridge(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    match shared.lock().bridges.get(&id) {
        Some(bridge) => axum::Json(bridge.model()).into_response(),
        None => error(StatusCode::NOT_FOUND, "Bridge not found"),
    }
}

async fn create_bridge(State(shared): State<Shared>, Query(params): Params) -> Response {
    let bridge_type = params.get("type").cloned().unwrap_or_else(|| "mixing".into());
    if !bridge_type.split(',').all(|t| {
        matches!(
            t,
            "mixing" | "holding" | "dtmf_events" | "proxy_media" | "video_sfu" | "video_single" | "sdp_label"
        )
    }) {
        return error(StatusCode::BAD_REQUEST, "Invalid bridge type");
    }
    let model = {
        let mut world = shared.lock();
        let n = world.next_id();
        let id = params.get("bridgeId").cloned().unwrap_or_else(|| format!("bridge-{n}"));
        if world.bridges.contains_key(&id) {
            return error(StatusCode::CONFLICT, "Bridge with given id already exists");
        }
        let bridge = Bridge {
            id: id.clone(),
            name: params.get("name").cloned().unwrap_or_default(),
            bridge_type,
            class: "stasis",
            channels: Vec::new(),
            created: timestamp(),
        };
        let model = bridge.model();
        world.bridges.insert(id, bridge);
        model
    };
    shared.raise(vec![raised(None, "BridgeCreated", json!({ "bridge": model.clone() }))]);
    axum::Json(model).into_response()
}

async fn destroy_bridge(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    let mut out = Vec::new();
    {
        let mut world = shared.lock();
        let Some(bridge) = world.bridges.remove(&id) else {
            return error(StatusCode::NOT_FOUND, "Bridge not found");
        };
        for channel_id in &bridge.channels {
            if let Some(channel) = world.channels.get_mut(channel_id) {
                channel.bridge = None;
                out.push(raised(
                    channel.app.as_deref(),
                    "ChannelLeftBridge",
                    json!({ "bridge": bridge.model(), "channel": channel.model() }),
                ));
            }
        }
        out.push(raised(None, "BridgeDestroyed", json!({ "bridge": bridge.model() })));
    }
    shared.raise(out);
    StatusCode::NO_CONTENT.into_response()
}

/// The channels a bridge request names (`channel=a,b`); `None` when it names none.
fn named_channels(params: &BTreeMap<String, String>) -> Option<Vec<String>> {
    let channels: Vec<String> = params
        .get("channel")
        .map(|c| c.split(',').filter(|c| !c.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    (!channels.is_empty()).then_some(channels)
}

async fn add_channel(State(shared): State<Shared>, Path(id): Path<String>, Query(params): Params) -> Response {
    let Some(channels) = named_channels(&params) else {
        return error(StatusCode::BAD_REQUEST, "Channel parameter not provided");
    };
    let mut out = Vec::new();
    {
        let mut world = shared.lock();
        match world.bridges.get(&id) {
            None => return error(StatusCode::NOT_FOUND, "Bridge not found"),
            Some(bridge) if bridge.class != "stasis" => {
                return error(StatusCode::CONFLICT, "Bridge not in Stasis application");
            }
            Some(_) => {}
        }
        for channel_id in &channels {
            match world.channels.get(channel_id) {
                None => return error(StatusCode::BAD_REQUEST, "Channel not found"),
                Some(channel) if channel.app.is_none() => {
                    return error(StatusCode::UNPROCESSABLE_ENTITY, "Channel not in Stasis application");
                }
                Some(_) => {}
            }
        }
        for channel_id in &channels {
            world.enter_bridge(&id, channel_id, &mut out);
        }
    }
    shared.raise(out);
    StatusCode::NO_CONTENT.into_response()
}

async fn remove_channel(State(shared): State<Shared>, Path(id): Path<String>, Query(params): Params) -> Response {
    let Some(channels) = named_channels(&params) else {
        return error(StatusCode::BAD_REQUEST, "Channel parameter not provided");
    };
    let mut out = Vec::new();
    {
        let mut world = shared.lock();
        let World {
            bridges, channels: all, ..
        } = &mut *world;
        let Some(bridge) = bridges.get_mut(&id) else {
            return error(StatusCode::NOT_FOUND, "Bridge not found");
        };
        if let Some(missing) = channels.iter().find(|c| !bridge.channels.contains(c)) {
            let status = if all.contains_key(missing) {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::BAD_REQUEST
            };
            return error(status, "Channel not in this bridge");
        }
        bridge.channels.retain(|c| !channels.contains(c));
        for channel_id in &channels {
            if let Some(channel) = all.get_mut(channel_id) {
                channel.bridge = None;
                out.push(raised(
                    channel.app.as_deref(),
                    "ChannelLeftBridge",
                    json!({ "bridge": bridge.model(), "channel": channel.model() }),
                ));
            }
        }
    }
    shared.raise(out);
    StatusCode::NO_CONTENT.into_response()
}

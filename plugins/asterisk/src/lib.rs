//! The Asterisk connector: keeps a manager-interface (AMI) connection to the tenant's PBX through
//! the host's streams, logs in without ever seeing the password (the host writes it, or the MD5
//! key of a challenge), resynchronises with `QueueStatus` after every (re)connect, and turns what
//! app_queue reports into Monti events: agents logging in and out, their states (ringing, on a
//! queue call, on another call, wrap-up, paused with its reason, unavailable), callers joining,
//! being answered and leaving queues, and queue calls with their times.
//!
//! It keeps its state (the connection's progress, a message half received, the floor as it
//! knows it) in the installation's key-value store, so each call may run in a fresh instance; a
//! warm instance keeps it in memory between calls too ([`Asterisk`]).

pub mod ari;
pub mod floor;

pub use monti_ami as ami;

use monti_plugin_sdk::commands::{Command, Request};
use monti_plugin_sdk::streams::SecretForm;
use monti_plugin_sdk::{
    ConfigCache, Connector, Event, EventHandler, PluginError, Stream, StreamItem, info, kv, secrets, streams, warn,
};
use serde::{Deserialize, Serialize};

use ami::{Action, Framed, Framer, Message};
use floor::{Floor, MatchBy, Settings};

/// The stream's name (one connection per installation).
const STREAM: &str = "ami";
/// Where the state is kept.
const STATE_KEY: &str = "state";

/// The configuration with the floor settings made from it: the same for every line of a
/// connection until an admin changes it, and reading it for each would cost more than the line.
#[derive(Debug, Deserialize)]
#[serde(from = "Config")]
struct Parsed {
    config: Config,
    settings: Settings,
}

impl From<Config> for Parsed {
    fn from(config: Config) -> Self {
        let settings = config.settings();
        Parsed { config, settings }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct Config {
    host: String,
    #[serde(default = "default_port")]
    port: u16,
    username: String,
    #[serde(default)]
    auth: Auth,
    #[serde(default)]
    queues: String,
    #[serde(default)]
    match_by: MatchBy,
    #[serde(default)]
    wrapup_s: u32,
    #[serde(default = "default_keepalive")]
    keepalive_s: u32,
    #[serde(default = "default_originate_context")]
    originate_context: String,
    /// The REST interface (ARI), for hold and listening in; off when no host is given.
    #[serde(default)]
    ari_host: String,
    #[serde(default = "default_ari_port")]
    ari_port: u16,
    #[serde(default)]
    ari_user: String,
    #[serde(default = "default_ari_app")]
    ari_app: String,
}

fn default_ari_port() -> u16 {
    8088
}

fn default_ari_app() -> String {
    "monti".into()
}

fn default_originate_context() -> String {
    "from-internal".into()
}

fn default_port() -> u16 {
    5038
}

fn default_keepalive() -> u32 {
    30
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Auth {
    #[default]
    Md5,
    Plain,
}

impl Config {
    /// Where ARI is, when it is configured.
    fn ari(&self) -> Option<ari::Endpoint> {
        (!self.ari_host.trim().is_empty()).then(|| ari::Endpoint {
            host: self.ari_host.trim().to_owned(),
            port: self.ari_port,
            user: self.ari_user.clone(),
            app: self.ari_app.clone(),
        })
    }

    fn settings(&self) -> Settings {
        Settings {
            match_by: self.match_by,
            queues: self
                .queues
                .split(',')
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .map(str::to_owned)
                .collect(),
            wrapup_s: self.wrapup_s,
        }
    }
}

/// How far the connection got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// No connection (yet, or it closed).
    #[default]
    Disconnected,
    /// Connected; waiting for the banner.
    Greeting,
    /// `Challenge` sent.
    Challenging,
    /// `Login` sent.
    LoggingIn,
    /// Logged in; `QueueStatus` sent, its list not complete yet.
    Resyncing,
    /// Up to date; events flow.
    Live,
    /// The PBX refused the login: waiting for the next connection.
    Refused,
}

/// What the connector keeps between calls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub phase: Phase,
    stream: Option<Stream>,
    framer: Framer,
    next_action: u64,
    /// ActionIDs of the login steps and the resync in flight.
    challenge_id: Option<String>,
    login_id: Option<String>,
    resync_id: Option<String>,
    last_sent_ms: i64,
    pub last_error: Option<String>,
    pub floor: Floor,
    #[serde(default)]
    last_resync_ms: i64,
    /// Messages received from the PBX, all told.
    #[serde(default)]
    received: u64,
    /// Messages received per second (second, count) over the last minute.
    #[serde(default)]
    recent: std::collections::VecDeque<(i64, u32)>,
    #[serde(default)]
    phase_since_ms: i64,
    /// The REST interface's side.
    #[serde(default)]
    pub ari: ari::AriState,
    /// When this instance last stored the state, and in which phase (not stored).
    #[serde(skip)]
    saved_ms: i64,
    #[serde(skip)]
    saved_phase: Option<Phase>,
}

impl State {
    fn load() -> Self {
        kv::get_json(STATE_KEY).ok().flatten().unwrap_or_default()
    }

    fn save(&self) -> Result<(), PluginError> {
        kv::set_json(STATE_KEY, self).map_err(|e| PluginError::permanent(format!("storing the state: {e:?}")))
    }

    /// Counts a message from the PBX.
    fn count_message(&mut self, now: i64) {
        self.received += 1;
        let second = now.div_euclid(1000);
        match self.recent.back_mut() {
            Some((at, count)) if *at == second => *count += 1,
            _ => self.recent.push_back((second, 1)),
        }
        self.forget_before(second - 59);
    }

    fn forget_before(&mut self, second: i64) {
        while self.recent.front().is_some_and(|(at, _)| *at < second) {
            self.recent.pop_front();
        }
    }

    /// Messages received in the 60 seconds up to `now`: a count over a whole minute, never a
    /// few messages in a millisecond scaled up to one (right after connecting it is what has
    /// arrived so far).
    fn messages_last_minute(&mut self, now: i64) -> u64 {
        self.forget_before(now.div_euclid(1000) - 59);
        self.recent.iter().map(|(_, count)| u64::from(*count)).sum()
    }

    /// The status Monti shows on the plugin's page (the `status` key): connection state, since
    /// when, the last error, and the messages received in the last minute.
    fn publish_status(&mut self, now: i64, config: &Config) {
        if self.phase != self.saved_phase.clone().unwrap_or_default() {
            self.phase_since_ms = now;
        }
        let per_minute = self.messages_last_minute(now);
        let phase = serde_json::to_value(&self.phase).unwrap_or_default();
        let status = serde_json::json!({
            "connection": phase,
            "since": self.phase_since_ms,
            "last_error": self.last_error,
            "agents_logged_in": self.floor.agents_logged_in(),
            "messages_per_minute": per_minute,
            "messages": self.received,
            "ari": self.ari.status(config.ari().as_ref()),
        });
        if let Err(denied) = kv::set("status", status.to_string()) {
            warn!("cannot store the status: {denied:?}");
        }
    }

    fn action_id(&mut self) -> String {
        self.next_action += 1;
        format!("monti-{}", self.next_action)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Sends an action on the connection; a refusal is logged (the connection is closing or gone).
fn send(state: &mut State, action: &Action) {
    let Some(stream) = state.stream else { return };
    match stream.send(action.to_wire()) {
        Ok(()) => state.last_sent_ms = now_ms(),
        Err(denied) => warn!("cannot send to the PBX: {denied:?}"),
    }
}

/// Logs in: `Challenge` first (md5), or `Login` with the password written by the host (plain).
fn greet(state: &mut State, config: &Config) {
    match config.auth {
        Auth::Md5 => {
            let id = state.action_id();
            send(state, &Action::new("Challenge", &id).with("AuthType", "MD5"));
            state.challenge_id = Some(id);
            state.phase = Phase::Challenging;
        }
        Auth::Plain => {
            let id = state.action_id();
            let login = Action::new("Login", &id)
                .with("Username", &config.username)
                .with("Secret", ami::SECRET_PLACEHOLDER)
                .with("Events", "on");
            send_with_password(state, &login, ami::SECRET_PLACEHOLDER, SecretForm::Plain);
            state.login_id = Some(id);
            state.phase = Phase::LoggingIn;
        }
    }
}

fn send_with_password(state: &mut State, action: &Action, placeholder: &str, form: SecretForm) {
    let Some(stream) = state.stream else { return };
    let password = match secrets::get("password") {
        Ok(secret) => secret,
        Err(denied) => {
            state.last_error = Some("no password is configured (the secret `password`)".into());
            warn!("cannot log in to the PBX: no password ({denied:?})");
            return;
        }
    };
    match stream.send_with_secret(action.to_wire(), placeholder, &password, form) {
        Ok(()) => state.last_sent_ms = now_ms(),
        Err(denied) => warn!("cannot send the login: {denied:?}"),
    }
}

/// Handles one complete message from the PBX.
fn receive(state: &mut State, config: &Config, settings: &Settings, message: &Message, out: &mut Vec<Event>) {
    if let Some(response) = message.response() {
        let id = message.action_id();
        let success = response.eq_ignore_ascii_case("success");
        if id.is_some() && id == state.challenge_id.as_deref() {
            state.challenge_id = None;
            match message.get("Challenge").filter(|_| success) {
                Some(challenge) => {
                    let login_id = state.action_id();
                    let login = Action::new("Login", &login_id)
                        .with("AuthType", "MD5")
                        .with("Username", &config.username)
                        .with("Key", ami::KEY_PLACEHOLDER)
                        .with("Events", "on");
                    send_with_password(
                        state,
                        &login,
                        ami::KEY_PLACEHOLDER,
                        SecretForm::Md5After(challenge.to_owned()),
                    );
                    state.login_id = Some(login_id);
                    state.phase = Phase::LoggingIn;
                }
                None => refused(state, message),
            }
        } else if id.is_some() && id == state.login_id.as_deref() {
            state.login_id = None;
            if success {
                info!(
                    "logged in to the PBX at {}:{} as {}",
                    config.host, config.port, config.username
                );
                resync(state);
                state.last_error = None;
            } else {
                refused(state, message);
            }
        }
        return;
    }
    if message.event() == Some("QueueStatusComplete") && message.action_id() == state.resync_id.as_deref() {
        state.resync_id = None;
        state.phase = Phase::Live;
        info!(
            "in step with the PBX: {} agents logged in",
            state.floor.agents_logged_in()
        );
    }
    state.floor.apply(settings, message, now_ms(), out);
}

fn refused(state: &mut State, message: &Message) {
    let why = message.get("Message").unwrap_or("refused").to_owned();
    warn!("the PBX refused the login: {why}");
    state.last_error = Some(format!("login refused: {why}"));
    state.phase = Phase::Refused;
}

/// Opens (or keeps) the connection to the configured PBX.
fn connect(state: &mut State, config: &Config) {
    match streams::tcp_lines(STREAM, &config.host, config.port) {
        Ok(stream) => state.stream = Some(stream),
        Err(denied) => {
            let why = format!("cannot connect to {}:{}: {denied:?}", config.host, config.port);
            if state.last_error.as_deref() != Some(why.as_str()) {
                warn!("{why}");
            }
            state.last_error = Some(why);
        }
    }
}

fn emit(mut events: Vec<Event>) -> Result<(), PluginError> {
    if events.is_empty() {
        return Ok(());
    }
    for event in &mut events {
        event.source = "plugin:asterisk".into();
    }
    monti_plugin_sdk::emit(&events).map_err(|d| PluginError::retryable(format!("emitting: {d:?}")))
}

/// The connector in one instance: the configuration as last read, and the state from the store,
/// kept in memory while the instance lives (a warm one) and stored when due.
#[derive(Default)]
pub struct Asterisk {
    config: ConfigCache<Parsed>,
    state: Option<State>,
}

impl EventHandler for Asterisk {
    /// The host's heartbeat (an empty batch) and the tenant's own events: keep the connection,
    /// ping it, end wrap-ups whose time is up.
    fn handle_events(&mut self, _batch: Vec<Event>) -> Result<(), PluginError> {
        let Parsed { config, .. } = self.config.get()?;
        with_state(&mut self.state, config, |state| {
            connect(state, config);
            if let Some(endpoint) = config.ari() {
                ari::connect(&mut state.ari, &endpoint);
            }
            let now = now_ms();
            if state.phase == Phase::Live && now - state.last_sent_ms >= i64::from(config.keepalive_s) * 1000 {
                let id = state.action_id();
                send(state, &Action::new("Ping", &id));
            }
            let mut out = Vec::new();
            state.floor.tick(now, &mut out);
            Ok(out)
        })
    }

    fn on_stream(&mut self, stream: Stream, item: StreamItem) -> Result<(), PluginError> {
        let Parsed { config, settings } = self.config.get()?;
        with_state(&mut self.state, config, |state| {
            let mut out = Vec::new();
            if state.ari.stream == Some(stream) || matches!(item, StreamItem::Message(_)) {
                ari_item(state, config, stream, item);
            } else {
                state.stream = Some(stream);
                stream_item(state, config, settings, item, &mut out);
            }
            Ok(out)
        })
    }
}

/// How stale the stored state may get while an instance keeps it in memory.
const SAVE_EVERY_MS: i64 = 5_000;
/// A new instance that finds the connection live resyncs, but not more often than this.
const RESYNC_AT_MOST_EVERY_MS: i64 = 30_000;

/// Runs `work` on the state (read from the store on the instance's first call); saves it when it
/// is due (a phase change, or every few seconds) and emits what `work` produced. An instance that
/// starts with the connection live asks the PBX for a resync: what happened since the state was
/// stored is not lost, only late.
fn with_state(
    kept: &mut Option<State>,
    config: &Config,
    work: impl FnOnce(&mut State) -> Result<Vec<Event>, PluginError>,
) -> Result<(), PluginError> {
    let now = now_ms();
    let state = kept.get_or_insert_with(|| {
        let mut state = State::load();
        state.saved_phase = Some(state.phase.clone());
        state.saved_ms = now;
        if state.phase == Phase::Live && now - state.last_resync_ms >= RESYNC_AT_MOST_EVERY_MS {
            resync(&mut state);
        }
        state
    });
    let out = work(state)?;
    if state.saved_phase.as_ref() != Some(&state.phase) || now - state.saved_ms >= SAVE_EVERY_MS {
        state.publish_status(now, config);
        state.saved_phase = Some(state.phase.clone());
        state.saved_ms = now;
        state.save()?;
    }
    emit(out)
}

/// Asks the PBX for every member's state (after a login, or when an instance starts fresh).
fn resync(state: &mut State) {
    let id = state.action_id();
    send(state, &Action::new("QueueStatus", &id));
    state.floor.begin_resync(&id);
    state.resync_id = Some(id);
    state.phase = Phase::Resyncing;
    state.last_resync_ms = now_ms();
}

fn stream_item(state: &mut State, config: &Config, settings: &Settings, item: StreamItem, out: &mut Vec<Event>) {
    {
        match item {
            StreamItem::Opened => {
                state.framer.reset();
                state.phase = Phase::Greeting;
            }
            StreamItem::Line(line) => match state.framer.push(&line) {
                Some(Framed::Banner(banner)) => {
                    info!("connected: {banner}");
                    greet(state, config);
                }
                Some(Framed::Message(message)) => {
                    state.count_message(now_ms());
                    receive(state, config, settings, &message, out);
                }
                None => {}
            },
            StreamItem::Message(_) => {}
            StreamItem::Closed(why) => {
                if state.phase != Phase::Disconnected {
                    warn!("the connection to the PBX closed: {why}");
                }
                state.last_error = Some(why);
                state.phase = Phase::Disconnected;
                state.framer.reset();
                // Reopened at once; the host paces attempts while they keep failing.
                connect(state, config);
            }
        }
    }
}

/// What arrives on (or happens to) ARI's event socket.
fn ari_item(state: &mut State, config: &Config, stream: Stream, item: StreamItem) {
    let Some(endpoint) = config.ari() else { return };
    let ari = &mut state.ari;
    ari.stream = Some(stream);
    match item {
        StreamItem::Opened => {
            info!("ARI's event socket is open (application `{}`)", endpoint.app);
            ari.connected = true;
            ari.since_ms = now_ms();
            ari.last_error = None;
        }
        StreamItem::Message(bytes) => ari::receive(ari, &endpoint, &bytes),
        StreamItem::Line(_) => {}
        StreamItem::Closed(why) => {
            if ari.connected {
                warn!("ARI's event socket closed: {why}");
                ari.since_ms = now_ms();
            }
            ari.connected = false;
            ari.last_error = Some(why);
            // Reopened at once; the host paces attempts while they keep failing.
            ari::connect(ari, &endpoint);
        }
    }
}

/// The PBX interface of an agent as Monti names it: the connector's own floor first (members
/// it has seen), else the name itself when it already is one (`PJSIP/1001`).
fn interface(state: &State, agent: &str) -> Result<(String, Vec<String>), PluginError> {
    if let Some((interface, queues)) = state.floor.member(agent) {
        return Ok((interface.to_owned(), queues.into_iter().map(str::to_owned).collect()));
    }
    if agent.contains('/') {
        return Ok((agent.to_owned(), Vec::new()));
    }
    Err(PluginError::permanent(format!(
        "the PBX has no queue member `{agent}` (is it logged in to a queue?)"
    )))
}

impl Connector for Asterisk {
    /// Turns a supervisor's request into the manager action that does it. The answer says
    /// which action went out; the effect (a pause, a hang-up) comes back as events.
    fn handle_command(&mut self, request: Request) -> Result<String, PluginError> {
        let Parsed { config, .. } = self.config.get()?;
        let mut answer = None;
        with_state(&mut self.state, config, |state| {
            answer = Some(command(state, config, &request));
            Ok(Vec::new())
        })?;
        answer.unwrap_or_else(|| Err(PluginError::permanent("no answer")))
    }
}

/// Where ARI is, or why a request needs it.
fn needs_ari(config: &Config) -> Result<ari::Endpoint, PluginError> {
    config.ari().ok_or_else(|| {
        PluginError::permanent(
            "hold and listening in need the PBX's REST interface (ARI): set `ari_host`, `ari_user` and the secret `ari_password`",
        )
    })
}

/// Turns a request into the manager actions that carry it out, and sends them.
fn command(state: &mut State, config: &Config, request: &Request) -> Result<String, PluginError> {
    {
        if state.phase != Phase::Live || state.stream.is_none() {
            return Err(PluginError::retryable(format!(
                "not connected to the PBX ({})",
                state.last_error.as_deref().unwrap_or("connecting")
            )));
        }
        let id = state.action_id();
        let mut actions = Vec::new();
        match &request.command {
            Command::Pause(pause) => {
                let (interface, _) = interface(state, &pause.agent)?;
                let mut action = Action::new("QueuePause", &id)
                    .with("Interface", &interface)
                    .with("Paused", "true");
                if let Some(queue) = &pause.queue {
                    action = action.with("Queue", queue);
                }
                if let Some(reason) = &pause.reason {
                    action = action.with("Reason", reason);
                }
                actions.push(action);
            }
            Command::Unpause(target) => {
                let (interface, _) = interface(state, &target.agent)?;
                let mut action = Action::new("QueuePause", &id)
                    .with("Interface", &interface)
                    .with("Paused", "false");
                if let Some(queue) = &target.queue {
                    action = action.with("Queue", queue);
                }
                actions.push(action);
            }
            Command::Logout(target) => {
                let (interface, queues) = interface(state, &target.agent)?;
                let queues = match &target.queue {
                    Some(queue) => vec![queue.clone()],
                    None => queues,
                };
                for (n, queue) in queues.iter().enumerate() {
                    actions.push(
                        Action::new("QueueRemove", &format!("{id}/{n}"))
                            .with("Queue", queue)
                            .with("Interface", &interface),
                    );
                }
            }
            Command::Originate(dial) => {
                let (interface, _) = interface(state, &dial.agent)?;
                actions.push(
                    Action::new("Originate", &id)
                        .with("Channel", &interface)
                        .with("Exten", &dial.number)
                        .with("Context", &config.originate_context)
                        .with("Priority", "1")
                        .with("Async", "true"),
                );
            }
            Command::Hangup(call) => {
                let channel = state
                    .floor
                    .channel(&call.call)
                    .ok_or_else(|| PluginError::permanent(format!("no call `{}` on the PBX", call.call)))?;
                actions.push(Action::new("Hangup", &id).with("Channel", channel));
            }
            Command::BlindTransfer(transfer) | Command::AttendedTransfer(transfer) => {
                let channel = state
                    .floor
                    .channel(&transfer.call)
                    .ok_or_else(|| PluginError::permanent(format!("no call `{}` on the PBX", transfer.call)))?;
                let name = if matches!(request.command, Command::BlindTransfer(_)) {
                    "BlindTransfer"
                } else {
                    "Atxfer"
                };
                actions.push(
                    Action::new(name, &id)
                        .with("Channel", channel)
                        .with("Exten", &transfer.to)
                        .with("Context", &config.originate_context),
                );
            }
            Command::Reload => actions.push(Action::new("Reload", &id)),
            Command::Hold(call) | Command::Unhold(call) => {
                let endpoint = needs_ari(config)?;
                let on = matches!(request.command, Command::Hold(_));
                let done = ari::hold(&endpoint, &call.call, on)?;
                info!("{} asked for {:?}: {done}", request.by, request.id);
                return Ok(done);
            }
            Command::Snoop(snoop) => {
                let endpoint = needs_ari(config)?;
                let (agent, channel) = state.floor.member_channel(&snoop.call).ok_or_else(|| {
                    PluginError::permanent(format!("no agent is on call `{}` as far as the PBX said", snoop.call))
                })?;
                let (agent, channel) = (agent.to_owned(), channel.to_owned());
                let supervisor = ari::supervisor_endpoint(&snoop.supervisor, &config.originate_context)?;
                return ari::snoop(
                    &mut state.ari,
                    &endpoint,
                    &request.id,
                    snoop,
                    &agent,
                    &channel,
                    &supervisor,
                );
            }
        }
        let names: Vec<String> = actions
            .iter()
            .map(|a| a.to_wire().lines().next().unwrap_or_default().to_owned())
            .collect();
        for action in &actions {
            send(state, action);
        }
        info!("{} asked for {:?}: sent {}", request.by, request.id, names.join(", "));
        Ok(format!("sent {} ({id})", names.join(", ")))
    }
}

monti_plugin_sdk::connector!(Asterisk);
monti_plugin_sdk::manifest!("../monti-plugin.toml");

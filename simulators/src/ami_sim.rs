//! An Asterisk stand-in for tests and demos (Asterisk itself cannot run here): a manager
//! interface (AMI) server that speaks the protocol as `main/manager.c` and `apps/app_queue.c` do
//! (protocols.md §2): the banner, `Challenge` and `Login` (plain or MD5, a refused login answered
//! after a second and closed), `Ping`, `Logoff`, `QueueStatus` (the list as app_queue sends it),
//! `QueuePause`, `QueueAdd`, `QueueRemove`; and events for what happens to its queue members,
//! sent to every logged-in session. Captured sessions can be replayed byte for byte.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monti_ami::{Framed, Framer, Message};

use monti_domain::events::{AgentState, Event, EventBody, LeaveReason};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// What the simulator says on connect (Asterisk 18's manager version).
pub const BANNER: &str = "Asterisk Call Manager/7.0.3";

/// A queue member as app_queue keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub interface: String,
    pub name: String,
    /// Device state, 0..8 (1 = not in use, 2 = in use, 5 = unavailable, 6 = ringing).
    pub status: u8,
    pub paused: bool,
    pub reason: String,
    pub in_call: bool,
    pub calls_taken: u32,
    /// Seconds after a queue call before app_queue offers the next (the queue's `wrapuptime`).
    pub wrapup_s: u32,
}

#[derive(Debug, Default)]
struct Pbx {
    queues: BTreeMap<String, Vec<Member>>,
    /// A captured session to replay (see [`AmiSimulator::replay`]): what the PBX said, as
    /// messages of lines.
    capture: Option<Vec<Vec<String>>>,
    /// For [`AmiSimulator::play`]: the queues each extension joins when it logs in, with their
    /// wrap-up seconds.
    queues_of: BTreeMap<String, Vec<(String, u32)>>,
    /// Every action clients sent, in order.
    actions: Vec<Message>,
}

/// The running simulator. Dropping it stops it.
pub struct AmiSimulator {
    address: SocketAddr,
    pbx: Arc<Mutex<Pbx>>,
    events: broadcast::Sender<String>,
    /// Closing this ends every session (a PBX restart).
    sessions: broadcast::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AmiSimulator {
    fn drop(&mut self) {
        self.task.abort();
        let _ = self.sessions.send(());
    }
}

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A message in wire form: `Key: Value\r\n` lines and the empty line.
fn wire(lines: &[(&str, String)]) -> String {
    monti_ami::to_wire(lines)
}

fn member_fields(queue: &str, m: &Member) -> Vec<(&'static str, String)> {
    vec![
        ("Queue", queue.to_owned()),
        ("MemberName", m.name.clone()),
        ("Interface", m.interface.clone()),
        ("StateInterface", m.interface.clone()),
        ("Membership", "dynamic".into()),
        ("Penalty", "0".into()),
        ("CallsTaken", m.calls_taken.to_string()),
        ("LastCall", "0".into()),
        ("InCall", u8::from(m.in_call).to_string()),
        ("Status", m.status.to_string()),
        ("Paused", u8::from(m.paused).to_string()),
        ("PausedReason", m.reason.clone()),
        ("Wrapuptime", m.wrapup_s.to_string()),
    ]
}

fn event(name: &str, class: &str, fields: Vec<(&'static str, String)>) -> String {
    event_at(name, class, fields, now_epoch())
}

/// An event stamped with the time it happened (seconds since the epoch).
fn event_at(name: &str, class: &str, fields: Vec<(&'static str, String)>, at: f64) -> String {
    let mut lines = vec![
        ("Event", name.to_owned()),
        ("Privilege", format!("{class},all")),
        ("Timestamp", format!("{at:.6}")),
    ];
    lines.extend(fields);
    wire(&lines)
}

/// The member's side of a queue call, as `AgentConnect` and `AgentComplete` name it (Asterisk
/// 12 and later): its channel and that channel's unique id (the ARI channel id).
fn member_channel(agent: &str, call: &str) -> [(&'static str, String); 2] {
    [
        ("DestChannel", crate::ari_sim::member_channel_name(agent, call)),
        ("DestUniqueid", crate::ari_sim::member_channel_id(call)),
    ]
}

/// app_queue's device state for a Monti agent state.
fn device_status(state: AgentState) -> u8 {
    match state {
        AgentState::LoggedOut | AgentState::Unavailable => 5,
        AgentState::Ringing => 6,
        AgentState::OnQueueCall | AgentState::OnDirectCall => 2,
        AgentState::Available | AgentState::WrapUp | AgentState::Paused => 1,
    }
}

impl AmiSimulator {
    /// Listens on 127.0.0.1 (a free port); `username`/`secret` is the one manager account.
    pub async fn start(username: &str, secret: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let pbx = Arc::new(Mutex::new(Pbx::default()));
        // Room for a simulated quarter hour of a large floor sent at once (the demo's warm-up).
        let (events, _) = broadcast::channel(1 << 16);
        let (sessions, _) = broadcast::channel(1);
        let account = Arc::new((username.to_owned(), secret.to_owned()));
        let task = {
            let (pbx, events, sessions) = (pbx.clone(), events.clone(), sessions.clone());
            tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    let session = Session {
                        pbx: pbx.clone(),
                        events: events.clone(),
                        account: account.clone(),
                    };
                    let stop = sessions.subscribe();
                    tokio::spawn(session.run(socket, stop));
                }
            })
        };
        Ok(Self {
            address,
            pbx,
            events,
            sessions,
            task,
        })
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pbx> {
        self.pbx.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every action clients sent so far.
    pub fn actions(&self) -> Vec<Message> {
        self.lock().actions.clone()
    }

    /// Adds a member to a queue (as `QueueAdd` or a login would), telling logged-in sessions.
    pub fn add_member(&self, queue: &str, interface: &str, name: &str) {
        let member = Member {
            interface: interface.to_owned(),
            name: name.to_owned(),
            status: 1,
            paused: false,
            reason: String::new(),
            in_call: false,
            calls_taken: 0,
            wrapup_s: 0,
        };
        let text = event("QueueMemberAdded", "agent", member_fields(queue, &member));
        self.lock().queues.entry(queue.to_owned()).or_default().push(member);
        let _ = self.events.send(text);
    }

    /// The device state of an interface changes (a call, a phone unregistering …).
    pub fn set_status(&self, interface: &str, status: u8) {
        let mut sent = Vec::new();
        {
            let mut pbx = self.lock();
            for (queue, members) in &mut pbx.queues {
                for member in members.iter_mut().filter(|m| m.interface == interface) {
                    member.status = status;
                    sent.push(event("QueueMemberStatus", "agent", member_fields(queue, member)));
                }
            }
        }
        for text in sent {
            let _ = self.events.send(text);
        }
    }

    /// Pauses or unpauses an interface in every queue, as the `QueuePause` action does.
    pub fn pause(&self, interface: &str, paused: bool, reason: &str) {
        for text in self.lock().pause(interface, None, paused, reason) {
            let _ = self.events.send(text);
        }
    }

    /// Changes a member without telling anyone (what a session that was down would miss).
    pub fn quietly(&self, interface: &str, change: impl Fn(&mut Member)) {
        let mut pbx = self.lock();
        for members in pbx.queues.values_mut() {
            members
                .iter_mut()
                .filter(|m| m.interface == interface)
                .for_each(&change);
        }
    }

    /// Sends a captured message as it is (its lines end with `\r\n`), to every logged-in session.
    pub fn send_raw(&self, lines: &[&str]) {
        let mut text = String::new();
        for line in lines {
            text.push_str(line);
            text.push_str("\r\n");
        }
        text.push_str("\r\n");
        let _ = self.events.send(text);
    }

    /// Replays a captured AMI session (text: the banner, then messages separated by empty
    /// lines; messages that begin with `Action:` are what the client sent and are left out):
    /// when a client asks `QueueStatus`, it gets everything the PBX said in the capture, line for
    /// line, with the capture's ActionIDs replaced by its own, instead of the simulator's state.
    pub fn replay(&self, capture: &str) {
        let mut messages = Vec::new();
        let mut current: Vec<String> = Vec::new();
        for line in capture.lines() {
            if line.starts_with("Asterisk Call Manager/") {
                continue;
            }
            if line.trim().is_empty() {
                if !current.is_empty() {
                    messages.push(std::mem::take(&mut current));
                }
            } else {
                current.push(line.to_owned());
            }
        }
        if !current.is_empty() {
            messages.push(current);
        }
        messages.retain(|m| !m[0].to_ascii_lowercase().starts_with("action:"));
        self.lock().capture = Some(messages);
    }

    /// Which queues an extension joins when it logs in, with each queue's wrap-up seconds (for
    /// [`play`](Self::play)).
    pub fn set_queues(&self, extension: &str, queues: Vec<(String, u32)>) {
        self.lock().queues_of.insert(extension.to_owned(), queues);
    }

    /// What a simulated contact-center event looks like from Asterisk: members joining and
    /// leaving queues, their device states and pauses, callers joining, connected, abandoning
    /// and leaving, calls completed — app_queue's events, stamped with the event's time. The
    /// interface of extension `1001` is `PJSIP/1001`.
    pub fn play(&self, event: &Event) {
        for text in self.render(event) {
            let _ = self.events.send(text);
        }
    }

    /// What [`play`](Self::play) would send for `event`, in wire form, without sending it (the
    /// simulated PBX's state changes as if it had).
    pub fn render(&self, event: &Event) -> Vec<String> {
        let at = event.at_ms() as f64 / 1000.0;
        let mut sent = Vec::new();
        {
            let mut pbx = self.lock();
            let caller = |queue: &str, call: &str| {
                vec![
                    ("Channel", format!("PJSIP/trunk-{call}")),
                    ("CallerIDNum", "<unknown>".to_owned()),
                    ("Uniqueid", call.to_owned()),
                    ("Queue", queue.to_owned()),
                ]
            };
            match &event.body {
                EventBody::AgentLogin { agent } => {
                    let interface = format!("PJSIP/{agent}");
                    for (queue, wrapup) in pbx.queues_of.get(agent).cloned().unwrap_or_default() {
                        let members = pbx.queues.entry(queue.clone()).or_default();
                        if members.iter().any(|m| m.interface == interface) {
                            continue;
                        }
                        let member = Member {
                            interface: interface.clone(),
                            name: agent.clone(),
                            status: 1,
                            paused: false,
                            reason: String::new(),
                            in_call: false,
                            calls_taken: 0,
                            wrapup_s: wrapup,
                        };
                        sent.push(event_at(
                            "QueueMemberAdded",
                            "agent",
                            member_fields(&queue, &member),
                            at,
                        ));
                        members.push(member);
                    }
                }
                EventBody::AgentLogout { agent } => {
                    let interface = format!("PJSIP/{agent}");
                    let queues: Vec<String> = pbx.queues.keys().cloned().collect();
                    for queue in queues {
                        if let Some(text) = pbx.remove(&queue, &interface) {
                            sent.push(text);
                        }
                    }
                }
                EventBody::AgentState { agent, state, reason } => {
                    let interface = format!("PJSIP/{agent}");
                    let paused = *state == AgentState::Paused;
                    for (queue, members) in &mut pbx.queues {
                        for member in members.iter_mut().filter(|m| m.interface == interface) {
                            if member.paused != paused {
                                member.paused = paused;
                                member.reason = if paused {
                                    reason.clone().unwrap_or_default()
                                } else {
                                    String::new()
                                };
                                sent.push(event_at("QueueMemberPause", "agent", member_fields(queue, member), at));
                            }
                        }
                    }
                    let on_queue_call = *state == AgentState::OnQueueCall;
                    sent.extend(pbx.device(agent, device_status(*state), on_queue_call, at));
                }
                EventBody::CallerJoin { queue, call } => {
                    let mut fields = caller(queue, call);
                    fields.extend([("Position", "1".to_owned()), ("Count", "1".to_owned())]);
                    sent.push(event_at("QueueCallerJoin", "agent", fields, at));
                }
                EventBody::CallerAnswer {
                    queue,
                    call,
                    agent,
                    wait_s,
                } => {
                    // The member's phone is in use, on a queue call, until the call ends.
                    sent.extend(pbx.device(agent, 2, true, at));
                    let mut fields = caller(queue, call);
                    fields.extend(member_channel(agent, call));
                    fields.extend([
                        ("Interface", format!("PJSIP/{agent}")),
                        ("MemberName", agent.clone()),
                        ("HoldTime", format!("{}", wait_s.round() as i64)),
                        ("RingTime", "0".to_owned()),
                    ]);
                    sent.push(event_at("AgentConnect", "agent", fields, at));
                }
                EventBody::CallerLeave {
                    queue,
                    call,
                    reason,
                    wait_s,
                } => {
                    let mut fields = caller(queue, call);
                    if *reason == LeaveReason::Abandon {
                        fields.extend([
                            ("Position", "1".to_owned()),
                            ("OriginalPosition", "1".to_owned()),
                            ("HoldTime", format!("{}", wait_s.round() as i64)),
                        ]);
                        sent.push(event_at("QueueCallerAbandon", "agent", fields, at));
                    } else {
                        fields.extend([("Position", "1".to_owned()), ("Count", "0".to_owned())]);
                        sent.push(event_at("QueueCallerLeave", "agent", fields, at));
                    }
                }
                EventBody::CallEnd {
                    call,
                    agent,
                    queue: Some(queue),
                    talk_s,
                    hold_s,
                    ..
                } => {
                    sent.extend(pbx.device(agent, 1, false, at));
                    let mut fields = caller(queue, call);
                    fields.extend(member_channel(agent, call));
                    fields.extend([
                        ("Interface", format!("PJSIP/{agent}")),
                        ("MemberName", agent.clone()),
                        ("HoldTime", "0".to_owned()),
                        ("TalkTime", format!("{}", (talk_s + hold_s).round() as i64)),
                        ("Reason", "caller".to_owned()),
                    ]);
                    sent.push(event_at("AgentComplete", "agent", fields, at));
                }
                // Direct calls show as device states; call starts need nothing of their own.
                _ => {}
            }
        }
        sent
    }

    /// Sends messages already in wire form to every logged-in session. At most 65,536 may be
    /// on their way at once; a session further behind loses the oldest.
    pub fn send_text(&self, texts: impl IntoIterator<Item = String>) {
        for text in texts {
            let _ = self.events.send(text);
        }
    }

    /// How many clients are logged in now.
    pub fn logged_in_sessions(&self) -> usize {
        self.events.receiver_count()
    }

    /// Ends every session, as a PBX restart does; new ones are accepted.
    pub fn drop_connections(&self) {
        let _ = self.sessions.send(());
    }
}

impl Pbx {
    /// The device of extension `agent` changes state; a `QueueMemberStatus` per queue it is in.
    fn device(&mut self, agent: &str, status: u8, in_call: bool, at: f64) -> Vec<String> {
        let interface = format!("PJSIP/{agent}");
        let mut sent = Vec::new();
        for (queue, members) in &mut self.queues {
            for member in members.iter_mut().filter(|m| m.interface == interface) {
                if member.status != status || member.in_call != in_call {
                    member.status = status;
                    member.in_call = in_call;
                    sent.push(event_at("QueueMemberStatus", "agent", member_fields(queue, member), at));
                }
            }
        }
        sent
    }

    /// Takes a member out of a queue; the `QueueMemberRemoved` event to send.
    fn remove(&mut self, queue: &str, interface: &str) -> Option<String> {
        let members = self.queues.get_mut(queue)?;
        let at = members.iter().position(|m| m.interface == interface)?;
        let member = members.remove(at);
        Some(event("QueueMemberRemoved", "agent", member_fields(queue, &member)))
    }

    fn pause(&mut self, interface: &str, queue: Option<&str>, paused: bool, reason: &str) -> Vec<String> {
        let mut sent = Vec::new();
        for (name, members) in &mut self.queues {
            if queue.is_some_and(|q| q != name) {
                continue;
            }
            for member in members.iter_mut().filter(|m| m.interface == interface) {
                member.paused = paused;
                member.reason = if paused { reason.to_owned() } else { String::new() };
                sent.push(event("QueueMemberPause", "agent", member_fields(name, member)));
            }
        }
        sent
    }
}

/// A capture's messages as sent, each line ended by `\r\n`, ActionIDs made `id`.
fn replayed(messages: &[Vec<String>], id: &str) -> String {
    let mut out = String::new();
    for message in messages {
        for line in message {
            match line.split_once(':') {
                Some((key, _)) if key.eq_ignore_ascii_case("ActionID") => {
                    out.push_str(key);
                    out.push_str(": ");
                    out.push_str(id);
                }
                _ => out.push_str(line),
            }
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
    }
    out
}

struct Session {
    pbx: Arc<Mutex<Pbx>>,
    events: broadcast::Sender<String>,
    account: Arc<(String, String)>,
}

impl Session {
    async fn run(self, socket: TcpStream, mut stop: broadcast::Receiver<()>) {
        let (reader, mut writer) = socket.into_split();
        let mut lines = tokio::io::BufReader::new(reader).lines();
        if writer.write_all(format!("{BANNER}\r\n").as_bytes()).await.is_err() {
            return;
        }
        let mut framer = Framer::default();
        let mut challenge: Option<String> = None;
        let mut events: Option<broadcast::Receiver<String>> = None;
        loop {
            let forwarded = async {
                match &mut events {
                    Some(receiver) => receiver.recv().await.ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.recv() => return,
                text = forwarded => {
                    if let Some(text) = text && writer.write_all(text.as_bytes()).await.is_err() {
                        return;
                    }
                }
                line = lines.next_line() => {
                    let Ok(Some(line)) = line else { return };
                    let Some(Framed::Message(action)) = framer.push(&line) else { continue };
                    self.pbx.lock().unwrap_or_else(|e| e.into_inner()).actions.push(action.clone());
                    let name = action.get("Action").unwrap_or_default().to_ascii_lowercase();
                    let id = action.action_id().unwrap_or_default().to_owned();
                    let reply = |fields: Vec<(&'static str, String)>| {
                        let mut lines = fields;
                        if !id.is_empty() {
                            lines.insert(1, ("ActionID", id.clone()));
                        }
                        wire(&lines)
                    };
                    let logged_in = events.is_some();
                    let answer = match name.as_str() {
                        "challenge" => {
                            let value = format!("{}", rand::random::<u32>() % 900_000_000 + 100_000_000);
                            challenge = Some(value.clone());
                            reply(vec![("Response", "Success".into()), ("Challenge", value)])
                        }
                        "login" => {
                            let (user, secret) = &*self.account;
                            let given_user = action.get("Username").unwrap_or_default();
                            let accepted = given_user == user
                                && match (action.get("AuthType"), &challenge) {
                                    (Some(kind), Some(challenge)) if kind.eq_ignore_ascii_case("md5") => {
                                        use md5::Digest as _;
                                        let key = md5::Md5::digest(format!("{challenge}{secret}").as_bytes());
                                        let key: String = key.iter().map(|b| format!("{b:02x}")).collect();
                                        action.get("Key") == Some(key.as_str())
                                    }
                                    _ => action.get("Secret") == Some(secret.as_str()),
                                };
                            if accepted {
                                events = Some(self.events.subscribe());
                                reply(vec![("Response", "Success".into()), ("Message", "Authentication accepted".into())])
                                    + event("FullyBooted", "system", vec![("Status", "Fully Booted".into())]).as_str()
                            } else {
                                // As manager.c: a second's delay, the error, then the socket closes.
                                tokio::time::sleep(Duration::from_secs(1)).await;
                                let text = reply(vec![("Response", "Error".into()), ("Message", "Authentication failed".into())]);
                                let _ = writer.write_all(text.as_bytes()).await;
                                return;
                            }
                        }
                        _ if !logged_in => reply(vec![("Response", "Error".into()), ("Message", "Permission denied".into())]),
                        "ping" => reply(vec![
                            ("Response", "Success".into()),
                            ("Ping", "Pong".into()),
                            ("Timestamp", format!("{:.6}", now_epoch())),
                        ]),
                        "logoff" => {
                            let text = reply(vec![("Response", "Goodbye".into()), ("Message", "Thanks for all the fish.".into())]);
                            let _ = writer.write_all(text.as_bytes()).await;
                            return;
                        }
                        "queuestatus" => {
                            let capture = self.pbx.lock().unwrap_or_else(|e| e.into_inner()).capture.clone();
                            match capture {
                                Some(messages) => replayed(&messages, &id),
                                None => self.queue_status(&id, action.get("Queue")),
                            }
                        }
                        "queuepause" => {
                            let interface = action.get("Interface").unwrap_or_default();
                            let paused = action.flag("Paused").unwrap_or(false);
                            let sent = self.pbx.lock().unwrap_or_else(|e| e.into_inner()).pause(
                                interface,
                                action.get("Queue"),
                                paused,
                                action.get("Reason").unwrap_or_default(),
                            );
                            if sent.is_empty() {
                                reply(vec![("Response", "Error".into()), ("Message", "Interface not found".into())])
                            } else {
                                for text in sent {
                                    let _ = self.events.send(text);
                                }
                                let what = if paused { "paused" } else { "unpaused" };
                                reply(vec![("Response", "Success".into()), ("Message", format!("Interface {what} successfully"))])
                            }
                        }
                        "queueremove" => {
                            let (queue, interface) = (
                                action.get("Queue").unwrap_or_default(),
                                action.get("Interface").unwrap_or_default(),
                            );
                            match self.pbx.lock().unwrap_or_else(|e| e.into_inner()).remove(queue, interface) {
                                Some(text) => {
                                    let _ = self.events.send(text);
                                    reply(vec![("Response", "Success".into()), ("Message", "Removed interface from queue".into())])
                                }
                                None => reply(vec![("Response", "Error".into()), ("Message", "Unable to remove interface: Not there".into())]),
                            }
                        }
                        "originate" => {
                            if action.get("Channel").is_some() && (action.get("Exten").is_some() || action.get("Application").is_some()) {
                                reply(vec![("Response", "Success".into()), ("Message", "Originate successfully queued".into())])
                            } else {
                                reply(vec![("Response", "Error".into()), ("Message", "Channel not specified".into())])
                            }
                        }
                        "hangup" => reply(vec![("Response", "Success".into()), ("Message", "Channel Hungup".into())]),
                        "blindtransfer" | "atxfer" => reply(vec![("Response", "Success".into()), ("Message", "Transfer successful".into())]),
                        "reload" => reply(vec![("Response", "Success".into()), ("Message", "Module Reloaded".into())]),
                        _ => reply(vec![("Response", "Error".into()), ("Message", "Invalid/unknown command".into())]),
                    };
                    if writer.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// `QueueStatus`: the acknowledgement, `QueueParams` and `QueueMember` per queue, then
    /// `QueueStatusComplete`, each with the ActionID.
    fn queue_status(&self, id: &str, only: Option<&str>) -> String {
        let pbx = self.pbx.lock().unwrap_or_else(|e| e.into_inner());
        let with_id = |mut fields: Vec<(&'static str, String)>| {
            if !id.is_empty() {
                fields.push(("ActionID", id.to_owned()));
            }
            fields
        };
        let mut out = wire(&with_id(vec![
            ("Response", "Success".into()),
            ("EventList", "start".into()),
            ("Message", "Queue status will follow".into()),
        ]));
        let mut items = 0;
        for (queue, members) in pbx.queues.iter().filter(|(q, _)| only.is_none_or(|o| o == q.as_str())) {
            let params = vec![
                ("Queue", queue.clone()),
                ("Max", "0".into()),
                ("Strategy", "ringall".into()),
                ("Calls", "0".into()),
                ("Holdtime", "0".into()),
                ("TalkTime", "0".into()),
                ("Completed", "0".into()),
                ("Abandoned", "0".into()),
                ("ServiceLevel", "20".into()),
                ("ServicelevelPerf", "0.0".into()),
                ("Weight", "0".into()),
            ];
            out += &wire(&[vec![("Event", "QueueParams".to_owned())], with_id(params)].concat());
            items += 1;
            for member in members {
                let mut fields = vec![
                    ("Queue", queue.clone()),
                    ("Name", member.name.clone()),
                    ("Location", member.interface.clone()),
                    ("StateInterface", member.interface.clone()),
                    ("Membership", "dynamic".into()),
                    ("Penalty", "0".into()),
                    ("CallsTaken", member.calls_taken.to_string()),
                    ("LastCall", "0".into()),
                    ("InCall", u8::from(member.in_call).to_string()),
                    ("Status", member.status.to_string()),
                    ("Paused", u8::from(member.paused).to_string()),
                    ("PausedReason", member.reason.clone()),
                    ("Wrapuptime", member.wrapup_s.to_string()),
                ];
                fields = with_id(fields);
                out += &wire(&[vec![("Event", "QueueMember".to_owned())], fields].concat());
                items += 1;
            }
        }
        out += &wire(&with_id(vec![
            ("Event", "QueueStatusComplete".into()),
            ("EventList", "Complete".into()),
            ("ListItems", items.to_string()),
        ]));
        out
    }
}

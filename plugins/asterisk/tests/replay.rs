//! The connector in Monti's host (monti-plugin-test), fed the real AMI sessions captured in
//! `tests/fixtures/panoramisk` (copied from the project's shared fixtures; MIT): what the PBX said is delivered line by line, as the
//! host's stream would; what the plugin sends is checked against what the client sent then.

use std::path::{Path, PathBuf};
use std::time::Duration;

use monti_plugin_test::wit::AgentState;
use monti_plugin_test::{Event, EventBody, Harness, Run, StreamItem};

fn fixtures() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/panoramisk");
    assert!(dir.is_dir(), "the AMI fixtures are at {}", dir.display());
    dir
}

/// A captured session: the banner, then blocks; a block whose first line is an `Action:` is
/// what the client sent.
fn blocks(name: &str) -> (Option<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
    let mut banner = None;
    let mut blocks = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("Asterisk Call Manager/") {
            banner = Some(line.to_owned());
        } else if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
            }
        } else {
            current.push(line.to_owned());
        }
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    (banner, blocks)
}

fn is_action(block: &[String]) -> bool {
    block[0].to_ascii_lowercase().starts_with("action:")
}

fn field<'a>(block: &'a [String], key: &str) -> Option<&'a str> {
    block.iter().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
    })
}

/// The actions the plugin sent so far, as blocks.
fn sent(plugin: &Harness) -> Vec<Vec<String>> {
    plugin
        .streams()
        .named("ami")
        .map(|s| s.sent_text())
        .unwrap_or_default()
        .iter()
        .map(|text| text.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect())
        .collect()
}

struct Pbx {
    plugin: Harness,
    stream: u32,
    emitted: Vec<Event>,
}

impl Pbx {
    fn new(config: serde_json::Value) -> Self {
        let mut plugin = Harness::build(env!("CARGO_MANIFEST_DIR")).expect("the connector builds and loads");
        plugin.configure(config).expect("a valid configuration");
        plugin.set_secret("password", "s3cret-pw").unwrap();
        // The heartbeat opens the connection.
        let run = plugin.handle_events(Vec::new()).expect("runs");
        assert_eq!(run.result, Ok(()));
        let stream = plugin.streams().named("ami").expect("a connection to the PBX").id;
        assert_eq!(
            plugin.streams().named("ami").unwrap().target,
            "tcp://pbx.example.com:5038"
        );
        let mut pbx = Self {
            plugin,
            stream,
            emitted: Vec::new(),
        };
        pbx.deliver(StreamItem::Opened);
        pbx
    }

    fn deliver(&mut self, item: StreamItem) -> Run {
        let run = self.plugin.deliver(self.stream, item).expect("runs");
        assert_eq!(run.result, Ok(()), "{:?}", run.logs);
        for line in &run.logs {
            assert!(!line.message.contains("s3cret-pw"), "the password in a log line");
        }
        self.emitted.extend(run.emitted.iter().cloned());
        run
    }

    fn say(&mut self, lines: &[String]) {
        for line in lines {
            self.deliver(StreamItem::Line(line.clone()));
        }
        self.deliver(StreamItem::Line(String::new()));
    }

    /// Logs in the way Asterisk 18 answers an md5 login; returns the resync's ActionID.
    fn log_in(&mut self) -> String {
        self.deliver(StreamItem::Line("Asterisk Call Manager/7.0.3".into()));
        let challenge = sent(&self.plugin)
            .last()
            .cloned()
            .expect("the plugin asks for a challenge");
        assert_eq!(field(&challenge, "Action"), Some("Challenge"));
        assert_eq!(field(&challenge, "AuthType"), Some("MD5"));
        let id = field(&challenge, "ActionID").unwrap().to_owned();
        self.say(&[
            "Response: Success".into(),
            format!("ActionID: {id}"),
            "Challenge: 145769581".into(),
        ]);
        let login = sent(&self.plugin).last().cloned().unwrap();
        assert_eq!(field(&login, "Action"), Some("Login"));
        // The host wrote the key: md5("145769581" + password); the plugin never had the password.
        assert_eq!(field(&login, "Key"), Some("5d271a7255b9cdc566108fe8cea85b32"));
        assert!(!login.iter().any(|l| l.contains("s3cret-pw") || l.contains("{monti-")));
        let login_id = field(&login, "ActionID").unwrap().to_owned();
        self.say(&[
            "Response: Success".into(),
            format!("ActionID: {login_id}"),
            "Message: Authentication accepted".into(),
        ]);
        let resync = sent(&self.plugin).last().cloned().unwrap();
        assert_eq!(field(&resync, "Action"), Some("QueueStatus"), "a resync after login");
        field(&resync, "ActionID").unwrap().to_owned()
    }

    /// Replays the server's side of a captured session; ActionIDs in it become `action_id`.
    fn replay(&mut self, name: &str, action_id: &str) {
        let (_, blocks) = blocks(name);
        for block in blocks.iter().filter(|b| !is_action(b)) {
            let lines: Vec<String> = block
                .iter()
                .map(|l| match l.split_once(':') {
                    Some((k, _)) if k.eq_ignore_ascii_case("ActionID") => format!("ActionID: {action_id}"),
                    _ => l.clone(),
                })
                .collect();
            self.say(&lines);
        }
    }

    /// The last state told for each agent.
    fn states(&self) -> std::collections::BTreeMap<String, String> {
        let mut states = std::collections::BTreeMap::new();
        for event in &self.emitted {
            match &event.body {
                EventBody::AgentState(s) => {
                    let state = format!("{:?}", s.state).trim_start_matches("AgentState::").to_owned();
                    let shown = match &s.reason {
                        Some(r) => format!("{state} ({r})"),
                        None => state,
                    };
                    states.insert(s.agent.clone(), shown);
                }
                EventBody::AgentLogout(a) => {
                    states.insert(a.clone(), "LoggedOut".into());
                }
                _ => {}
            }
        }
        states
    }
}

fn config(match_by: &str) -> serde_json::Value {
    serde_json::json!({ "host": "pbx.example.com", "port": 5038, "username": "monti", "match_by": match_by })
}

#[test]
fn the_md5_login_key_is_written_by_the_host() {
    let mut pbx = Pbx::new(config("member_name"));
    pbx.log_in();
    let login = sent(&pbx.plugin)
        .into_iter()
        .find(|b| field(b, "Action") == Some("Login"))
        .unwrap();
    // md5("145769581" + "s3cret-pw"), as Asterisk computes it for the challenge it sent.
    assert_eq!(field(&login, "Key"), Some("5d271a7255b9cdc566108fe8cea85b32"));
    assert_eq!(field(&login, "Username"), Some("monti"));
}

#[test]
fn a_queue_status_resync_puts_every_member_in_its_state() {
    let mut pbx = Pbx::new(config("member_name"));
    let resync = pbx.log_in();
    pbx.replay("queue_status.yaml", &resync);
    let states = pbx.states();
    let expected = [
        ("213", "Available"),
        ("214", "Available"),
        ("220", "Available"),
        ("333", "Available"),
        ("859", "Available"),
        // Paused, but its phone is unavailable: that shows first.
        ("999", "Unavailable"),
    ];
    assert_eq!(
        states.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(),
        expected
    );
    let logins = pbx
        .emitted
        .iter()
        .filter(|e| matches!(e.body, EventBody::AgentLogin(_)))
        .count();
    assert_eq!(logins, 6);
}

#[test]
fn agents_logging_in_and_leaving_a_pause_as_captured() {
    let mut pbx = Pbx::new(config("member_name"));
    let resync = pbx.log_in();
    pbx.replay("agent_loggued_in.yaml", &resync);
    let states = pbx.states();
    assert_eq!(states.get("401").map(String::as_str), Some("Available"));
    // Added while its device was in use (a direct call), then idle.
    assert_eq!(states.get("402").map(String::as_str), Some("Available"));
    let told_402: Vec<String> = pbx
        .emitted
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::AgentState(s) if s.agent == "402" => Some(format!("{:?}", s.state)),
            _ => None,
        })
        .collect();
    assert_eq!(told_402.len(), 2, "on a direct call, then available: {told_402:?}");
    assert!(told_402[0].contains("OnDirectCall"));

    let mut pbx = Pbx::new(config("member_name"));
    let resync = pbx.log_in();
    pbx.replay("agent_not_in_pause.yaml", &resync);
    assert_eq!(pbx.states().get("999").map(String::as_str), Some("Available"));
    assert!(
        pbx.emitted.iter().any(
            |e| matches!(&e.body, EventBody::AgentState(s) if s.agent == "999" && s.state == AgentState::OnDirectCall)
        ),
        "paused while on a direct call shows the call"
    );
}

#[test]
fn every_captured_session_is_read_without_failing() {
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut pbx = Pbx::new(config("interface"));
        let resync = pbx.log_in();
        pbx.replay(&name, &resync);
        for event in &pbx.emitted {
            assert!(
                !event.id.is_empty() && event.source == "plugin:asterisk",
                "{name}: {event:?}"
            );
        }
    }
}

#[test]
fn a_refused_login_is_reported_and_nothing_is_emitted() {
    let mut pbx = Pbx::new(serde_json::json!({
        "host": "pbx.example.com", "port": 5038, "username": "monti", "auth": "plain"
    }));
    pbx.deliver(StreamItem::Line("Asterisk Call Manager/1.3".into()));
    let login = sent(&pbx.plugin).last().cloned().unwrap();
    assert_eq!(field(&login, "Action"), Some("Login"));
    // A plain login: the host wrote the password into the one line meant for it.
    assert_eq!(field(&login, "Secret"), Some("s3cret-pw"));
    let id = field(&login, "ActionID").unwrap().to_owned();
    // As login_failed.yaml: an error, then the PBX closes the connection.
    let (_, blocks) = blocks("login_failed.yaml");
    let refusal: Vec<String> = blocks
        .iter()
        .find(|b| !is_action(b))
        .unwrap()
        .iter()
        .map(|l| {
            if l.starts_with("ActionID") {
                format!("ActionID: {id}")
            } else {
                l.clone()
            }
        })
        .collect();
    let run = {
        pbx.say(&refusal);
        pbx.deliver(StreamItem::Closed("the server closed the connection".into()))
    };
    assert!(pbx.emitted.is_empty());
    let warned = pbx.plugin.kv_text("state").unwrap();
    assert!(warned.contains("the server closed the connection"), "{warned}");
    assert!(run.logs.iter().any(|l| l.message.contains("closed")), "{:?}", run.logs);
    let logs: Vec<String> = pbx.plugin.kv_text("state").into_iter().collect();
    assert!(!logs.iter().any(|l| l.contains("s3cret-pw")));
}

#[test]
fn after_a_reconnect_a_resync_corrects_what_was_missed_and_repeats_nothing() {
    let mut pbx = Pbx::new(config("member_name"));
    let resync = pbx.log_in();
    pbx.replay("queue_status.yaml", &resync);
    let before = pbx.emitted.len();
    // The PBX restarts mid-stream: a message cut in the middle, then the connection closes.
    pbx.deliver(StreamItem::Line("Event: QueueMemberStatus".into()));
    pbx.deliver(StreamItem::Line("Queue: xxxxxxxxxxxxxxxx-tous".into()));
    pbx.deliver(StreamItem::Closed(
        "the server closed the connection in the middle of a line".into(),
    ));
    // The plugin reopened (the host paces it); the same stream id is used again.
    pbx.plugin.clock().advance(Duration::from_secs(2));
    pbx.deliver(StreamItem::Opened);
    let resync = pbx.log_in();
    // Meanwhile agent 213 logged out and 999's phone came back.
    let (_, blocks) = blocks("queue_status.yaml");
    let mut replayed = 0;
    for block in blocks.iter().filter(|b| !is_action(b)) {
        if block.iter().any(|l| l == "Name: Agent/213") {
            continue;
        }
        let lines: Vec<String> = block
            .iter()
            .map(|l| {
                if l.starts_with("ActionID") {
                    format!("ActionID: {resync}")
                } else if l == "Status: 5" {
                    "Status: 1".into()
                } else if l == "Paused: 1" {
                    "Paused: 0".into()
                } else {
                    l.clone()
                }
            })
            .collect();
        pbx.say(&lines);
        replayed += 1;
    }
    assert!(replayed > 5);
    let after: Vec<String> = pbx.emitted[before..]
        .iter()
        .map(|e| match &e.body {
            EventBody::AgentState(s) => format!("{} {:?}", s.agent, s.state),
            EventBody::AgentLogout(a) => format!("{a} logout"),
            EventBody::AgentLogin(a) => format!("{a} login"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(after, ["999 AgentState::Available", "213 logout"], "only what changed");
}

#[test]
fn supervisors_requests_become_manager_actions() {
    use monti_plugin_test::wit::commands::{AgentInQueue, CallRef, Command, Pause, Request};
    let request = |command: Command| Request {
        id: "r1".into(),
        by: "user:sup".into(),
        command,
    };
    let pause = |agent: &str| {
        request(Command::Pause(Pause {
            agent: agent.into(),
            queue: None,
            reason: Some("coaching".into()),
        }))
    };
    let mut pbx = Pbx::new(config("member_name"));
    // Not logged in yet: retry later.
    let early = pbx.plugin.handle_command(pause("220")).expect("runs");
    let error = early.result.expect_err("not connected");
    assert!(error.retryable && error.message.contains("not connected"), "{error:?}");

    let resync = pbx.log_in();
    pbx.replay("queue_status.yaml", &resync);
    let run = pbx.plugin.handle_command(pause("220")).expect("runs");
    assert_eq!(run.result, Ok(()));
    assert!(
        run.answer.as_deref().unwrap().starts_with("sent Action: QueuePause"),
        "{:?}",
        run.answer
    );
    let action = sent(&pbx.plugin).last().cloned().unwrap();
    assert_eq!(field(&action, "Action"), Some("QueuePause"));
    assert_eq!(field(&action, "Interface"), Some("Local/id-9@agentcallback"));
    assert_eq!(field(&action, "Paused"), Some("true"));
    assert_eq!(field(&action, "Reason"), Some("coaching"));

    let logout = pbx
        .plugin
        .handle_command(request(Command::Logout(AgentInQueue {
            agent: "213".into(),
            queue: None,
        })))
        .unwrap();
    assert_eq!(logout.result, Ok(()));
    let action = sent(&pbx.plugin).last().cloned().unwrap();
    assert_eq!(field(&action, "Action"), Some("QueueRemove"));
    assert_eq!(field(&action, "Queue"), Some("xxxxxxxxxxxxxxxx-tous"));

    let unknown = pbx.plugin.handle_command(pause("nobody")).unwrap();
    let error = unknown.result.expect_err("no such member");
    assert!(
        !error.retryable && error.message.contains("no queue member `nobody`"),
        "{error:?}"
    );
    let hold = pbx
        .plugin
        .handle_command(request(Command::Hold(CallRef { call: "c1".into() })))
        .unwrap();
    assert!(hold.result.expect_err("needs ARI").message.contains("ARI"));
}

#[test]
fn a_new_instance_resyncs_what_it_may_have_missed() {
    let mut pbx = Pbx::new(config("member_name"));
    let resync = pbx.log_in();
    pbx.replay("queue_status.yaml", &resync);
    let before = sent(&pbx.plugin).len();
    // The host replaced the instance (a failure, or its time was up): the floor kept in memory
    // since the last save may be behind, so the new one asks the PBX again.
    pbx.plugin.cool_down();
    pbx.plugin.clock().advance(Duration::from_secs(60));
    pbx.say(&["Response: Success".into(), "Ping: Pong".into()]);
    let after = sent(&pbx.plugin);
    assert_eq!(after.len(), before + 1);
    assert_eq!(field(after.last().unwrap(), "Action"), Some("QueueStatus"));
    // Its answer changes nothing that was right.
    let id = field(after.last().unwrap(), "ActionID").unwrap().to_owned();
    let told = pbx.emitted.len();
    pbx.replay("queue_status.yaml", &id);
    assert_eq!(pbx.emitted.len(), told, "nothing told twice");
}

/// ARI in the host: the event socket is opened with the password placed by the host on the
/// upgrade request; what is not an event is ignored; listening in makes a bridge, a snoop on the
/// agent's own channel and a call to the supervisor, joins each to the bridge as it enters the
/// application, and clears up when the supervisor hangs up.
#[test]
fn listening_in_goes_through_ari() {
    use monti_plugin_test::Expectation;
    use monti_plugin_test::wit::commands::{Command, Request, Snoop, SnoopMode};
    let mut config = config("interface");
    config["ari_host"] = serde_json::json!("pbx.example.com");
    config["ari_user"] = serde_json::json!("monti");
    let mut pbx = Pbx::new(config);
    pbx.plugin.set_secret("ari_password", "ari-s3cret").unwrap();
    pbx.plugin.handle_events(Vec::new()).expect("runs");
    let events = pbx.plugin.streams().named("ari").expect("ARI's event socket");
    assert_eq!(events.target, "ws://pbx.example.com:8088/ari/events?app=monti");
    assert_eq!(events.headers.len(), 1, "the host placed the password");
    assert_eq!(events.headers[0].0, "authorization");
    let ari = events.id;
    let deliver = |plugin: &mut Harness, item: StreamItem| {
        let run = plugin.deliver(ari, item).expect("runs");
        assert_eq!(run.result, Ok(()), "{:?}", run.logs);
        for line in &run.logs {
            assert!(!line.message.contains("ari-s3cret"));
        }
        run
    };
    deliver(&mut pbx.plugin, StreamItem::Opened);
    // Garbage and unknown events change nothing and fail nothing.
    deliver(&mut pbx.plugin, StreamItem::Message(b"{not json".to_vec()));
    deliver(
        &mut pbx.plugin,
        StreamItem::Message(br#"{"type":"ChannelTalkingStarted","channel":{"id":"x"}}"#.to_vec()),
    );
    // Ana (PJSIP/1001) answers a queue call: AMI says which channel is hers.
    let resync = pbx.log_in();
    pbx.replay("queue_status.yaml", &resync);
    pbx.say(&[
        "Event: QueueMemberAdded".into(),
        "Queue: sales".into(),
        "Interface: PJSIP/1001".into(),
        "MemberName: Ana".into(),
        "Status: 1".into(),
        "Paused: 0".into(),
    ]);
    pbx.say(&[
        "Event: AgentConnect".into(),
        "Queue: sales".into(),
        "Uniqueid: 1700.1".into(),
        "Channel: PJSIP/trunk-1".into(),
        "DestUniqueid: 1700.2".into(),
        "Interface: PJSIP/1001".into(),
        "MemberName: Ana".into(),
        "HoldTime: 3".into(),
    ]);
    let base = "http://pbx.example.com:8088/ari";
    pbx.plugin
        .http()
        .expect(
            Expectation::new(
                "POST",
                &format!("{base}/bridges?type=mixing&bridgeId=monti-whisper-r7&name=monti%20whisper"),
            )
            .respond_json(200, &serde_json::json!({ "id": "monti-whisper-r7" })),
        )
        .expect(
            Expectation::new(
                "POST",
                &format!(
                    "{base}/channels/1700.2/snoop?spy=both&whisper=out&app=monti&appArgs=monti-snoop%2Cmonti-whisper-r7"
                ),
            )
            .respond_json(200, &serde_json::json!({ "id": "snoop-1" })),
        )
        .expect(
            Expectation::new(
                "POST",
                &format!(
                    "{base}/channels?endpoint=PJSIP%2F2001&app=monti&appArgs=monti-supervisor%2Cmonti-whisper-r7&callerId=Monti%20whisper%201001&timeout=30"
                ),
            )
            .respond_json(200, &serde_json::json!({ "id": "sup-1" })),
        );
    let run = pbx
        .plugin
        .handle_command(Request {
            id: "r7".into(),
            by: "user:sup".into(),
            command: Command::Snoop(Snoop {
                call: "1700.1".into(),
                supervisor: "PJSIP/2001".into(),
                mode: SnoopMode::Whisper,
            }),
        })
        .expect("runs");
    assert_eq!(run.result, Ok(()), "{:?}", run.logs);
    assert!(run.answer.unwrap().contains("ringing PJSIP/2001 to whisper on 1001"));
    let placed = run.requests.iter().all(|r| {
        r.headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("authorization") && v.starts_with("Basic "))
    });
    assert!(placed, "every REST call carries the host's Basic credentials");
    // Each channel joins the bridge as it enters the application.
    for (channel, role) in [("snoop-1", "monti-snoop"), ("sup-1", "monti-supervisor")] {
        pbx.plugin.http().expect(
            Expectation::new(
                "POST",
                &format!("{base}/bridges/monti-whisper-r7/addChannel?channel={channel}"),
            )
            .respond(204, ""),
        );
        let event = serde_json::json!({
            "type": "StasisStart", "application": "monti", "args": [role, "monti-whisper-r7"],
            "channel": { "id": channel, "name": "x", "state": "Up" },
        });
        deliver(&mut pbx.plugin, StreamItem::Message(event.to_string().into_bytes()));
    }
    // The supervisor hangs up: the snoop is hung up and the bridge destroyed.
    pbx.plugin
        .http()
        .expect(Expectation::new("DELETE", &format!("{base}/channels/snoop-1")).respond(204, ""))
        .expect(Expectation::new("DELETE", &format!("{base}/bridges/monti-whisper-r7")).respond(204, ""));
    let ended = serde_json::json!({ "type": "StasisEnd", "application": "monti", "channel": { "id": "sup-1" } });
    deliver(&mut pbx.plugin, StreamItem::Message(ended.to_string().into_bytes()));
    pbx.plugin.http().verify();
}

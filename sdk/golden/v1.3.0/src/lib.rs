//! The golden plugin of `monti:plugin@1.3.0`: everything of 1.2.0, and a WebSocket opened
//! with a secret on its upgrade request. Built from the frozen published contract, it calls
//! every import and implements every export of the `event-handler` world; what it does is
//! recorded in `expected.json`, and every later host must do exactly that again
//! (`sdk/test/tests/golden.rs`). Never change this crate or its
//! contract (`sdk/wit/1.3.0`): add a new golden version.

// The generated export glue of the connector world takes every flattened field as an argument.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ world: "connector", path: "../../wit/1.3.0" });

use monti::plugin::http::{self, HttpError, Placement, Request as HttpRequest};
use monti::plugin::log::{Level, log};
use monti::plugin::streams::{self, SecretForm, Target};
use monti::plugin::types::{AgentState, AgentStateChange, Denied, EventBody};
use monti::plugin::{config, events, kv, secrets};

struct Golden;

fn say(message: String) {
    log(Level::Info, &message);
}

/// Which refusal (its wording is the host's and may improve).
fn denied(d: &Denied) -> String {
    match d {
        Denied::NotGranted(_) => "not-granted".into(),
        Denied::QuotaExceeded(_) => "quota-exceeded".into(),
    }
}

fn answer(result: Result<http::Response, HttpError>) -> String {
    match result {
        Ok(r) => format!("{} {}", r.status, String::from_utf8_lossy(&r.body)),
        Err(HttpError::Denied(d)) => format!("denied {}", denied(&d)),
        Err(HttpError::Transport(_)) => "transport".into(),
        Err(HttpError::TooLarge) => "too large".into(),
    }
}

fn get(url: &str) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        url: url.into(),
        headers: vec![("accept".into(), "text/plain".into())],
        body: None,
        timeout_ms: Some(2_000),
    }
}

/// One step of the script per event id.
fn step(event: &Event) -> Result<(), PluginError> {
    match event.id.as_str() {
        "levels" => {
            for level in [Level::Trace, Level::Debug, Level::Info, Level::Warn, Level::Error] {
                log(level, "every level");
            }
        }
        "config" => say(format!("config {}", config::get())),
        "clock" => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default();
            say(format!("clock {now}"));
        }
        "kv" => {
            let seen = kv::get("seen").map(|v| v.len()).unwrap_or(0);
            say(format!("kv seen {seen}"));
            let grown = vec![b'x'; seen + 1];
            say(format!("kv set {:?}", kv::set("seen", &grown).map_err(|d| denied(&d))));
            say(format!(
                "kv big {:?}",
                kv::set("big", &[0; 1000]).map_err(|d| denied(&d))
            ));
            let _ = kv::set("tmp/a", b"1");
            let _ = kv::set("tmp/b", b"2");
            say(format!("kv keys {:?}", kv::keys("tmp/")));
            kv::delete("tmp/a");
            say(format!("kv keys {:?}", kv::keys("tmp/")));
        }
        "http" => {
            say(format!(
                "http ping {}",
                answer(http::send(&get("https://api.example.com/ping")))
            ));
            say(format!(
                "http elsewhere {}",
                answer(http::send(&get("https://evil.example.net/")))
            ));
        }
        "secrets" => {
            match secrets::get("missing") {
                Ok(_) => say("secret missing: got a handle".into()),
                Err(d) => say(format!("secret missing {}", denied(&d))),
            }
            let api = secrets::get("api").map_err(|d| PluginError {
                message: denied(&d),
                retryable: false,
            })?;
            say(format!("secret name {}", api.name()));
            let mut report = get("https://api.example.com/v1/report");
            report.method = "POST".into();
            report.body = Some(b"{\"n\":1}".to_vec());
            // The plugin's own Authorization header is replaced by the host's.
            report.headers.push(("Authorization".into(), "Bearer guessed".into()));
            say(format!(
                "secret bearer {}",
                answer(http::send_with_secret(&report, &api, &Placement::Bearer))
            ));
            say(format!(
                "secret basic {}",
                answer(http::send_with_secret(
                    &get("https://api.example.com/basic"),
                    &api,
                    &Placement::Basic("golden".into())
                ))
            ));
            say(format!(
                "secret header {}",
                answer(http::send_with_secret(
                    &get("https://api.example.com/header"),
                    &api,
                    &Placement::Header("X-Api-Key".into())
                ))
            ));
            say(format!(
                "secret elsewhere {}",
                answer(http::send_with_secret(
                    &get("https://other.example.com/steal"),
                    &api,
                    &Placement::Bearer
                ))
            ));
        }
        "streams" => {
            let pbx = streams::open("pbx", &Target::TcpLines(("pbx.example.com".into(), 5038)));
            say(format!("stream open {:?}", pbx.as_ref().map_err(denied)));
            let again = streams::open("pbx", &Target::TcpLines(("pbx.example.com".into(), 5038)));
            say(format!("stream again {:?}", again.as_ref().map_err(denied)));
            if let Ok(id) = pbx {
                say(format!(
                    "stream send {:?}",
                    streams::send(id, b"Action: Ping\r\n\r\n").map_err(|d| denied(&d))
                ));
            }
            let other = streams::open("other", &Target::Websocket("wss://pbx.example.com:8089/ari".into()));
            say(format!("stream other {:?}", other.map_err(|d| denied(&d))));
        }
        "stream-secret" => {
            let pbx = secrets::get("pbx").map_err(|d| PluginError {
                message: denied(&d),
                retryable: false,
            })?;
            let api = secrets::get("api").map_err(|d| PluginError {
                message: denied(&d),
                retryable: false,
            })?;
            let login = b"Action: Login\r\nUsername: golden\r\nSecret: {secret}\r\n\r\n";
            say(format!(
                "stream secret plain {:?}",
                streams::send_with_secret(1, login, "{secret}", &pbx, &SecretForm::Plain).map_err(|d| denied(&d))
            ));
            let md5 = b"Action: Login\r\nAuthType: MD5\r\nKey: {key}\r\n\r\n";
            say(format!(
                "stream secret md5 {:?}",
                streams::send_with_secret(1, md5, "{key}", &pbx, &SecretForm::Md5After("145769581".into()))
                    .map_err(|d| denied(&d))
            ));
            say(format!(
                "stream secret missing placeholder {:?}",
                streams::send_with_secret(1, b"Action: Ping\r\n\r\n", "{secret}", &pbx, &SecretForm::Plain)
                    .map_err(|d| denied(&d))
            ));
            say(format!(
                "stream secret bound elsewhere {:?}",
                streams::send_with_secret(1, login, "{secret}", &api, &SecretForm::Plain).map_err(|d| denied(&d))
            ));
        }
        "ws-secret" => {
            let secret = |name: &str| {
                secrets::get(name).map_err(|d| PluginError {
                    message: denied(&d),
                    retryable: false,
                })
            };
            let (ari, api, pbx) = (secret("ari")?, secret("api")?, secret("pbx")?);
            let events = Target::Websocket("wss://pbx.example.com:8089/ari/events?app=golden".into());
            say(format!(
                "ws secret basic {:?}",
                streams::open_with_secret("events", &events, &ari, &Placement::Basic("golden".into()))
                    .map_err(|d| denied(&d))
            ));
            say(format!(
                "ws secret bound elsewhere {:?}",
                streams::open_with_secret("events2", &events, &api, &Placement::Bearer).map_err(|d| denied(&d))
            ));
            say(format!(
                "ws secret on tcp {:?}",
                streams::open_with_secret(
                    "pbx",
                    &Target::TcpLines(("pbx.example.com".into(), 5038)),
                    &pbx,
                    &Placement::Bearer
                )
                .map_err(|d| denied(&d))
            ));
        }
        "close" => streams::close(1),
        "fail" => {
            return Err(PluginError {
                message: "asked to fail".into(),
                retryable: true,
            });
        }
        _ => {}
    }
    Ok(())
}

fn agent_queue(a: &monti::plugin::commands::AgentInQueue) -> String {
    format!("{} in {}", a.agent, a.queue.as_deref().unwrap_or("every queue"))
}

impl Guest for Golden {
    fn handle_command(request: monti::plugin::commands::Request) -> Result<String, PluginError> {
        use monti::plugin::commands::Command;
        say(format!("command {} by {}", request.id, request.by));
        let done = match &request.command {
            Command::Pause(p) => format!(
                "pause {} in {} ({})",
                p.agent,
                p.queue.as_deref().unwrap_or("every queue"),
                p.reason.as_deref().unwrap_or("no reason")
            ),
            Command::Unpause(a) => format!("unpause {}", agent_queue(a)),
            Command::Logout(a) => format!("logout {}", agent_queue(a)),
            Command::Originate(d) => format!("originate {} to {}", d.agent, d.number),
            Command::Hangup(c) => format!("hangup {}", c.call),
            Command::Hold(c) => format!("hold {}", c.call),
            Command::Unhold(c) => format!("unhold {}", c.call),
            Command::BlindTransfer(t) => format!("blind transfer {} to {}", t.call, t.to),
            Command::AttendedTransfer(t) => format!("attended transfer {} to {}", t.call, t.to),
            Command::Snoop(s) => format!("{:?} on {} for {}", s.mode, s.call, s.supervisor),
            Command::Reload => {
                return Err(PluginError {
                    message: "reload refused".into(),
                    retryable: false,
                });
            }
        };
        say(done.clone());
        Ok(done)
    }

    fn handle_events(batch: Vec<Event>) -> Result<(), PluginError> {
        say(format!("batch of {}", batch.len()));
        // Every event comes back, re-identified: all shapes of the contract cross both ways.
        let echoed: Vec<Event> = batch
            .iter()
            .map(|e| Event {
                id: format!("golden-{}", e.id),
                source: "plugin:golden".into(),
                at_ms: e.at_ms + 1,
                body: e.body.clone(),
            })
            .collect();
        for event in &batch {
            step(event)?;
        }
        if let Err(d) = events::emit(&echoed) {
            say(format!("emit {}", denied(&d)));
        }
        Ok(())
    }

    fn on_stream(id: u32, item: StreamItem) -> Result<(), PluginError> {
        match item {
            StreamItem::Opened => say(format!("stream {id} opened")),
            StreamItem::Closed(why) => say(format!("stream {id} closed: {why}")),
            StreamItem::Message(bytes) => say(format!("stream {id} message of {} bytes", bytes.len())),
            StreamItem::Line(line) => {
                say(format!("stream {id} line {line}"));
                if let Some(agent) = line.strip_prefix("Paused: ") {
                    let paused = Event {
                        id: format!("line-{agent}"),
                        source: "plugin:golden".into(),
                        at_ms: 1_800_000_000_000,
                        body: EventBody::AgentState(AgentStateChange {
                            agent: agent.into(),
                            state: AgentState::Paused,
                            reason: Some("from the stream".into()),
                        }),
                    };
                    events::emit(&[paused]).map_err(|d| PluginError {
                        message: denied(&d),
                        retryable: false,
                    })?;
                }
            }
        }
        Ok(())
    }
}

export!(Golden);

#[cfg_attr(target_arch = "wasm32", unsafe(link_section = "monti-plugin"))]
#[used]
static MANIFEST: [u8; include_bytes!("../monti-plugin.toml").len()] = *include_bytes!("../monti-plugin.toml");

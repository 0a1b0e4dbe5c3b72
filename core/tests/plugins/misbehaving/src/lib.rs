//! Misbehaves as the first event's id asks, so the host's limits and failure handling can be
//! tested against a real component.

use monti_plugin_sdk::http::{Placement, Request};
use monti_plugin_sdk::{Event, EventHandler, PluginError, Stream, StreamItem, info, kv, secrets, streams};

/// What the instance remembers: only a warm instance sees more than one call.
#[derive(Default)]
struct Misbehaving {
    calls: u32,
}

#[derive(serde::Deserialize)]
struct Config {
    host: Option<String>,
    port: Option<u16>,
}

fn open_configured_stream() {
    let Ok(Config {
        host: Some(host),
        port: Some(port),
    }) = monti_plugin_sdk::config::<Config>()
    else {
        return;
    };
    match streams::tcp_lines("line", &host, port) {
        Ok(stream) => info!("stream {} open", stream.id()),
        Err(denied) => info!("stream refused: {denied:?}"),
    }
}

impl EventHandler for Misbehaving {
    /// `Login: X` lines log agent X in; `echo …` lines are sent back; a closed stream is reopened.
    fn on_stream(&mut self, stream: Stream, item: StreamItem) -> Result<(), PluginError> {
        let id = stream.id();
        match item {
            StreamItem::Line(line) => {
                if let Some(agent) = line.strip_prefix("Login: ") {
                    let login = Event {
                        id: format!("line-{agent}"),
                        source: "plugin:misbehaving".into(),
                        at_ms: std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as i64),
                        body: monti_plugin_sdk::EventBody::AgentLogin(agent.to_owned()),
                    };
                    monti_plugin_sdk::emit(&[login]).map_err(|d| PluginError::permanent(format!("{d:?}")))?;
                } else if let Some(text) = line.strip_prefix("echo ") {
                    let _ = stream.send(format!("{text}\r\n"));
                }
            }
            StreamItem::Opened => {
                info!("stream {id} opened");
                let _ = stream.send(b"hello\r\n");
            }
            StreamItem::Closed(why) => {
                info!("stream {id} closed: {why}");
                open_configured_stream();
            }
            StreamItem::Message(_) => {}
        }
        Ok(())
    }

    fn handle_events(&mut self, batch: Vec<Event>) -> Result<(), PluginError> {
        let Some(first) = batch.first() else {
            // The heartbeat: keep the configured stream open, if there is one.
            open_configured_stream();
            return Ok(());
        };
        info!("asked to {}", first.id);
        match first.id.as_str() {
            "panic" => panic!("as requested"),
            "count" => {
                // Memory that survives only in a warm instance.
                self.calls += 1;
                info!("call number {}", self.calls);
            }
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "hog" => {
                let mut chunks = Vec::new();
                for _ in 0..1024 {
                    chunks.push(vec![1u8; 1 << 20]);
                }
                info!("holding {} MiB", chunks.len());
            }
            "recurse" => {
                // Ends only after 2^64 calls: the stack runs out long before.
                fn deeper(n: u64) -> u64 {
                    if n == u64::MAX {
                        return n;
                    }
                    std::hint::black_box(deeper(n + 1)) + 1
                }
                info!("{}", deeper(0));
            }
            "emit-many" => {
                let copies: Vec<Event> = (0..20_000)
                    .map(|i| Event {
                        id: format!("copy-{i}"),
                        ..first.clone()
                    })
                    .collect();
                if let Err(denied) = monti_plugin_sdk::emit(&copies) {
                    return Err(PluginError::permanent(format!("{denied:?}")));
                }
            }
            "kv-hog" => {
                for i in 0..100 {
                    if let Err(denied) = kv::set(&format!("k{i}"), vec![0u8; 100_000]) {
                        return Err(PluginError::permanent(format!("{denied:?}")));
                    }
                }
            }
            "error" => return Err(PluginError::retryable("the remote system is down")),
            "flaky" => {
                // Fails the first three times it sees this, then works.
                let tries = kv::get("flaky").map_or(0, |v| v.first().copied().unwrap_or(0)) + 1;
                if let Err(denied) = kv::set("flaky", [tries]) {
                    return Err(PluginError::permanent(format!("{denied:?}")));
                }
                if tries < 4 {
                    return Err(PluginError::retryable(format!("try {tries} failed")));
                }
                info!("worked on try {tries}");
            }
            url if url.starts_with("secret-http ") => {
                let secret = match secrets::get("token") {
                    Ok(secret) => secret,
                    Err(denied) => {
                        info!("no secret: {denied:?}");
                        return Ok(());
                    }
                };
                let request = Request::get(&url["secret-http ".len()..])
                    // An attempt to set the header itself is overridden by the host.
                    .header("authorization", "Bearer guessed")
                    .timeout(std::time::Duration::from_secs(2));
                match request.send_with_secret(&secret, Placement::Bearer) {
                    Ok(response) => info!("status {}, secret {}", response.status, secret.name()),
                    Err(error) => info!("refused: {error:?}"),
                }
            }
            url if url.starts_with("http ") => {
                let request = Request::get(&url["http ".len()..])
                    .header("accept", "text/plain")
                    .timeout(std::time::Duration::from_secs(2));
                match request.send() {
                    Ok(response) => info!("status {}, body {}", response.status, response.text()),
                    Err(error) => info!("refused: {error:?}"),
                }
            }
            "print" => {
                println!("to stdout");
                eprintln!("to stderr");
            }
            "log-flood" => {
                for i in 0..1_000_000 {
                    info!("line {i} {}", "x".repeat(i % 5_000));
                }
            }
            "huge-output" => {
                // Far more than the host keeps of a plugin's output.
                print!("{}", "y".repeat(8 << 20));
            }
            _ => {}
        }
        Ok(())
    }
}

monti_plugin_sdk::event_handler!(Misbehaving);
monti_plugin_sdk::manifest!("../monti-plugin.toml");

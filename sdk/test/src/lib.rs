//! Tests for Monti plugins, run on the host: the plugin's real `.wasm`, built for
//! `wasm32-wasip2`, in the same host linker, limits and capability checks Monti's server uses —
//! with the outside world scripted.
//!
//! - **HTTP**: expectations with canned answers ([`MockHttp`]); every request the host let out
//!   is recorded as it would have gone on the wire, secrets placed by the host included, so a
//!   test can see a secret was injected while the plugin never saw its value.
//! - **Storage**: the installation's key-value store, in memory, kept between calls.
//! - **Events**: what the plugin emitted, per call.
//! - **Streams**: connections the plugin opened and what it sent ([`MockStreams`]); deliver
//!   lines and messages to it with [`Harness::deliver`].
//! - **Time**: a [`VirtualClock`] that moves only when the test moves it.
//! - **Configuration** checked against the manifest's JSON Schema, as the admin form does.
//! - Every call reports the CPU time and memory it used ([`Report`]).
//!
//! ```ignore
//! let mut plugin = Harness::build(env!("CARGO_MANIFEST_DIR"))?;
//! plugin.configure(serde_json::json!({ "pause_after": 2 }))?;
//! let run = plugin.handle_events(vec![plugin.event(call_end("1001"))])?;
//! assert!(run.emitted.is_empty());
//! ```

mod build;
mod clock;
mod http;
mod streams;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use build::build;
pub use clock::VirtualClock;
pub use http::{Expectation, MockHttp, RecordedRequest};
pub use monti_plugin_host::manifest::Manifest;
pub use monti_plugin_host::wit::{self, Event, EventBody, StreamItem};
pub use monti_plugin_host::{Failure, FailureKind, HookRequest, HookResponse, Limits, LogLine, PluginError};
use monti_plugin_host::{Grants, Input, Invocation, PluginEngine, ValidPlugin, WarmInstance};
pub use streams::{MockStreams, OpenedStream};

/// Why a plugin could not be set up for a test.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("building the plugin failed: {0}")]
    Build(String),
    #[error("reading {path}: {message}")]
    Read { path: String, message: String },
    #[error("the host refuses the plugin: {0}")]
    Invalid(Failure),
    #[error("the configuration does not match the manifest's schema: {}", .0.join("; "))]
    Config(Vec<String>),
    #[error("the manifest asks for no secret `{0}`")]
    UnknownSecret(String),
}

/// What one call did.
#[derive(Debug, Clone)]
pub struct Run {
    /// The plugin's own answer.
    pub result: Result<(), PluginError>,
    pub emitted: Vec<Event>,
    pub logs: Vec<LogLine>,
    /// Requests the host let out during this call, as sent.
    pub requests: Vec<RecordedRequest>,
    /// Secrets the host placed in requests: (name, destination).
    pub secret_uses: Vec<(String, String)>,
    /// A connector's answer to a command.
    pub answer: Option<String>,
    pub report: Report,
}

/// Resources one call used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Time in the plugin, without waiting on outbound calls (what the CPU limit counts).
    pub cpu: Duration,
    /// Wall-clock time of the call.
    pub wall: Duration,
    /// The instance's linear memory at its largest, bytes.
    pub memory_high_water: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.3} ms CPU, {:.3} ms wall, {} KiB memory at most",
            self.cpu.as_secs_f64() * 1000.0,
            self.wall.as_secs_f64() * 1000.0,
            self.memory_high_water / 1024
        )
    }
}

impl Run {
    /// Log lines at `level` (`trace` … `error`).
    pub fn logs_at(&self, level: &str) -> Vec<&str> {
        self.logs
            .iter()
            .filter(|l| l.level == level)
            .map(|l| l.message.as_str())
            .collect()
    }
}

/// Plugin instances a test process may run at once.
const INSTANCES: u32 = 32;

fn engine() -> Arc<PluginEngine> {
    static ENGINE: OnceLock<Arc<PluginEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| PluginEngine::new(INSTANCES).expect("the plugin engine starts"))
        .clone()
}

/// One installed plugin with a scripted world around it.
pub struct Harness {
    plugin: ValidPlugin,
    config: serde_json::Value,
    kv: BTreeMap<String, Vec<u8>>,
    secrets: BTreeMap<String, String>,
    limits: Limits,
    clock: Arc<VirtualClock>,
    http: Arc<MockHttp>,
    streams: Arc<MockStreams>,
    next_event: u64,
    /// The instance kept between calls when the manifest asks for `warm`, as the server does.
    warm: Option<WarmInstance>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("plugin", &self.plugin.manifest.id)
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// Builds the plugin crate at `manifest_dir` for `wasm32-wasip2` (release) and loads it.
    pub fn build(manifest_dir: impl AsRef<Path>) -> Result<Self, HarnessError> {
        let wasm = build(manifest_dir.as_ref())?;
        Self::load(wasm)
    }

    /// Loads a built component.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, HarnessError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| HarnessError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_bytes(&bytes)
    }

    /// Loads a component from its bytes: validated as Monti validates an upload.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, HarnessError> {
        let plugin = engine().validate(bytes).map_err(HarnessError::Invalid)?;
        let limits = Limits::requested(&plugin.manifest);
        Ok(Self {
            plugin,
            config: serde_json::json!({}),
            kv: BTreeMap::new(),
            secrets: BTreeMap::new(),
            limits,
            clock: Arc::new(VirtualClock::default()),
            http: Arc::new(MockHttp::default()),
            streams: Arc::new(MockStreams::default()),
            next_event: 0,
            warm: None,
        })
    }

    /// The manifest embedded in the component.
    pub fn manifest(&self) -> &Manifest {
        &self.plugin.manifest
    }

    /// Sets the installation's configuration, checked against the manifest's schema.
    pub fn configure(&mut self, config: serde_json::Value) -> Result<(), HarnessError> {
        if let Some(schema) = &self.plugin.manifest.config {
            monti_plugin_host::config::check(schema, &config)
                .map_err(|problems| HarnessError::Config(problems.iter().map(ToString::to_string).collect()))?;
        }
        self.config = config;
        Ok(())
    }

    /// Gives the installation a secret the manifest asks for. The plugin only ever gets a
    /// handle; the host places the value into requests to the destination it is bound to.
    pub fn set_secret(&mut self, name: &str, value: &str) -> Result<(), HarnessError> {
        if !self.plugin.manifest.capabilities.secrets.contains_key(name) {
            return Err(HarnessError::UnknownSecret(name.to_owned()));
        }
        self.secrets.insert(name.to_owned(), value.to_owned());
        Ok(())
    }

    /// Changes the limits calls run under (by default, what the manifest asks for).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The installation's key-value store as the plugin left it.
    pub fn kv(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.kv
    }

    /// A value from the store as text.
    pub fn kv_text(&self, key: &str) -> Option<String> {
        self.kv.get(key).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Puts a value into the store before a call.
    pub fn set_kv(&mut self, key: &str, value: impl Into<Vec<u8>>) {
        self.kv.insert(key.to_owned(), value.into());
    }

    /// The time the plugin sees.
    pub fn clock(&self) -> &VirtualClock {
        &self.clock
    }

    /// Outbound HTTP: expectations and what was sent.
    pub fn http(&self) -> &MockHttp {
        &self.http
    }

    /// Streams the plugin opened and what it sent on them.
    pub fn streams(&self) -> &MockStreams {
        &self.streams
    }

    /// An event happening now (on the virtual clock), with a fresh id, from source `test`.
    pub fn event(&mut self, body: EventBody) -> Event {
        self.next_event += 1;
        Event {
            id: format!("test-{}", self.next_event),
            source: "test".into(),
            at_ms: self.clock.now_ms(),
            body,
        }
    }

    /// Hands a batch to an `event-handler` plugin.
    pub fn handle_events(&mut self, batch: Vec<Event>) -> Result<Run, Failure> {
        self.run(Input::Events(batch))
    }

    /// Delivers something that arrived on one of the plugin's streams (`on-stream`).
    pub fn deliver(&mut self, stream: u32, item: StreamItem) -> Result<Run, Failure> {
        self.run(Input::Stream(vec![(stream, item)]))
    }

    /// Delivers several stream items in one call, as the server does when they queue up.
    pub fn deliver_all(&mut self, items: Vec<(u32, StreamItem)>) -> Result<Run, Failure> {
        self.run(Input::Stream(items))
    }

    /// Hands a supervisor's request to a `connector` plugin; the run's `answer` is its reply.
    pub fn handle_command(&mut self, request: wit::commands::Request) -> Result<Run, Failure> {
        self.run(Input::Command(request))
    }

    /// Hands alerts to an `alert-handler` plugin (contract 1.4).
    pub fn handle_alerts(&mut self, alerts: Vec<wit::alerts::Alert>) -> Result<Run, Failure> {
        self.run(Input::Alerts(alerts))
    }

    /// Hands an inbound request to a `webhook` plugin.
    pub fn handle_request(
        &mut self,
        request: HookRequest,
    ) -> Result<(Result<HookResponse, PluginError>, Run), Failure> {
        let (invocation, grants, sent_before) = self.invocation(Input::default());
        let ran = engine().handle_request(&self.plugin, invocation, request, &grants, &self.limits);
        let (answer, outcome) = ran?;
        let run = self.settle(outcome, sent_before);
        Ok((answer, run))
    }

    fn run(&mut self, input: Input) -> Result<Run, Failure> {
        let (invocation, grants, sent_before) = self.invocation(input);
        let outcome = if self.plugin.manifest.limits.warm {
            let mut warm = match self.warm.take().filter(WarmInstance::is_usable) {
                Some(warm) => warm,
                None => engine().warm(&self.plugin, Some(self.clock.clone()), &self.limits)?,
            };
            let ran = engine().run_warm(&mut warm, invocation, &grants, &self.limits);
            self.warm = Some(warm);
            ran?
        } else {
            engine().run(&self.plugin, invocation, &grants, &self.limits)?
        };
        Ok(self.settle(outcome, sent_before))
    }

    /// Drops the warm instance (as the server does after a failure or from time to time): the
    /// next call starts a new one.
    pub fn cool_down(&mut self) {
        self.warm = None;
    }

    fn invocation(&self, input: Input) -> (Invocation, Grants, usize) {
        let grants = Grants::requested(&self.plugin.manifest, &self.config, &self.secrets, false);
        let invocation = Invocation {
            config_json: self.config.to_string(),
            kv: self.kv.clone(),
            input,
            outbound: Some(self.http.clone()),
            streams: Some(self.streams.clone()),
            clock: Some(self.clock.clone()),
        };
        (invocation, grants, self.http.requests().len())
    }

    fn settle(&mut self, outcome: monti_plugin_host::Outcome, sent_before: usize) -> Run {
        self.kv = outcome.kv;
        Run {
            result: outcome.result,
            emitted: outcome.emitted,
            logs: outcome.logs,
            requests: self.http.requests().split_off(sent_before),
            secret_uses: outcome.secret_uses,
            answer: outcome.answer,
            report: Report {
                cpu: outcome.cpu,
                wall: outcome.duration,
                memory_high_water: outcome.memory_high_water,
            },
        }
    }
}

//! One wasmtime engine for the process: component model, pooling allocator, epoch interruption.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::host::alert_handler::{AlertHandler, AlertHandlerPre};
use crate::host::connector::{Connector, ConnectorPre};
use crate::host::event_handler::{EventHandler, EventHandlerPre};
use crate::host::monti::plugin::log::Level;
use crate::host::monti::plugin::streams::StreamItem;
use crate::host::monti::plugin::types::Event;
use crate::host::webhook::{IncomingRequest, WebhookPre};
use crate::host::{HostState, NetworkOutbound, Outbound, StreamBroker};
use crate::world::World;

/// How often the epoch advances: the granularity of CPU limits.
const EPOCH: Duration = Duration::from_millis(10);
/// Output a plugin may write to stdout/stderr per invocation (kept as log lines).
const STDIO_BYTES: usize = 64 * 1024;

/// Per-invocation limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// CPU time inside the plugin (checked every 10 ms).
    pub cpu: Duration,
    /// Linear memory, bytes.
    pub memory_bytes: usize,
    /// Events one invocation may emit.
    pub max_emit: usize,
    /// Bytes the key-value store may hold for the installation.
    pub kv_bytes: usize,
    /// Wall-clock time the invocation may spend waiting on outbound calls (CPU time is `cpu`).
    pub wall: Duration,
    /// Outbound calls one invocation may make.
    pub http_calls: u32,
}

impl Limits {
    /// What a manifest asks for (already checked against the host's maximums).
    pub fn requested(manifest: &super::manifest::Manifest) -> Self {
        Self {
            cpu: Duration::from_millis(u64::from(manifest.limits.cpu_ms)),
            memory_bytes: (manifest.limits.memory_mb as usize) << 20,
            max_emit: if manifest.capabilities.emits_events { 10_000 } else { 0 },
            kv_bytes: manifest.capabilities.kv_bytes as usize,
            wall: DEFAULT_WALL,
            http_calls: HTTP_CALLS,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu: Duration::from_millis(200),
            memory_bytes: 64 << 20,
            max_emit: 10_000,
            kv_bytes: 1 << 20,
            wall: DEFAULT_WALL,
            http_calls: HTTP_CALLS,
        }
    }
}

/// The capabilities an installation was granted (requested ∩ tenant-approved ∩ operator-allowed).
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Secrets it may use as opaque handles: name → (the destination it is bound to, value).
    pub secrets: BTreeMap<String, (String, String)>,
    /// Outbound HTTP destinations, `scheme://host[:port]`.
    pub http: Vec<String>,
    /// Whether those destinations may resolve to private addresses (the operator's call).
    pub allow_private_networks: bool,
    /// Long-lived connections it may ask the host to keep: `tcp://host:port`, `wss://host[:port]`.
    pub streams: Vec<String>,
}

impl Grants {
    /// What an installation's manifest asks for, with destinations filled from its
    /// configuration (`tcp://${host}:${port}`: configuring the plugin is granting it), and the
    /// secrets it declares that were given a value.
    pub fn requested(
        manifest: &super::manifest::Manifest,
        config: &serde_json::Value,
        secret_values: &BTreeMap<String, String>,
        allow_private_networks: bool,
    ) -> Self {
        use super::manifest::{expand, expand_all};
        let capabilities = &manifest.capabilities;
        // A field left out takes its schema default, as the plugin reads it (ARI's port, say).
        let mut filled = config.clone();
        if let (Some(object), Some(properties)) = (
            filled.as_object_mut(),
            manifest
                .config
                .as_ref()
                .and_then(|schema| schema.get("properties"))
                .and_then(|p| p.as_object()),
        ) {
            for (name, property) in properties {
                if let Some(default) = property.get("default")
                    && !object.contains_key(name)
                {
                    object.insert(name.clone(), default.clone());
                }
            }
        }
        let config = &filled;
        Self {
            secrets: capabilities
                .secrets
                .iter()
                .filter_map(|(name, destination)| {
                    Some((
                        name.clone(),
                        (expand(destination, config)?, secret_values.get(name)?.clone()),
                    ))
                })
                .collect(),
            http: expand_all(&capabilities.http, config),
            allow_private_networks,
            streams: expand_all(&capabilities.streams, config),
        }
    }
}

/// Wall-clock time an invocation may wait on the network, in all.
const DEFAULT_WALL: Duration = Duration::from_secs(30);

/// Outbound calls one invocation may make, by default.
pub const HTTP_CALLS: u32 = 20;

/// A warm instance is replaced after this many calls (its captured output does not grow forever,
/// and a slow leak in a plugin cannot build up).
const WARM_CALLS: u32 = 10_000;

/// The time a plugin sees (WASI's wall and monotonic clocks). The server uses the real clock;
/// the test harness a virtual one it moves by hand.
pub trait Clock: Send + Sync {
    /// Time since the Unix epoch.
    fn now(&self) -> Duration;
}

struct WallClockOf(Arc<dyn Clock>);

impl wasmtime_wasi::HostWallClock for WallClockOf {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        self.0.now()
    }
}

struct MonotonicClockOf(Arc<dyn Clock>);

impl wasmtime_wasi::HostMonotonicClock for MonotonicClockOf {
    fn resolution(&self) -> u64 {
        1_000_000
    }
    fn now(&self) -> u64 {
        self.0.now().as_nanos() as u64
    }
}

/// What a call hands the plugin.
#[derive(Debug, Clone)]
pub enum Input {
    /// A batch of events, to `handle-events`.
    Events(Vec<Event>),
    /// What arrived on its streams, in order: one `on-stream` call per item, all in the same
    /// instance. A returned error does not stop the rest (the first is reported); a trap does.
    Stream(Vec<(u32, StreamItem)>),
    /// A supervisor's request, to a connector's `handle-command`.
    Command(crate::host::connector::monti::plugin::commands::Request),
    /// Alerts that fired or resolved, to an alert handler's `handle-alerts`.
    Alerts(Vec<crate::host::alert_handler::monti::plugin::alerts::Alert>),
}

impl Default for Input {
    fn default() -> Self {
        Input::Events(Vec::new())
    }
}

/// One call: the installation's configuration and store, what to handle, and where the
/// plugin's network, streams and clock lead.
#[derive(Clone, Default)]
pub struct Invocation {
    pub config_json: String,
    pub kv: BTreeMap<String, Vec<u8>>,
    pub input: Input,
    /// Where outbound HTTP goes; by default the network, from the calling tokio runtime.
    pub outbound: Option<Arc<dyn Outbound>>,
    /// Who keeps the installation's streams; without one, opening a stream is denied.
    pub streams: Option<Arc<dyn StreamBroker>>,
    /// The time the plugin sees (fresh instances); by default the real clock.
    pub clock: Option<Arc<dyn Clock>>,
}

impl Invocation {
    /// A batch of events with a configuration and store.
    pub fn events(config_json: impl Into<String>, kv: BTreeMap<String, Vec<u8>>, events: Vec<Event>) -> Self {
        Self {
            config_json: config_json.into(),
            kv,
            input: Input::Events(events),
            ..Self::default()
        }
    }
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("config_json", &self.config_json)
            .field("kv_keys", &self.kv.len())
            .field("input", &self.input)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

/// An error the plugin returned (it ran to the end and said no).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    pub message: String,
    pub retryable: bool,
}

/// What an invocation did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The plugin's own answer.
    pub result: Result<(), PluginError>,
    pub emitted: Vec<Event>,
    /// The key-value store after the call (the caller persists it when `kv_changed`).
    pub kv: BTreeMap<String, Vec<u8>>,
    pub kv_changed: bool,
    pub logs: Vec<LogLine>,
    pub memory_high_water: usize,
    /// Wall-clock time of the call.
    pub duration: Duration,
    /// Of that, time spent in the plugin (not waiting on outbound calls).
    pub cpu: Duration,
    /// Secrets put into outbound requests: (name, destination), once per use.
    pub secret_uses: Vec<(String, String)>,
    /// Calls the plugin made into the host.
    pub host_calls: u32,
    /// A connector's answer to a command.
    pub answer: Option<String>,
    /// Outbound requests that left: (destination origin, status; `None` when none came back).
    pub http: Vec<(String, Option<u16>)>,
}

/// Why an invocation did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Not a component for this world, too large, or it does not compile.
    Invalid,
    /// Ran out of its CPU time.
    CpuDeadline,
    /// Asked for more memory than allowed.
    Memory,
    /// Panicked or hit `unreachable`.
    Panic,
    /// Any other trap (stack overflow, out-of-bounds access …).
    Trap,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Invalid => "invalid",
            FailureKind::CpuDeadline => "cpu_deadline",
            FailureKind::Memory => "memory",
            FailureKind::Panic => "panic",
            FailureKind::Trap => "trap",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    /// The last log lines (a panic's message among them).
    pub logs: Vec<LogLine>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for Failure {}

fn invalid(message: impl Into<String>) -> Failure {
    Failure {
        kind: FailureKind::Invalid,
        message: message.into(),
        logs: Vec::new(),
    }
}

/// A component that passed validation, compiled and linked, ready to instantiate.
#[derive(Clone)]
pub struct ValidPlugin {
    /// `sha256:` of the component's bytes.
    pub digest: String,
    pub size: usize,
    pub manifest: super::manifest::Manifest,
    pre: Pre,
}

/// A component linked for the world it implements (made by its row in `world.rs`).
#[derive(Clone)]
pub(crate) enum Pre {
    EventHandler(EventHandlerPre<Instance>),
    Webhook(WebhookPre<Instance>),
    Connector(ConnectorPre<Instance>),
    AlertHandler(AlertHandlerPre<Instance>),
}

/// An inbound HTTP request for a webhook plugin, body as received.
#[derive(Debug, Clone, Default)]
pub struct HookRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A webhook plugin's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for ValidPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidPlugin")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .finish()
    }
}

/// Tracks memory growth: the high-water mark, and whether growth was refused.
struct MemoryCap {
    max: usize,
    high_water: usize,
    refused: bool,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.refused = true;
            return Ok(false);
        }
        self.high_water = self.high_water.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

pub(crate) struct Instance {
    pub(crate) host: HostState,
    memory: MemoryCap,
    /// When the current call started, and the CPU time it may use.
    started: Instant,
    cpu: Duration,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    /// Bytes of stdout/stderr already turned into log lines (a warm instance keeps its pipes).
    stdio_seen: [usize; 2],
}

impl wasmtime_wasi::WasiView for Instance {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        self.host.ctx()
    }
}

/// An instance kept between calls of one installation, for plugins whose per-call setup is
/// costly (the manifest opts in). It is replaced after a failure and after [`WARM_CALLS`] calls.
pub struct WarmInstance {
    digest: String,
    world: World,
    store: Store<Instance>,
    bindings: Handler,
    calls: u32,
    broken: bool,
}

impl WarmInstance {
    /// Whether it may take another call (else drop it and warm a new one).
    pub fn is_usable(&self) -> bool {
        !self.broken && self.calls < WARM_CALLS
    }

    /// The component it runs.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

impl std::fmt::Debug for WarmInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmInstance")
            .field("digest", &self.digest)
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

pub struct PluginEngine {
    engine: Engine,
    /// One per world: WASI and the contract's imports.
    linkers: BTreeMap<World, Linker<Instance>>,
    compiled: Mutex<HashMap<String, ValidPlugin>>,
    /// Largest component accepted, bytes.
    pub max_component_bytes: usize,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine").finish_non_exhaustive()
    }
}

impl PluginEngine {
    /// The engine, with room for `instances` plugin instances at once (fresh and warm).
    pub fn new(instances: u32) -> wasmtime::Result<Arc<Self>> {
        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_component_instances(instances)
            .total_core_instances(instances * 8)
            .max_core_instances_per_component(16)
            .total_memories(instances * 4)
            .max_memories_per_component(8)
            .total_tables(instances * 8)
            .max_memory_size(256 << 20);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            // The contract has no async functions; without the concurrency machinery every
            // call into a component is about three times cheaper.
            .concurrency_support(false)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling))
            .max_wasm_stack(1 << 20);
        let engine = Engine::new(&config)?;
        let mut linkers = BTreeMap::new();
        for world in World::ALL {
            let mut linker: Linker<Instance> = Linker::new(&engine);
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
            (world.binding().link)(&mut linker)?;
            linkers.insert(world, linker);
        }
        let this = Arc::new(Self {
            engine,
            linkers,
            compiled: Mutex::new(HashMap::new()),
            max_component_bytes: 32 << 20,
        });
        // The clock of CPU limits; it stops with the engine.
        let weak: Weak<Self> = Arc::downgrade(&this);
        std::thread::Builder::new().name("plugin-epoch".into()).spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH);
            }
        })?;
        Ok(this)
    }

    /// Checks that `bytes` are a component of the world its manifest names, of a contract version
    /// this host runs, compiles it, and keeps it by digest (a second upload of the same bytes is
    /// free).
    pub fn validate(&self, bytes: &[u8]) -> Result<ValidPlugin, Failure> {
        if bytes.len() > self.max_component_bytes {
            return Err(invalid(format!(
                "the component is {} bytes; at most {} are accepted",
                bytes.len(),
                self.max_component_bytes
            )));
        }
        let digest = format!("sha256:{:x}", Sha256::digest(bytes));
        if let Some(found) = self.compiled.lock().unwrap_or_else(|e| e.into_inner()).get(&digest) {
            return Ok(found.clone());
        }
        if !wasmparser_is_component(bytes) {
            return Err(invalid(
                "not a WebAssembly component (build with `cargo build --target wasm32-wasip2`)",
            ));
        }
        let manifest = super::manifest::read(bytes).map_err(invalid)?;
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| invalid(format!("the component does not compile: {e:#}")))?;
        let pre = self.linkers[&manifest.world]
            .instantiate_pre(&component)
            .map_err(|e| invalid(format!("the component needs imports this host does not offer: {e:#}")))?;
        let not_world = |e: wasmtime::Error| {
            invalid(format!(
                "the component is not a `{}` of monti:plugin@{} (as its manifest says): {e:#}",
                manifest.world, manifest.sdk
            ))
        };
        let pre = (manifest.world.binding().pre)(pre).map_err(not_world)?;
        let valid = ValidPlugin {
            digest: digest.clone(),
            size: bytes.len(),
            manifest,
            pre,
        };
        self.compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest, valid.clone());
        Ok(valid)
    }

    /// Runs one call of an event handler (a batch, or a stream delivery) in a fresh instance.
    /// Blocking: call it from a blocking thread.
    pub fn run(
        &self,
        plugin: &ValidPlugin,
        invocation: Invocation,
        grants: &Grants,
        limits: &Limits,
    ) -> Result<Outcome, Failure> {
        let pre = handler_for(plugin, &invocation.input)?;
        let mut store = self.store(invocation.clock.clone(), limits);
        let input = prepare(store.data_mut(), invocation, grants, limits);
        let ((result, answer), outcome) = call(&mut store, limits, |store| {
            let bindings = pre.instantiate(&mut *store)?;
            call_export(&bindings, store, &input)
        })?;
        Ok(Outcome {
            result: result.map_err(plugin_error),
            answer,
            ..outcome
        })
    }

    /// An instance of an event handler to keep between calls (see [`WarmInstance`]).
    pub fn warm(
        &self,
        plugin: &ValidPlugin,
        clock: Option<Arc<dyn Clock>>,
        limits: &Limits,
    ) -> Result<WarmInstance, Failure> {
        let pre = handler_for(plugin, &Input::default())?;
        let mut store = self.store(clock, limits);
        prepare(store.data_mut(), Invocation::default(), &Grants::default(), limits);
        let (bindings, _) = call(&mut store, limits, |store| pre.instantiate(&mut *store))?;
        Ok(WarmInstance {
            digest: plugin.digest.clone(),
            world: plugin.manifest.world,
            store,
            bindings,
            calls: 0,
            broken: false,
        })
    }

    /// Runs one call on a warm instance. After a failure the instance is no longer usable.
    pub fn run_warm(
        &self,
        warm: &mut WarmInstance,
        invocation: Invocation,
        grants: &Grants,
        limits: &Limits,
    ) -> Result<Outcome, Failure> {
        if !warm.is_usable() {
            return Err(invalid("this warm instance is spent; warm a new one"));
        }
        if !warm.world.exports().takes(&invocation.input) {
            return Err(invalid(format!(
                "a {} plugin takes no {}",
                warm.world,
                invocation.input.what()
            )));
        }
        warm.calls += 1;
        let input = prepare(warm.store.data_mut(), invocation, grants, limits);
        let bindings = &warm.bindings;
        let ran = call(&mut warm.store, limits, |store| call_export(bindings, store, &input));
        // A trap can leave the guest's memory half-updated: never call into it again.
        warm.broken = ran.is_err();
        let ((result, answer), outcome) = ran?;
        Ok(Outcome {
            result: result.map_err(plugin_error),
            answer,
            ..outcome
        })
    }

    /// Hands an inbound request to a webhook plugin in a fresh instance (blocking). The
    /// invocation's input is not used.
    pub fn handle_request(
        &self,
        plugin: &ValidPlugin,
        invocation: Invocation,
        request: HookRequest,
        grants: &Grants,
        limits: &Limits,
    ) -> Result<(Result<HookResponse, PluginError>, Outcome), Failure> {
        let Pre::Webhook(pre) = &plugin.pre else {
            return Err(invalid(format!("`{}` is not a webhook plugin", plugin.manifest.id)));
        };
        let incoming = IncomingRequest {
            method: request.method,
            path: request.path,
            headers: request.headers,
            body: request.body,
        };
        let mut store = self.store(invocation.clock.clone(), limits);
        prepare(store.data_mut(), invocation, grants, limits);
        let (result, outcome) = call(&mut store, limits, |store| {
            pre.instantiate(&mut *store)?
                .call_handle_request(&mut *store, &incoming)
        })?;
        let answer = result
            .map(|r| HookResponse {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
            .map_err(plugin_error);
        Ok((answer, outcome))
    }

    /// A store for one instance: no files, network, environment or arguments, only what the
    /// contract offers; memory and CPU limits.
    fn store(&self, clock: Option<Arc<dyn Clock>>, limits: &Limits) -> Store<Instance> {
        let stdout = MemoryOutputPipe::new(STDIO_BYTES);
        let stderr = MemoryOutputPipe::new(STDIO_BYTES);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout.clone()).stderr(stderr.clone());
        if let Some(clock) = clock {
            wasi.wall_clock(WallClockOf(clock.clone()))
                .monotonic_clock(MonotonicClockOf(clock));
        }
        let host = HostState {
            wasi: wasi.build(),
            table: Default::default(),
            config_json: String::new(),
            kv: BTreeMap::new(),
            kv_quota_bytes: 0,
            kv_changed: false,
            max_emit: 0,
            emitted: Vec::new(),
            logs: Vec::new(),
            secrets: BTreeMap::new(),
            secret_uses: Vec::new(),
            http: crate::host::HttpAccess {
                origins: Vec::new(),
                allow_private: false,
                outbound: None,
                calls_left: 0,
                deadline: Instant::now(),
                waited: Duration::ZERO,
            },
            streams: Default::default(),
            host_calls: 0,
            http_log: Vec::new(),
        };
        let mut store = Store::new(
            &self.engine,
            Instance {
                host,
                memory: MemoryCap {
                    max: limits.memory_bytes,
                    high_water: 0,
                    refused: false,
                },
                started: Instant::now(),
                cpu: limits.cpu,
                stdout,
                stderr,
                stdio_seen: [0, 0],
            },
        );
        store.limiter(|i| &mut i.memory);
        // Epochs count wall-clock time; time spent waiting on the network for the plugin is
        // not its CPU time, so the deadline moves by that much before it stops the plugin.
        store.epoch_deadline_callback(|ctx| {
            let instance = ctx.data();
            let used = instance.started.elapsed().saturating_sub(instance.host.http.waited);
            if used >= instance.cpu {
                return Err(Trap::Interrupt.into());
            }
            let left = instance.cpu - used;
            Ok(wasmtime::UpdateDeadline::Continue(
                (left.as_millis() / EPOCH.as_millis()).max(1) as u64,
            ))
        });
        store
    }
}

/// An instantiated plugin of a world that takes events, streams, commands or alerts.
pub(crate) enum Handler {
    EventHandler(EventHandler),
    Connector(Connector),
    AlertHandler(AlertHandler),
}

impl Pre {
    fn instantiate(&self, store: &mut Store<Instance>) -> wasmtime::Result<Handler> {
        Ok(match self {
            Pre::EventHandler(pre) => Handler::EventHandler(pre.instantiate(store)?),
            Pre::Connector(pre) => Handler::Connector(pre.instantiate(store)?),
            Pre::AlertHandler(pre) => Handler::AlertHandler(pre.instantiate(store)?),
            Pre::Webhook(_) => return Err(wasmtime::Error::msg("a webhook answers requests only")),
        })
    }
}

impl crate::world::Exports {
    /// Whether a plugin with these exports can be handed `input`.
    fn takes(self, input: &Input) -> bool {
        match input {
            Input::Events(_) => self.events,
            Input::Stream(_) => self.streams,
            Input::Command(_) => self.commands,
            Input::Alerts(_) => self.alerts,
        }
    }
}

impl Input {
    fn what(&self) -> &'static str {
        match self {
            Input::Events(_) => "events",
            Input::Stream(_) => "stream deliveries",
            Input::Command(_) => "commands",
            Input::Alerts(_) => "alerts",
        }
    }
}

/// The plugin, checked to take `input`.
fn handler_for<'a>(plugin: &'a ValidPlugin, input: &Input) -> Result<&'a Pre, Failure> {
    let world = plugin.manifest.world;
    if !world.exports().takes(input) {
        return Err(invalid(format!(
            "`{}` is a {world} plugin, which takes no {}",
            plugin.manifest.id,
            input.what()
        )));
    }
    Ok(&plugin.pre)
}

fn plugin_error(e: crate::host::monti::plugin::types::PluginError) -> PluginError {
    PluginError {
        message: e.message,
        retryable: e.retryable,
    }
}

/// The plugin's own result, and a command's answer.
type GuestResult = (
    Result<(), crate::host::monti::plugin::types::PluginError>,
    Option<String>,
);

fn call_export(bindings: &Handler, store: &mut Store<Instance>, input: &Input) -> wasmtime::Result<GuestResult> {
    let events = |store: &mut Store<Instance>, batch: &[Event]| match bindings {
        Handler::EventHandler(b) => b.call_handle_events(store, batch),
        Handler::Connector(b) => b.call_handle_events(store, batch),
        Handler::AlertHandler(_) => Err(wasmtime::Error::msg("an alert handler takes alerts only")),
    };
    let stream = |store: &mut Store<Instance>, id: u32, item: &StreamItem| match bindings {
        Handler::EventHandler(b) => b.call_on_stream(store, id, item),
        Handler::Connector(b) => b.call_on_stream(store, id, item),
        Handler::AlertHandler(_) => Err(wasmtime::Error::msg("an alert handler has no streams")),
    };
    match input {
        Input::Events(batch) => Ok((events(store, batch)?, None)),
        Input::Stream(items) => {
            let mut first_error = Ok(());
            for (id, item) in items {
                let answer = stream(&mut *store, *id, item)?;
                if first_error.is_ok() {
                    first_error = answer;
                }
            }
            Ok((first_error, None))
        }
        Input::Command(request) => match bindings {
            Handler::Connector(b) => Ok(match b.call_handle_command(store, request)? {
                Ok(answer) => (Ok(()), Some(answer)),
                Err(error) => (Err(error), None),
            }),
            _ => Err(wasmtime::Error::msg("only a connector carries out commands")),
        },
        Input::Alerts(alerts) => match bindings {
            Handler::AlertHandler(b) => Ok((b.call_handle_alerts(store, alerts)?, None)),
            _ => Err(wasmtime::Error::msg("only an alert handler takes alerts")),
        },
    }
}

/// Sets an instance up for one call: the installation's configuration, store and grants, and
/// empty outputs. Returns what to hand the plugin.
fn prepare(instance: &mut Instance, invocation: Invocation, grants: &Grants, limits: &Limits) -> Input {
    let host = &mut instance.host;
    host.config_json = if invocation.config_json.is_empty() {
        "{}".into()
    } else {
        invocation.config_json
    };
    host.kv = invocation.kv;
    host.kv_quota_bytes = limits.kv_bytes;
    host.kv_changed = false;
    host.max_emit = limits.max_emit;
    host.emitted.clear();
    host.logs.clear();
    host.secrets = grants
        .secrets
        .iter()
        .filter_map(|(name, (destination, value))| {
            let origin = crate::host::origins(std::slice::from_ref(destination)).pop()?;
            Some((name.clone(), (origin, value.clone())))
        })
        .collect();
    host.secret_uses.clear();
    host.host_calls = 0;
    host.http_log.clear();
    host.http = crate::host::HttpAccess {
        origins: crate::host::origins(&grants.http),
        allow_private: grants.allow_private_networks,
        outbound: invocation
            .outbound
            .or_else(|| NetworkOutbound::current().map(|n| Arc::new(n) as Arc<dyn Outbound>)),
        calls_left: limits.http_calls,
        deadline: Instant::now() + limits.wall,
        waited: Duration::ZERO,
    };
    host.streams = crate::host::StreamAccess {
        granted: crate::host::stream_grants(&grants.streams),
        broker: invocation.streams,
    };
    instance.memory.max = limits.memory_bytes;
    instance.memory.refused = false;
    instance.cpu = limits.cpu;
    invocation.input
}

/// Makes one call into an instance prepared for it, and collects what the instance did (the
/// plugin's own result is returned beside it).
fn call<R>(
    store: &mut Store<Instance>,
    limits: &Limits,
    run: impl FnOnce(&mut Store<Instance>) -> wasmtime::Result<R>,
) -> Result<(R, Outcome), Failure> {
    let started = Instant::now();
    store.data_mut().started = started;
    let ticks = (limits.cpu.as_millis() / EPOCH.as_millis()).max(1) as u64;
    store.set_epoch_deadline(ticks);
    let called = run(&mut *store);
    let duration = started.elapsed();
    let state = store.data_mut();
    for (index, level) in [(0, Level::Info), (1, Level::Warn)] {
        let pipe = if index == 0 { &state.stdout } else { &state.stderr };
        let contents = pipe.contents();
        let fresh = contents.get(state.stdio_seen[index]..).unwrap_or_default();
        if !fresh.is_empty() {
            let text = String::from_utf8_lossy(fresh).into_owned();
            state.stdio_seen[index] = contents.len();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                state.host.push_log(level, line);
            }
        }
    }
    let logs: Vec<LogLine> = state
        .host
        .logs
        .iter()
        .map(|(level, message)| LogLine {
            level: level_name(*level),
            message: message.clone(),
        })
        .collect();
    match called {
        Ok(answer) => {
            let outcome = Outcome {
                result: Ok(()),
                emitted: std::mem::take(&mut state.host.emitted),
                kv: std::mem::take(&mut state.host.kv),
                kv_changed: state.host.kv_changed,
                logs,
                memory_high_water: state.memory.high_water,
                duration,
                cpu: duration.saturating_sub(state.host.http.waited),
                secret_uses: std::mem::take(&mut state.host.secret_uses),
                host_calls: state.host.host_calls,
                answer: None,
                http: std::mem::take(&mut state.host.http_log),
            };
            Ok((answer, outcome))
        }
        Err(error) => Err(classify(&error, state.memory.refused, logs, limits)),
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

fn classify(error: &wasmtime::Error, memory_refused: bool, logs: Vec<LogLine>, limits: &Limits) -> Failure {
    let trap = error.downcast_ref::<Trap>().copied();
    let (kind, message) = match trap {
        Some(Trap::Interrupt) => (
            FailureKind::CpuDeadline,
            format!("used more than its {} ms of CPU time", limits.cpu.as_millis()),
        ),
        _ if memory_refused => (
            FailureKind::Memory,
            format!("wanted more than its {} MiB of memory", limits.memory_bytes >> 20),
        ),
        Some(Trap::UnreachableCodeReached) => (
            FailureKind::Panic,
            logs.iter()
                .rev()
                .find(|l| l.message.starts_with("panicked"))
                .map_or_else(
                    || "reached unreachable code (a panic or abort)".into(),
                    |l| l.message.clone(),
                ),
        ),
        Some(Trap::StackOverflow) => (FailureKind::Trap, "overflowed its stack".into()),
        Some(other) => (FailureKind::Trap, other.to_string()),
        None => (FailureKind::Trap, format!("{error:#}")),
    };
    Failure { kind, message, logs }
}

/// Whether the bytes carry the component (not core module) layer in their header.
fn wasmparser_is_component(bytes: &[u8]) -> bool {
    // `\0asm`, then version 0x0d and layer 1 (components); core modules have layer 0.
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_fill_from_configuration_and_schema_defaults() {
        let manifest: crate::manifest::Manifest = toml::from_str(
            "id = \"pbx\"\nname = \"PBX\"\nversion = \"1.0.0\"\nworld = \"connector\"\nsdk = \"1.3.0\"\n\
             [capabilities]\nhttp = [\"http://${ari_host}:${ari_port}\"]\nstreams = [\"ws://${ari_host}:${ari_port}\"]\n\
             [capabilities.secrets]\nari_password = \"http://${ari_host}:${ari_port}\"\n\
             [config]\ntype = \"object\"\n[config.properties.ari_host]\ntype = \"string\"\ndefault = \"\"\n\
             [config.properties.ari_port]\ntype = \"integer\"\ndefault = 8088\n",
        )
        .unwrap();
        manifest.check().unwrap();
        let secrets: BTreeMap<String, String> = [("ari_password".to_owned(), "pw".to_owned())].into();
        // The port left out takes its default.
        let grants = Grants::requested(&manifest, &serde_json::json!({ "ari_host": "pbx.lan" }), &secrets, true);
        assert_eq!(grants.http, ["http://pbx.lan:8088"]);
        assert_eq!(grants.streams, ["ws://pbx.lan:8088"]);
        assert_eq!(grants.secrets["ari_password"].0, "http://pbx.lan:8088");
        // No host (the default, empty): nothing is granted, the secret included.
        let grants = Grants::requested(&manifest, &serde_json::json!({}), &secrets, true);
        assert!(grants.http.is_empty() && grants.streams.is_empty() && grants.secrets.is_empty());
    }
}

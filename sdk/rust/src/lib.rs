//! Monti plugins in Rust.
//!
//! A plugin is a WebAssembly component implementing one world of the `monti:plugin` contract
//! ([`CONTRACT_VERSION`], published in `sdk/wit/`). Write a type that keeps what the plugin
//! remembers, implement [`EventHandler`] (or [`Webhook`], [`Connector`], [`AlertHandler`]) for
//! it, export it with [`event_handler!`] (or [`webhook!`], [`connector!`], [`alert_handler!`]),
//! and build with `cargo build --release --target wasm32-wasip2`.
//!
//! The SDK makes one value of the type (with [`Default`]) when the instance is first called and
//! hands it to every call as `&mut self`. An instance serves one call unless the manifest asks
//! for a warm one (`limits.warm = true`), and a warm one may be replaced at any time: keep in
//! the key-value store ([`kv`]) what must survive, and in `self` what is only worth not redoing.
//!
//! ```ignore
//! use monti_plugin_sdk::{Event, EventBody, EventHandler, PluginError, info, kv};
//!
//! #[derive(Default)]
//! struct Counter {
//!     batches: u32,
//! }
//!
//! impl EventHandler for Counter {
//!     fn handle_events(&mut self, batch: Vec<Event>) -> Result<(), PluginError> {
//!         self.batches += 1;
//!         let logins = batch.iter().filter(|e| matches!(e.body, EventBody::AgentLogin(_))).count();
//!         let total = kv::get_json::<u64>("logins")?.unwrap_or(0) + logins as u64;
//!         kv::set_json("logins", &total)?;
//!         info!("{total} logins so far ({} batches in this instance)", self.batches);
//!         Ok(())
//!     }
//! }
//!
//! monti_plugin_sdk::event_handler!(Counter);
//! monti_plugin_sdk::manifest!("../monti-plugin.toml");
//! ```

/// The contract this SDK builds plugins against: its folder in `sdk/wit/` and the version of
/// every binding (build.rs reads it from this line).
pub const CONTRACT_VERSION: &str = "1.4.0";

#[doc(hidden)]
#[allow(clippy::too_many_arguments)] // generated code
pub mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

mod error;
pub mod http;
pub mod kv;
pub mod secrets;
pub mod streams;

use bindings::event_handler::monti::plugin as host;

pub use error::Error;
pub use host::log::Level;
pub use host::types::{
    AgentState, AgentStateChange, CallEnd, CallStart, CallerAnswer, CallerJoin, CallerLeave, Direction, Event,
    EventBody, LeaveReason, PluginError,
};
pub use streams::{Stream, StreamItem};

/// Supervisors' requests to a connector (contract 1.2).
pub use bindings::connector::monti::plugin::commands;

/// Inbound webhook request and response types.
pub use bindings::webhook::{IncomingRequest, OutgoingResponse};

/// The tenant's alerts as alert handlers receive them (contract 1.4).
pub use bindings::alert_handler::monti::plugin::alerts;

/// A plugin that receives the tenant's events (and what its streams deliver).
pub trait EventHandler: Default + Send + 'static {
    /// A batch of events, in order (the host's heartbeat is an empty one). An error is handled
    /// by the installation's failure policy.
    fn handle_events(&mut self, batch: Vec<Event>) -> Result<(), PluginError>;

    /// Something arrived on (or happened to) a stream the plugin opened. Ignored unless
    /// implemented.
    fn on_stream(&mut self, stream: Stream, item: StreamItem) -> Result<(), PluginError> {
        let _ = (stream, item);
        Ok(())
    }
}

/// A connector: an event handler that also carries out supervisors' requests on the system it
/// connects (contract 1.2, world `connector`).
pub trait Connector: EventHandler {
    /// Carries out a request; `Ok` with a short note once it was handed to the system (its effect
    /// arrives as events).
    fn handle_command(&mut self, request: commands::Request) -> Result<String, PluginError>;
}

/// A plugin that answers inbound HTTP requests routed to its installation.
pub trait Webhook: Default + Send + 'static {
    fn handle_request(&mut self, request: IncomingRequest) -> Result<OutgoingResponse, PluginError>;
}

/// An alert handler: receives the tenant's alerts as they fire and resolve (contract 1.4, world
/// `alert-handler`).
pub trait AlertHandler: Default + Send + 'static {
    /// Every alert that fired or resolved in one evaluation of the tenant's rules, in order.
    fn handle_alerts(&mut self, alerts: Vec<alerts::Alert>) -> Result<(), PluginError>;
}

impl PluginError {
    /// An error worth retrying later (a remote system was down, say).
    pub fn retryable(message: impl Into<String>) -> Self {
        PluginError {
            message: message.into(),
            retryable: true,
        }
    }

    /// An error that the same input will cause again.
    pub fn permanent(message: impl Into<String>) -> Self {
        PluginError {
            message: message.into(),
            retryable: false,
        }
    }
}

/// The installation's configuration as the host gives it (JSON text).
pub fn config_text() -> String {
    host::config::get()
}

/// The installation's configuration, deserialized.
pub fn config<T: serde::de::DeserializeOwned>() -> Result<T, Error> {
    serde_json::from_str(&host::config::get()).map_err(|e| Error::Invalid(format!("bad configuration: {e}")))
}

/// The configuration, parsed once and again only when it changed (an admin saved it while a warm
/// instance runs): a field of the plugin's type, for plugins that read it on every call.
#[derive(Debug)]
pub struct ConfigCache<T> {
    parsed: Option<(String, T)>,
}

// By hand: a derive would ask `T: Default`, and a configuration type needs none.
impl<T> Default for ConfigCache<T> {
    fn default() -> Self {
        ConfigCache { parsed: None }
    }
}

impl<T: serde::de::DeserializeOwned> ConfigCache<T> {
    /// The configuration as it is now.
    pub fn get(&mut self) -> Result<&T, Error> {
        let text = config_text();
        if self.parsed.as_ref().is_none_or(|(seen, _)| *seen != text) {
            let value = serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("bad configuration: {e}")))?;
            self.parsed = Some((text, value));
        }
        Ok(&self.parsed.as_ref().expect("parsed above").1)
    }
}

/// Writes a log line at `level` (see the [`info!`] family of macros).
pub fn log(level: Level, message: &str) {
    host::log::log(level, message);
}

/// Sends events into the tenant's live monitoring (a manifest with `emits_events = true`).
pub fn emit(events: &[Event]) -> Result<(), Error> {
    host::events::emit(events).map_err(Error::from)
}

/// Makes a panic leave its message in the plugin's log before the instance traps, so the
/// installation's status shows why. Called by the export macros; safe to call more than once.
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            host::log::log(Level::Error, &format!("panicked{location}: {message}"));
        }));
    });
}

/// The instance's one plugin value, made on its first call. The export macros put one in a
/// static of the plugin crate; a call into the instance cannot start while another runs (the
/// component model does not re-enter a component), so the lock is never contended.
#[doc(hidden)]
pub struct Slot<T>(std::sync::Mutex<Option<T>>);

impl<T: Default> Slot<T> {
    #[allow(clippy::new_without_default)] // a static's initialiser: const
    pub const fn new() -> Self {
        Slot(std::sync::Mutex::new(None))
    }

    /// Runs one call of the plugin on the instance's value.
    pub fn with<R>(&self, call: impl FnOnce(&mut T) -> R) -> R {
        install_panic_hook();
        // A panic traps the instance, which is never called again: a poisoned lock is not seen.
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        call(slot.get_or_insert_with(T::default))
    }
}

#[macro_export]
macro_rules! trace { ($($arg:tt)*) => { $crate::log($crate::Level::Trace, &format!($($arg)*)) } }
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::log($crate::Level::Debug, &format!($($arg)*)) } }
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::log($crate::Level::Info, &format!($($arg)*)) } }
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::log($crate::Level::Warn, &format!($($arg)*)) } }
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::log($crate::Level::Error, &format!($($arg)*)) } }

/// Embeds the plugin's manifest (`monti-plugin.toml`, a path relative to the calling file) in
/// the component, where the host reads it at upload: `monti_plugin_sdk::manifest!("../monti-plugin.toml");`
#[macro_export]
macro_rules! manifest {
    ($path:literal) => {
        #[cfg_attr(target_arch = "wasm32", unsafe(link_section = "monti-plugin"))]
        #[used]
        static __MONTI_PLUGIN_MANIFEST: [u8; include_bytes!($path).len()] = *include_bytes!($path);
    };
}

/// Exports a type implementing [`EventHandler`] as the plugin's `event-handler` world.
#[macro_export]
macro_rules! event_handler {
    ($plugin:ty) => {
        const _: () = {
            static PLUGIN: $crate::Slot<$plugin> = $crate::Slot::new();
            struct Export;
            impl $crate::bindings::event_handler::Guest for Export {
                fn handle_events(
                    batch: ::std::vec::Vec<$crate::Event>,
                ) -> ::std::result::Result<(), $crate::PluginError> {
                    PLUGIN.with(|plugin| <$plugin as $crate::EventHandler>::handle_events(plugin, batch))
                }
                fn on_stream(id: u32, item: $crate::StreamItem) -> ::std::result::Result<(), $crate::PluginError> {
                    PLUGIN.with(|plugin| {
                        <$plugin as $crate::EventHandler>::on_stream(plugin, $crate::Stream::from_id(id), item)
                    })
                }
            }
            $crate::bindings::event_handler::export_event_handler!(Export);
        };
    };
}

/// Exports a type implementing [`Connector`] as the plugin's `connector` world.
#[macro_export]
macro_rules! connector {
    ($plugin:ty) => {
        const _: () = {
            static PLUGIN: $crate::Slot<$plugin> = $crate::Slot::new();
            struct Export;
            impl $crate::bindings::connector::Guest for Export {
                fn handle_events(
                    batch: ::std::vec::Vec<$crate::Event>,
                ) -> ::std::result::Result<(), $crate::PluginError> {
                    PLUGIN.with(|plugin| <$plugin as $crate::EventHandler>::handle_events(plugin, batch))
                }
                fn on_stream(id: u32, item: $crate::StreamItem) -> ::std::result::Result<(), $crate::PluginError> {
                    PLUGIN.with(|plugin| {
                        <$plugin as $crate::EventHandler>::on_stream(plugin, $crate::Stream::from_id(id), item)
                    })
                }
                fn handle_command(
                    request: $crate::commands::Request,
                ) -> ::std::result::Result<::std::string::String, $crate::PluginError> {
                    PLUGIN.with(|plugin| <$plugin as $crate::Connector>::handle_command(plugin, request))
                }
            }
            $crate::bindings::connector::export_connector!(Export);
        };
    };
}

/// Exports a type implementing [`Webhook`] as the plugin's `webhook` world.
#[macro_export]
macro_rules! webhook {
    ($plugin:ty) => {
        const _: () = {
            static PLUGIN: $crate::Slot<$plugin> = $crate::Slot::new();
            struct Export;
            impl $crate::bindings::webhook::Guest for Export {
                fn handle_request(
                    request: $crate::IncomingRequest,
                ) -> ::std::result::Result<$crate::OutgoingResponse, $crate::PluginError> {
                    PLUGIN.with(|plugin| <$plugin as $crate::Webhook>::handle_request(plugin, request))
                }
            }
            $crate::bindings::webhook::export_webhook!(Export);
        };
    };
}

/// Exports a type implementing [`AlertHandler`] as the plugin's `alert-handler` world.
#[macro_export]
macro_rules! alert_handler {
    ($plugin:ty) => {
        const _: () = {
            static PLUGIN: $crate::Slot<$plugin> = $crate::Slot::new();
            struct Export;
            impl $crate::bindings::alert_handler::Guest for Export {
                fn handle_alerts(
                    alerts: ::std::vec::Vec<$crate::alerts::Alert>,
                ) -> ::std::result::Result<(), $crate::PluginError> {
                    PLUGIN.with(|plugin| <$plugin as $crate::AlertHandler>::handle_alerts(plugin, alerts))
                }
            }
            $crate::bindings::alert_handler::export_alert_handler!(Export);
        };
    };
}

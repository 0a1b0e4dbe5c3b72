//! Monti plugins in Rust.
//!
//! A plugin is a WebAssembly component implementing one world of the `monti:plugin@1.4.0`
//! contract (`sdk/wit`). Implement [`EventHandler`] (or [`Webhook`]) for a type, export it with
//! [`event_handler!`] (or [`webhook!`]), and build with
//! `cargo build --release --target wasm32-wasip2`.
//!
//! ```ignore
//! use monti_plugin_sdk::{EventHandler, Event, PluginError, info};
//!
//! struct Counter;
//!
//! impl EventHandler for Counter {
//!     fn handle_events(batch: Vec<Event>) -> Result<(), PluginError> {
//!         info!("{} events", batch.len());
//!         Ok(())
//!     }
//! }
//!
//! monti_plugin_sdk::event_handler!(Counter);
//! ```

/// The contract this SDK builds plugins against (its folder in `sdk/wit/`).
pub const CONTRACT_VERSION: &str = "1.4.0";

#[doc(hidden)]
#[allow(clippy::too_many_arguments)] // generated code
pub mod bindings {
    /// The `event-handler` world.
    pub mod event_handler {
        wit_bindgen::generate!({
            world: "event-handler",
            path: "../wit/1.4.0",
            pub_export_macro: true,
            export_macro_name: "export_event_handler",
            default_bindings_module: "monti_plugin_sdk::bindings::event_handler",
            // Events and the other records can be kept (in the key-value store, say) with serde.
            additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
        });
    }

    /// The `webhook` world.
    pub mod webhook {
        wit_bindgen::generate!({
            world: "webhook",
            path: "../wit/1.4.0",
            pub_export_macro: true,
            export_macro_name: "export_webhook",
            default_bindings_module: "monti_plugin_sdk::bindings::webhook",
            additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
            // The host interfaces are the same in both worlds: one set of Rust types.
            with: {
                "monti:plugin/types@1.4.0": crate::bindings::event_handler::monti::plugin::types,
                "monti:plugin/log@1.4.0": crate::bindings::event_handler::monti::plugin::log,
                "monti:plugin/config@1.4.0": crate::bindings::event_handler::monti::plugin::config,
                "monti:plugin/kv@1.4.0": crate::bindings::event_handler::monti::plugin::kv,
                "monti:plugin/secrets@1.4.0": crate::bindings::event_handler::monti::plugin::secrets,
                "monti:plugin/http@1.4.0": crate::bindings::event_handler::monti::plugin::http,
                "monti:plugin/events@1.4.0": crate::bindings::event_handler::monti::plugin::events,
                "monti:plugin/streams@1.4.0": crate::bindings::event_handler::monti::plugin::streams,
            },
        });
    }

    /// The `connector` world (1.2).
    pub mod connector {
        wit_bindgen::generate!({
            world: "connector",
            path: "../wit/1.4.0",
            pub_export_macro: true,
            export_macro_name: "export_connector",
            default_bindings_module: "monti_plugin_sdk::bindings::connector",
            additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
            // The host interfaces are the same in both worlds: one set of Rust types.
            with: {
                "monti:plugin/types@1.4.0": crate::bindings::event_handler::monti::plugin::types,
                "monti:plugin/log@1.4.0": crate::bindings::event_handler::monti::plugin::log,
                "monti:plugin/config@1.4.0": crate::bindings::event_handler::monti::plugin::config,
                "monti:plugin/kv@1.4.0": crate::bindings::event_handler::monti::plugin::kv,
                "monti:plugin/secrets@1.4.0": crate::bindings::event_handler::monti::plugin::secrets,
                "monti:plugin/http@1.4.0": crate::bindings::event_handler::monti::plugin::http,
                "monti:plugin/events@1.4.0": crate::bindings::event_handler::monti::plugin::events,
                "monti:plugin/streams@1.4.0": crate::bindings::event_handler::monti::plugin::streams,
            },
        });
    }

    /// The `alert-handler` world (1.4).
    pub mod alert_handler {
        wit_bindgen::generate!({
            world: "alert-handler",
            path: "../wit/1.4.0",
            pub_export_macro: true,
            export_macro_name: "export_alert_handler",
            default_bindings_module: "monti_plugin_sdk::bindings::alert_handler",
            additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
            // The host interfaces are the same in every world: one set of Rust types.
            with: {
                "monti:plugin/types@1.4.0": crate::bindings::event_handler::monti::plugin::types,
                "monti:plugin/log@1.4.0": crate::bindings::event_handler::monti::plugin::log,
                "monti:plugin/config@1.4.0": crate::bindings::event_handler::monti::plugin::config,
                "monti:plugin/kv@1.4.0": crate::bindings::event_handler::monti::plugin::kv,
                "monti:plugin/secrets@1.4.0": crate::bindings::event_handler::monti::plugin::secrets,
                "monti:plugin/http@1.4.0": crate::bindings::event_handler::monti::plugin::http,
                "monti:plugin/events@1.4.0": crate::bindings::event_handler::monti::plugin::events,
                "monti:plugin/streams@1.4.0": crate::bindings::event_handler::monti::plugin::streams,
            },
        });
    }
}

use bindings::event_handler::monti::plugin as host;

pub use host::streams::StreamItem;
pub use host::types::{
    AgentState, AgentStateChange, CallEnd, CallStart, CallerAnswer, CallerJoin, CallerLeave, Denied, Direction, Event,
    EventBody, LeaveReason, PluginError,
};
pub use host::{events, http, kv, log as host_log, secrets, streams};

/// Supervisors' requests to a connector (contract 1.2).
pub use bindings::connector::monti::plugin::commands;

/// Inbound webhook request and response types.
pub use bindings::webhook::{IncomingRequest, OutgoingResponse};

/// The tenant's alerts as alert handlers receive them (contract 1.4).
pub use bindings::alert_handler::monti::plugin::alerts;

/// A plugin that receives the tenant's events (and what its streams deliver).
pub trait EventHandler {
    /// A batch of events, in order. An error is handled by the installation's failure policy.
    fn handle_events(batch: Vec<Event>) -> Result<(), PluginError>;

    /// Something arrived on a stream the plugin opened. Ignored unless implemented.
    fn on_stream(id: u32, item: StreamItem) -> Result<(), PluginError> {
        let _ = (id, item);
        Ok(())
    }
}

/// A plugin that answers inbound HTTP requests routed to its installation.
pub trait Webhook {
    fn handle_request(request: IncomingRequest) -> Result<OutgoingResponse, PluginError>;
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

/// The installation's configuration, deserialized.
/// The installation's configuration as the host gives it (JSON text): to cache what you parse
/// from it, keyed by the text.
pub fn config_text() -> String {
    host::config::get()
}

pub fn config<T: serde::de::DeserializeOwned>() -> Result<T, serde_json::Error> {
    serde_json::from_str(&host::config::get())
}

/// Writes a log line at `level` (see the [`info!`] family of macros).
pub fn log(level: host_log::Level, message: &str) {
    host_log::log(level, message);
}

/// Sends events into the tenant's live monitoring.
pub fn emit(events: &[Event]) -> Result<(), Denied> {
    host::events::emit(events)
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
            host_log::log(host_log::Level::Error, &format!("panicked{location}: {message}"));
        }));
    });
}

#[macro_export]
macro_rules! trace { ($($arg:tt)*) => { $crate::log($crate::host_log::Level::Trace, &format!($($arg)*)) } }
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::log($crate::host_log::Level::Debug, &format!($($arg)*)) } }
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::log($crate::host_log::Level::Info, &format!($($arg)*)) } }
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::log($crate::host_log::Level::Warn, &format!($($arg)*)) } }
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::log($crate::host_log::Level::Error, &format!($($arg)*)) } }

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

/// A connector: an event handler that also carries out supervisors' requests on the system it
/// connects (contract 1.2, world `connector`).
pub trait Connector: EventHandler {
    /// Carries out a request; `Ok` with a short note once it was handed to the system (its effect
    /// arrives as events).
    fn handle_command(request: commands::Request) -> Result<String, PluginError>;
}

/// Exports a type implementing [`Connector`] as the plugin's `connector` world.
#[macro_export]
macro_rules! connector {
    ($plugin:ty) => {
        const _: () = {
            struct __MontiConnector;
            impl $crate::bindings::connector::Guest for __MontiConnector {
                fn handle_events(
                    batch: ::std::vec::Vec<$crate::Event>,
                ) -> ::std::result::Result<(), $crate::PluginError> {
                    $crate::install_panic_hook();
                    <$plugin as $crate::EventHandler>::handle_events(batch)
                }
                fn on_stream(id: u32, item: $crate::StreamItem) -> ::std::result::Result<(), $crate::PluginError> {
                    $crate::install_panic_hook();
                    <$plugin as $crate::EventHandler>::on_stream(id, item)
                }
                fn handle_command(
                    request: $crate::commands::Request,
                ) -> ::std::result::Result<::std::string::String, $crate::PluginError> {
                    $crate::install_panic_hook();
                    <$plugin as $crate::Connector>::handle_command(request)
                }
            }
            $crate::bindings::connector::export_connector!(__MontiConnector);
        };
    };
}

/// Exports a type implementing [`EventHandler`] as the plugin's `event-handler` world.
#[macro_export]
macro_rules! event_handler {
    ($plugin:ty) => {
        const _: () = {
            struct __MontiEventHandler;
            impl $crate::bindings::event_handler::Guest for __MontiEventHandler {
                fn handle_events(
                    batch: ::std::vec::Vec<$crate::Event>,
                ) -> ::std::result::Result<(), $crate::PluginError> {
                    $crate::install_panic_hook();
                    <$plugin as $crate::EventHandler>::handle_events(batch)
                }
                fn on_stream(id: u32, item: $crate::StreamItem) -> ::std::result::Result<(), $crate::PluginError> {
                    $crate::install_panic_hook();
                    <$plugin as $crate::EventHandler>::on_stream(id, item)
                }
            }
            $crate::bindings::event_handler::export_event_handler!(__MontiEventHandler);
        };
    };
}

/// Exports a type implementing [`Webhook`] as the plugin's `webhook` world.
#[macro_export]
macro_rules! webhook {
    ($plugin:ty) => {
        const _: () = {
            struct __MontiWebhook;
            impl $crate::bindings::webhook::Guest for __MontiWebhook {
                fn handle_request(
                    request: $crate::IncomingRequest,
                ) -> ::std::result::Result<$crate::OutgoingResponse, $crate::PluginError> {
                    $crate::install_panic_hook();
                    <$plugin as $crate::Webhook>::handle_request(request)
                }
            }
            $crate::bindings::webhook::export_webhook!(__MontiWebhook);
        };
    };
}

/// An alert handler: receives the tenant's alerts as they fire and resolve (contract 1.4, world
/// `alert-handler`).
pub trait AlertHandler {
    /// Every alert that fired or resolved in one evaluation of the tenant's rules, in order.
    fn handle_alerts(alerts: Vec<alerts::Alert>) -> Result<(), PluginError>;
}

/// Exports a type implementing [`AlertHandler`] as the plugin's `alert-handler` world.
#[macro_export]
macro_rules! alert_handler {
    ($plugin:ty) => {
        const _: () = {
            struct __MontiAlertHandler;
            impl $crate::bindings::alert_handler::Guest for __MontiAlertHandler {
                fn handle_alerts(
                    alerts: ::std::vec::Vec<$crate::alerts::Alert>,
                ) -> ::std::result::Result<(), $crate::PluginError> {
                    $crate::install_panic_hook();
                    <$plugin as $crate::AlertHandler>::handle_alerts(alerts)
                }
            }
            $crate::bindings::alert_handler::export_alert_handler!(__MontiAlertHandler);
        };
    };
}

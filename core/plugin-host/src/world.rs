//! The contract's worlds, in one table: for each, its name, the contract version that introduced
//! it, what its plugins export, and how the host links and checks a component of it. A new world
//! is a row here, a variant of [`World`], and its bindings in `host.rs`.

use wasmtime::component::{HasSelf, InstancePre, Linker};

use crate::engine::{Instance, Pre};
use crate::host::{HostState, alert_handler, connector, event_handler, webhook};

/// A world of `monti:plugin@1.x` this host runs, as a manifest names it (`world = "connector"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum World {
    EventHandler,
    Webhook,
    Connector,
    AlertHandler,
}

/// The calls a world's plugins export, so what the host may hand them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exports {
    /// `handle-events`: batches of the tenant's events (and the host's heartbeat, an empty one).
    pub events: bool,
    /// `on-stream`: what arrives on streams the plugin opened.
    pub streams: bool,
    /// `handle-command`: supervisors' requests.
    pub commands: bool,
    /// `handle-alerts`: alerts as they fire and resolve.
    pub alerts: bool,
    /// `handle-request`: inbound HTTP routed to the installation.
    pub requests: bool,
}

/// How the host links a world (its imports, as the plugin instance's host state) and checks that
/// a component has the world's exports.
pub(crate) struct Binding {
    pub link: fn(&mut Linker<Instance>) -> wasmtime::Result<()>,
    pub pre: fn(InstancePre<Instance>) -> wasmtime::Result<Pre>,
}

struct Row {
    world: World,
    name: &'static str,
    /// The 1.x minor version that introduced it: a plugin built against an earlier one cannot be of it.
    since_minor: u64,
    exports: Exports,
    binding: Binding,
}

const EVENTS_AND_STREAMS: Exports = Exports {
    events: true,
    streams: true,
    commands: false,
    alerts: false,
    requests: false,
};

/// Every world, in the order of [`World`]'s variants. Older plugins import the host interfaces at
/// the version they were built against (`…@1.0.0`); the linker satisfies them with these 1.4
/// implementations, so a 1.0 event handler loads as one.
const WORLDS: [Row; 4] = [
    Row {
        world: World::EventHandler,
        name: "event-handler",
        since_minor: 0,
        exports: EVENTS_AND_STREAMS,
        binding: Binding {
            link: |linker| event_handler::EventHandler::add_to_linker::<Instance, HasSelf<HostState>>(linker, host),
            pre: |pre| Ok(Pre::EventHandler(event_handler::EventHandlerPre::new(pre)?)),
        },
    },
    Row {
        world: World::Webhook,
        name: "webhook",
        since_minor: 0,
        exports: Exports {
            requests: true,
            ..NOTHING
        },
        binding: Binding {
            link: |linker| webhook::Webhook::add_to_linker::<Instance, HasSelf<HostState>>(linker, host),
            pre: |pre| Ok(Pre::Webhook(webhook::WebhookPre::new(pre)?)),
        },
    },
    Row {
        world: World::Connector,
        name: "connector",
        since_minor: 2,
        exports: Exports {
            commands: true,
            ..EVENTS_AND_STREAMS
        },
        binding: Binding {
            link: |linker| connector::Connector::add_to_linker::<Instance, HasSelf<HostState>>(linker, host),
            pre: |pre| Ok(Pre::Connector(connector::ConnectorPre::new(pre)?)),
        },
    },
    Row {
        world: World::AlertHandler,
        name: "alert-handler",
        since_minor: 4,
        exports: Exports {
            alerts: true,
            ..NOTHING
        },
        binding: Binding {
            link: |linker| alert_handler::AlertHandler::add_to_linker::<Instance, HasSelf<HostState>>(linker, host),
            pre: |pre| Ok(Pre::AlertHandler(alert_handler::AlertHandlerPre::new(pre)?)),
        },
    },
];

const NOTHING: Exports = Exports {
    events: false,
    streams: false,
    commands: false,
    alerts: false,
    requests: false,
};

fn host(instance: &mut Instance) -> &mut HostState {
    &mut instance.host
}

impl World {
    /// Every world this host runs.
    pub const ALL: [World; 4] = [
        World::EventHandler,
        World::Webhook,
        World::Connector,
        World::AlertHandler,
    ];

    fn row(self) -> &'static Row {
        let row = &WORLDS[self as usize];
        debug_assert_eq!(row.world, self, "WORLDS is in the order of the variants");
        row
    }

    /// Its name in manifests and the contract (`event-handler`).
    pub fn as_str(self) -> &'static str {
        self.row().name
    }

    /// The contract version that introduced it, `1.<since_minor>.0`.
    pub fn since_minor(self) -> u64 {
        self.row().since_minor
    }

    /// What its plugins export.
    pub fn exports(self) -> Exports {
        self.row().exports
    }

    pub(crate) fn binding(self) -> &'static Binding {
        &self.row().binding
    }

    /// The worlds' names as a sentence: `event-handler, webhook, connector or alert-handler`.
    fn names() -> String {
        let names: Vec<&str> = World::ALL.iter().map(|w| w.as_str()).collect();
        match names.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

impl std::str::FromStr for World {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        World::ALL
            .into_iter()
            .find(|w| w.as_str() == name)
            .ok_or_else(|| format!("unknown world `{name}` (this host runs {})", World::names()))
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for World {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for World {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for World {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for World {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_row_per_world_in_order() {
        for (index, world) in World::ALL.into_iter().enumerate() {
            assert_eq!(WORLDS[index].world, world);
            assert_eq!(world.as_str().parse::<World>(), Ok(world));
            assert_eq!(serde_json::to_value(world).unwrap(), serde_json::json!(world.as_str()));
        }
        let unknown = "billing".parse::<World>().unwrap_err();
        assert_eq!(
            unknown,
            "unknown world `billing` (this host runs event-handler, webhook, connector or alert-handler)"
        );
        assert!(World::Connector == "connector" && World::Webhook != "connector");
        assert!(World::Connector.exports().commands && World::Connector.exports().events);
        assert!(!World::Webhook.exports().events && World::Webhook.exports().requests);
    }
}

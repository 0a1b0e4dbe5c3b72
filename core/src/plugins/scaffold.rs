//! `monti plugin new`: a plugin crate to start from.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};

const EVENT_HANDLER: &str = r#"//! {name}: what it does, in a sentence.

use monti_plugin_sdk::{ConfigCache, Event, EventBody, EventHandler, PluginError, info};

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Config {
    /// An example setting (see `[config]` in monti-plugin.toml).
    greeting: String,
}

/// What the plugin keeps while its instance lives (one call, or many for a warm instance);
/// what must outlast it goes in the key-value store (`monti_plugin_sdk::kv`).
#[derive(Default)]
struct Plugin {
    config: ConfigCache<Config>,
}

impl EventHandler for Plugin {
    fn handle_events(&mut self, batch: Vec<Event>) -> Result<(), PluginError> {
        let config = self.config.get()?;
        for event in &batch {
            if let EventBody::AgentLogin(agent) = &event.body {
                info!("{} {agent}", config.greeting);
            }
        }
        Ok(())
    }
}

monti_plugin_sdk::event_handler!(Plugin);
monti_plugin_sdk::manifest!("../monti-plugin.toml");
"#;

const WEBHOOK: &str = r#"//! {name}: what it does, in a sentence.

use monti_plugin_sdk::{IncomingRequest, OutgoingResponse, PluginError, Webhook, info};

#[derive(Default)]
struct Plugin;

impl Webhook for Plugin {
    fn handle_request(&mut self, request: IncomingRequest) -> Result<OutgoingResponse, PluginError> {
        info!("{} {} ({} bytes)", request.method, request.path, request.body.len());
        Ok(OutgoingResponse {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        })
    }
}

monti_plugin_sdk::webhook!(Plugin);
monti_plugin_sdk::manifest!("../monti-plugin.toml");
"#;

const EVENT_HANDLER_TEST: &str = r#"//! {name} in the real host, with monti-plugin-test: `cargo test`.

use monti_plugin_test::{EventBody, Harness};

#[test]
fn greets_agents_who_log_in() {
    let mut plugin = Harness::build(env!("CARGO_MANIFEST_DIR")).expect("builds for wasm32-wasip2 and loads");
    plugin.configure(serde_json::json!({ "greeting": "Hello" })).unwrap();
    let login = plugin.event(EventBody::AgentLogin("1001".into()));
    let run = plugin.handle_events(vec![login]).expect("runs");
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.logs_at("info"), ["Hello 1001"]);
    println!("{}", run.report);
}
"#;

const WEBHOOK_TEST: &str = r#"//! {name} in the real host, with monti-plugin-test: `cargo test`.

use monti_plugin_test::{Harness, HookRequest};

#[test]
fn answers_a_request() {
    let mut plugin = Harness::build(env!("CARGO_MANIFEST_DIR")).expect("builds for wasm32-wasip2 and loads");
    let request = HookRequest {
        method: "POST".into(),
        path: "/".into(),
        headers: Vec::new(),
        body: b"{}".to_vec(),
    };
    let (answer, run) = plugin.handle_request(request).expect("runs");
    assert_eq!(answer.expect("answers").status, 204);
    assert_eq!(run.logs_at("info"), ["POST / (2 bytes)"]);
}
"#;

/// Creates the crate in `dir` (which must not exist yet).
pub fn create(dir: &Path, id: &str, world: &str, sdk: &Path) -> anyhow::Result<PathBuf> {
    let manifest_check = super::manifest::Manifest {
        id: id.to_owned(),
        name: id.to_owned(),
        version: "0.1.0".into(),
        world: world.parse().map_err(|e: String| anyhow!("{e}"))?,
        sdk: "1.4.0".into(),
        description: String::new(),
        capabilities: Default::default(),
        limits: Default::default(),
        config: None,
        failure_policy: Default::default(),
    };
    manifest_check.check().map_err(|e| anyhow!("{e}"))?;
    if dir.exists() {
        return Err(anyhow!("{} exists already", dir.display()));
    }
    let crate_name = id.replace('-', "_");
    std::fs::create_dir_all(dir.join("src")).with_context(|| format!("cannot create {}", dir.display()))?;
    let write =
        |name: &str, text: String| std::fs::write(dir.join(name), text).with_context(|| format!("cannot write {name}"));
    write(
        "Cargo.toml",
        format!(
            "[package]\nname = \"{id}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nmonti-plugin-sdk = {{ path = \"{}\" }}\n\
             serde = {{ version = \"1\", features = [\"derive\"] }}\n\n\
             [dev-dependencies]\nmonti-plugin-test = {{ path = \"{}\" }}\nserde_json = \"1\"\n\n\
             # A crate of its own, not part of any workspace around it.\n[workspace]\n\n\
             [profile.release]\nopt-level = \"s\"\nlto = true\nstrip = true\n",
            sdk.display(),
            sdk.join("../test").display()
        ),
    )?;
    let config = if world == "webhook" {
        String::new()
    } else {
        "\n[config]\ntype = \"object\"\nadditionalProperties = false\n\n[config.properties.greeting]\n\
         type = \"string\"\ndefault = \"Welcome\"\nmaxLength = 100\n"
            .to_owned()
    };
    write(
        "monti-plugin.toml",
        format!(
            "id = \"{id}\"\nname = \"{id}\"\nversion = \"0.1.0\"\nworld = \"{world}\"\nsdk = \"1.4.0\"\n\
             description = \"\"\nfailure_policy = \"skip\"\n\n[capabilities]\nkv_bytes = 0\nemits_events = false\n\
             # http = [\"https://api.example.com\"]\n\n[limits]\ncpu_ms = 50\nmemory_mb = 16\n{config}"
        ),
    )?;
    let source = if world == "webhook" { WEBHOOK } else { EVENT_HANDLER };
    write("src/lib.rs", source.replace("{name}", id))?;
    std::fs::create_dir_all(dir.join("tests")).with_context(|| format!("cannot create {}/tests", dir.display()))?;
    let test = if world == "webhook" {
        WEBHOOK_TEST
    } else {
        EVENT_HANDLER_TEST
    };
    write("tests/plugin.rs", test.replace("{name}", id))?;
    write(
        "README.md",
        format!(
            "# {id}\n\nA Monti plugin ({world}). See docs/plugins.md in Monti.\n\n```sh\n\
             rustup target add wasm32-wasip2\ncargo build --release --target wasm32-wasip2\n\
             cargo test   # runs the plugin in Monti's host (tests/plugin.rs)\n\
             monti plugin check target/wasm32-wasip2/release/{crate_name}.wasm\n```\n"
        ),
    )?;
    write(".gitignore", "/target\n".into())?;
    Ok(dir.to_path_buf())
}

//! Writes the contract's bindings to `$OUT_DIR/bindings.rs`: one `wit_bindgen::generate!` per
//! world, all sharing the host interfaces of the first. wit-bindgen takes the contract's folder
//! and every shared interface as literal strings carrying the version, so they are written here
//! from `CONTRACT_VERSION` in src/lib.rs — the one place the version is written.

use std::fmt::Write as _;

/// The host interfaces every world imports: generated with `event-handler`, reused by the others.
const SHARED: [&str; 8] = ["types", "log", "config", "kv", "secrets", "http", "events", "streams"];

/// (module, world, doc) for the worlds after `event-handler`.
const WORLDS: [(&str, &str, &str); 3] = [
    ("webhook", "webhook", "The `webhook` world."),
    ("connector", "connector", "The `connector` world (1.2)."),
    ("alert_handler", "alert-handler", "The `alert-handler` world (1.4)."),
];

fn main() {
    println!("cargo::rerun-if-changed=src/lib.rs");
    let lib = std::fs::read_to_string("src/lib.rs").expect("src/lib.rs");
    let version = lib
        .lines()
        .find_map(|line| {
            line.strip_prefix("pub const CONTRACT_VERSION: &str = \"")?
                .strip_suffix("\";")
        })
        .expect("src/lib.rs has `pub const CONTRACT_VERSION: &str = \"MAJOR.MINOR.PATCH\";`");
    let path = format!("../wit/{version}");
    assert!(
        std::path::Path::new(&path).is_dir(),
        "the contract {version} is not published in sdk/wit/{version}"
    );
    println!("cargo::rerun-if-changed={path}");

    let mut out = String::new();
    let generate = |out: &mut String, module: &str, world: &str, doc: &str, with: &str| {
        writeln!(
            out,
            "/// {doc}\npub mod {module} {{\n    wit_bindgen::generate!({{\n        world: \"{world}\",\n        \
             path: \"{path}\",\n        pub_export_macro: true,\n        export_macro_name: \"export_{module}\",\n        \
             default_bindings_module: \"monti_plugin_sdk::bindings::{module}\",\n        \
             additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],\n{with}    }});\n}}\n"
        )
        .unwrap();
    };
    // Events and the other records can be kept (in the key-value store, say) with serde.
    generate(
        &mut out,
        "event_handler",
        "event-handler",
        "The `event-handler` world.",
        "",
    );
    let mut with = String::from("        with: {\n");
    for interface in SHARED {
        writeln!(
            with,
            "            \"monti:plugin/{interface}@{version}\": crate::bindings::event_handler::monti::plugin::{interface},"
        )
        .unwrap();
    }
    with.push_str("        },\n");
    for (module, world, doc) in WORLDS {
        generate(&mut out, module, world, doc, &with);
    }
    let target = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("bindings.rs");
    std::fs::write(target, out).unwrap();
}

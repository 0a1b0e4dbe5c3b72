//! What plugin authors and operators do from the command line: check, run, scaffold, install.

use super::*;

#[test]
fn authors_check_and_run_a_plugin_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("wellbeing.wasm");
    std::fs::write(&wasm, component("monti-example-minimal")).unwrap();
    let monti = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_monti"))
            .args(args)
            .output()
            .expect("run monti")
    };
    let check = monti(&["plugin", "check", wasm.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{said}");
    assert!(said.contains("wellbeing 1.0.0") && said.contains("event-handler") && said.contains("valid"));

    let events = dir.path().join("events.ndjson");
    std::fs::write(
        &events,
        [
            r#"{"id":"1","source":"pbx","at":"2026-11-24T10:00:00Z","type":"call_end","call":"c1","agent":"1001","talk_s":60}"#,
            r#"{"id":"2","source":"pbx","at":"2026-11-24T10:05:00Z","type":"call_end","call":"c2","agent":"1001","talk_s":60}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let run = monti(&[
        "plugin",
        "run",
        wasm.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
        "--plugin-config",
        r#"{"pause_after": 2}"#,
    ]);
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    let emitted: Event = serde_json::from_str(out.trim()).expect("one event, as JSON");
    assert_eq!(emitted.id, "wellbeing-2");
    assert!(
        err.contains("[info] agent 1001 ended 2 calls") && err.contains("ok: 1 events emitted"),
        "{err}"
    );

    // Not a component: a clear error and a failing exit.
    let not = monti(&["plugin", "check", events.to_str().unwrap()]);
    assert!(!not.status.success());
    assert!(String::from_utf8_lossy(&not.stderr).contains("not a WebAssembly component"));
    // A panicking run fails with the panic's message.
    let misbehaving = dir.path().join("misbehaving.wasm");
    std::fs::write(&misbehaving, component("monti-test-misbehaving")).unwrap();
    std::fs::write(
        &events,
        r#"[{"id":"panic","source":"t","at":"2026-11-24T10:00:00Z","type":"agent_login","agent":"1"}]"#,
    )
    .unwrap();
    let panicked = monti(&[
        "plugin",
        "run",
        misbehaving.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
    ]);
    assert!(!panicked.status.success());
    let err = String::from_utf8_lossy(&panicked.stderr);
    assert!(err.contains("failed: panic") && err.contains("as requested"), "{err}");
}

#[test]
fn operators_install_enable_and_remove_plugins_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("wellbeing.wasm");
    std::fs::write(&wasm, component("monti-example-minimal")).unwrap();
    let data = dir.path().join("data");
    let monti = |args: &[&str]| common::monti_cli(&data, args);
    let (ok, _, err) = monti(&["admin", "tenant", "create", "--slug", "acme", "--name", "Acme"]);
    assert!(ok, "{err}");
    let file = wasm.to_str().unwrap();
    // A configuration outside the plugin's schema is refused with the reason.
    let (ok, _, err) = monti(&[
        "plugin",
        "install",
        file,
        "--tenant",
        "acme",
        "--plugin-config",
        r#"{"pause_after": 0}"#,
    ]);
    assert!(!ok);
    assert!(err.contains("/pause_after: must be at least 1"), "{err}");
    let (ok, out, err) = monti(&[
        "plugin",
        "install",
        file,
        "--tenant",
        "acme",
        "--plugin-config",
        r#"{"pause_after": 5}"#,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("wellbeing") && out.contains("disabled"), "{out}");
    let (ok, out, _) = monti(&["plugin", "enable", "wellbeing", "--tenant", "acme"]);
    assert!(ok && out.contains("enabled"), "{out}");
    let (_, out, _) = monti(&["plugin", "list", "--tenant", "acme"]);
    assert!(
        out.contains("wellbeing") && out.contains("1.0.0") && out.contains("enabled"),
        "{out}"
    );
    let (ok, out, _) = monti(&["plugin", "disable", "wellbeing", "--tenant", "acme"]);
    assert!(ok && out.contains("disabled"), "{out}");
    let (ok, out, _) = monti(&["plugin", "remove", "wellbeing", "--tenant", "acme"]);
    assert!(ok && out.contains("removed wellbeing"), "{out}");
    let (ok, _, err) = monti(&["plugin", "enable", "wellbeing", "--tenant", "acme"]);
    assert!(!ok && err.contains("not found"), "{err}");
    // Each step went through the same audited flow as the API's, as the operator.
    let audit = common::audit_in_data_dir(&data, "acme");
    let plugin_steps: Vec<(&str, &str)> = audit
        .iter()
        .filter(|(_, action)| action.starts_with("plugin."))
        .map(|(actor, action)| (actor.as_str(), action.as_str()))
        .collect();
    assert_eq!(
        plugin_steps,
        [
            ("cli", "plugin.install"),
            ("cli", "plugin.approve"),
            ("cli", "plugin.update"),
            ("cli", "plugin.update"),
            ("cli", "plugin.remove")
        ],
        "{audit:#?}"
    );
}

/// `monti plugin new` gives a crate that builds into a valid plugin as it is.
#[test]
fn a_new_plugin_builds_and_checks_as_scaffolded() {
    let dir = tempfile::tempdir().unwrap();
    let monti = |args: &[&str], cwd: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_monti"))
            .args(args)
            .current_dir(cwd)
            .output()
            .expect("run monti")
    };
    let made = monti(&["plugin", "new", "greeter"], dir.path());
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let crate_dir = dir.path().join("greeter");
    for file in [
        "Cargo.toml",
        "monti-plugin.toml",
        "src/lib.rs",
        "tests/plugin.rs",
        "README.md",
    ] {
        assert!(crate_dir.join(file).exists(), "{file}");
    }
    let again = monti(&["plugin", "new", "greeter"], dir.path());
    assert!(!again.status.success(), "an existing directory is left alone");
    let bad = monti(&["plugin", "new", "Not A Name"], dir.path());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("lower-case"));

    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| crate_dir.join("target"));
    let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .expect("cargo");
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let wasm = target_dir.join("wasm32-wasip2/release/greeter.wasm");
    let check = monti(&["plugin", "check", wasm.to_str().unwrap()], dir.path());
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && said.contains("greeter 0.1.0") && said.contains("valid"),
        "{said}"
    );
}

//! Each concept in its room, checked over the source: SQL only in the store, tenant scopes made
//! only by the authentication layer, the store, the system's own workers and the operator's
//! command line. A file that breaks a rule is named with its line.

use std::path::{Path, PathBuf};

/// What may appear only under some paths of `core/src`.
struct Rule {
    what: &'static str,
    needles: &'static [&'static str],
    allowed: &'static [&'static str],
}

const RULES: &[Rule] = &[
    Rule {
        what: "SQL and the database driver (the store owns all SQL)",
        needles: &[
            "sqlx::",
            "on_db!",
            "bind_values!",
            "QueryBuilder",
            "\"SELECT ",
            "\"INSERT INTO ",
            "\"UPDATE ",
            "\"DELETE FROM ",
            "\"WITH ",
            "\"select ",
            "\"insert into ",
            "\"delete from ",
        ],
        allowed: &["store/"],
    },
    Rule {
        what: "a scope from verified credentials",
        needles: &["TenantScope::verified("],
        allowed: &["store/", "auth/"],
    },
    Rule {
        what: "a system actor's scope for a tenant the store named",
        needles: &["TenantScope::system("],
        allowed: &["store/", "rules/service.rs", "live/service.rs", "plugins/"],
    },
    Rule {
        what: "the scope of an inbound hook (the hooks endpoint acts as `system:hooks`)",
        needles: &[".system_scope("],
        allowed: &["store/", "plugins/", "web/hooks.rs"],
    },
    Rule {
        what: "a system scope looked up by slug (the operator's command line and the demo)",
        needles: &["tenants::system_scope(", "store::tenants::system_scope("],
        allowed: &["store/", "cli.rs", "demo.rs"],
    },
    Rule {
        what: "a tenant id made from text",
        needles: &["TenantId::trusted(", "TenantId("],
        allowed: &["store/"],
    },
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read the source folder") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The violations of `rules` in the files under `root`, as `path:line: what`.
fn violations(root: &Path, rules: &[Rule]) -> Vec<String> {
    let mut files = Vec::new();
    sources(root, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(&file).expect("read a source file");
        for rule in rules {
            if rule.allowed.iter().any(|room| relative.starts_with(room)) {
                continue;
            }
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                if rule.needles.iter().any(|needle| code.contains(needle)) {
                    found.push(format!(
                        "{}/{relative}:{}: {} outside its room",
                        root.display(),
                        n + 1,
                        rule.what
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn sql_and_scopes_stay_in_their_rooms() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&root, RULES);
    assert!(found.is_empty(), "{}", found.join("\n"));
    // The simulators stand in for a PBX and callers: they reach Monti as a PBX would, never
    // through its database.
    let simulators = Path::new(env!("CARGO_MANIFEST_DIR")).join("../simulators/src");
    let found = violations(&simulators, &RULES[..1]);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The check itself finds what it is for: raw SQL in a web handler and a scope made by hand.
#[test]
fn the_check_finds_sql_and_hand_made_scopes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("web")).unwrap();
    std::fs::create_dir_all(dir.path().join("store")).unwrap();
    std::fs::write(
        dir.path().join("web/handler.rs"),
        "async fn h() {\n    // sqlx:: in a comment is fine\n    let q = sqlx::query(\"SELECT 1\");\n    \
         let s = TenantScope::verified(id, slug, role, actor);\n}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("store/fine.rs"), "let q = sqlx::query(\"SELECT 1\");\n").unwrap();
    let found = violations(dir.path(), RULES);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].contains("web/handler.rs:3") && found[0].contains("SQL"),
        "{}",
        found[0]
    );
    assert!(
        found[1].contains("web/handler.rs:4") && found[1].contains("verified"),
        "{}",
        found[1]
    );
}

//! SQLite and PostgreSQL migrations must stay in step.

use std::collections::BTreeSet;

fn versions(dir: &str) -> BTreeSet<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(dir);
    std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".sql"))
        .collect()
}

#[test]
fn both_backends_have_the_same_migrations() {
    let sqlite = versions("sqlite");
    let postgres = versions("postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres, "every migration needs a twin with the same file name");
}

#[test]
fn both_backends_create_the_same_tables() {
    let tables = |dir: &str| -> BTreeSet<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../migrations")
            .join(dir);
        let mut out = BTreeSet::new();
        for file in versions(dir) {
            let sql = std::fs::read_to_string(path.join(file)).unwrap();
            for line in sql.lines() {
                let line = line.trim();
                for prefix in ["CREATE TABLE ", "CREATE INDEX ", "CREATE UNIQUE INDEX "] {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        out.insert(format!("{prefix}{}", rest.split_whitespace().next().unwrap()));
                    }
                }
            }
        }
        out
    };
    assert_eq!(tables("sqlite"), tables("postgres"));
}

//! The published contracts stay as published: every folder in `sdk/wit/` is one released
//! version of `monti:plugin`, and its files must hash to the digest recorded for it in
//! `sdk/wit/released.txt`. Plugins in the field were built against those bytes; a change to them
//! is a new version (a new folder), never an edit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn wit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")
}

fn semver(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

/// The digest of a contract folder: SHA-256 over the `sha256sum` listing of its files, in byte
/// order of their names (what `LC_ALL=C ls | xargs sha256sum | sha256sum` prints).
fn folder_digest(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            assert!(
                entry.file_type().unwrap().is_file(),
                "{}: a contract folder holds files only",
                entry.path().display()
            );
            entry.file_name().into_string().expect("file names are UTF-8")
        })
        .collect();
    names.sort();
    let mut listing = String::new();
    for name in &names {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        listing.push_str(&format!("{:x}  {name}\n", Sha256::digest(&bytes)));
    }
    format!("sha256:{:x}", Sha256::digest(listing.as_bytes()))
}

/// `released.txt`: version → digest.
fn released() -> BTreeMap<(u64, u64, u64), (String, String)> {
    let text = std::fs::read_to_string(wit_dir().join("released.txt")).unwrap();
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (version, digest) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("`{line}`: `VERSION sha256:HEX`"));
        let key = semver(version).unwrap_or_else(|| panic!("`{version}` is not MAJOR.MINOR.PATCH"));
        let previous = out.insert(key, (version.to_owned(), digest.trim().to_owned()));
        assert!(previous.is_none(), "{version} is listed twice");
    }
    out
}

/// The version folders under `sdk/wit/`.
fn folders() -> BTreeMap<(u64, u64, u64), String> {
    std::fs::read_dir(wit_dir())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| {
            let name = e.file_name().into_string().unwrap();
            let key = semver(&name).unwrap_or_else(|| panic!("sdk/wit/{name}: contract folders are named by version"));
            (key, name)
        })
        .collect()
}

#[test]
fn released_contracts_are_unchanged() {
    let released = released();
    let folders = folders();
    assert!(!released.is_empty());
    for (key, (version, recorded)) in &released {
        assert!(
            folders.contains_key(key),
            "sdk/wit/{version} was released and must stay"
        );
        let digest = folder_digest(&wit_dir().join(version));
        assert_eq!(
            &digest, recorded,
            "sdk/wit/{version} changed since it was released: plugins built against it may break. \
             Put the change in a new version's folder and leave {version} as it was"
        );
    }
    for (key, name) in &folders {
        assert!(
            released.contains_key(key),
            "sdk/wit/{name} has no digest in sdk/wit/released.txt; when it is published, add `{name} {}`",
            folder_digest(&wit_dir().join(name))
        );
    }
}

#[test]
fn each_folder_holds_the_package_of_its_version() {
    for name in folders().values() {
        let dir = wit_dir().join(name);
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("wit") {
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            let package = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("package "))
                .unwrap_or_else(|| panic!("{}: no `package` line", path.display()));
            assert_eq!(package, format!("monti:plugin@{name};"), "{}", path.display());
        }
        assert!(files > 0, "sdk/wit/{name} holds no .wit files");
    }
}

/// The newest published contract is the one the host implements and the SDK builds against, and
/// every version has its golden plugin (built from the folder itself: no copies of the contract).
#[test]
fn the_host_the_sdk_and_the_golden_plugins_follow_the_folders() {
    let folders = folders();
    let (&(major, minor, _), newest) = folders.last_key_value().unwrap();
    assert_eq!(
        (major, minor),
        (
            monti_plugin_host::manifest::CONTRACT_MAJOR,
            monti_plugin_host::manifest::CONTRACT_MINOR
        ),
        "the host implements the newest contract"
    );
    let sdk = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../rust/src/lib.rs")).unwrap();
    assert!(
        sdk.contains(&format!("pub const CONTRACT_VERSION: &str = \"{newest}\";")),
        "sdk/rust/src/lib.rs builds against monti:plugin@{newest}"
    );
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden");
    for name in folders.values() {
        let dir = golden.join(format!("v{name}"));
        let source = std::fs::read_to_string(dir.join("src/lib.rs"))
            .unwrap_or_else(|e| panic!("the golden plugin of {name} ({}): {e}", dir.display()));
        assert!(
            source.contains(&format!("path: \"../../wit/{name}\"")),
            "sdk/golden/v{name} reads its contract from sdk/wit/{name}"
        );
        assert!(
            !dir.join("wit").exists(),
            "sdk/golden/v{name}/wit: a copy of the contract"
        );
    }
}

//! Installs the third-party web assets (htmx and its SSE extension) from npm, exactly as pinned
//! by `static/package-lock.json`, into OUT_DIR so the binary can embed them. Nothing
//! third-party is committed to the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

const VENDOR_FILES: &[&str] = &[
    "node_modules/htmx.org/dist/htmx.min.js",
    "node_modules/htmx-ext-sse/dist/sse.min.js",
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let static_dir = manifest_dir.join("../static");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("vendor");
    println!("cargo:rerun-if-changed=../static/package.json");
    println!("cargo:rerun-if-changed=../static/package-lock.json");
    println!("cargo:rerun-if-changed=../migrations");
    // Embedded with rust-embed: a new file must rebuild the crate too.
    println!("cargo:rerun-if-changed=../templates");
    println!("cargo:rerun-if-changed=../static/css");
    println!("cargo:rerun-if-changed=../static/js");
    println!("cargo:rerun-if-changed=../static/img");
    std::fs::create_dir_all(&out).expect("create OUT_DIR/vendor");
    let lock = std::fs::read(static_dir.join("package-lock.json")).expect("static/package-lock.json is missing");
    let stamp = out.join(".installed-lock");
    let installed = std::fs::read(&stamp).ok();
    if installed.as_deref() != Some(lock.as_slice()) || !VENDOR_FILES.iter().all(|f| out.join(f).exists()) {
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(static_dir.join(file), out.join(file)).unwrap_or_else(|e| panic!("copy {file}: {e}"));
        }
        npm_ci(&out);
        std::fs::write(&stamp, &lock).expect("write install stamp");
    }
    for file in VENDOR_FILES {
        assert!(out.join(file).exists(), "npm did not install {file}");
    }
}

fn npm_ci(dir: &Path) {
    let status = Command::new("npm")
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("`npm ci` for the web assets failed ({s}); is the npm registry reachable?"),
        Err(e) => {
            panic!("cannot run npm ({e}): Node.js and npm are needed to build Monti's web assets")
        }
    }
}

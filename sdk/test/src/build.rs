//! Builds a plugin crate for `wasm32-wasip2` from a test, once per process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::HarnessError;

/// Builds the plugin crate at `manifest_dir` (`cargo build --release --target wasm32-wasip2`)
/// and returns the path of its `.wasm`. Later calls in the same process reuse the first build.
pub fn build(manifest_dir: &Path) -> Result<PathBuf, HarnessError> {
    static BUILT: Mutex<Option<HashMap<PathBuf, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let key = manifest_dir.to_path_buf();
    if let Some(found) = built.get_or_insert_with(HashMap::new).get(&key) {
        return Ok(found.clone());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(manifest_dir.join("Cargo.toml"))
        .output()
        .map_err(|e| HarnessError::Build(format!("cannot run cargo: {e}")))?;
    if !output.status.success() {
        return Err(HarnessError::Build(format!(
            "cargo build failed (is the target installed? `rustup target add wasm32-wasip2`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let manifest_path = manifest_dir
        .join("Cargo.toml")
        .canonicalize()
        .map_err(|e| HarnessError::Build(e.to_string()))?;
    let wasm = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| {
            message["manifest_path"]
                .as_str()
                .and_then(|p| Path::new(p).canonicalize().ok())
                .is_some_and(|p| p == manifest_path)
        })
        .flat_map(|message| {
            message["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| {
            HarnessError::Build(format!(
                "{} built no .wasm (is it a `crate-type = [\"cdylib\"]` library?)",
                manifest_dir.display()
            ))
        })?;
    built.get_or_insert_with(HashMap::new).insert(key, wasm.clone());
    Ok(wasm)
}

//! Static files and templates, embedded in the binary.
//!
//! Asset URLs carry a content hash (`/static/css/app.css?v=1a2b3c4d5e`) so browsers may cache
//! them forever and still see a new version the moment the binary changes. Templates can be
//! overridden by files in `$MONTI_DATA_DIR/templates` with the same relative path.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

#[derive(rust_embed::Embed)]
#[folder = "../static"]
#[exclude = "package.json"]
#[exclude = "package-lock.json"]
#[exclude = "node_modules/*"]
struct StaticFiles;

#[derive(rust_embed::Embed)]
#[folder = "../templates"]
struct TemplateFiles;

/// Third-party files installed from npm by the build script (see build.rs).
const VENDOR: &[(&str, &[u8])] = &[
    (
        "vendor/htmx.min.js",
        include_bytes!(concat!(
            env!("OUT_DIR"),
            "/vendor/node_modules/htmx.org/dist/htmx.min.js"
        )),
    ),
    (
        "vendor/sse.min.js",
        include_bytes!(concat!(
            env!("OUT_DIR"),
            "/vendor/node_modules/htmx-ext-sse/dist/sse.min.js"
        )),
    ),
];

pub struct Asset {
    pub bytes: Cow<'static, [u8]>,
    pub content_type: &'static str,
    pub hash: String,
}

/// Every static file, by path relative to `/static/`.
pub struct Assets {
    files: HashMap<String, Asset>,
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "json" | "webmanifest" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn short_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Assets {
    pub fn load() -> Self {
        let mut files = HashMap::new();
        for path in StaticFiles::iter() {
            if let Some(file) = StaticFiles::get(&path) {
                let hash = short_hash(&file.data);
                files.insert(
                    path.to_string(),
                    Asset {
                        content_type: content_type(&path),
                        hash,
                        bytes: file.data,
                    },
                );
            }
        }
        for (path, bytes) in VENDOR {
            files.insert(
                (*path).to_owned(),
                Asset {
                    content_type: content_type(path),
                    hash: short_hash(bytes),
                    bytes: Cow::Borrowed(bytes),
                },
            );
        }
        Self { files }
    }

    pub fn get(&self, path: &str) -> Option<&Asset> {
        self.files.get(path)
    }

    /// `path` → cache-busting URL, for the template function `asset(path=…)`.
    pub fn urls(&self) -> HashMap<String, String> {
        self.files
            .iter()
            .map(|(path, a)| (path.clone(), format!("/static/{path}?v={}", a.hash)))
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {name}: {source}")]
    Parse { name: String, source: tera::Error },
    #[error("cannot read template overrides in {dir}: {source}")]
    Override { dir: String, source: std::io::Error },
}

/// Loads the embedded templates, then any overrides from `override_dir`.
pub fn templates(assets: &Assets, override_dir: Option<&Path>) -> Result<tera::Tera, TemplateError> {
    let mut sources: Vec<(String, String)> = TemplateFiles::iter()
        .filter_map(|name| {
            let file = TemplateFiles::get(&name)?;
            Some((name.to_string(), String::from_utf8_lossy(&file.data).into_owned()))
        })
        .collect();
    if let Some(dir) = override_dir.filter(|d| d.is_dir()) {
        let overrides = read_tree(dir, dir).map_err(|source| TemplateError::Override {
            dir: dir.display().to_string(),
            source,
        })?;
        for (name, text) in overrides {
            tracing::info!(template = %name, "using template override");
            sources.retain(|(n, _)| *n != name);
            sources.push((name, text));
        }
    }
    let mut tera = tera::Tera::default();
    tera.autoescape_on(vec![".html"]);
    // Tera's own `urlencode` needs its optional builtins; this is the one we use.
    tera.register_filter("urlencode", |value: &tera::Value, _: &HashMap<String, tera::Value>| {
        let text = match value {
            tera::Value::String(s) => s.clone(),
            tera::Value::Null => String::new(),
            other => other.to_string(),
        };
        Ok(tera::Value::String(
            url::form_urlencoded::byte_serialize(text.as_bytes()).collect(),
        ))
    });
    tera.add_raw_templates(sources.iter().map(|(n, t)| (n.as_str(), t.as_str())))
        .map_err(|source| TemplateError::Parse {
            name: "(set)".into(),
            source,
        })?;
    let urls = Arc::new(assets.urls());
    tera.register_function("asset", move |args: &HashMap<String, tera::Value>| {
        let path = args
            .get("path")
            .and_then(|v| v.as_str())
            .ok_or_else(|| tera::Error::msg("asset(path=…) needs a path"))?;
        urls.get(path)
            .map(|u| tera::Value::String(u.clone()))
            .ok_or_else(|| tera::Error::msg(format!("no static asset `{path}`")))
    });
    Ok(tera)
}

fn read_tree(root: &Path, dir: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(read_tree(root, &path)?);
        } else if path.extension().is_some_and(|e| e == "html") {
            let name = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            out.push((name, std::fs::read_to_string(&path)?));
        }
    }
    Ok(out)
}

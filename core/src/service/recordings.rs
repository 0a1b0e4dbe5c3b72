//! Call recordings: a tenant's source (a directory the operator allows, or an S3-compatible
//! bucket), finding a call's file by the source's pattern, and playing it through short-lived
//! signed links that answer byte ranges. Setting the source and every play are audited.
//!
//! A link is the call, the file and who asked for it, sealed with the server's key: it needs no
//! session (an `<audio>` element fetches ranges on its own) and cannot be altered or made to
//! name another file, and it stops working after `recordings.link_lifetime`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::config::RecordingsConfig;
use crate::domain::validate::Validation;
use crate::recordings::audio::{self, AudioFormat};
use crate::recordings::pattern::{CallFacts, FileName, Pattern, Rendered};
use crate::recordings::range::{self, ByteRange, RangeError};
use crate::recordings::source::{Found, Source, SourceError, SourceSpec};
use crate::store::audit::{self, AuditEvent, Origin, Outcome};
use crate::store::recording_sources::{self, SourceInput, SourceRow};
use crate::store::{Store, StoreError, TenantScope, tenants};

use super::history::CallDetail;

/// What seals playback links (and nothing else).
const LINK_CONTEXT: &str = "recording-link/v1";

/// A tenant's recording source as shown (never its secret key).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SourceView {
    /// `directory` or `s3`.
    pub kind: String,
    /// The directory, or the bucket.
    pub location: String,
    /// Names a call's file, e.g. `{year}/{month}/{day}/{call}.wav`.
    pub pattern: String,
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub prefix: String,
    pub has_secret_key: bool,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

impl From<SourceRow> for SourceView {
    fn from(row: SourceRow) -> Self {
        SourceView {
            kind: row.kind,
            location: row.location,
            pattern: row.pattern,
            endpoint: row.endpoint,
            region: row.region,
            access_key_id: row.access_key_id,
            prefix: row.prefix,
            has_secret_key: row.has_secret,
            updated_at: Utc.timestamp_millis_opt(row.updated_at).single().unwrap_or_default(),
            updated_by: row.updated_by,
        }
    }
}

/// What a tenant admin sets.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceSet {
    /// `directory` or `s3`.
    pub kind: String,
    /// A directory the operator allows (`recordings.directories`), or the bucket's name.
    pub location: String,
    /// Fields: {call} (alias {uniqueid}), {queue}, {agent}, {caller}, {destination}, and the
    /// call's start in the tenant's zone: {year}, {month}, {day}, {hour}, {minute}, {second}. One
    /// `*` may stand for any text in the file name.
    pub pattern: String,
    /// S3: the service's URL for S3-compatible stores; empty for AWS.
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub access_key_id: String,
    /// S3: left out, the stored one is kept.
    #[serde(default)]
    pub secret_key: Option<String>,
    /// S3: a folder inside the bucket.
    #[serde(default)]
    pub prefix: String,
}

/// A call's recording, ready to play.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecordingView {
    /// A link that plays it without signing in, until `expires_at`; it answers `Range`.
    pub url: String,
    pub expires_at: DateTime<Utc>,
    /// Its path inside the source.
    pub file: String,
    /// `WAV`, `MP3` or `Ogg`.
    pub format: String,
    pub content_type: String,
    pub bytes: u64,
    pub duration_s: Option<f64>,
    /// Shorter than its header says (a recording cut off); what is there plays.
    pub truncated: bool,
    /// Whether browsers play it (GSM-encoded WAV, for one, they do not).
    pub playable: bool,
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("this tenant has no recording source; a tenant admin sets one in Settings")]
    NoSource,
    #[error("no recording of this call: nothing at `{0}` in the recording source")]
    Missing(String),
    #[error("the recording pattern cannot name this call's file: {0}")]
    Unnamed(String),
    #[error("`{file}` is not a recording that can be played: {why}")]
    NotAudio { file: String, why: String },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a playback link was refused.
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    #[error("this playback link is not valid (or was made by another server key)")]
    BadLink,
    #[error("this playback link has expired; open the call again for a new one")]
    Expired,
    #[error("the recording is no longer in the recording source")]
    Gone,
    #[error("{0}")]
    Range(RangeError, u64),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A recording being played: its type, the part asked for and the bytes.
pub struct Playback {
    pub content_type: &'static str,
    pub total: u64,
    /// `None`: the whole file.
    pub range: Option<ByteRange>,
    pub body: futures_util::stream::BoxStream<'static, Result<axum::body::Bytes, std::io::Error>>,
}

/// What a playback link holds.
#[derive(Debug, Serialize, Deserialize)]
struct Link {
    tenant: String,
    call: String,
    file: String,
    actor: String,
    /// Unix ms.
    expires: i64,
    content_type: String,
}

/// The recording flows, on the running server's store and the operator's settings.
#[derive(Clone, Copy)]
pub struct Recordings<'a> {
    pub store: &'a Store,
    pub config: &'a RecordingsConfig,
    /// Whether a tenant's S3 endpoint may be plain http or a private address
    /// (`auth.tenant_providers_private`).
    pub allow_private: bool,
}

impl Recordings<'_> {
    pub async fn source(&self, scope: &TenantScope) -> Result<Option<SourceView>, StoreError> {
        Ok(recording_sources::get(self.store, scope).await?.map(SourceView::from))
    }

    /// Checks and sets the tenant's source; the audit entry leaves the secret key out.
    pub async fn set_source(
        &self,
        scope: &TenantScope,
        origin: &Origin,
        input: SourceSet,
    ) -> Result<SourceView, StoreError> {
        let before = recording_sources::get(self.store, scope).await?;
        let input = self.checked(scope, input, before.as_ref()).await?;
        let row = recording_sources::put(self.store, scope, &input).await?;
        let view = SourceView::from(row);
        let event = AuditEvent::in_tenant(scope, "recordings.source.update", Outcome::Success)
            .target("recording_source", scope.tenant_id())
            .change(
                before.map(SourceView::from).and_then(|b| serde_json::to_value(b).ok()),
                serde_json::to_value(&view).ok(),
            );
        audit::record(self.store, event, origin).await;
        Ok(view)
    }

    pub async fn remove_source(&self, scope: &TenantScope, origin: &Origin) -> Result<(), StoreError> {
        let before = recording_sources::get(self.store, scope).await?;
        if !recording_sources::delete(self.store, scope).await? {
            return Err(StoreError::NotFound {
                kind: "recording source",
            });
        }
        let event = AuditEvent::in_tenant(scope, "recordings.source.delete", Outcome::Success)
            .target("recording_source", scope.tenant_id())
            .change(
                before.map(SourceView::from).and_then(|b| serde_json::to_value(b).ok()),
                None,
            );
        audit::record(self.store, event, origin).await;
        Ok(())
    }

    async fn checked(
        &self,
        scope: &TenantScope,
        input: SourceSet,
        before: Option<&SourceRow>,
    ) -> Result<SourceInput, StoreError> {
        let mut v = Validation::new();
        if let Err(e) = Pattern::parse(input.pattern.trim()) {
            v.add("pattern", e.to_string());
        }
        let mut location = input.location.trim().to_owned();
        match input.kind.as_str() {
            "directory" => match self.allowed_directory(scope.tenant_slug(), &location) {
                Ok(dir) => location = dir.display().to_string(),
                Err(why) => v.add("location", why),
            },
            "s3" => {
                if location.is_empty()
                    || location.len() > 63
                    || !location
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
                {
                    v.add(
                        "location",
                        "must be a bucket name: 1–63 lowercase letters, digits, `-` and `.`",
                    );
                }
                let region = input.region.trim();
                if region.len() > 32
                    || !region
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                {
                    v.add("region", "must be a region name such as eu-central-1");
                }
                if input.access_key_id.trim().is_empty() {
                    v.add("access_key_id", "is required for an S3 bucket");
                }
                let keeps_secret = before.is_some_and(|b| b.kind == "s3" && b.has_secret);
                if input.secret_key.as_deref().is_none_or(|k| k.trim().is_empty()) && !keeps_secret {
                    v.add("secret_key", "is required for an S3 bucket");
                }
                if input.prefix.contains("..") || input.prefix.contains('\\') {
                    v.add("prefix", "may not go up a folder (`..`)");
                }
                if !input.endpoint.trim().is_empty()
                    && let Err(why) = self.endpoint_allowed(input.endpoint.trim()).await
                {
                    v.add("endpoint", why);
                }
            }
            _ => v.add("kind", "must be `directory` or `s3`"),
        }
        v.finish()?;
        let s3 = input.kind == "s3";
        let keep = |text: &str| if s3 { text.trim().to_owned() } else { String::new() };
        Ok(SourceInput {
            location,
            pattern: input.pattern.trim().to_owned(),
            endpoint: keep(&input.endpoint),
            region: keep(&input.region),
            access_key_id: keep(&input.access_key_id),
            prefix: keep(&input.prefix).trim_matches('/').to_owned(),
            secret_key: input.secret_key.filter(|k| s3 && !k.trim().is_empty()),
            kind: input.kind,
        })
    }

    /// The directory, resolved, when it is one the operator allows this tenant or inside one.
    /// Checked by its text before the file system is asked anything, so that a refused path
    /// says nothing about what exists outside the allowed directories.
    fn allowed_directory(&self, tenant_slug: &str, location: &str) -> Result<PathBuf, String> {
        let roots = self
            .config
            .directories
            .get(tenant_slug)
            .filter(|roots| !roots.is_empty())
            .ok_or_else(|| {
                "this server allows this tenant no recording directories (the operator lists them in \
                 `recordings.directories`); use an S3 bucket"
                    .to_owned()
            })?;
        let refused = || {
            let list: Vec<String> = roots.iter().map(|d| d.display().to_string()).collect();
            format!(
                "must be one of the directories this server allows for this tenant's recordings, or inside one: {}",
                list.join(", ")
            )
        };
        let path = Path::new(location);
        let lexically_inside = path.is_absolute()
            && !path.components().any(|c| c == std::path::Component::ParentDir)
            && roots.iter().any(|root| path.starts_with(root));
        if !lexically_inside {
            return Err(refused());
        }
        // Then as the file system resolves it (a link inside may lead out).
        let resolved = path.canonicalize().map_err(|_| refused())?;
        let inside = roots
            .iter()
            .filter_map(|d| d.canonicalize().ok())
            .any(|root| resolved.starts_with(&root));
        if !inside || !resolved.is_dir() {
            return Err(refused());
        }
        Ok(resolved)
    }

    async fn endpoint_allowed(&self, endpoint: &str) -> Result<(), String> {
        let url = url::Url::parse(endpoint).map_err(|_| format!("`{endpoint}` is not a URL"))?;
        let host = url.host_str().ok_or("the URL has no host")?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_private => {}
            _ => return Err("must be an https URL".into()),
        }
        if !self.allow_private {
            let port = url.port_or_known_default().unwrap_or(443);
            crate::net::resolves_publicly(host, port)
                .await
                .map_err(|why| format!("`{endpoint}` is not allowed: {why}"))?;
        }
        Ok(())
    }

    async fn open(&self, scope: &TenantScope) -> Result<(Source, Pattern), RecordingError> {
        let row = recording_sources::get(self.store, scope)
            .await?
            .ok_or(RecordingError::NoSource)?;
        let pattern = Pattern::parse(&row.pattern).map_err(|e| RecordingError::Unnamed(e.to_string()))?;
        let spec = match row.kind.as_str() {
            "directory" => {
                // The operator may have narrowed the allowed directories since.
                let path = self
                    .allowed_directory(scope.tenant_slug(), &row.location)
                    .map_err(SourceError::Open)?;
                SourceSpec::Directory { path }
            }
            _ => {
                if !row.endpoint.is_empty() {
                    self.endpoint_allowed(&row.endpoint).await.map_err(SourceError::Open)?;
                }
                SourceSpec::S3 {
                    bucket: row.location,
                    endpoint: row.endpoint,
                    region: row.region,
                    access_key_id: row.access_key_id,
                    secret_key: recording_sources::secret_key(self.store, scope)
                        .await?
                        .unwrap_or_default(),
                    prefix: row.prefix,
                    allow_private: self.allow_private,
                }
            }
        };
        Ok((Source::open(&spec)?, pattern))
    }

    /// The recording of `call` for someone about to play or download it: a fresh playback link,
    /// and the play in the audit log (`how` says through what).
    pub async fn play_link(
        &self,
        scope: &TenantScope,
        origin: &Origin,
        call: &CallDetail,
        how: &str,
    ) -> Result<RecordingView, RecordingError> {
        let view = self.for_call(scope, call).await?;
        let event = AuditEvent::in_tenant(scope, "recordings.play", Outcome::Success)
            .target("call", &call.call_id)
            .detail(format!("{} ({how})", view.file));
        audit::record(self.store, event, origin).await;
        Ok(view)
    }

    /// The recording of `call` (as the history shows it): what the file holds, with a fresh
    /// playback link for the scope's actor. Not audited: [`Recordings::play_link`] is, for who
    /// plays it.
    pub async fn for_call(&self, scope: &TenantScope, call: &CallDetail) -> Result<RecordingView, RecordingError> {
        let (source, pattern) = self.open(scope).await?;
        let tenant = tenants::current(self.store, scope).await?;
        let tz: Tz = tenant.timezone.parse().unwrap_or(Tz::UTC);
        let first = call
            .legs
            .iter()
            .min_by_key(|leg| leg.started_at)
            .ok_or(StoreError::NotFound { kind: "call" })?;
        let facts = CallFacts {
            call: &call.call_id,
            queue: first.queue_ref.as_deref(),
            agent: call.legs.iter().find_map(|leg| leg.agent_ref.as_deref()),
            caller: call.legs.iter().find_map(|leg| leg.caller.as_deref()),
            destination: call.legs.iter().find_map(|leg| leg.destination.as_deref()),
            started_at: first.started_at.with_timezone(&tz).fixed_offset(),
        };
        let rendered = pattern
            .render(&facts)
            .map_err(|e| RecordingError::Unnamed(e.to_string()))?;
        let looked_for = rendered.exact_path().unwrap_or_else(|| pattern.as_str().to_owned());
        let Found { path, size } = source
            .find(&rendered)
            .await?
            .ok_or(RecordingError::Missing(looked_for))?;
        let head = source.head_bytes(&path, size, audio::HEAD_BYTES as u64).await?;
        let inspection = audio::inspect(&head, size).map_err(|e| RecordingError::NotAudio {
            file: path.clone(),
            why: e.to_string(),
        })?;
        let expires = Utc::now()
            + chrono::Duration::from_std(self.config.link_lifetime).unwrap_or_else(|_| chrono::Duration::minutes(15));
        let link = Link {
            tenant: scope.tenant_id().to_owned(),
            call: call.call_id.clone(),
            file: path.clone(),
            actor: scope.actor().to_owned(),
            expires: expires.timestamp_millis(),
            content_type: inspection.format.content_type().to_owned(),
        };
        let token = self
            .store
            .secrets
            .seal(&serde_json::to_string(&link).unwrap_or_default(), LINK_CONTEXT);
        Ok(RecordingView {
            url: format!("/recordings/{token}"),
            expires_at: expires,
            file: path,
            format: inspection.format.name().to_owned(),
            content_type: inspection.format.content_type().to_owned(),
            bytes: size,
            duration_s: inspection.duration_s,
            truncated: inspection.truncated,
            playable: inspection.playable,
            note: inspection.note,
        })
    }

    /// Plays what a link names: the whole file, or the one byte range asked for. (The link was
    /// audited when it was given out; seeking asks for more ranges with it.)
    pub async fn play(&self, token: &str, range_header: Option<&str>) -> Result<Playback, PlayError> {
        let link: Link = self
            .store
            .secrets
            .open(token, LINK_CONTEXT)
            .ok()
            .and_then(|json| serde_json::from_str(&json).ok())
            .ok_or(PlayError::BadLink)?;
        if Utc::now().timestamp_millis() > link.expires {
            return Err(PlayError::Expired);
        }
        let scope = tenants::link_scope(self.store, &link.tenant, &link.actor).await?;
        let (source, _) = self.open(&scope).await.map_err(|e| match e {
            RecordingError::Source(e) => PlayError::Source(e),
            RecordingError::Store(e) => PlayError::Store(e),
            _ => PlayError::Gone,
        })?;
        let rendered = exactly(&link.file);
        let Found { size, .. } = source.find(&rendered).await?.ok_or(PlayError::Gone)?;
        let range = match range_header {
            None => None,
            Some(header) => Some(range::parse(header, size).map_err(|e| PlayError::Range(e, size))?),
        };
        let bytes = range.as_ref().map_or(0..size, |r| r.start..r.end + 1);
        let body = source.read(&link.file, bytes).await?;
        Ok(Playback {
            content_type: content_type_of(&link.content_type),
            total: size,
            range,
            body,
        })
    }
}

fn content_type_of(stored: &str) -> &'static str {
    [AudioFormat::Wav, AudioFormat::Mp3, AudioFormat::Ogg]
        .into_iter()
        .map(AudioFormat::content_type)
        .find(|t| *t == stored)
        .unwrap_or("application/octet-stream")
}

/// The file a link names, as a rendered pattern.
fn exactly(file: &str) -> Rendered {
    let (directory, name) = file.rsplit_once('/').unwrap_or(("", file));
    Rendered {
        directory: directory.to_owned(),
        file: FileName::Exact(name.to_owned()),
    }
}

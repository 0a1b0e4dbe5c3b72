//! Where recordings are read: a directory or an S3-compatible bucket, both through
//! `object_store`, so that finding a call's file and reading a byte range of it are one code path.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore};

use super::pattern::Rendered;

/// A source as configured, its secret key opened.
#[derive(Clone)]
pub enum SourceSpec {
    Directory {
        path: PathBuf,
    },
    S3 {
        bucket: String,
        /// Empty for AWS itself.
        endpoint: String,
        region: String,
        access_key_id: String,
        secret_key: String,
        /// A folder inside the bucket, `""` for its top.
        prefix: String,
        /// Whether the service may be on a private or local address (the operator's
        /// `auth.tenant_providers_private`).
        allow_private: bool,
    },
}

/// What went wrong with a source. The messages people see stay general (a bucket's answer can
/// hold anything); the detail is for the server's log (`{:?}`).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("the recording source cannot be opened (the server's log has the details)")]
    Open(String),
    #[error("the recording source does not answer (the server's log has the details)")]
    Unreachable(String),
}

/// The HTTP client a bucket is read with: no redirects (a bucket's answer cannot send the
/// server elsewhere), and unless the operator allows private networks, only public addresses
/// (whatever a host name resolves to when it is connected to, not only when it was checked).
#[derive(Debug)]
struct Guarded {
    allow_private: bool,
}

impl object_store::client::HttpConnector for Guarded {
    fn connect(&self, _: &object_store::ClientOptions) -> object_store::Result<object_store::client::HttpClient> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3));
        if !self.allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        let client = builder.build().map_err(|e| object_store::Error::Generic {
            store: "S3",
            source: Box::new(e),
        })?;
        Ok(object_store::client::HttpClient::new(client))
    }
}

/// Resolves host names to their public addresses only.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let public: Vec<std::net::SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| crate::net::is_public(a.ip()))
                .collect();
            if public.is_empty() {
                return Err("the host resolves to no public address".into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// A recording found in a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its path inside the source (what a playback link names).
    pub path: String,
    pub size: u64,
}

/// An opened source.
pub struct Source {
    objects: Arc<dyn ObjectStore>,
    prefix: Option<ObjectPath>,
}

fn unreachable(e: object_store::Error) -> SourceError {
    SourceError::Unreachable(e.to_string())
}

impl Source {
    pub fn open(spec: &SourceSpec) -> Result<Source, SourceError> {
        match spec {
            SourceSpec::Directory { path } => {
                let local = object_store::local::LocalFileSystem::new_with_prefix(path)
                    .map_err(|e| SourceError::Open(e.to_string()))?;
                Ok(Source {
                    objects: Arc::new(local),
                    prefix: None,
                })
            }
            SourceSpec::S3 {
                bucket,
                endpoint,
                region,
                access_key_id,
                secret_key,
                prefix,
                allow_private,
            } => {
                let mut builder = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(if region.is_empty() { "us-east-1" } else { region })
                    .with_access_key_id(access_key_id)
                    .with_secret_access_key(secret_key)
                    // A player waits on these: fail within seconds rather than retry for minutes.
                    .with_retry(object_store::RetryConfig {
                        max_retries: 2,
                        retry_timeout: Duration::from_secs(10),
                        ..object_store::RetryConfig::default()
                    })
                    .with_http_connector(Guarded {
                        allow_private: *allow_private,
                    });
                if !endpoint.is_empty() {
                    // S3-compatible services (MinIO, Ceph, …) are addressed by path, and may be
                    // plain http on a private network the operator allowed.
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                let s3 = builder.build().map_err(|e| SourceError::Open(e.to_string()))?;
                let prefix = prefix.trim_matches('/');
                Ok(Source {
                    objects: Arc::new(s3),
                    prefix: (!prefix.is_empty())
                        .then(|| ObjectPath::parse(prefix))
                        .transpose()
                        .map_err(|e| SourceError::Open(e.to_string()))?,
                })
            }
        }
    }

    fn path(&self, relative: &str) -> Result<ObjectPath, SourceError> {
        let joined = match &self.prefix {
            Some(prefix) if relative.is_empty() => return Ok(prefix.clone()),
            Some(prefix) => format!("{prefix}/{relative}"),
            None => relative.to_owned(),
        };
        ObjectPath::parse(joined).map_err(|e| SourceError::Open(e.to_string()))
    }

    fn relative(&self, path: &ObjectPath) -> String {
        let full = path.to_string();
        match &self.prefix {
            Some(prefix) => full
                .strip_prefix(prefix.to_string().as_str())
                .map(|rest| rest.trim_start_matches('/').to_owned())
                .unwrap_or_else(|| full.clone()),
            None => full,
        }
    }

    /// The file `rendered` names: the exact one, or for a wildcard the first match (by name)
    /// in its directory. `None` when there is none.
    pub async fn find(&self, rendered: &Rendered) -> Result<Option<Found>, SourceError> {
        if let Some(exact) = rendered.exact_path() {
            return match self.objects.head(&self.path(&exact)?).await {
                Ok(meta) => Ok(Some(Found {
                    path: exact,
                    size: meta.size,
                })),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(unreachable(e)),
            };
        }
        let dir = Some(self.path(&rendered.directory)?).filter(|d| !d.to_string().is_empty());
        let listing = match self.objects.list_with_delimiter(dir.as_ref()).await {
            Ok(listing) => listing,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(unreachable(e)),
        };
        let mut matches: Vec<Found> = listing
            .objects
            .into_iter()
            .filter(|meta| meta.location.filename().is_some_and(|name| rendered.matches(name)))
            .map(|meta| Found {
                path: self.relative(&meta.location),
                size: meta.size,
            })
            .collect();
        matches.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(matches.into_iter().next())
    }

    /// The bytes `range` of the file at `path`, as they are read.
    pub async fn read(
        &self,
        path: &str,
        range: Range<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, std::io::Error>>, SourceError> {
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        let got = self
            .objects
            .get_opts(&self.path(path)?, options)
            .await
            .map_err(unreachable)?;
        Ok(got
            .into_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other))
            .boxed())
    }

    /// Up to the first `n` bytes of the file at `path` of `size` bytes.
    pub async fn head_bytes(&self, path: &str, size: u64, n: u64) -> Result<Bytes, SourceError> {
        if size == 0 {
            return Ok(Bytes::new());
        }
        let mut stream = self.read(path, 0..size.min(n)).await?;
        let mut head = Vec::new();
        while let Some(chunk) = stream.next().await {
            head.extend_from_slice(&chunk.map_err(|e| SourceError::Unreachable(e.to_string()))?);
        }
        Ok(Bytes::from(head))
    }
}

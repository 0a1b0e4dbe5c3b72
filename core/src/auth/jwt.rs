//! JWT access tokens for machine clients, issued by an identity provider the operator trusts
//! (`[auth.jwt.<id>]`): verified with `jsonwebtoken` against the issuer's JWKS, which is read
//! again when a token names a key we do not have yet (rotation). Only asymmetric algorithms
//! are accepted, so `alg: none` and HS/RS confusion fail; issuer, audience and expiry are
//! required.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::claims::{self, RoleMapping};
use super::{AuthError, Principal};
use crate::config::{Config, JwtIssuerConfig};
use crate::store::{Store, tenants};

const KEYS_TTL: Duration = Duration::from_secs(3600);
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

struct Issuer {
    id: String,
    config: JwtIssuerConfig,
    mapping: RoleMapping,
}

#[derive(Clone)]
struct CachedKeys {
    keys: JwkSet,
    fetched: Instant,
}

/// The configured issuers and their keys.
pub struct JwtVerifier {
    issuers: Vec<Issuer>,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, CachedKeys>>,
    /// Keys are re-read on an unknown key id at most this often per issuer.
    refresh_interval: Duration,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuers", &self.issuers.iter().map(|i| &i.id).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Whether a bearer token looks like a JWT (three base64url parts) rather than an API token.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && !token.starts_with("monti_")
}

impl JwtVerifier {
    pub fn new(config: &Config) -> Self {
        let issuers = config
            .auth
            .jwt
            .iter()
            .map(|(id, issuer)| {
                let claim = if issuer.roles_claim.is_empty() {
                    "scope"
                } else {
                    &issuer.roles_claim
                };
                Issuer {
                    id: id.clone(),
                    mapping: RoleMapping::from_config(claim, &issuer.role_map, issuer.default_role.as_deref()),
                    config: issuer.clone(),
                }
            })
            .collect();
        let http = super::provider_client();
        Self {
            issuers,
            http,
            keys: RwLock::new(HashMap::new()),
            refresh_interval: config.auth.key_refresh_interval,
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.issuers.is_empty()
    }

    async fn jwks_url(&self, issuer: &Issuer) -> Result<String, AuthError> {
        if let Some(url) = &issuer.config.jwks_url {
            return Ok(url.clone());
        }
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            issuer.config.issuer.trim_end_matches('/')
        );
        let doc: Value = self.fetch_json(&discovery).await?;
        doc.get("jwks_uri")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(AuthError::IssuerUnavailable)
    }

    async fn fetch_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, AuthError> {
        let response = self.http.get(url).send().await.map_err(|e| {
            tracing::warn!(url, error = %e, "cannot reach the token issuer");
            AuthError::IssuerUnavailable
        })?;
        if !response.status().is_success() {
            tracing::warn!(url, status = %response.status(), "the token issuer answered with an error");
            return Err(AuthError::IssuerUnavailable);
        }
        response.json::<T>().await.map_err(|e| {
            tracing::warn!(url, error = %e, "the token issuer sent something that is not a key set");
            AuthError::IssuerUnavailable
        })
    }

    async fn keys(&self, issuer: &Issuer, refresh: bool) -> Result<JwkSet, AuthError> {
        let cached = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&issuer.id)
            .cloned();
        if let Some(c) = &cached {
            let age = c.fetched.elapsed();
            if (!refresh && age < KEYS_TTL) || (refresh && age < self.refresh_interval) {
                return Ok(c.keys.clone());
            }
        }
        let url = self.jwks_url(issuer).await?;
        let keys: JwkSet = self.fetch_json(&url).await?;
        self.keys.write().unwrap_or_else(|e| e.into_inner()).insert(
            issuer.id.clone(),
            CachedKeys {
                keys: keys.clone(),
                fetched: Instant::now(),
            },
        );
        Ok(keys)
    }

    /// Verifies a JWT access token and returns the principal it speaks for.
    pub async fn authenticate(&self, store: &Store, token: &str) -> Result<Principal, AuthError> {
        let invalid = |why: &str| AuthError::Invalid(why.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("not a well-formed JWT"))?;
        if !ASYMMETRIC.contains(&header.alg) {
            return Err(invalid("the signature algorithm is not accepted"));
        }
        // The issuer decides which keys to check against; it is verified again below.
        let unverified =
            jsonwebtoken::dangerous::insecure_decode::<Value>(token).map_err(|_| invalid("unreadable claims"))?;
        let iss = unverified.claims.get("iss").and_then(Value::as_str).unwrap_or_default();
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer.trim_end_matches('/') == iss.trim_end_matches('/'))
            .ok_or_else(|| invalid("the issuer is not trusted"))?;
        let claims = match self.verify(issuer, &header, token, false).await {
            Err(AuthError::Invalid(why)) if why == "unknown signing key" => {
                self.verify(issuer, &header, token, true).await?
            }
            other => other?,
        };
        let subject = claims.get("sub").and_then(Value::as_str).unwrap_or("unknown");
        let tenant_slug = match (&issuer.config.tenant, &issuer.config.tenant_claim) {
            (Some(slug), _) => Some(slug.clone()),
            (None, Some(claim)) => claims::lookup(&claims, claim)
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
        let tenant = match tenant_slug {
            Some(slug) => tenants::by_slug(store, &slug).await?,
            None => None,
        }
        .ok_or_else(|| invalid("the token names no tenant here"))?;
        if tenant.suspended_at.is_some() {
            return Err(AuthError::Suspended);
        }
        let role = issuer
            .mapping
            .apply(&claims)
            .tenant_role
            .ok_or_else(|| invalid("the token grants no role"))?;
        let actor = format!("jwt:{}:{subject}", issuer.id);
        Ok(Principal::Tenant(crate::store::TenantScope::verified(
            tenant.id,
            tenant.slug,
            role,
            actor,
        )))
    }

    async fn verify(
        &self,
        issuer: &Issuer,
        header: &jsonwebtoken::Header,
        token: &str,
        refresh: bool,
    ) -> Result<Value, AuthError> {
        let keys = self.keys(issuer, refresh).await?;
        let jwk = match &header.kid {
            Some(kid) => keys.find(kid),
            None if keys.keys.len() == 1 => keys.keys.first(),
            None => None,
        }
        .ok_or_else(|| AuthError::Invalid("unknown signing key".into()))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|_| AuthError::Invalid("unusable signing key".into()))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[&issuer.config.issuer]);
        validation.set_audience(&issuer.config.audience);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }
}

//! OpenID Connect single sign-on: authorization code flow with PKCE, state and nonce, against any
//! number of providers found by discovery. ID tokens are checked by `openidconnect` (issuer,
//! audience, expiry, nonce, signature against the provider's JWKS); only asymmetric signature
//! algorithms are accepted, so `alg: none` and HS/RS confusion fail. Keys are re-read when a token
//! is signed with one we do not know yet (key rotation).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJwsSigningAlgorithm};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::claims::RoleMapping;
use crate::config::{Config, OidcProviderConfig};
use crate::secrets::SecretBox;

/// How long discovered metadata (endpoints and keys) is trusted before it is read again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// A sign-in must come back from the provider within this time.
pub const FLOW_LIFETIME: Duration = Duration::from_secs(600);

/// Signature algorithms accepted for ID tokens: asymmetric only.
const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 10] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EcdsaP521Sha512,
    CoreJwsSigningAlgorithm::EdDsa,
];

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("no sign-in provider `{0}` is configured")]
    UnknownProvider(String),
    #[error("the sign-in provider cannot be reached or answered with something unusable: {0}")]
    Unavailable(String),
    #[error("the sign-in attempt is not valid: {0}")]
    InvalidFlow(&'static str),
    #[error("the provider refused the sign-in: {0}")]
    Refused(String),
    #[error("the ID token is not valid: {0}")]
    InvalidToken(String),
}

/// One configured provider, with its role mapping.
#[derive(Debug, Clone)]
pub struct Provider {
    pub id: String,
    pub config: OidcProviderConfig,
    pub mapping: RoleMapping,
    /// Set for providers a tenant's admins configured: they may only sign in people who belong
    /// to that tenant alone, and never touch installation-level rights.
    pub tenant_scoped: bool,
    /// What linked identities are stored under: bound to this provider's configuration and
    /// issuer, so a re-pointed or re-created provider id matches no earlier identity.
    pub identity_key: String,
}

/// What the browser carries between the redirect to the provider and the callback, sealed so
/// it can be neither read nor forged.
#[derive(Debug, Serialize, Deserialize)]
pub struct FlowState {
    pub provider: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub next: String,
    /// Unix milliseconds.
    pub started_at: i64,
}

/// A verified sign-in: the provider's claims about the person.
#[derive(Debug, Clone)]
pub struct VerifiedIdentity {
    pub subject: String,
    pub claims: Value,
    /// The raw ID token, kept (encrypted) for `id_token_hint` at sign-out.
    pub id_token: String,
}

#[derive(Clone)]
struct CachedMetadata {
    metadata: Arc<ProviderMetadataWithLogout>,
    fetched: Instant,
}

/// The configured providers and what was discovered about them.
pub struct OidcRegistry {
    providers: BTreeMap<String, Provider>,
    http: reqwest::Client,
    public_url: String,
    metadata: RwLock<HashMap<String, CachedMetadata>>,
    /// Keys are re-read on an unknown key at most this often per provider.
    refresh_interval: Duration,
    /// Whether tenants' providers may live on private addresses (tests, closed networks).
    tenant_providers_private: bool,
    /// States already used for a callback (per instance): a replayed callback fails even when
    /// the browser still sends the flow cookie.
    used_states: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for OidcRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcRegistry")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl OidcRegistry {
    pub fn new(config: &Config) -> Self {
        let providers = config
            .auth
            .oidc
            .iter()
            .map(|(id, provider)| {
                let provider = provider.clone().normalized(id);
                let mapping = RoleMapping::from_config(
                    &provider.roles_claim,
                    &provider.role_map,
                    provider.default_role.as_deref(),
                );
                (
                    id.clone(),
                    Provider {
                        identity_key: format!("config:{id}:{}", provider.issuer),
                        id: id.clone(),
                        config: provider,
                        mapping,
                        tenant_scoped: false,
                    },
                )
            })
            .collect();
        let http = super::provider_client();
        Self {
            providers,
            http,
            public_url: config.public_url(),
            metadata: RwLock::new(HashMap::new()),
            refresh_interval: config.auth.key_refresh_interval,
            tenant_providers_private: config.auth.tenant_providers_private,
            used_states: Mutex::new(HashMap::new()),
        }
    }

    /// `(id, button text)` of every provider, for the sign-in page.
    pub fn providers(&self) -> Vec<(String, String)> {
        self.providers
            .values()
            .map(|p| (p.id.clone(), p.config.display_name.clone()))
            .collect()
    }

    /// The ids of the installation-wide providers (tenants cannot reuse them).
    pub fn configured_ids(&self) -> Vec<String> {
        self.providers.keys().cloned().collect()
    }

    /// A provider by id: installation-wide ones from the configuration, then the enabled ones
    /// tenants configured (which sign people in to their own tenant, with tenant roles only).
    pub async fn provider(&self, store: &crate::store::Store, id: &str) -> Result<Provider, OidcError> {
        if let Some(p) = self.providers.get(id) {
            return Ok(p.clone());
        }
        let unknown = || OidcError::UnknownProvider(id.to_owned());
        let (row, tenant_slug) = crate::store::oidc_providers::enabled_by_slug(store, id)
            .await
            .map_err(|e| OidcError::Unavailable(format!("cannot read the sign-in providers: {e}")))?
            .ok_or_else(unknown)?;
        let mut mapping = RoleMapping::from_config(&row.roles_claim, &row.role_map.0, row.default_role.as_deref());
        // Defence in depth: a tenant's provider never makes anyone a platform admin.
        mapping
            .map
            .retain(|_, role| *role != crate::domain::Role::PlatformAdmin);
        let config = OidcProviderConfig {
            display_name: row.display_name.clone(),
            issuer: row.issuer.clone(),
            client_id: row.client_id.clone(),
            client_secret: crate::store::oidc_providers::client_secret(store, &row).map(crate::config::Secret::new),
            scopes: row.scopes.0.clone(),
            tenant: Some(tenant_slug),
            roles_claim: row.roles_claim.clone(),
            role_map: row.role_map.0.clone(),
            default_role: row.default_role.clone(),
            ..Default::default()
        }
        .normalized(id);
        Ok(Provider {
            id: id.to_owned(),
            identity_key: format!("tenant:{}:{}", row.id, config.issuer),
            config,
            mapping,
            tenant_scoped: true,
        })
    }

    pub fn redirect_uri(&self, id: &str) -> String {
        format!("{}/auth/oidc/{id}/callback", self.public_url)
    }

    async fn metadata(&self, provider: &Provider, refresh: bool) -> Result<Arc<ProviderMetadataWithLogout>, OidcError> {
        // Keyed by issuer too: an admin may point a provider somewhere else.
        let key = format!("{}|{}", provider.id, provider.config.issuer);
        let cached = self
            .metadata
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(c) = &cached {
            let fresh = c.fetched.elapsed() < METADATA_TTL;
            let recently = c.fetched.elapsed() < self.refresh_interval;
            if (fresh && !refresh) || (refresh && recently) {
                return Ok(c.metadata.clone());
            }
        }
        let issuer = IssuerUrl::new(provider.config.issuer.clone())
            .map_err(|e| OidcError::Unavailable(format!("issuer URL: {e}")))?;
        if provider.tenant_scoped && !self.tenant_providers_private {
            reachable_publicly(&provider.config.issuer).await?;
        }
        let discovered = ProviderMetadataWithLogout::discover_async(issuer, &self.http).await;
        match discovered {
            Ok(metadata) => {
                if provider.tenant_scoped && !self.tenant_providers_private {
                    // The discovery document names more addresses we will call or send people to.
                    let mut urls = vec![metadata.jwks_uri().url().to_string()];
                    urls.extend(metadata.token_endpoint().map(|u| u.url().to_string()));
                    urls.extend(metadata.userinfo_endpoint().map(|u| u.url().to_string()));
                    urls.extend(
                        metadata
                            .additional_metadata()
                            .end_session_endpoint
                            .as_ref()
                            .map(|u| u.url().to_string()),
                    );
                    for url in urls {
                        reachable_publicly(&url).await?;
                    }
                }
                let metadata = Arc::new(metadata);
                self.metadata.write().unwrap_or_else(|e| e.into_inner()).insert(
                    key,
                    CachedMetadata {
                        metadata: metadata.clone(),
                        fetched: Instant::now(),
                    },
                );
                Ok(metadata)
            }
            Err(e) => {
                let message = with_sources(&e);
                tracing::warn!(provider = %provider.id, error = %message, "OpenID discovery failed");
                Err(OidcError::Unavailable(message))
            }
        }
    }

    fn client(
        &self,
        provider: &Provider,
        metadata: &ProviderMetadataWithLogout,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        OidcError,
    > {
        let redirect = RedirectUrl::new(self.redirect_uri(&provider.id))
            .map_err(|e| OidcError::Unavailable(format!("redirect URL: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(provider.config.client_id.clone()),
            provider
                .config
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose().to_owned())),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a sign-in: the URL to send the browser to, and the state to seal in its cookie.
    pub async fn begin(
        &self,
        store: &crate::store::Store,
        provider_id: &str,
        next: &str,
    ) -> Result<(String, FlowState), OidcError> {
        let provider = self.provider(store, provider_id).await?;
        let metadata = self.metadata(&provider, false).await?;
        let client = self.client(&provider, &metadata)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &provider.config.scopes {
            if scope != "openid" {
                request = request.add_scope(Scope::new(scope.clone()));
            }
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok((
            url.to_string(),
            FlowState {
                provider: provider_id.to_owned(),
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                next: next.to_owned(),
                started_at: crate::domain::time::now_ms(),
            },
        ))
    }

    /// Completes a sign-in: checks the returned state against the flow, redeems the code and
    /// verifies the ID token.
    pub async fn finish(
        &self,
        store: &crate::store::Store,
        provider_id: &str,
        flow: &FlowState,
        returned_state: &str,
        code: &str,
    ) -> Result<VerifiedIdentity, OidcError> {
        if flow.provider != provider_id {
            return Err(OidcError::InvalidFlow("the callback is for a different provider"));
        }
        if !crate::secrets::constant_time_eq(&flow.state, returned_state) {
            return Err(OidcError::InvalidFlow(
                "the state does not match this browser's sign-in",
            ));
        }
        let age = crate::domain::time::now_ms() - flow.started_at;
        if age < 0 || age > FLOW_LIFETIME.as_millis() as i64 {
            return Err(OidcError::InvalidFlow("the sign-in took too long; start again"));
        }
        if !self.mark_state_used(&flow.state) {
            return Err(OidcError::InvalidFlow("this sign-in response was already used"));
        }
        let provider = self.provider(store, provider_id).await?;
        let metadata = self.metadata(&provider, false).await?;
        let client = self.client(&provider, &metadata)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Unavailable(format!("no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(r) => OidcError::Refused(r.to_string()),
                other => OidcError::Unavailable(with_sources(&other)),
            })?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::InvalidToken("the provider sent no ID token".into()))?
            .clone();
        let nonce = Nonce::new(flow.nonce.clone());
        let subject = match verify(&client, &id_token, &nonce) {
            Ok(subject) => subject,
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) => {
                // Perhaps the provider rotated its keys: read them again once and retry.
                let metadata = self.metadata(&provider, true).await?;
                let client = self.client(&provider, &metadata)?;
                verify(&client, &id_token, &nonce).map_err(|e| OidcError::InvalidToken(e.to_string()))?
            }
            Err(e) => return Err(OidcError::InvalidToken(e.to_string())),
        };
        let raw = id_token.to_string();
        let mut claims = payload(&raw).ok_or_else(|| OidcError::InvalidToken("unreadable claims".into()))?;
        if provider.config.use_userinfo
            && let Some(url) = metadata.userinfo_endpoint()
        {
            let extra = self
                .userinfo(url.url().as_str(), response.access_token().secret())
                .await?;
            if extra.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
                return Err(OidcError::InvalidToken("userinfo is about someone else".into()));
            }
            merge(&mut claims, extra);
        }
        Ok(VerifiedIdentity {
            subject,
            claims,
            id_token: raw,
        })
    }

    async fn userinfo(&self, url: &str, access_token: &str) -> Result<Value, OidcError> {
        let response = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|e| OidcError::Unavailable(format!("userinfo: {e}")))?;
        if !response.status().is_success() {
            return Err(OidcError::Unavailable(format!(
                "userinfo answered {}",
                response.status()
            )));
        }
        response
            .json::<Value>()
            .await
            .map_err(|e| OidcError::Unavailable(format!("userinfo: {e}")))
    }

    fn mark_state_used(&self, state: &str) -> bool {
        let mut used = self.used_states.lock().unwrap_or_else(|e| e.into_inner());
        used.retain(|_, at| at.elapsed() < FLOW_LIFETIME);
        used.insert(state.to_owned(), Instant::now()).is_none()
    }

    /// Where to send the browser to sign out at the provider too (RP-initiated logout), if the
    /// provider supports it.
    pub async fn end_session_url(
        &self,
        store: &crate::store::Store,
        provider_id: &str,
        id_token: Option<&str>,
    ) -> Option<String> {
        let provider = self.provider(store, provider_id).await.ok()?;
        let metadata = self.metadata(&provider, false).await.ok()?;
        let endpoint = metadata.additional_metadata().end_session_endpoint.clone()?;
        // A tenant's provider may only send people to its own host at sign-out.
        if provider.tenant_scoped {
            let issuer_host = url::Url::parse(&provider.config.issuer).ok()?.host_str()?.to_owned();
            if endpoint.url().host_str() != Some(issuer_host.as_str()) {
                return None;
            }
        }
        let mut request = openidconnect::LogoutRequest::from(endpoint)
            .set_client_id(ClientId::new(provider.config.client_id.clone()));
        if let Ok(uri) = PostLogoutRedirectUrl::new(format!("{}/login?notice=login.signed_out", self.public_url)) {
            request = request.set_post_logout_redirect_uri(uri);
        }
        if let Some(token) = id_token.and_then(|t| t.parse::<CoreIdToken>().ok()) {
            request = request.set_id_token_hint(&token);
        }
        Some(request.http_get_url().to_string())
    }

    /// Sign-out target for a session: the provider's end-session URL for SSO sessions.
    pub async fn logout_url(
        &self,
        store: &crate::store::Store,
        session: &crate::store::sessions::Session,
    ) -> Option<String> {
        let provider = session.oidc_provider.as_deref()?;
        let id_token = session.id_token_enc.as_deref().and_then(|sealed| {
            store
                .secrets
                .open(sealed, &crate::store::sessions::id_token_context(&session.user_id))
                .ok()
        });
        self.end_session_url(store, provider, id_token.as_deref()).await
    }
}

fn verify(
    client: &CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    id_token: &CoreIdToken,
    nonce: &Nonce,
) -> Result<String, openidconnect::ClaimsVerificationError> {
    let verifier = client.id_token_verifier().set_allowed_algs(ALLOWED_ALGS);
    let claims = id_token.claims(&verifier, nonce)?;
    Ok(claims.subject().as_str().to_owned())
}

/// Refuses URLs that are not https or whose host resolves to a loopback, private, link-local,
/// shared or otherwise non-public address, so a provider configured by a tenant cannot make the
/// server call into its own network.
pub async fn reachable_publicly(url: &str) -> Result<(), OidcError> {
    let refuse = |why: &str| OidcError::Unavailable(format!("{url} is not allowed for a tenant's provider: {why}"));
    let parsed = url::Url::parse(url).map_err(|_| refuse("not a URL"))?;
    if parsed.scheme() != "https" {
        return Err(refuse("it must use https"));
    }
    let host = parsed.host_str().ok_or_else(|| refuse("it has no host"))?;
    let port = parsed.port_or_known_default().unwrap_or(443);
    crate::net::resolves_publicly(host, port).await.map_err(refuse)
}

/// An error with its causes, for messages that must say what actually went wrong.
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The claims of a JWT whose signature was already verified.
fn payload(jwt: &str) -> Option<Value> {
    let part = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        for (k, v) in from {
            into.entry(k).or_insert(v);
        }
    }
}

/// Seals a flow into a cookie value.
pub fn seal_flow(secrets: &SecretBox, flow: &FlowState) -> String {
    secrets.seal(&serde_json::to_string(flow).unwrap_or_default(), "oidc-flow")
}

/// Opens a flow cookie; `None` when it was tampered with or is not ours.
pub fn open_flow(secrets: &SecretBox, sealed: &str) -> Option<FlowState> {
    serde_json::from_str(&secrets.open(sealed, "oidc-flow").ok()?).ok()
}

/// What an email claim is worth: only a verified address may link to an existing account.
pub fn verified_email(claims: &Value, email_claim: &str) -> (Option<String>, bool) {
    let email = super::claims::lookup(claims, email_claim)
        .and_then(Value::as_str)
        .map(str::to_owned);
    let verified = claims
        .get("email_verified")
        .is_some_and(|v| v == &Value::Bool(true) || v == "true");
    (email, verified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!crate::net::is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "8.8.8.8", "2606:4700::1111"] {
            assert!(crate::net::is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn tenant_provider_urls_must_be_https_and_public() {
        assert!(reachable_publicly("http://example.com/").await.is_err());
        assert!(reachable_publicly("https://127.0.0.1/").await.is_err());
        assert!(reachable_publicly("https://169.254.169.254/latest").await.is_err());
        assert!(reachable_publicly("https://localhost/").await.is_err());
        assert!(reachable_publicly("not a url").await.is_err());
    }
}

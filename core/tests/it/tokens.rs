//! Attacks on sign-in and machine tokens, against a mock identity provider that mints whatever
//! a test asks for: tampered and replayed state, wrong nonce, expired, foreign and unsigned
//! tokens, HS/RS confusion, unknown and rotated keys, a key endpoint that is down or returns
//! garbage. Each gets a clear answer and an audit entry; none gets data.

use crate::common;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Backend, TestServer, Visitor};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use monti::config::{JwtIssuerConfig, OidcProviderConfig, Secret};
use monti::domain::Role;
use serde_json::{Value, json};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys");

fn key_file(name: &str) -> String {
    std::fs::read_to_string(format!("{KEYS}/{name}")).unwrap()
}

#[derive(Clone, Copy, PartialEq)]
enum KeysMode {
    Serve,
    Down,
    Garbage,
}

struct Mock {
    base: String,
    /// Which keys the JWKS endpoint publishes.
    published: Vec<&'static str>,
    keys_mode: KeysMode,
    next_id_token: Option<String>,
}

type Shared = Arc<Mutex<Mock>>;

async fn discovery(State(m): State<Shared>) -> Response {
    let base = m.lock().unwrap().base.clone();
    axum::Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "HS256"],
    }))
    .into_response()
}

async fn jwks(State(m): State<Shared>) -> Response {
    let (mode, published) = {
        let m = m.lock().unwrap();
        (m.keys_mode, m.published.clone())
    };
    match mode {
        KeysMode::Down => axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
        KeysMode::Garbage => "<html>this is not a key set</html>".into_response(),
        KeysMode::Serve => {
            let keys: Vec<Value> = published
                .iter()
                .map(|k| serde_json::from_str(&key_file(&format!("{k}.jwk.json"))).unwrap())
                .collect();
            axum::Json(json!({ "keys": keys })).into_response()
        }
    }
}

async fn token(State(m): State<Shared>) -> Response {
    let id_token = m.lock().unwrap().next_id_token.clone().unwrap_or_default();
    axum::Json(json!({ "access_token": "opaque", "token_type": "Bearer", "expires_in": 300, "id_token": id_token }))
        .into_response()
}

async fn start_mock() -> Shared {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shared = Arc::new(Mutex::new(Mock {
        base,
        published: vec!["rsa1"],
        keys_mode: KeysMode::Serve,
        next_id_token: None,
    }));
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .with_state(shared.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    shared
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sign(kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    let key = EncodingKey::from_rsa_pem(key_file(&format!("{kid}.pem")).as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("{header}.{body}.")
}

/// Signed with HMAC, using the public key (or the client secret) as the shared secret.
fn hmac_signed(secret: &[u8], claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa1".into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// Makes an ID token for a flow's nonce.
type TokenMaker<'a> = Box<dyn Fn(&str) -> String + 'a>;

fn oidc_config(issuer: &str) -> OidcProviderConfig {
    OidcProviderConfig {
        display_name: "Mock".into(),
        issuer: issuer.into(),
        client_id: "monti".into(),
        client_secret: Some(Secret::new("client-secret")),
        tenant: Some("acme".into()),
        roles_claim: "groups".into(),
        role_map: [("admins".to_owned(), "tenant_admin".to_owned())].into_iter().collect(),
        ..Default::default()
    }
}

/// Starts a sign-in; returns (state, nonce) from the redirect to the provider.
async fn begin(v: &mut Visitor, server: &TestServer) -> (String, String) {
    let start = v.get("/auth/oidc/mock/start").await;
    assert_eq!(start.status, 303, "{}", start.body);
    let location = start.location.unwrap();
    let url = url::Url::parse(&location).unwrap();
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    assert_eq!(
        param("redirect_uri"),
        format!("{}/auth/oidc/mock/callback", server.base),
        "always the registered redirect URI"
    );
    assert_eq!(param("code_challenge_method"), "S256", "PKCE");
    (param("state"), param("nonce"))
}

fn id_claims(issuer: &str, nonce: &str) -> Value {
    json!({
        "iss": issuer, "aud": "monti", "sub": "u-1", "iat": now(), "exp": now() + 300, "nonce": nonce,
        "email": "ida@example.com", "email_verified": true, "name": "Ida", "groups": ["admins"],
    })
}

async fn callback(v: &mut Visitor, state: &str) -> common::Seen {
    v.get(&format!(
        "/auth/oidc/mock/callback?code=c0de&state={}",
        common_encode(state)
    ))
    .await
}

fn common_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_token_attacks_are_refused() {
    let mock = start_mock().await;
    let issuer = mock.lock().unwrap().base.clone();
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.auth.oidc.insert("mock".into(), oidc_config(&issuer));
        c.auth.key_refresh_interval = std::time::Duration::from_millis(200);
    })
    .await
    .unwrap();
    s.tenant("acme", Role::Viewer).await;
    let set = |token: String| mock.lock().unwrap().next_id_token = Some(token);

    // Each attack on a fresh sign-in; each must fail without a session.
    let cases: Vec<(&str, TokenMaker<'_>, u16)> = vec![
        (
            "expired",
            Box::new(|n: &str| {
                let mut c = id_claims(&issuer, n);
                c["exp"] = json!(now() - 600);
                c["iat"] = json!(now() - 900);
                sign("rsa1", &c)
            }),
            401,
        ),
        (
            "foreign issuer",
            Box::new(|n: &str| {
                let mut c = id_claims(&issuer, n);
                c["iss"] = json!("https://evil.example");
                sign("rsa1", &c)
            }),
            401,
        ),
        (
            "other audience",
            Box::new(|n: &str| {
                let mut c = id_claims(&issuer, n);
                c["aud"] = json!("someone-else");
                sign("rsa1", &c)
            }),
            401,
        ),
        (
            "wrong nonce",
            Box::new(|_n: &str| sign("rsa1", &id_claims(&issuer, "replayed-nonce"))),
            401,
        ),
        (
            "unsigned (alg none)",
            Box::new(|n: &str| unsigned(&id_claims(&issuer, n))),
            401,
        ),
        (
            "HS256 with the public key as secret",
            Box::new(|n: &str| hmac_signed(key_file("rsa1.pub.pem").as_bytes(), &id_claims(&issuer, n))),
            401,
        ),
        (
            "HS256 with the client secret",
            Box::new(|n: &str| hmac_signed(b"client-secret", &id_claims(&issuer, n))),
            401,
        ),
        (
            "signed by an unknown key",
            Box::new(|n: &str| sign("rsa2", &id_claims(&issuer, n))),
            401,
        ),
        (
            "tampered payload",
            Box::new(|n: &str| {
                let good = sign("rsa1", &id_claims(&issuer, n));
                let parts: Vec<&str> = good.split('.').collect();
                let mut c = id_claims(&issuer, n);
                c["sub"] = json!("someone-else");
                format!(
                    "{}.{}.{}",
                    parts[0],
                    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap()),
                    parts[2]
                )
            }),
            401,
        ),
    ];
    for (name, make, status) in cases {
        let mut v = Visitor::new(&s);
        let (state, nonce) = begin(&mut v, &s).await;
        set(make(&nonce));
        let answer = callback(&mut v, &state).await;
        assert_eq!(answer.status, status, "{name}: {}", answer.body);
        assert!(!v.has_cookie("monti_session"), "{name}: no session");
    }
    assert!(
        monti::store::accounts::by_email(&s.store, "ida@example.com")
            .await
            .unwrap()
            .is_none(),
        "no account was created by any attack"
    );

    // Tampered state, then a genuine callback, then the same callback replayed.
    let mut v = Visitor::new(&s);
    let (state, nonce) = begin(&mut v, &s).await;
    set(sign("rsa1", &id_claims(&issuer, &nonce)));
    assert_eq!(callback(&mut v, "tampered-state").await.status, 400);
    let (state, nonce) = {
        let _ = state;
        begin(&mut v, &s).await
    };
    set(sign("rsa1", &id_claims(&issuer, &nonce)));
    let ok = callback(&mut v, &state).await;
    assert_eq!(ok.status, 303, "the genuine sign-in works: {}", ok.body);
    assert!(v.has_cookie("monti_session"));
    // A callback without the browser's flow cookie (another browser) fails.
    let mut other = Visitor::new(&s);
    assert_eq!(callback(&mut other, &state).await.status, 400);

    // Key rotation: the provider starts signing with a new key; Monti reads the keys again.
    mock.lock().unwrap().published = vec!["rsa1", "rsa2"];
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let mut v = Visitor::new(&s);
    let (state, nonce) = begin(&mut v, &s).await;
    set(sign("rsa2", &id_claims(&issuer, &nonce)));
    assert_eq!(
        callback(&mut v, &state).await.status,
        303,
        "rotated key accepted after a refresh"
    );

    // Every failure is in the audit log.
    let params = monti::store::ListParams(vec![
        ("limit".into(), "500".into()),
        ("outcome".into(), "failure".into()),
    ]);
    let failures = monti::store::audit::list_platform(&s.store, &params)
        .await
        .unwrap()
        .items;
    assert!(failures.len() >= 11, "{}", failures.len());
    assert!(
        failures
            .iter()
            .any(|e| e.detail.as_deref().unwrap_or_default().contains("nonce"))
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_broken_provider_is_a_clear_error() {
    let mock = start_mock().await;
    let issuer = mock.lock().unwrap().base.clone();
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.auth.oidc.insert("mock".into(), oidc_config(&issuer));
        c.auth.oidc.insert("gone".into(), oidc_config("http://127.0.0.1:9"));
    })
    .await
    .unwrap();
    s.tenant("acme", Role::Viewer).await;
    let mut v = Visitor::new(&s);
    let down = v.get("/auth/oidc/gone/start").await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert!(down.body.contains("cannot be reached"));
    mock.lock().unwrap().keys_mode = KeysMode::Garbage;
    assert_eq!(v.get("/auth/oidc/mock/start").await.status, 503);
    mock.lock().unwrap().keys_mode = KeysMode::Down;
    assert_eq!(v.get("/auth/oidc/mock/start").await.status, 503);
    assert_eq!(v.get("/auth/oidc/nope/start").await.status, 404);
    s.stop().await;
}

fn jwt_config(issuer: &str) -> JwtIssuerConfig {
    JwtIssuerConfig {
        issuer: issuer.into(),
        audience: vec!["monti-api".into()],
        tenant: Some("acme".into()),
        roles_claim: "scope".into(),
        role_map: [
            ("monti:admin".to_owned(), "tenant_admin".to_owned()),
            ("monti:read".to_owned(), "viewer".to_owned()),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    }
}

fn access_claims(issuer: &str) -> Value {
    json!({ "iss": issuer, "aud": "monti-api", "sub": "robot-7", "iat": now(), "exp": now() + 300, "scope": "openid monti:read" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_jwts_are_verified_against_the_issuer_keys() {
    let mock = start_mock().await;
    let issuer = mock.lock().unwrap().base.clone();
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.auth.jwt.insert("mock".into(), jwt_config(&issuer));
        c.auth.key_refresh_interval = std::time::Duration::from_millis(200);
    })
    .await
    .unwrap();
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    s.post("/api/v1/teams", &admin, json!({ "name": "North" }))
        .await
        .expect(201);

    let good = sign("rsa1", &access_claims(&issuer));
    let read = s.get("/api/v1/teams", &good).await;
    read.expect(200);
    assert_eq!(read.body["items"][0]["name"], "North", "the token's tenant");
    s.post("/api/v1/teams", &good, json!({ "name": "X" }))
        .await
        .expect_problem(403);

    let mut bad: Vec<(&str, String)> = Vec::new();
    let mut c = access_claims(&issuer);
    c["exp"] = json!(now() - 600);
    bad.push(("expired", sign("rsa1", &c)));
    let mut c = access_claims(&issuer);
    c["aud"] = json!("other-api");
    bad.push(("other audience", sign("rsa1", &c)));
    let mut c = access_claims(&issuer);
    c["iss"] = json!("https://evil.example");
    bad.push(("foreign issuer", sign("rsa1", &c)));
    bad.push(("unsigned", unsigned(&access_claims(&issuer))));
    bad.push((
        "HS256 confusion",
        hmac_signed(key_file("rsa1.pub.pem").as_bytes(), &access_claims(&issuer)),
    ));
    bad.push(("unknown key", sign("rsa2", &access_claims(&issuer))));
    let mut c = access_claims(&issuer);
    c["scope"] = json!("openid");
    bad.push(("no mapped role", sign("rsa1", &c)));
    bad.push(("garbage", "aaa.bbb.ccc".into()));
    for (name, token) in bad {
        let reply = s.get("/api/v1/teams", &token).await;
        assert_eq!(reply.status.as_u16(), 401, "{name}: {}", reply.text);
        assert!(
            reply.header("www-authenticate").unwrap().contains("invalid_token"),
            "{name}"
        );
    }

    // Rotation: a token signed with a newly published key works after a refresh.
    mock.lock().unwrap().published = vec!["rsa2"];
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    s.get("/api/v1/teams", &sign("rsa2", &access_claims(&issuer)))
        .await
        .expect(200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_endpoint_that_is_down_or_broken_is_503_not_401() {
    let mock = start_mock().await;
    let issuer = mock.lock().unwrap().base.clone();
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.auth.jwt.insert("mock".into(), jwt_config(&issuer));
    })
    .await
    .unwrap();
    s.tenant("acme", Role::Viewer).await;
    mock.lock().unwrap().keys_mode = KeysMode::Down;
    let token = sign("rsa1", &access_claims(&issuer));
    let reply = s.get("/api/v1/teams", &token).await;
    reply.expect_problem(503);
    assert!(reply.header("retry-after").is_some());
    mock.lock().unwrap().keys_mode = KeysMode::Garbage;
    s.get("/api/v1/teams", &token).await.expect_problem(503);
    mock.lock().unwrap().keys_mode = KeysMode::Serve;
    s.get("/api/v1/teams", &token).await.expect(200);
    s.stop().await;
}

//! Test harness: a real Monti server on a random port, over SQLite (a temp dir) or PostgreSQL
//! (a fresh database per test on the local server).

#![allow(dead_code)]

pub mod browser;
pub mod smtp;

use std::time::Duration;

use monti::config::{Config, Secret};
use monti::domain::Role;
use monti::store::{Store, tenants, tokens};
use monti::web::{self, AppState};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    /// Counted while the server runs, so a timed test can wait for a quiet machine.
    _running: ServerPass,
    pub base: String,
    /// The running application, for tests that drive a worker's path directly (the demo's
    /// simulator feeding the live floor, say).
    pub app: AppState,
    pub client: reqwest::Client,
    pub store: Store,
    pub config: Config,
    pub pg_database: Option<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

/// All tests run in one process on two cores. A test that times something the user waits for
/// (the demo's board filling) runs with no test server beside it: each server counts itself
/// here, and [`alone`] waits until none runs, then holds new ones back until it is done. A
/// waiting timed test never holds others back, so a test that starts a second server while a
/// timed test waits cannot deadlock.
struct Gate {
    servers: usize,
    alone: bool,
}

static GATE: std::sync::Mutex<Gate> = std::sync::Mutex::new(Gate {
    servers: 0,
    alone: false,
});
static GATE_CHANGED: tokio::sync::Notify = tokio::sync::Notify::const_new();

fn gate() -> std::sync::MutexGuard<'static, Gate> {
    GATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running test server, as the gate counts it.
pub struct ServerPass(());

impl ServerPass {
    async fn enter() -> ServerPass {
        loop {
            let changed = GATE_CHANGED.notified();
            {
                let mut gate = gate();
                if !gate.alone {
                    gate.servers += 1;
                    return ServerPass(());
                }
            }
            changed.await;
        }
    }
}

impl Drop for ServerPass {
    fn drop(&mut self) {
        gate().servers -= 1;
        GATE_CHANGED.notify_waiters();
    }
}

/// Held by a timed test: no test server runs meanwhile.
pub struct Alone(());

impl Drop for Alone {
    fn drop(&mut self) {
        gate().alone = false;
        GATE_CHANGED.notify_waiters();
    }
}

/// Waits until no test server runs, and keeps new ones from starting until dropped.
pub async fn alone() -> Alone {
    loop {
        let changed = GATE_CHANGED.notified();
        {
            let mut gate = gate();
            if gate.servers == 0 && !gate.alone {
                gate.alone = true;
                return Alone(());
            }
        }
        changed.await;
    }
}

/// A pool on the database a configuration names, apart from the server's store.
pub enum RawDb {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

pub async fn raw_db(config: &Config) -> RawDb {
    let url = config.database_url();
    if url.starts_with("sqlite:") {
        RawDb::Sqlite(sqlx::SqlitePool::connect(&url).await.expect("open the SQLite database"))
    } else {
        RawDb::Postgres(sqlx::PgPool::connect(&url).await.expect("open the PostgreSQL database"))
    }
}

impl RawDb {
    /// Runs one statement with text parameters; the rows it changed.
    pub async fn execute(&self, sql: &str, params: &[&str]) -> Result<u64, sqlx::Error> {
        match self {
            RawDb::Sqlite(pool) => {
                let mut query = sqlx::query(sql);
                for p in params {
                    query = query.bind(*p);
                }
                query.execute(pool).await.map(|r| r.rows_affected())
            }
            RawDb::Postgres(pool) => {
                let mut query = sqlx::query(sql);
                for p in params {
                    query = query.bind(*p);
                }
                query.execute(pool).await.map(|r| r.rows_affected())
            }
        }
    }

    /// The first column of the first row, as text (`None` for NULL).
    pub async fn text(&self, sql: &str) -> Option<String> {
        match self {
            RawDb::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.expect("query"),
            RawDb::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.expect("query"),
        }
    }

    /// The SQLite pool (the tests that spoil stored data run on SQLite).
    pub fn sqlite(&self) -> &sqlx::SqlitePool {
        match self {
            RawDb::Sqlite(pool) => pool,
            RawDb::Postgres(_) => unreachable!("started on SQLite"),
        }
    }
}

/// Whether a required service may be missing (only outside CI).
/// Installs a test helper's npm packages (from its lockfile) in `dir` unless `package` is
/// already there.
pub fn npm_ci(dir: &std::path::Path, package: &str) -> Result<(), String> {
    if dir.join("node_modules").join(package).exists() {
        return Ok(());
    }
    let status = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .status()
        .map_err(|e| format!("cannot run npm: {e}"))?;
    status.success().then_some(()).ok_or(format!("npm ci failed: {status}"))
}

pub fn service_missing(what: &str, error: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is required in CI but unavailable: {error}");
    }
    eprintln!("SKIPPED: {what} unavailable here ({error}); CI treats this as a failure");
    true
}

async fn fresh_pg_database() -> Result<(String, String), String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(PG_ADMIN_URL)
        .await
        .map_err(|e| e.to_string())?;
    let name = format!("monti_test_{}", uuid_like());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok((name.clone(), format!("postgres://postgres@127.0.0.1:5432/{name}")))
}

fn uuid_like() -> String {
    monti::domain::new_id("x").trim_start_matches("x_").to_owned()
}

pub async fn drop_pg_database(name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(PG_ADMIN_URL).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

impl TestServer {
    /// Starts a server; `None` when the backend is unavailable outside CI.
    pub async fn start(backend: Backend) -> Option<TestServer> {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestServer> {
        let running = ServerPass::enter().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            log_level: "warn".into(),
            ..Config::default()
        };
        let mut pg_database = None;
        if backend == Backend::Postgres {
            match fresh_pg_database().await {
                Ok((name, url)) => {
                    config.database_url = Some(Secret::new(url));
                    pg_database = Some(name);
                }
                Err(e) => {
                    service_missing("PostgreSQL at 127.0.0.1:5432", &e);
                    return None;
                }
            }
        }
        config.database.acquire_timeout = Duration::from_secs(3);
        // Tests make report days when they ask (a background pass would change what they count).
        config.reports.days_ahead = 0;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        config.listen = listener.local_addr().expect("addr");
        config.public_url = Some(base.clone());
        tweak(&mut config);
        let store = Store::open(&config).await.expect("open store");
        let state = monti::startup::start(store.clone(), config.clone()).expect("state");
        let app = state.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = web::serve(state, listener, async move {
                let _ = rx.await;
            })
            .await;
        });
        Some(TestServer {
            _running: running,
            base,
            app,
            client: reqwest::Client::new(),
            store,
            config,
            pg_database,
            shutdown: Some(tx),
            _dir: dir,
        })
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.store.close().await;
        if let Some(name) = self.pg_database.take() {
            drop_pg_database(&name).await;
        }
    }

    /// A connection of the test's own to the server's database, for what only someone with
    /// database access does behind the server's back (another instance, the CLI, an attacker
    /// who took the disk): spoiling a stored component, reading ciphertext as stored.
    pub async fn raw_db(&self) -> RawDb {
        raw_db(&self.config).await
    }

    /// Creates a tenant and returns a token with `role` for it.
    pub async fn tenant(&self, slug: &str, role: Role) -> String {
        let tenant = match tenants::by_slug(&self.store, slug).await.expect("lookup") {
            Some(t) => t,
            None => tenants::create(
                &self.store,
                tenants::TenantCreate {
                    slug: slug.into(),
                    name: format!("Tenant {slug}"),
                    timezone: Some("Europe/Berlin".into()),
                    features: Default::default(),
                    limits: Default::default(),
                },
            )
            .await
            .expect("create tenant"),
        };
        tokens::issue(&self.store, Some(&tenant.id), "test", role, None, "test")
            .await
            .expect("token")
            .secret
    }

    pub async fn platform_token(&self) -> String {
        tokens::issue(&self.store, None, "platform", Role::PlatformAdmin, None, "test")
            .await
            .expect("token")
            .secret
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
        let mut req = self.client.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        Reply::from(req.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, token, None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, token, Some(body)).await
    }
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, token, Some(body)).await
    }
    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, token, None).await
    }
}

/// A response, read completely.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub async fn from(resp: reqwest::Response) -> Reply {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        self
    }

    #[track_caller]
    pub fn expect_problem(&self, status: u16) -> &Self {
        self.expect(status);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        assert_eq!(self.body["status"], status, "{}", self.text);
        assert!(self.body["title"].is_string(), "{}", self.text);
        self
    }

    pub fn id(&self) -> String {
        self.body["id"].as_str().expect("id in body").to_owned()
    }

    pub fn pointers(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|x| x["pointer"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Declares a test that runs against SQLite and against PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(server) = $crate::common::TestServer::start($crate::common::Backend::Sqlite).await {
                    super::$name(&server).await;
                    server.stop().await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(server) = $crate::common::TestServer::start($crate::common::Backend::Postgres).await {
                    super::$name(&server).await;
                    server.stop().await;
                }
            }
        }
    };
    // With the configuration changed by `$tweak`, a `fn(&mut Config)` beside the test.
    ($name:ident, $tweak:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(server) =
                    $crate::common::TestServer::start_with($crate::common::Backend::Sqlite, super::$tweak).await
                {
                    super::$name(&server).await;
                    server.stop().await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(server) =
                    $crate::common::TestServer::start_with($crate::common::Backend::Postgres, super::$tweak).await
                {
                    super::$name(&server).await;
                    server.stop().await;
                }
            }
        }
    };
}

/// A browser-like HTTP client: keeps cookies, does not follow redirects, and knows the CSRF
/// token of the last page it read.
pub struct Visitor {
    pub base: String,
    client: reqwest::Client,
    cookies: std::collections::BTreeMap<String, String>,
    pub csrf: Option<String>,
}

/// A page or redirect as the visitor saw it.
#[derive(Debug)]
pub struct Seen {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Visitor {
    pub fn new(server: &TestServer) -> Visitor {
        Visitor {
            base: server.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: Default::default(),
            csrf: None,
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn seen(&mut self, resp: reqwest::Response) -> Seen {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let set_cookies: Vec<String> = headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        for c in &set_cookies {
            let pair = c.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || c.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        let location = headers.get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = resp.text().await.unwrap_or_default();
        if let Some(token) = body
            .split("name=\"_csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
        {
            self.csrf = Some(token.to_owned());
        }
        Seen {
            status,
            location,
            set_cookies,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Seen {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.seen(resp).await
    }

    /// Posts a form with the current CSRF token added.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Seen {
        let mut form: Vec<(String, String)> = fields.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        if let Some(token) = &self.csrf {
            form.push(("_csrf".into(), token.clone()));
        }
        self.post_raw(path, &form, &[]).await
    }

    /// Posts exactly these fields and headers.
    pub async fn post_raw(&mut self, path: &str, form: &[(String, String)], headers: &[(&str, &str)]) -> Seen {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("POST");
        self.seen(resp).await
    }

    pub fn has_cookie(&self, name: &str) -> bool {
        self.cookies.contains_key(name)
    }

    /// Signs in with a password; returns the answer to the form post.
    pub async fn sign_in(&mut self, email: &str, password: &str) -> Seen {
        self.get("/login").await;
        self.post("/login", &[("email", email), ("password", password)]).await
    }
}

/// The audit log of a tenant (or, with `None`, of the installation), oldest first:
/// (action, outcome) per entry.
pub async fn audit_actions(s: &TestServer, tenant: Option<&str>) -> Vec<(String, String)> {
    use monti::store::ListParams;
    use monti::store::audit::AuditRow;
    let params = ListParams(vec![("limit".into(), "500".into()), ("sort".into(), "at".into())]);
    let page = match tenant {
        Some(slug) => {
            let scope = tenants::system_scope(&s.store, slug, monti::store::SystemActor::Operator)
                .await
                .unwrap();
            monti::store::resource::list::<AuditRow>(&s.store, &scope, &params)
                .await
                .unwrap()
        }
        None => monti::store::audit::list_platform(&s.store, &params).await.unwrap(),
    };
    page.items.into_iter().map(|e| (e.action, e.outcome)).collect()
}

/// A member of tenant `slug` with `role` (a local account, made now), signed in through the
/// login form.
pub async fn signed_in_member(s: &TestServer, email: &str, password: &str, slug: &str, role: Role) -> Visitor {
    account(&s.store, email, password, Some((slug, role)), false).await;
    let mut visitor = Visitor::new(s);
    let signed = visitor.sign_in(email, password).await;
    assert_eq!(signed.status, 303, "{email} signs in: {}", signed.body);
    visitor
}

/// Creates a local account with a password and (optionally) a role in a tenant.
pub async fn account(
    store: &Store,
    email: &str,
    password: &str,
    tenant: Option<(&str, Role)>,
    platform_admin: bool,
) -> String {
    use monti::store::accounts;
    let hash = monti::auth::password::hash(password).expect("hash");
    let account = accounts::create(
        store,
        accounts::NewAccount {
            email: email.into(),
            display_name: None,
            password_hash: Some(hash),
            platform_admin,
        },
    )
    .await
    .expect("account");
    if let Some((slug, role)) = tenant {
        let t = tenants::by_slug(store, slug)
            .await
            .expect("lookup")
            .expect("tenant exists");
        accounts::grant_membership(store, &account.id, &t.id, role, &[], &[])
            .await
            .expect("membership");
    }
    account.id
}

/// What the command line did in tenant `slug` of data directory `data`, as its audit log
/// says: (actor, action), oldest first.
pub fn audit_in_data_dir(data: &std::path::Path, slug: &str) -> Vec<(String, String)> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let config = Config {
            data_dir: data.to_path_buf(),
            ..Config::default()
        };
        let store = Store::open(&config).await.expect("open the data directory");
        let scope = tenants::system_scope(&store, slug, monti::store::SystemActor::Operator)
            .await
            .expect("the tenant");
        let params = monti::store::ListParams(vec![("limit".into(), "500".into()), ("sort".into(), "at".into())]);
        let page = monti::store::resource::list::<monti::store::audit::AuditRow>(&store, &scope, &params)
            .await
            .expect("the audit log");
        store.close().await;
        page.items.into_iter().map(|e| (e.actor, e.action)).collect()
    })
}

/// Runs the `monti` binary on the data directory `data`, with no database URL or secret key
/// from the environment: (success, stdout, stderr).
pub fn monti_cli(data: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_monti"))
        .args(args)
        .env_remove("MONTI_DATABASE_URL")
        .env_remove("MONTI_SECRET_KEY")
        .env("MONTI_DATA_DIR", data)
        .output()
        .expect("run monti");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `monti demo` process on a free port with a data directory of its own.
pub struct Demo {
    pub port: u16,
    /// The tenant admin's password (`admin@demo.example`) and the admin API token it printed.
    pub admin_password: String,
    pub token: String,
    _child: tokio::process::Child,
    _data: tempfile::TempDir,
}

impl Demo {
    /// Starts `monti demo --listen …` with `args` and waits for its banner.
    pub async fn start(args: &[&std::ffi::OsStr]) -> Demo {
        use tokio::io::AsyncBufReadExt;
        let data = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_monti"))
            .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env_remove("MONTI_DATABASE_URL")
            .env("MONTI_DATA_DIR", data.path())
            .env("MONTI_LOG_LEVEL", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let (admin_password, token) = tokio::time::timeout(Duration::from_secs(30), async {
            let mut password = None;
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("admin@demo.example") {
                    password = line.split_whitespace().last().map(str::to_owned);
                }
                if line.trim().starts_with("monti_") {
                    return password.zip(Some(line.trim().to_owned()));
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("the demo prints the admin's sign-in and an API token");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Demo {
            port,
            admin_password,
            token,
            _child: child,
            _data: data,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

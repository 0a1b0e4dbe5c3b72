//! Shared by the benchmarks that run a real `monti serve` process: a data directory with
//! tenants and their simulated floors, the server process, and its memory use.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use monti::config::Config;
use monti::domain::Role;

pub struct Tenant {
    pub slug: String,
    pub token: String,
    /// The agents' extensions (how events name them).
    pub extensions: Vec<String>,
    pub scenario: monti::sim::Scenario,
}

pub struct Setup {
    pub dir: tempfile::TempDir,
    pub tenants: Vec<Tenant>,
}

/// `tenants` tenants with `agents` simulated agents each, in a fresh SQLite data directory.
pub fn setup(tenants: usize, agents: usize) -> Setup {
    setup_on(tenants, agents, None)
}

/// As [`setup`], on the database at `database_url` (a fresh PostgreSQL database) instead of
/// the data directory's SQLite file; the data directory still holds the secret key.
pub fn setup_on(tenants: usize, agents: usize, database_url: Option<&str>) -> Setup {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        log_level: "warn".into(),
        database_url: database_url.map(|url| monti::config::Secret::new(url.to_owned())),
        ..Config::default()
    };
    let made = runtime.block_on(async {
        let store = monti::store::Store::open(&config).await.unwrap();
        let mut made = Vec::new();
        for t in 0..tenants {
            let slug = format!("t{t:03}");
            let tenant = monti::store::tenants::create(
                &store,
                monti::store::tenants::TenantCreate {
                    slug: slug.clone(),
                    name: format!("Tenant {t}"),
                    timezone: Some("Europe/Berlin".into()),
                    features: Default::default(),
                    limits: Default::default(),
                },
            )
            .await
            .unwrap();
            let scope = monti::store::tenants::system_scope(&store, &slug, monti::store::SystemActor::Operator)
                .await
                .unwrap();
            let scenario = monti::demo::scenario(agents, t as u64 + 1);
            monti::simulate::provision(&store, &scope, &scenario).await.unwrap();
            let token =
                monti::store::tokens::issue(&store, Some(&tenant.id), "bench", Role::TenantAdmin, None, "bench")
                    .await
                    .unwrap()
                    .secret;
            made.push(Tenant {
                slug,
                token,
                extensions: scenario.agents.iter().map(|a| a.extension.clone()).collect(),
                scenario,
            });
        }
        store.close().await;
        made
    });
    Setup { dir, tenants: made }
}

pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    /// Starts the release binary on the data directory, with limits raised so the load
    /// generator measures the server and not its rate limits.
    pub fn start(setup: &Setup) -> Server {
        Self::start_with(setup, &[])
    }

    /// As [`start`](Self::start), with more environment (configuration) for the server.
    pub fn start_with(setup: &Setup, env: &[(&str, &str)]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_monti"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(setup.dir.path())
            .env("MONTI_LOG_LEVEL", "warn")
            .env("MONTI_AUTH__API_RATE_PER_SECOND", "1000000")
            .env("MONTI_AUTH__API_BURST", "1000000")
            .env("MONTI_AUTH__INGEST_EVENTS_PER_SECOND", "100000000")
            .env("MONTI_AUTH__INGEST_BURST", "100000000")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start monti");
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).is_ok() && &head[9..12] == b"200" {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "monti did not become ready"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, base }
    }

    /// What the kernel says about the server's memory: anonymous, file-backed and shared
    /// resident memory, and its threads.
    pub fn memory_detail(&self) -> String {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .filter(|l| {
                ["RssAnon:", "RssFile:", "RssShmem:", "Threads:"]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// (resident, peak resident) memory of the server process, MiB.
    pub fn memory_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1024.0
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

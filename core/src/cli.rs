//! The `monti` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, anyhow};
use clap::{Args, Parser, Subcommand};

use crate::config::{self, CliOverrides, Config, Sources};
use crate::domain::Role;
use crate::secrets::SecretBox;
use crate::store::{Store, tenants, tokens};
use crate::web;

#[derive(Parser, Debug)]
#[command(name = "monti", version = crate::VERSION, about = "Monti: contact-center operations platform")]
pub struct Cli {
    /// Configuration file (default: ./monti.toml if present). Also MONTI_CONFIG.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the data lives; every command that touches data accepts these.
#[derive(Args, Debug, Clone, Default)]
pub struct DataArgs {
    /// Data directory (SQLite database, generated key, template overrides). Also MONTI_DATA_DIR.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://USER@HOST/DB. Also MONTI_DATABASE_URL.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080 or 0.0.0.0:8080. Also MONTI_LISTEN.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Agents on the simulated floor.
    #[arg(long, default_value_t = 2000)]
    pub agents: usize,
    /// Seed of the simulation (the same seed gives the same floor and the same day).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Do not run the simulator (the demo tenant stays as it is).
    #[arg(long)]
    pub no_simulator: bool,
    /// Run the floor through a simulated Asterisk PBX and the Asterisk connector plugin (built
    /// first: `cargo build --release --target wasm32-wasip2 -p monti-plugin-asterisk`).
    #[arg(long)]
    pub asterisk: bool,
    /// The connector's `.wasm` (default: the one `cargo build` wrote in the target directory).
    #[arg(long, value_name = "FILE", requires = "asterisk")]
    pub asterisk_plugin: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Base URL of the Monti server (default: this configuration's public URL).
    #[arg(long)]
    pub url: Option<String>,
    /// API token with the ingest permission for the tenant. Also MONTI_TOKEN. Without one, a
    /// token is issued in the local database (which must then be reachable).
    #[arg(long, env = "MONTI_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The tenant (slug) to provision and issue a token for, when that is done locally.
    #[arg(long, default_value = "demo")]
    pub tenant: String,
    /// First create the scenario's teams, locations, queues and agents in the tenant (through
    /// the local database; safe to repeat).
    #[arg(long)]
    pub provision: bool,
    /// Agents on the floor.
    #[arg(long, default_value_t = 2000)]
    pub agents: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated seconds per real second, or `max` for as fast as the server takes them.
    #[arg(long, default_value = "1")]
    pub speed: String,
    /// Simulated time to run, e.g. `1h` or `30m` (default: until stopped).
    #[arg(long)]
    pub duration: Option<String>,
    /// Simulated time of day at the start (`HH:MM`); shifts and the call curve follow it.
    #[arg(long, default_value = "10:00")]
    pub day_time: String,
    /// Multiplier on the arrival rates.
    #[arg(long, default_value_t = 1.0)]
    pub load: f64,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Run the server with a demo tenant (created if missing) whose floor is driven by the
    /// simulator, and print sign-ins and an API token.
    Demo(DemoArgs),
    /// Simulate a contact center and send its events to a Monti server's ingest API.
    Simulate(SimulateArgs),
    /// Apply database migrations and exit.
    Migrate(DataArgs),
    /// Show or check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check a running server's readiness (exit 0 when ready); for container health checks.
    Healthcheck {
        /// Base URL of the server (default: derived from the configured listen address).
        #[arg(long)]
        url: Option<String>,
    },
    /// Print the version.
    Version,
    /// Administer tenants and tokens directly in the database.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Plugin authors' tools.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// The key that seals secrets at rest.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Backfill history from a PBX's files.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Asterisk: the tenant's telephony as configuration files.
    #[command(subcommand)]
    Asterisk(AsteriskCommand),
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the effective configuration with secrets redacted.
    Print(ServeArgs),
    /// Validate the configuration; exit 0 when valid.
    Check(ServeArgs),
}

#[derive(Subcommand, Debug)]
pub enum AsteriskCommand {
    /// Write the tenant's SIP endpoints, queues and phone numbers as pjsip.conf, queues.conf and
    /// extensions.conf (a `[monti-<tenant>-dids]` context) into a directory. The files hold the
    /// endpoints' passwords: keep them as private as the PBX's own configuration.
    Export {
        #[arg(long)]
        tenant: String,
        /// Where to write them (default: ./asterisk-<tenant>).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// Asterisk call detail records (`Master.csv` of cdr_csv). Each line is stored once: importing
    /// the same file again adds nothing. Lines that cannot be read are listed with their numbers.
    Cdr {
        file: PathBuf,
        #[arg(long)]
        tenant: String,
        /// The time zone the file's dates are in (default: the tenant's; `UTC` with `usegmtime`).
        #[arg(long)]
        timezone: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Asterisk's queue_log: callers, queue calls, agents' logins and pauses as history, and
    /// the queues' KPIs over the file. Each line is stored once.
    QueueLog {
        file: PathBuf,
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Re-encrypt every secret stored at rest (SIP passwords, sign-in client secrets, session ID
    /// tokens, plugin secrets) with a new random key, in one transaction. Stop the server first.
    /// With the key in `<data dir>/secret.key`, the new key replaces it (the old one is kept as
    /// `secret.key.old-<time>`); with `secret_key` in the configuration, the new key is written
    /// to `<data dir>/secret.key.new` for you to put there.
    RotateKey {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    #[command(subcommand)]
    Tenant(TenantCommand),
    #[command(subcommand)]
    Token(TokenCommand),
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a local account; prints a generated password unless --password-stdin is given.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        /// Make the account a platform admin (manages tenants).
        #[arg(long)]
        platform_admin: bool,
        /// Give the account a role in this tenant (slug).
        #[arg(long, requires = "role")]
        tenant: Option<String>,
        /// tenant_admin, supervisor, agent or viewer.
        #[arg(long, requires = "tenant")]
        role: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Disable an account: it can no longer sign in, and its sessions end.
    Disable {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Enable a disabled account again.
    Enable {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Print a one-time password reset link for an account.
    ResetLink {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        /// IANA time zone, e.g. Europe/Berlin (default UTC).
        #[arg(long)]
        timezone: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an API token and print only the token.
    Create {
        /// Tenant slug (omit with --platform).
        #[arg(long, required_unless_present = "platform")]
        tenant: Option<String>,
        /// tenant_admin, supervisor, agent or viewer.
        #[arg(long, default_value = "tenant_admin")]
        role: String,
        /// A platform-admin token that manages tenants.
        #[arg(long, conflicts_with = "tenant")]
        platform: bool,
        /// A name to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Lifetime such as 30d or 12h (default: no expiry).
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List a tenant's tokens (or the platform tokens).
    List {
        #[arg(long, required_unless_present = "platform")]
        tenant: Option<String>,
        #[arg(long, conflicts_with = "tenant")]
        platform: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Revoke a token by id.
    Revoke {
        id: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            if let Some(config_error) = e.downcast_ref::<config::ConfigError>() {
                eprintln!("error: {config_error}");
                return ExitCode::from(2);
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn sources(config: &Option<PathBuf>, listen: Option<SocketAddr>, data: &DataArgs) -> Sources {
    Sources {
        file: config.clone(),
        overrides: CliOverrides {
            listen,
            data_dir: data.data_dir.clone(),
            database_url: data.database_url.clone(),
        },
    }
}

fn load(sources: &Sources) -> anyhow::Result<Config> {
    let loaded = config::load(sources)?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(loaded.config)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Version => {
            println!("monti {}", crate::VERSION);
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => serve(&cli.config, args, None).await,
        Command::Demo(args) => {
            let serve_args = args.serve.clone();
            serve(&cli.config, serve_args, Some(args)).await
        }
        Command::Simulate(args) => simulate(&cli.config, args).await,
        Command::Migrate(data) => {
            let config = load(&sources(&cli.config, None, &data))?;
            crate::telemetry::init_logging(config.log_format, &config.log_level);
            let applied = Store::migrate(&config).await?;
            println!("migrations applied: {applied}; database is current");
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Print(args)) => {
            let config = load(&sources(&cli.config, args.listen, &args.data))?;
            print!("{}", config.to_redacted_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check(args)) => {
            let loaded = config::load(&sources(&cli.config, args.listen, &args.data))?;
            for warning in &loaded.warnings {
                println!("warning: {warning}");
            }
            println!("configuration is valid");
            Ok(ExitCode::SUCCESS)
        }
        Command::Healthcheck { url } => healthcheck(&cli.config, url).await,
        Command::Admin(admin) => self::admin(&cli.config, admin).await,
        Command::Plugin(command) => plugin(&cli.config, command).await,
        Command::Secrets(SecretsCommand::RotateKey { data }) => rotate_key(&cli.config, &data).await,
        Command::Import(command) => import(&cli.config, command).await,
        Command::Asterisk(AsteriskCommand::Export { tenant, out, data }) => {
            let store = admin_store(&cli.config, &data).await?;
            let scope = tenants::system_scope(&store, &tenant, crate::store::SystemActor::Operator)
                .await
                .map_err(explain)?;
            use crate::service::telephony::{ConfigFile, export_config};
            let files = export_config(&store, &scope, &cli_origin(), &ConfigFile::ALL)
                .await
                .map_err(explain)?;
            let dir = out.unwrap_or_else(|| PathBuf::from(format!("asterisk-{tenant}")));
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            for (file, text) in files {
                let path = dir.join(file.name());
                crate::secrets::write_private(&path, text.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_refused(report: &crate::import::Report) {
    for refused in report.refused.iter().take(50) {
        eprintln!("line {}: {}", refused.line, refused.why);
    }
    if report.refused.len() > 50 {
        eprintln!("… and {} more lines", report.refused.len() - 50);
    }
}

async fn import(config_file: &Option<PathBuf>, command: ImportCommand) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal as _;
    let show_progress = std::io::stderr().is_terminal();
    let (file, tenant, data) = match &command {
        ImportCommand::Cdr { file, tenant, data, .. } | ImportCommand::QueueLog { file, tenant, data } => {
            (file, tenant, data)
        }
    };
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let store = admin_store(config_file, data).await?;
    let scope = tenants::system_scope(&store, tenant, crate::store::SystemActor::Operator)
        .await
        .map_err(explain)?;
    let report = match &command {
        ImportCommand::Cdr { timezone, .. } => {
            let zone_name = match timezone {
                Some(zone) => zone.clone(),
                None => tenants::by_slug(&store, tenant)
                    .await
                    .map_err(explain)?
                    .map(|t| t.timezone)
                    .unwrap_or_else(|| "UTC".into()),
            };
            let zone: chrono_tz::Tz = zone_name
                .parse()
                .map_err(|_| anyhow!("`{zone_name}` is not a time zone (e.g. Europe/Berlin, UTC)"))?;
            let (report, by_disposition) = crate::import::cdr::import(&store, &scope, &text, zone, show_progress)
                .await
                .map_err(explain)?;
            println!(
                "{} lines: {} records added, {} already there, {} refused (dates read in {zone})",
                report.lines,
                report.added,
                report.already,
                report.refused.len()
            );
            for (disposition, count) in by_disposition {
                println!("{count:>8} {disposition}");
            }
            report
        }
        ImportCommand::QueueLog { .. } => {
            let (report, figures) =
                crate::import::queue_log::import(&store, &scope, &text, &Default::default(), show_progress)
                    .await
                    .map_err(explain)?;
            println!(
                "{} lines: {} events added, {} already there, {} refused",
                report.lines,
                report.added,
                report.already,
                report.refused.len()
            );
            let shown = |v: Option<f64>, unit: &str| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}{unit}"));
            println!(
                "{:<20} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8} {:>9}",
                "queue", "offered", "answered", "abandoned", "SL", "ASA", "AHT", "abandon"
            );
            for (queue, f) in figures {
                let c = &f.counters;
                println!(
                    "{:<20} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8} {:>9}",
                    queue,
                    c.offered,
                    c.answered,
                    c.abandoned,
                    shown(
                        crate::kpi::service_level(c, f.settings.service_level).map(|v| v * 100.0),
                        " %"
                    ),
                    shown(crate::kpi::asa(c), " s"),
                    shown(crate::kpi::aht(c), " s"),
                    shown(
                        crate::kpi::abandon_rate(c, f.settings.abandon_rate_counts_short).map(|v| v * 100.0),
                        " %"
                    ),
                );
            }
            report
        }
    };
    print_refused(&report);
    Ok(if report.refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn rotate_key(config_file: &Option<PathBuf>, data: &DataArgs) -> anyhow::Result<ExitCode> {
    let config = load(&sources(config_file, None, data))?;
    crate::telemetry::init_logging(config.log_format, "warn");
    let store = Store::open(&config).await?;
    let (new, encoded) = SecretBox::generate();
    // Written before anything is re-sealed: whatever happens next, the new key is not lost.
    let staged = config.data_dir.join("secret.key.new");
    crate::secrets::write_private(&staged, encoded.as_bytes())
        .with_context(|| format!("cannot write {}", staged.display()))?;
    let resealed = match crate::store::rekey::reseal_all(&store, &new).await {
        Ok(resealed) => resealed,
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            anyhow::bail!("{e}");
        }
    };
    for (what, count) in &resealed {
        println!("{count:>6} {what}");
    }
    if config.secret_key.is_some() {
        println!(
            "re-encrypted with a new key, written to {}: set `secret_key` (or MONTI_SECRET_KEY) to its \
             contents before starting the server, then delete the file",
            staged.display()
        );
    } else {
        let current = config.data_dir.join("secret.key");
        let kept = config
            .data_dir
            .join(format!("secret.key.old-{}", crate::domain::time::now_ms() / 1000));
        std::fs::rename(&current, &kept)
            .and_then(|()| std::fs::rename(&staged, &current))
            .with_context(|| {
                format!(
                    "the secrets were re-encrypted with the key in {}, but it could not replace {}: move it there by hand",
                    staged.display(),
                    current.display()
                )
            })?;
        println!(
            "re-encrypted with a new key in {}; the old key is kept in {} (delete it once you have a backup of the new one)",
            current.display(),
            kept.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(config_file: &Option<PathBuf>, args: ServeArgs, demo: Option<DemoArgs>) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let config = load(&sources(config_file, args.listen, &args.data))?;
    crate::telemetry::init_logging(config.log_format, &config.log_level);
    let store = Store::open(&config).await?;
    let scenario = demo.as_ref().map(|d| crate::demo::scenario(d.agents, d.seed));
    let demo_login = match &scenario {
        Some(scenario) => Some(crate::demo::seed(&store, scenario).await?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let base_url = config.public_url();
    if let Some(token) = crate::web::auth_pages::prepare_setup(&store).await? {
        tracing::warn!(
            url = %format!("{base_url}/setup?token={token}"),
            "no platform admin exists yet: open this one-time link to create the first one"
        );
    }
    let mut config = config;
    let asterisk = demo.as_ref().filter(|d| d.asterisk && !d.no_simulator);
    let connector = match asterisk {
        // The simulated PBX listens on 127.0.0.1: the demo tenant's plugins may reach it.
        Some(d) => {
            config.plugins.private_networks.push(crate::demo::DEMO_SLUG.to_owned());
            Some(crate::demo::asterisk_plugin(d.asterisk_plugin.as_deref())?)
        }
        None => None,
    };
    let state = crate::startup::start(store.clone(), config)?;
    tracing::info!(
        url = %base_url,
        database = store.backend().as_str(),
        ready_ms = format!("{:.1}", web::elapsed_ms(started)),
        "monti {} ready",
        crate::VERSION
    );
    if let Some(login) = demo_login {
        println!("{}", crate::demo::banner(&base_url, &login));
    }
    if demo.is_some() {
        // The demo tenant watches its floor with the starter alert rules (added once).
        let scope = tenants::system_scope(&store, crate::demo::DEMO_SLUG, crate::store::SystemActor::Demo).await?;
        let rules = crate::service::rules::RulesContext {
            store: &state.store,
            rules: &state.rules,
            live: &state.live,
        };
        if let Err(e) = crate::service::rules::import_starter(&rules, &scope, &Default::default()).await {
            tracing::warn!(error = %e, "the demo's starter alert rules could not be added");
        }
    }
    if let (Some(demo), Some(scenario)) = (&demo, scenario)
        && !demo.no_simulator
    {
        let scope = tenants::system_scope(&store, crate::demo::DEMO_SLUG, crate::store::SystemActor::Demo).await?;
        match crate::demo::end_earlier_run(&state.live, &scope).await {
            Ok(0) => {}
            Ok(ended) => tracing::info!(callers = ended, "callers still waiting from an earlier demo run left"),
            Err(e) => tracing::warn!(error = %e, "ending an earlier demo run's calls failed"),
        }
        if connector.is_none() {
            // A connector left from an earlier `demo --asterisk` would dial a PBX that is gone.
            crate::demo::disconnect_asterisk(&state, &scope).await;
        }
        let sink = match connector {
            Some(wasm) => {
                let pbx = crate::demo::connect_asterisk(&state, &scope, &scenario, &wasm).await?;
                tracing::info!(
                    ami_port = pbx.ami.port(),
                    ari_port = pbx.ari.port(),
                    "the floor runs through a simulated Asterisk PBX and the Asterisk connector"
                );
                crate::simulate::Sink::Pbx(pbx)
            }
            None => crate::simulate::Sink::Local {
                live: state.live.clone(),
                scope: tenants::system_scope(&store, crate::demo::DEMO_SLUG, crate::store::SystemActor::Simulator)
                    .await?,
            },
        };
        let seed = demo.seed;
        tokio::spawn(async move {
            // The floor starts mid-morning: a quarter of an hour is simulated at once, then
            // the day goes on in real time.
            let warm_up = std::time::Duration::from_secs(15 * 60);
            let now = crate::domain::time::now_ms();
            let params = crate::sim::SimParams {
                seed,
                run_id: format!("demo-{}", now / 1000),
                day_offset_s: 10 * 3600 - warm_up.as_secs() as u32,
                // A little more traffic than the floor is staffed for, so the board shows
                // callers waiting and abandoning now and then, and a few rushes.
                load: 1.1,
                surges: crate::demo::surges(&scenario),
                outages: crate::demo::outages(&scenario),
                ..Default::default()
            };
            let mut simulation = crate::sim::Simulation::new(&scenario, params, now - warm_up.as_millis() as i64);
            let pace = crate::simulate::Pace {
                speed: Some(1.0),
                duration: None,
                warm_up,
            };
            if let Err(e) = crate::simulate::run(&mut simulation, &sink, pace, |_, _, _| {}).await {
                tracing::error!(error = %format!("{e:#}"), "the demo simulator stopped");
            }
        });
        tracing::info!(
            agents = demo.agents,
            "the simulator is running the demo floor: open {base_url}/board"
        );
    }
    web::serve(state, listener, web::shutdown_signal()).await?;
    store.close().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Start a new plugin: a crate with the manifest, an event handler (or a webhook) and a
    /// README, ready for `cargo build --release --target wasm32-wasip2`.
    New {
        /// The plugin's id (lower-case letters, digits, dashes); also the directory made.
        id: String,
        /// `event-handler` or `webhook`.
        #[arg(long, default_value = "event-handler")]
        world: String,
        /// Where monti-plugin-sdk is (default: the SDK of the checkout this monti was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Validate a plugin component: its manifest, its world and contract version; exit 0 when
    /// Monti would accept it.
    Check {
        /// The `.wasm` component.
        file: PathBuf,
    },
    /// Run a plugin once on events from a file (a JSON array or NDJSON), the way Monti would,
    /// and print what it emitted, logged and used.
    Run {
        file: PathBuf,
        /// Events to hand it, as for `POST /api/v1/events`.
        #[arg(long)]
        events: PathBuf,
        /// Its configuration (JSON); default `{}`.
        #[arg(long, value_name = "JSON")]
        plugin_config: Option<String>,
        /// Let its HTTP destinations resolve to private or local addresses (a mock on this
        /// machine, say).
        #[arg(long)]
        allow_private_networks: bool,
    },
    /// Install (or upgrade) a plugin in a tenant; it stays disabled until enabled.
    Install {
        file: PathBuf,
        #[arg(long)]
        tenant: String,
        /// Its configuration (JSON), checked against the plugin's schema.
        #[arg(long, value_name = "JSON")]
        plugin_config: Option<String>,
        /// Enable it right away.
        #[arg(long)]
        enable: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// The tenant's installed plugins.
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Start handing the tenant's events to a plugin.
    Enable {
        plugin: String,
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Stop handing events to a plugin (its configuration and storage stay).
    Disable {
        plugin: String,
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Remove a plugin from a tenant, with its configuration and storage.
    Remove {
        plugin: String,
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

async fn set_plugin_enabled(
    config_file: &Option<PathBuf>,
    data: &DataArgs,
    tenant: &str,
    plugin: &str,
    enabled: bool,
) -> anyhow::Result<ExitCode> {
    let store = admin_store(config_file, data).await?;
    let scope = tenants::system_scope(&store, tenant, crate::store::SystemActor::Operator)
        .await
        .map_err(explain)?;
    let installation = if enabled {
        enable_approving(&store, &scope, plugin).await?
    } else {
        let change = crate::service::plugins::Change {
            enabled: Some(false),
            ..Default::default()
        };
        crate::service::plugins::update(offline(&store), &scope, &cli_origin(), plugin, change)
            .await
            .map_err(plugin_refusal)?
    };
    print_installation(&installation);
    Ok(ExitCode::SUCCESS)
}

fn offline(store: &Store) -> crate::service::plugins::Running<'_> {
    crate::service::plugins::Running::offline(store)
}

fn cli_origin() -> crate::store::audit::Origin {
    crate::store::audit::Origin::default()
}

fn identity_refusal(e: crate::service::identity::IdentityError) -> anyhow::Error {
    match e {
        crate::service::identity::IdentityError::Store(e) => explain(e),
        other => anyhow!("{other}"),
    }
}

fn plugin_refusal(e: crate::service::plugins::PluginError) -> anyhow::Error {
    match e {
        crate::service::plugins::PluginError::Invalid(invalid) => explain(crate::store::StoreError::Invalid(invalid)),
        crate::service::plugins::PluginError::Store(e) => explain(e),
        other => anyhow!("{other}"),
    }
}

/// The operator enables a plugin: what it asks for is approved on the tenant's behalf (and said).
async fn enable_approving(
    store: &Store,
    scope: &crate::store::TenantScope,
    plugin: &str,
) -> anyhow::Result<crate::store::plugins::Installation> {
    use crate::service::plugins::{Change, PluginError, update};
    let enable = |approve_capabilities| Change {
        enabled: Some(true),
        approve_capabilities,
        ..Default::default()
    };
    match update(offline(store), scope, &cli_origin(), plugin, enable(false)).await {
        Err(PluginError::NeedsApproval(pending)) => {
            eprintln!("approving for the tenant: {}", pending.join("; "));
            update(offline(store), scope, &cli_origin(), plugin, enable(true))
                .await
                .map_err(plugin_refusal)
        }
        other => other.map_err(plugin_refusal),
    }
}

fn print_installation(i: &crate::store::plugins::Installation) {
    println!(
        "{:<24} {:<10} {:<9} {:>8} runs {:>6} failed  {}",
        i.plugin_id,
        i.version,
        if i.enabled { "enabled" } else { "disabled" },
        i.invocations,
        i.failures,
        i.last_error.as_deref().unwrap_or("")
    );
}

/// The configuration given (default `{}`), checked against the plugin's schema.
fn plugin_config(given: &str, manifest: &crate::plugins::manifest::Manifest) -> anyhow::Result<String> {
    let value: serde_json::Value = serde_json::from_str(given).context("--plugin-config is not JSON")?;
    if let Some(schema) = &manifest.config {
        crate::plugins::config::check(schema, &value).map_err(|problems| {
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            anyhow!("--plugin-config: {}", problems.join("; "))
        })?;
    }
    Ok(value.to_string())
}

fn read_plugin(
    file: &std::path::Path,
) -> anyhow::Result<(
    std::sync::Arc<crate::plugins::PluginEngine>,
    crate::plugins::ValidPlugin,
)> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let engine = crate::plugins::PluginEngine::new(4)?;
    let plugin = engine
        .validate(&bytes)
        .map_err(|f| anyhow!("{}: {}", file.display(), f.message))?;
    Ok((engine, plugin))
}

async fn plugin(config_file: &Option<PathBuf>, command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::New { id, world, sdk } => {
            let sdk = match sdk {
                Some(path) => path,
                None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sdk/rust"),
            };
            let sdk = sdk.canonicalize().map_err(|_| {
                anyhow!(
                    "monti-plugin-sdk is not at {}; pass --sdk PATH (sdk/rust of a Monti checkout)",
                    sdk.display()
                )
            })?;
            let dir = crate::plugins::scaffold::create(std::path::Path::new(&id), &id, &world, &sdk)?;
            println!(
                "created {}: cd {id} && cargo build --release --target wasm32-wasip2",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Install {
            file,
            tenant,
            plugin_config: given,
            enable,
            data,
        } => {
            let (engine, plugin) = read_plugin(&file)?;
            let settings = load(&sources(config_file, None, &data))?;
            // Checked against the plugin's schema when given; without one the plugin is installed
            // unconfigured and disabled, as through the API, until it is configured.
            let config = given
                .as_deref()
                .map(|given| plugin_config(given, &plugin.manifest))
                .transpose()?;
            let bytes: std::sync::Arc<[u8]> = std::fs::read(&file)?.into();
            let store = admin_store(config_file, &data).await?;
            let scope = tenants::system_scope(&store, &tenant, crate::store::SystemActor::Operator)
                .await
                .map_err(explain)?;
            let ctx = crate::service::plugins::PluginContext {
                store: &store,
                policy: &settings.plugins,
                engine,
                runtime: None,
            };
            let installed = crate::service::plugins::install(&ctx, &scope, &cli_origin(), bytes, config.as_deref())
                .await
                .map_err(plugin_refusal)?;
            let mut installed = installed.installation;
            if enable {
                installed = enable_approving(&store, &scope, &installed.id).await?;
            }
            print_installation(&installed);
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::List { tenant, data } => {
            let store = admin_store(config_file, &data).await?;
            let scope = tenants::system_scope(&store, &tenant, crate::store::SystemActor::Operator)
                .await
                .map_err(explain)?;
            for installation in crate::store::plugins::list(&store, &scope).await.map_err(explain)? {
                print_installation(&installation);
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Enable { plugin, tenant, data } => {
            set_plugin_enabled(config_file, &data, &tenant, &plugin, true).await
        }
        PluginCommand::Disable { plugin, tenant, data } => {
            set_plugin_enabled(config_file, &data, &tenant, &plugin, false).await
        }
        PluginCommand::Remove { plugin, tenant, data } => {
            let store = admin_store(config_file, &data).await?;
            let scope = tenants::system_scope(&store, &tenant, crate::store::SystemActor::Operator)
                .await
                .map_err(explain)?;
            let removed = crate::service::plugins::remove(offline(&store), &scope, &cli_origin(), &plugin)
                .await
                .map_err(plugin_refusal)?;
            println!("removed {} from {tenant}", removed.plugin_id);
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Check { file } => {
            let (_, plugin) = read_plugin(&file)?;
            let m = &plugin.manifest;
            println!("{} {} ({}) — {}", m.id, m.version, m.name, plugin.digest);
            println!("  world {} of monti:plugin@{}; {} bytes", m.world, m.sdk, plugin.size);
            println!(
                "  asks for: {} ms CPU and {} MiB memory per batch; {} bytes of storage; events out: {}",
                m.limits.cpu_ms,
                m.limits.memory_mb,
                m.capabilities.kv_bytes,
                if m.capabilities.emits_events { "yes" } else { "no" }
            );
            for (what, list) in [("HTTP", &m.capabilities.http), ("streams", &m.capabilities.streams)] {
                if !list.is_empty() {
                    println!("  {what}: {}", list.join(", "));
                }
            }
            for (name, destination) in &m.capabilities.secrets {
                println!("  secret {name}, only for {destination}");
            }
            println!("valid");
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Run {
            file,
            events,
            plugin_config: config,
            allow_private_networks,
        } => {
            let (engine, plugin) = read_plugin(&file)?;
            let text = std::fs::read_to_string(&events).with_context(|| format!("cannot read {}", events.display()))?;
            let parsed: Vec<crate::domain::events::Event> = if text.trim_start().starts_with('[') {
                serde_json::from_str(&text)
                    .with_context(|| format!("{}: not a JSON array of events", events.display()))?
            } else {
                text.lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                    .map(|(i, l)| {
                        serde_json::from_str(l).with_context(|| format!("{} line {}", events.display(), i + 1))
                    })
                    .collect::<anyhow::Result<_>>()?
            };
            let config_json = config.unwrap_or_else(|| "{}".into());
            serde_json::from_str::<serde_json::Value>(&config_json).context("--config is not JSON")?;
            let limits = crate::plugins::Limits::requested(&plugin.manifest);
            let invocation = crate::plugins::Invocation::events(
                config_json,
                Default::default(),
                parsed.iter().map(crate::plugins::convert::to_wit).collect(),
            );
            let grants = crate::plugins::Grants {
                http: plugin.manifest.capabilities.http.clone(),
                allow_private_networks,
                ..Default::default()
            };
            let ran = tokio::task::spawn_blocking(move || engine.run(&plugin, invocation, &grants, &limits)).await?;
            match ran {
                Ok(outcome) => {
                    for line in &outcome.logs {
                        eprintln!("[{}] {}", line.level, line.message);
                    }
                    let (emitted, _) = crate::plugins::convert::emitted(outcome.emitted.clone());
                    for event in &emitted {
                        println!("{}", serde_json::to_string(event)?);
                    }
                    eprintln!(
                        "{}: {} events emitted, {} keys stored, {:.1} ms, {} KiB of memory at most",
                        match &outcome.result {
                            Ok(()) => "ok".to_owned(),
                            Err(e) if e.retryable => format!("error (retryable): {}", e.message),
                            Err(e) => format!("error: {}", e.message),
                        },
                        outcome.emitted.len(),
                        outcome.kv.len(),
                        outcome.duration.as_secs_f64() * 1000.0,
                        outcome.memory_high_water / 1024
                    );
                    Ok(if outcome.result.is_ok() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    })
                }
                Err(failure) => {
                    for line in &failure.logs {
                        eprintln!("[{}] {}", line.level, line.message);
                    }
                    eprintln!("failed: {failure}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

/// `HH:MM` as seconds after midnight.
fn day_time(text: &str) -> anyhow::Result<u32> {
    let (h, m) = text
        .split_once(':')
        .ok_or_else(|| anyhow!("--day-time must look like 10:00"))?;
    let (h, m): (u32, u32) = (
        h.trim().parse().context("--day-time: hours")?,
        m.trim().parse().context("--day-time: minutes")?,
    );
    if h > 23 || m > 59 {
        return Err(anyhow!("--day-time must be from 00:00 to 23:59"));
    }
    Ok(h * 3600 + m * 60)
}

async fn simulate(config_file: &Option<PathBuf>, args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let config = load(&sources(config_file, None, &args.data))?;
    crate::telemetry::init_logging(config.log_format, "warn");
    let speed = match args.speed.trim() {
        "max" => None,
        text => {
            let speed: f64 = text.parse().context("--speed must be a number or `max`")?;
            if !(speed.is_finite() && speed > 0.0 && speed <= 100_000.0) {
                return Err(anyhow!("--speed must be above 0 and at most 100000, or `max`"));
            }
            Some(speed)
        }
    };
    let duration = args
        .duration
        .as_deref()
        .map(humantime::parse_duration)
        .transpose()
        .context("--duration, e.g. 1h or 30m")?;
    if speed.is_none() && duration.is_none() {
        return Err(anyhow!("--speed max needs a --duration (or it would never end)"));
    }
    if speed.is_some_and(|s| s > 1.0) && duration.is_none() {
        return Err(anyhow!(
            "a --speed above 1 needs a --duration (simulated time may not pass the present)"
        ));
    }
    if !(args.load.is_finite() && args.load > 0.0 && args.load <= 100.0) {
        return Err(anyhow!("--load must be above 0 and at most 100"));
    }
    let day_offset_s = day_time(&args.day_time)?;
    let scenario = crate::demo::scenario(args.agents, args.seed);
    let local = if args.provision || args.token.is_none() {
        let store = Store::open(&config)
            .await
            .context("the local database is needed to provision or to issue a token (or pass --token)")?;
        let tenant = tenants::by_slug(&store, &args.tenant)
            .await
            .map_err(explain)?
            .ok_or_else(|| anyhow!("no tenant with slug `{}` (see `monti admin tenant list`)", args.tenant))?;
        Some((store, tenant))
    } else {
        None
    };
    if let (true, Some((store, tenant))) = (args.provision, &local) {
        let scope = tenants::system_scope(store, &tenant.slug, crate::store::SystemActor::Operator)
            .await
            .map_err(explain)?;
        let done = crate::simulate::provision(store, &scope, &scenario)
            .await
            .map_err(explain)?;
        eprintln!(
            "tenant {}: {} agents created, {} were there",
            tenant.slug, done.created_agents, done.existing_agents
        );
    }
    let token = match (&args.token, &local) {
        (Some(token), _) => token.clone(),
        (None, Some((store, tenant))) => {
            let expires = Some(crate::domain::time::now_ms() + 24 * 3600 * 1000);
            let issued = tokens::issue(store, Some(&tenant.id), "simulator", Role::TenantAdmin, expires, "cli")
                .await
                .map_err(explain)?;
            eprintln!("issued token {} for the simulator (valid for a day)", issued.token.id);
            issued.secret
        }
        (None, None) => unreachable!("a token is issued locally when none is given"),
    };
    let url = args.url.clone().unwrap_or_else(|| config.public_url());
    let sink = crate::simulate::Sink::remote(&url, &token)?;
    let now = crate::domain::time::now_ms();
    let params = crate::sim::SimParams {
        seed: args.seed,
        run_id: format!("sim{}-{}", args.seed, now / 1000),
        day_offset_s,
        load: args.load,
        ..Default::default()
    };
    // Faster than real time, the simulated day would run into the future, which events may
    // not: it starts as far in the past as it will cover.
    let start_ms = match (speed, duration) {
        (Some(s), _) if s <= 1.0 => now,
        (_, Some(d)) => now - d.as_millis() as i64,
        (_, None) => now,
    };
    let mut simulation = crate::sim::Simulation::new(&scenario, params, start_ms);
    eprintln!(
        "simulating {} agents in {} queues against {url} (seed {}, speed {})",
        scenario.agents.len(),
        scenario.queues.len(),
        args.seed,
        args.speed
    );
    let mut progress = crate::simulate::ProgressLine::new(start_ms, duration);
    let pace = crate::simulate::Pace {
        speed,
        duration,
        warm_up: std::time::Duration::ZERO,
    };
    let run = crate::simulate::run(&mut simulation, &sink, pace, |sim, sent, done| {
        progress.update(sim, sent, done)
    });
    let sent = tokio::select! {
        sent = run => sent?,
        _ = web::shutdown_signal() => {
            eprintln!("\nstopped");
            return Ok(ExitCode::SUCCESS);
        }
    };
    let stats = simulation.stats().total();
    eprintln!(
        "done: {} events accepted, {} duplicates, {} rejected; {} calls offered, {} answered, service level {}",
        sent.accepted,
        sent.duplicates,
        sent.rejected,
        stats.offered,
        stats.answered,
        stats
            .service_level()
            .map_or("–".into(), |v| format!("{:.1}%", v * 100.0))
    );
    Ok(if sent.rejected > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn healthcheck(config_file: &Option<PathBuf>, url: Option<String>) -> anyhow::Result<ExitCode> {
    let base = match url {
        Some(u) => u,
        None => load(&sources(config_file, None, &DataArgs::default()))?.public_url(),
    };
    match probe(&format!("{}/readyz", base.trim_end_matches('/'))).await {
        Ok(200) => {
            println!("ready");
            Ok(ExitCode::SUCCESS)
        }
        Ok(status) => {
            println!("not ready (HTTP {status})");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            println!("not reachable: {e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A minimal HTTP/1.1 GET over plain TCP: enough for a local health probe without pulling in
/// an HTTP client.
async fn probe(url: &str) -> anyhow::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("only http:// URLs can be probed"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let connect = tokio::net::TcpStream::connect(authority);
    let mut stream = tokio::time::timeout(std::time::Duration::from_secs(5), connect)
        .await
        .context("timed out connecting")??;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = vec![0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut head))
        .await
        .context("timed out waiting for a response")??;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP response"))
}

async fn admin_store(config_file: &Option<PathBuf>, data: &DataArgs) -> anyhow::Result<Store> {
    let config = load(&sources(config_file, None, data))?;
    crate::telemetry::init_logging(config.log_format, "warn");
    Ok(Store::open(&config).await?)
}

async fn admin(config_file: &Option<PathBuf>, command: AdminCommand) -> anyhow::Result<ExitCode> {
    match command {
        AdminCommand::Tenant(TenantCommand::Create {
            slug,
            name,
            timezone,
            data,
        }) => {
            let store = admin_store(config_file, &data).await?;
            let input = tenants::TenantCreate {
                slug,
                name,
                timezone,
                features: Default::default(),
                limits: Default::default(),
            };
            let origin = crate::store::audit::Origin::default();
            let tenant = crate::service::tenants::create(&store, "cli", &origin, input)
                .await
                .map_err(explain)?;
            println!(
                "created tenant {} ({}), time zone {}",
                tenant.slug, tenant.id, tenant.timezone
            );
        }
        AdminCommand::Tenant(TenantCommand::List { data }) => {
            let store = admin_store(config_file, &data).await?;
            let all = tenants::list_all(&store).await.map_err(explain)?;
            println!("{:<24} {:<32} {:<24} ID", "SLUG", "NAME", "TIME ZONE");
            for t in all {
                println!("{:<24} {:<32} {:<24} {}", t.slug, t.name, t.timezone, t.id);
            }
        }
        AdminCommand::Token(TokenCommand::Create {
            tenant,
            role,
            platform,
            name,
            expires,
            data,
        }) => {
            let store = admin_store(config_file, &data).await?;
            let role: Role = if platform { Role::PlatformAdmin } else { role.parse()? };
            let issued = match &tenant {
                // A tenant's token: the flow the API and the admin page use, audited as `cli`.
                Some(slug) => {
                    let scope = tenants::system_scope(&store, slug, crate::store::SystemActor::Operator)
                        .await
                        .map_err(|e| match e {
                            crate::store::StoreError::NotFound { .. } => {
                                anyhow!("no tenant with slug `{slug}` (see `monti admin tenant list`)")
                            }
                            other => explain(other),
                        })?;
                    let request = crate::service::access::TokenRequest {
                        name: name.clone(),
                        role,
                        expires_in: expires.clone(),
                        scopes: Default::default(),
                    };
                    let origin = crate::store::audit::Origin::default();
                    crate::service::access::issue_token(&store, &scope, &origin, request)
                        .await
                        .map_err(|e| match e {
                            crate::service::access::AccessError::Invalid(v) => {
                                explain(crate::store::StoreError::Invalid(v))
                            }
                            other => anyhow!(other),
                        })?
                }
                None => {
                    let expires_at = expires
                        .as_deref()
                        .map(crate::service::access::expiry_from_lifetime)
                        .transpose()
                        .map_err(|e| anyhow!("--expires: {e}"))?;
                    tokens::issue(&store, None, &name, role, expires_at, "cli")
                        .await
                        .map_err(explain)?
                }
            };
            // Only the token on stdout, so it can be captured: TOKEN=$(monti admin token create …)
            println!("{}", issued.secret);
            eprintln!("created token {} ({role}) — it is shown only once", issued.token.id);
        }
        AdminCommand::Token(TokenCommand::List {
            tenant,
            platform: _,
            data,
        }) => {
            let store = admin_store(config_file, &data).await?;
            let tenant_id = match &tenant {
                Some(slug) => Some(
                    tenants::by_slug(&store, slug)
                        .await
                        .map_err(explain)?
                        .ok_or_else(|| anyhow!("no tenant with slug `{slug}`"))?
                        .id,
                ),
                None => None,
            };
            let list = tokens::list_for_operator(&store, tenant_id.as_ref())
                .await
                .map_err(explain)?;
            println!(
                "{:<38} {:<20} {:<14} {:<14} {:<10} CREATED",
                "ID", "NAME", "ROLE", "PREFIX", "STATUS"
            );
            let now = crate::domain::time::now_ms();
            for t in list {
                let status = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.expires_at.is_some_and(|e| e <= now) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{:<38} {:<20} {:<14} {:<14} {:<10} {}",
                    t.id,
                    t.name,
                    t.role,
                    t.token_prefix,
                    status,
                    crate::domain::time::to_rfc3339(t.created_at)
                );
            }
        }
        AdminCommand::User(command) => return user_command(config_file, command).await,
        AdminCommand::Token(TokenCommand::Revoke { id, data }) => {
            let store = admin_store(config_file, &data).await?;
            tokens::revoke_for_operator(&store, &id).await.map_err(explain)?;
            println!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn user_command(config_file: &Option<PathBuf>, command: UserCommand) -> anyhow::Result<ExitCode> {
    use crate::service::identity;
    use crate::store::accounts;
    let find = |store: Store, email: String| async move {
        accounts::by_email(&store, &email)
            .await
            .map_err(explain)?
            .ok_or_else(|| anyhow!("no account with email `{email}` (see `monti admin user list`)"))
    };
    match command {
        UserCommand::Create {
            email,
            name,
            password_stdin,
            platform_admin,
            tenant,
            role,
            data,
        } => {
            let store = admin_store(config_file, &data).await?;
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                (crate::secrets::random_secret()[..20].to_owned(), true)
            };
            let role: Option<Role> = role.map(|r| r.parse()).transpose()?;
            let tenant = match &tenant {
                Some(slug) => Some(
                    tenants::by_slug(&store, slug)
                        .await
                        .map_err(explain)?
                        .ok_or_else(|| anyhow!("no tenant with slug `{slug}`"))?,
                ),
                None => None,
            };
            let request = identity::AccountRequest {
                email,
                display_name: name,
                password: password.clone(),
                platform_admin,
                membership: tenant.zip(role),
            };
            let account = identity::create_account(&store, Some("cli"), &cli_origin(), request)
                .await
                .map_err(identity_refusal)?;
            if generated {
                println!("{password}");
            }
            eprintln!("created account {} ({})", account.email, account.id);
        }
        UserCommand::List { data } => {
            let store = admin_store(config_file, &data).await?;
            println!(
                "{:<36} {:<32} {:<24} {:<9} {:<8} TENANTS",
                "ID", "EMAIL", "NAME", "STATUS", "PLATFORM"
            );
            for account in accounts::list_all(&store).await.map_err(explain)? {
                let memberships = accounts::memberships(&store, &account.id).await.map_err(explain)?;
                let tenants: Vec<String> = memberships
                    .iter()
                    .map(|m| format!("{}:{}", m.tenant_slug, m.role))
                    .collect();
                println!(
                    "{:<36} {:<32} {:<24} {:<9} {:<8} {}",
                    account.id,
                    account.email,
                    account.display_name,
                    if account.disabled { "disabled" } else { "active" },
                    if account.platform_admin { "yes" } else { "no" },
                    tenants.join(", ")
                );
            }
        }
        UserCommand::Disable { email, data } => {
            let store = admin_store(config_file, &data).await?;
            let account = find(store.clone(), email).await?;
            let ended = identity::set_disabled(&store, "cli", &cli_origin(), &account, true)
                .await
                .map_err(identity_refusal)?;
            println!("disabled {} ({ended} sessions ended)", account.email);
        }
        UserCommand::Enable { email, data } => {
            let store = admin_store(config_file, &data).await?;
            let account = find(store.clone(), email).await?;
            identity::set_disabled(&store, "cli", &cli_origin(), &account, false)
                .await
                .map_err(identity_refusal)?;
            println!("enabled {}", account.email);
        }
        UserCommand::ResetLink { email, data } => {
            let config = load(&sources(config_file, None, &data))?;
            let store = admin_store(config_file, &data).await?;
            let account = find(store.clone(), email).await?;
            let lifetime = config.auth.password_reset_lifetime;
            let link = identity::reset_link(
                &store,
                &config.public_url(),
                "cli",
                None,
                &cli_origin(),
                &account.id,
                lifetime,
            )
            .await
            .map_err(identity_refusal)?;
            println!("{link}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Store errors with their field details, for people at a terminal.
fn explain(e: crate::store::StoreError) -> anyhow::Error {
    match e {
        crate::store::StoreError::Invalid(v) => anyhow!(
            "invalid input:\n{}",
            v.errors
                .iter()
                .map(|e| format!("  {}: {}", e.pointer.trim_start_matches('/'), e.detail))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        other => anyhow!(other),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        // Duplicate names between global and subcommand flags, and the like.
        super::Cli::command().debug_assert();
    }
}

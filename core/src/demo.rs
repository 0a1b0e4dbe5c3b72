//! The demo tenant: a small but complete contact center, created once and reused.

use crate::domain::Role;
use crate::store::entities::agents::Agent;
use crate::store::entities::dids::{DidCreate, DidRow};
use crate::store::entities::endpoints::{EndpointCreate, EndpointRow};
use crate::store::entities::queues::Queue;
use crate::store::entities::teams::Team;
use crate::store::resource;
use crate::store::{Store, StoreResult, TenantScope, tenants, tokens};

pub const DEMO_SLUG: &str = "demo";
/// Agents of the demo floor that get a SIP endpoint (enough to show the telephony pages).
const ENDPOINTS: usize = 24;

/// The demo's contact center: the simulator's default scenario with `agents` agents.
pub fn scenario(agents: usize, seed: u64) -> crate::sim::Scenario {
    crate::sim::Scenario::generate(&crate::sim::ScenarioConfig {
        agents,
        seed,
        ..Default::default()
    })
}

/// What the demo prints so a newcomer can sign in.
pub struct DemoLogin {
    pub tenant: String,
    pub token: String,
    pub created: bool,
    /// (what, email, password) for each demo account, with a fresh password per run.
    pub accounts: Vec<(&'static str, &'static str, String)>,
}

const ADMIN_EMAIL: &str = "admin@demo.example";
const SUPERVISOR_EMAIL: &str = "supervisor@demo.example";

/// Makes sure a demo account exists with `role` (and scope) and gives it a fresh password.
async fn demo_account(
    store: &Store,
    tenant_id: &crate::store::TenantId,
    email: &str,
    name: &str,
    role: Role,
    team_scope: &[String],
) -> StoreResult<String> {
    use crate::store::accounts;
    let password = format!("demo-{}", &crate::secrets::random_secret()[..16]);
    let hash = crate::auth::password::hash(&password).map_err(|e| crate::store::StoreError::Internal(e.to_string()))?;
    let account = match accounts::by_email(store, email).await? {
        Some(a) => {
            accounts::set_password(store, &a.id, &hash).await?;
            a
        }
        None => {
            accounts::create(
                store,
                accounts::NewAccount {
                    email: email.into(),
                    display_name: Some(name.into()),
                    password_hash: Some(hash),
                    platform_admin: false,
                },
            )
            .await?
        }
    };
    accounts::set_disabled(store, &account.id, false).await?;
    accounts::grant_membership(store, &account.id, tenant_id, role, team_scope, &[]).await?;
    Ok(password)
}

/// Creates the demo tenant if it does not exist (and any of the scenario's agents it lacks),
/// and issues a fresh admin token.
pub async fn seed(store: &Store, scenario: &crate::sim::Scenario) -> StoreResult<DemoLogin> {
    let created = match tenants::by_slug(store, DEMO_SLUG).await? {
        Some(_) => false,
        None => {
            tenants::create(
                store,
                tenants::TenantCreate {
                    slug: DEMO_SLUG.into(),
                    name: "Demo Contact Center".into(),
                    timezone: Some("Europe/Berlin".into()),
                    features: Default::default(),
                    limits: Default::default(),
                },
            )
            .await?;
            let scope = tenants::system_scope(store, DEMO_SLUG, crate::store::SystemActor::Demo).await?;
            crate::simulate::provision(store, &scope, scenario).await?;
            populate(store, &scope).await?;
            true
        }
    };
    if !created {
        let scope = tenants::system_scope(store, DEMO_SLUG, crate::store::SystemActor::Demo).await?;
        crate::simulate::provision(store, &scope, scenario).await?;
    }
    let tenant = tenants::by_slug(store, DEMO_SLUG)
        .await?
        .ok_or(crate::store::StoreError::NotFound { kind: "tenant" })?;
    let issued = tokens::issue(store, Some(&tenant.id), "demo", Role::TenantAdmin, None, "demo").await?;
    let scope = tenants::system_scope(store, DEMO_SLUG, crate::store::SystemActor::Demo).await?;
    let sales: Vec<String> = resource::list::<Team>(store, &scope, &Default::default())
        .await?
        .items
        .into_iter()
        .filter(|t| t.name == "Sales")
        .map(|t| t.id)
        .collect();
    let admin = demo_account(store, &tenant.id, ADMIN_EMAIL, "Demo Admin", Role::TenantAdmin, &[]).await?;
    let supervisor = demo_account(
        store,
        &tenant.id,
        SUPERVISOR_EMAIL,
        "Sam Supervisor",
        Role::Supervisor,
        &sales,
    )
    .await?;
    Ok(DemoLogin {
        tenant: tenant.slug,
        token: issued.secret,
        created,
        accounts: vec![
            ("tenant admin", ADMIN_EMAIL, admin),
            ("supervisor (team Sales only)", SUPERVISOR_EMAIL, supervisor),
        ],
    })
}

/// What the scenario does not cover: a SIP endpoint for the first agents, a number per queue.
async fn populate(store: &Store, scope: &TenantScope) -> StoreResult<()> {
    let params = crate::store::list::ListParams(vec![("limit".into(), ENDPOINTS.to_string())]);
    let agents = resource::list::<Agent>(store, scope, &params).await?.items;
    for agent in agents.iter().take(ENDPOINTS) {
        let Some(extension) = agent.extension.clone() else {
            continue;
        };
        let _: EndpointRow = resource::create(
            store,
            scope,
            EndpointCreate {
                name: extension,
                auth_username: None,
                password: Some(crate::secrets::new_api_token()[6..30].to_owned()),
                transport: Some("udp".into()),
                codecs: None,
                context: None,
                max_contacts: Some(1),
                agent_id: Some(agent.id.clone()),
            },
        )
        .await?;
    }
    let queues = resource::list::<Queue>(store, scope, &Default::default()).await?.items;
    for (i, queue) in queues.iter().enumerate() {
        let _: DidRow = resource::create(
            store,
            scope,
            DidCreate {
                number: format!("+4930555{:04}", 100 + i),
                description: format!("{} hotline", queue.name),
                route_type: Some("queue".into()),
                route_target: Some(queue.id.clone()),
                sms_enabled: i == 1,
            },
        )
        .await?;
    }
    Ok(())
}

pub fn banner(base_url: &str, login: &DemoLogin) -> String {
    let state = if login.created { "created" } else { "already present" };
    let mut out = format!(
        "\n  Monti demo is running: {base_url}/\n\
         \x20 Tenant `{tenant}` ({state}). Sign in at {base_url}/login with (passwords are new each run):\n\n",
        tenant = login.tenant,
    );
    for (what, email, password) in &login.accounts {
        out.push_str(&format!("    {what:<30} {email:<26} {password}\n"));
    }
    out.push_str(&format!(
        "\n  Admin API token for this run:\n\n    {token}\n\n\
         \x20 Try:  curl -H \"Authorization: Bearer {token}\" {base_url}/api/v1/agents\n\
         \x20 API reference: {base_url}/api/docs\n",
        token = login.token,
    ));
    out
}

/// The Asterisk connector's component for `monti demo --asterisk`: the given file, or what
/// `cargo build --release --target wasm32-wasip2 -p monti-plugin-asterisk` wrote.
pub fn asterisk_plugin(given: Option<&std::path::Path>) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context as _;
    let path = match given {
        Some(path) => path.to_path_buf(),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| std::path::PathBuf::from("target"));
            target.join("wasm32-wasip2/release/monti_plugin_asterisk.wasm")
        }
    };
    std::fs::read(&path).with_context(|| {
        format!(
            "cannot read the Asterisk connector at {}: build it first with \
             `cargo build --release --target wasm32-wasip2 -p monti-plugin-asterisk` \
             (or give it with --asterisk-plugin FILE)",
            path.display()
        )
    })
}

/// Starts a simulated Asterisk PBX for the demo floor (its manager interface, every agent a
/// member of its queues once it logs in, and its REST interface for hold and listening in) and
/// installs, configures and enables the Asterisk connector in the demo tenant against it. The
/// simulator then plays the floor's events as the PBX would report them.
pub async fn connect_asterisk(
    app: &crate::web::AppState,
    scope: &TenantScope,
    scenario: &crate::sim::Scenario,
    component: &[u8],
) -> anyhow::Result<std::sync::Arc<crate::asterisk::SimulatedPbx>> {
    let password = crate::secrets::random_secret();
    let ari_password = crate::secrets::random_secret();
    let pbx = crate::asterisk::SimulatedPbx::start(&password, &ari_password).await?;
    for agent in &scenario.agents {
        let queues = agent
            .queues
            .iter()
            .filter_map(|q| scenario.queues.get(*q))
            .map(|q| (q.name.clone(), q.wrap_up_s.round() as u32))
            .collect();
        pbx.ami.set_queues(&agent.extension, queues);
    }
    let store = &app.store;
    let config = serde_json::json!({
        "host": "127.0.0.1", "port": pbx.ami.port(), "username": "monti", "auth": "md5",
        "ari_host": "127.0.0.1", "ari_port": pbx.ari.port(), "ari_user": "monti",
    })
    .to_string();
    // Through the same flow and policy as any installation: an operator who does not allow the
    // connector for the demo tenant gets a refusal here, not a connector.
    let ctx = crate::service::plugins::PluginContext::running(store, &app.plugins)?;
    let origin = crate::store::audit::Origin::default();
    let installed =
        crate::service::plugins::install(&ctx, scope, &origin, std::sync::Arc::from(component), Some(&config))
            .await
            .map_err(|e| anyhow::anyhow!("installing the Asterisk connector: {e}"))?
            .installation;
    let change = crate::service::plugins::Change {
        enabled: Some(true),
        secrets: [("password", password), ("ari_password", ari_password)]
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
        approve_capabilities: true,
        ..Default::default()
    };
    crate::service::plugins::update(app.running_plugins(), scope, &origin, &installed.id, change)
        .await
        .map_err(|e| anyhow::anyhow!("enabling the Asterisk connector: {e}"))?;
    Ok(std::sync::Arc::new(pbx))
}

/// The demo day's bad spells, so that a supervisor sees within minutes what Monti is for: the
/// second queue gets more than twice its calls from just before the board opens (10:00 on the
/// demo's clock) until 10:25 — callers wait, some hang up, its service level falls below target
/// and the starter alerts fire — and later in the day two other queues have a rush of their own.
pub fn surges(scenario: &crate::sim::Scenario) -> Vec<crate::sim::Surge> {
    let queue = |i: usize| scenario.queues.get(i).map(|q| q.name.clone());
    let spell = |name: Option<String>, from: (u32, u32), to: (u32, u32), factor: f64| {
        name.map(|queue| crate::sim::Surge {
            queue,
            from_s: from.0 * 3600 + from.1 * 60,
            to_s: to.0 * 3600 + to.1 * 60,
            factor,
        })
    };
    let second = queue(1).or_else(|| queue(0));
    [
        spell(second, (9, 57), (10, 25), 2.3),
        spell(queue(2), (10, 50), (11, 10), 1.9),
        spell(queue(4), (14, 10), (14, 35), 2.0),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The demo's outage: the phones of the team that owns the first queue go down for twelve
/// minutes soon after the board opens (10:00 on the demo's clock), so its queue falls behind.
pub fn outages(scenario: &crate::sim::Scenario) -> Vec<crate::sim::Outage> {
    let team = scenario
        .queues
        .first()
        .and_then(|q| scenario.teams.get(q.team))
        .or_else(|| scenario.teams.first());
    team.map(|team| crate::sim::Outage {
        team: team.clone(),
        from_s: 10 * 3600 + 4 * 60,
        to_s: 10 * 3600 + 16 * 60,
    })
    .into_iter()
    .collect()
}

/// Callers still waiting from an earlier run of the demo: their calls ended with that run, but
/// no event said so, and a floor rebuilt from the day's events would show them waiting for
/// ever (and keep the long-wait alerts firing). They leave their queues now, as timeouts.
pub async fn end_earlier_run(
    live: &std::sync::Arc<crate::live::service::LiveService>,
    scope: &TenantScope,
) -> anyhow::Result<usize> {
    use crate::domain::events::{Event, EventBody, LeaveReason};
    let now = crate::domain::time::now_ms();
    let floor = live.floor(scope).await?;
    let leaving: Vec<Event> = {
        let state = floor.live.lock().unwrap_or_else(|e| e.into_inner());
        state
            .queues()
            .iter()
            .flat_map(|queue| {
                queue.waiting_calls().into_iter().map(move |(call, joined)| Event {
                    v: 1,
                    id: format!("demo-ended-{call}"),
                    source: "demo".into(),
                    at: chrono::DateTime::from_timestamp_millis(now).unwrap_or_default(),
                    body: EventBody::CallerLeave {
                        queue: queue.id.to_string(),
                        call: call.to_string(),
                        reason: LeaveReason::Timeout,
                        // Events say at most a day (the floor is rebuilt from the last one).
                        wait_s: ((now - joined).max(0) as f64 / 1000.0).min(86_400.0),
                    },
                })
            })
            .collect()
    };
    if leaving.is_empty() {
        return Ok(0);
    }
    let outcomes = live.ingest(scope, leaving.into_iter().map(Ok).collect(), now).await?;
    Ok(outcomes
        .iter()
        .filter(|o| matches!(o, crate::live::service::Outcome::Accepted(_)))
        .count())
}

/// Disables the Asterisk connector of an earlier `demo --asterisk` run, if the demo tenant has
/// one enabled: this run has no simulated PBX for it to reach.
pub async fn disconnect_asterisk(app: &crate::web::AppState, scope: &TenantScope) {
    let Ok(installed) = crate::store::plugins::get(&app.store, scope, "asterisk").await else {
        return;
    };
    if !installed.enabled {
        return;
    }
    let change = crate::service::plugins::Change {
        enabled: Some(false),
        ..Default::default()
    };
    let origin = crate::store::audit::Origin::default();
    match crate::service::plugins::update(app.running_plugins(), scope, &origin, &installed.id, change).await {
        Ok(_) => tracing::info!("the Asterisk connector of an earlier `demo --asterisk` run is disabled"),
        Err(e) => tracing::warn!(error = %e, "disabling an earlier run's Asterisk connector failed"),
    }
}

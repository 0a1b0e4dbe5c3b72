//! The demo tenant: a small but complete contact center, created once and reused.

use crate::domain::Role;
use crate::store::entities::agents::{Agent, AgentCreate};
use crate::store::entities::dids::{DidCreate, DidRow};
use crate::store::entities::endpoints::{EndpointCreate, EndpointRow};
use crate::store::entities::locations::{Location, LocationCreate};
use crate::store::entities::queues::{self, Queue, QueueCreate, QueueMemberInput};
use crate::store::entities::teams::{Team, TeamCreate};
use crate::store::resource;
use crate::store::{Store, StoreResult, TenantScope, tenants, tokens};

pub const DEMO_SLUG: &str = "demo";
const AGENTS_PER_TEAM: usize = 12;

const TEAMS: &[(&str, &str)] = &[
    ("Sales", "New customers and upgrades"),
    ("Support", "First-line technical support"),
    ("Billing", "Invoices, payments and refunds"),
    ("Retention", "Customers who want to leave"),
];
const LOCATIONS: &[(&str, Option<&str>)] = &[
    ("Berlin", Some("Europe/Berlin")),
    ("Lisbon", Some("Europe/Lisbon")),
    ("Remote", None),
];
/// (queue, team index, SL threshold s, SL target %, wrap-up s)
const QUEUES: &[(&str, usize, i64, i64, i64)] = &[
    ("Sales", 0, 20, 80, 30),
    ("Support", 1, 30, 80, 60),
    ("Billing", 2, 20, 90, 45),
    ("VIP", 3, 10, 95, 60),
];
const FIRST: &[&str] = &[
    "Ana", "Ben", "Chiara", "Dmitri", "Emma", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kemal", "Lena", "Mateo",
    "Nora", "Oskar", "Paula",
];
const LAST: &[&str] = &[
    "Almeida", "Becker", "Costa", "Dietrich", "Esposito", "Fischer", "Gomes", "Hoffmann", "Iversen", "Jansen", "Klein",
];

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
    tenant_id: &str,
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

/// Creates the demo tenant if it does not exist, and issues a fresh admin token.
pub async fn seed(store: &Store) -> StoreResult<DemoLogin> {
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
            let scope = tenants::operator_scope(store, DEMO_SLUG).await?;
            populate(store, &scope).await?;
            true
        }
    };
    let tenant = tenants::by_slug(store, DEMO_SLUG)
        .await?
        .ok_or(crate::store::StoreError::NotFound { kind: "tenant" })?;
    let issued = tokens::issue(store, Some(&tenant.id), "demo", Role::TenantAdmin, None, "demo").await?;
    let scope = tenants::operator_scope(store, DEMO_SLUG).await?;
    let sales: Vec<String> = resource::list::<Team>(store, &scope, &Default::default())
        .await?
        .items
        .into_iter()
        .filter(|t| t.name == TEAMS[0].0)
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

async fn populate(store: &Store, scope: &TenantScope) -> StoreResult<()> {
    let mut teams = Vec::new();
    for (name, description) in TEAMS {
        let team: Team = resource::create(
            store,
            scope,
            TeamCreate {
                name: (*name).into(),
                description: (*description).into(),
            },
        )
        .await?;
        teams.push(team);
    }
    let mut locations = Vec::new();
    for (name, tz) in LOCATIONS {
        let location: Location = resource::create(
            store,
            scope,
            LocationCreate {
                name: (*name).into(),
                timezone: tz.map(str::to_owned),
                address: String::new(),
            },
        )
        .await?;
        locations.push(location);
    }
    let mut agents_by_team: Vec<Vec<String>> = vec![Vec::new(); teams.len()];
    let mut n = 0usize;
    for (t, team) in teams.iter().enumerate() {
        for i in 0..AGENTS_PER_TEAM {
            let extension = format!("{}", 1001 + n);
            let name = format!("{} {}", FIRST[n % FIRST.len()], LAST[(n * 7 + i) % LAST.len()]);
            let agent: Agent = resource::create(
                store,
                scope,
                AgentCreate {
                    name,
                    team_id: Some(team.id.clone()),
                    location_id: Some(locations[n % locations.len()].id.clone()),
                    user_id: None,
                    extension: Some(extension.clone()),
                    interface: Some(format!("PJSIP/{extension}")),
                    skills: vec![
                        team.name.to_lowercase(),
                        if n.is_multiple_of(3) {
                            "german".into()
                        } else {
                            "english".into()
                        },
                    ],
                },
            )
            .await?;
            let _: EndpointRow = resource::create(
                store,
                scope,
                EndpointCreate {
                    name: extension.clone(),
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
            agents_by_team[t].push(agent.id);
            n += 1;
        }
    }
    for (i, (name, team, threshold, target, wrap_up)) in QUEUES.iter().enumerate() {
        let queue: Queue = resource::create(
            store,
            scope,
            QueueCreate {
                name: (*name).into(),
                description: format!("{name} line"),
                strategy: Some("rrmemory".into()),
                sl_threshold_s: Some(*threshold),
                sl_target_pct: Some(*target),
                wrap_up_s: Some(*wrap_up),
            },
        )
        .await?;
        let members: Vec<QueueMemberInput> = agents_by_team[*team]
            .iter()
            .enumerate()
            .map(|(k, id)| QueueMemberInput {
                agent_id: id.clone(),
                penalty: if k < 4 { 0 } else { 1 },
            })
            .collect();
        queues::replace_members(store, scope, &queue.id, members).await?;
        let _: DidRow = resource::create(
            store,
            scope,
            DidCreate {
                number: format!("+4930555010{i}"),
                description: format!("{name} hotline"),
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

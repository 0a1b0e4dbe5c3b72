//! The permission matrix: every API operation and every administration page, for every role,
//! with ids of the caller's own tenant and of another tenant. What a role may do follows the
//! one permission table (`monti::auth::permits`); another tenant's ids never yield data.

use crate::both_backends;
use crate::common;

use common::{TestServer, Visitor, account};
use monti::auth::{Action, Area, permits};
use monti::domain::Role;
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

/// The ids of one tenant's seeded rows, by collection.
async fn seed(s: &TestServer, token: &str, tag: &str) -> Vec<(&'static str, String)> {
    let post = |path: &'static str, body: Value| async move { s.post(path, token, body).await.expect(201).id() };
    let team = post("/api/v1/teams", json!({ "name": format!("{tag} team") })).await;
    let location = post("/api/v1/locations", json!({ "name": format!("{tag} site") })).await;
    let agent = post(
        "/api/v1/agents",
        json!({ "name": format!("{tag} agent"), "team_id": team }),
    )
    .await;
    let queue = post("/api/v1/queues", json!({ "name": format!("{tag} queue") })).await;
    let endpoint = post("/api/v1/endpoints", json!({ "name": format!("{tag}-ep") })).await;
    let number = if tag == "own" { "+4930111000" } else { "+4930222000" };
    let did = post(
        "/api/v1/dids",
        json!({ "number": number, "route_type": "queue", "route_target": queue }),
    )
    .await;
    // Adding a user through the API is an invitation; a member to point at is made directly.
    let user = account(
        &s.store,
        &format!("{tag}-member@example.com"),
        PASSWORD,
        Some((tag, Role::Agent)),
        false,
    )
    .await;
    let tok = post(
        "/api/v1/tokens",
        json!({ "name": format!("{tag} token"), "role": "viewer" }),
    )
    .await;
    s.put(
        &format!("/api/v1/queues/{queue}/members"),
        token,
        json!([{ "agent_id": agent }]),
    )
    .await
    .expect(200);
    vec![
        ("teams", team),
        ("locations", location),
        ("agents", agent.clone()),
        ("queues", queue),
        ("endpoints", endpoint),
        ("dids", did),
        ("users", user),
        ("tokens", tok),
        ("agent", agent),
    ]
}

/// The permission area an API path belongs to; `None` for open endpoints.
fn area_of(path: &str) -> Option<Area> {
    let rest = path.strip_prefix("/api/v1/")?;
    let first = rest.split('/').next().unwrap_or_default();
    Some(match first {
        "teams" | "locations" | "agents" | "queues" | "dids" | "endpoints" | "plugins" => Area::Configuration,
        "users" | "invitations" => Area::Users,
        "tokens" => Area::Tokens,
        "tenant" => Area::TenantSettings,
        "tenants" => Area::Tenants,
        "audit" => Area::Audit,
        "events" => Area::Ingest,
        "live" => Area::Live,
        _ => return None,
    })
}

fn fill(path: &str, ids: &[(&'static str, String)], tenant_id: &str) -> String {
    let collection = path
        .trim_start_matches("/api/v1/")
        .split('/')
        .next()
        .unwrap_or_default();
    let id = ids
        .iter()
        .find(|(c, _)| *c == collection)
        .map(|(_, id)| id.as_str())
        .unwrap_or(tenant_id);
    let agent = ids
        .iter()
        .find(|(c, _)| *c == "agent")
        .map(|(_, id)| id.as_str())
        .unwrap_or_default();
    path.replace("{agent_id}", agent)
        .replace("{id}", id)
        .replace("{letter}", "dl_none")
}

async fn status(s: &TestServer, method: &str, path: &str, token: &str) -> u16 {
    if path.ends_with("/live/stream") || path.ends_with("/live/ws") {
        // Streams do not end: the status is all there is to see (the body is left unread).
        let response = s.client.get(s.url(path)).bearer_auth(token).send().await.unwrap();
        return response.status().as_u16();
    }
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let body = match method {
        Method::GET | Method::DELETE => None,
        Method::PUT if path.ends_with("/members") => Some(json!([])),
        _ => Some(json!({})),
    };
    s.call(method, path, token, body).await.status.as_u16()
}

both_backends!(every_api_operation_for_every_role);
async fn every_api_operation_for_every_role(s: &TestServer) {
    let own_admin = s.tenant("own", Role::TenantAdmin).await;
    let foreign_admin = s.tenant("foreign", Role::TenantAdmin).await;
    let own_tenant = monti::store::tenants::by_slug(&s.store, "own")
        .await
        .unwrap()
        .unwrap()
        .id;
    let foreign_tenant = monti::store::tenants::by_slug(&s.store, "foreign")
        .await
        .unwrap()
        .unwrap()
        .id;
    let openapi: Value = s
        .client
        .get(s.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut cells = 0;
    for role in [
        Role::Viewer,
        Role::Agent,
        Role::Supervisor,
        Role::TenantAdmin,
        Role::PlatformAdmin,
    ] {
        // Fresh rows per role: an allowed DELETE may remove them.
        let own = seed(s, &own_admin, "own").await;
        let foreign = seed(s, &foreign_admin, "foreign").await;
        let token = match role {
            Role::PlatformAdmin => s.platform_token().await,
            r => s.tenant("own", r).await,
        };
        for (path, item) in openapi["paths"].as_object().unwrap() {
            let Some(area) = area_of(path) else { continue };
            // Deletes run last so later operations still find their rows.
            for method in ["get", "post", "put", "patch", "delete"] {
                if item.get(method).is_none() {
                    continue;
                }
                // A stream ticket is for watching the floor, though it is posted.
                let action = if method == "get" || path.ends_with("/live/tickets") {
                    Action::Read
                } else {
                    Action::Write
                };
                let allowed = permits(role, action, area);
                let own_path = fill(path, &own, &own_tenant);
                let got = status(s, method, &own_path, &token).await;
                if allowed {
                    assert!(
                        got != 401 && got != 403,
                        "{role} may {method} {path} (own tenant) but got {got}"
                    );
                } else {
                    assert_eq!(got, 403, "{role} may not {method} {path} (own tenant)");
                }
                if path.contains('{') {
                    let foreign_path = fill(path, &foreign, &foreign_tenant);
                    let got = status(s, method, &foreign_path, &token).await;
                    let expected: &[u16] = match (allowed, area) {
                        // Platform admins address tenants by id: that is their job.
                        (true, Area::Tenants) => &[200, 404, 412, 422],
                        (true, _) => &[404],
                        (false, _) => &[403],
                    };
                    assert!(
                        expected.contains(&got),
                        "{role} {method} {path} with another tenant's ids: {got}, expected {expected:?}"
                    );
                }
                cells += 1;
            }
        }
        // Clean up what allowed deletes left, so the next role seeds into a known state.
        for (collection, id) in own.iter().chain(&foreign) {
            if *collection != "agent" {
                let token = if own.iter().any(|(_, i)| i == id) {
                    &own_admin
                } else {
                    &foreign_admin
                };
                let _ = s.delete(&format!("/api/v1/{collection}/{id}"), token).await;
            }
        }
        for (tenant_token, queue) in [(&own_admin, &own[3].1), (&foreign_admin, &foreign[3].1)] {
            let _ = s
                .put(&format!("/api/v1/queues/{queue}/members"), tenant_token, json!([]))
                .await;
        }
        for (tenant_token, ids) in [(&own_admin, &own), (&foreign_admin, &foreign)] {
            for collection in ["dids", "endpoints", "agents", "queues", "teams", "locations"] {
                if let Some((_, id)) = ids.iter().find(|(c, _)| *c == collection) {
                    let _ = s.delete(&format!("/api/v1/{collection}/{id}"), tenant_token).await;
                }
            }
        }
    }
    assert!(cells > 150, "walked {cells} operation × role cells");
}

/// The administration pages a role may see.
fn page_area(page: &str) -> Area {
    match page {
        "/admin/users" => Area::Users,
        "/admin/tokens" => Area::Tokens,
        "/admin/sessions" => Area::Sessions,
        "/admin/audit" | "/admin/audit/export.csv" => Area::Audit,
        "/admin/settings" => Area::TenantSettings,
        p if p.starts_with("/board") => Area::Live,
        p if p.starts_with("/calls") || p.starts_with("/reports") => Area::History,
        _ => Area::Configuration,
    }
}

both_backends!(every_admin_page_for_every_role);
async fn every_admin_page_for_every_role(s: &TestServer) {
    let admin = s.tenant("own", Role::TenantAdmin).await;
    let foreign_admin = s.tenant("foreign", Role::TenantAdmin).await;
    let own = seed(s, &admin, "own").await;
    let foreign = seed(s, &foreign_admin, "foreign").await;
    let pages = [
        "/admin",
        "/admin/settings",
        "/admin/users",
        "/admin/teams",
        "/admin/locations",
        "/admin/agents",
        "/admin/queues",
        "/admin/dids",
        "/admin/endpoints",
        "/admin/tokens",
        "/admin/sessions",
        "/admin/audit",
        "/admin/audit/export.csv",
        "/admin/plugins",
        "/board",
        "/board?group=queue&mode=wall",
        "/calls",
        "/calls/export",
        "/reports/queues",
        "/reports/queues/export",
        "/reports/agents",
        "/reports/agents/export",
        "/reports/saved",
        "/reports/saved/new?kind=agents",
    ];
    for role in [Role::Viewer, Role::Agent, Role::Supervisor, Role::TenantAdmin] {
        let email = format!("{}@example.com", role.as_str());
        account(&s.store, &email, PASSWORD, Some(("own", role)), false).await;
        let mut v = Visitor::new(s);
        assert_eq!(v.sign_in(&email, PASSWORD).await.status, 303);
        for page in pages {
            let got = v.get(page).await.status;
            let allowed = permits(role, Action::Read, page_area(page));
            assert_eq!(got, if allowed { 200 } else { 403 }, "{role} GET {page}");
        }
        for collection in ["teams", "locations", "agents", "queues", "dids", "endpoints"] {
            let own_id = &own.iter().find(|(c, _)| *c == collection).unwrap().1;
            let foreign_id = &foreign.iter().find(|(c, _)| *c == collection).unwrap().1;
            let readable = permits(role, Action::Read, Area::Configuration);
            let writable = permits(role, Action::Write, Area::Configuration);
            assert_eq!(
                v.get(&format!("/admin/{collection}/{own_id}")).await.status,
                if readable { 200 } else { 403 }
            );
            assert_eq!(
                v.get(&format!("/admin/{collection}/{foreign_id}")).await.status,
                if readable { 404 } else { 403 },
                "{role} reading another tenant's {collection}"
            );
            assert_eq!(
                v.get(&format!("/admin/{collection}/new")).await.status,
                if writable { 200 } else { 403 }
            );
            v.get("/account").await;
            let post = v
                .post(&format!("/admin/{collection}/{foreign_id}"), &[("name", "hijack")])
                .await
                .status;
            assert_eq!(
                post,
                if writable { 404 } else { 403 },
                "{role} writing another tenant's {collection}"
            );
            let delete = v
                .post(&format!("/admin/{collection}/{foreign_id}/delete"), &[])
                .await
                .status;
            assert_eq!(
                delete,
                if writable { 404 } else { 403 },
                "{role} deleting another tenant's {collection}"
            );
        }
        let platform = v.get("/platform/tenants").await.status;
        assert_eq!(platform, 403, "{role} is no platform admin");
    }
    // The other tenant's rows are untouched.
    let teams = s.get("/api/v1/teams", &foreign_admin).await;
    assert_eq!(teams.body["items"][0]["name"], "foreign team");
}

//! htmx swaps what it gets into the page: every admin form that fails, when htmx sent it, gets
//! a fragment saying why — never a whole page inside the page. The same forms sent without htmx
//! still get whole pages (they work without JavaScript).

use crate::common::{self, TestServer, Visitor, account};
use monti::domain::Role;

/// A form post that fails, and what the answer must say.
struct Failing {
    form_page: &'static str,
    action: &'static str,
    fields: &'static [(&'static str, &'static str)],
}

const FAILING: &[Failing] = &[
    Failing {
        form_page: "/admin/teams/new",
        action: "/admin/teams",
        fields: &[("name", "")],
    },
    Failing {
        form_page: "/admin/locations/new",
        action: "/admin/locations",
        fields: &[("name", ""), ("timezone", "Mars/Olympus")],
    },
    Failing {
        form_page: "/admin/agents/new",
        action: "/admin/agents",
        fields: &[("name", "")],
    },
    Failing {
        form_page: "/admin/queues/new",
        action: "/admin/queues",
        fields: &[("name", "Q"), ("sl_threshold_s", "soon")],
    },
    Failing {
        form_page: "/admin/dids/new",
        action: "/admin/dids",
        fields: &[("number", "not a number")],
    },
    Failing {
        form_page: "/admin/endpoints/new",
        action: "/admin/endpoints",
        fields: &[("name", "")],
    },
    Failing {
        form_page: "/admin/teams",
        action: "/admin/teams/team_nothing",
        fields: &[("name", "X")],
    },
    Failing {
        form_page: "/admin/teams",
        action: "/admin/teams/team_nothing/delete",
        fields: &[],
    },
    Failing {
        form_page: "/admin/settings",
        action: "/admin/settings",
        fields: &[("name", ""), ("timezone", "Mars/Olympus")],
    },
    Failing {
        form_page: "/admin/tokens",
        action: "/admin/tokens",
        fields: &[("name", ""), ("role", "emperor")],
    },
    Failing {
        form_page: "/admin/users",
        action: "/admin/users",
        fields: &[("email", "not-an-address"), ("role", "agent")],
    },
    Failing {
        form_page: "/admin/users",
        action: "/admin/users/user_nothing/remove",
        fields: &[],
    },
    Failing {
        form_page: "/admin/alert-rules/new",
        action: "/admin/alert-rules",
        fields: &[("name", "R"), ("scope", "queue"), ("expression", "queue.waiting >")],
    },
    Failing {
        form_page: "/admin/plugins",
        action: "/admin/plugins/nothing/enable",
        fields: &[],
    },
    Failing {
        form_page: "/admin/plugins",
        action: "/admin/plugins",
        fields: &[("component", "not a component")],
    },
    Failing {
        form_page: "/admin/agents",
        action: "/admin/agents/agent_nothing",
        fields: &[("name", "X")],
    },
    Failing {
        form_page: "/admin/agents",
        action: "/admin/agents/agent_nothing/delete",
        fields: &[],
    },
    Failing {
        form_page: "/admin/queues",
        action: "/admin/queues/queue_nothing",
        fields: &[("name", "X")],
    },
    Failing {
        form_page: "/admin/queues",
        action: "/admin/queues/queue_nothing/delete",
        fields: &[],
    },
    Failing {
        form_page: "/admin/settings",
        action: "/admin/settings/recordings",
        fields: &[
            ("kind", "directory"),
            ("location", "/etc"),
            ("pattern", "../{call}.wav"),
        ],
    },
    Failing {
        form_page: "/admin/settings",
        action: "/admin/settings/sso",
        fields: &[("slug", "corp"), ("issuer", "not a URL"), ("client_id", "monti")],
    },
    Failing {
        form_page: "/admin/tokens",
        action: "/admin/tokens/tok_nothing/revoke",
        fields: &[],
    },
    Failing {
        form_page: "/admin/users",
        action: "/admin/users/user_nothing",
        fields: &[("role", "agent")],
    },
    Failing {
        form_page: "/admin/users",
        action: "/admin/users/user_nothing/reset-link",
        fields: &[("via", "link")],
    },
    Failing {
        form_page: "/account",
        action: "/account/password",
        fields: &[
            ("current", "not the password"),
            ("password", "a long new passphrase"),
            ("confirm", "a long new passphrase"),
        ],
    },
];

/// The rule editor's live feedback (checking and trying a condition as one types) answers with
/// a fragment whatever the condition says; a wrong one is shown as a field error in it.
const FEEDBACK: &[&str] = &["/admin/alert-rules/check", "/admin/alert-rules/test"];

/// Tenant acme's admin, signed in through the login form.
async fn signed_in_admin(s: &TestServer) -> Visitor {
    common::signed_in_member(
        s,
        "admin@acme.example",
        "correct horse battery",
        "acme",
        Role::TenantAdmin,
    )
    .await
}

fn is_whole_page(body: &str) -> bool {
    let start = body.trim_start().to_ascii_lowercase();
    start.starts_with("<!doctype") || start.starts_with("<html") || body.contains("<body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_admin_forms_answer_htmx_with_a_fragment() {
    let s = TestServer::start(common::Backend::Sqlite).await.unwrap();
    s.tenant("acme", Role::TenantAdmin).await;
    let mut admin = signed_in_admin(&s).await;
    let mut wrong = Vec::new();
    for case in FAILING {
        let page = admin.get(case.form_page).await;
        assert_eq!(page.status, 200, "{}: {}", case.form_page, page.body);
        let mut form: Vec<(String, String)> = case
            .fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        form.push((
            "_csrf".into(),
            admin.csrf.clone().expect("a CSRF token on the form page"),
        ));
        let htmx = admin.post_raw(case.action, &form, &[("hx-request", "true")]).await;
        if !(400..500).contains(&htmx.status) || is_whole_page(&htmx.body) || htmx.body.trim().is_empty() {
            wrong.push(format!("{} (htmx) → {}: {:.200}", case.action, htmx.status, htmx.body));
        }
        // Without htmx the same refusal is a whole page, in the same status.
        let plain = admin.post_raw(case.action, &form, &[]).await;
        if plain.status != htmx.status || !is_whole_page(&plain.body) {
            wrong.push(format!(
                "{} (plain) → {}: {:.200}",
                case.action, plain.status, plain.body
            ));
        }
    }
    for action in FEEDBACK {
        admin.get("/admin/alert-rules/new").await;
        let form = [
            ("scope".to_owned(), "queue".to_owned()),
            ("expression".to_owned(), "queue.waiting >".to_owned()),
            ("_csrf".to_owned(), admin.csrf.clone().expect("a CSRF token")),
        ];
        let answer = admin.post_raw(action, &form, &[("hx-request", "true")]).await;
        if answer.status != 200 || is_whole_page(&answer.body) || !answer.body.contains("field-error") {
            wrong.push(format!("{action} (htmx) → {}: {:.200}", answer.status, answer.body));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    s.stop().await;
}

/// Forms whose input cannot make them fail: choosing a language, signing out, ending one's
/// own sessions, switching tenant among one's own, exporting. Everything else on the admin
/// pages must have a failing case above.
const CANNOT_FAIL: &[&str] = &[
    // Importing the starter rules skips those already there.
    "/admin/alert-rules/starter",
    "/logout",
    "/account/locale",
    "/tenant/switch",
    "/account/sessions/{id}/revoke",
    "/account/sessions/revoke-others",
];

/// `/admin/teams/team_01h…/delete` → `/admin/teams/{id}/delete`: ids made generic, the query
/// left off.
fn generic(action: &str) -> String {
    let path = action.split(['?', '#']).next().unwrap_or_default();
    path.split('/')
        .map(|segment| {
            let id_like = segment.split_once('_').is_some_and(|(kind, rest)| {
                !kind.is_empty() && rest.len() >= 6 && kind.bytes().all(|b| b.is_ascii_lowercase())
            });
            if id_like { "{id}" } else { segment }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The value of attribute `name` in tag text `tag`.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    tag[start..].split('"').next()
}

/// Where the page's forms and htmx controls post to, and the admin pages it links to.
fn posts_and_links(html: &str) -> (Vec<String>, Vec<String>) {
    let mut posts = Vec::new();
    let mut links = Vec::new();
    for piece in html.split('<').skip(1) {
        let tag = piece.split('>').next().unwrap_or_default();
        if tag.starts_with("form ") && attribute(tag, "method").is_some_and(|m| m.eq_ignore_ascii_case("post")) {
            posts.extend(attribute(tag, "action").map(str::to_owned));
        }
        posts.extend(attribute(tag, "hx-post").map(str::to_owned));
        if tag.starts_with("a ")
            && let Some(href) = attribute(tag, "href")
            && (href.starts_with("/admin") || href.starts_with("/account"))
        {
            links.push(href.split('#').next().unwrap_or_default().to_owned());
        }
    }
    (posts, links)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_on_the_admin_pages_has_a_failing_case() {
    let s = TestServer::start(common::Backend::Sqlite).await.unwrap();
    let token = s.tenant("acme", Role::TenantAdmin).await;
    // One of each kind, so their edit pages and row actions are walked too.
    let team = s
        .post("/api/v1/teams", &token, serde_json::json!({ "name": "Blue" }))
        .await;
    team.expect(201);
    let agent = serde_json::json!({ "name": "Ana", "extension": "1001", "team_id": team.body["id"] });
    s.post("/api/v1/agents", &token, agent).await.expect(201);
    s.post("/api/v1/queues", &token, serde_json::json!({ "name": "Sales" }))
        .await
        .expect(201);
    s.post(
        "/api/v1/tokens",
        &token,
        serde_json::json!({ "name": "ci", "role": "viewer" }),
    )
    .await
    .expect(201);
    // A second member, so the users page has someone to act on.
    let sam = Some(("acme", Role::Supervisor));
    account(&s.store, "sam@acme.example", "correct horse battery", sam, false).await;
    let mut admin = signed_in_admin(&s).await;
    let mut seen = std::collections::BTreeSet::new();
    let mut to_visit = vec!["/admin".to_owned(), "/account".to_owned()];
    let mut targets = std::collections::BTreeSet::new();
    while let Some(page) = to_visit.pop() {
        if !seen.insert(page.clone()) || seen.len() > 200 {
            continue;
        }
        let answer = admin.get(&page).await;
        if answer.status != 200 {
            continue;
        }
        let (posts, links) = posts_and_links(&answer.body);
        targets.extend(posts.iter().map(|p| generic(p)));
        // Pages that are exports or downloads are not walked.
        to_visit.extend(links.into_iter().filter(|l| !l.contains(".csv") && !seen.contains(l)));
    }
    assert!(targets.len() >= 15, "the walk found the admin forms: {targets:#?}");
    let covered: std::collections::BTreeSet<String> = FAILING.iter().map(|f| generic(f.action)).collect();
    let missing: Vec<&String> = targets
        .iter()
        .filter(|t| !covered.contains(*t) && !CANNOT_FAIL.contains(&t.as_str()) && !FEEDBACK.contains(&t.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "forms without a failing case in FAILING: {missing:#?} (walked {} pages)",
        seen.len()
    );
    s.stop().await;
}

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
];

fn is_whole_page(body: &str) -> bool {
    let start = body.trim_start().to_ascii_lowercase();
    start.starts_with("<!doctype") || start.starts_with("<html") || body.contains("<body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_admin_forms_answer_htmx_with_a_fragment() {
    let s = TestServer::start(common::Backend::Sqlite).await.unwrap();
    s.tenant("acme", Role::TenantAdmin).await;
    account(
        &s.store,
        "admin@acme.example",
        "correct horse battery",
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let mut admin = Visitor::new(&s);
    let signed = admin.sign_in("admin@acme.example", "correct horse battery").await;
    assert_eq!(signed.status, 303, "{}", signed.body);
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
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    s.stop().await;
}

//! The tenant's telephony as Asterisk configuration: SIP endpoints as `pjsip.conf`, queues and
//! their members as `queues.conf`, phone numbers (DIDs) as a dial-plan context for
//! `extensions.conf`. `monti asterisk export` writes them; the admin UI offers them for download.

use std::fmt::Write as _;

use crate::store::telephony::TelephonyRows;
use crate::store::{Store, StoreResult, TenantScope};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub username: String,
    /// `None` when no password is set (or it does not open with the server's key).
    pub password: Option<String>,
    pub transport: String,
    pub codecs: Vec<String>,
    pub context: String,
    pub max_contacts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMember {
    pub interface: String,
    pub name: String,
    pub penalty: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub name: String,
    pub strategy: String,
    pub service_level_s: i64,
    pub wrapup_s: i64,
    pub members: Vec<QueueMember>,
    /// Agents in the queue with no interface to ring (shown as comments).
    pub unreachable: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Hangup,
    Queue(String),
    /// Ring an interface (an agent's or an endpoint's).
    Dial(String),
    /// Out through the trunk the PBX defines as `${MONTI_TRUNK}`.
    External(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Did {
    pub number: String,
    pub description: String,
    pub route: Route,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Telephony {
    pub tenant: String,
    pub endpoints: Vec<Endpoint>,
    pub queues: Vec<Queue>,
    pub dids: Vec<Did>,
}

/// A name Asterisk accepts as a section or context name.
fn section(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A number as a dial-plan extension: digits, `+`, `*`, `#` (never a leading `_`, which would
/// make it a pattern).
fn extension(number: &str) -> String {
    number
        .chars()
        .filter(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#'))
        .collect()
}

/// A value on one line: line breaks and `;` (a comment in Asterisk's files) cannot sneak in.
fn value(text: &str) -> String {
    text.chars().filter(|c| !matches!(c, '\r' | '\n' | ';')).collect()
}

fn header(out: &mut String, file: &str, tenant: &str) {
    let _ = writeln!(
        out,
        "; {file} for tenant {tenant}, written by Monti {}. Changes here are overwritten by the next export.\n",
        crate::VERSION
    );
}

/// `pjsip.conf`: a transport per protocol in use, then an endpoint, its auth and its AOR each.
pub fn pjsip_conf(t: &Telephony) -> String {
    let mut out = String::new();
    header(&mut out, "pjsip.conf", &t.tenant);
    let mut transports: Vec<&str> = t.endpoints.iter().map(|e| e.transport.as_str()).collect();
    transports.sort_unstable();
    transports.dedup();
    for transport in transports {
        let protocol = value(transport);
        let _ = writeln!(
            out,
            "[transport-{}]\ntype = transport\nprotocol = {protocol}\nbind = 0.0.0.0\n",
            section(transport)
        );
    }
    for e in &t.endpoints {
        let name = section(&e.name);
        let codecs = if e.codecs.is_empty() {
            "ulaw,alaw".to_owned()
        } else {
            e.codecs.iter().map(|c| value(c)).collect::<Vec<_>>().join(",")
        };
        let _ = writeln!(
            out,
            "[{name}]\ntype = endpoint\ntransport = transport-{}\ncontext = {}\ndisallow = all\nallow = {codecs}\nauth = {name}-auth\naors = {name}\n",
            section(&e.transport),
            section(&e.context)
        );
        match &e.password {
            Some(password) => {
                let _ = writeln!(
                    out,
                    "[{name}-auth]\ntype = auth\nauth_type = userpass\nusername = {}\npassword = {}\n",
                    value(&e.username),
                    value(password)
                );
            }
            None => {
                let _ = writeln!(out, "; {name}: no password is set in Monti; it cannot register\n");
            }
        }
        let _ = writeln!(out, "[{name}]\ntype = aor\nmax_contacts = {}\n", e.max_contacts.max(1));
    }
    out
}

/// `queues.conf`: one section per queue with its strategy, service level, wrap-up and members.
pub fn queues_conf(t: &Telephony) -> String {
    let mut out = String::new();
    header(&mut out, "queues.conf", &t.tenant);
    for q in &t.queues {
        let _ = writeln!(
            out,
            "[{}]\nstrategy = {}\nservicelevel = {}\nwrapuptime = {}\nringinuse = no",
            section(&q.name),
            value(&q.strategy),
            q.service_level_s,
            q.wrapup_s
        );
        for m in &q.members {
            let interface = value(&m.interface);
            let _ = writeln!(
                out,
                "member => {interface},{},{},{interface}",
                m.penalty,
                value(&m.name).replace(',', " ")
            );
        }
        for agent in &q.unreachable {
            let _ = writeln!(out, "; {} has no interface in Monti and is not a member", value(agent));
        }
        out.push('\n');
    }
    out
}

/// A dial-plan context `[monti-<tenant>-dids]` routing each number as Monti says.
pub fn extensions_conf(t: &Telephony) -> String {
    let mut out = String::new();
    header(&mut out, "extensions.conf", &t.tenant);
    let _ = writeln!(out, "[monti-{}-dids]", section(&t.tenant));
    for d in &t.dids {
        let number = extension(&d.number);
        if number.is_empty() {
            let _ = writeln!(out, "; `{}` is not a dialable number", value(&d.number));
            continue;
        }
        let _ = writeln!(
            out,
            "exten => {number},1,NoOp({})",
            value(&d.description).replace([',', ')'], " ")
        );
        let step = match &d.route {
            Route::Hangup => "Hangup()".to_owned(),
            Route::Queue(queue) => format!("Queue({})", section(queue)),
            Route::Dial(interface) => format!("Dial({},30)", value(interface)),
            Route::External(number) => format!("Dial(${{MONTI_TRUNK}}/{},60)", extension(number)),
        };
        let _ = writeln!(out, " same => n,{step}");
        let _ = writeln!(out, " same => n,Hangup()");
    }
    out
}

/// The tenant's endpoints, queues (with members) and numbers.
pub async fn load(store: &Store, scope: &TenantScope) -> StoreResult<Telephony> {
    let tenant = scope.tenant_id();
    let TelephonyRows {
        endpoints,
        agents,
        queues,
        members,
        dids,
    } = crate::store::telephony::rows(store, scope).await?;
    let interface_of = |agent_id: &str| {
        agents
            .iter()
            .find(|a| a.0 == agent_id)
            .and_then(|(_, _, interface, endpoint)| {
                interface
                    .clone()
                    .filter(|i| !i.is_empty())
                    .or_else(|| endpoint.as_ref().map(|e| format!("PJSIP/{}", section(e))))
            })
    };
    let name_of = |agent_id: &str| {
        agents
            .iter()
            .find(|a| a.0 == agent_id)
            .map_or_else(|| agent_id.to_owned(), |a| a.1.clone())
    };
    let queue_name = |id: &str| queues.iter().find(|q| q.0 == id).map(|q| q.1.clone());
    let endpoint_name = |id: &str| endpoints.iter().find(|e| e.0 == id).map(|e| e.1.clone());
    Ok(Telephony {
        tenant: scope.tenant_slug().to_owned(),
        endpoints: endpoints
            .iter()
            .map(
                |(id, name, username, sealed, transport, codecs, context, max_contacts)| Endpoint {
                    name: name.clone(),
                    username: username.clone(),
                    password: sealed.as_ref().and_then(|s| {
                        store
                            .secrets
                            .open(s, &crate::store::entities::endpoints::sealing_context(tenant, id))
                            .ok()
                    }),
                    transport: transport.clone(),
                    codecs: serde_json::from_str(codecs).unwrap_or_default(),
                    context: context.clone(),
                    max_contacts: *max_contacts,
                },
            )
            .collect(),
        queues: queues
            .iter()
            .map(|(id, name, strategy, service_level_s, wrapup_s)| {
                let mut queue = Queue {
                    name: name.clone(),
                    strategy: strategy.clone(),
                    service_level_s: *service_level_s,
                    wrapup_s: *wrapup_s,
                    members: Vec::new(),
                    unreachable: Vec::new(),
                };
                for (_, agent, penalty) in members.iter().filter(|m| &m.0 == id) {
                    match interface_of(agent) {
                        Some(interface) => queue.members.push(QueueMember {
                            interface,
                            name: name_of(agent),
                            penalty: *penalty,
                        }),
                        None => queue.unreachable.push(name_of(agent)),
                    }
                }
                queue
            })
            .collect(),
        dids: dids
            .iter()
            .map(|(number, description, route, queue, agent, endpoint, external)| Did {
                number: number.clone(),
                description: description.clone(),
                route: match route.as_str() {
                    "queue" => queue
                        .as_deref()
                        .and_then(queue_name)
                        .map_or(Route::Hangup, Route::Queue),
                    "agent" => agent
                        .as_deref()
                        .and_then(interface_of)
                        .map_or(Route::Hangup, Route::Dial),
                    "endpoint" => endpoint
                        .as_deref()
                        .and_then(endpoint_name)
                        .map_or(Route::Hangup, |e| Route::Dial(format!("PJSIP/{}", section(&e)))),
                    "external" => external.clone().map_or(Route::Hangup, Route::External),
                    _ => Route::Hangup,
                },
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Telephony {
        Telephony {
            tenant: "acme".into(),
            endpoints: vec![Endpoint {
                name: "ana-desk".into(),
                username: "ana".into(),
                password: Some("s3cret".into()),
                transport: "udp".into(),
                codecs: vec!["opus".into(), "ulaw".into()],
                context: "agents".into(),
                max_contacts: 2,
            }],
            queues: vec![Queue {
                name: "sales".into(),
                strategy: "rrmemory".into(),
                service_level_s: 20,
                wrapup_s: 15,
                members: vec![QueueMember {
                    interface: "PJSIP/ana-desk".into(),
                    name: "Ana, Sales".into(),
                    penalty: 1,
                }],
                unreachable: vec!["Ben".into()],
            }],
            dids: vec![
                Did {
                    number: "+4930123".into(),
                    description: "Hotline; main".into(),
                    route: Route::Queue("sales".into()),
                },
                Did {
                    number: "+4930124".into(),
                    description: String::new(),
                    route: Route::External("+4930999".into()),
                },
            ],
        }
    }

    #[test]
    fn each_file_says_what_monti_knows() {
        let t = sample();
        let pjsip = pjsip_conf(&t);
        assert!(pjsip.contains("[transport-udp]\ntype = transport\nprotocol = udp"));
        assert!(pjsip.contains("[ana-desk]\ntype = endpoint\ntransport = transport-udp\ncontext = agents\ndisallow = all\nallow = opus,ulaw\nauth = ana-desk-auth\naors = ana-desk\n"));
        assert!(
            pjsip.contains("[ana-desk-auth]\ntype = auth\nauth_type = userpass\nusername = ana\npassword = s3cret\n")
        );
        assert!(pjsip.contains("[ana-desk]\ntype = aor\nmax_contacts = 2\n"));
        let queues = queues_conf(&t);
        assert!(queues.contains("[sales]\nstrategy = rrmemory\nservicelevel = 20\nwrapuptime = 15\nringinuse = no\nmember => PJSIP/ana-desk,1,Ana  Sales,PJSIP/ana-desk\n; Ben has no interface"));
        let dialplan = extensions_conf(&t);
        assert!(dialplan.contains("[monti-acme-dids]\nexten => +4930123,1,NoOp(Hotline main)\n same => n,Queue(sales)\n same => n,Hangup()\n"), "{dialplan}");
        assert!(
            dialplan.contains(" same => n,Dial(${MONTI_TRUNK}/+4930999,60)"),
            "{dialplan}"
        );
    }

    #[test]
    fn values_cannot_add_lines_or_comments() {
        let mut t = sample();
        t.endpoints[0].password = Some("x\n[evil]\ntype = endpoint".into());
        t.endpoints[0].name = "a]\n[b".into();
        let pjsip = pjsip_conf(&t);
        assert!(!pjsip.contains("\n[evil]"), "{pjsip}");
        assert!(pjsip.contains("[a___b]"));
    }
}

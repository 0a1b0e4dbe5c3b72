use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use sqlx::types::Json;
use utoipa::ToSchema;

use super::{Stamps, double_option, optional, patch_nullable, reference_id, set};
use crate::domain::{Validation, validate};
use crate::store::SqlValue;
use crate::store::list::{Field, FieldKind};
use crate::store::resource::{Columns, Dependent, Listable, Reference, Unique, Writable, WriteContext};

pub const TRANSPORTS: &[&str] = &["udp", "tcp", "tls", "ws", "wss"];
pub const CODECS: &[&str] = &[
    "opus", "g722", "ulaw", "alaw", "gsm", "g729", "ilbc", "speex", "slin", "g726", "h264", "vp8", "vp9",
];
const DEFAULT_CODECS: &[&str] = &["opus", "g722", "ulaw", "alaw"];

/// A SIP endpoint as stored; the password is sealed with the server's key.
#[derive(Debug, Clone, FromRow)]
pub struct EndpointRow {
    pub id: String,
    pub name: String,
    pub auth_username: String,
    pub password_enc: Option<String>,
    pub transport: String,
    pub codecs: Json<Vec<String>>,
    pub context: String,
    pub max_contacts: i64,
    pub agent_id: Option<String>,
    #[sqlx(flatten)]
    pub stamps: Stamps,
}

/// A SIP endpoint (PJSIP style). The password can be set but is never returned.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Endpoint {
    pub id: String,
    /// The PJSIP endpoint id, e.g. `1001` or `alice-desk`.
    pub name: String,
    pub auth_username: String,
    /// Whether a password is set. The password itself is write-only.
    pub has_password: bool,
    /// `udp`, `tcp`, `tls`, `ws` or `wss`.
    pub transport: String,
    /// Allowed codecs in order of preference.
    pub codecs: Vec<String>,
    /// Dial-plan context calls from this endpoint enter.
    pub context: String,
    pub max_contacts: i64,
    /// The agent who uses this endpoint, if any.
    pub agent_id: Option<String>,
    #[serde(flatten)]
    pub stamps: Stamps,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointCreate {
    pub name: String,
    /// Defaults to `name`.
    pub auth_username: Option<String>,
    /// 12 to 128 printable characters. Stored encrypted, never returned.
    #[schema(write_only, format = Password)]
    pub password: Option<String>,
    /// Default `udp`.
    pub transport: Option<String>,
    /// Default `["opus", "g722", "ulaw", "alaw"]`.
    pub codecs: Option<Vec<String>>,
    /// Default `monti-agents`.
    pub context: Option<String>,
    /// Default 1.
    pub max_contacts: Option<i64>,
    pub agent_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointUpdate {
    pub name: Option<String>,
    pub auth_username: Option<String>,
    /// A new password, or `null` to remove it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(write_only, format = Password)]
    pub password: Option<Option<String>>,
    pub transport: Option<String>,
    pub codecs: Option<Vec<String>>,
    pub context: Option<String>,
    pub max_contacts: Option<i64>,
    #[serde(default, deserialize_with = "double_option")]
    pub agent_id: Option<Option<String>>,
}

// Input types carry a password: keep it out of debug output and logs.
impl std::fmt::Debug for EndpointCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointCreate")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
impl std::fmt::Debug for EndpointUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointUpdate")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Listable for EndpointRow {
    const KIND: &'static str = "SIP endpoint";
    const COLLECTION: &'static str = "endpoints";
    const FROM: &'static str = "endpoints";
    const SELECT: &'static str = "id, name, auth_username, password_enc, transport, codecs, context, max_contacts, \
        agent_id, created_at, updated_at, version";
    const AGENT_REFERENCE: Option<&'static str> = Some("agent_id");
    const FIELDS: &'static [Field] = &[
        Field::new("name", "name", FieldKind::Text),
        Field::new("transport", "transport", FieldKind::Text),
        Field::new("context", "context", FieldKind::Text),
        Field::new("agent_id", "agent_id", FieldKind::Text).nullable(),
        Field::new("created_at", "created_at", FieldKind::Time).sort_only(),
        Field::new("updated_at", "updated_at", FieldKind::Time).sort_only(),
    ];
    const SEARCH: &'static [&'static str] = &["name", "auth_username"];
    const DESCRIPTION: &'static str = "SIP endpoints (PJSIP) for agents' phones and softphones.";
    const VERSIONED: bool = true;
    type View = Endpoint;
    fn view(self) -> Endpoint {
        Endpoint {
            has_password: self.password_enc.is_some(),
            id: self.id,
            name: self.name,
            auth_username: self.auth_username,
            transport: self.transport,
            codecs: self.codecs.0,
            context: self.context,
            max_contacts: self.max_contacts,
            agent_id: self.agent_id,
            stamps: self.stamps,
        }
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn version(&self) -> i64 {
        self.stamps.version
    }
}

fn password(value: &str) -> Result<String, String> {
    let len = value.chars().count();
    if !(12..=128).contains(&len) {
        return Err("must be 12 to 128 characters".into());
    }
    if value.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    Ok(value.to_owned())
}

fn seal(cx: &WriteContext<'_>, password: String) -> SqlValue {
    SqlValue::OptText(Some(cx.secrets.seal(&password, &sealing_context(cx.tenant_id, cx.id))))
}

/// What a sealed password is bound to: it only opens for this tenant's endpoint.
pub fn sealing_context(tenant_id: &str, endpoint_id: &str) -> String {
    format!("endpoint-password:{tenant_id}:{endpoint_id}")
}

fn codecs(list: &[String]) -> Result<Vec<String>, String> {
    let list = validate::labels(list, 16, Some(CODECS))?;
    if list.is_empty() {
        Err("must name at least one codec".into())
    } else {
        Ok(list)
    }
}

impl Writable for EndpointRow {
    const TABLE: &'static str = "endpoints";
    const ID_PREFIX: &'static str = "ep";
    const UNIQUE: &'static [Unique] = &[Unique {
        needles: &["endpoints_name", "endpoints.name"],
        field: "name",
        message: "an endpoint with this name already exists",
    }];
    const REFERENCES: &'static [Reference] = &[Reference {
        column: "agent_id",
        field: "agent_id",
        table: "agents",
        target_column: "id",
        kind: "agent",
    }];
    const DEPENDENTS: &'static [Dependent] = &[Dependent {
        table: "dids",
        column: "route_endpoint_id",
        label: "phone numbers",
    }];
    type Create = EndpointCreate;
    type Update = EndpointUpdate;

    fn insert_columns(input: EndpointCreate, cx: &WriteContext<'_>) -> Result<Columns, Validation> {
        let mut v = Validation::new();
        let name = v.check("name", validate::pbx_token(&input.name, 64));
        let auth_username = match input.auth_username {
            Some(user) => v.check("auth_username", validate::pbx_token(&user, 64)),
            None => name.clone(),
        };
        let password = optional(&mut v, "password", input.password, password);
        let transport = v.check(
            "transport",
            validate::one_of(input.transport.as_deref().unwrap_or("udp"), TRANSPORTS),
        );
        let default_codecs: Vec<String> = DEFAULT_CODECS.iter().map(|c| (*c).to_owned()).collect();
        let codec_list = v.check("codecs", codecs(input.codecs.as_deref().unwrap_or(&default_codecs)));
        let context = v.check(
            "context",
            validate::pbx_token(input.context.as_deref().unwrap_or("monti-agents"), 80),
        );
        let max_contacts = v.check(
            "max_contacts",
            validate::int_range(input.max_contacts.unwrap_or(1), 1, 20),
        );
        let agent_id = optional(&mut v, "agent_id", input.agent_id, reference_id);
        v.finish()?;
        Ok(vec![
            ("name", SqlValue::Text(name.unwrap_or_default())),
            ("auth_username", SqlValue::Text(auth_username.unwrap_or_default())),
            (
                "password_enc",
                password.map(|p| seal(cx, p)).unwrap_or(SqlValue::OptText(None)),
            ),
            ("transport", SqlValue::Text(transport.unwrap_or_default())),
            (
                "codecs",
                SqlValue::Json(serde_json::json!(codec_list.unwrap_or_default())),
            ),
            ("context", SqlValue::Text(context.unwrap_or_default())),
            ("max_contacts", SqlValue::Int(max_contacts.unwrap_or(1))),
            ("agent_id", SqlValue::OptText(agent_id)),
        ])
    }

    fn update_columns(input: EndpointUpdate, _: &EndpointRow, cx: &WriteContext<'_>) -> Result<Columns, Validation> {
        let mut v = Validation::new();
        let mut columns = Columns::new();
        set(&mut columns, &mut v, "name", input.name, |x| {
            validate::pbx_token(&x, 64).map(SqlValue::Text)
        });
        set(&mut columns, &mut v, "auth_username", input.auth_username, |x| {
            validate::pbx_token(&x, 64).map(SqlValue::Text)
        });
        match input.password {
            None => {}
            Some(None) => columns.push(("password_enc", SqlValue::OptText(None))),
            Some(Some(p)) => {
                if let Some(p) = v.check("password", password(&p)) {
                    columns.push(("password_enc", seal(cx, p)));
                }
            }
        }
        set(&mut columns, &mut v, "transport", input.transport, |x| {
            validate::one_of(&x, TRANSPORTS).map(SqlValue::Text)
        });
        set(&mut columns, &mut v, "codecs", input.codecs, |x| {
            codecs(&x).map(|x| SqlValue::Json(serde_json::json!(x)))
        });
        set(&mut columns, &mut v, "context", input.context, |x| {
            validate::pbx_token(&x, 80).map(SqlValue::Text)
        });
        set(&mut columns, &mut v, "max_contacts", input.max_contacts, |x| {
            validate::int_range(x, 1, 20).map(SqlValue::Int)
        });
        if let Some(x) = patch_nullable(&mut v, "agent_id", input.agent_id, reference_id) {
            columns.push(("agent_id", x));
        }
        v.finish()?;
        Ok(columns)
    }
}

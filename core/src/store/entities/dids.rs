use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{Stamps, reference_id, set};
use crate::domain::{Validation, validate};
use crate::store::SqlValue;
use crate::store::list::{Field, FieldKind};
use crate::store::resource::{Columns, Listable, Reference, Unique, Writable, WriteContext};

pub const ROUTE_TYPES: &[&str] = &["none", "queue", "agent", "endpoint", "external"];

/// A phone number (DID) as stored: one column per kind of routing target so each can be a
/// real foreign key.
#[derive(Debug, Clone, FromRow)]
pub struct DidRow {
    pub id: String,
    pub number: String,
    pub description: String,
    pub route_type: String,
    pub route_queue_id: Option<String>,
    pub route_agent_id: Option<String>,
    pub route_endpoint_id: Option<String>,
    pub route_number: Option<String>,
    pub sms_enabled: bool,
    #[sqlx(flatten)]
    pub stamps: Stamps,
}

/// A phone number (DID) and where its calls go.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Did {
    pub id: String,
    /// E.164, e.g. `+4930123456`. Unique across the installation.
    pub number: String,
    pub description: String,
    /// `none`, `queue`, `agent`, `endpoint` or `external`.
    pub route_type: String,
    /// The queue, agent or endpoint id, or the E.164 number for `external`; `null` for `none`.
    pub route_target: Option<String>,
    /// Whether the number receives SMS.
    pub sms_enabled: bool,
    #[serde(flatten)]
    pub stamps: Stamps,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DidCreate {
    pub number: String,
    #[serde(default)]
    pub description: String,
    /// Default `none`.
    pub route_type: Option<String>,
    pub route_target: Option<String>,
    #[serde(default)]
    pub sms_enabled: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DidUpdate {
    pub number: Option<String>,
    pub description: Option<String>,
    /// Changing the route type requires a matching `route_target`.
    pub route_type: Option<String>,
    pub route_target: Option<String>,
    pub sms_enabled: Option<bool>,
}

impl DidRow {
    fn route_target(&self) -> Option<String> {
        match self.route_type.as_str() {
            "queue" => self.route_queue_id.clone(),
            "agent" => self.route_agent_id.clone(),
            "endpoint" => self.route_endpoint_id.clone(),
            "external" => self.route_number.clone(),
            _ => None,
        }
    }
}

impl Listable for DidRow {
    const KIND: &'static str = "phone number";
    const COLLECTION: &'static str = "dids";
    const FROM: &'static str = "dids";
    const SELECT: &'static str = "id, number, description, route_type, route_queue_id, route_agent_id, \
        route_endpoint_id, route_number, sms_enabled, created_at, updated_at, version";
    const FIELDS: &'static [Field] = &[
        Field::new("number", "number", FieldKind::Text),
        Field::new("route_type", "route_type", FieldKind::Text),
        Field::new("sms_enabled", "sms_enabled", FieldKind::Bool),
        Field::new("created_at", "created_at", FieldKind::Time).sort_only(),
        Field::new("updated_at", "updated_at", FieldKind::Time).sort_only(),
    ];
    const SEARCH: &'static [&'static str] = &["number", "description"];
    const DESCRIPTION: &'static str = "Phone numbers (DIDs) and where their calls and messages are routed.";
    const VERSIONED: bool = true;
    const AGENT_REFERENCE: Option<&'static str> = Some("route_agent_id");
    type View = Did;
    fn view(self) -> Did {
        Did {
            route_target: self.route_target(),
            id: self.id,
            number: self.number,
            description: self.description,
            route_type: self.route_type,
            sms_enabled: self.sms_enabled,
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

/// Validates a (type, target) pair and maps it onto the four route columns.
fn route_columns(v: &mut Validation, route_type: &str, target: Option<String>) -> Columns {
    let Some(route_type) = v.check("route_type", validate::one_of(route_type, ROUTE_TYPES)) else {
        return Columns::new();
    };
    let mut queue = None;
    let mut agent = None;
    let mut endpoint = None;
    let mut number = None;
    match (route_type.as_str(), target) {
        ("none", None) => {}
        ("none", Some(_)) => v.add("route_target", "must be null when route_type is none"),
        (_, None) => v.add("route_target", format!("is required when route_type is {route_type}")),
        ("external", Some(t)) => number = v.check("route_target", validate::e164(&t)),
        ("queue", Some(t)) => queue = v.check("route_target", reference_id(&t)),
        ("agent", Some(t)) => agent = v.check("route_target", reference_id(&t)),
        (_, Some(t)) => endpoint = v.check("route_target", reference_id(&t)),
    }
    vec![
        ("route_type", SqlValue::Text(route_type)),
        ("route_queue_id", SqlValue::OptText(queue)),
        ("route_agent_id", SqlValue::OptText(agent)),
        ("route_endpoint_id", SqlValue::OptText(endpoint)),
        ("route_number", SqlValue::OptText(number)),
    ]
}

impl Writable for DidRow {
    const TABLE: &'static str = "dids";
    const ID_PREFIX: &'static str = "did";
    const UNIQUE: &'static [Unique] = &[Unique {
        needles: &["dids.number", "dids_number_key"],
        field: "number",
        message: "this number is already in use",
    }];
    const REFERENCES: &'static [Reference] = &[
        Reference {
            column: "route_queue_id",
            field: "route_target",
            table: "queues",
            target_column: "id",
            kind: "queue",
        },
        Reference {
            column: "route_agent_id",
            field: "route_target",
            table: "agents",
            target_column: "id",
            kind: "agent",
        },
        Reference {
            column: "route_endpoint_id",
            field: "route_target",
            table: "endpoints",
            target_column: "id",
            kind: "SIP endpoint",
        },
    ];
    type Create = DidCreate;
    type Update = DidUpdate;

    fn insert_columns(input: DidCreate, _: &WriteContext<'_>) -> Result<Columns, Validation> {
        let mut v = Validation::new();
        let number = v.check("number", validate::e164(&input.number));
        let description = v.check("description", validate::text(&input.description, 500));
        let route_type = input.route_type.unwrap_or_else(|| "none".into());
        let mut columns = vec![
            ("number", SqlValue::Text(number.unwrap_or_default())),
            ("description", SqlValue::Text(description.unwrap_or_default())),
            ("sms_enabled", SqlValue::Bool(input.sms_enabled)),
        ];
        columns.extend(route_columns(&mut v, &route_type, input.route_target));
        v.finish()?;
        Ok(columns)
    }

    fn update_columns(input: DidUpdate, current: &DidRow, _: &WriteContext<'_>) -> Result<Columns, Validation> {
        let mut v = Validation::new();
        let mut columns = Columns::new();
        set(&mut columns, &mut v, "number", input.number, |n| {
            validate::e164(&n).map(SqlValue::Text)
        });
        set(&mut columns, &mut v, "description", input.description, |d| {
            validate::text(&d, 500).map(SqlValue::Text)
        });
        if let Some(sms) = input.sms_enabled {
            columns.push(("sms_enabled", SqlValue::Bool(sms)));
        }
        match (input.route_type, input.route_target) {
            (None, None) => {}
            (Some(t), target) => columns.extend(route_columns(&mut v, &t, target)),
            (None, Some(target)) => columns.extend(route_columns(&mut v, &current.route_type, Some(target))),
        }
        v.finish()?;
        Ok(columns)
    }
}

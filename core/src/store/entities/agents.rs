use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use sqlx::types::Json;
use utoipa::ToSchema;

use super::{Stamps, double_option, optional, patch_nullable, reference_id, set};
use crate::domain::{Validation, validate};
use crate::store::Dimension;
use crate::store::SqlValue;
use crate::store::list::{Field, FieldKind};
use crate::store::resource::{Columns, Dependent, Listable, Reference, Unique, Writable, WriteContext};

const MAX_SKILLS: usize = 50;

/// A person (or seat) who handles contacts.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub team_id: Option<String>,
    pub location_id: Option<String>,
    /// The user account this agent signs in with, if any.
    pub user_id: Option<String>,
    /// Dialable extension, unique within the tenant.
    pub extension: Option<String>,
    /// PBX device interface, e.g. `PJSIP/1001`; unique within the tenant.
    pub interface: Option<String>,
    #[schema(value_type = Vec<String>)]
    pub skills: Json<Vec<String>>,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub stamps: Stamps,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentCreate {
    pub name: String,
    pub team_id: Option<String>,
    pub location_id: Option<String>,
    pub user_id: Option<String>,
    pub extension: Option<String>,
    pub interface: Option<String>,
    #[serde(default)]
    pub skills: Vec<String>,
}

/// Fields set to `null` are cleared; absent fields are left as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentUpdate {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub team_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub location_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub user_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub extension: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub interface: Option<Option<String>>,
    pub skills: Option<Vec<String>>,
}

impl Listable for Agent {
    const KIND: &'static str = "agent";
    const COLLECTION: &'static str = "agents";
    const FROM: &'static str = "agents";
    const SELECT: &'static str =
        "id, name, team_id, location_id, user_id, extension, interface, skills, created_at, updated_at, version";
    const FIELDS: &'static [Field] = &[
        Field::new("name", "name", FieldKind::Text),
        Field::new("team_id", "team_id", FieldKind::Text).nullable(),
        Field::new("location_id", "location_id", FieldKind::Text).nullable(),
        Field::new("user_id", "user_id", FieldKind::Text).nullable(),
        Field::new("extension", "extension", FieldKind::Text).nullable(),
        Field::new("interface", "interface", FieldKind::Text).nullable(),
        Field::new("created_at", "created_at", FieldKind::Time).sort_only(),
        Field::new("updated_at", "updated_at", FieldKind::Time).sort_only(),
    ];
    const SEARCH: &'static [&'static str] = &["name", "extension", "interface"];
    const DESCRIPTION: &'static str = "The people who handle contacts, with their team, location, device and skills.";
    const VERSIONED: bool = true;
    const RESTRICTED_BY: &'static [(&'static str, Dimension)] =
        &[("team_id", Dimension::Team), ("location_id", Dimension::Location)];
    type View = Agent;
    fn view(self) -> Agent {
        self
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn version(&self) -> i64 {
        self.stamps.version
    }
}

const REFERENCES: &[Reference] = &[
    Reference {
        column: "team_id",
        field: "team_id",
        table: "teams",
        target_column: "id",
        kind: "team",
    },
    Reference {
        column: "location_id",
        field: "location_id",
        table: "locations",
        target_column: "id",
        kind: "location",
    },
    Reference {
        column: "user_id",
        field: "user_id",
        table: "memberships",
        target_column: "user_id",
        kind: "user in this tenant",
    },
];

impl Writable for Agent {
    const TABLE: &'static str = "agents";
    const ID_PREFIX: &'static str = "agt";
    const UNIQUE: &'static [Unique] = &[
        Unique {
            needles: &["agents_extension", "agents.extension"],
            field: "extension",
            message: "another agent already has this extension",
        },
        Unique {
            needles: &["agents_interface", "agents.interface"],
            field: "interface",
            message: "another agent already uses this interface",
        },
    ];
    const REFERENCES: &'static [Reference] = REFERENCES;
    const DEPENDENTS: &'static [Dependent] = &[
        Dependent {
            table: "endpoints",
            column: "agent_id",
            label: "SIP endpoints",
        },
        Dependent {
            table: "dids",
            column: "route_agent_id",
            label: "phone numbers",
        },
    ];
    const LIMIT_KEY: Option<&'static str> = Some("max_agents");
    type Create = AgentCreate;
    type Update = AgentUpdate;

    fn insert_columns(input: AgentCreate, _: &WriteContext<'_>) -> Result<Columns, Validation> {
        let mut v = Validation::new();
        let name = v.check("name", validate::name(&input.name, 100));
        let team_id = optional(&mut v, "team_id", input.team_id, reference_id);
        let location_id = optional(&mut v, "location_id", input.location_id, reference_id);
        let user_id = optional(&mut v, "user_id", input.user_id, reference_id);
        let extension = optional(&mut v, "extension", input.extension, validate::extension);
        let interface = optional(&mut v, "interface", input.interface, validate::interface);
        let skills = v.check("skills", validate::labels(&input.skills, MAX_SKILLS, None));
        v.finish()?;
        Ok(vec![
            ("name", SqlValue::Text(name.unwrap_or_default())),
            ("team_id", SqlValue::OptText(team_id)),
            ("location_id", SqlValue::OptText(location_id)),
            ("user_id", SqlValue::OptText(user_id)),
            ("extension", SqlValue::OptText(extension)),
            ("interface", SqlValue::OptText(interface)),
            ("skills", SqlValue::Json(serde_json::json!(skills.unwrap_or_default()))),
        ])
    }

    fn update_columns(input: AgentUpdate, _: &Agent, _: &WriteContext<'_>) -> Result<Columns, Validation> {
        let mut v = Validation::new();
        let mut columns = Columns::new();
        set(&mut columns, &mut v, "name", input.name, |n| {
            validate::name(&n, 100).map(SqlValue::Text)
        });
        let nullable = [
            (
                "team_id",
                input.team_id,
                reference_id as fn(&str) -> Result<String, String>,
            ),
            ("location_id", input.location_id, reference_id),
            ("user_id", input.user_id, reference_id),
            ("extension", input.extension, validate::extension),
            ("interface", input.interface, validate::interface),
        ];
        for (field, value, check) in nullable {
            if let Some(value) = patch_nullable(&mut v, field, value, check) {
                columns.push((field, value));
            }
        }
        set(&mut columns, &mut v, "skills", input.skills, |s| {
            validate::labels(&s, MAX_SKILLS, None).map(|x| SqlValue::Json(serde_json::json!(x)))
        });
        v.finish()?;
        Ok(columns)
    }
}

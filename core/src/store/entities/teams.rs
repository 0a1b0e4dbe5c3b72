use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{Stamps, set};
use crate::domain::{Validation, validate};
use crate::store::Dimension;
use crate::store::SqlValue;
use crate::store::list::{Field, FieldKind};
use crate::store::resource::{Columns, Dependent, Listable, Unique, Writable, WriteContext};

/// A group of agents that works together, usually under one supervisor.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub description: String,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub stamps: Stamps,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamCreate {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
}

impl Listable for Team {
    const KIND: &'static str = "team";
    const COLLECTION: &'static str = "teams";
    const FROM: &'static str = "teams";
    const SELECT: &'static str = "id, name, description, created_at, updated_at, version";
    const FIELDS: &'static [Field] = &[
        Field::new("name", "name", FieldKind::Text),
        Field::new("created_at", "created_at", FieldKind::Time).sort_only(),
        Field::new("updated_at", "updated_at", FieldKind::Time).sort_only(),
    ];
    const SEARCH: &'static [&'static str] = &["name", "description"];
    const DESCRIPTION: &'static str = "Groups of agents; supervisors can be scoped to teams.";
    const VERSIONED: bool = true;
    const RESTRICTED_BY: &'static [(&'static str, Dimension)] = &[("id", Dimension::Team)];
    type View = Team;
    fn view(self) -> Team {
        self
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn version(&self) -> i64 {
        self.stamps.version
    }
}

impl Writable for Team {
    const TABLE: &'static str = "teams";
    const ID_PREFIX: &'static str = "team";
    const UNIQUE: &'static [Unique] = &[Unique {
        needles: &["teams_name", "teams.name"],
        field: "name",
        message: "a team with this name already exists",
    }];
    const DEPENDENTS: &'static [Dependent] = &[Dependent {
        table: "agents",
        column: "team_id",
        label: "agents",
    }];
    type Create = TeamCreate;
    type Update = TeamUpdate;

    fn insert_columns(input: TeamCreate, _: &WriteContext<'_>) -> Result<Columns, Validation> {
        let mut v = Validation::new();
        let name = v.check("name", validate::name(&input.name, 100));
        let description = v.check("description", validate::text(&input.description, 1000));
        v.finish()?;
        Ok(vec![
            ("name", SqlValue::Text(name.unwrap_or_default())),
            ("description", SqlValue::Text(description.unwrap_or_default())),
        ])
    }

    fn update_columns(input: TeamUpdate, _: &Team, _: &WriteContext<'_>) -> Result<Columns, Validation> {
        let mut v = Validation::new();
        let mut columns = Columns::new();
        set(&mut columns, &mut v, "name", input.name, |n| {
            validate::name(&n, 100).map(SqlValue::Text)
        });
        set(&mut columns, &mut v, "description", input.description, |d| {
            validate::text(&d, 1000).map(SqlValue::Text)
        });
        v.finish()?;
        Ok(columns)
    }
}

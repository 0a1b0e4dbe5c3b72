use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{Stamps, double_option, optional, patch_nullable, set};
use crate::domain::{Validation, validate};
use crate::store::Dimension;
use crate::store::SqlValue;
use crate::store::list::{Field, FieldKind};
use crate::store::resource::{Columns, Dependent, Listable, Unique, Writable, WriteContext};

/// A site agents work from (an office, or "Remote").
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct Location {
    pub id: String,
    pub name: String,
    /// IANA time zone of the site, if it differs from the tenant's.
    pub timezone: Option<String>,
    pub address: String,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub stamps: Stamps,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationCreate {
    pub name: String,
    pub timezone: Option<String>,
    #[serde(default)]
    pub address: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationUpdate {
    pub name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    pub timezone: Option<Option<String>>,
    pub address: Option<String>,
}

impl Listable for Location {
    const KIND: &'static str = "location";
    const COLLECTION: &'static str = "locations";
    const FROM: &'static str = "locations";
    const SELECT: &'static str = "id, name, timezone, address, created_at, updated_at, version";
    const FIELDS: &'static [Field] = &[
        Field::new("name", "name", FieldKind::Text),
        Field::new("timezone", "timezone", FieldKind::Text).nullable(),
        Field::new("created_at", "created_at", FieldKind::Time).sort_only(),
        Field::new("updated_at", "updated_at", FieldKind::Time).sort_only(),
    ];
    const SEARCH: &'static [&'static str] = &["name", "address"];
    const DESCRIPTION: &'static str = "Sites agents work from; supervisors can be scoped to locations.";
    const VERSIONED: bool = true;
    const RESTRICTED_BY: &'static [(&'static str, Dimension)] = &[("id", Dimension::Location)];
    type View = Location;
    fn view(self) -> Location {
        self
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn version(&self) -> i64 {
        self.stamps.version
    }
}

impl Writable for Location {
    const TABLE: &'static str = "locations";
    const ID_PREFIX: &'static str = "loc";
    const UNIQUE: &'static [Unique] = &[Unique {
        needles: &["locations_name", "locations.name"],
        field: "name",
        message: "a location with this name already exists",
    }];
    const DEPENDENTS: &'static [Dependent] = &[Dependent {
        table: "agents",
        column: "location_id",
        label: "agents",
    }];
    type Create = LocationCreate;
    type Update = LocationUpdate;

    fn insert_columns(input: LocationCreate, _: &WriteContext<'_>) -> Result<Columns, Validation> {
        let mut v = Validation::new();
        let name = v.check("name", validate::name(&input.name, 100));
        let timezone = optional(&mut v, "timezone", input.timezone, validate::timezone);
        let address = v.check("address", validate::text(&input.address, 500));
        v.finish()?;
        Ok(vec![
            ("name", SqlValue::Text(name.unwrap_or_default())),
            ("timezone", SqlValue::OptText(timezone)),
            ("address", SqlValue::Text(address.unwrap_or_default())),
        ])
    }

    fn update_columns(input: LocationUpdate, _: &Location, _: &WriteContext<'_>) -> Result<Columns, Validation> {
        let mut v = Validation::new();
        let mut columns = Columns::new();
        set(&mut columns, &mut v, "name", input.name, |n| {
            validate::name(&n, 100).map(SqlValue::Text)
        });
        if let Some(tz) = patch_nullable(&mut v, "timezone", input.timezone, validate::timezone) {
            columns.push(("timezone", tz));
        }
        set(&mut columns, &mut v, "address", input.address, |a| {
            validate::text(&a, 500).map(SqlValue::Text)
        });
        v.finish()?;
        Ok(columns)
    }
}

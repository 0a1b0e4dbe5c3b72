//! Listing conventions shared by every collection: filters, search, sort and keyset (cursor)
//! pagination.
//!
//! `?limit=50&cursor=…&sort=name,-created_at&q=ana&team_id=team_…`
//!
//! Cursors are opaque to clients; inside they hold the sort order they were made for and the
//! sort-key values of the last row returned, so the next page starts exactly after it even
//! while rows are inserted or deleted (no offsets that skip or repeat rows).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::{SqlValue, StoreError};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;
/// Most query parameters a list request may carry. Every filter becomes a condition of the
/// query, and databases refuse (SQLite: expression depth 1000) or crawl through thousands.
pub const MAX_PARAMS: usize = 32;
/// Longest value of one query parameter, in bytes (cursors included).
pub const MAX_PARAM_BYTES: usize = 2048;

/// How a field is stored and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Int,
    Bool,
    /// Unix milliseconds in the database, RFC 3339 in the API.
    Time,
}

/// A field clients may filter (`?field=value`) and/or sort by.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub column: &'static str,
    pub kind: FieldKind,
    pub filter: bool,
    pub sort: bool,
    /// Filtering with the value `null` selects rows where the field is empty.
    pub nullable: bool,
    /// Accepts `<name>_from` (inclusive) and `<name>_to` (exclusive) bounds.
    pub range: bool,
}

impl Field {
    pub const fn new(name: &'static str, column: &'static str, kind: FieldKind) -> Self {
        Self {
            name,
            column,
            kind,
            filter: true,
            sort: true,
            nullable: false,
            range: false,
        }
    }
    pub const fn range(mut self) -> Self {
        self.range = true;
        self
    }
    pub const fn filter_only(mut self) -> Self {
        self.sort = false;
        self
    }
    pub const fn sort_only(mut self) -> Self {
        self.filter = false;
        self
    }
    pub const fn nullable(mut self) -> Self {
        self.nullable = true;
        self.sort = false;
        self
    }
}

/// A page of results.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Raw query-string parameters of a list request.
#[derive(Debug, Clone, Default)]
pub struct ListParams(pub Vec<(String, String)>);

/// A validated list request, ready to become SQL.
#[derive(Debug, Clone)]
pub struct ListSpec {
    pub filters: Vec<(Field, Option<SqlValue>)>,
    /// (field, is upper bound, value): `>=` lower and `<` upper bounds.
    pub ranges: Vec<(Field, bool, SqlValue)>,
    pub search: Option<String>,
    pub sort: Vec<(Field, bool)>,
    pub sort_text: String,
    pub after: Option<Vec<SqlValue>>,
    pub limit: i64,
}

#[derive(Serialize, Deserialize)]
struct CursorBody {
    /// The sort order the cursor belongs to.
    s: String,
    /// Sort-key values of the last row, id last.
    k: Vec<serde_json::Value>,
}

impl ListParams {
    /// Validates the parameters against what a collection allows.
    pub fn parse(&self, fields: &[Field], id_field: Field, searchable: bool) -> Result<ListSpec, StoreError> {
        let mut spec = ListSpec {
            filters: Vec::new(),
            ranges: Vec::new(),
            search: None,
            sort: Vec::new(),
            sort_text: String::new(),
            after: None,
            limit: DEFAULT_LIMIT,
        };
        let mut cursor = None;
        if self.0.len() > MAX_PARAMS {
            return Err(StoreError::BadRequest(format!(
                "too many query parameters: at most {MAX_PARAMS}, this request has {}",
                self.0.len()
            )));
        }
        for (i, (key, value)) in self.0.iter().enumerate() {
            // Shown in messages: a hostile name stays short there.
            let shown: String = key.chars().take(64).collect();
            if value.len() > MAX_PARAM_BYTES {
                return Err(StoreError::BadRequest(format!(
                    "query parameter `{shown}` is too long: at most {MAX_PARAM_BYTES} bytes"
                )));
            }
            if self.0[..i].iter().any(|(k, _)| k == key) {
                return Err(StoreError::BadRequest(format!(
                    "query parameter `{shown}` is given more than once"
                )));
            }
            match key.as_str() {
                "limit" => {
                    spec.limit = value
                        .parse::<i64>()
                        .ok()
                        .filter(|l| (1..=MAX_LIMIT).contains(l))
                        .ok_or_else(|| {
                            StoreError::BadRequest(format!("limit must be a whole number from 1 to {MAX_LIMIT}"))
                        })?;
                }
                "cursor" => cursor = Some(value.clone()),
                "sort" => spec.sort_text = value.clone(),
                "q" if searchable => {
                    if value.chars().count() > 100 {
                        return Err(StoreError::BadRequest("q must be at most 100 characters".into()));
                    }
                    spec.search = Some(value.clone()).filter(|v| !v.trim().is_empty());
                }
                name => {
                    if let Some((field, upper)) = range_bound(fields, name) {
                        spec.ranges.push((*field, upper, parse_filter_value(field, value)?));
                        continue;
                    }
                    let field = fields.iter().find(|f| f.filter && f.name == name).ok_or_else(|| {
                        let mut allowed: Vec<&str> = vec!["limit", "cursor", "sort"];
                        if searchable {
                            allowed.push("q");
                        }
                        allowed.extend(fields.iter().filter(|f| f.filter).map(|f| f.name));
                        let bounds: Vec<String> = fields
                            .iter()
                            .filter(|f| f.range)
                            .flat_map(|f| [format!("{}_from", f.name), format!("{}_to", f.name)])
                            .collect();
                        allowed.extend(bounds.iter().map(String::as_str));
                        StoreError::BadRequest(format!(
                            "unknown query parameter `{name}`; allowed: {}",
                            allowed.join(", ")
                        ))
                    })?;
                    let parsed = if field.nullable && value == "null" {
                        None
                    } else {
                        Some(parse_filter_value(field, value)?)
                    };
                    spec.filters.push((*field, parsed));
                }
            }
        }
        for part in spec.sort_text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, desc) = match part.strip_prefix('-') {
                Some(name) => (name, true),
                None => (part.strip_prefix('+').unwrap_or(part), false),
            };
            let field = fields
                .iter()
                .chain([&id_field])
                .find(|f| f.sort && f.name == name)
                .ok_or_else(|| {
                    let sortable: Vec<&str> = fields
                        .iter()
                        .chain([&id_field])
                        .filter(|f| f.sort)
                        .map(|f| f.name)
                        .collect();
                    StoreError::BadRequest(format!(
                        "cannot sort by `{name}`; sortable fields: {}",
                        sortable.join(", ")
                    ))
                })?;
            if spec.sort.iter().any(|(f, _)| f.name == field.name) {
                return Err(StoreError::BadRequest(format!("`{name}` appears twice in sort")));
            }
            spec.sort.push((*field, desc));
        }
        if !spec.sort.iter().any(|(f, _)| f.name == id_field.name) {
            // The id makes every sort order total, which keyset pagination needs.
            spec.sort.push((id_field, false));
        }
        if let Some(cursor) = cursor {
            spec.after = Some(decode_cursor(&cursor, &spec)?);
        }
        Ok(spec)
    }
}

/// `at_from` → (the `at` field, lower bound); `at_to` → (…, upper bound).
fn range_bound<'a>(fields: &'a [Field], name: &str) -> Option<(&'a Field, bool)> {
    let (base, upper) = match (name.strip_suffix("_from"), name.strip_suffix("_to")) {
        (Some(base), _) => (base, false),
        (_, Some(base)) => (base, true),
        _ => return None,
    };
    fields.iter().find(|f| f.range && f.name == base).map(|f| (f, upper))
}

fn parse_filter_value(field: &Field, value: &str) -> Result<SqlValue, StoreError> {
    let bad = |what: &str| StoreError::BadRequest(format!("filter `{}` expects {what}", field.name));
    Ok(match field.kind {
        FieldKind::Text => SqlValue::Text(value.to_owned()),
        FieldKind::Int => SqlValue::Int(value.parse().map_err(|_| bad("a whole number"))?),
        FieldKind::Bool => SqlValue::Bool(match value {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(bad("true or false")),
        }),
        FieldKind::Time => SqlValue::Int(
            chrono::DateTime::parse_from_rfc3339(value)
                .map_err(|_| bad("an RFC 3339 time"))?
                .timestamp_millis(),
        ),
    })
}

fn decode_cursor(cursor: &str, spec: &ListSpec) -> Result<Vec<SqlValue>, StoreError> {
    let invalid = || StoreError::BadRequest("invalid cursor: pass the next_cursor of a previous page unchanged".into());
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let body: CursorBody = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if body.s != spec.sort_text {
        return Err(StoreError::BadRequest(
            "this cursor belongs to a different sort order; start again without a cursor".into(),
        ));
    }
    if body.k.len() != spec.sort.len() {
        return Err(invalid());
    }
    spec.sort
        .iter()
        .zip(body.k)
        .map(|((field, _), value)| match (field.kind, value) {
            (FieldKind::Text, serde_json::Value::String(s)) => Ok(SqlValue::Text(s)),
            (FieldKind::Int | FieldKind::Time, serde_json::Value::Number(n)) => {
                n.as_i64().map(SqlValue::Int).ok_or_else(invalid)
            }
            (FieldKind::Bool, serde_json::Value::Bool(b)) => Ok(SqlValue::Bool(b)),
            _ => Err(invalid()),
        })
        .collect()
}

/// Encodes the cursor that continues after a row with these sort-key values.
pub fn encode_cursor(spec: &ListSpec, keys: Vec<serde_json::Value>) -> String {
    let body = CursorBody {
        s: spec.sort_text.clone(),
        k: keys,
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap_or_default())
}

/// Which rows a listing may see by owner.
#[derive(Debug, Clone, Copy)]
pub enum TenantFilter<'a> {
    /// Rows of one tenant.
    Tenant { column: &'a str, id: &'a str },
    /// Rows that belong to no tenant (installation-level).
    Unowned { column: &'a str },
    /// Every row (platform-wide collections such as tenants).
    All,
}

/// Which rows a caller with limited visibility (a scoped supervisor) may see.
#[derive(Debug, Clone)]
pub enum Restriction<'a> {
    /// `column` holds one of `allowed`.
    In { column: &'a str, allowed: &'a [String] },
    /// `column` refers to no row, or by id to a row of `table` (of the tenant) that passes
    /// `inner`: a SIP endpoint or phone number is seen only with the agent it belongs to.
    Through {
        column: &'a str,
        table: &'a str,
        tenant_id: &'a str,
        inner: Vec<(&'a str, &'a [String])>,
    },
}

impl Restriction<'_> {
    /// The SQL condition, its values appended to `args`.
    pub fn condition(&self, args: &mut Vec<SqlValue>) -> String {
        match self {
            Restriction::In { column, allowed } => restriction_condition(args, column, allowed),
            Restriction::Through {
                column,
                table,
                tenant_id,
                inner,
            } => {
                let rows = rows_passing(args, "id", table, tenant_id, inner);
                format!("({column} IS NULL OR {column} IN ({rows}))")
            }
        }
    }
}

/// `SELECT {select} FROM {table} WHERE …`: the tenant's rows of `table` whose columns hold one
/// of their allowed values, for a condition on another table's rows.
pub fn rows_passing(
    args: &mut Vec<SqlValue>,
    select: &str,
    table: &str,
    tenant_id: &str,
    inner: &[(&str, &[String])],
) -> String {
    args.push(SqlValue::Text(tenant_id.to_owned()));
    let mut conditions = vec![format!("tenant_id = ${}", args.len())];
    for (column, allowed) in inner {
        conditions.push(restriction_condition(args, column, allowed));
    }
    format!("SELECT {select} FROM {table} WHERE {}", conditions.join(" AND "))
}

/// Builds the SQL for one page. Placeholders are `$n`; `args` holds the values in order.
pub struct ListQuery {
    pub sql: String,
    pub args: Vec<SqlValue>,
}

/// `select` and `from` are the collection's column list and FROM clause; `tenant_column`
/// restricts every row to the caller's tenant (`None` for platform-wide collections), and each
/// `(column, allowed)` restriction keeps only rows whose column holds one of the allowed values
/// (a scoped supervisor's teams and locations).
pub fn build_list_query(
    select: &str,
    from: &str,
    tenant: TenantFilter<'_>,
    restrictions: &[Restriction<'_>],
    search_columns: &[&str],
    spec: &ListSpec,
) -> ListQuery {
    let mut args: Vec<SqlValue> = Vec::new();
    let next = |args: &mut Vec<SqlValue>, v: SqlValue| {
        args.push(v);
        format!("${}", args.len())
    };
    let mut conditions: Vec<String> = Vec::new();
    match tenant {
        TenantFilter::Tenant { column, id } => {
            let p = next(&mut args, SqlValue::Text(id.to_owned()));
            conditions.push(format!("{column} = {p}"));
        }
        TenantFilter::Unowned { column } => conditions.push(format!("{column} IS NULL")),
        TenantFilter::All => {}
    }
    for restriction in restrictions {
        conditions.push(restriction.condition(&mut args));
    }
    for (field, upper, value) in &spec.ranges {
        let p = next(&mut args, value.clone());
        conditions.push(format!("{} {} {p}", field.column, if *upper { "<" } else { ">=" }));
    }
    for (field, value) in &spec.filters {
        match value {
            Some(v) => {
                let p = next(&mut args, v.clone());
                conditions.push(format!("{} = {p}", field.column));
            }
            None => conditions.push(format!("{} IS NULL", field.column)),
        }
    }
    if let (Some(q), false) = (&spec.search, search_columns.is_empty()) {
        let pattern = format!("%{}%", escape_like(&q.to_lowercase()));
        let p = next(&mut args, SqlValue::Text(pattern));
        let ors: Vec<String> = search_columns
            .iter()
            .map(|c| format!("lower({c}) LIKE {p} ESCAPE '\\'"))
            .collect();
        conditions.push(format!("({})", ors.join(" OR ")));
    }
    if let Some(after) = &spec.after {
        // (k0 > v0) OR (k0 = v0 AND k1 > v1) OR …, with < for descending keys.
        let mut alternatives = Vec::new();
        for i in 0..spec.sort.len() {
            let mut parts = Vec::new();
            for (value, (field, _)) in after.iter().zip(&spec.sort).take(i) {
                let p = next(&mut args, value.clone());
                parts.push(format!("{} = {p}", field.column));
            }
            let (field, desc) = spec.sort[i];
            let p = next(&mut args, after[i].clone());
            parts.push(format!("{} {} {p}", field.column, if desc { "<" } else { ">" }));
            alternatives.push(format!("({})", parts.join(" AND ")));
        }
        conditions.push(format!("({})", alternatives.join(" OR ")));
    }
    let keys: Vec<String> = spec
        .sort
        .iter()
        .enumerate()
        .map(|(i, (f, _))| format!("{} AS _sort_key_{i}", f.column))
        .collect();
    let order: Vec<String> = spec
        .sort
        .iter()
        .map(|(f, desc)| format!("{}{}", f.column, if *desc { " DESC" } else { "" }))
        .collect();
    let mut sql = format!("SELECT {select}, {} FROM {from}", keys.join(", "));
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    let p = next(&mut args, SqlValue::Int(spec.limit + 1));
    sql.push_str(&format!(" ORDER BY {} LIMIT {p}", order.join(", ")));
    ListQuery { sql, args }
}

/// `column IN ($n, …)`; an empty list admits nothing.
pub fn restriction_condition(args: &mut Vec<SqlValue>, column: &str, allowed: &[String]) -> String {
    if allowed.is_empty() {
        return "1 = 0".into();
    }
    let placeholders: Vec<String> = allowed
        .iter()
        .map(|v| {
            args.push(SqlValue::Text(v.clone()));
            format!("${}", args.len())
        })
        .collect();
    format!("{column} IN ({})", placeholders.join(", "))
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[Field] = &[
        Field::new("name", "name", FieldKind::Text),
        Field::new("team_id", "team_id", FieldKind::Text).nullable(),
        Field::new("created_at", "created_at", FieldKind::Time).sort_only(),
    ];
    const ID: Field = Field::new("id", "id", FieldKind::Text).sort_only();

    fn params(pairs: &[(&str, &str)]) -> ListParams {
        ListParams(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect())
    }

    #[test]
    fn unknown_parameters_and_sort_fields_are_explained() {
        let err = params(&[("colour", "red")])
            .parse(FIELDS, ID, true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown query parameter `colour`") && err.contains("team_id"),
            "{err}"
        );
        let err = params(&[("sort", "team_id")])
            .parse(FIELDS, ID, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot sort by `team_id`"), "{err}");
        assert!(params(&[("limit", "0")]).parse(FIELDS, ID, true).is_err());
        assert!(params(&[("limit", "501")]).parse(FIELDS, ID, true).is_err());
    }

    #[test]
    fn cursors_round_trip_and_reject_tampering() {
        let spec = params(&[("sort", "-name")]).parse(FIELDS, ID, true).unwrap();
        let cursor = encode_cursor(&spec, vec!["Zoe".into(), "agt_1".into()]);
        let next = params(&[("sort", "-name"), ("cursor", &cursor)])
            .parse(FIELDS, ID, true)
            .unwrap();
        assert_eq!(
            next.after.unwrap(),
            vec![SqlValue::Text("Zoe".into()), SqlValue::Text("agt_1".into())]
        );
        let other_sort = params(&[("sort", "name"), ("cursor", &cursor)]).parse(FIELDS, ID, true);
        assert!(other_sort.unwrap_err().to_string().contains("different sort order"));
        assert!(params(&[("cursor", "garbage!")]).parse(FIELDS, ID, true).is_err());
    }

    #[test]
    fn keyset_condition_respects_directions() {
        let mut spec = params(&[("sort", "-name"), ("team_id", "null")])
            .parse(FIELDS, ID, true)
            .unwrap();
        spec.after = Some(vec![SqlValue::Text("M".into()), SqlValue::Text("agt_9".into())]);
        let q = build_list_query(
            "id, name",
            "agents",
            TenantFilter::Tenant {
                column: "tenant_id",
                id: "ten_1",
            },
            &[],
            &["name"],
            &spec,
        );
        assert!(q.sql.contains("team_id IS NULL"), "{}", q.sql);
        assert!(q.sql.contains("((name < $2) OR (name = $3 AND id > $4))"), "{}", q.sql);
        assert!(q.sql.ends_with("ORDER BY name DESC, id LIMIT $5"), "{}", q.sql);
        assert_eq!(q.args.len(), 5);
    }

    #[test]
    fn ranges_and_restrictions_become_conditions() {
        const TIMED: &[Field] = &[Field::new("at", "at", FieldKind::Time).range()];
        let spec = params(&[("at_from", "2026-01-01T00:00:00Z"), ("at_to", "2026-01-02T00:00:00Z")])
            .parse(TIMED, ID, false)
            .unwrap();
        let teams = vec!["team_a".to_owned(), "team_b".to_owned()];
        let tenant = TenantFilter::Tenant {
            column: "tenant_id",
            id: "ten_1",
        };
        let restriction = Restriction::In {
            column: "team_id",
            allowed: &teams,
        };
        let q = build_list_query("id", "t", tenant, &[restriction], &[], &spec);
        assert!(
            q.sql
                .contains("WHERE tenant_id = $1 AND team_id IN ($2, $3) AND at >= $4 AND at < $5"),
            "{}",
            q.sql
        );
        let through = Restriction::Through {
            column: "agent_id",
            table: "agents",
            tenant_id: "ten_1",
            inner: vec![("team_id", &teams)],
        };
        let by_agent = build_list_query("id", "endpoints", tenant, &[through], &[], &spec);
        assert!(
            by_agent.sql.contains(
                "(agent_id IS NULL OR agent_id IN (SELECT id FROM agents WHERE tenant_id = $2 AND team_id IN ($3, $4)))"
            ),
            "{}",
            by_agent.sql
        );
        assert_eq!(q.args[3], SqlValue::Int(1_767_225_600_000));
        let err = params(&[("at_until", "x")])
            .parse(TIMED, ID, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at_from") && err.contains("at_to"), "{err}");
        assert!(params(&[("at_from", "yesterday")]).parse(TIMED, ID, false).is_err());
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(escape_like("50%_a\\b"), "50\\%\\_a\\\\b");
    }
}

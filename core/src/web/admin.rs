//! The administration pages for a tenant's configuration: one generic list/create/edit/delete
//! flow, described per collection by a [`Spec`] (columns to show, fields to edit). Forms are
//! validated by the same store code as the API; its field errors are shown next to the fields.
//! Every change is written to the audit log with the record before and after.

use std::collections::HashMap;

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::AppState;
use super::api::Guarded;
use super::page_error::PageResult;
use super::session::SignedIn;
use super::ui::{render_page, render_view};
use crate::auth::{Action, Area, Principal, permits};
use crate::i18n::Locale;
use crate::service::configuration;
use crate::store::audit::{self, AuditEvent, Outcome};
use crate::store::entities::agents::Agent;
use crate::store::entities::dids::{DidRow, ROUTE_TYPES};
use crate::store::entities::endpoints::{EndpointRow, TRANSPORTS};
use crate::store::entities::locations::Location;
use crate::store::entities::queues::{Queue, SL_VARIANTS, STRATEGIES};
use crate::store::entities::teams::Team;
use crate::store::resource::{self, Writable};
use crate::store::{ListParams, StoreError, TenantScope};

/// How a field is edited.
#[derive(Debug, Clone, Copy)]
pub enum Input {
    Text,
    Multiline,
    Number,
    Checkbox,
    /// One of fixed values.
    Choice(&'static [&'static str]),
    /// An id of another collection (`teams`, `locations`, `agents`), chosen by name.
    Reference(&'static str),
    /// Comma-separated values, sent as a list.
    List,
    /// Write-only: empty keeps the stored value.
    Secret,
}

#[derive(Debug, Clone, Copy)]
pub struct FormField {
    pub name: &'static str,
    /// Catalog key of the label.
    pub label: &'static str,
    pub input: Input,
    /// An empty value is sent as `null`.
    pub nullable: bool,
    pub hint: Option<&'static str>,
}

const fn field(name: &'static str, label: &'static str, input: Input) -> FormField {
    FormField {
        name,
        label,
        input,
        nullable: false,
        hint: None,
    }
}

const fn nullable(mut f: FormField) -> FormField {
    f.nullable = true;
    f
}

const fn hint(mut f: FormField, text: &'static str) -> FormField {
    f.hint = Some(text);
    f
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub field: &'static str,
    pub label: &'static str,
    /// Show the name of the referenced row instead of its id.
    pub reference: Option<&'static str>,
}

const fn column(field: &'static str, label: &'static str) -> Column {
    Column {
        field,
        label,
        reference: None,
    }
}

const fn reference(field: &'static str, label: &'static str, collection: &'static str) -> Column {
    Column {
        field,
        label,
        reference: Some(collection),
    }
}

/// Everything the generic pages need to know about one collection.
#[derive(Debug)]
pub struct Spec {
    pub key: &'static str,
    pub columns: &'static [Column],
    pub fields: &'static [FormField],
}

pub const TEAMS: Spec = Spec {
    key: "teams",
    columns: &[
        column("name", "common.name"),
        column("description", "fields.description"),
    ],
    fields: &[
        field("name", "common.name", Input::Text),
        field("description", "fields.description", Input::Multiline),
    ],
};

pub const LOCATIONS: Spec = Spec {
    key: "locations",
    columns: &[
        column("name", "common.name"),
        column("timezone", "settings.timezone"),
        column("address", "fields.address"),
    ],
    fields: &[
        field("name", "common.name", Input::Text),
        hint(
            nullable(field("timezone", "settings.timezone", Input::Text)),
            "hints.location_timezone",
        ),
        field("address", "fields.address", Input::Multiline),
    ],
};

pub const AGENTS: Spec = Spec {
    key: "agents",
    columns: &[
        column("name", "common.name"),
        reference("team_id", "fields.team", "teams"),
        reference("location_id", "fields.location", "locations"),
        column("extension", "fields.extension"),
        column("skills", "fields.skills"),
    ],
    fields: &[
        field("name", "common.name", Input::Text),
        nullable(field("team_id", "fields.team", Input::Reference("teams"))),
        nullable(field("location_id", "fields.location", Input::Reference("locations"))),
        nullable(field("extension", "fields.extension", Input::Text)),
        hint(
            nullable(field("interface", "fields.interface", Input::Text)),
            "hints.interface",
        ),
        hint(field("skills", "fields.skills", Input::List), "hints.skills"),
    ],
};

pub const QUEUES: Spec = Spec {
    key: "queues",
    columns: &[
        column("name", "common.name"),
        column("strategy", "fields.strategy"),
        column("sl_threshold_s", "fields.sl_threshold_s"),
        column("sl_target_pct", "fields.sl_target_pct"),
        column("wrap_up_s", "fields.wrap_up_s"),
    ],
    fields: &[
        field("name", "common.name", Input::Text),
        field("description", "fields.description", Input::Multiline),
        field("strategy", "fields.strategy", Input::Choice(STRATEGIES)),
        hint(
            field("sl_threshold_s", "fields.sl_threshold_s", Input::Number),
            "hints.sl_threshold_s",
        ),
        field("sl_target_pct", "fields.sl_target_pct", Input::Number),
        field("wrap_up_s", "fields.wrap_up_s", Input::Number),
        hint(
            field("sl_variant", "fields.sl_variant", Input::Choice(SL_VARIANTS)),
            "hints.sl_variant",
        ),
        hint(
            field("short_abandon_s", "fields.short_abandon_s", Input::Number),
            "hints.short_abandon_s",
        ),
        field(
            "abandon_rate_counts_short",
            "fields.abandon_rate_counts_short",
            Input::Checkbox,
        ),
    ],
};

pub const DIDS: Spec = Spec {
    key: "dids",
    columns: &[
        column("number", "fields.number"),
        column("description", "fields.description"),
        column("route_type", "fields.route_type"),
        column("route_target", "fields.route_target"),
        column("sms_enabled", "fields.sms_enabled"),
    ],
    fields: &[
        hint(field("number", "fields.number", Input::Text), "hints.number"),
        field("description", "fields.description", Input::Text),
        field("route_type", "fields.route_type", Input::Choice(ROUTE_TYPES)),
        hint(
            nullable(field("route_target", "fields.route_target", Input::Text)),
            "hints.route_target",
        ),
        field("sms_enabled", "fields.sms_enabled", Input::Checkbox),
    ],
};

pub const ENDPOINTS: Spec = Spec {
    key: "endpoints",
    columns: &[
        column("name", "common.name"),
        column("auth_username", "fields.auth_username"),
        column("transport", "fields.transport"),
        column("context", "fields.context"),
        reference("agent_id", "fields.agent", "agents"),
        column("has_password", "fields.has_password"),
    ],
    fields: &[
        field("name", "common.name", Input::Text),
        field("auth_username", "fields.auth_username", Input::Text),
        hint(field("password", "fields.password", Input::Secret), "hints.password"),
        field("transport", "fields.transport", Input::Choice(TRANSPORTS)),
        hint(field("codecs", "fields.codecs", Input::List), "hints.codecs"),
        field("context", "fields.context", Input::Text),
        field("max_contacts", "fields.max_contacts", Input::Number),
        nullable(field("agent_id", "fields.agent", Input::Reference("agents"))),
    ],
};

/// The routes of the administration area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(index))
        .merge(collection::<Team>(&TEAMS))
        .merge(collection::<Location>(&LOCATIONS))
        .merge(collection::<Agent>(&AGENTS))
        .merge(collection::<Queue>(&QUEUES))
        .merge(collection::<DidRow>(&DIDS))
        .merge(collection::<EndpointRow>(&ENDPOINTS))
}

fn collection<R: Guarded + Writable>(spec: &'static Spec) -> Router<AppState>
where
    R::View: serde::Serialize,
{
    Router::new()
        .route(
            &format!("/admin/{}", spec.key),
            get(move |app, signed, query| list_page::<R>(spec, app, signed, query))
                .post(move |app, signed, form| create::<R>(spec, app, signed, form)),
        )
        .route(
            &format!("/admin/{}/new", spec.key),
            get(move |app, signed| new_page::<R>(spec, app, signed)),
        )
        .route(
            &format!("/admin/{}/{{id}}", spec.key),
            get(move |app, signed, id| edit_page::<R>(spec, app, signed, id))
                .post(move |app, signed, id, form| update::<R>(spec, app, signed, id, form)),
        )
        .route(
            &format!("/admin/{}/{{id}}/delete", spec.key),
            post(move |app, signed, id, form| delete::<R>(spec, app, signed, id, form)),
        )
}

/// The tenant scope of a signed-in user who may `action` in `area`, or the page that says why
/// not.
pub fn tenant_scope(
    app: &AppState,
    signed: &SignedIn,
    action: Action,
    area: Area,
) -> Result<TenantScope, Box<Response>> {
    match &signed.current.principal {
        Some(Principal::Tenant(scope)) if permits(scope.role(), action, area) => Ok(scope.clone()),
        Some(_) => Err(Box::new(forbidden(app, signed))),
        None => Err(Box::new(render_page(
            app,
            &signed.page,
            "pages/no_access.html",
            tera::Context::new(),
            StatusCode::FORBIDDEN,
        ))),
    }
}

/// The "not allowed" page; the refusal goes to the audit log.
pub fn forbidden(app: &AppState, signed: &SignedIn) -> Response {
    let current = &signed.current;
    let event = AuditEvent::new(
        current.session.tenant_id.as_ref(),
        &format!("user:{}", current.account.id),
        "ui.denied",
        Outcome::Denied,
    );
    let (store, origin) = (app.store.clone(), signed.page.origin.clone());
    let event = event.detail(signed.page.target.clone());
    tokio::spawn(async move { audit::record(&store, event, &origin).await });
    super::ui::error_page(
        app,
        &signed.page.error_headers,
        StatusCode::FORBIDDEN,
        &signed.page.locale.text("errors.forbidden"),
    )
}

fn label(locale: Locale, key: &str) -> String {
    if key.contains('.') {
        locale.text(key)
    } else {
        key.to_owned()
    }
}

async fn index(State(app): State<AppState>, signed: SignedIn) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, Area::Configuration)?;
    let t = signed.page.locale;
    let mut sections = Vec::new();
    for (key, area) in [
        ("settings", Area::TenantSettings),
        ("users", Area::Users),
        ("teams", Area::Configuration),
        ("locations", Area::Configuration),
        ("agents", Area::Configuration),
        ("queues", Area::Configuration),
        ("dids", Area::Configuration),
        ("endpoints", Area::Configuration),
        ("plugins", Area::Configuration),
        ("alert-rules", Area::Configuration),
        ("tokens", Area::Tokens),
        ("sessions", Area::Sessions),
        ("audit", Area::Audit),
    ] {
        if permits(scope.role(), Action::Read, area) {
            sections.push(json!({ "key": key, "title": t.text(&format!("admin.{key}")) }));
        }
    }
    Ok(render_view(
        &app,
        &signed.page,
        "admin/index.html",
        &IndexView { sections },
        StatusCode::OK,
    ))
}

/// `admin/index.html`: the administration sections the caller may open.
#[derive(Serialize)]
struct IndexView {
    sections: Vec<Value>,
}

/// `admin/list.html`: one page of a collection.
#[derive(Serialize)]
struct ListView {
    key: &'static str,
    title: String,
    headers: Vec<String>,
    rows: Vec<Value>,
    q: String,
    next_cursor: Option<String>,
    can_write: bool,
    /// "Saved", after a change brought the visitor back here.
    #[serde(skip_serializing_if = "Option::is_none")]
    notice: Option<String>,
}

/// `admin/form.html`: one item of a collection, new or existing.
#[derive(Serialize)]
struct FormView<'a> {
    key: &'static str,
    title: String,
    id: Option<&'a str>,
    version: Option<i64>,
    fields: Vec<Value>,
    errors: Map<String, Value>,
    message: Option<String>,
    can_write: bool,
    has_password: bool,
}

/// `(id, name)` options of a referenced collection, by name.
async fn options(app: &AppState, scope: &TenantScope, collection: &str) -> Vec<(String, String)> {
    let params = ListParams(vec![("limit".into(), "500".into()), ("sort".into(), "name".into())]);
    let names = |items: Vec<Value>| -> Vec<(String, String)> {
        items
            .into_iter()
            .filter_map(|v| Some((v["id"].as_str()?.to_owned(), v["name"].as_str()?.to_owned())))
            .collect()
    };
    let values = match collection {
        "teams" => resource::list::<Team>(&app.store, scope, &params).await.map(|p| {
            p.items
                .into_iter()
                .map(|i| serde_json::to_value(i).unwrap_or_default())
                .collect()
        }),
        "locations" => resource::list::<Location>(&app.store, scope, &params).await.map(|p| {
            p.items
                .into_iter()
                .map(|i| serde_json::to_value(i).unwrap_or_default())
                .collect()
        }),
        "agents" => resource::list::<Agent>(&app.store, scope, &params).await.map(|p| {
            p.items
                .into_iter()
                .map(|i| serde_json::to_value(i).unwrap_or_default())
                .collect()
        }),
        _ => Ok(Vec::new()),
    };
    names(values.unwrap_or_default())
}

async fn lookups(app: &AppState, scope: &TenantScope, spec: &Spec) -> HashMap<&'static str, Vec<(String, String)>> {
    let mut wanted: Vec<&'static str> = spec.columns.iter().filter_map(|c| c.reference).collect();
    wanted.extend(spec.fields.iter().filter_map(|f| match f.input {
        Input::Reference(c) => Some(c),
        _ => None,
    }));
    wanted.sort_unstable();
    wanted.dedup();
    let mut out = HashMap::new();
    for collection in wanted {
        out.insert(collection, options(app, scope, collection).await);
    }
    out
}

fn display(value: &Value, locale: Locale) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(b) => locale.text(if *b { "common.yes" } else { "common.no" }),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(|v| display(v, locale)).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

#[derive(serde::Deserialize, Default)]
pub struct ListPageQuery {
    q: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
}

async fn list_page<R: Guarded + Writable>(
    spec: &'static Spec,
    State(app): State<AppState>,
    signed: SignedIn,
    Query(query): Query<ListPageQuery>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, R::AREA)?;
    let locale = signed.page.locale;
    let sort = spec.columns.first().map(|c| c.field).unwrap_or("id");
    let mut params = vec![
        ("limit".to_owned(), "50".to_owned()),
        ("sort".to_owned(), sort.to_owned()),
    ];
    if let Some(q) = query.q.as_ref().filter(|q| !q.trim().is_empty()) {
        params.push(("q".into(), q.clone()));
    }
    if let Some(c) = &query.cursor {
        params.push(("cursor".into(), c.clone()));
    }
    let page = resource::list::<R>(&app.store, &scope, &ListParams(params)).await?;
    let lookups = lookups(&app, &scope, spec).await;
    let rows: Vec<Value> = page
        .items
        .into_iter()
        .map(|item| {
            let value = serde_json::to_value(item).unwrap_or_default();
            let cells: Vec<String> = spec
                .columns
                .iter()
                .map(|c| {
                    let raw = &value[c.field];
                    match (c.reference, raw.as_str()) {
                        (Some(collection), Some(id)) => lookups
                            .get(collection)
                            .and_then(|opts| opts.iter().find(|(i, _)| i == id))
                            .map(|(_, name)| name.clone())
                            .unwrap_or_else(|| id.to_owned()),
                        _ => display(raw, locale),
                    }
                })
                .collect();
            json!({ "id": value["id"], "cells": cells })
        })
        .collect();
    let headers: Vec<String> = spec.columns.iter().map(|c| label(locale, c.label)).collect();
    let view = ListView {
        key: spec.key,
        title: locale.text(&format!("admin.{}", spec.key)),
        headers,
        rows,
        q: query.q.unwrap_or_default(),
        next_cursor: page.next_cursor,
        can_write: permits(scope.role(), Action::Write, R::AREA),
        notice: (query.notice.as_deref() == Some("saved")).then(|| locale.text("common.saved")),
    };
    Ok(render_view(
        &app,
        &signed.page,
        "admin/list.html",
        &view,
        StatusCode::OK,
    ))
}

/// The fields of a form, ready for the template.
fn form_fields(
    spec: &Spec,
    locale: Locale,
    values: &Map<String, Value>,
    lookups: &HashMap<&'static str, Vec<(String, String)>>,
) -> Vec<Value> {
    spec.fields
        .iter()
        .map(|f| {
            let value = values.get(f.name).cloned().unwrap_or(Value::Null);
            let (kind, options): (&str, Vec<Value>) = match f.input {
                Input::Text => ("text", vec![]),
                Input::Multiline => ("textarea", vec![]),
                Input::Number => ("number", vec![]),
                Input::Checkbox => ("checkbox", vec![]),
                Input::Secret => ("password", vec![]),
                Input::List => ("text", vec![]),
                Input::Choice(choices) => (
                    "select",
                    choices.iter().map(|c| json!({ "value": c, "label": c })).collect(),
                ),
                Input::Reference(collection) => (
                    "select",
                    lookups
                        .get(collection)
                        .map(|opts| {
                            opts.iter()
                                .map(|(id, name)| json!({ "value": id, "label": name }))
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
            };
            let shown = match (&f.input, &value) {
                (Input::Secret, _) => String::new(),
                (Input::List, Value::Array(items)) => {
                    items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
                }
                (_, Value::String(s)) => s.clone(),
                (_, Value::Null) => String::new(),
                (_, other) => other.to_string(),
            };
            json!({
                "name": f.name, "label": label(locale, f.label), "kind": kind, "options": options,
                "value": shown, "checked": value == Value::Bool(true), "nullable": f.nullable,
                "hint": f.hint.map(|h| label(locale, h)),
            })
        })
        .collect()
}

/// Turns a submitted form into the JSON body the API would take. Values that cannot even be
/// read (a number that is not one) become field errors right away.
fn form_to_json(spec: &Spec, form: &[(String, String)], creating: bool) -> (Map<String, Value>, Map<String, Value>) {
    let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned());
    let mut body = Map::new();
    let mut errors = Map::new();
    for f in spec.fields {
        let raw = get(f.name);
        let value = match f.input {
            Input::Checkbox => Value::Bool(raw.is_some_and(|v| v == "on" || v == "true")),
            Input::Secret => match raw.filter(|v| !v.is_empty()) {
                Some(v) => Value::String(v),
                None => continue,
            },
            Input::List => Value::Array(
                raw.unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            ),
            Input::Number => match raw.filter(|v| !v.is_empty()) {
                None if f.nullable || creating => Value::Null,
                None => continue,
                Some(v) => match v.parse::<i64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => {
                        errors.insert(f.name.into(), json!("must be a whole number"));
                        continue;
                    }
                },
            },
            Input::Text | Input::Multiline | Input::Choice(_) | Input::Reference(_) => match raw {
                Some(v) if v.is_empty() && f.nullable => Value::Null,
                Some(v) => Value::String(v),
                None if f.nullable => Value::Null,
                None => continue,
            },
        };
        body.insert(f.name.into(), value);
    }
    (body, errors)
}

/// Store errors as field errors (and a general message for the rest), in the person's language.
pub fn field_errors(error: StoreError, locale: Locale) -> Result<(Map<String, Value>, Option<String>), StoreError> {
    let mut errors = Map::new();
    match error {
        StoreError::Invalid(v) => {
            for e in v.errors {
                let field = e
                    .pointer
                    .trim_start_matches('/')
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                errors.entry(field).or_insert(json!(locale.translate(&e.detail)));
            }
            Ok((errors, Some(locale.text("common.fix_errors"))))
        }
        StoreError::Conflict {
            field: Some(f),
            message,
        } => {
            errors.insert(f, json!(locale.translate(&message)));
            Ok((errors, Some(locale.text("common.fix_errors"))))
        }
        StoreError::Conflict { field: None, message } | StoreError::LimitReached(message) => {
            Ok((errors, Some(locale.translate(&message))))
        }
        StoreError::PreconditionFailed { .. } => Ok((errors, Some(locale.text("admin.stale")))),
        StoreError::BadRequest(message) => Ok((errors, Some(message))),
        other => Err(other),
    }
}

#[allow(clippy::too_many_arguments)]
async fn form_page(
    app: &AppState,
    signed: &SignedIn,
    scope: &TenantScope,
    spec: &Spec,
    id: Option<&str>,
    version: Option<i64>,
    values: &Map<String, Value>,
    errors: Map<String, Value>,
    message: Option<String>,
    can_write: bool,
    status: StatusCode,
) -> Response {
    let locale = signed.page.locale;
    let lookups = lookups(app, scope, spec).await;
    let view = FormView {
        key: spec.key,
        title: locale.text(&format!("admin.{}", spec.key)),
        id,
        version,
        fields: form_fields(spec, locale, values, &lookups),
        errors,
        message,
        can_write,
        has_password: values.get("has_password").and_then(Value::as_bool).unwrap_or(false),
    };
    render_view(app, &signed.page, "admin/form.html", &view, status)
}

async fn new_page<R: Guarded + Writable>(
    spec: &'static Spec,
    State(app): State<AppState>,
    signed: SignedIn,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, R::AREA)?;
    Ok(form_page(
        &app,
        &signed,
        &scope,
        spec,
        None,
        None,
        &Map::new(),
        Map::new(),
        None,
        true,
        StatusCode::OK,
    )
    .await)
}

/// Why a submitted form is shown again: field errors, a message, and the status to answer with.
struct Rejected {
    errors: Map<String, Value>,
    message: Option<String>,
    status: StatusCode,
}

/// Reads a form into the typed input the store takes; values that cannot even be read are
/// field errors.
fn typed_input<T: serde::de::DeserializeOwned>(
    spec: &Spec,
    form: &[(String, String)],
    creating: bool,
    locale: Locale,
) -> (Map<String, Value>, Result<T, Rejected>) {
    let (body, errors) = form_to_json(spec, form, creating);
    let input = if errors.is_empty() {
        serde_json::from_value::<T>(Value::Object(body.clone())).map_err(|e| Rejected {
            errors: Map::new(),
            message: Some(e.to_string()),
            status: StatusCode::UNPROCESSABLE_ENTITY,
        })
    } else {
        Err(Rejected {
            errors,
            message: Some(locale.text("common.fix_errors")),
            status: StatusCode::UNPROCESSABLE_ENTITY,
        })
    };
    (body, input)
}

/// A store error as a rejection of the form, or the error page when it is not about the input.
fn rejected(error: StoreError, locale: Locale) -> Result<Rejected, StoreError> {
    let status = match &error {
        StoreError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let (errors, message) = field_errors(error, locale)?;
    Ok(Rejected {
        errors,
        message,
        status,
    })
}

/// The outcome of a create or update: the list on success, the form again with its errors
/// otherwise.
#[allow(clippy::too_many_arguments)]
async fn finish_write(
    app: &AppState,
    signed: &SignedIn,
    scope: &TenantScope,
    spec: &'static Spec,
    id: Option<&str>,
    version: Option<i64>,
    body: &Map<String, Value>,
    result: Result<(), Rejected>,
) -> Response {
    match result {
        Ok(_) => Redirect::to(&format!("/admin/{}?notice=saved", spec.key)).into_response(),
        Err(r) => {
            form_page(
                app, signed, scope, spec, id, version, body, r.errors, r.message, true, r.status,
            )
            .await
        }
    }
}

async fn create<R: Guarded + Writable>(
    spec: &'static Spec,
    State(app): State<AppState>,
    signed: SignedIn,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, R::AREA)?;
    let locale = signed.page.locale;
    let (body, input) = typed_input::<R::Create>(spec, &form, true, locale);
    let origin = &signed.page.origin;
    let result = match input {
        Ok(input) => match configuration::create::<R>(&app.store, &scope, origin, input).await {
            Ok(_) => Ok(()),
            Err(e) => match rejected(e, locale) {
                Ok(r) => Err(r),
                Err(e) => return Err(e.into()),
            },
        },
        Err(r) => Err(r),
    };
    Ok(finish_write(&app, &signed, &scope, spec, None, None, &body, result).await)
}

async fn edit_page<R: Guarded + Writable>(
    spec: &'static Spec,
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Read, R::AREA)?;
    let row: R = resource::get(&app.store, &scope, &id).await?;
    let version = row.version();
    let values = match serde_json::to_value(row.view()) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let can_write = permits(scope.role(), Action::Write, R::AREA);
    Ok(form_page(
        &app,
        &signed,
        &scope,
        spec,
        Some(&id),
        Some(version),
        &values,
        Map::new(),
        None,
        can_write,
        StatusCode::OK,
    )
    .await)
}

fn version_of(form: &[(String, String)]) -> Option<i64> {
    form.iter()
        .find(|(k, _)| k == "_version")
        .and_then(|(_, v)| v.parse().ok())
}

async fn update<R: Guarded + Writable>(
    spec: &'static Spec,
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, R::AREA)?;
    let locale = signed.page.locale;
    let version = version_of(&form);
    let (body, input) = typed_input::<R::Update>(spec, &form, false, locale);
    let origin = &signed.page.origin;
    let result = match input {
        Ok(input) => match configuration::update::<R>(&app.store, &scope, origin, &id, version, input).await {
            Ok(_) => Ok(()),
            Err(e) => match rejected(e, locale) {
                Ok(r) => Err(r),
                Err(e) => return Err(e.into()),
            },
        },
        Err(r) => Err(r),
    };
    Ok(finish_write(&app, &signed, &scope, spec, Some(&id), version, &body, result).await)
}

async fn delete<R: Guarded + Writable>(
    spec: &'static Spec,
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let scope = tenant_scope(&app, &signed, Action::Write, R::AREA)?;
    Ok(
        match configuration::delete::<R>(&app.store, &scope, &signed.page.origin, &id, version_of(&form)).await {
            Ok(()) => Redirect::to(&format!("/admin/{}?notice=saved", spec.key)).into_response(),
            Err(e) => {
                let refusal = field_errors(e, signed.page.locale);
                // The form again, as the row still is, with why it stays.
                let row = resource::get::<R>(&app.store, &scope, &id).await;
                let values = match row.map(|row| serde_json::to_value(row.view())) {
                    Ok(Ok(Value::Object(m))) => m,
                    _ => Map::new(),
                };
                match refusal {
                    Ok((errors, message)) => {
                        form_page(
                            &app,
                            &signed,
                            &scope,
                            spec,
                            Some(&id),
                            version_of(&form),
                            &values,
                            errors,
                            message,
                            true,
                            StatusCode::CONFLICT,
                        )
                        .await
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        },
    )
}

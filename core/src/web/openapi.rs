//! The OpenAPI 3.1 document, generated from the collections' definitions and the Rust types
//! (schemas come from `utoipa::ToSchema` derives), so it cannot drift from the code.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::AppState;
use super::api::{Guarded, TokenCreate};
use super::problem::{PROBLEM_JSON, Problem};
use crate::domain::FieldError;
use crate::store::audit::{AuditEntry, AuditRow};
use crate::store::entities::agents::Agent;
use crate::store::entities::dids::DidRow;
use crate::store::entities::endpoints::EndpointRow;
use crate::store::entities::locations::Location;
use crate::store::entities::queues::{PenaltyInput, Queue, QueueMember, QueueMemberInput};
use crate::store::entities::teams::Team;
use crate::store::entities::users::{Member, MemberCreate, MemberUpdate};
use crate::store::invitations::Invitation;
use crate::store::list::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::store::resource::Writable;
use crate::store::tenants::{Tenant, TenantCreate, TenantUpdate};
use crate::store::tokens::{ApiToken, IssuedToken};

struct Doc {
    paths: Map<String, Value>,
    schemas: Map<String, Value>,
    tags: Vec<Value>,
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn problem(description: &str) -> Value {
    json!({ "description": description, "content": { PROBLEM_JSON: { "schema": schema_ref("Problem") } } })
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn with_etag(mut response: Value, location: bool) -> Value {
    let mut headers = json!({ "ETag": { "description": "The version of the resource, for If-Match", "schema": { "type": "string" } } });
    if location {
        headers["Location"] = json!({ "description": "URL of the created resource", "schema": { "type": "string" } });
    }
    response["headers"] = headers;
    response
}

fn page_of(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": { "type": "array", "items": schema_ref(item) },
            "next_cursor": { "type": ["string", "null"], "description": "Pass as `cursor` for the next page; null on the last page." }
        }
    })
}

fn body(schema: &str) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema_ref(schema) } } })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn if_match() -> Value {
    json!({ "name": "If-Match", "in": "header", "required": false,
            "description": "The ETag you last read; the change is refused with 412 if the resource changed since.",
            "schema": { "type": "string" } })
}

fn standard_errors(op: &mut Value, codes: &[&str]) {
    for code in codes {
        let description = match *code {
            "400" => "Malformed request (bad JSON, unknown query parameter, invalid cursor)",
            "401" => "Missing, unknown, expired or revoked token",
            "403" => "The token's role may not do this, or a tenant limit was reached",
            "404" => "Not found (or belongs to another tenant)",
            "409" => "Conflicts with existing data (duplicate, still in use)",
            "412" => "If-Match did not match the current version",
            "413" => "Request body too large",
            "415" => "Body is not JSON",
            "422" => "Invalid fields; see `errors`",
            "503" => "Database unavailable; retry after the Retry-After delay",
            _ => "Error",
        };
        op["responses"][*code] = problem(description);
    }
}

impl Doc {
    fn schema<T: ToSchema>(&mut self) -> String {
        let mut deps = Vec::new();
        T::schemas(&mut deps);
        for (name, schema) in deps {
            self.schemas
                .insert(name, serde_json::to_value(schema).unwrap_or(Value::Null));
        }
        let name = T::name().into_owned();
        self.schemas
            .insert(name.clone(), serde_json::to_value(T::schema()).unwrap_or(Value::Null));
        name
    }

    fn tag(&mut self, name: &str, description: &str) {
        self.tags.push(json!({ "name": name, "description": description }));
    }

    fn operation(&mut self, path: &str, method: &str, op: Value) {
        let entry = self.paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        entry[method] = op;
    }

    fn collection<R: Guarded + Writable>(&mut self) {
        let view = self.schema::<R::View>();
        let create = self.schema::<R::Create>();
        let update = self.schema::<R::Update>();
        let tag = R::COLLECTION;
        self.tag(tag, R::DESCRIPTION);
        let base = format!("/api/v1/{}", R::COLLECTION);
        let item = format!("{base}/{{id}}");
        let mut list = json!({
            "tags": [tag], "operationId": format!("list_{tag}"), "summary": format!("List {}", R::COLLECTION),
            "parameters": list_parameters::<R>(),
            "responses": { "200": json_response("A page of results", page_of(&view)) }
        });
        standard_errors(&mut list, &["400", "401", "403", "503"]);
        self.operation(&base, "get", list);
        let mut create_op = json!({
            "tags": [tag], "operationId": format!("create_{}", R::KIND.replace(' ', "_")),
            "summary": format!("Create a {}", R::KIND), "requestBody": body(&create),
            "responses": { "201": with_etag(json_response("Created", schema_ref(&view)), true) }
        });
        standard_errors(
            &mut create_op,
            &["400", "401", "403", "409", "413", "415", "422", "503"],
        );
        self.operation(&base, "post", create_op);
        let id = path_param("id", &format!("The {}'s id", R::KIND));
        let mut get_op = json!({
            "tags": [tag], "operationId": format!("get_{}", R::KIND.replace(' ', "_")),
            "summary": format!("Get a {}", R::KIND), "parameters": [id.clone()],
            "responses": {
                "200": with_etag(json_response("The resource", schema_ref(&view)), false),
                "304": { "description": "Not modified (If-None-Match matched)" }
            }
        });
        standard_errors(&mut get_op, &["401", "403", "404", "503"]);
        self.operation(&item, "get", get_op);
        let mut patch = json!({
            "tags": [tag], "operationId": format!("update_{}", R::KIND.replace(' ', "_")),
            "summary": format!("Update a {}", R::KIND),
            "description": "Send only the fields to change. For nullable fields, `null` clears the value.",
            "parameters": [id.clone(), if_match()], "requestBody": body(&update),
            "responses": { "200": with_etag(json_response("Updated", schema_ref(&view)), false) }
        });
        standard_errors(
            &mut patch,
            &["400", "401", "403", "404", "409", "412", "413", "415", "422", "503"],
        );
        self.operation(&item, "patch", patch);
        let mut delete = json!({
            "tags": [tag], "operationId": format!("delete_{}", R::KIND.replace(' ', "_")),
            "summary": format!("Delete a {}", R::KIND), "parameters": [id, if_match()],
            "responses": { "204": { "description": "Deleted" } }
        });
        standard_errors(&mut delete, &["401", "403", "404", "409", "412", "503"]);
        self.operation(&item, "delete", delete);
    }
}

fn list_parameters<R: Guarded>() -> Vec<Value> {
    let sortable: Vec<&str> = R::FIELDS
        .iter()
        .filter(|f| f.sort)
        .map(|f| f.name)
        .chain(["id"])
        .collect();
    let mut params = vec![
        query_param(
            "limit",
            &format!("Page size, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"),
            json!({ "type": "integer", "minimum": 1, "maximum": MAX_LIMIT }),
        ),
        query_param(
            "cursor",
            "The `next_cursor` of the previous page",
            json!({ "type": "string" }),
        ),
        query_param(
            "sort",
            &format!(
                "Comma-separated fields, `-` for descending. Sortable: {}",
                sortable.join(", ")
            ),
            json!({ "type": "string" }),
        ),
    ];
    if !R::SEARCH.is_empty() {
        params.push(query_param(
            "q",
            "Case-insensitive text search",
            json!({ "type": "string" }),
        ));
    }
    for field in R::FIELDS.iter().filter(|f| f.filter) {
        let description = if field.nullable {
            format!("Only items whose {} equals this (`null` for none)", field.name)
        } else {
            format!("Only items whose {} equals this", field.name)
        };
        params.push(query_param(field.name, &description, json!({ "type": "string" })));
    }
    params
}

/// Builds the OpenAPI document.
pub fn document() -> Value {
    let mut doc = Doc {
        paths: Map::new(),
        schemas: Map::new(),
        tags: Vec::new(),
    };
    doc.schema::<Problem>();
    doc.schema::<FieldError>();
    doc.collection::<Team>();
    doc.collection::<Location>();
    doc.collection::<Agent>();
    doc.collection::<Queue>();
    doc.collection::<DidRow>();
    doc.collection::<EndpointRow>();
    custom_operations(&mut doc);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Monti API",
            "version": crate::VERSION,
            "description": "REST API v1 of Monti, the contact-center operations platform. Authenticate with \
                `Authorization: Bearer <token>` (create one with `monti admin token create`). Errors are RFC 9457 \
                problem details. Lists use cursor pagination (`limit`, `cursor`), `sort` and field filters. Updates \
                accept `If-Match` with the ETag you read, for optimistic concurrency."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "tags": doc.tags,
        "paths": doc.paths,
        "components": {
            "schemas": doc.schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "An API token (monti_…)" } }
        }
    })
}

fn custom_operations(doc: &mut Doc) {
    // Users.
    let member = doc.schema::<Member>();
    let member_create = doc.schema::<MemberCreate>();
    let member_update = doc.schema::<MemberUpdate>();
    doc.tag(
        "users",
        "People who can sign in to this tenant, with their role and scopes.",
    );
    let mut op = json!({ "tags": ["users"], "operationId": "list_users", "summary": "List users of this tenant",
        "parameters": list_parameters::<Member>(),
        "responses": { "200": json_response("A page of users", page_of(&member)) } });
    standard_errors(&mut op, &["400", "401", "403"]);
    doc.operation("/api/v1/users", "get", op);
    let invitation = doc.schema::<Invitation>();
    let mut op = json!({ "tags": ["users"], "operationId": "add_user",
        "summary": "Invite someone to this tenant by email",
        "description": "The person becomes a member once they accept (signing in with the account of that address, or \
            choosing a password if it has none). The answer is the same whether or not the address has an account. \
            With a mail server configured the link is emailed (`delivery: email`); otherwise it is in `link`, once, to \
            hand over (`delivery: link`). A role or scope wider than the caller's own is refused with 403.",
        "requestBody": body(&member_create),
        "responses": { "202": json_response("Invited; the invitation, plus `delivery` and (without mail) `link`", schema_ref(&invitation)) } });
    standard_errors(&mut op, &["400", "401", "403", "409", "422"]);
    doc.operation("/api/v1/users", "post", op);
    let mut op = json!({ "tags": ["users"], "operationId": "list_invitations", "summary": "List invitations of this tenant",
        "parameters": list_parameters::<Invitation>(),
        "responses": { "200": json_response("A page of invitations", page_of(&invitation)) } });
    standard_errors(&mut op, &["400", "401", "403"]);
    doc.operation("/api/v1/invitations", "get", op);
    let invitation_id = path_param("id", "The invitation id");
    let mut op = json!({ "tags": ["users"], "operationId": "get_invitation", "summary": "Get an invitation",
        "parameters": [invitation_id.clone()], "responses": { "200": json_response("The invitation", schema_ref(&invitation)) } });
    standard_errors(&mut op, &["401", "403", "404"]);
    doc.operation("/api/v1/invitations/{id}", "get", op);
    let mut op = json!({ "tags": ["users"], "operationId": "revoke_invitation", "summary": "Revoke a pending invitation (its link stops working)",
        "parameters": [invitation_id], "responses": { "200": json_response("The revoked invitation", schema_ref(&invitation)) } });
    standard_errors(&mut op, &["401", "403", "404"]);
    doc.operation("/api/v1/invitations/{id}", "delete", op);
    let id = path_param("id", "The user id");
    let mut op = json!({ "tags": ["users"], "operationId": "get_user", "summary": "Get a user", "parameters": [id.clone()],
        "responses": { "200": with_etag(json_response("The user", schema_ref(&member)), false) } });
    standard_errors(&mut op, &["401", "403", "404"]);
    doc.operation("/api/v1/users/{id}", "get", op);
    let mut op = json!({ "tags": ["users"], "operationId": "update_user", "summary": "Change a user's role, scopes or status",
        "parameters": [id.clone(), if_match()], "requestBody": body(&member_update),
        "responses": { "200": with_etag(json_response("Updated", schema_ref(&member)), false) } });
    standard_errors(&mut op, &["400", "401", "403", "404", "412", "422"]);
    doc.operation("/api/v1/users/{id}", "patch", op);
    let mut op = json!({ "tags": ["users"], "operationId": "remove_user", "summary": "Remove a user from this tenant",
        "parameters": [id, if_match()], "responses": { "204": { "description": "Removed" } } });
    standard_errors(&mut op, &["401", "403", "404", "409", "412"]);
    doc.operation("/api/v1/users/{id}", "delete", op);

    // Tokens.
    let token = doc.schema::<ApiToken>();
    let token_create = doc.schema::<TokenCreate>();
    doc.schema::<IssuedToken>();
    doc.tag(
        "tokens",
        "API tokens of this tenant. The secret is returned once, at creation.",
    );
    let mut op = json!({ "tags": ["tokens"], "operationId": "list_tokens", "summary": "List API tokens",
        "parameters": list_parameters::<ApiToken>(),
        "responses": { "200": json_response("A page of tokens", page_of(&token)) } });
    standard_errors(&mut op, &["400", "401", "403"]);
    doc.operation("/api/v1/tokens", "get", op);
    let mut op = json!({ "tags": ["tokens"], "operationId": "create_token", "summary": "Create an API token",
        "requestBody": body(&token_create),
        "description": "A token can never do more than its creator: a stronger role, or a scope wider than the \
            creator's own teams and locations, is refused with 403.",
        "responses": { "201": json_response("Created; `secret` is shown only now", schema_ref("IssuedToken")) } });
    standard_errors(&mut op, &["400", "401", "403", "422"]);
    doc.operation("/api/v1/tokens", "post", op);
    let id = path_param("id", "The token id");
    let mut op = json!({ "tags": ["tokens"], "operationId": "get_token", "summary": "Get a token's metadata",
        "parameters": [id.clone()], "responses": { "200": json_response("The token", schema_ref(&token)) } });
    standard_errors(&mut op, &["401", "403", "404"]);
    doc.operation("/api/v1/tokens/{id}", "get", op);
    let mut op = json!({ "tags": ["tokens"], "operationId": "revoke_token", "summary": "Revoke a token (takes effect at once)",
        "parameters": [id], "responses": { "204": { "description": "Revoked" } } });
    standard_errors(&mut op, &["401", "403", "404"]);
    doc.operation("/api/v1/tokens/{id}", "delete", op);

    // Events.
    let result = doc.schema::<crate::web::ingest::IngestResult>();
    doc.schema::<crate::web::ingest::ItemResult>();
    doc.tag(
        "events",
        "Contact-center events from PBX connectors, CRMs and scripts (tenant admin tokens). Format: docs/events.md.",
    );
    let mut op = json!({ "tags": ["events"], "operationId": "post_events", "summary": "Send events",
        "description": "A JSON array (`application/json`) or one event per line (`application/x-ndjson`), at most 10,000 per request. Each event gets its own result: `accepted` (stored before this answer), `duplicate` (the same source and id was stored before) or `rejected` with the reasons. Agents are named by id, extension or interface; queues by id or name.",
        "requestBody": { "required": true, "content": {
            "application/json": { "schema": { "type": "array", "items": { "type": "object" } } },
            "application/x-ndjson": { "schema": { "type": "string" } } } },
        "responses": { "200": json_response("One result per event", schema_ref(&result)) } });
    standard_errors(&mut op, &["400", "401", "403", "413", "415"]);
    doc.operation("/api/v1/events", "post", op);
    doc.tag(
        "live",
        "The live floor: agent states and queue figures now (supervisors, viewers, tenant admins).",
    );
    let mut op = json!({ "tags": ["live"], "operationId": "live_snapshot", "summary": "The live floor now",
        "description": "`agents` (each with `state`, `reason`, `since`), counts by state in total (`states`), per team, location and queue, and per queue the callers waiting, the longest wait and the KPIs for today (tenant time zone) and the last 15 minutes, hour and 24 hours. A supervisor scoped to teams or locations sees only those.",
        "responses": { "200": { "description": "The snapshot", "content": { "application/json": { "schema": { "type": "object" } } } } } });
    standard_errors(&mut op, &["401", "403"]);
    doc.operation("/api/v1/live/snapshot", "get", op);
    let mut op = json!({ "tags": ["live"], "operationId": "live_stream", "summary": "The live floor as it changes (server-sent events)",
        "description": "First `event: snapshot` (as `GET /api/v1/live/snapshot`), then `event: delta` once per tick (250 ms) when something changed: `{\"seq\", \"at\", \"agents\": [changed agents], \"queues\": [changed queues]}`. Every event has an `id`; reconnect with `Last-Event-ID` to get what was missed (the last 10 seconds) instead of a new snapshot. `event: resync` ends a stream that fell behind: reconnect without `Last-Event-ID`. Streams end after 10 minutes; reconnect. See docs/live.md.",
        "parameters": [{ "name": "Last-Event-ID", "in": "header", "required": false, "schema": { "type": "string" } }],
        "responses": { "200": { "description": "The stream", "content": { "text/event-stream": { "schema": { "type": "string" } } } } } });
    standard_errors(&mut op, &["401", "403"]);
    doc.operation("/api/v1/live/stream", "get", op);
    let mut op = json!({ "tags": ["live"], "operationId": "live_websocket", "summary": "The live floor as it changes (WebSocket)",
        "description": "The same as `/api/v1/live/stream` over WebSocket: JSON text messages `{\"type\": \"snapshot\"|\"delta\"|\"resync\", \"id\", \"data\"}`. Authenticate with `Authorization: Bearer` or, where a client cannot set headers (browsers), with `?ticket=` from `POST /api/v1/live/tickets` (tokens in URLs are not accepted); resume with `?last_event_id=`. The server closes the connection (code 1008) within seconds of the credential being revoked or its role or scopes changing.",
        "parameters": [
            { "name": "ticket", "in": "query", "required": false, "schema": { "type": "string" }, "description": "A single-use stream ticket (30 seconds)." },
            { "name": "last_event_id", "in": "query", "required": false, "schema": { "type": "string" } }],
        "responses": { "101": { "description": "Switching to WebSocket" } } });
    standard_errors(&mut op, &["400", "401", "403"]);
    doc.operation("/api/v1/live/ws", "get", op);
    let ticket = json!({ "type": "object", "required": ["ticket", "expires_at"], "properties": {
        "ticket": { "type": "string", "description": "Put it in `/api/v1/live/ws?ticket=`; good once." },
        "expires_at": { "type": "string", "format": "date-time" } } });
    let mut op = json!({ "tags": ["live"], "operationId": "live_ticket", "summary": "A ticket to open the WebSocket stream with",
        "description": "For clients that cannot send `Authorization` on a WebSocket (browsers): a random ticket, good for one connection within 30 seconds at this server instance. The stream it opens sees what the calling credential sees and ends when that credential is revoked.",
        "responses": { "201": json_response("The ticket", ticket) } });
    standard_errors(&mut op, &["401", "403", "429"]);
    doc.operation("/api/v1/live/tickets", "post", op);

    // Plugins.
    doc.tag(
        "plugins",
        "The tenant's plugins (WebAssembly components against the monti:plugin 1.x contract, 1.0.0 to 1.4.0; docs/plugins.md). Tenant admins change them; every change is audited.",
    );
    let installation = json!({ "type": "object", "description": "An installation: `id`, `plugin_id`, `version`, `digest`, `enabled`, `config`, `invocations`, `failures`, `last_error`, `last_logs`, `updated_at`." });
    let mut op = json!({ "tags": ["plugins"], "operationId": "list_plugins", "summary": "List installed plugins",
        "responses": { "200": json_response("The installations", json!({ "type": "object", "properties": { "items": { "type": "array", "items": installation } } })) } });
    standard_errors(&mut op, &["401", "403"]);
    doc.operation("/api/v1/plugins", "get", op);
    let mut op = json!({ "tags": ["plugins"], "operationId": "install_plugin", "summary": "Install or upgrade a plugin",
        "description": "The body is the component (`application/wasm`, at most 32 MiB). It is validated (a component of a world this host runs, a sound manifest) and installed disabled; a plugin the tenant has already is upgraded, keeping its configuration and whether it is enabled (200 instead of 201). The answer includes the `manifest`.",
        "requestBody": { "required": true, "content": { "application/wasm": { "schema": { "type": "string", "format": "binary" } } } },
        "responses": { "201": json_response("Installed", installation.clone()), "200": json_response("Upgraded", installation.clone()) } });
    standard_errors(&mut op, &["401", "403", "413", "415", "422"]);
    doc.operation("/api/v1/plugins", "post", op);
    let mut op = json!({ "tags": ["plugins"], "operationId": "read_plugin", "summary": "One installation (by installation or plugin id)",
        "description": "Besides the installation: `pending_capabilities` (what it asks for that is not approved yet), `status` (what the plugin reports about itself) and `last_disconnect` (a stream plugin's last dropped connection since the server started: `at`, `kind`, `reason`, `destination`, `was_connected`; null when none).",
        "responses": { "200": json_response("The installation", installation.clone()) } });
    standard_errors(&mut op, &["401", "403", "404"]);
    doc.operation("/api/v1/plugins/{id}", "get", op);
    let mut op = json!({ "tags": ["plugins"], "operationId": "update_plugin", "summary": "Configure, set secrets, enable or disable",
        "description": "`{\"config\": {…}, \"secrets\": {…}, \"enabled\": true, \"approve_capabilities\": true}`, any of them. The configuration is checked against the plugin's JSON Schema (also when enabling); secrets must be ones the plugin declares (1 to 8192 characters, never shown again). Enabling a plugin that asks for capabilities not yet approved answers 409 with them in `capabilities` unless `approve_capabilities` is true. The answer adds `secrets` (the names set) and `pending_capabilities`.",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "properties": {
            "enabled": { "type": "boolean" }, "config": { "type": "object" },
            "secrets": { "type": "object", "additionalProperties": { "type": "string" } },
            "approve_capabilities": { "type": "boolean" } } } } } },
        "responses": { "200": json_response("The installation", installation) } });
    standard_errors(&mut op, &["400", "401", "403", "404", "409", "422"]);
    doc.operation("/api/v1/plugins/{id}", "patch", op);
    let mut op = json!({ "tags": ["plugins"], "operationId": "remove_plugin", "summary": "Remove, with its configuration and storage",
        "responses": { "204": { "description": "Removed" } } });
    standard_errors(&mut op, &["401", "403", "404"]);
    doc.operation("/api/v1/plugins/{id}", "delete", op);
    let mut op = json!({ "tags": ["plugins"], "operationId": "list_dead_letters", "summary": "Batches the plugin kept failing on",
        "description": "With the `retry-then-dead-letter` policy (the default) a batch the plugin fails on with a retryable error is tried twice more, then kept here: `id`, `error`, `attempts`, `events`, `created_at`, `updated_at`.",
        "responses": { "200": json_response("The dead letters", json!({ "type": "object" })) } });
    standard_errors(&mut op, &["401", "403", "404"]);
    doc.operation("/api/v1/plugins/{id}/dead-letters", "get", op);
    let mut op = json!({ "tags": ["plugins"], "operationId": "replay_dead_letter", "summary": "Run a dead letter again",
        "description": "Gone when the plugin handles it (what it emits is accepted); kept with the new error (422) when not. Audited.",
        "responses": { "200": json_response("Replayed", json!({ "type": "object" })) } });
    standard_errors(&mut op, &["401", "403", "404", "422"]);
    doc.operation("/api/v1/plugins/{id}/dead-letters/{letter}/replay", "post", op);

    // Audit log.
    let entry = doc.schema::<AuditEntry>();
    doc.tag(
        "audit",
        "The tenant's append-only audit log: sign-ins, changes (with the record before and after), token creation. Tenant admins only.",
    );
    let mut op = json!({ "tags": ["audit"], "operationId": "list_audit", "summary": "List audit entries",
        "description": "Filter with `action`, `outcome`, `actor`, `target_kind`, `target_id`, `q`, and the time range `at_from`/`at_to` (RFC 3339); `sort=-at` for newest first.",
        "parameters": list_parameters::<AuditRow>(),
        "responses": { "200": json_response("A page of entries", page_of(&entry)) } });
    standard_errors(&mut op, &["400", "401", "403"]);
    doc.operation("/api/v1/audit", "get", op);
    let mut op = json!({ "tags": ["audit"], "operationId": "export_audit", "summary": "Export audit entries as CSV",
        "description": "Takes the same filters as the list; newest first, at most 100,000 entries.",
        "responses": { "200": { "description": "RFC 4180 CSV", "content": { "text/csv": { "schema": { "type": "string" } } } } } });
    standard_errors(&mut op, &["400", "401", "403"]);
    doc.operation("/api/v1/audit/export", "get", op);

    // Queue members.
    let qm = doc.schema::<QueueMember>();
    doc.schema::<QueueMemberInput>();
    doc.schema::<PenaltyInput>();
    let members = json!({ "type": "object", "required": ["items"], "properties": { "items": { "type": "array", "items": schema_ref(&qm) } } });
    let qid = path_param("id", "The queue id");
    let mut op = json!({ "tags": ["queues"], "operationId": "list_queue_members", "summary": "List a queue's members",
        "parameters": [qid.clone()], "responses": { "200": json_response("Members, lowest penalty first", members.clone()) } });
    standard_errors(&mut op, &["401", "403", "404"]);
    doc.operation("/api/v1/queues/{id}/members", "get", op);
    let mut op = json!({ "tags": ["queues"], "operationId": "replace_queue_members", "summary": "Replace all of a queue's members",
        "parameters": [qid.clone()],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "array", "items": schema_ref("QueueMemberInput") } } } },
        "responses": { "200": json_response("The new member list", members) } });
    standard_errors(&mut op, &["400", "401", "403", "404", "422"]);
    doc.operation("/api/v1/queues/{id}/members", "put", op);
    let aid = path_param("agent_id", "The agent id");
    let mut op = json!({ "tags": ["queues"], "operationId": "put_queue_member", "summary": "Add an agent to a queue or set its penalty",
        "parameters": [qid.clone(), aid.clone()], "requestBody": body("PenaltyInput"),
        "responses": { "200": json_response("The membership", schema_ref(&qm)) } });
    standard_errors(&mut op, &["400", "401", "403", "404", "422"]);
    doc.operation("/api/v1/queues/{id}/members/{agent_id}", "put", op);
    let mut op = json!({ "tags": ["queues"], "operationId": "remove_queue_member", "summary": "Remove an agent from a queue",
        "parameters": [qid, aid], "responses": { "204": { "description": "Removed" } } });
    standard_errors(&mut op, &["401", "403", "404"]);
    doc.operation("/api/v1/queues/{id}/members/{agent_id}", "delete", op);

    // Tenants.
    let tenant = doc.schema::<Tenant>();
    let tenant_create = doc.schema::<TenantCreate>();
    let tenant_update = doc.schema::<TenantUpdate>();
    doc.tag("tenant", "The caller's own tenant.");
    doc.tag("tenants", "All tenants; platform admin tokens only.");
    let mut op = json!({ "tags": ["tenant"], "operationId": "get_own_tenant", "summary": "Get your tenant",
        "responses": { "200": with_etag(json_response("Your tenant", schema_ref(&tenant)), false) } });
    standard_errors(&mut op, &["401", "403"]);
    doc.operation("/api/v1/tenant", "get", op);
    let mut op = json!({ "tags": ["tenant"], "operationId": "update_own_tenant", "summary": "Rename your tenant or change its time zone",
        "parameters": [if_match()], "requestBody": body(&tenant_update),
        "responses": { "200": with_etag(json_response("Updated", schema_ref(&tenant)), false) } });
    standard_errors(&mut op, &["400", "401", "403", "412", "422"]);
    doc.operation("/api/v1/tenant", "patch", op);
    let mut op = json!({ "tags": ["tenants"], "operationId": "list_tenants", "summary": "List all tenants",
        "responses": { "200": json_response("All tenants", page_of(&tenant)) } });
    standard_errors(&mut op, &["401", "403"]);
    doc.operation("/api/v1/tenants", "get", op);
    let mut op = json!({ "tags": ["tenants"], "operationId": "create_tenant", "summary": "Create a tenant",
        "requestBody": body(&tenant_create),
        "responses": { "201": with_etag(json_response("Created", schema_ref(&tenant)), true) } });
    standard_errors(&mut op, &["400", "401", "403", "409", "422"]);
    doc.operation("/api/v1/tenants", "post", op);
    let tid = path_param("id", "The tenant id");
    let mut op = json!({ "tags": ["tenants"], "operationId": "get_tenant", "summary": "Get a tenant", "parameters": [tid.clone()],
        "responses": { "200": with_etag(json_response("The tenant", schema_ref(&tenant)), false) } });
    standard_errors(&mut op, &["401", "403", "404"]);
    doc.operation("/api/v1/tenants/{id}", "get", op);
    let mut op = json!({ "tags": ["tenants"], "operationId": "update_tenant", "summary": "Update a tenant, including features and limits",
        "parameters": [tid, if_match()], "requestBody": body(&tenant_update),
        "responses": { "200": with_etag(json_response("Updated", schema_ref(&tenant)), false) } });
    standard_errors(&mut op, &["400", "401", "403", "404", "412", "422"]);
    doc.operation("/api/v1/tenants/{id}", "patch", op);

    // Operations.
    doc.tag("operations", "Health, readiness and metrics; no API token needed.");
    doc.operation(
        "/healthz",
        "get",
        json!({ "tags": ["operations"], "operationId": "healthz", "summary": "The process is up",
        "security": [], "responses": { "200": { "description": "Up" } } }),
    );
    doc.operation(
        "/readyz",
        "get",
        json!({ "tags": ["operations"], "operationId": "readyz",
        "summary": "The database is reachable and migrations are current", "security": [],
        "responses": { "200": { "description": "Ready" }, "503": problem("Not ready; `detail` says why") } }),
    );
    doc.operation(
        "/metrics",
        "get",
        json!({ "tags": ["operations"], "operationId": "metrics",
        "summary": "Prometheus metrics", "security": [],
        "description": "Open unless the server sets `metrics.token`; then only with `Authorization: Bearer <that token>` (not an API token).",
        "responses": { "200": { "description": "Prometheus text exposition format" },
            "401": problem("`metrics.token` is set and the request does not bear it") } }),
    );
    doc.operation("/api/v1/openapi.json", "get", json!({ "tags": ["operations"], "operationId": "openapi",
        "summary": "This document", "security": [], "responses": { "200": { "description": "OpenAPI 3.1 document" } } }));
    call_control_operations(doc);
    alert_operations(doc);
    history_operations(doc);
}

/// The call history's filters, shared by the list and the export.
fn call_filters() -> Vec<Value> {
    let text = json!({ "type": "string" });
    [
        ("from", "Started at or after: RFC 3339, or a local `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM` in `tz` (default: today's start in the tenant's time zone)"),
        ("to", "Started before (a date means the end of that day; default: the end of today)"),
        ("tz", "IANA time zone for local dates and times (default: the tenant's)"),
        ("queue", "A queue id, or `none` for calls outside queues"),
        ("agent", "An agent id"),
        ("team", "A team id: the calls its agents handled"),
        ("direction", "`inbound`, `outbound` or `internal`"),
        ("outcome", "`answered`, `abandoned`, `timeout`, `full` or `join_empty`"),
        ("disposition", "As the PBX's CDR says: `ANSWERED`, `NO ANSWER`, `BUSY`, `FAILED`, `CONGESTION`, `CANCEL`"),
        ("caller", "The caller's number starts with this"),
        ("destination", "The dialled number (for inbound calls the DID) starts with this"),
        ("min_duration", "At least this many seconds from start to end"),
        ("max_duration", "At most this many seconds"),
        ("by", "`started` (default); `counted`: calls a queue counted (answered or left) in the range, as a queue report's cell counts them; `ended`: calls handled whose handling ended in the range, as an agent report counts them"),
    ]
    .into_iter()
    .map(|(name, description)| query_param(name, description, text.clone()))
    .collect()
}

fn history_operations(doc: &mut Doc) {
    doc.tag(
        "history",
        "Call history: every call in a queue (a row per queue it went through) and outside queues, from the events and imported CDRs (docs/history.md). Tenant admins and supervisors; a supervisor limited to teams sees the calls their agents handled.",
    );
    let page = doc.schema::<crate::service::history::CallsPage>();
    let detail = doc.schema::<crate::service::history::CallDetail>();
    let mut parameters = call_filters();
    parameters.push(query_param(
        "cursor",
        "`next_cursor` of the previous page",
        json!({ "type": "string" }),
    ));
    parameters.push(query_param(
        "limit",
        "Calls per page, 1 to 500 (default 50)",
        json!({ "type": "integer", "minimum": 1, "maximum": 500 }),
    ));
    let mut op = json!({ "tags": ["history"], "operationId": "list_calls", "summary": "Browse calls",
        "description": "Newest first, by keyset pagination (stable while calls are added). A page covers at most 400 days; the export any range. Unknown parameters are a 400, unknown values a 422.",
        "parameters": parameters,
        "responses": { "200": json_response("A page of calls", schema_ref(&page)) } });
    standard_errors(&mut op, &["400", "401", "403", "422"]);
    doc.operation("/api/v1/calls", "get", op);
    let mut op = json!({ "tags": ["history"], "operationId": "export_calls", "summary": "Export calls as CSV",
        "description": "Every matching call (not one page), streamed; RFC 4180 with CRLF line ends, times in the time zone asked for, cells that start with `=`, `+`, `-`, `@` prefixed with `'`. Audited as `calls.export`.",
        "parameters": call_filters(),
        "responses": { "200": { "description": "RFC 4180 CSV", "content": { "text/csv": { "schema": { "type": "string" } } } } } });
    standard_errors(&mut op, &["400", "401", "403", "422"]);
    doc.operation("/api/v1/calls/export", "get", op);
    let mut op = json!({ "tags": ["history"], "operationId": "get_call", "summary": "A call",
        "description": "Its rows (one per queue it went through), its CDR legs and its timeline from the stored events (kept for `live.retention`, 90 days by default).",
        "parameters": [path_param("call", "The PBX's call id (Asterisk's uniqueid)")],
        "responses": { "200": json_response("The call", schema_ref(&detail)) } });
    standard_errors(&mut op, &["401", "403", "404"]);
    doc.operation("/api/v1/calls/{call}", "get", op);
    let report = doc.schema::<crate::service::reports::QueueReport>();
    let text = json!({ "type": "string" });
    let report_params = vec![
        query_param(
            "from",
            "As for calls (default: today's start in the tenant's time zone)",
            text.clone(),
        ),
        query_param("to", "As for calls (default: the end of today)", text.clone()),
        query_param(
            "tz",
            "IANA time zone the buckets follow (default: the tenant's)",
            text.clone(),
        ),
        query_param(
            "bucket",
            "`15m`, `30m`, `1h`, `day`, `week` (starting on the tenant's `week_start`), `month`; default `30m` up to two days, else `day`",
            text.clone(),
        ),
        query_param(
            "queue",
            "A queue id; all queues when left out (404 for one the tenant does not have)",
            text,
        ),
    ];
    let mut op = json!({ "tags": ["history"], "operationId": "queue_report", "summary": "Queue report",
        "description": "Per queue and bucket: offered, answered, abandoned (and short abandons), timeouts, full, nobody there, service level with the queue's own variant and threshold, ASA, AHT, abandon rate, longest wait; totals; the distribution of waits. The same definitions as the live board: a call counts where its queue counted it (answered or left), its handling where it ended. Each point's `calls` is the `/api/v1/calls` query of the calls it counted. At most 400 days and 3,000 points.",
        "parameters": report_params.clone(),
        "responses": { "200": json_response("The report", schema_ref(&report)) } });
    standard_errors(&mut op, &["400", "401", "403", "404", "422"]);
    doc.operation("/api/v1/reports/queues", "get", op);
    let mut op = json!({ "tags": ["history"], "operationId": "export_queue_report", "summary": "Queue report as CSV",
        "description": "A line per queue and point with the series' numbers at full precision; times in the report's time zone.",
        "parameters": report_params,
        "responses": { "200": { "description": "RFC 4180 CSV", "content": { "text/csv": { "schema": { "type": "string" } } } } } });
    standard_errors(&mut op, &["400", "401", "403", "404", "422"]);
    doc.operation("/api/v1/reports/queues/export", "get", op);
    let agent_report = doc.schema::<crate::service::agent_reports::AgentReport>();
    let text = json!({ "type": "string" });
    let agent_params = vec![
        query_param(
            "from",
            "As for calls (default: today's start in the tenant's time zone)",
            text.clone(),
        ),
        query_param("to", "As for calls (default: the end of today)", text.clone()),
        query_param(
            "tz",
            "IANA time zone the days follow (default: the tenant's)",
            text.clone(),
        ),
        query_param(
            "bucket",
            "`day` (default), `week`, `month`; with `agent` also `15m`, `30m`, `1h`",
            text.clone(),
        ),
        query_param(
            "team",
            "A team id: its agents only (404 for one the caller may not see)",
            text.clone(),
        ),
        query_param("agent", "An agent id: that agent's points by bucket", text),
    ];
    let mut op = json!({ "tags": ["history"], "operationId": "agent_report", "summary": "Agent report",
        "description": "Per agent over the range: logged-in time, seconds per state and per pause reason (states as the live board applies the events), calls handled (the history's calls whose handling ended in the range; `calls` is their `/api/v1/calls` query, `by=ended`) with talk, hold and wrap-up time, AHT, occupancy, missed rings (rings that ended in anything but a call); per team the sums of its agents. With `agent`, that agent's points by bucket. A supervisor limited to teams sees their agents only.",
        "parameters": agent_params.clone(),
        "responses": { "200": json_response("The report", schema_ref(&agent_report)) } });
    standard_errors(&mut op, &["400", "401", "403", "404", "422"]);
    doc.operation("/api/v1/reports/agents", "get", op);
    let mut op = json!({ "tags": ["history"], "operationId": "export_agent_report", "summary": "Agent report as CSV",
        "description": "A line per agent (per point with `agent`), the report's numbers at full precision, times in its time zone.",
        "parameters": agent_params,
        "responses": { "200": { "description": "RFC 4180 CSV", "content": { "text/csv": { "schema": { "type": "string" } } } } } });
    standard_errors(&mut op, &["400", "401", "403", "404", "422"]);
    doc.operation("/api/v1/reports/agents/export", "get", op);
    recording_operations(doc);
    saved_report_operations(doc);
}

fn saved_report_operations(doc: &mut Doc) {
    let saved = doc.schema::<crate::service::saved_reports::SavedReport>();
    let set = doc.schema::<crate::service::saved_reports::SavedReportSet>();
    let list = doc.schema::<crate::web::saved_reports::SavedReportList>();
    let mail = doc.schema::<crate::web::saved_reports::SavedReportMail>();
    let sent = doc.schema::<crate::web::saved_reports::SendResult>();
    let id = || path_param("id", "The saved report's id");
    let mut op = json!({ "tags": ["history"], "operationId": "list_saved_reports", "summary": "Saved reports",
        "description": "The tenant's saved reports, by name. `query` is each one's report query over its period as of now (for `/api/v1/reports/{kind}`).",
        "responses": { "200": json_response("The saved reports", schema_ref(&list)) } });
    standard_errors(&mut op, &["401", "403"]);
    doc.operation("/api/v1/reports/saved", "get", op);
    let mut op = json!({ "tags": ["history"], "operationId": "create_saved_report", "summary": "Save a report",
        "description": "A report's parameters under a name, its range a period that moves with time (`yesterday`, `last_week` …) or `custom` dates. With `schedule`, it is emailed daily or weekly at a local time in the report's time zone to the listed addresses: the figures in the body, the report's CSV export attached, through the mail outbox (retried, then failed). A schedule runs with what who saved it may see when it runs. Parameters are checked as the report checks them (422 with `params/<name>`). Audited as `reports.saved.create`.",
        "requestBody": body(&set),
        "responses": { "201": json_response("Saved", schema_ref(&saved)) } });
    standard_errors(&mut op, &["400", "401", "403", "409", "422"]);
    doc.operation("/api/v1/reports/saved", "post", op);
    let mut op = json!({ "tags": ["history"], "operationId": "get_saved_report", "summary": "A saved report",
        "parameters": [id()],
        "responses": { "200": json_response("The saved report (ETag: its version)", schema_ref(&saved)) } });
    standard_errors(&mut op, &["401", "403", "404"]);
    doc.operation("/api/v1/reports/saved/{id}", "get", op);
    let mut op = json!({ "tags": ["history"], "operationId": "update_saved_report", "summary": "Change a saved report",
        "description": "Replaces everything but its owner; `If-Match` with its version refuses a stale change (412). Only who saved it or a tenant admin (403 otherwise). Audited as `reports.saved.update`.",
        "parameters": [id()],
        "requestBody": body(&set),
        "responses": { "200": json_response("Changed", schema_ref(&saved)) } });
    standard_errors(&mut op, &["400", "401", "403", "404", "409", "412", "422"]);
    doc.operation("/api/v1/reports/saved/{id}", "put", op);
    let mut op = json!({ "tags": ["history"], "operationId": "delete_saved_report", "summary": "Delete a saved report",
        "description": "Only who saved it or a tenant admin. Audited as `reports.saved.delete`.",
        "parameters": [id()],
        "responses": { "204": { "description": "Deleted" } } });
    standard_errors(&mut op, &["401", "403", "404"]);
    doc.operation("/api/v1/reports/saved/{id}", "delete", op);
    let mut op = json!({ "tags": ["history"], "operationId": "send_saved_report", "summary": "Send a saved report now",
        "description": "Makes the report as its schedule would (with what its owner may see) and queues one email per recipient. 422 without recipients. Audited as `reports.saved.send`.",
        "parameters": [id()],
        "responses": { "202": json_response("Queued", schema_ref(&sent)) } });
    standard_errors(&mut op, &["400", "401", "403", "404", "422"]);
    doc.operation("/api/v1/reports/saved/{id}/send", "post", op);
    let mut op = json!({ "tags": ["history"], "operationId": "saved_report_mail", "summary": "A saved report's emails",
        "description": "The latest 20 emails it queued, newest first: pending, sent, or failed with the server's last answer.",
        "parameters": [id()],
        "responses": { "200": json_response("Its emails", schema_ref(&mail)) } });
    standard_errors(&mut op, &["401", "403", "404"]);
    doc.operation("/api/v1/reports/saved/{id}/mail", "get", op);
}

fn recording_operations(doc: &mut Doc) {
    let recording = doc.schema::<crate::service::recordings::RecordingView>();
    let mut op = json!({ "tags": ["history"], "operationId": "get_call_recording", "summary": "A call's recording",
        "description": "Found in the tenant's recording source by its pattern, with what the file holds and a playback link (`url`) that works without signing in until `expires_at` (`recordings.link_lifetime`, 15 minutes by default) and answers `Range` (206, 416). Every play from the start is audited as `recordings.play`. 404 when the tenant has no source or the file is not there; 422 when the file is not audio or the pattern cannot name this call's file; 503 when the source does not answer.",
        "parameters": [path_param("call", "The PBX's call id (Asterisk's uniqueid)")],
        "responses": { "200": json_response("The recording", schema_ref(&recording)) } });
    standard_errors(&mut op, &["401", "403", "404", "422", "503"]);
    doc.operation("/api/v1/calls/{call}/recording", "get", op);
    let source = doc.schema::<crate::service::recordings::SourceView>();
    let set = doc.schema::<crate::service::recordings::SourceSet>();
    let mut op = json!({ "tags": ["tenant"], "operationId": "get_recording_source", "summary": "The tenant's recording source",
        "description": "Where call recordings are read: a directory the operator allows (`recordings.directories`) or an S3-compatible bucket. The secret key is never shown.",
        "responses": { "200": json_response("The source", schema_ref(&source)) } });
    standard_errors(&mut op, &["401", "403", "404"]);
    doc.operation("/api/v1/recordings/source", "get", op);
    let mut op = json!({ "tags": ["tenant"], "operationId": "set_recording_source", "summary": "Set the tenant's recording source",
        "description": "Checked before it is kept: the pattern (known fields, no `..`, no absolute path, one `*` at most and only in the file name), the directory (one the operator allows, or inside one), the bucket's endpoint (https and a public address unless the operator allows private networks). Audited as `recordings.source.update` without the secret key.",
        "requestBody": body(&set),
        "responses": { "200": json_response("The source", schema_ref(&source)) } });
    standard_errors(&mut op, &["400", "401", "403", "422"]);
    doc.operation("/api/v1/recordings/source", "put", op);
    let mut op = json!({ "tags": ["tenant"], "operationId": "delete_recording_source", "summary": "Remove the tenant's recording source",
        "description": "Audited as `recordings.source.delete`; playback links stop working.",
        "responses": { "204": { "description": "Removed" } } });
    standard_errors(&mut op, &["401", "403", "404"]);
    doc.operation("/api/v1/recordings/source", "delete", op);
}

/// One JSON operation: `body` the request schema (if any), `ok` its success status and what
/// it answers.
#[allow(clippy::too_many_arguments)]
fn simple(
    doc: &mut Doc,
    path: &str,
    method: &str,
    tag: &str,
    id: &str,
    summary: &str,
    description: &str,
    body: Option<Value>,
    ok: (&str, &str),
    errors: &[&str],
) {
    let mut op = json!({ "tags": [tag], "operationId": id, "summary": summary, "description": description,
        "responses": { ok.0: { "description": ok.1, "content": { "application/json": { "schema": { "type": "object" } } } } } });
    if ok.0 == "204" {
        op["responses"]["204"] = json!({ "description": ok.1 });
    }
    if let Some(schema) = body {
        op["requestBody"] = json!({ "required": false, "content": { "application/json": { "schema": schema } } });
    }
    let mut parameters = Vec::new();
    for name in ["id", "action", "call"] {
        if path.contains(&format!("{{{name}}}")) {
            parameters.push(json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }));
        }
    }
    if !parameters.is_empty() {
        op["parameters"] = json!(parameters);
    }
    standard_errors(&mut op, errors);
    doc.operation(path, method, op);
}

fn call_control_operations(doc: &mut Doc) {
    doc.tag(
        "call-control",
        "Supervisors' requests to the PBX through the tenant's connector plugin (docs/asterisk.md): audited, answered 202 once sent; the board changes when the PBX confirms.",
    );
    let agent = doc.schema::<crate::service::telephony::AgentControl>();
    let call = doc.schema::<crate::service::telephony::CallControl>();
    simple(
        doc,
        "/api/v1/live/agents/{id}/{action}",
        "post",
        "call-control",
        "agent_control",
        "Act on an agent",
        "`action`: `pause` (with `reason`, `queue`), `unpause`, `logout`, `call` (click-to-call: `number`); on the call the agent is on: `hangup`, `transfer` (`to`, `attended`), `hold`, `unhold`, `listen`, `whisper`, `barge` (`supervisor`: your phone). 409 without a connector or when the agent is on no call; 422 when the connector could not do it; 503 (Retry-After) when it is not connected.",
        Some(schema_ref(&agent)),
        ("202", "Sent: `{\"sent\": true, \"answer\"}`"),
        &["400", "401", "403", "404", "409", "422", "503"],
    );
    simple(
        doc,
        "/api/v1/live/calls/{call}/{action}",
        "post",
        "call-control",
        "call_control",
        "Act on a call by its id",
        "`action`: `hangup`, `transfer` (`to`, `attended`), `hold`, `unhold`, `listen`, `whisper`, `barge` (`supervisor`). For supervisors who see the whole tenant.",
        Some(schema_ref(&call)),
        ("202", "Sent"),
        &["400", "401", "403", "404", "409", "422", "503"],
    );
    simple(
        doc,
        "/api/v1/telephony/reload",
        "post",
        "call-control",
        "telephony_reload",
        "Have the PBX reload its configuration",
        "After new configuration files were put in place (`monti asterisk export`). Tenant admins.",
        None,
        ("202", "Sent"),
        &["401", "403", "409", "422", "503"],
    );
}

/// (path, method, operation id, summary, description, body, (status, answer), errors)
type SimpleOp<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Option<Value>,
    (&'a str, &'a str),
    &'a [&'a str],
);

fn alert_operations(doc: &mut Doc) {
    doc.tag(
        "alerts",
        "Alert rules in rhai on the live floor, the alerts they raise and their notifications (docs/alerts.md; the fields rules read are in sdk/rules.md). Tenant admins write rules; supervisors acknowledge and silence.",
    );
    let input = doc.schema::<crate::web::alerts::RuleInput>();
    let draft = doc.schema::<crate::web::alerts::Draft>();
    let silence = doc.schema::<crate::web::alerts::SilenceInput>();
    let ops: [SimpleOp; 13] = [
        (
            "/api/v1/alert-rules",
            "get",
            "list_alert_rules",
            "The tenant's rules",
            "Each with its `status`: evaluated, holding, firing, and the last error (message, line, column).",
            None,
            ("200", "`{\"items\": [rules]}`"),
            &["401", "403"],
        ),
        (
            "/api/v1/alert-rules",
            "post",
            "create_alert_rule",
            "Create a rule",
            "Checked before it is stored: a syntax error or unknown name is a 422 on `/expression` with its line and column.",
            Some(schema_ref(&input)),
            ("201", "The rule"),
            &["400", "401", "403", "409", "422"],
        ),
        (
            "/api/v1/alert-rules/{id}",
            "get",
            "get_alert_rule",
            "A rule",
            "",
            None,
            ("200", "The rule"),
            &["401", "403", "404"],
        ),
        (
            "/api/v1/alert-rules/{id}",
            "patch",
            "update_alert_rule",
            "Change a rule (a new version)",
            "Fields left out keep their value. `If-Match: \"<version>\"` for optimistic concurrency.",
            Some(schema_ref(&input)),
            ("200", "The rule"),
            &["400", "401", "403", "404", "409", "412", "422"],
        ),
        (
            "/api/v1/alert-rules/{id}",
            "delete",
            "delete_alert_rule",
            "Delete a rule",
            "Its alerts resolve.",
            None,
            ("204", "Deleted"),
            &["401", "403", "404"],
        ),
        (
            "/api/v1/alert-rules/{id}/versions",
            "get",
            "alert_rule_versions",
            "Every version of a rule",
            "",
            None,
            ("200", "`{\"items\": [{version, rule, changed_by, changed_at}]}`"),
            &["401", "403", "404"],
        ),
        (
            "/api/v1/alert-rules/{id}/silence",
            "post",
            "silence_alert_rule",
            "Silence a rule's notifications",
            "For 1 minute to 7 days; for one subject or all.",
            Some(schema_ref(&silence)),
            ("201", "`{\"id\", \"until\"}`"),
            &["400", "401", "403", "404", "422"],
        ),
        (
            "/api/v1/alert-rules/{id}/signing-secret",
            "get",
            "alert_rule_signing_secret",
            "The key the rule's webhooks are signed with",
            "`Monti-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">`. Tenant admins; audited.",
            None,
            ("200", "`{\"signing_secret\"}`"),
            &["401", "403", "404"],
        ),
        (
            "/api/v1/alert-rules/check",
            "post",
            "check_alert_rule",
            "Check a draft",
            "Compiles only: `{\"valid\": true}` or the error with line and column.",
            Some(schema_ref(&draft)),
            ("200", "The check"),
            &["400", "401", "403"],
        ),
        (
            "/api/v1/alert-rules/test",
            "post",
            "test_alert_rule",
            "Test a draft against the current floor",
            "On how many subjects it holds now, what the alerts would say, and the first error.",
            Some(schema_ref(&draft)),
            ("200", "The test"),
            &["400", "401", "403"],
        ),
        (
            "/api/v1/alert-rules/starter",
            "post",
            "import_starter_rules",
            "Import the starter rules",
            "Those whose name the tenant has are skipped.",
            None,
            ("201", "`{\"created\", \"skipped\"}`"),
            &["401", "403"],
        ),
        (
            "/api/v1/alerts",
            "get",
            "list_alerts",
            "Alerts",
            "`state=open` (default) or `all`; `limit` up to 1000.",
            None,
            ("200", "`{\"items\": [alerts]}`"),
            &["400", "401", "403"],
        ),
        (
            "/api/v1/alerts/{id}/acknowledge",
            "post",
            "acknowledge_alert",
            "Acknowledge an alert",
            "",
            None,
            ("200", "The alert"),
            &["401", "403", "404"],
        ),
    ];
    for (path, method, id, summary, description, body, ok, errors) in ops {
        simple(doc, path, method, "alerts", id, summary, description, body, ok, errors);
    }
    simple(
        doc,
        "/api/v1/alert-notifications",
        "get",
        "alerts",
        "list_alert_notifications",
        "Notifications",
        "`state=pending|sent|failed`: each with its target, attempts, last error and next attempt.",
        None,
        ("200", "`{\"items\": [notifications]}`"),
        &["400", "401", "403"],
    );
}

pub async fn serve(State(app): State<AppState>) -> Response {
    let mut response = app.openapi_json.clone().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

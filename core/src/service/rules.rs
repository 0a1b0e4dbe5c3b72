//! Alert rules: one flow for the REST API, the admin UI, the command line and the demo. A rule's
//! fields are checked (its condition compiled, its message's placeholders known, its queues and
//! teams the tenant's own), stored as a new version, handed to the running evaluation and
//! audited; drafts are checked and tested on the live floor; the starter set is imported.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::domain::Validation;
use crate::domain::alert::{AlertChange, Severity};
use crate::live::service::LiveService;
use crate::rules::eval::{Budget, CancelOnDrop, Evaluator, FloorFacts, RULE_BUDGET, Rule, unknown_placeholders};
use crate::rules::service::RuleService;
use crate::rules::{RuleError, RuleScope};
use crate::store::alert_rules::{self, AlertRow, Narrowing, RuleFields, RuleRow};
use crate::store::audit::{self, AuditEvent, Origin, Outcome};
use crate::store::{Store, StoreError, TenantScope};

/// Why a rule flow did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The fields are not a rule, named as the API's body names them (`expression`, `targets/0`).
    #[error("invalid input")]
    Invalid(Validation),
    /// No rule of the tenant has that id.
    #[error("rule not found")]
    NotFound,
    /// The author edited a version that is no longer current.
    #[error("the rule was changed by someone else (now at version {current})")]
    Precondition { current: i64 },
    /// A draft's scope is not one rules have.
    #[error("`scope` is `tenant`, `queue` or `agent`")]
    BadScope,
    /// Something in the server that should not fail did (a starter rule that does not parse,
    /// a test evaluation that panicked).
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RulesError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(v) => RulesError::Invalid(v),
            StoreError::NotFound { kind: "rule" } => RulesError::NotFound,
            StoreError::PreconditionFailed { kind: "rule", current } => RulesError::Precondition { current },
            other => RulesError::Store(other),
        }
    }
}

impl From<Validation> for RulesError {
    fn from(v: Validation) -> Self {
        RulesError::Invalid(v)
    }
}

/// What the rule flows need from the running system.
#[derive(Clone, Copy)]
pub struct RulesContext<'a> {
    pub store: &'a Store,
    /// The running evaluation: it compiles conditions and reloads a tenant's rules after a change.
    pub rules: &'a RuleService,
    /// The live floors drafts are tested on.
    pub live: &'a LiveService,
}

/// A rule as an author writes it; left-out fields keep their value (an update) or default.
#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub name: Option<String>,
    /// `tenant`, `queue` or `agent`.
    pub scope: Option<String>,
    /// The rhai condition (sdk/rules.md).
    pub expression: Option<String>,
    /// Only these queues (ids); empty or left out: all.
    pub queues: Option<Vec<String>>,
    /// Only agents of these teams (ids).
    pub teams: Option<Vec<String>>,
    /// `info`, `warning` (default) or `critical`.
    pub severity: Option<String>,
    /// Seconds the condition must hold before the alert fires (default 60).
    pub for_s: Option<i64>,
    pub labels: Option<BTreeMap<String, String>>,
    /// The alert's text; `{queue.name}`, `{agent.in_state_s}`, `{tenant.waiting}` … are filled in.
    pub message: Option<String>,
    /// Where notifications go: `{"type": "email", "to": "…"}`, `{"type": "webhook", "url": "…"}`.
    pub targets: Option<Vec<Value>>,
    pub enabled: Option<bool>,
}

fn json_list<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// Checks a rule's fields (over `base` for a change); a compile error names the expression's
/// line and column. Whether its queues and teams exist is [`check_narrowing`]'s, which reads
/// the store.
pub fn fields(rules: &RuleService, input: RuleInput, base: Option<&RuleRow>) -> Result<RuleFields, Validation> {
    let mut v = Validation::new();
    let name = input.name.or_else(|| base.map(|b| b.name.clone())).unwrap_or_default();
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        v.add("name", "1 to 100 characters on one line");
    }
    let scope_text = input
        .scope
        .or_else(|| base.map(|b| b.scope.clone()))
        .unwrap_or_default();
    let scope = RuleScope::parse(&scope_text);
    if scope.is_none() {
        v.add("scope", "`tenant`, `queue` or `agent`");
    }
    let expression = input
        .expression
        .or_else(|| base.map(|b| b.expression.clone()))
        .unwrap_or_default();
    if let Some(scope) = scope
        && let Err(error) = rules.engine.compile(scope, &expression)
    {
        v.add("expression", error.to_string());
    }
    let severity = input
        .severity
        .or_else(|| base.map(|b| b.severity.clone()))
        .unwrap_or_else(|| "warning".into());
    if Severity::parse(&severity).is_none() {
        v.add("severity", "`info`, `warning` or `critical`");
    }
    let for_s = input.for_s.or(base.map(|b| b.for_s)).unwrap_or(60);
    if !(0..=86_400).contains(&for_s) {
        v.add("for_s", "0 to 86400 seconds");
    }
    let message = input
        .message
        .or_else(|| base.map(|b| b.message.clone()))
        .unwrap_or_else(|| name.clone());
    if message.chars().count() > 500 {
        v.add("message", "at most 500 characters");
    } else if let Some(scope) = scope {
        let unknown = unknown_placeholders(&message, scope);
        if !unknown.is_empty() {
            v.add(
                "message",
                format!(
                    "{} cannot be filled in for a {} rule (sdk/rules.md lists the fields)",
                    unknown.join(", "),
                    scope.as_str()
                ),
            );
        }
    }
    let ids = |field: &str, list: Option<Vec<String>>, from_base: Option<&String>, v: &mut Validation| -> String {
        match list {
            Some(list) => {
                if list.len() > 200 || list.iter().any(|i| i.is_empty() || i.len() > 100) {
                    v.add(field, "at most 200 ids");
                }
                json_list(&list)
            }
            None => from_base.cloned().unwrap_or_else(|| "[]".into()),
        }
    };
    let queues = ids("queues", input.queues, base.map(|b| &b.queues), &mut v);
    let teams = ids("teams", input.teams, base.map(|b| &b.teams), &mut v);
    if scope == Some(RuleScope::Tenant) && (queues != "[]" || teams != "[]") {
        v.add(
            "scope",
            "a tenant rule covers the whole tenant: leave out queues and teams",
        );
    }
    if scope == Some(RuleScope::Queue) && teams != "[]" {
        v.add("teams", "queue rules are per queue; teams apply to agent rules");
    }
    let labels = match input.labels {
        Some(labels) => {
            if labels.len() > 20
                || labels
                    .iter()
                    .any(|(k, val)| k.is_empty() || k.len() > 50 || val.len() > 200)
            {
                v.add(
                    "labels",
                    "at most 20 labels, names up to 50 and values up to 200 characters",
                );
            }
            serde_json::to_string(&labels).unwrap_or_else(|_| "{}".into())
        }
        None => base.map_or_else(|| "{}".into(), |b| b.labels.clone()),
    };
    let targets = match input.targets {
        Some(targets) => {
            for (n, target) in targets.iter().enumerate() {
                if let Err(why) = check_target(target) {
                    v.add(&format!("targets/{n}"), why);
                }
            }
            if targets.len() > 20 {
                v.add("targets", "at most 20 targets");
            }
            json_list(&targets)
        }
        None => base.map_or_else(|| "[]".into(), |b| b.targets.clone()),
    };
    let enabled = input.enabled.or(base.map(|b| b.enabled)).unwrap_or(true);
    v.finish()?;
    Ok(RuleFields {
        name,
        scope: scope_text,
        expression,
        queues,
        teams,
        severity,
        for_s,
        labels,
        message,
        targets,
        enabled,
    })
}

/// A notification target: an email address, or an http(s) webhook URL.
pub fn check_target(target: &Value) -> Result<(), String> {
    match target.get("type").and_then(Value::as_str) {
        Some("email") => {
            let to = target.get("to").and_then(Value::as_str).unwrap_or_default();
            if to.len() > 254 || to.parse::<lettre::Address>().is_err() {
                return Err("`to` must be an email address".into());
            }
            Ok(())
        }
        Some("webhook") => {
            let url = target.get("url").and_then(Value::as_str).unwrap_or_default();
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
                _ => Err("`url` must be an http(s) URL".into()),
            }
        }
        Some("plugins") => Ok(()),
        _ => Err("`type` is `email`, `webhook` or `plugins`".into()),
    }
}

/// The queues and teams a rule is narrowed to are the tenant's own: another tenant's id (or one
/// that does not exist) would match nothing, silently.
pub async fn check_narrowing(
    store: &Store,
    scope: &TenantScope,
    queues: Option<&[String]>,
    teams: Option<&[String]>,
) -> Result<(), RulesError> {
    let mut v = Validation::new();
    for (field, kind, ids, what) in [
        ("queues", Narrowing::Queues, queues, "queue"),
        ("teams", Narrowing::Teams, teams, "team"),
    ] {
        let unknown = alert_rules::unknown_ids(store, scope.tenant(), kind, ids.unwrap_or_default()).await?;
        if !unknown.is_empty() {
            v.add(
                field,
                format!("no {what} of this tenant has the id {}", unknown.join(", ")),
            );
        }
    }
    Ok(v.finish()?)
}

/// A rule of the caller's tenant.
pub async fn get(ctx: &RulesContext<'_>, scope: &TenantScope, id: &str) -> Result<RuleRow, RulesError> {
    Ok(alert_rules::get(ctx.store, scope, id).await?)
}

/// Creates a rule (version 1): checked, stored, handed to the evaluation, audited.
pub async fn create(
    ctx: &RulesContext<'_>,
    scope: &TenantScope,
    input: RuleInput,
    origin: &Origin,
) -> Result<RuleRow, RulesError> {
    save(ctx, scope, None, input, None, origin).await
}

/// Changes a rule: a new version over the current one (left-out fields kept). `expected`, the
/// version the author edited, must still be current.
pub async fn update(
    ctx: &RulesContext<'_>,
    scope: &TenantScope,
    id: &str,
    input: RuleInput,
    expected: Option<i64>,
    origin: &Origin,
) -> Result<RuleRow, RulesError> {
    let current = alert_rules::get(ctx.store, scope, id).await?;
    save(ctx, scope, Some(&current), input, expected, origin).await
}

async fn save(
    ctx: &RulesContext<'_>,
    scope: &TenantScope,
    current: Option<&RuleRow>,
    input: RuleInput,
    expected: Option<i64>,
    origin: &Origin,
) -> Result<RuleRow, RulesError> {
    let (queues, teams) = (input.queues.clone(), input.teams.clone());
    let fields = fields(ctx.rules, input, current)?;
    check_narrowing(ctx.store, scope, queues.as_deref(), teams.as_deref()).await?;
    let (row, action) = match current {
        Some(current) => (
            alert_rules::update(ctx.store, scope, &current.id, &fields, expected).await?,
            "alert_rule.update",
        ),
        None => (
            alert_rules::create(ctx.store, scope, &fields).await?,
            "alert_rule.create",
        ),
    };
    ctx.rules.changed(scope.tenant_id()).await;
    let event = AuditEvent::in_tenant(scope, action, Outcome::Success)
        .target("alert_rule", &row.id)
        .detail(format!(
            "{} v{} ({}): {}",
            row.name, row.version, row.scope, row.expression
        ));
    audit::record(ctx.store, event, origin).await;
    Ok(row)
}

/// Deletes a rule: its alerts resolve on the next tick. Audited.
pub async fn delete(
    ctx: &RulesContext<'_>,
    scope: &TenantScope,
    id: &str,
    origin: &Origin,
) -> Result<RuleRow, RulesError> {
    let row = alert_rules::delete(ctx.store, scope, id).await?;
    ctx.rules.changed(scope.tenant_id()).await;
    let event = AuditEvent::in_tenant(scope, "alert_rule.delete", Outcome::Success)
        .target("alert_rule", &row.id)
        .detail(row.name.clone());
    audit::record(ctx.store, event, origin).await;
    Ok(row)
}

/// The starter rules (`examples/rules/`), as shipped in the binary.
pub const STARTER: [(&str, &str); 4] = [
    (
        "service-level-breach",
        include_str!("../../../examples/rules/service-level-breach.toml"),
    ),
    ("long-waits", include_str!("../../../examples/rules/long-waits.toml")),
    ("long-pauses", include_str!("../../../examples/rules/long-pauses.toml")),
    (
        "no-agents-available",
        include_str!("../../../examples/rules/no-agents-available.toml"),
    ),
];

/// What importing the starter set did.
#[derive(Debug, Default)]
pub struct Imported {
    pub created: Vec<RuleRow>,
    /// Names the tenant already had a rule of.
    pub skipped: Vec<String>,
}

/// Creates the starter rules the tenant has no rule of that name for. Audited once.
pub async fn import_starter(
    ctx: &RulesContext<'_>,
    scope: &TenantScope,
    origin: &Origin,
) -> Result<Imported, RulesError> {
    let existing: Vec<String> = alert_rules::list(ctx.store, scope.tenant())
        .await?
        .into_iter()
        .map(|r| r.name)
        .collect();
    let mut imported = Imported::default();
    for (file, text) in STARTER {
        let input: RuleInput =
            toml::from_str(text).map_err(|e| RulesError::Internal(format!("starter rule {file}: {e}")))?;
        if input.name.as_ref().is_some_and(|n| existing.contains(n)) {
            imported.skipped.push(input.name.unwrap_or_default());
            continue;
        }
        let fields = fields(ctx.rules, input, None)?;
        imported
            .created
            .push(alert_rules::create(ctx.store, scope, &fields).await?);
    }
    ctx.rules.changed(scope.tenant_id()).await;
    let event = AuditEvent::in_tenant(scope, "alert_rule.import_starter", Outcome::Success)
        .target("alert_rule", "starter")
        .detail(format!(
            "{} imported, {} already there",
            imported.created.len(),
            imported.skipped.len()
        ));
    audit::record(ctx.store, event, origin).await;
    Ok(imported)
}

/// A rule being written: its scope and condition, the message and narrowing it would have.
#[derive(Debug, Default, Clone)]
pub struct Draft {
    pub scope: String,
    pub expression: String,
    pub message: String,
    pub queues: Vec<String>,
    pub teams: Vec<String>,
}

/// A draft compiled (as one types).
#[derive(Debug)]
pub struct Checked {
    /// The compile error, with its line and column.
    pub error: Option<RuleError>,
    /// Placeholders of the message a rule of this scope cannot fill in.
    pub unknown_placeholders: Vec<String>,
}

impl Checked {
    pub fn valid(&self) -> bool {
        self.error.is_none() && self.unknown_placeholders.is_empty()
    }
}

/// Compiles a draft and checks its message's placeholders; nothing runs.
pub fn check(rules: &RuleService, draft: &Draft) -> Result<Checked, RulesError> {
    let scope = RuleScope::parse(&draft.scope).ok_or(RulesError::BadScope)?;
    Ok(Checked {
        error: rules.engine.compile(scope, &draft.expression).err(),
        unknown_placeholders: unknown_placeholders(&draft.message, scope),
    })
}

/// What a draft says on the floor right now.
#[derive(Debug)]
pub enum Tested {
    /// It does not compile.
    Invalid(RuleError),
    Ran(TestRun),
}

/// A draft's evaluation on the current floor.
#[derive(Debug)]
pub struct TestRun {
    /// Subjects it was evaluated on.
    pub evaluated: u32,
    /// Where it holds (which would fire once held for the rule's `for`).
    pub holding: Vec<AlertChange>,
    /// The first error, or why it stopped before evaluating every subject.
    pub error: Option<RuleError>,
    /// Evaluations that failed.
    pub failed: u32,
    pub over_budget: bool,
}

/// Evaluates a draft once on the floor as the caller may see it, within a tick's budget; the
/// evaluation stops when the returned future is dropped (the request ended). It runs the
/// tenant's code on the server: callers check that the caller may write rules.
pub async fn test(ctx: &RulesContext<'_>, scope: &TenantScope, draft: Draft) -> Result<Tested, RulesError> {
    let rule_scope = RuleScope::parse(&draft.scope).ok_or(RulesError::BadScope)?;
    let compiled = match ctx.rules.engine.compile(rule_scope, &draft.expression) {
        Ok(c) => c,
        Err(error) => return Ok(Tested::Invalid(error)),
    };
    let rule = Rule {
        id: "draft".into(),
        version: 0,
        name: "draft".into(),
        scope: rule_scope,
        queues: draft.queues,
        teams: draft.teams,
        severity: Severity::Info,
        for_s: 0,
        message: draft.message,
        targets: Vec::new(),
        compiled: Arc::new(compiled),
    };
    let floor = ctx.live.floor(scope).await?;
    let engine = ctx.rules.engine.clone();
    let visibility = scope.visibility().clone();
    // Dropped with this future: a request that ends (timed out, abandoned) stops the evaluation.
    let (_cancel_on_drop, cancel) = CancelOnDrop::new();
    let budget = Budget {
        cancel: Some(cancel),
        ..Budget::default()
    };
    tokio::task::spawn_blocking(move || {
        let now = crate::domain::time::now_ms();
        let mut facts = FloorFacts::of(&floor, now);
        // A scoped supervisor tests on the agents it may see.
        {
            let live = floor.live.lock().unwrap_or_else(|e| e.into_inner());
            facts.agents.retain(|a| {
                let groups = live
                    .agent_slot(&a.facts.id)
                    .and_then(|s| floor.agent_groups.get(s as usize))
                    .cloned()
                    .unwrap_or_default();
                visibility.admits(groups.0.as_deref(), groups.1.as_deref())
            });
        }
        let (holding, runs) =
            Evaluator::default().tick_within(&engine, std::slice::from_ref(&rule), &facts, now, &budget);
        let run = runs.get("draft").cloned().unwrap_or_default();
        let error = match &run.error {
            Some((e, _)) => Some(e.clone()),
            None if run.over_budget => Some(RuleError::plain(format!(
                "the rule used up its {} ms before it was evaluated on every subject",
                RULE_BUDGET.as_millis()
            ))),
            None => None,
        };
        Tested::Ran(TestRun {
            evaluated: run.evaluated,
            holding,
            error,
            failed: run.error.as_ref().map_or(0, |(_, n)| *n),
            over_budget: run.over_budget,
        })
    })
    .await
    .map_err(|e| RulesError::Internal(format!("the test failed: {e}")))
}

/// What silencing reads.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceInput {
    /// For how long, 1 minute to 7 days.
    pub minutes: i64,
    /// Only this subject (`queue:<id>`, `agent:<id>`, `tenant`); left out: all of the rule's.
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub reason: String,
}

/// A silence as set.
#[derive(Debug)]
pub struct Silenced {
    pub id: String,
    /// Epoch ms.
    pub until: i64,
}

/// Silences a rule (or one subject of it) for a while: its alerts still open and resolve, but
/// no notification goes out. Audited.
pub async fn silence(
    ctx: &RulesContext<'_>,
    scope: &TenantScope,
    rule_id: &str,
    input: &SilenceInput,
    origin: &Origin,
) -> Result<Silenced, RulesError> {
    if !(1..=7 * 24 * 60).contains(&input.minutes) {
        return Err(Validation::single("minutes", "1 to 10080 minutes").into());
    }
    if input.reason.chars().count() > 200 || input.reason.chars().any(char::is_control) {
        return Err(Validation::single("reason", "one line of at most 200 characters").into());
    }
    let until = crate::domain::time::now_ms() + input.minutes * 60_000;
    let id = alert_rules::silence(
        ctx.store,
        scope,
        rule_id,
        input.subject.as_deref(),
        until,
        &input.reason,
    )
    .await?;
    let event = AuditEvent::in_tenant(scope, "alert_rule.silence", Outcome::Success)
        .target("alert_rule", rule_id)
        .detail(format!(
            "{} for {} min{}",
            input.subject.as_deref().unwrap_or("all subjects"),
            input.minutes,
            if input.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", input.reason)
            }
        ));
    audit::record(ctx.store, event, origin).await;
    Ok(Silenced { id, until })
}

/// Acknowledges an open alert (someone is on it). Audited.
pub async fn acknowledge(
    ctx: &RulesContext<'_>,
    scope: &TenantScope,
    alert_id: &str,
    origin: &Origin,
) -> Result<AlertRow, RulesError> {
    let alert = alert_rules::acknowledge(ctx.store, scope, alert_id).await?;
    let event = AuditEvent::in_tenant(scope, "alert.acknowledge", Outcome::Success)
        .target("alert", alert_id)
        .detail(format!("{}: {}", alert.rule_name, alert.message));
    audit::record(ctx.store, event, origin).await;
    Ok(alert)
}

/// The key a rule's webhooks are signed with, for the receiver to check. Reading it is audited.
pub async fn signing_secret(
    ctx: &RulesContext<'_>,
    scope: &TenantScope,
    rule_id: &str,
    origin: &Origin,
) -> Result<String, RulesError> {
    let rule = alert_rules::get(ctx.store, scope, rule_id).await?;
    let secret = alert_rules::signing_secret(ctx.store, scope.tenant(), &rule.id).await?;
    let event = AuditEvent::in_tenant(scope, "alert_rule.signing_secret", Outcome::Success)
        .target("alert_rule", &rule.id)
        .detail(rule.name.clone());
    audit::record(ctx.store, event, origin).await;
    Ok(secret)
}

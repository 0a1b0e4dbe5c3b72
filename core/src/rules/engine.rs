//! The sandboxed rhai engine rules run in: no I/O (no modules, no `eval`, printing goes
//! nowhere), bounded operations, call depth, expression depth, strings, arrays and maps, and a
//! wall-clock cap per evaluation. Variables must exist when a rule is compiled (`tenant`, and
//! `queue` or `agent` by the rule's scope), so a misspelt name is a syntax error with its line
//! and column, not a surprise at 3 a.m.
//!
//! A limit that stops an evaluation is remembered on the thread until the evaluation ends, so a
//! builtin that swallows its callback's errors (rhai's `sort` with a comparer does) cannot turn
//! a stopped rule into one that holds: the evaluation fails whatever the script returned.

use std::cell::{Cell, RefCell};
use std::cmp::Ordering as Order;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, EvalAltResult, FnPtr, NativeCallContext, ParseError, Position};

use super::facts::{self, AgentFacts, QueueFacts, TenantFacts};

/// Longest rule text, in bytes.
pub const MAX_SOURCE: usize = 10_000;
/// Operations one evaluation may take (a loop iteration, a call, an operator … count one each).
pub const MAX_OPERATIONS: u64 = 50_000;
/// Wall-clock time one evaluation may take.
pub const MAX_TIME: Duration = Duration::from_millis(10);
const MAX_STRING: usize = 10_000;
const MAX_ARRAY: usize = 1_000;
const MAX_MAP: usize = 1_000;
const MAX_CALL_LEVELS: usize = 16;
const MAX_EXPR_DEPTH: usize = 64;
const MAX_FUNCTION_EXPR_DEPTH: usize = 32;

/// What a rule is evaluated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleScope {
    /// Once per tick, with `tenant`.
    Tenant,
    /// Per queue, with `queue` (and `tenant`).
    Queue,
    /// Per agent, with `agent` (and `tenant`).
    Agent,
}

impl RuleScope {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleScope::Tenant => "tenant",
            RuleScope::Queue => "queue",
            RuleScope::Agent => "agent",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "tenant" => Some(RuleScope::Tenant),
            "queue" => Some(RuleScope::Queue),
            "agent" => Some(RuleScope::Agent),
            _ => None,
        }
    }
}

/// Why a rule did not compile or evaluate, for its author: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, utoipa::ToSchema)]
#[error("{message}{}", at(*line, *column))]
pub struct RuleError {
    pub message: String,
    /// 1-based.
    pub line: Option<usize>,
    /// 1-based.
    pub column: Option<usize>,
    /// Set when a limit stopped the evaluation (the evaluator counts these against the rule).
    #[serde(skip)]
    pub limit: Option<Limit>,
}

/// What stopped an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// More than [`MAX_OPERATIONS`] steps.
    Operations,
    /// Longer than [`MAX_TIME`].
    Time,
    /// The time the caller gave all of its evaluations ran out (a tick's budget).
    Budget,
    /// The caller gave up (a test whose request ended).
    Cancelled,
}

impl Limit {
    fn token(self) -> &'static str {
        match self {
            Limit::Operations => "operations",
            Limit::Time => "time",
            Limit::Budget => "budget",
            Limit::Cancelled => "cancelled",
        }
    }

    fn message(self) -> String {
        match self {
            Limit::Operations => {
                format!("the rule took more than {MAX_OPERATIONS} steps and was stopped (an endless loop?)")
            }
            Limit::Time => format!(
                "the rule ran longer than {} ms and was stopped (an endless loop?)",
                MAX_TIME.as_millis()
            ),
            Limit::Budget => "the rule used up its time for this tick and was stopped".into(),
            Limit::Cancelled => "the evaluation was cancelled".into(),
        }
    }

    /// Whether the rule itself ran over (rather than the caller's time running out).
    pub fn is_the_rules_fault(self) -> bool {
        matches!(self, Limit::Operations | Limit::Time)
    }
}

fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

impl RuleError {
    fn new(message: impl Into<String>, position: Position) -> Self {
        Self {
            message: message.into(),
            line: position.line(),
            column: position.position(),
            limit: None,
        }
    }

    /// An error without a position.
    pub fn plain(message: impl Into<String>) -> Self {
        Self::new(message, Position::NONE)
    }

    fn stopped(limit: Limit, position: Position) -> Self {
        Self {
            limit: Some(limit),
            ..Self::new(limit.message(), position)
        }
    }
}

/// A rule ready to run.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    ast: rhai::AST,
    pub scope: RuleScope,
    /// The same condition on the fast path, when it fits (see [`super::native`]).
    native: Option<super::native::Native>,
}

impl CompiledRule {
    /// Whether evaluations take the fast path.
    pub fn is_native(&self) -> bool {
        self.native.is_some()
    }
}

/// What a rule is evaluated on.
pub enum Subject<'a> {
    Tenant,
    Queue(&'a QueueFacts),
    Agent(&'a AgentFacts),
}

/// The limits of the evaluation running on a thread, and the one that stopped it.
#[derive(Clone, Copy)]
struct Watch {
    /// This evaluation's own cap ([`MAX_TIME`]).
    until: Instant,
    /// The caller's: its budget for all of its evaluations.
    budget: Instant,
    stopped: Option<Limit>,
}

thread_local! {
    static WATCH: Cell<Option<Watch>> = const { Cell::new(None) };
    /// Set by whoever hands work to this thread and may give up on it.
    static CANCEL: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// How often (in operations) the clock and the cancel flag are read: every operation would cost
/// more than most rules, every few hundred lets one expensive builtin per operation run far past
/// the deadline.
const CHECK_EVERY: u64 = 8;

/// What the thread's evaluation must stop for now, if anything.
fn progress(operations: u64) -> Option<Dynamic> {
    WATCH.with(|cell| {
        let mut watch = cell.get()?;
        if let Some(limit) = watch.stopped {
            // Stopped already, inside a callback whose error was swallowed: stop again at once.
            return Some(Dynamic::from(limit.token()));
        }
        let limit = if operations > MAX_OPERATIONS {
            Some(Limit::Operations)
        } else if operations.is_multiple_of(CHECK_EVERY) {
            if cancelled() {
                Some(Limit::Cancelled)
            } else if Instant::now() > watch.until.min(watch.budget) {
                // The one that came first, even if both passed while the thread was not running.
                Some(if watch.budget < watch.until {
                    Limit::Budget
                } else {
                    Limit::Time
                })
            } else {
                None
            }
        } else {
            None
        };
        let limit = limit?;
        watch.stopped = Some(limit);
        cell.set(Some(watch));
        Some(Dynamic::from(limit.token()))
    })
}

fn cancelled() -> bool {
    CANCEL.with(|c| c.borrow().as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed)))
}

/// While alive, evaluations on this thread stop once `flag` is set.
pub struct CancelGuard(());

impl CancelGuard {
    pub fn enter(flag: Option<Arc<AtomicBool>>) -> Self {
        CANCEL.with(|c| *c.borrow_mut() = flag);
        Self(())
    }

    /// Whether the flag this thread watches is set.
    pub fn is_set(&self) -> bool {
        cancelled()
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        CANCEL.with(|c| *c.borrow_mut() = None);
    }
}

const STRICT_FUNCTIONS: [&str; 5] = ["sort", "sort_by", "order", "order_by", "dedup"];

/// rhai's `sort`, `order` and `dedup` with a function drop the errors the function raises (a
/// comparer that loops sorts "fine"); these raise them.
fn strict_array_functions() -> rhai::Module {
    fn compare(
        ctx: &NativeCallContext,
        comparer: &FnPtr,
        x: &Dynamic,
        y: &Dynamic,
    ) -> Result<Order, Box<EvalAltResult>> {
        let v = comparer.call_raw(ctx, None, [x.clone(), y.clone()])?;
        // As rhai reads a comparer's answer.
        Ok(
            match v.as_int().or_else(|_| v.as_bool().map(|b| if b { -1 } else { 1 })) {
                Ok(n) => n.cmp(&0),
                Err(_) => x.type_id().cmp(&y.type_id()),
            },
        )
    }
    fn sort(ctx: NativeCallContext, array: &mut Array, comparer: FnPtr) -> Result<(), Box<EvalAltResult>> {
        if array.len() <= 1 {
            return Ok(());
        }
        let mut failure = None;
        // `sort_by` may panic on a comparer that is not a total order; that is the rule's error.
        let sorted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            array.sort_by(|x, y| {
                if failure.is_some() {
                    return Order::Equal;
                }
                compare(&ctx, &comparer, x, y).unwrap_or_else(|e| {
                    failure = Some(e);
                    Order::Equal
                })
            });
        }));
        match (failure, sorted) {
            (Some(e), _) => Err(e),
            (None, Err(_)) => Err("the comparer of `sort` is not consistent".into()),
            (None, Ok(())) => Ok(()),
        }
    }
    let mut module = rhai::Module::new();
    for name in ["sort", "sort_by"] {
        module.set_native_fn(name, sort);
    }
    for name in ["order", "order_by"] {
        module.set_native_fn(
            name,
            |ctx: NativeCallContext, array: &mut Array, comparer: FnPtr| -> Result<Array, Box<EvalAltResult>> {
                let mut copy = array.clone();
                sort(ctx, &mut copy, comparer)?;
                Ok(copy)
            },
        );
    }
    module.set_native_fn(
        "dedup",
        |ctx: NativeCallContext, array: &mut Array, comparer: FnPtr| -> Result<(), Box<EvalAltResult>> {
            let mut kept: Array = Vec::with_capacity(array.len());
            for item in array.drain(..) {
                let duplicate = match kept.last() {
                    Some(last) => comparer
                        .call_raw(&ctx, None, [item.clone(), last.clone()])?
                        .as_bool()
                        .unwrap_or(false),
                    None => false,
                };
                if !duplicate {
                    kept.push(item);
                }
            }
            *array = kept;
            Ok(())
        },
    );
    module
}

/// The engine; one per process (it holds no state of a tenant).
pub struct RuleEngine {
    engine: rhai::Engine,
}

impl std::fmt::Debug for RuleEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleEngine").finish_non_exhaustive()
    }
}

impl Default for RuleEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl RuleEngine {
    pub fn new() -> Self {
        let mut engine = rhai::Engine::new();
        engine
            // `progress` stops at MAX_OPERATIONS (and remembers it); rhai's own count is the
            // backstop.
            .set_max_operations(MAX_OPERATIONS + 1)
            .set_max_call_levels(MAX_CALL_LEVELS)
            .set_max_expr_depths(MAX_EXPR_DEPTH, MAX_FUNCTION_EXPR_DEPTH)
            .set_max_string_size(MAX_STRING)
            .set_max_array_size(MAX_ARRAY)
            .set_max_map_size(MAX_MAP)
            .set_strict_variables(true)
            .set_fail_on_invalid_map_property(true)
            .set_optimization_level(rhai::OptimizationLevel::Full);
        engine.disable_symbol("eval");
        engine.on_print(|_| {});
        engine.on_debug(|_, _, _| {});
        engine.on_progress(progress);
        // Ahead of the standard packages, so these are the ones called.
        engine.register_global_module(strict_array_functions().into());
        facts::register(&mut engine, "Queue", facts::QUEUE_FIELDS);
        facts::register(&mut engine, "Agent", facts::AGENT_FIELDS);
        facts::register(&mut engine, "Tenant", facts::TENANT_FIELDS);
        Self { engine }
    }

    /// The variables a rule of `scope` sees (only their names matter for compiling).
    fn variables(scope: RuleScope) -> rhai::Scope<'static> {
        let mut variables = rhai::Scope::new();
        variables.push_constant("tenant", TenantFacts::default());
        match scope {
            RuleScope::Tenant => {}
            RuleScope::Queue => {
                variables.push_constant("queue", QueueFacts::default());
            }
            RuleScope::Agent => {
                variables.push_constant("agent", AgentFacts::default());
            }
        }
        variables
    }

    /// Compiles a rule's text; a syntax error says where.
    pub fn compile(&self, scope: RuleScope, source: &str) -> Result<CompiledRule, RuleError> {
        if source.len() > MAX_SOURCE {
            return Err(RuleError::plain(format!("a rule is at most {MAX_SOURCE} bytes")));
        }
        if source.trim().is_empty() {
            return Err(RuleError::plain(
                "the rule is empty: write a condition, e.g. `queue.waiting > 10`",
            ));
        }
        let variables = Self::variables(scope);
        let ast = self
            .engine
            .compile_with_scope(&variables, source)
            .map_err(|e| parse_error(&e, scope))?;
        let native = super::native::translate(&ast, scope);
        Ok(CompiledRule { ast, scope, native })
    }

    /// Whether the rule holds for `subject` now.
    pub fn evaluate(&self, rule: &CompiledRule, tenant: &TenantFacts, subject: Subject<'_>) -> Result<bool, RuleError> {
        self.evaluate_until(rule, tenant, subject, None)
    }

    /// As [`evaluate`](Self::evaluate), stopped at `budget` (a tick's time for all its rules)
    /// if that comes before the evaluation's own cap.
    pub fn evaluate_until(
        &self,
        rule: &CompiledRule,
        tenant: &TenantFacts,
        subject: Subject<'_>,
        budget: Option<Instant>,
    ) -> Result<bool, RuleError> {
        if let Some(native) = &rule.native
            && let Some(holds) = native.evaluate(tenant, &subject)
        {
            return Ok(holds);
        }
        self.interpret_until(rule, tenant, subject, budget)
    }

    /// As [`evaluate`](Self::evaluate), always in the interpreter.
    pub fn interpret(
        &self,
        rule: &CompiledRule,
        tenant: &TenantFacts,
        subject: Subject<'_>,
    ) -> Result<bool, RuleError> {
        self.interpret_until(rule, tenant, subject, None)
    }

    fn interpret_until(
        &self,
        rule: &CompiledRule,
        tenant: &TenantFacts,
        subject: Subject<'_>,
        budget: Option<Instant>,
    ) -> Result<bool, RuleError> {
        let mut variables = rhai::Scope::new();
        variables.push_constant("tenant", tenant.clone());
        match subject {
            Subject::Tenant => {}
            Subject::Queue(queue) => {
                variables.push_constant("queue", queue.clone());
            }
            Subject::Agent(agent) => {
                variables.push_constant("agent", agent.clone());
            }
        }
        let until = Instant::now() + MAX_TIME;
        WATCH.with(|w| {
            w.set(Some(Watch {
                until,
                budget: budget.unwrap_or(until),
                stopped: None,
            }))
        });
        let result = self.engine.eval_ast_with_scope::<Dynamic>(&mut variables, &rule.ast);
        let stopped = WATCH.with(|w| w.replace(None)).and_then(|w| w.stopped);
        if let Some(limit) = stopped {
            // Whatever the script returned: a callback's stop may have been swallowed.
            let position = result.as_ref().err().map_or(Position::NONE, |e| e.position());
            return Err(RuleError::stopped(limit, position));
        }
        let value = result.map_err(|e| eval_error(&e))?;
        value.as_bool().map_err(|type_name| {
            RuleError::plain(format!(
                "the rule must end in true or false; it gave {}",
                friendly_type(type_name)
            ))
        })
    }

    /// The reference for rule authors (`sdk/rules.md`), from what is registered.
    pub fn reference(&self) -> String {
        // Getters are documented with their fields; the rest are the helpers rules may call.
        let mut functions: Vec<String> = self
            .engine
            .gen_fn_signatures(false)
            .into_iter()
            .filter(|f| !f.starts_with("get$") && !f.contains("get$"))
            // rhai's own, raising their callbacks' errors: nothing new to a rule's author.
            .filter(|f| !STRICT_FUNCTIONS.iter().any(|name| f.starts_with(&format!("{name}("))))
            .collect();
        functions.sort();
        functions.dedup();
        facts::reference(&functions)
    }
}

fn friendly_type(name: &str) -> &str {
    match name {
        "i64" => "a whole number",
        "f64" => "a number",
        "()" => "nothing",
        "string" | "ImmutableString" => "a string",
        other => other,
    }
}

fn parse_error(error: &ParseError, scope: RuleScope) -> RuleError {
    let message = match error.err_type() {
        rhai::ParseErrorType::VariableUndefined(name) => {
            let known = match scope {
                RuleScope::Tenant => "`tenant`",
                RuleScope::Queue => "`queue` and `tenant`",
                RuleScope::Agent => "`agent` and `tenant`",
            };
            format!(
                "there is no variable `{name}` here; a {} rule knows {known}",
                scope.as_str()
            )
        }
        other => other.to_string(),
    };
    RuleError::new(message, error.position())
}

fn eval_error(error: &EvalAltResult) -> RuleError {
    let position = error.position();
    let message = match error {
        EvalAltResult::ErrorTerminated(..) => Limit::Time.message(),
        EvalAltResult::ErrorTooManyOperations(..) => {
            return RuleError::stopped(Limit::Operations, position);
        }
        EvalAltResult::ErrorStackOverflow(..) => {
            format!("the rule called functions more than {MAX_CALL_LEVELS} deep (runaway recursion?)")
        }
        EvalAltResult::ErrorDataTooLarge(what, ..) => {
            format!("{what} grew beyond the limit (strings {MAX_STRING} bytes, arrays {MAX_ARRAY} items)")
        }
        other => {
            // rhai's own words, without the position it appends (given separately).
            let text = other.to_string();
            match text.rfind(" (line ") {
                Some(cut) => text[..cut].to_owned(),
                None => text,
            }
        }
    };
    RuleError::new(message, position)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> QueueFacts {
        QueueFacts {
            id: "q1".into(),
            name: "Sales".into(),
            waiting: 12,
            longest_wait_s: 75.0,
            service_level: 71.5,
            sl_target: 80,
            ..QueueFacts::default()
        }
    }

    #[test]
    fn conditions_on_a_queue_and_an_agent() {
        let engine = RuleEngine::new();
        let tenant = TenantFacts::default();
        let rule = engine
            .compile(RuleScope::Queue, "queue.waiting > 10 && queue.longest_wait_s > 60")
            .unwrap();
        assert!(engine.evaluate(&rule, &tenant, Subject::Queue(&queue())).unwrap());
        let rule = engine
            .compile(RuleScope::Queue, "queue.service_level < queue.sl_target - 5")
            .unwrap();
        assert!(engine.evaluate(&rule, &tenant, Subject::Queue(&queue())).unwrap());
        let paused = AgentFacts {
            state: "paused".into(),
            in_state_s: 1300,
            ..AgentFacts::default()
        };
        let rule = engine
            .compile(RuleScope::Agent, "agent.state == \"paused\" && agent.in_state_s > 1200")
            .unwrap();
        assert!(engine.evaluate(&rule, &tenant, Subject::Agent(&paused)).unwrap());
        let available = AgentFacts {
            state: "available".into(),
            ..paused
        };
        assert!(!engine.evaluate(&rule, &tenant, Subject::Agent(&available)).unwrap());
    }

    #[test]
    fn syntax_errors_and_unknown_names_say_where() {
        let engine = RuleEngine::new();
        let error = engine.compile(RuleScope::Queue, "queue.waiting >\n  && 3").unwrap_err();
        assert_eq!(error.line, Some(2), "{error:?}");
        assert!(error.column.is_some(), "{error:?}");
        let error = engine
            .compile(RuleScope::Queue, "agent.state == \"paused\"")
            .unwrap_err();
        assert!(error.message.contains("no variable `agent`"), "{error:?}");
        assert_eq!((error.line, error.column), (Some(1), Some(1)));
        assert!(engine.compile(RuleScope::Agent, "").is_err());
        assert!(engine.compile(RuleScope::Agent, &"1".repeat(MAX_SOURCE + 1)).is_err());
        assert!(
            engine.compile(RuleScope::Tenant, "eval(\"1\")").is_err(),
            "eval is not available"
        );
        assert!(
            engine.compile(RuleScope::Tenant, "import \"x\" as y; true").is_err(),
            "no modules"
        );
    }

    #[test]
    fn hostile_rules_are_stopped_and_explained() {
        let engine = RuleEngine::new();
        let tenant = TenantFacts::default();
        let run = |scope, text: &str| {
            let rule = engine.compile(scope, text).unwrap();
            let subject = match scope {
                RuleScope::Queue => Subject::Queue(&QUEUE),
                _ => Subject::Tenant,
            };
            engine.evaluate(&rule, &tenant, subject).unwrap_err()
        };
        static QUEUE: std::sync::LazyLock<QueueFacts> = std::sync::LazyLock::new(QueueFacts::default);
        let endless = run(RuleScope::Tenant, "loop { } true");
        assert!(endless.message.contains("stopped"), "{endless:?}");
        let started = Instant::now();
        let busy = run(RuleScope::Tenant, "let x = 0; while true { x += 1; } x > 0");
        assert!(busy.message.contains("stopped"), "{busy:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
        let recursion = run(RuleScope::Tenant, "fn f(n) { f(n + 1) } f(0)");
        assert!(recursion.message.contains("deep"), "{recursion:?}");
        let huge = run(RuleScope::Tenant, "let s = \"x\"; loop { s += s; } true");
        assert!(huge.message.contains("limit"), "{huge:?}");
        let unknown = run(RuleScope::Queue, "queue.wating > 3");
        assert!(unknown.message.contains("wating"), "{unknown:?}");
        assert_eq!(unknown.line, Some(1));
        let types = run(RuleScope::Queue, "queue.name * 2 > 1");
        assert!(types.message.contains("not found"), "{types:?}");
        let not_bool = run(RuleScope::Queue, "queue.waiting");
        assert!(not_bool.message.contains("true or false"), "{not_bool:?}");
    }

    /// rhai's `sort` drops its comparer's errors; here they fail the evaluation, as a stop
    /// inside any other callback does.
    #[test]
    fn errors_inside_callbacks_fail_the_evaluation() {
        let engine = RuleEngine::new();
        let tenant = TenantFacts::default();
        let run = |text: &str| {
            let rule = engine.compile(RuleScope::Tenant, text).unwrap();
            engine.evaluate(&rule, &tenant, Subject::Tenant)
        };
        let started = Instant::now();
        let looping = run("let a = []; for i in 0..500 { a.push(500 - i); } a.sort(|x, y| { loop { } }); true");
        let error = looping.unwrap_err();
        assert!(error.limit.is_some_and(Limit::is_the_rules_fault), "{error:?}");
        assert!(error.message.contains("stopped"), "{error:?}");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        for (text, says) in [
            (
                "let a = [3, 1, 2]; a.sort(|x, y| { throw \"no order\" }); true",
                "no order",
            ),
            ("let a = [3, 1, 2]; a.sort_by(|x, y| x.nope); true", "nope"),
            (
                "let a = [3, 1, 2]; let b = a.order(|x, y| { throw \"no order\" }); true",
                "no order",
            ),
            (
                "let a = [1, 1]; a.dedup(|x, y| { throw \"no dedup\" }); true",
                "no dedup",
            ),
        ] {
            let error = run(text).unwrap_err();
            assert!(error.message.contains(says), "{text}: {error:?}");
        }
        // Steps counted inside a callback stop the rule too.
        let steps = run("let a = [3, 1, 2]; a.sort(|x, y| { let n = 0; while true { n += 1; } 0 }); true").unwrap_err();
        assert!(steps.limit.is_some(), "{steps:?}");
        // Working callbacks work.
        assert!(run("let a = [3, 1, 2]; a.sort(|x, y| x - y); a == [1, 2, 3]").unwrap());
        assert!(run("let a = [3, 1, 2]; a.sort(|x, y| y - x); a == [3, 2, 1]").unwrap());
        assert!(run("let a = [3, 1, 2]; a.order(|x, y| x - y) == [1, 2, 3] && a == [3, 1, 2]").unwrap());
        assert!(run("let a = [1, 1, 2, 2, 1]; a.dedup(|x, y| x == y); a == [1, 2, 1]").unwrap());
        assert!(run("let a = [2, 1]; a.sort(); a == [1, 2]").unwrap());
    }

    #[test]
    fn the_callers_budget_and_cancel_stop_an_evaluation() {
        let engine = RuleEngine::new();
        let tenant = TenantFacts::default();
        // Slow steps: it runs into a time limit, not the step limit.
        let rule = engine
            .compile(
                RuleScope::Tenant,
                "let s = \"\"; s.pad(5000, \"x\"); loop { s.to_upper(); } true",
            )
            .unwrap();
        let started = Instant::now();
        let error = engine
            .evaluate_until(
                &rule,
                &tenant,
                Subject::Tenant,
                Some(Instant::now() + Duration::from_millis(2)),
            )
            .unwrap_err();
        assert_eq!(error.limit, Some(Limit::Budget), "{error:?}");
        assert!(started.elapsed() < MAX_TIME, "{:?}", started.elapsed());
        let flag = Arc::new(AtomicBool::new(true));
        let guard = CancelGuard::enter(Some(flag));
        let error = engine.evaluate(&rule, &tenant, Subject::Tenant).unwrap_err();
        assert_eq!(error.limit, Some(Limit::Cancelled), "{error:?}");
        drop(guard);
        // Without the flag it runs into its own limits again: time or steps, whichever comes
        // first on this machine; never the cancellation.
        let error = engine.evaluate(&rule, &tenant, Subject::Tenant).unwrap_err();
        assert!(
            matches!(error.limit, Some(Limit::Time | Limit::Operations)),
            "the flag is gone with its guard: {error:?}"
        );
    }

    #[test]
    fn the_reference_lists_every_field() {
        let reference = RuleEngine::new().reference();
        for field in facts::QUEUE_FIELDS {
            assert!(reference.contains(&format!("`{}`", field.name)));
        }
        assert!(reference.contains("in_state_s"));
    }

    /// The fast path agrees with the interpreter, on conditions it takes and on those it hands
    /// back (mixed types, overflow, division by zero, strings compared by order).
    #[test]
    fn the_fast_path_means_what_rhai_means() {
        let engine = RuleEngine::new();
        let tenant = TenantFacts {
            waiting: 3,
            ..TenantFacts::default()
        };
        let queues = [queue(), QueueFacts::default()];
        let conditions = [
            ("queue.waiting > 10 && queue.longest_wait_s > 60", true),
            ("queue.service_level < queue.sl_target - 5", true),
            ("queue.waiting * 2 >= 24 || !(queue.name == \"Sales\")", true),
            ("queue.longest_wait_s / 2 > 30.0 && tenant.waiting != 0", true),
            ("-queue.waiting < 0", true),
            ("queue.waiting / 0 > 1", true),
            ("queue.waiting * 9223372036854775807 > 1", true),
            ("queue.name > \"A\"", true),
            ("queue.name == 3", true),
            ("queue.name + \"x\" == \"Salesx\"", true),
            ("let x = queue.waiting; x > 1", false),
            ("if queue.waiting > 1 { true } else { false }", false),
        ];
        for (text, native) in conditions {
            let rule = engine.compile(RuleScope::Queue, text).unwrap();
            assert_eq!(rule.is_native(), native, "{text}");
            for q in &queues {
                let fast = engine.evaluate(&rule, &tenant, Subject::Queue(q));
                let slow = engine.interpret(&rule, &tenant, Subject::Queue(q));
                assert_eq!(fast.is_ok(), slow.is_ok(), "{text}: {fast:?} vs {slow:?}");
                if let (Ok(a), Ok(b)) = (&fast, &slow) {
                    assert_eq!(a, b, "{text}");
                }
            }
        }
        let rule = engine
            .compile(RuleScope::Agent, "agent.state == \"paused\" && agent.in_state_s > 1200")
            .unwrap();
        assert!(rule.is_native());
    }
}

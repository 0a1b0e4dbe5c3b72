//! A fast path for the rules most tenants write: a single condition of fields, constants,
//! comparisons, arithmetic and `&&` / `||` / `!` (`agent.state == "paused" && agent.in_state_s >
//! 1200`). Such a rule's rhai syntax tree is translated once into a small tree evaluated here
//! directly on the facts, thirty times cheaper than the interpreter. Anything else — other
//! syntax, or at run time a value this path does not handle the way rhai would (mixed types,
//! overflow, division by zero, a result that is not a boolean) — is left to rhai, so a rule
//! means exactly what rhai says it means.

use rhai::{Expr, ImmutableString, Stmt};

use super::engine::{RuleScope, Subject};
use super::facts::{AGENT_FIELDS, QUEUE_FIELDS, Read, TENANT_FIELDS, TenantFacts};

/// A value on the fast path.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(i64),
    Float(f64),
    Str(ImmutableString),
    Bool(bool),
}

/// Which variable a field belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Tenant,
    Queue,
    Agent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
}

/// A translated condition.
#[derive(Debug, Clone)]
pub struct Native(Node);

#[derive(Debug, Clone)]
enum Node {
    Const(Value),
    Field(Owner, usize),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Neg(Box<Node>),
    Binary(Op, Box<Node>, Box<Node>),
}

/// Translates a compiled rule when all of it is on the fast path.
pub fn translate(ast: &rhai::AST, scope: RuleScope) -> Option<Native> {
    if ast.has_functions() {
        return None;
    }
    match ast.statements() {
        [Stmt::Expr(expr)] => node(expr, scope).map(Native),
        // An operator at the top is a call statement.
        [Stmt::FnCall(call, _)] => operator(call, scope).map(Native),
        _ => None,
    }
}

fn field(variable: &str, property: &str, scope: RuleScope) -> Option<Node> {
    fn index<T>(fields: &[super::facts::Field<T>], property: &str) -> Option<usize> {
        fields.iter().position(|f| f.name == property)
    }
    match (variable, scope) {
        ("tenant", _) => Some(Node::Field(Owner::Tenant, index(TENANT_FIELDS, property)?)),
        ("queue", RuleScope::Queue) => Some(Node::Field(Owner::Queue, index(QUEUE_FIELDS, property)?)),
        ("agent", RuleScope::Agent) => Some(Node::Field(Owner::Agent, index(AGENT_FIELDS, property)?)),
        _ => None,
    }
}

fn node(expr: &Expr, scope: RuleScope) -> Option<Node> {
    Some(match expr {
        Expr::BoolConstant(b, _) => Node::Const(Value::Bool(*b)),
        Expr::IntegerConstant(i, _) => Node::Const(Value::Int(*i)),
        Expr::FloatConstant(f, _) => Node::Const(Value::Float(**f)),
        Expr::StringConstant(s, _) => Node::Const(Value::Str(s.clone())),
        Expr::Dot(binary, flags, _) if flags.is_empty() => {
            let (Expr::Variable(variable, _, _), Expr::Property(property, _)) = (&binary.lhs, &binary.rhs) else {
                return None;
            };
            field(variable.1.as_str(), property.2.as_str(), scope)?
        }
        Expr::And(list, _) => Node::And(list.iter().map(|e| node(e, scope)).collect::<Option<_>>()?),
        Expr::Or(list, _) => Node::Or(list.iter().map(|e| node(e, scope)).collect::<Option<_>>()?),
        Expr::FnCall(call, _) => operator(call, scope)?,
        _ => return None,
    })
}

/// A built-in operator applied to translatable operands.
fn operator(call: &rhai::FnCallExpr, scope: RuleScope) -> Option<Node> {
    call.op_token.as_ref()?;
    let args: Vec<Node> = call.args.iter().map(|e| node(e, scope)).collect::<Option<_>>()?;
    let mut args = args.into_iter();
    Some(match (call.name.as_str(), args.len()) {
        ("!", 1) => Node::Not(Box::new(args.next()?)),
        ("-", 1) => Node::Neg(Box::new(args.next()?)),
        (name, 2) => {
            let op = match name {
                "==" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                "+" => Op::Add,
                "-" => Op::Sub,
                "*" => Op::Mul,
                "/" => Op::Div,
                _ => return None,
            };
            let (lhs, rhs) = (args.next()?, args.next()?);
            Node::Binary(op, Box::new(lhs), Box::new(rhs))
        }
        _ => return None,
    })
}

/// A value while evaluating, borrowed from the facts or the condition.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Val<'a> {
    Int(i64),
    Float(f64),
    Str(&'a str),
    Bool(bool),
}

impl<'a> From<&'a Value> for Val<'a> {
    fn from(value: &'a Value) -> Self {
        match value {
            Value::Int(i) => Val::Int(*i),
            Value::Float(f) => Val::Float(*f),
            Value::Str(s) => Val::Str(s.as_str()),
            Value::Bool(b) => Val::Bool(*b),
        }
    }
}

struct Facts<'a> {
    tenant: &'a TenantFacts,
    subject: &'a Subject<'a>,
}

impl<'a> Facts<'a> {
    fn get(&self, owner: Owner, index: usize) -> Option<Val<'a>> {
        let read = match (owner, self.subject) {
            (Owner::Tenant, _) => (TENANT_FIELDS.get(index)?.read)(self.tenant),
            (Owner::Queue, Subject::Queue(q)) => (QUEUE_FIELDS.get(index)?.read)(q),
            (Owner::Agent, Subject::Agent(a)) => (AGENT_FIELDS.get(index)?.read)(a),
            _ => return None,
        };
        Some(match read {
            Read::Int(i) => Val::Int(i),
            Read::Float(f) => Val::Float(f),
            Read::Str(s) => Val::Str(s.as_str()),
        })
    }
}

fn compare<T: PartialOrd>(op: Op, a: T, b: T) -> Option<bool> {
    Some(match op {
        Op::Eq => a == b,
        Op::Ne => a != b,
        Op::Lt => a < b,
        Op::Le => a <= b,
        Op::Gt => a > b,
        Op::Ge => a >= b,
        _ => return None,
    })
}

fn float_arithmetic<'a>(op: Op, a: f64, b: f64) -> Option<Val<'a>> {
    Some(Val::Float(match op {
        Op::Add => a + b,
        Op::Sub => a - b,
        Op::Mul => a * b,
        Op::Div => a / b,
        _ => return None,
    }))
}

fn eval<'a>(node: &'a Node, facts: &Facts<'a>) -> Option<Val<'a>> {
    Some(match node {
        Node::Const(v) => Val::from(v),
        Node::Field(owner, index) => facts.get(*owner, *index)?,
        Node::And(list) => {
            for item in list {
                match eval(item, facts)? {
                    Val::Bool(false) => return Some(Val::Bool(false)),
                    Val::Bool(true) => {}
                    _ => return None,
                }
            }
            Val::Bool(true)
        }
        Node::Or(list) => {
            for item in list {
                match eval(item, facts)? {
                    Val::Bool(true) => return Some(Val::Bool(true)),
                    Val::Bool(false) => {}
                    _ => return None,
                }
            }
            Val::Bool(false)
        }
        Node::Not(inner) => match eval(inner, facts)? {
            Val::Bool(b) => Val::Bool(!b),
            _ => return None,
        },
        Node::Neg(inner) => match eval(inner, facts)? {
            Val::Int(i) => Val::Int(i.checked_neg()?),
            Val::Float(f) => Val::Float(-f),
            _ => return None,
        },
        Node::Binary(op, lhs, rhs) => {
            let (a, b) = (eval(lhs, facts)?, eval(rhs, facts)?);
            match (a, b) {
                (Val::Int(a), Val::Int(b)) => match op {
                    Op::Add => Val::Int(a.checked_add(b)?),
                    Op::Sub => Val::Int(a.checked_sub(b)?),
                    Op::Mul => Val::Int(a.checked_mul(b)?),
                    Op::Div if b != 0 => Val::Int(a.checked_div(b)?),
                    Op::Div => return None,
                    _ => Val::Bool(compare(*op, a, b)?),
                },
                (Val::Float(a), Val::Float(b)) => match op {
                    Op::Add | Op::Sub | Op::Mul | Op::Div => float_arithmetic(*op, a, b)?,
                    _ => Val::Bool(compare(*op, a, b)?),
                },
                (Val::Int(a), Val::Float(b)) => match op {
                    Op::Add | Op::Sub | Op::Mul | Op::Div => float_arithmetic(*op, a as f64, b)?,
                    _ => Val::Bool(compare(*op, a as f64, b)?),
                },
                (Val::Float(a), Val::Int(b)) => match op {
                    Op::Add | Op::Sub | Op::Mul | Op::Div => float_arithmetic(*op, a, b as f64)?,
                    _ => Val::Bool(compare(*op, a, b as f64)?),
                },
                (Val::Str(a), Val::Str(b)) if matches!(op, Op::Eq | Op::Ne) => Val::Bool(compare(*op, a, b)?),
                (Val::Bool(a), Val::Bool(b)) if matches!(op, Op::Eq | Op::Ne) => Val::Bool(compare(*op, a, b)?),
                // Whatever else (mixed types, string order, concatenation): rhai decides.
                _ => return None,
            }
        }
    })
}

impl Native {
    /// The condition's value, or `None` when rhai must decide.
    pub fn evaluate(&self, tenant: &TenantFacts, subject: &Subject<'_>) -> Option<bool> {
        match eval(&self.0, &Facts { tenant, subject })? {
            Val::Bool(b) => Some(b),
            _ => None,
        }
    }
}

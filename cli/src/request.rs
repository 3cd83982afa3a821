//! What each verb asks of ferry's functions: the function and the payload,
//! exactly as the functions take them (crates/aws/src/inbound.rs and
//! events/invoke-*.json).

use serde_json::{json, Map, Value};

use crate::args::{
    Command, DeployArgs, LaneVerbArgs, PromoteArgs, ReconcileArgs, RejectArgs, RetryArgs,
    RollbackArgs,
};

/// ferry's functions, named `<stack>-<suffix>` by template.yaml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Deploy,
    Rollback,
    Reconcile,
}

impl Function {
    pub fn suffix(self) -> &'static str {
        match self {
            Function::Deploy => "deploy",
            Function::Rollback => "rollback",
            Function::Reconcile => "reconcile",
        }
    }

    pub fn name(self, stack: &str) -> String {
        format!("{stack}-{}", self.suffix())
    }
}

/// One invoke: which function, what payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub function: Function,
    pub payload: Value,
}

fn object(pairs: &[(&str, Option<Value>)]) -> Value {
    let mut map = Map::new();
    for (key, value) in pairs {
        if let Some(value) = value {
            map.insert((*key).to_owned(), value.clone());
        }
    }
    Value::Object(map)
}

fn text(value: &Option<String>) -> Option<Value> {
    value.as_ref().map(|v| Value::String(v.clone()))
}

fn s(value: &str) -> Option<Value> {
    Some(Value::String(value.to_owned()))
}

pub fn deploy(a: &DeployArgs) -> Request {
    Request {
        function: Function::Deploy,
        payload: json!({ "deploy": object(&[
            ("app", s(&a.lane.app)),
            ("environment", s(&a.lane.env)),
            ("tag", text(&a.image.tag)),
            ("digest", text(&a.image.digest)),
            ("repository", text(&a.repository)),
        ]) }),
    }
}

pub fn retry(a: &RetryArgs) -> Request {
    Request {
        function: Function::Deploy,
        payload: json!({ "retry": object(&[
            ("app", s(&a.lane.app)),
            ("environment", s(&a.lane.env)),
            ("tag", text(&a.image.tag)),
            ("digest", text(&a.image.digest)),
            ("repository", text(&a.repository)),
            ("force", Some(Value::Bool(a.force))),
        ]) }),
    }
}

pub fn rollback(a: &RollbackArgs) -> Request {
    Request {
        function: Function::Rollback,
        payload: json!({ "rollback": object(&[
            ("app", s(&a.lane.app)),
            ("environment", s(&a.lane.env)),
            ("to", text(&a.to)),
            ("reason", s(&a.reason)),
            ("repository", text(&a.repository)),
        ]) }),
    }
}

pub fn unfreeze(a: &LaneVerbArgs) -> Request {
    Request {
        function: Function::Rollback,
        payload: json!({ "unfreeze": { "app": a.lane.app, "environment": a.lane.env } }),
    }
}

pub fn promote(a: &PromoteArgs) -> Request {
    Request {
        function: Function::Deploy,
        payload: json!({ "promote": { "app": a.app, "from": a.from, "to": a.to } }),
    }
}

pub fn approve(a: &LaneVerbArgs) -> Request {
    Request {
        function: Function::Deploy,
        payload: json!({ "approve": { "app": a.lane.app, "environment": a.lane.env } }),
    }
}

pub fn reject(a: &RejectArgs) -> Request {
    Request {
        function: Function::Deploy,
        payload: json!({ "reject": {
            "app": a.lane.app,
            "environment": a.lane.env,
            "reason": a.reason,
        } }),
    }
}

pub fn reconcile(a: &ReconcileArgs) -> Request {
    let (app, env) = match &a.scope {
        Some(scope) => (Some(scope.app.clone()), scope.env.clone()),
        None => (None, None),
    };
    Request {
        function: Function::Reconcile,
        payload: json!({ "reconcile": object(&[
            ("app", text(&app)),
            ("environment", text(&env)),
            ("repository", text(&a.repository)),
        ]) }),
    }
}

/// The invoke a command makes, if it is one that asks a function.
pub fn of(command: &Command) -> Option<Request> {
    Some(match command {
        Command::Deploy(a) => deploy(a),
        Command::Retry(a) => retry(a),
        Command::Rollback(a) => rollback(a),
        Command::Unfreeze(a) => unfreeze(a),
        Command::Promote(a) => promote(a),
        Command::Approve(a) => approve(a),
        Command::Reject(a) => reject(a),
        Command::Reconcile(a) => reconcile(a),
        _ => return None,
    })
}

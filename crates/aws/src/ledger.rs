//! The release ledger in DynamoDB. Every transition is a conditional write.
//!
//! Items (table keys `pk`, `sk`):
//! - lane head: `pk = lane#<app>/<env>#<repository>`, `sk = head`
//! - release:   `pk = release#<release id>`, `sk = release`
//!   (`env_key` and `created_at` on each release allow listing an environment's history)
//! - tag claim: `pk = lane#<app>/<env>#<repository>`, `sk = tag-claim`: who holds the
//!   writes of the lane's image-tag parameter (`holder`, `claimed_at`) and the
//!   version the last holder wrote (`last_written`); an item of its own so no
//!   transaction on the head can drop it

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValue, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use ferry_core::names::PushTime;
use ferry_core::ports::{
    superseded_reason, Claim, ClaimOutcome, HeadChange, HeldPush, KnownGoodRelease, Lane, LaneHead,
    Ledger, PortError, PortResult, ReleasePointer, ReleaseRecord, ReleaseUpdate, Retried,
    RollbackInProgress, RollbackLedger, RollbackWrite, TagClaim, TAG_CLAIM_LEASE,
};
use ferry_core::release::{Guard, ReleaseId, ReleaseState, Transition};

use crate::error::port_error;

type Item = HashMap<String, AttributeValue>;

#[derive(Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
}

impl DynamoLedger {
    /// The lane head's part of a claim: conditional on the version read, it points
    /// at the new release (and unfreezes, and records the push time, when asked).
    fn head_claimed(&self, claim: &Claim<'_>) -> PortResult<Update> {
        let release = claim.release;
        let expected_version = claim.expected_head_version.unwrap_or(0);
        let mut expression = "SET version = :next, in_flight_id = :id, in_flight_tag = :tag, in_flight_digest = :digest".to_owned();
        expression += if claim.unfreeze {
            ", frozen = :false"
        } else {
            ", frozen = if_not_exists(frozen, :false)"
        };
        if claim.latest_pushed_at.is_some() {
            expression += ", latest_pushed_at_ms = :pushed";
        }
        if claim.unfreeze {
            expression += " REMOVE held_tag, held_digest, held_pushed_at_ms";
        }
        let unmark = claim.retries.filter(|r| r.unmark_bad);
        if unmark.is_some() {
            expression += " DELETE bad_releases :retried";
        }
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(head_key(&release.lane)))
            .update_expression(expression)
            .condition_expression("attribute_not_exists(version) OR version = :expected")
            .expression_attribute_values(":next", n(expected_version + 1))
            .expression_attribute_values(":expected", n(expected_version))
            .expression_attribute_values(":id", s(release.id.as_str()))
            .expression_attribute_values(":tag", s(&release.tag))
            .expression_attribute_values(":digest", s(&release.digest))
            .expression_attribute_values(":false", AttributeValue::Bool(false));
        if let Some(pushed) = claim.latest_pushed_at {
            update = update.expression_attribute_values(":pushed", n(pushed.epoch_millis()));
        }
        if let Some(retried) = unmark {
            update = update.expression_attribute_values(
                ":retried",
                AttributeValue::Ss(vec![retried.id.to_string()]),
            );
        }
        update.build().map_err(build_error)
    }

    /// The retried release's part of a retry's claim: linked to the new
    /// generation, conditional on its still being in the state read and not
    /// retried yet (two retries of one release claim once).
    fn retried(&self, retried: &Retried, by: &ReleaseId) -> PortResult<Update> {
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(release_key(&retried.id)))
            .update_expression("SET retried_as = :id, updated_at = :now")
            .condition_expression("#state = :state AND attribute_not_exists(retried_as)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", s(retried.state.as_str()))
            .expression_attribute_values(":id", s(by.as_str()))
            .expression_attribute_values(":now", n(now()))
            .build()
            .map_err(build_error)
    }

    /// The superseded release's part of a claim: SUPERSEDED by `by`, conditional
    /// on its still being in flight.
    fn superseded(&self, old: &ReleaseId, by: &ReleaseId) -> PortResult<Update> {
        let guard = Transition::Supersede.guard();
        let (condition, mut values) = state_condition(guard.from);
        values.insert(
            ":superseded".to_owned(),
            s(guard.to.unwrap_or(ReleaseState::Superseded).as_str()),
        );
        values.insert(":id".to_owned(), s(by.as_str()));
        values.insert(":reason".to_owned(), s(superseded_reason(by)));
        values.insert(":now".to_owned(), n(now()));
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(release_key(old)))
            .update_expression(
                "SET #state = :superseded, superseded_by = :id, reason = :reason, updated_at = :now",
            )
            .condition_expression(condition)
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_error)
    }
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoLedger {
            client,
            table: table.into(),
        }
    }

    /// Every release of one environment, any order (the `ferry history` and
    /// `ferry wait` reads; the functions never list releases).
    ///
    /// The table is keyed by release (`pk = release#<app>/<env>/<hash>`) and has
    /// no index by environment, so this is a paged Scan with
    /// `begins_with(pk, "release#<app>/<env>/")`: it reads the whole table (a
    /// few items per release, each small), which an operator's occasional command
    /// can afford; a GSI on `env_key` would make it a Query if tables grow large.
    pub async fn releases_of(&self, app: &str, env: &str) -> PortResult<Vec<ReleaseRecord>> {
        let prefix = format!("release#{app}/{env}/");
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :prefix) AND sk = :release")
                .expression_attribute_values(":prefix", s(&prefix))
                .expression_attribute_values(":release", s("release"))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| port_error("dynamodb:Scan", e))?;
            for item in out.items() {
                found.push(decode_release(item)?);
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(found),
            }
        }
    }
}

fn head_key(lane: &Lane) -> Item {
    HashMap::from([
        (
            "pk".to_owned(),
            s(format!(
                "lane#{}/{}#{}",
                lane.app, lane.env, lane.repository
            )),
        ),
        ("sk".to_owned(), s("head")),
    ])
}

fn tag_claim_key(lane: &Lane) -> Item {
    let mut key = head_key(lane);
    key.insert("sk".to_owned(), s("tag-claim"));
    key
}

/// How often a writer waiting for the claim on a lane's tag writes tries again.
const CLAIM_RETRY_INTERVAL: Duration = Duration::from_millis(250);

/// Unique among the claims of every running function: the process, the
/// moment and a counter (no two claims of one process share the last two).
fn claim_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static TAKEN: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let count = TAKEN.fetch_add(1, Ordering::Relaxed);
    format!("{}-{nanos}-{count}", std::process::id())
}

fn release_key(id: &ReleaseId) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(format!("release#{id}"))),
        ("sk".to_owned(), s("release")),
    ])
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn string_map(map: &BTreeMap<String, String>) -> AttributeValue {
    AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), s(v))).collect())
}

fn string_list(list: &[String]) -> AttributeValue {
    AttributeValue::L(list.iter().map(s).collect())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn corrupt(what: &str) -> PortError {
    PortError::new(
        "dynamodb:decode",
        format!("ledger item is missing or has a malformed `{what}`"),
    )
}

fn get_s(item: &Item, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

fn get_n<T: std::str::FromStr>(item: &Item, key: &str) -> Option<T> {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn get_map(item: &Item, key: &str) -> BTreeMap<String, String> {
    item.get(key)
        .and_then(|v| v.as_m().ok())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
                .collect()
        })
        .unwrap_or_default()
}

fn get_list(item: &Item, key: &str) -> Vec<String> {
    item.get(key)
        .and_then(|v| v.as_l().ok())
        .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
        .unwrap_or_default()
}

fn decode_head(item: &Item) -> PortResult<LaneHead> {
    let pointer = |prefix: &str| -> PortResult<Option<ReleasePointer>> {
        let id_key = format!("{prefix}_id");
        match (get_s(item, &id_key), get_s(item, &format!("{prefix}_tag"))) {
            (Some(id), Some(tag)) => Ok(Some(ReleasePointer {
                id: ReleaseId::parse(&id).map_err(|_| corrupt(&id_key))?,
                tag,
                digest: get_s(item, &format!("{prefix}_digest")).unwrap_or_default(),
            })),
            _ => Ok(None),
        }
    };
    Ok(LaneHead {
        version: get_n(item, "version").ok_or_else(|| corrupt("version"))?,
        in_flight: pointer("in_flight")?,
        known_good: pointer("known_good")?,
        latest_pushed_at: get_n(item, "latest_pushed_at_ms").map(PushTime::from_epoch_millis),
        frozen: item
            .get("frozen")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        history: item
            .get("history")
            .and_then(|v| v.as_l().ok())
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_m().ok())
                    .map(decode_known_good)
                    .collect::<PortResult<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or_default(),
        bad_releases: item
            .get("bad_releases")
            .and_then(|v| v.as_ss().ok())
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| ReleaseId::parse(id).ok())
                    .collect()
            })
            .unwrap_or_default(),
        held: match (get_s(item, "held_tag"), get_s(item, "held_digest")) {
            (Some(tag), Some(digest)) => Some(HeldPush {
                tag,
                digest,
                pushed_at: get_n(item, "held_pushed_at_ms").map(PushTime::from_epoch_millis),
            }),
            _ => None,
        },
        rolling_back: item
            .get("rolling_back")
            .and_then(|v| v.as_m().ok())
            .map(decode_rollback)
            .transpose()?,
        last_failed: pointer("last_failed")?,
    })
}

fn encode_rollback(r: &RollbackInProgress) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("id".to_owned(), s(r.release.id.as_str())),
        ("tag".to_owned(), s(&r.release.tag)),
        ("digest".to_owned(), s(&r.release.digest)),
        ("target".to_owned(), s(r.target.as_str())),
        ("reason".to_owned(), s(&r.reason)),
        (
            "interrupted".to_owned(),
            AttributeValue::Bool(r.interrupted),
        ),
    ]))
}

fn decode_rollback(item: &Item) -> PortResult<RollbackInProgress> {
    let id = |key: &str| -> PortResult<ReleaseId> {
        get_s(item, key)
            .and_then(|v| ReleaseId::parse(&v).ok())
            .ok_or_else(|| corrupt(&format!("rolling_back.{key}")))
    };
    Ok(RollbackInProgress {
        release: ReleasePointer {
            id: id("id")?,
            tag: get_s(item, "tag").ok_or_else(|| corrupt("rolling_back.tag"))?,
            digest: get_s(item, "digest").unwrap_or_default(),
        },
        target: id("target")?,
        reason: get_s(item, "reason").unwrap_or_default(),
        interrupted: item
            .get("interrupted")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
    })
}

fn encode_known_good(k: &KnownGoodRelease) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("id".to_owned(), s(k.id.as_str())),
        ("tag".to_owned(), s(&k.tag)),
        ("digest".to_owned(), s(&k.digest)),
        (
            "task_definitions".to_owned(),
            string_map(&k.task_definitions),
        ),
    ]))
}

fn decode_known_good(item: &Item) -> PortResult<KnownGoodRelease> {
    let id = get_s(item, "id").ok_or_else(|| corrupt("history.id"))?;
    Ok(KnownGoodRelease {
        id: ReleaseId::parse(&id).map_err(|_| corrupt("history.id"))?,
        tag: get_s(item, "tag").ok_or_else(|| corrupt("history.tag"))?,
        digest: get_s(item, "digest").ok_or_else(|| corrupt("history.digest"))?,
        task_definitions: get_map(item, "task_definitions"),
    })
}

fn encode_release(r: &ReleaseRecord) -> Item {
    let mut item = release_key(&r.id);
    let mut put = |k: &str, v: AttributeValue| {
        item.insert(k.to_owned(), v);
    };
    put("id", s(r.id.as_str()));
    put("app", s(&r.lane.app));
    put("env", s(&r.lane.env));
    put("env_key", s(format!("{}/{}", r.lane.app, r.lane.env)));
    put("repository", s(&r.lane.repository));
    put("tag", s(&r.tag));
    put("digest", s(&r.digest));
    put("state", s(r.state.as_str()));
    put("cluster", s(&r.cluster));
    put("services", string_list(&r.services));
    put("task_definitions", string_map(&r.task_definitions));
    put("deployments", string_map(&r.deployments));
    put(
        "migration_essential_containers",
        string_list(&r.migration_essential_containers),
    );
    put("created_at", n(r.created_at));
    put("updated_at", n(r.updated_at));
    let optional = [
        ("previous_tag", r.previous_tag.clone()),
        (
            "migration_task_definition",
            r.migration_task_definition.clone(),
        ),
        ("migration_task", r.migration_task.clone()),
        ("verify_task_definition", r.verify_task_definition.clone()),
        ("verify_task", r.verify_task.clone()),
        ("reason", r.reason.clone()),
        ("interrupted", r.interrupted.clone()),
        ("retried_as", r.retried_as.as_ref().map(ToString::to_string)),
        (
            "rolled_back_from",
            r.rolled_back_from.map(|s| s.as_str().to_owned()),
        ),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            put(k, s(v));
        }
    }
    let numbers = [
        ("migration_deadline", r.migration_deadline),
        ("verify_deadline", r.verify_deadline),
        ("rollout_started_at", r.rollout_started_at),
        ("bake_ends_at", r.bake_ends_at),
        ("approval_expires_at", r.approval_expires_at),
    ];
    for (k, v) in numbers {
        if let Some(v) = v {
            put(k, n(v));
        }
    }
    if !r.verify_essential_containers.is_empty() {
        put(
            "verify_essential_containers",
            string_list(&r.verify_essential_containers),
        );
    }
    if let Some(at) = r.pushed_at {
        put("pushed_at_ms", n(at.epoch_millis()));
    }
    if let Some(v) = r.parameter_version {
        put("parameter_version", n(v));
    }
    if !r.completed_services.is_empty() {
        put(
            "completed_services",
            AttributeValue::Ss(r.completed_services.iter().cloned().collect()),
        );
    }
    item
}

fn decode_release(item: &Item) -> PortResult<ReleaseRecord> {
    let id = get_s(item, "id").ok_or_else(|| corrupt("id"))?;
    let state = get_s(item, "state").ok_or_else(|| corrupt("state"))?;
    Ok(ReleaseRecord {
        id: ReleaseId::parse(&id).map_err(|_| corrupt("id"))?,
        lane: Lane {
            app: get_s(item, "app").ok_or_else(|| corrupt("app"))?,
            env: get_s(item, "env").ok_or_else(|| corrupt("env"))?,
            repository: get_s(item, "repository").ok_or_else(|| corrupt("repository"))?,
        },
        tag: get_s(item, "tag").ok_or_else(|| corrupt("tag"))?,
        digest: get_s(item, "digest").ok_or_else(|| corrupt("digest"))?,
        state: ReleaseState::parse(&state).ok_or_else(|| corrupt("state"))?,
        previous_tag: get_s(item, "previous_tag"),
        pushed_at: get_n(item, "pushed_at_ms").map(PushTime::from_epoch_millis),
        cluster: get_s(item, "cluster").ok_or_else(|| corrupt("cluster"))?,
        services: get_list(item, "services"),
        task_definitions: get_map(item, "task_definitions"),
        migration_task_definition: get_s(item, "migration_task_definition"),
        migration_essential_containers: get_list(item, "migration_essential_containers"),
        migration_task: get_s(item, "migration_task"),
        migration_deadline: get_n(item, "migration_deadline"),
        verify_task_definition: get_s(item, "verify_task_definition"),
        verify_essential_containers: get_list(item, "verify_essential_containers"),
        verify_task: get_s(item, "verify_task"),
        verify_deadline: get_n(item, "verify_deadline"),
        rollout_started_at: get_n(item, "rollout_started_at"),
        bake_ends_at: get_n(item, "bake_ends_at"),
        approval_expires_at: get_n(item, "approval_expires_at"),
        parameter_version: get_n(item, "parameter_version"),
        deployments: get_map(item, "deployments"),
        completed_services: item
            .get("completed_services")
            .and_then(|v| v.as_ss().ok())
            .map(|v| v.iter().cloned().collect::<BTreeSet<_>>())
            .unwrap_or_default(),
        reason: get_s(item, "reason"),
        interrupted: get_s(item, "interrupted"),
        rolled_back_from: get_s(item, "rolled_back_from").and_then(|v| ReleaseState::parse(&v)),
        retried_as: get_s(item, "retried_as")
            .map(|v| ReleaseId::parse(&v).map_err(|_| corrupt("retried_as")))
            .transpose()?,
        created_at: get_n(item, "created_at").unwrap_or_default(),
        updated_at: get_n(item, "updated_at").unwrap_or_default(),
    })
}

/// An UpdateItem expression for a release: `SET`/`ADD`/`REMOVE` clauses for
/// every given field, conditional on the release being in a state the guard admits.
struct ReleaseExpression {
    update: String,
    condition: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

fn release_expression(guard: Guard, update: &ReleaseUpdate) -> ReleaseExpression {
    let (mut condition, mut values) = state_condition(guard.from);
    let mut names = HashMap::from([("#state".to_owned(), "state".to_owned())]);
    let mut sets = Vec::new();
    for (field, value) in release_fields(guard, update) {
        sets.push(format!("#{field} = :{field}"));
        names.insert(format!("#{field}"), field.to_owned());
        values.insert(format!(":{field}"), value);
    }
    let mut expression = format!("SET {}", sets.join(", "));
    if let Some(service) = &update.completed_service {
        expression.push_str(" ADD completed_services :completed");
        values.insert(
            ":completed".to_owned(),
            AttributeValue::Ss(vec![service.clone()]),
        );
    }
    // A transition means the interrupted step got done: the mark goes with it.
    let moves_on = guard.to.is_some() && update.interrupted.is_none();
    if update.resume || moves_on {
        expression.push_str(" REMOVE interrupted");
    }
    if update.resume {
        condition.push_str(" AND attribute_exists(interrupted)");
    }
    if let Some((service, deployment)) = &update.if_deployment {
        condition.push_str(" AND deployments.#service = :deployment");
        names.insert("#service".to_owned(), service.clone());
        values.insert(":deployment".to_owned(), s(deployment));
    }
    ReleaseExpression {
        update: expression,
        condition,
        names,
        values,
    }
}

/// Every attribute a release update sets (its guard's state included).
fn release_fields(guard: Guard, u: &ReleaseUpdate) -> Vec<(&'static str, AttributeValue)> {
    let text = |v: &Option<String>| v.as_ref().map(s);
    let number = |v: Option<u64>| v.map(n);
    let fields = [
        ("updated_at", Some(n(now()))),
        ("state", guard.to.map(|state| s(state.as_str()))),
        ("interrupted", text(&u.interrupted)),
        ("previous_tag", text(&u.previous_tag)),
        (
            "task_definitions",
            u.task_definitions.as_ref().map(string_map),
        ),
        (
            "migration_task_definition",
            text(&u.migration_task_definition),
        ),
        (
            "migration_essential_containers",
            u.migration_essential_containers.as_deref().map(string_list),
        ),
        ("migration_task", text(&u.migration_task)),
        ("migration_deadline", number(u.migration_deadline)),
        ("verify_task_definition", text(&u.verify_task_definition)),
        (
            "verify_essential_containers",
            u.verify_essential_containers.as_deref().map(string_list),
        ),
        ("verify_task", text(&u.verify_task)),
        ("verify_deadline", number(u.verify_deadline)),
        ("rollout_started_at", number(u.rollout_started_at)),
        ("bake_ends_at", number(u.bake_ends_at)),
        ("approval_expires_at", number(u.approval_expires_at)),
        ("parameter_version", u.parameter_version.map(n)),
        ("deployments", u.deployments.as_ref().map(string_map)),
        ("reason", text(&u.reason)),
    ];
    fields
        .into_iter()
        .filter_map(|(field, value)| value.map(|v| (field, v)))
        .collect()
}

type UpdateItemError =
    aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError>;

fn failed_condition(err: &UpdateItemError) -> bool {
    err.as_service_error()
        .is_some_and(|e| e.is_conditional_check_failed_exception())
}

/// A conditional UpdateItem: whether it applied (a failed condition is `false`).
fn applied<T>(result: Result<T, UpdateItemError>) -> PortResult<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(err) if failed_condition(&err) => Ok(false),
        Err(err) => Err(port_error("dynamodb:UpdateItem", err)),
    }
}

/// `#state IN (:s0, :s1, …)` and its values.
fn state_condition(states: &[ReleaseState]) -> (String, HashMap<String, AttributeValue>) {
    let mut values = HashMap::new();
    let mut allowed = Vec::new();
    for (i, state) in states.iter().enumerate() {
        allowed.push(format!(":s{i}"));
        values.insert(format!(":s{i}"), s(state.as_str()));
    }
    (format!("#state IN ({})", allowed.join(", ")), values)
}

/// Whether a TransactWriteItems failure was a condition check, and on which items.
fn cancelled_items(
    err: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
    >,
) -> Option<Vec<bool>> {
    let service = err.as_service_error()?;
    match service {
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(e) => {
            Some(
                e.cancellation_reasons()
                    .iter()
                    .map(|r| r.code() == Some("ConditionalCheckFailed"))
                    .collect(),
            )
        }
        _ => None,
    }
}

impl Ledger for DynamoLedger {
    async fn read(
        &self,
        lane: &Lane,
        release: &ReleaseId,
    ) -> PortResult<(Option<LaneHead>, Option<ReleaseRecord>)> {
        let keys = KeysAndAttributes::builder()
            .keys(head_key(lane))
            .keys(release_key(release))
            .consistent_read(true)
            .build()
            .map_err(|e| PortError::new("dynamodb:BatchGetItem", e.to_string()))?;
        let out = self
            .client
            .batch_get_item()
            .request_items(&self.table, keys)
            .send()
            .await
            .map_err(|e| port_error("dynamodb:BatchGetItem", e))?;
        if out
            .unprocessed_keys()
            .is_some_and(|u| u.values().any(|k| !k.keys().is_empty()))
        {
            return Err(PortError::new(
                "dynamodb:BatchGetItem",
                "keys left unprocessed (throttled)",
            )
            .retryable());
        }
        let mut head = None;
        let mut record = None;
        for item in out
            .responses()
            .and_then(|r| r.get(&self.table))
            .into_iter()
            .flatten()
        {
            match get_s(item, "sk").as_deref() {
                Some("head") => head = Some(decode_head(item)?),
                Some("release") => record = Some(decode_release(item)?),
                _ => {}
            }
        }
        Ok((head, record))
    }

    async fn head(&self, lane: &Lane) -> PortResult<Option<LaneHead>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(head_key(lane)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("dynamodb:GetItem", e))?;
        out.item().map(decode_head).transpose()
    }

    async fn release(&self, id: &ReleaseId) -> PortResult<Option<ReleaseRecord>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(release_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("dynamodb:GetItem", e))?;
        out.item().map(decode_release).transpose()
    }

    async fn claim(&self, claim: Claim<'_>) -> PortResult<ClaimOutcome> {
        let release = claim.release;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(encode_release(release)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error)?;
        let mut items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder()
                .update(self.head_claimed(&claim)?)
                .build(),
        ];
        if let Some(old) = claim.supersedes {
            items.push(
                TransactWriteItem::builder()
                    .update(self.superseded(old, &release.id)?)
                    .build(),
            );
        }
        if let Some(retried) = claim.retries {
            items.push(
                TransactWriteItem::builder()
                    .update(self.retried(retried, &release.id)?)
                    .build(),
            );
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(ClaimOutcome::Claimed),
            Err(err) => match cancelled_items(&err) {
                Some(failed) if failed.first() == Some(&true) => Ok(ClaimOutcome::AlreadyClaimed),
                Some(failed) if failed.iter().any(|f| *f) => Ok(ClaimOutcome::HeadMoved),
                // Cancelled for a conflict with a concurrent transaction: read again.
                Some(_) if err.code() == Some("TransactionCanceledException") => {
                    Ok(ClaimOutcome::HeadMoved)
                }
                _ => Err(port_error("dynamodb:TransactWriteItems", err)),
            },
        }
    }

    async fn update(
        &self,
        id: &ReleaseId,
        guard: Guard,
        update: ReleaseUpdate,
    ) -> PortResult<Option<ReleaseRecord>> {
        let expression = release_expression(guard, &update);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(release_key(id)))
            .update_expression(expression.update)
            .condition_expression(expression.condition)
            .set_expression_attribute_names(Some(expression.names))
            .set_expression_attribute_values(Some(expression.values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => out.attributes().map(decode_release).transpose(),
            Err(err) if failed_condition(&err) => Ok(None),
            Err(err) => Err(port_error("dynamodb:UpdateItem", err)),
        }
    }

    async fn settle(
        &self,
        release: &ReleaseRecord,
        guard: Guard,
        update: ReleaseUpdate,
        head: HeadChange,
    ) -> PortResult<bool> {
        let expression = release_expression(guard, &update);
        let release_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(release_key(&release.id)))
            .update_expression(expression.update)
            .condition_expression(expression.condition)
            .set_expression_attribute_names(Some(expression.names))
            .set_expression_attribute_values(Some(expression.values))
            .build()
            .map_err(build_error)?;
        let head_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(head_key(&release.lane)))
            .condition_expression("in_flight_id = :id")
            .expression_attribute_values(":id", s(release.id.as_str()))
            .expression_attribute_values(":one", n(1));
        let head_update = match head {
            HeadChange::ClearInFlight => head_update
                .update_expression(
                    "SET version = version + :one, last_failed_id = :id, last_failed_tag = :failed_tag, last_failed_digest = :failed_digest REMOVE in_flight_id, in_flight_tag, in_flight_digest",
                )
                .expression_attribute_values(":failed_tag", s(&release.tag))
                .expression_attribute_values(":failed_digest", s(&release.digest)),
            // The history arrives trimmed (the retention rule is the domain's),
            // so the item stays bounded whatever the number of releases.
            HeadChange::KnownGood { pointer, history } => head_update
                .update_expression(
                    "SET version = version + :one, known_good_id = :good, known_good_tag = :good_tag, known_good_digest = :good_digest, history = :history REMOVE in_flight_id, in_flight_tag, in_flight_digest",
                )
                .expression_attribute_values(":good", s(pointer.id.as_str()))
                .expression_attribute_values(":good_tag", s(pointer.tag))
                .expression_attribute_values(":good_digest", s(pointer.digest))
                .expression_attribute_values(
                    ":history",
                    AttributeValue::L(history.iter().map(encode_known_good).collect()),
                ),
        }
        .build()
        .map_err(build_error)?;
        self.transact_release_and_head(release_update, head_update)
            .await
    }

    async fn claim_tag_writes(&self, lane: &Lane) -> PortResult<Option<TagClaim>> {
        // Held by another writer for at most its lease (a claimed write is one
        // PutParameter); a little past it the claim has lapsed and is taken.
        let attempts =
            2 + Duration::from_secs(TAG_CLAIM_LEASE).as_millis() / CLAIM_RETRY_INTERVAL.as_millis();
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(CLAIM_RETRY_INTERVAL).await;
            }
            if let Some(claim) = self.try_claim_tag_writes(lane).await? {
                return Ok(Some(claim));
            }
        }
        Ok(None)
    }

    async fn release_tag_claim(
        &self,
        lane: &Lane,
        claim: &TagClaim,
        written: Option<i64>,
    ) -> PortResult<()> {
        let update = match written {
            Some(_) => "REMOVE holder, claimed_at SET last_written = :written",
            None => "REMOVE holder, claimed_at",
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(tag_claim_key(lane)))
            .update_expression(update)
            .condition_expression("holder = :token")
            .set_expression_attribute_values(Some(
                [
                    (":token", Some(s(&claim.token))),
                    (":written", written.map(n)),
                ]
                .into_iter()
                .filter_map(|(name, value)| value.map(|v| (name.to_owned(), v)))
                .collect(),
            ))
            .send()
            .await;
        // Not ours any more (another claim replaced it): nothing to give back.
        applied(result).map(|_| ())
    }
}

impl DynamoLedger {
    /// One attempt: taken (with what the last holder wrote) or held by another.
    async fn try_claim_tag_writes(&self, lane: &Lane) -> PortResult<Option<TagClaim>> {
        let now = now();
        let token = claim_token();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(tag_claim_key(lane)))
            .update_expression("SET holder = :token, claimed_at = :now")
            .condition_expression("attribute_not_exists(holder) OR claimed_at < :lapsed")
            .expression_attribute_values(":token", s(&token))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":lapsed", n(now.saturating_sub(TAG_CLAIM_LEASE)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let last_written = out
                    .attributes()
                    .and_then(|old| old.get("last_written"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok());
                Ok(Some(TagClaim {
                    token,
                    last_written,
                }))
            }
            Err(err) if failed_condition(&err) => Ok(None),
            Err(err) => Err(port_error("dynamodb:UpdateItem", err)),
        }
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> PortResult<bool> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) => match cancelled_items(&err) {
                Some(failed) if failed.iter().any(|f| *f) => Ok(false),
                _ => Err(port_error("dynamodb:TransactWriteItems", err)),
            },
        }
    }

    async fn update_head(
        &self,
        lane: &Lane,
        expected_version: u64,
        expression: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> PortResult<bool> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(head_key(lane)))
            .update_expression(expression)
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", n(expected_version))
            .expression_attribute_values(":next", n(expected_version + 1));
        for (k, v) in values {
            update = update.expression_attribute_values(k, v);
        }
        applied(update.send().await)
    }
}

impl DynamoLedger {
    /// One transaction: the release item, then the lane head.
    async fn transact_release_and_head(&self, release: Update, head: Update) -> PortResult<bool> {
        self.transact(vec![
            TransactWriteItem::builder().update(release).build(),
            TransactWriteItem::builder().update(head).build(),
        ])
        .await
    }

    /// A transaction item taking a release through `guard`: conditional on its
    /// from-states; `:state` (the guard's state) and `:now` are bound for `expression`.
    fn release_transition(
        &self,
        id: &ReleaseId,
        guard: Guard,
        expression: &str,
        extra: Vec<(&str, AttributeValue)>,
    ) -> PortResult<Update> {
        let to = guard.to.ok_or_else(|| {
            PortError::new(
                "dynamodb:TransactWriteItems",
                "a transition must name its state",
            )
        })?;
        let (condition, mut values) = state_condition(guard.from);
        values.insert(":state".to_owned(), s(to.as_str()));
        values.insert(":now".to_owned(), n(now()));
        for (k, v) in extra {
            values.insert(k.to_owned(), v);
        }
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(release_key(id)))
            .update_expression(expression)
            .condition_expression(condition)
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_error)
    }
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> PortError {
    PortError::new("dynamodb:TransactWriteItems", e.to_string())
}

impl RollbackLedger for DynamoLedger {
    async fn roll_back(&self, write: RollbackWrite<'_>) -> PortResult<bool> {
        let left = &write.rolling_back.release.id;
        let head = Update::builder()
            .table_name(&self.table)
            .set_key(Some(head_key(write.lane)))
            .update_expression(
                "SET version = :next, frozen = :true, history = :history, known_good_id = :good, known_good_tag = :good_tag, known_good_digest = :good_digest, rolling_back = :rolling_back REMOVE in_flight_id, in_flight_tag, in_flight_digest ADD bad_releases :bad",
            )
            .condition_expression("version = :expected AND attribute_not_exists(rolling_back)")
            .expression_attribute_values(":expected", n(write.expected_head_version))
            .expression_attribute_values(":next", n(write.expected_head_version + 1))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(
                ":history",
                AttributeValue::L(write.history.iter().map(encode_known_good).collect()),
            )
            .expression_attribute_values(":good", s(write.target.id.as_str()))
            .expression_attribute_values(":good_tag", s(&write.target.tag))
            .expression_attribute_values(":good_digest", s(&write.target.digest))
            .expression_attribute_values(":rolling_back", encode_rollback(write.rolling_back))
            .expression_attribute_values(":bad", AttributeValue::Ss(vec![left.to_string()]))
            .build()
            .map_err(build_error)?;
        // The state the release leaves is copied within the write, so its
        // ROLLED_BACK event can name it without a read before the rollback.
        let release = self.release_transition(
            left,
            write.guard,
            "SET rolled_back_from = #state, #state = :state, reason = :reason, updated_at = :now REMOVE interrupted",
            vec![(":reason", s(&write.rolling_back.reason))],
        )?;
        self.transact_release_and_head(release, head).await
    }

    async fn finish_rollback(
        &self,
        lane: &Lane,
        rollback: &RollbackInProgress,
        guard: Guard,
    ) -> PortResult<bool> {
        let id = &rollback.release.id;
        let head = Update::builder()
            .table_name(&self.table)
            .set_key(Some(head_key(lane)))
            .update_expression("SET version = version + :one REMOVE rolling_back")
            .condition_expression("rolling_back.id = :id")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":id", s(id.as_str()))
            .build()
            .map_err(build_error)?;
        let release = self.release_transition(
            id,
            guard,
            "SET #state = :state, updated_at = :now",
            Vec::new(),
        )?;
        self.transact_release_and_head(release, head).await
    }

    async fn mark_rollback(
        &self,
        lane: &Lane,
        release: &ReleaseId,
        interrupted: bool,
    ) -> PortResult<bool> {
        // Taking the resumption is conditional on the mark: one delivery wins.
        let condition = if interrupted {
            "rolling_back.id = :id"
        } else {
            "rolling_back.id = :id AND rolling_back.interrupted = :true"
        };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(head_key(lane)))
            .update_expression("SET version = version + :one, rolling_back.interrupted = :flag")
            .condition_expression(condition)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":id", s(release.as_str()))
            .expression_attribute_values(":flag", AttributeValue::Bool(interrupted));
        if !interrupted {
            update = update.expression_attribute_values(":true", AttributeValue::Bool(true));
        }
        applied(update.send().await)
    }

    async fn hold(&self, lane: &Lane, expected: u64, push: &HeldPush) -> PortResult<bool> {
        let mut values = vec![(":tag", s(&push.tag)), (":digest", s(&push.digest))];
        let expression = match push.pushed_at {
            Some(at) => {
                values.push((":at", n(at.epoch_millis())));
                "SET version = :next, held_tag = :tag, held_digest = :digest, held_pushed_at_ms = :at"
            }
            None => {
                "SET version = :next, held_tag = :tag, held_digest = :digest REMOVE held_pushed_at_ms"
            }
        };
        self.update_head(lane, expected, expression, values).await
    }

    async fn unfreeze(&self, lane: &Lane, expected: u64) -> PortResult<bool> {
        self.update_head(
            lane,
            expected,
            "SET version = :next, frozen = :false REMOVE held_tag, held_digest, held_pushed_at_ms",
            vec![(":false", AttributeValue::Bool(false))],
        )
        .await
    }
}

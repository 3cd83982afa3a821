//! AWS adapters for ferry's ports, the shapes of the AWS events ferry consumes,
//! and the handlers the Lambda binaries wrap.

pub mod alarms;
pub mod clients;
pub mod config_source;
pub mod ecr;
pub mod ecs;
pub mod error;
pub mod events;
pub mod handlers;
pub mod inbound;
pub mod ledger;
pub mod metrics;
pub mod runtime;
pub mod secrets;
pub mod ssm;
pub mod timers;

use std::sync::Arc;

use aws_config::SdkConfig;
use ferry_core::config::Config;
use ferry_core::engine::{Engine, Ports};

/// The AWS SDK adapters behind every port.
pub struct AwsPorts;

impl Ports for AwsPorts {
    type Ledger = ledger::DynamoLedger;
    type Ecs = ecs::EcsAdapter;
    type Parameters = ssm::SsmParameters;
    type Secrets = secrets::SecretsExistence;
    type Registry = ecr::EcrRegistry;
    type Events = events::EventBus;
    type Alarms = alarms::CloudWatchAlarms;
    type Timers = timers::SchedulerTimers;
    type Metrics = metrics::EmfMetrics;
}

pub type AwsEngine = Engine<AwsPorts>;

/// Environment variables the template sets on every function.
pub const ENV_LEDGER_TABLE: &str = "FERRY_LEDGER_TABLE";
pub const ENV_EVENT_BUS: &str = "FERRY_EVENT_BUS";
/// The function a bake timer invokes when the bake ends (ferry-watch's ARN).
pub const ENV_BAKE_TARGET_ARN: &str = "FERRY_BAKE_TARGET_ARN";
/// The role EventBridge Scheduler assumes to invoke it.
pub const ENV_SCHEDULER_ROLE_ARN: &str = "FERRY_SCHEDULER_ROLE_ARN";
/// Optional: the SQS queue a bake timer that could not invoke its target goes to.
pub const ENV_BAKE_DEAD_LETTER_ARN: &str = "FERRY_BAKE_DEAD_LETTER_ARN";

pub fn engine(
    sdk: &SdkConfig,
    config: Arc<Config>,
    table: &str,
    bus: &str,
    timer: &timers::TimerTarget,
) -> AwsEngine {
    engine_observed(sdk, config, table, bus, timer, None::<NoInterceptor>)
}

/// Like [`engine`], with an interceptor on every client (benchmarks count calls
/// and round trips with it).
pub fn engine_observed<I>(
    sdk: &SdkConfig,
    config: Arc<Config>,
    table: &str,
    bus: &str,
    timer: &timers::TimerTarget,
    interceptor: Option<I>,
) -> AwsEngine
where
    I: aws_sdk_ecs::config::Intercept + Clone + 'static,
{
    macro_rules! client {
        ($sdk_crate:ident) => {{
            let mut builder = $sdk_crate::config::Builder::from(sdk);
            if let Some(i) = interceptor.clone() {
                builder = builder.interceptor(i);
            }
            $sdk_crate::Client::from_conf(builder.build())
        }};
    }
    let ssm = client!(aws_sdk_ssm);
    Engine {
        config,
        ledger: ledger::DynamoLedger::new(client!(aws_sdk_dynamodb), table),
        ecs: ecs::EcsAdapter::new(client!(aws_sdk_ecs)),
        params: ssm::SsmParameters::new(ssm.clone()),
        secrets: secrets::SecretsExistence::new(client!(aws_sdk_secretsmanager), ssm),
        registry: ecr::EcrRegistry::new(client!(aws_sdk_ecr)),
        events: events::EventBus::new(client!(aws_sdk_eventbridge), bus),
        alarms: alarms::CloudWatchAlarms::new(client!(aws_sdk_cloudwatch)),
        timers: timers::SchedulerTimers::new(client!(aws_sdk_scheduler), timer.clone()),
        metrics: metrics::EmfMetrics,
    }
}

/// The absence of an interceptor.
#[derive(Debug, Clone)]
pub struct NoInterceptor;

impl aws_sdk_ecs::config::Intercept for NoInterceptor {
    fn name(&self) -> &'static str {
        "NoInterceptor"
    }
}

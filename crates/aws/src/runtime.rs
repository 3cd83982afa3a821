//! What every function sets up for its execution environment: SDK clients, its
//! settings (environment variables), the config, the engine.
//!
//! Nothing here crashes the function. Missing settings, or a config that is
//! missing or broken, answer every invocation with the config error (not
//! retried: it takes a human to fix) and nothing in AWS changes. A config read
//! that failed for a reason retrying can help (SSM throttling, 5xx, a timeout)
//! is not kept: that invocation answers a retryable error, and the next one
//! reads the config again. The config is first read at cold start, before the
//! first invocation, and the engine is built once it has been read.

use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use futures_util::lock::Mutex;

use crate::config_source::ConfigSourceError;
use crate::handlers::HandlerError;
use crate::timers::TimerTarget;
use crate::{
    AwsEngine, ENV_BAKE_DEAD_LETTER_ARN, ENV_BAKE_TARGET_ARN, ENV_EVENT_BUS, ENV_LEDGER_TABLE,
    ENV_SCHEDULER_ROLE_ARN,
};

/// Where Lambda puts the function's region.
pub const ENV_REGION: &str = "AWS_REGION";

/// What a function needs from its environment besides the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The DynamoDB release ledger ([`ENV_LEDGER_TABLE`]).
    pub table: String,
    /// The EventBridge bus ferry publishes its release events to ([`ENV_EVENT_BUS`]).
    pub bus: String,
    /// The function's region: ECR images of direct deploys and unfreezes are looked up there.
    pub region: String,
    /// What a bake timer invokes, and as whom ([`ENV_BAKE_TARGET_ARN`],
    /// [`ENV_SCHEDULER_ROLE_ARN`], optionally [`ENV_BAKE_DEAD_LETTER_ARN`]).
    pub timer: TimerTarget,
}

/// A setting the function cannot start without. Never retryable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartupError {
    #[error("{variable} is not set; {hint}")]
    NotSet {
        variable: &'static str,
        hint: &'static str,
    },
}

/// The settings in `env` (a variable that is empty counts as unset); `region`
/// is the one the SDK resolved (from `AWS_REGION` on Lambda), if any.
pub fn settings_from(
    env: impl Fn(&str) -> Option<String>,
    region: Option<String>,
) -> Result<Settings, StartupError> {
    let required = |variable: &'static str, hint: &'static str| {
        env(variable)
            .filter(|v| !v.trim().is_empty())
            .ok_or(StartupError::NotSet { variable, hint })
    };
    let table = required(
        ENV_LEDGER_TABLE,
        "template.yaml sets it to the ledger table's name (the DynamoDB table ferry records releases in)",
    )?;
    let bus = required(
        ENV_EVENT_BUS,
        "template.yaml sets it to the name of the EventBridge bus ferry publishes its release events to (`default`)",
    )?;
    let target_arn = required(
        ENV_BAKE_TARGET_ARN,
        "template.yaml sets it to the ARN of the function a bake timer invokes when the bake ends (ferry-watch)",
    )?;
    let role_arn = required(
        ENV_SCHEDULER_ROLE_ARN,
        "template.yaml sets it to the ARN of the role EventBridge Scheduler assumes to invoke that function (SchedulerRole)",
    )?;
    let dead_letter_arn = env(ENV_BAKE_DEAD_LETTER_ARN).filter(|v| !v.trim().is_empty());
    let region = region
        .filter(|r| !r.trim().is_empty())
        .ok_or(StartupError::NotSet {
            variable: ENV_REGION,
            hint: "Lambda sets it for every function; elsewhere set it (or AWS_DEFAULT_REGION) to the region ferry runs in",
        })?;
    Ok(Settings {
        table,
        bus,
        region,
        timer: TimerTarget {
            target_arn,
            role_arn,
            dead_letter_arn,
        },
    })
}

/// A value built once (the engine), after a load that may fail (reading the
/// config). A failure retrying cannot help is kept and answers every later
/// call without loading again; a retryable one is not kept, so the next call
/// loads again.
pub struct Lazy<T> {
    slot: Mutex<Option<Result<Arc<T>, String>>>,
}

impl<T> Default for Lazy<T> {
    fn default() -> Self {
        Lazy {
            slot: Mutex::new(None),
        }
    }
}

impl<T> Lazy<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The value, loading it with `load` unless it is built or failed for good.
    /// Calls wait for each other, so one load runs at a time.
    pub async fn get_or_load<F, Fut>(&self, load: F) -> Result<Arc<T>, HandlerError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ConfigSourceError>>,
    {
        let mut slot = self.slot.lock().await;
        match &*slot {
            Some(Ok(value)) => return Ok(Arc::clone(value)),
            Some(Err(message)) => {
                return Err(HandlerError::ConfigUnavailable {
                    message: message.clone(),
                    retryable: false,
                })
            }
            None => {}
        }
        match load().await {
            Ok(value) => {
                let value = Arc::new(value);
                *slot = Some(Ok(Arc::clone(&value)));
                Ok(value)
            }
            Err(error) => {
                let retryable = error.is_retryable();
                let message = error.to_string();
                if !retryable {
                    *slot = Some(Err(message.clone()));
                }
                Err(HandlerError::ConfigUnavailable { message, retryable })
            }
        }
    }
}

pub struct Ferry {
    sdk: SdkConfig,
    settings: Result<Settings, StartupError>,
    engine: Lazy<AwsEngine>,
}

impl Ferry {
    /// Sets the function up from its environment and reads the config.
    pub async fn from_env() -> Ferry {
        init_tracing();
        let sdk = crate::clients::load().await;
        let region = sdk.region().map(|r| r.to_string());
        let settings = settings_from(|name| std::env::var(name).ok(), region);
        let ferry = Ferry::new(sdk, settings);
        match ferry.engine().await {
            Ok(_) => {}
            Err(error) if error.is_retryable() => {
                tracing::warn!(%error, "could not read ferry's config; the next invocation reads it again");
            }
            Err(error) => tracing::error!(%error, "ferry cannot start"),
        }
        ferry
    }

    /// A function with these clients and settings; nothing is read yet.
    pub fn new(sdk: SdkConfig, settings: Result<Settings, StartupError>) -> Ferry {
        Ferry {
            sdk,
            settings,
            engine: Lazy::new(),
        }
    }

    /// The engine and the function's region, once the config has been read.
    pub async fn engine(&self) -> Result<(Arc<AwsEngine>, &str), HandlerError> {
        let settings = self
            .settings
            .as_ref()
            .map_err(|error| HandlerError::ConfigUnavailable {
                message: error.to_string(),
                retryable: false,
            })?;
        let engine = self
            .engine
            .get_or_load(|| async {
                let ssm = aws_sdk_ssm::Client::new(&self.sdk);
                let config = crate::config_source::load(&ssm).await?;
                Ok(crate::engine(
                    &self.sdk,
                    config,
                    &settings.table,
                    &settings.bus,
                    &settings.timer,
                ))
            })
            .await?;
        Ok((engine, settings.region.as_str()))
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn init_tracing() {
    // RUST_LOG is a bare level here ("info", "debug"): a full filter would pull
    // a regex engine into every binary.
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .json()
        .with_max_level(level)
        .with_target(false)
        .without_time()
        .with_current_span(false)
        .try_init();
}

/// The whole `main` of a ferry function: set up once, then answer every
/// invocation with `handler`, classifying its failures (see [`crate::handlers::respond`]).
#[macro_export]
macro_rules! serve {
    ($handler:path) => {{
        let ferry = $crate::runtime::Ferry::from_env().await;
        let ferry = &ferry;
        lambda_runtime::run(lambda_runtime::service_fn(
            move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
                let result = match ferry.engine().await {
                    Ok((engine, region)) => {
                        $handler(&engine, region, event.payload, $crate::runtime::now()).await
                    }
                    Err(e) => Err(e),
                };
                Ok::<_, lambda_runtime::Error>($crate::handlers::respond(result)?)
            },
        ))
        .await
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::ports::PortError;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    const WATCH_ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:ferry-watch";
    const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/ferry-SchedulerRole-1A2B3C";
    const QUEUE_ARN: &str =
        "arn:aws:sqs:eu-west-1:123456789012:ferry-FailedInvocationsQueue-1A2B3C";

    const TEMPLATE: [(&str, &str); 5] = [
        (ENV_LEDGER_TABLE, "ferry-LedgerTable-1A2B3C"),
        (ENV_EVENT_BUS, "default"),
        (ENV_BAKE_TARGET_ARN, WATCH_ARN),
        (ENV_SCHEDULER_ROLE_ARN, ROLE_ARN),
        (ENV_BAKE_DEAD_LETTER_ARN, QUEUE_ARN),
    ];

    /// The template's variables less `missing`.
    fn template_without(missing: &str) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(&str, &str)> = TEMPLATE
            .iter()
            .copied()
            .filter(|(k, _)| *k != missing)
            .collect();
        env(&vars)
    }

    fn region() -> Option<String> {
        Some("eu-west-1".to_owned())
    }

    fn throttled() -> ConfigSourceError {
        ConfigSourceError::Parameter {
            name: "/ferry/config".to_owned(),
            source: PortError::new("ssm:GetParameter", "Rate exceeded")
                .with_code("ThrottlingException")
                .retryable(),
        }
    }

    #[test]
    fn the_templates_variables_and_a_region_are_the_settings() {
        assert_eq!(
            settings_from(env(&TEMPLATE), region()),
            Ok(Settings {
                table: "ferry-LedgerTable-1A2B3C".to_owned(),
                bus: "default".to_owned(),
                region: "eu-west-1".to_owned(),
                timer: TimerTarget {
                    target_arn: WATCH_ARN.to_owned(),
                    role_arn: ROLE_ARN.to_owned(),
                    dead_letter_arn: Some(QUEUE_ARN.to_owned()),
                },
            })
        );
    }

    #[test]
    fn a_missing_bake_target_is_a_startup_error_naming_the_variable_and_what_to_set() {
        let error = settings_from(template_without(ENV_BAKE_TARGET_ARN), region());
        let Err(error) = error else {
            panic!("no silent default target: {error:?}");
        };
        let message = error.to_string();
        assert!(
            message.starts_with("FERRY_BAKE_TARGET_ARN is not set; template.yaml sets it")
                && message.contains("ferry-watch"),
            "{message}"
        );
    }

    #[test]
    fn a_missing_scheduler_role_is_a_startup_error_naming_the_variable_and_what_to_set() {
        let error = settings_from(template_without(ENV_SCHEDULER_ROLE_ARN), region());
        let Err(error) = error else {
            panic!("no silent default role: {error:?}");
        };
        let message = error.to_string();
        assert!(
            message.starts_with("FERRY_SCHEDULER_ROLE_ARN is not set; template.yaml sets it")
                && message.contains("SchedulerRole"),
            "{message}"
        );
    }

    #[test]
    fn the_bake_dead_letter_queue_is_optional() {
        for vars in [
            &TEMPLATE[..4],
            &[
                TEMPLATE[0],
                TEMPLATE[1],
                TEMPLATE[2],
                TEMPLATE[3],
                (ENV_BAKE_DEAD_LETTER_ARN, " "),
            ],
        ] {
            let settings = settings_from(env(vars), region()).expect("settings");
            assert_eq!(settings.timer.dead_letter_arn, None);
            assert_eq!(settings.timer.target_arn, WATCH_ARN);
        }
    }

    #[test]
    fn a_missing_ledger_table_is_a_startup_error_naming_the_variable_and_what_to_set() {
        let error = settings_from(template_without(ENV_LEDGER_TABLE), region());
        let Err(error) = error else {
            panic!("no silent default table: {error:?}");
        };
        let message = error.to_string();
        assert!(
            message.starts_with(
                "FERRY_LEDGER_TABLE is not set; template.yaml sets it to the ledger table's name"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_missing_event_bus_is_a_startup_error_naming_the_variable_and_what_to_set() {
        let error = settings_from(template_without(ENV_EVENT_BUS), region());
        let Err(error) = error else {
            panic!("no silent default bus: {error:?}");
        };
        let message = error.to_string();
        assert!(
            message.starts_with("FERRY_EVENT_BUS is not set; template.yaml sets it")
                && message.contains("`default`"),
            "{message}"
        );
    }

    #[test]
    fn no_region_is_a_startup_error_naming_aws_region() {
        for missing in [None, Some(String::new())] {
            let error = settings_from(env(&TEMPLATE), missing);
            let Err(error) = error else {
                panic!("no silent default region: {error:?}");
            };
            let message = error.to_string();
            assert!(
                message.starts_with("AWS_REGION is not set; Lambda sets it"),
                "{message}"
            );
        }
    }

    #[test]
    fn an_empty_variable_counts_as_not_set() {
        let error = settings_from(
            env(&[
                (ENV_LEDGER_TABLE, " "),
                TEMPLATE[1],
                TEMPLATE[2],
                TEMPLATE[3],
            ]),
            region(),
        );
        assert!(
            matches!(
                error,
                Err(StartupError::NotSet {
                    variable: ENV_LEDGER_TABLE,
                    ..
                })
            ),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn missing_settings_answer_every_invocation_as_a_config_error_that_is_not_retried() {
        let settings = settings_from(template_without(ENV_LEDGER_TABLE), region());
        let ferry = Ferry::new(SdkConfig::builder().build(), settings);
        for _ in 0..2 {
            let Err(error) = ferry.engine().await else {
                panic!("no engine without a ledger table");
            };
            assert!(!error.is_retryable());
            let HandlerError::ConfigUnavailable { message, .. } = &error else {
                panic!("a config error: {error:?}");
            };
            assert!(
                message.contains("FERRY_LEDGER_TABLE is not set"),
                "{message}"
            );
            let reply = crate::handlers::respond(Err(error)).expect("answered, not retried");
            assert_eq!(reply["error"]["kind"], "config");
        }
    }

    #[tokio::test]
    async fn a_retryable_config_failure_is_read_again_on_the_next_invocation() {
        let lazy = Lazy::<&str>::new();
        let loads = AtomicUsize::new(0);
        let first = lazy
            .get_or_load(|| async {
                loads.fetch_add(1, Ordering::SeqCst);
                Err(throttled())
            })
            .await;
        let Err(error) = first else {
            panic!("the first read failed");
        };
        assert!(error.is_retryable(), "{error}");
        assert!(error.to_string().contains("ThrottlingException"), "{error}");

        let second = lazy
            .get_or_load(|| async {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok("engine")
            })
            .await;
        assert_eq!(second.ok().as_deref(), Some(&"engine"));
        assert_eq!(loads.load(Ordering::SeqCst), 2, "read again");

        let third = lazy
            .get_or_load(|| async {
                loads.fetch_add(1, Ordering::SeqCst);
                Err(throttled())
            })
            .await;
        assert_eq!(third.ok().as_deref(), Some(&"engine"), "kept once built");
        assert_eq!(loads.load(Ordering::SeqCst), 2, "not read again");
    }

    #[tokio::test]
    async fn a_config_failure_retrying_cannot_help_is_answered_every_time_without_reading_again() {
        let lazy = Lazy::<&str>::new();
        let loads = AtomicUsize::new(0);
        for _ in 0..3 {
            let result = lazy
                .get_or_load(|| async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Err(ConfigSourceError::MissingParameter {
                        name: "/ferry/config".to_owned(),
                    })
                })
                .await;
            let Err(error) = result else {
                panic!("a missing parameter is an error");
            };
            assert!(!error.is_retryable());
            assert!(
                error.to_string().contains("/ferry/config does not exist"),
                "{error}"
            );
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "read once");
    }
}

//! What every function sets up once per cold start: SDK clients, the config,
//! the engine. A broken or missing config does not crash the function: every
//! invocation answers with the config error (not retried) and nothing in AWS
//! changes.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config_source::ConfigSourceError;
use crate::handlers::HandlerError;
use crate::{AwsEngine, ENV_EVENT_BUS, ENV_LEDGER_TABLE};

pub struct Ferry {
    engine: Result<AwsEngine, Arc<str>>,
    config_error: Option<ConfigSourceError>,
    region: String,
}

impl Ferry {
    pub async fn from_env() -> Ferry {
        init_tracing();
        let sdk = crate::clients::load().await;
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".to_owned());
        let table = std::env::var(ENV_LEDGER_TABLE).unwrap_or_else(|_| "ferry-ledger".to_owned());
        let bus = std::env::var(ENV_EVENT_BUS).unwrap_or_else(|_| "default".to_owned());
        let ssm = aws_sdk_ssm::Client::new(&sdk);
        match crate::config_source::load(&ssm).await {
            Ok(config) => Ferry {
                engine: Ok(crate::engine(&sdk, config, &table, &bus)),
                config_error: None,
                region,
            },
            Err(error) => {
                tracing::error!(%error, "ferry cannot start without a valid config");
                Ferry {
                    engine: Err(Arc::from(error.to_string())),
                    config_error: Some(error),
                    region,
                }
            }
        }
    }

    pub fn engine(&self) -> Result<(&AwsEngine, &str), HandlerError> {
        match &self.engine {
            Ok(engine) => Ok((engine, &self.region)),
            Err(message) => Err(HandlerError::ConfigUnavailable {
                message: message.to_string(),
                retryable: self
                    .config_error
                    .as_ref()
                    .is_some_and(ConfigSourceError::is_retryable),
            }),
        }
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
        lambda_runtime::run(lambda_runtime::service_fn(
            |event: lambda_runtime::LambdaEvent<serde_json::Value>| async {
                let result = match ferry.engine() {
                    Ok((engine, region)) => {
                        $handler(engine, region, event.payload, $crate::runtime::now()).await
                    }
                    Err(e) => Err(e),
                };
                Ok::<_, lambda_runtime::Error>($crate::handlers::respond(result)?)
            },
        ))
        .await
    }};
}

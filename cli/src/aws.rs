//! The AWS side of the CLI: clients built like the functions' (clients.rs),
//! the stack's table and config parameter discovered from `<stack>-deploy`,
//! and Lambda Invoke of the functions.

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_lambda::primitives::Blob;
use ferry_aws::config_source::{self, ENV_CONFIG_PARAMETER};
use ferry_aws::ENV_LEDGER_TABLE;
use ferry_core::config::Config;
use ferry_core::ports::{Parameters, PortError};
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::args::Global;
use crate::error::CliError;
use crate::request::{Function, Request};

/// One Invoke may take as long as the function's timeout (60 s in template.yaml).
const INVOKE_TIMEOUT: Duration = Duration::from_secs(90);

pub struct Aws {
    pub sdk: SdkConfig,
    pub global: Global,
    lambda: aws_sdk_lambda::Client,
    discovered: OnceCell<Discovered>,
}

#[derive(Debug, Clone, Default)]
struct Discovered {
    table: Option<String>,
    config_parameter: Option<String>,
}

/// What the function answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `{"ok": true, "decisions": [...]}`
    Decisions(Vec<Value>),
    /// `{"ok": false, "error": {"kind", "message"}}`: refused, not retryable.
    Rejected { kind: String, message: String },
}

impl Aws {
    pub async fn new(global: &Global) -> Aws {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(ferry_aws::clients::http_client())
            .retry_config(
                RetryConfig::standard().with_max_attempts(ferry_aws::clients::MAX_ATTEMPTS),
            )
            .timeout_config(ferry_aws::clients::timeouts());
        if let Some(url) = &global.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(region) = &global.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let sdk = loader.load().await;
        // An Invoke runs the function to its end: no attempt timeout shorter than
        // the function's, and no second attempt (the operator runs it again).
        let lambda = aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(&sdk)
                .retry_config(RetryConfig::standard().with_max_attempts(1))
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(5))
                        .operation_attempt_timeout(INVOKE_TIMEOUT)
                        .operation_timeout(INVOKE_TIMEOUT)
                        .build(),
                )
                .build(),
        );
        Aws {
            sdk,
            global: global.clone(),
            lambda,
            discovered: OnceCell::new(),
        }
    }

    pub fn region(&self) -> String {
        self.sdk.region().map(|r| r.to_string()).unwrap_or_default()
    }

    pub fn ledger(&self, table: &str) -> ferry_aws::ledger::DynamoLedger {
        ferry_aws::ledger::DynamoLedger::new(aws_sdk_dynamodb::Client::new(&self.sdk), table)
    }

    pub fn ecs(&self) -> ferry_aws::ecs::EcsAdapter {
        ferry_aws::ecs::EcsAdapter::new(aws_sdk_ecs::Client::new(&self.sdk))
    }

    pub fn registry(&self) -> ferry_aws::ecr::EcrRegistry {
        ferry_aws::ecr::EcrRegistry::new(aws_sdk_ecr::Client::new(&self.sdk))
    }

    pub fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.sdk)
    }

    pub fn parameters(&self) -> ferry_aws::ssm::SsmParameters {
        ferry_aws::ssm::SsmParameters::new(self.ssm())
    }

    pub fn secrets(&self) -> ferry_aws::secrets::SecretsExistence {
        ferry_aws::secrets::SecretsExistence::new(
            aws_sdk_secretsmanager::Client::new(&self.sdk),
            self.ssm(),
        )
    }

    pub fn alarms(&self) -> ferry_aws::alarms::CloudWatchAlarms {
        ferry_aws::alarms::CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&self.sdk))
    }

    fn deploy_function(&self) -> String {
        Function::Deploy.name(&self.global.stack)
    }

    /// `<stack>-deploy`'s FERRY_LEDGER_TABLE and FERRY_CONFIG_PARAMETER, read
    /// once and only when a flag does not name them.
    async fn discover(&self) -> Result<&Discovered, CliError> {
        self.discovered
            .get_or_try_init(|| async {
                if self.global.table.is_some() && self.global.config_parameter.is_some() {
                    return Ok(Discovered::default());
                }
                let function = self.deploy_function();
                let out = self
                    .lambda
                    .get_function_configuration()
                    .function_name(&function)
                    .send()
                    .await
                    .map_err(|e| {
                        let port =
                            ferry_aws::error::port_error("lambda:GetFunctionConfiguration", e);
                        if port.code.as_deref() == Some("ResourceNotFoundException") {
                            CliError::NoFunction {
                                function: function.clone(),
                                stack: self.global.stack.clone(),
                                source: Box::new(port),
                            }
                        } else {
                            CliError::aws(format!("reading {function}'s configuration"), port)
                        }
                    })?;
                let variables = out.environment().and_then(|e| e.variables());
                let var = |name: &str| {
                    variables
                        .and_then(|v| v.get(name))
                        .filter(|v| !v.is_empty())
                        .cloned()
                };
                Ok(Discovered {
                    table: var(ENV_LEDGER_TABLE),
                    config_parameter: var(ENV_CONFIG_PARAMETER),
                })
            })
            .await
    }

    pub async fn table(&self) -> Result<String, CliError> {
        let given = self.global.table.clone();
        self.given_or_discovered(given, |d| d.table.clone(), ENV_LEDGER_TABLE, "--table")
            .await
    }

    pub async fn config_parameter(&self) -> Result<String, CliError> {
        let given = self.global.config_parameter.clone();
        self.given_or_discovered(
            given,
            |d| d.config_parameter.clone(),
            ENV_CONFIG_PARAMETER,
            "--config-parameter",
        )
        .await
    }

    /// The flag's value, else the deploy function's environment variable.
    async fn given_or_discovered(
        &self,
        given: Option<String>,
        pick: impl FnOnce(&Discovered) -> Option<String>,
        variable: &'static str,
        flag: &'static str,
    ) -> Result<String, CliError> {
        if let Some(value) = given {
            return Ok(value);
        }
        pick(self.discover().await?).ok_or_else(|| CliError::NotDiscovered {
            function: self.deploy_function(),
            variable,
            flag,
        })
    }

    /// ferry's config from its parameter, validated as the functions validate it.
    pub async fn config(&self) -> Result<Arc<Config>, CliError> {
        let name = self.config_parameter().await?;
        let params = self.parameters();
        let loaded = config_source::load_from(
            |var| (var == ENV_CONFIG_PARAMETER).then(|| name.clone()),
            |name| async move { params.get(&name).await },
        )
        .await?;
        Ok(loaded)
    }

    /// RequestResponse Invoke of the function that takes `request`.
    pub async fn invoke(&self, request: &Request) -> Result<Reply, CliError> {
        let function = request.function.name(&self.global.stack);
        let body = serde_json::to_vec(&request.payload).unwrap_or_default();
        let out = self
            .lambda
            .invoke()
            .function_name(&function)
            .payload(Blob::new(body))
            .send()
            .await
            .map_err(|e| {
                let port: PortError = ferry_aws::error::port_error("lambda:Invoke", e);
                if port.code.as_deref() == Some("ResourceNotFoundException") {
                    CliError::NoFunction {
                        function: function.clone(),
                        stack: self.global.stack.clone(),
                        source: Box::new(port),
                    }
                } else {
                    CliError::aws(format!("invoking {function}"), port)
                }
            })?;
        let payload = out
            .payload()
            .map(|b| String::from_utf8_lossy(b.as_ref()).into_owned())
            .unwrap_or_default();
        parse_reply(&function, out.function_error(), &payload)
    }
}

/// The function's answer: decisions, a refusal, or a failure (`function_error`
/// set: a retryable error or a crash, with Lambda's error body).
pub fn parse_reply(
    function: &str,
    function_error: Option<&str>,
    payload: &str,
) -> Result<Reply, CliError> {
    let body: Value = serde_json::from_str(payload).unwrap_or(Value::String(payload.to_owned()));
    if let Some(kind) = function_error {
        let message = body
            .get("errorMessage")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| payload.to_owned());
        return Err(CliError::FunctionFailed {
            function: function.to_owned(),
            kind: kind.to_owned(),
            message,
        });
    }
    match body.get("ok").and_then(Value::as_bool) {
        Some(true) => Ok(Reply::Decisions(
            body.get("decisions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        )),
        Some(false) => {
            let error = body.get("error");
            let field = |name: &str| {
                error
                    .and_then(|e| e.get(name))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            Ok(Reply::Rejected {
                kind: field("kind"),
                message: field("message"),
            })
        }
        None => Err(CliError::Unreadable {
            function: function.to_owned(),
            body: payload.chars().take(500).collect(),
        }),
    }
}

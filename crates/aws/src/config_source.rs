//! Where the functions read ferry's configuration: a file (tests, the CLI, the
//! local stack) or the SSM parameter the template names.

use std::sync::Arc;

use ferry_core::config::{Config, ConfigError};

pub const ENV_CONFIG_PARAMETER: &str = "FERRY_CONFIG_PARAMETER";
pub const ENV_CONFIG_FILE: &str = "FERRY_CONFIG_FILE";

#[derive(Debug, thiserror::Error)]
pub enum ConfigSourceError {
    #[error("set {ENV_CONFIG_PARAMETER} to the SSM parameter holding ferry's config (or {ENV_CONFIG_FILE} to a file)")]
    NotConfigured,
    #[error("reading config file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("reading config parameter {name}: {source}")]
    Parameter {
        name: String,
        source: ferry_core::ports::PortError,
    },
    #[error("config parameter {name} does not exist; create it with ferry's TOML config")]
    MissingParameter { name: String },
    #[error("ferry's config ({origin}) is invalid: {source}")]
    Invalid { origin: String, source: ConfigError },
}

impl ConfigSourceError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ConfigSourceError::Parameter { source, .. } if source.retryable)
    }
}

pub async fn load(ssm: &aws_sdk_ssm::Client) -> Result<Arc<Config>, ConfigSourceError> {
    let (origin, text) = if let Ok(path) = std::env::var(ENV_CONFIG_FILE) {
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigSourceError::File {
            path: path.clone(),
            source,
        })?;
        (path, text)
    } else if let Ok(name) = std::env::var(ENV_CONFIG_PARAMETER) {
        use ferry_core::ports::Parameters;
        let params = crate::ssm::SsmParameters::new(ssm.clone());
        let text = params
            .get(&name)
            .await
            .map_err(|source| ConfigSourceError::Parameter {
                name: name.clone(),
                source,
            })?
            .ok_or_else(|| ConfigSourceError::MissingParameter { name: name.clone() })?;
        (format!("SSM parameter {name}"), text)
    } else {
        return Err(ConfigSourceError::NotConfigured);
    };
    Config::from_toml(&text)
        .map(Arc::new)
        .map_err(|source| ConfigSourceError::Invalid { origin, source })
}

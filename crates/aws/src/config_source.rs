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
    let params = crate::ssm::SsmParameters::new(ssm.clone());
    load_from(
        |name| std::env::var(name).ok(),
        |name| async move {
            use ferry_core::ports::Parameters;
            params.get(&name).await
        },
    )
    .await
}

/// [`load`] with its inputs injected: the environment (`env`) and the SSM
/// parameter reader (`read_parameter`, called only when the config is in SSM).
/// An empty variable counts as unset.
pub async fn load_from<Read, Reading>(
    env: impl Fn(&str) -> Option<String>,
    read_parameter: Read,
) -> Result<Arc<Config>, ConfigSourceError>
where
    Read: FnOnce(String) -> Reading,
    Reading: std::future::Future<Output = Result<Option<String>, ferry_core::ports::PortError>>,
{
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let (origin, text) = if let Some(path) = var(ENV_CONFIG_FILE) {
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigSourceError::File {
            path: path.clone(),
            source,
        })?;
        (path, text)
    } else if let Some(name) = var(ENV_CONFIG_PARAMETER) {
        let text = read_parameter(name.clone())
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

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::ports::PortError;
    use std::collections::HashMap;

    const CONFIG: &str = include_str!("../../../infra/ferry.toml");

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    async fn no_parameter_read(name: String) -> Result<Option<String>, PortError> {
        panic!("the parameter {name} is not read")
    }

    #[tokio::test]
    async fn the_config_parameter_is_read_and_parsed() {
        let config = load_from(
            env(&[(ENV_CONFIG_PARAMETER, "/ferry/config")]),
            |name| async move {
                assert_eq!(name, "/ferry/config");
                Ok(Some(CONFIG.to_owned()))
            },
        )
        .await;
        assert!(config.is_ok(), "{:?}", config.err());
    }

    #[tokio::test]
    async fn a_config_file_is_read_instead_of_the_parameter() {
        let path = std::env::temp_dir().join(format!("ferry-config-{}.toml", std::process::id()));
        std::fs::write(&path, CONFIG).expect("a temporary file");
        let file = path.to_string_lossy().into_owned();
        let config = load_from(
            env(&[
                (ENV_CONFIG_FILE, &file),
                (ENV_CONFIG_PARAMETER, "/ferry/config"),
            ]),
            no_parameter_read,
        )
        .await;
        let _ = std::fs::remove_file(&path);
        assert!(config.is_ok(), "{:?}", config.err());
    }

    #[tokio::test]
    async fn no_config_variable_or_an_empty_one_is_not_configured_and_not_retryable() {
        for vars in [vec![], vec![(ENV_CONFIG_PARAMETER, "")]] {
            let error = load_from(env(&vars), no_parameter_read).await.err();
            assert!(
                matches!(error, Some(ConfigSourceError::NotConfigured)),
                "{error:?}"
            );
            assert!(error.is_some_and(|e| !e.is_retryable()));
        }
    }

    #[tokio::test]
    async fn a_throttled_parameter_read_is_retryable() {
        let error = load_from(env(&[(ENV_CONFIG_PARAMETER, "/ferry/config")]), |_| async {
            Err(PortError::new("ssm:GetParameter", "Rate exceeded")
                .with_code("ThrottlingException")
                .retryable())
        })
        .await
        .err();
        assert!(
            error.as_ref().is_some_and(ConfigSourceError::is_retryable),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_missing_parameter_or_an_invalid_config_is_not_retryable_and_names_the_parameter() {
        let missing = load_from(env(&[(ENV_CONFIG_PARAMETER, "/ferry/config")]), |_| async {
            Ok(None)
        })
        .await
        .err();
        let invalid = load_from(env(&[(ENV_CONFIG_PARAMETER, "/ferry/config")]), |_| async {
            Ok(Some("[apps.shop]\nrepository = 7\n".to_owned()))
        })
        .await
        .err();
        for error in [missing, invalid] {
            let error = error.expect("an error");
            assert!(!error.is_retryable(), "{error}");
            assert!(error.to_string().contains("/ferry/config"), "{error}");
        }
    }
}

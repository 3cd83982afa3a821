//! Existence checks for the secrets task definitions reference. ferry never
//! reads a value: Secrets Manager gets DescribeSecret (metadata only); SSM gets
//! GetParameters without decryption, and the roles hold no kms:Decrypt.

use aws_sdk_secretsmanager::Client as SecretsManager;
use aws_sdk_ssm::Client as Ssm;
use ferry_core::ports::{PortResult, SecretsCheck};

use crate::error::port_error;

#[derive(Clone)]
pub struct SecretsExistence {
    secrets_manager: SecretsManager,
    ssm: Ssm,
}

impl SecretsExistence {
    pub fn new(secrets_manager: SecretsManager, ssm: Ssm) -> Self {
        SecretsExistence {
            secrets_manager,
            ssm,
        }
    }
}

/// Where a `valueFrom` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// The secret's ARN or name, without a `:json-key:version-stage:version-id` suffix.
    SecretsManager(String),
    /// The parameter's name.
    Parameter(String),
}

pub fn classify(reference: &str) -> SecretRef {
    let parts: Vec<&str> = reference.split(':').collect();
    if parts.len() >= 7 && parts[0] == "arn" && parts[2] == "secretsmanager" {
        return SecretRef::SecretsManager(parts[..7].join(":"));
    }
    if parts.len() >= 6 && parts[0] == "arn" && parts[2] == "ssm" {
        let resource = parts[5..].join(":");
        let name = resource.strip_prefix("parameter").unwrap_or(&resource);
        // `parameter/a/b` names `/a/b`; `parameter/db` names `db`.
        let trimmed = name.trim_start_matches('/');
        let name = if trimmed.contains('/') {
            format!("/{trimmed}")
        } else {
            trimmed.to_owned()
        };
        return SecretRef::Parameter(name);
    }
    SecretRef::Parameter(reference.to_owned())
}

impl SecretsCheck for SecretsExistence {
    async fn missing(&self, references: &[String]) -> PortResult<Vec<String>> {
        let mut secrets = Vec::new();
        let mut parameters = Vec::new();
        for reference in references {
            match classify(reference) {
                SecretRef::SecretsManager(id) => secrets.push((reference.clone(), id)),
                SecretRef::Parameter(name) => parameters.push((reference.clone(), name)),
            }
        }
        let describe =
            futures_util::future::join_all(secrets.iter().map(|(reference, id)| async move {
                match self
                    .secrets_manager
                    .describe_secret()
                    .secret_id(id)
                    .send()
                    .await
                {
                    Ok(_) => Ok(None),
                    Err(err)
                        if err
                            .as_service_error()
                            .is_some_and(|e| e.is_resource_not_found_exception()) =>
                    {
                        Ok(Some(reference.clone()))
                    }
                    Err(err) => Err(port_error("secretsmanager:DescribeSecret", err)),
                }
            }));
        // GetParameters takes at most 10 names per call.
        let lookup =
            futures_util::future::join_all(parameters.chunks(10).map(|chunk| async move {
                let names: Vec<String> = chunk.iter().map(|(_, n)| n.clone()).collect();
                let out = self
                    .ssm
                    .get_parameters()
                    .set_names(Some(names))
                    .with_decryption(false)
                    .send()
                    .await
                    .map_err(|e| port_error("ssm:GetParameters", e))?;
                let invalid = out.invalid_parameters();
                Ok::<_, ferry_core::ports::PortError>(
                    chunk
                        .iter()
                        .filter(|(_, n)| invalid.contains(n))
                        .map(|(r, _)| r.clone())
                        .collect::<Vec<_>>(),
                )
            }));
        let (described, looked_up) = futures_util::join!(describe, lookup);
        let mut missing = Vec::new();
        for result in described {
            missing.extend(result?);
        }
        for result in looked_up {
            missing.extend(result?);
        }
        Ok(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_manager_arn_with_json_key_names_the_secret() {
        assert_eq!(
            classify(
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop/db-AbCdEf:password::"
            ),
            SecretRef::SecretsManager(
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop/db-AbCdEf".into()
            )
        );
    }

    #[test]
    fn ssm_parameter_arn_names_the_hierarchical_parameter() {
        assert_eq!(
            classify("arn:aws:ssm:eu-west-1:123456789012:parameter/shop/prod/api-key"),
            SecretRef::Parameter("/shop/prod/api-key".into())
        );
        assert_eq!(
            classify("arn:aws:ssm:eu-west-1:123456789012:parameter/flat"),
            SecretRef::Parameter("flat".into())
        );
        assert_eq!(
            classify("/shop/token"),
            SecretRef::Parameter("/shop/token".into())
        );
    }
}

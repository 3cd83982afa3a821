//! The SSM image-tag parameter.

use aws_sdk_ssm::types::ParameterType;
use aws_sdk_ssm::Client;
use ferry_core::ports::{Parameters, PortResult};

use crate::error::port_error;

#[derive(Clone)]
pub struct SsmParameters {
    client: Client,
}

impl SsmParameters {
    pub fn new(client: Client) -> Self {
        SsmParameters { client }
    }
}

impl Parameters for SsmParameters {
    async fn get(&self, name: &str) -> PortResult<Option<String>> {
        match self.client.get_parameter().name(name).send().await {
            Ok(out) => Ok(out.parameter().and_then(|p| p.value()).map(str::to_owned)),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_parameter_not_found()) =>
            {
                Ok(None)
            }
            Err(err) => Err(port_error("ssm:GetParameter", err)),
        }
    }

    async fn current(&self, name: &str) -> PortResult<Option<(String, i64)>> {
        match self.client.get_parameter().name(name).send().await {
            Ok(out) => Ok(out
                .parameter()
                .and_then(|p| p.value().map(|v| (v.to_owned(), p.version())))),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_parameter_not_found()) =>
            {
                Ok(None)
            }
            Err(err) => Err(port_error("ssm:GetParameter", err)),
        }
    }

    async fn put(&self, name: &str, value: &str) -> PortResult<i64> {
        let out = self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| port_error("ssm:PutParameter", e))?;
        Ok(out.version())
    }

    async fn label(&self, name: &str, version: i64, label: &str) -> PortResult<()> {
        self.client
            .label_parameter_version()
            .name(name)
            .parameter_version(version)
            .labels(label)
            .send()
            .await
            .map_err(|e| port_error("ssm:LabelParameterVersion", e))?;
        Ok(())
    }
}

//! SDK errors → [`PortError`], keeping the service's error code, whether a retry
//! can help, and the SDK error itself as the source.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use ferry_core::ports::PortError;

/// Error codes AWS documents as transient across the services ferry calls.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "RequestThrottled",
    "ServerException",
    "InternalServerError",
    "InternalServiceError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "TransactionInProgressException",
    "LimitExceededException",
];

pub fn port_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().map(str::to_owned);
    let status = err.raw_response().map(|r| r.status().as_u16());
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => {
            code.as_deref()
                .is_some_and(|c| RETRYABLE_CODES.contains(&c))
                || status.is_some_and(|s| s >= 500 || s == 429)
        }
    };
    let message = err
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| match &err {
            SdkError::TimeoutError(_) => "timed out".to_owned(),
            SdkError::DispatchFailure(_) => "could not reach the endpoint".to_owned(),
            _ => format!(
                "{}",
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            ),
        });
    PortError {
        operation,
        code,
        retryable,
        message,
        source: Some(Box::new(err)),
    }
}

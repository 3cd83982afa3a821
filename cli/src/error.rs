//! What can go wrong, what to do about it, and the exit code it ends with.

use ferry_aws::config_source::ConfigSourceError;
use ferry_core::ports::PortError;

/// The process's exit status (documented in `ferry --help` and the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The request was taken, or the release is known-good.
    Ok = 0,
    /// Refused, or the release ended badly.
    Bad = 1,
    /// Bad arguments (clap's own usage errors exit with it too).
    Usage = 2,
    /// Gave up waiting.
    Timeout = 3,
    /// AWS or configuration error.
    Aws = 4,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{what}: {source}; check your credentials, region and endpoint (AWS_ENDPOINT_URL, --endpoint-url)")]
    Aws {
        what: String,
        #[source]
        source: Box<PortError>,
    },
    #[error("function {function} was not found; is ferry deployed as stack `{stack}`? Name it with --stack or FERRY_STACK (and check AWS_ENDPOINT_URL_LAMBDA or --endpoint-url)")]
    NoFunction {
        function: String,
        stack: String,
        #[source]
        source: Box<PortError>,
    },
    #[error("function {function} has no {variable} in its environment; name it with {flag}")]
    NotDiscovered {
        function: String,
        variable: &'static str,
        flag: &'static str,
    },
    #[error("function {function} failed ({kind}): {message}; the request was not completed, run the command again (the functions are idempotent) or read the function's log")]
    FunctionFailed {
        function: String,
        kind: String,
        message: String,
    },
    #[error("function {function} answered something that is not ferry's reply: {body}")]
    Unreadable { function: String, body: String },
    #[error(transparent)]
    Config(Box<ConfigSourceError>),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NotFound(String),
}

impl From<ConfigSourceError> for CliError {
    fn from(error: ConfigSourceError) -> Self {
        CliError::Config(Box::new(error))
    }
}

impl CliError {
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Usage(_) => Exit::Usage,
            CliError::NotFound(_) => Exit::Bad,
            _ => Exit::Aws,
        }
    }

    pub fn aws(what: impl Into<String>, source: PortError) -> Self {
        CliError::Aws {
            what: what.into(),
            source: Box::new(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_documented_numbers() {
        assert_eq!(Exit::Ok.code(), 0);
        assert_eq!(Exit::Bad.code(), 1);
        assert_eq!(Exit::Usage.code(), 2);
        assert_eq!(Exit::Timeout.code(), 3);
        assert_eq!(Exit::Aws.code(), 4);
        for exit in [Exit::Ok, Exit::Bad, Exit::Usage, Exit::Timeout, Exit::Aws] {
            let line = format!("\n  {}  ", exit.code());
            assert!(
                crate::args::EXIT_CODES.contains(&line),
                "{exit:?} undocumented"
            );
        }
    }

    #[test]
    fn aws_and_config_errors_exit_4_and_a_missing_release_exits_1() {
        let port = PortError::new("dynamodb:GetItem", "no such table");
        assert_eq!(CliError::aws("reading", port).exit(), Exit::Aws);
        assert_eq!(CliError::NotFound("x".into()).exit(), Exit::Bad);
        assert_eq!(CliError::Usage("x".into()).exit(), Exit::Usage);
        let missing = ConfigSourceError::MissingParameter { name: "/f".into() };
        assert_eq!(CliError::from(missing).exit(), Exit::Aws);
    }
}

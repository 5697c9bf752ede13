//! One place that decides whether an AWS SDK error is worth retrying.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use handlers::PortError;

/// Error codes that mean "slow down or try again", across DynamoDB, S3 and SES.
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "TransactionConflictException",
    "LimitExceededException",
];

/// Map an SDK error to a [`PortError`]: timeouts, dispatch failures, throttling and 5xx are
/// transient; everything else is permanent.
pub fn classify<E, R>(operation: &'static str, target: &str, error: SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let (message, transient) = match &error {
        SdkError::ServiceError(context) => {
            let service_error = context.err();
            let code = service_error.code().unwrap_or("UnknownError");
            let message = format!(
                "{code}: {}",
                service_error.message().unwrap_or("no message")
            );
            let server_side = format!("{:?}", context.raw()).contains("status: StatusCode(5");
            (message, TRANSIENT_CODES.contains(&code) || server_side)
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            (causes(&error), true)
        }
        _ => (causes(&error), false),
    };
    let target = target.to_string();
    if transient {
        PortError::Transient {
            operation,
            target,
            message,
        }
    } else {
        PortError::Permanent {
            operation,
            target,
            message,
        }
    }
}

/// "dispatch failure: io error: ... Connection refused": the error and its causes, on one line.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

//! One place that decides whether an AWS SDK error is worth retrying.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
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
    R: std::fmt::Debug,
{
    let message = DisplayErrorContext(&error).to_string();
    let transient = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(context) => {
            let code = context.err().code().unwrap_or_default();
            TRANSIENT_CODES.contains(&code)
                || format!("{:?}", context.raw()).contains("status: StatusCode(5")
        }
        _ => false,
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

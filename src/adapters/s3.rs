//! The Objects port on aws-sdk-s3.

use async_trait::async_trait;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use chrono::{DateTime, Utc};
use handlers::ports::{Link, Object, Objects};
use handlers::PortError;

use std::sync::Arc;

use super::{classify, CallBudget};

pub struct S3Objects {
    client: Client,
    /// What signs the client's requests, asked for its expiry when a link is presigned.
    credentials: Option<SharedCredentialsProvider>,
    budget: Option<Arc<CallBudget>>,
}

impl S3Objects {
    pub fn new(client: Client, credentials: Option<SharedCredentialsProvider>) -> Self {
        S3Objects {
            client,
            credentials,
            budget: None,
        }
    }

    /// Calls cut their timeouts to what `budget` says is left.
    pub fn with_budget(self, budget: Arc<CallBudget>) -> Self {
        S3Objects {
            budget: Some(budget),
            ..self
        }
    }

    /// The configuration a call runs with: the client's, its timeouts cut to the budget.
    fn cut(&self) -> aws_sdk_s3::config::Builder {
        let mut builder = aws_sdk_s3::config::Builder::default();
        builder.set_timeout_config(self.budget.as_ref().and_then(|b| b.timeouts()));
        builder
    }
}

#[async_trait]
impl Objects for S3Objects {
    async fn put(&self, object: Object) -> Result<(), PortError> {
        let target = format!("s3://{}/{}", object.bucket, object.key);
        self.client
            .put_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .content_type(&object.content_type)
            .body(ByteStream::from(object.body))
            .customize()
            .config_override(self.cut())
            .send()
            .await
            .map_err(|e| classify("PutObject", &target, e))?;
        Ok(())
    }

    /// The link lives `lifetime`, or less when the credentials that sign it expire sooner (a
    /// Lambda role's session lasts hours): a presigned URL stops working with its credentials,
    /// so the expiry returned is the one the link really has.
    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        lifetime: Duration,
    ) -> Result<Link, PortError> {
        let target = format!("s3://{bucket}/{key}");
        let signed_at = SystemTime::now();
        let credentials_expire = match &self.credentials {
            Some(provider) => provider
                .provide_credentials()
                .await
                .map_err(|e| PortError::Transient {
                    operation: "PresignGetObject",
                    target: target.clone(),
                    message: format!("no credentials to sign the link with: {e}"),
                })?
                .expiry(),
            None => None,
        };
        let lifetime = link_lifetime(lifetime, signed_at, credentials_expire);
        let config = PresigningConfig::builder()
            .start_time(signed_at)
            .expires_in(lifetime)
            .build()
            .map_err(|e| PortError::Permanent {
                operation: "PresignGetObject",
                target: target.clone(),
                message: e.to_string(),
            })?;
        let request = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| classify("PresignGetObject", &target, e))?;
        Ok(Link {
            url: request.uri().to_string(),
            expires: Some(DateTime::<Utc>::from(signed_at + lifetime)),
        })
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), PortError> {
        // S3 answers 204 for a key that is already gone, which is the success we want.
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .customize()
            .config_override(self.cut())
            .send()
            .await
            .map_err(|e| classify("DeleteObject", &format!("s3://{bucket}/{key}"), e))?;
        Ok(())
    }
}

/// The lifetime a link signed at `signed_at` can have: what was asked, cut to the signing
/// credentials' expiry (at least one second, so the link is well formed even then).
fn link_lifetime(
    asked: Duration,
    signed_at: SystemTime,
    credentials_expire: Option<SystemTime>,
) -> Duration {
    let left = credentials_expire
        .map(|at| at.duration_since(signed_at).unwrap_or_default())
        .unwrap_or(asked);
    asked.min(left).max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_lives_no_longer_than_its_credentials() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let week = Duration::from_secs(7 * 24 * 3600);
        let hour = Duration::from_secs(3600);
        assert_eq!(link_lifetime(week, now, None), week);
        assert_eq!(link_lifetime(week, now, Some(now + hour)), hour);
        assert_eq!(link_lifetime(hour, now, Some(now + week)), hour);
        assert_eq!(
            link_lifetime(week, now, Some(now - hour)),
            Duration::from_secs(1)
        );
    }
}

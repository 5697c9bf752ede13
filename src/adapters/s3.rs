//! The Objects port on aws-sdk-s3.

use async_trait::async_trait;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use handlers::ports::{Object, Objects};
use handlers::PortError;

use super::classify;

pub struct S3Objects {
    client: Client,
}

impl S3Objects {
    pub fn new(client: Client) -> Self {
        S3Objects { client }
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
            .send()
            .await
            .map_err(|e| classify("PutObject", &target, e))?;
        Ok(())
    }

    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        expires_in: Duration,
    ) -> Result<String, PortError> {
        let target = format!("s3://{bucket}/{key}");
        let config =
            PresigningConfig::expires_in(expires_in).map_err(|e| PortError::Permanent {
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
        Ok(request.uri().to_string())
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), PortError> {
        // S3 answers 204 for a key that is already gone, which is the success we want.
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("DeleteObject", &format!("s3://{bucket}/{key}"), e))?;
        Ok(())
    }
}

//! The Objects port on aws-sdk-s3.

use async_trait::async_trait;
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

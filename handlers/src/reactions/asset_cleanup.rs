//! PilotForce (`deploy/tables/PilotForce-Assets.json`): an asset's S3 object goes when its item goes.
//!
//! `asset-cleanup` is idempotent by construction: deleting an object that is already gone
//! succeeds, so a re-delivered REMOVE does nothing new.
//!
//! It deletes only in the assets bucket it is given (`PILOTFORCE_ASSETS_BUCKET`), under its
//! prefix (`PILOTFORCE_ASSETS_PREFIX`, default the whole bucket), whatever an item names: a
//! record could otherwise delete any object the worker's role reaches (a proposal PDF in the
//! documents bucket, say). With no bucket configured it deletes nothing and says why; an
//! item whose `s3Url` names another bucket, or whose key is outside the prefix, is refused
//! (parked, for a person to see).

use async_trait::async_trait;
use serde_json::json;

use super::contract::{Idempotency, Reacted, Reaction};
use crate::attribute_names::AttributeNames;
use crate::change::{Change, ChangeKind};
use crate::error::ReactionError;
use crate::ports::Ports;
use crate::settings::{ConfigError, Settings};

#[derive(Debug, Clone)]
pub struct AssetsConfig {
    pub assets_table: String,
    /// The only bucket assets are deleted from; empty: none is, the safe default.
    pub bucket: String,
    /// The only keys deleted start with this (empty: any key of the bucket).
    pub prefix: String,
    /// The application's names of `s3Key` and `s3Url`.
    pub names: AttributeNames,
}

impl AssetsConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(AssetsConfig {
            assets_table: s.table("PILOTFORCE_ASSETS_TABLE"),
            bucket: s.text("PILOTFORCE_ASSETS_BUCKET", ""),
            prefix: s.text("PILOTFORCE_ASSETS_PREFIX", ""),
            names: s.attribute_names("asset-cleanup", &["s3Key", "s3Url"])?,
        })
    }
}

/// S3's longest object key.
const MAX_KEY_BYTES: usize = 1024;

pub struct AssetCleanup {
    config: AssetsConfig,
}

impl AssetCleanup {
    pub fn new(config: AssetsConfig) -> Self {
        AssetCleanup { config }
    }
}

/// Bucket and key from an S3 URL: `https://<bucket>.s3[.<region>].amazonaws.com/<key>`,
/// `https://s3[.<region>].amazonaws.com/<bucket>/<key>` or `s3://<bucket>/<key>`.
pub fn parse_s3_url(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let (host, path) = rest.split_once('/')?;
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let decode = |s: &str| s.replace("%20", " ").replace('+', " ");
    if scheme == "s3" {
        return (!host.is_empty() && !path.is_empty()).then(|| (host.to_string(), decode(path)));
    }
    if let Some(bucket) = host
        .split_once(".s3")
        .map(|(b, _)| b)
        .filter(|_| host.ends_with(".amazonaws.com"))
    {
        return (!bucket.is_empty() && !path.is_empty())
            .then(|| (bucket.to_string(), decode(path)));
    }
    if host.starts_with("s3") && host.ends_with(".amazonaws.com") {
        let (bucket, key) = path.split_once('/')?;
        return (!bucket.is_empty() && !key.is_empty()).then(|| (bucket.to_string(), decode(key)));
    }
    None
}

#[async_trait]
impl Reaction for AssetCleanup {
    fn name(&self) -> &'static str {
        "asset-cleanup"
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::ByConstruction
    }

    fn applies(&self, change: &Change) -> bool {
        change.table == self.config.assets_table && change.kind == ChangeKind::Remove
    }

    async fn react(&self, change: &Change, ports: Ports<'_>) -> Result<Reacted, ReactionError> {
        let skipped = |why: &str| {
            Ok(Reacted {
                result: json!({ "skipped": why }),
                deferred_writes: Vec::new(),
            })
        };
        let bucket = &self.config.bucket;
        if bucket.is_empty() {
            return skipped("no assets bucket is configured (PILOTFORCE_ASSETS_BUCKET): the worker deletes only in the bucket it is given, so nothing was deleted");
        }
        let old = change.latest_image();
        let names = &self.config.names;
        let from_url = names.text(old, "s3Url").and_then(parse_s3_url);
        if let Some((named, _)) = from_url.as_ref().filter(|(named, _)| named != bucket) {
            return Err(ReactionError::Rejected(format!(
                "the asset's s3Url names bucket {:?}, not the assets bucket {bucket:?}: nothing deleted",
                crate::value_rules::short(named)
            )));
        }
        let key = names
            .text(old, "s3Key")
            .map(str::to_string)
            .or_else(|| from_url.map(|(_, k)| k));
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return skipped(&format!(
                "the asset names no object (no {}, no usable {})",
                names.of("s3Key"),
                names.of("s3Url")
            ));
        };
        if key.len() > MAX_KEY_BYTES || !key.starts_with(&self.config.prefix) {
            return Err(ReactionError::Rejected(format!(
                "the asset's key {:?} is not one of the assets bucket's (under {:?}, at most {MAX_KEY_BYTES} bytes): nothing deleted",
                crate::value_rules::short(&key),
                self.config.prefix
            )));
        }
        ports.objects.delete(bucket, &key).await?;
        Ok(Reacted {
            result: json!({ "deleted": format!("s3://{bucket}/{key}") }),
            deferred_writes: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_of_every_style() {
        let expect = |b: &str, k: &str| Some((b.to_string(), k.to_string()));
        assert_eq!(
            parse_s3_url(
                "https://pilotforce-user-assets.s3.amazonaws.com/training/cessna_12345.jpg"
            ),
            expect("pilotforce-user-assets", "training/cessna_12345.jpg")
        );
        assert_eq!(
            parse_s3_url("https://my-bucket.s3.eu-west-1.amazonaws.com/a/b.png?x=1"),
            expect("my-bucket", "a/b.png")
        );
        assert_eq!(
            parse_s3_url("https://s3.us-east-1.amazonaws.com/my-bucket/a/b.png"),
            expect("my-bucket", "a/b.png")
        );
        assert_eq!(parse_s3_url("s3://my-bucket/k"), expect("my-bucket", "k"));
        assert_eq!(parse_s3_url("https://example.com/x"), None);
        assert_eq!(parse_s3_url("not a url"), None);
    }
}

//! A stream record as the worker reads it: the fields it uses, typed, and nothing else.
//!
//! Every path into the worker ends here before the checks of [`super::record`]: a replayed
//! file's text and Lambda's parsed event are deserialized into a [`WireRecord`] directly, and
//! the stream runner's SDK records are converted field by field, without JSON in between.
//! The fields the worker does not use (awsRegion, eventVersion, SizeBytes, ...) keep the types
//! `aws_lambda_events` gives them, so that a record one would refuse the other does too.

use aws_lambda_events::event::dynamodb::{StreamViewType, UserIdentity};
use aws_sdk_dynamodbstreams::types::{AttributeValue as SdkValue, Record};
use handlers::{AttributeValue, Item};
use serde::{Deserialize, Deserializer};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireRecord {
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub event_name: String,
    #[serde(rename = "eventSourceARN", default)]
    pub event_source_arn: Option<String>,
    #[serde(default)]
    pub table_name: Option<String>,
    #[serde(default)]
    pub user_identity: Option<UserIdentity>,
    #[serde(rename = "dynamodb")]
    pub stream: WireStream,
    // Unused, typed as a stream sends them (see the module's header).
    #[serde(default, rename = "awsRegion")]
    _aws_region: String,
    #[serde(default, rename = "eventSource")]
    _event_source: Option<String>,
    #[serde(default, rename = "eventVersion")]
    _event_version: Option<String>,
    #[serde(default, rename = "recordFormat")]
    _record_format: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct WireStream {
    #[serde(rename = "ApproximateCreationDateTime", default)]
    pub created: Option<CreationTime>,
    #[serde(rename = "Keys", default, deserialize_with = "nullish")]
    pub keys: Item,
    #[serde(rename = "NewImage", default, deserialize_with = "nullish")]
    pub new_image: Item,
    #[serde(rename = "OldImage", default, deserialize_with = "nullish")]
    pub old_image: Item,
    #[serde(rename = "SequenceNumber", default)]
    pub sequence_number: Option<String>,
    #[serde(rename = "StreamViewType", default)]
    pub stream_view_type: Option<StreamViewType>,
    #[serde(rename = "SizeBytes", default)]
    _size_bytes: i64,
}

/// `ApproximateCreationDateTime` as it came: epoch seconds (a stream's), or text (the AWS CLI
/// v2 prints ISO-8601), or something else, which is no time.
#[derive(Debug)]
pub(super) enum CreationTime {
    Seconds(f64),
    Text(String),
    Other,
}

impl<'de> Deserialize<'de> for CreationTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = CreationTime;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("epoch seconds or an ISO-8601 time")
            }
            fn visit_f64<E>(self, v: f64) -> Result<CreationTime, E> {
                Ok(CreationTime::Seconds(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<CreationTime, E> {
                Ok(CreationTime::Seconds(v as f64))
            }
            fn visit_i64<E>(self, v: i64) -> Result<CreationTime, E> {
                Ok(CreationTime::Seconds(v as f64))
            }
            fn visit_str<E>(self, v: &str) -> Result<CreationTime, E> {
                Ok(CreationTime::Text(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `null` reads as no attributes, as `aws_lambda_events` reads it.
fn nullish<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Item, D::Error> {
    Ok(Option::<Item>::deserialize(deserializer)?.unwrap_or_default())
}

impl WireRecord {
    /// A record as DynamoDB Streams' GetRecords returns it (its stream's ARN is Lambda's
    /// eventSourceARN), converted without JSON.
    pub(super) fn from_sdk(record: &Record, stream_arn: &str) -> WireRecord {
        let stream = record.dynamodb.as_ref();
        let item = |values: Option<&std::collections::HashMap<String, SdkValue>>| -> Item {
            // Extended in place (as `item::string_key` does): `Item::from(HashMap)` would
            // collect and hash every attribute again.
            let mut item = Item::default();
            item.extend(
                values
                    .into_iter()
                    .flatten()
                    .map(|(name, value)| (name.clone(), AttributeValue::from(value.clone()))),
            );
            item
        };
        WireRecord {
            event_id: record.event_id.clone().unwrap_or_default(),
            event_name: record
                .event_name
                .as_ref()
                .map(|name| name.as_str().to_string())
                .unwrap_or_default(),
            event_source_arn: Some(stream_arn.to_string()),
            table_name: None,
            user_identity: record.user_identity.as_ref().map(|who| {
                let mut identity = UserIdentity::default();
                identity.type_ = who.r#type.clone().unwrap_or_default();
                identity.principal_id = who.principal_id.clone().unwrap_or_default();
                identity
            }),
            stream: WireStream {
                created: stream
                    .and_then(|s| s.approximate_creation_date_time)
                    .map(|at| CreationTime::Seconds(at.as_secs_f64())),
                keys: item(stream.and_then(|s| s.keys.as_ref())),
                new_image: item(stream.and_then(|s| s.new_image.as_ref())),
                old_image: item(stream.and_then(|s| s.old_image.as_ref())),
                sequence_number: stream.and_then(|s| s.sequence_number.clone()),
                stream_view_type: stream.and_then(|s| s.stream_view_type.as_ref()).and_then(
                    |view| match view.as_str() {
                        "NEW_IMAGE" => Some(StreamViewType::NewImage),
                        "OLD_IMAGE" => Some(StreamViewType::OldImage),
                        "NEW_AND_OLD_IMAGES" => Some(StreamViewType::NewAndOldImages),
                        "KEYS_ONLY" => Some(StreamViewType::KeysOnly),
                        _ => None,
                    },
                ),
                _size_bytes: stream.and_then(|s| s.size_bytes).unwrap_or(0),
            },
            _aws_region: record.aws_region.clone().unwrap_or_default(),
            _event_source: record.event_source.clone(),
            _event_version: record.event_version.clone(),
            _record_format: None,
        }
    }
}

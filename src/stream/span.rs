//! Reading a span of a stream back, to replay it: every shard (parents before children, every
//! page) from a time or a sequence number to another, or one shard only; and what of the span
//! the stream no longer holds (DynamoDB Streams keeps records 24 hours).

use aws_sdk_dynamodbstreams::types::{Record, Shard};
use chrono::{DateTime, Utc};
use handlers::sequence_number::SequenceNumber;

use super::error::StreamError;
use super::reader::{sequence_number, Position, StreamReader};

/// Where a span starts or ends: a time, or a sequence number.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    Time(DateTime<Utc>),
    Sequence(String),
}

impl std::str::FromStr for Bound {
    type Err = String;

    fn from_str(text: &str) -> Result<Bound, String> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            SequenceNumber::check(text).map_err(|rule| format!("{text:?} is not {rule}"))?;
            return Ok(Bound::Sequence(text.to_string()));
        }
        DateTime::parse_from_rfc3339(text)
            .map(|at| Bound::Time(at.with_timezone(&Utc)))
            .map_err(|_| {
                format!(
                    "{text:?} is neither a time (RFC 3339, e.g. 2026-12-01T09:00:00Z) nor a \
                     sequence number (21 to 40 digits)"
                )
            })
    }
}

impl Bound {
    /// How `record` compares with the bound: Less when it is before it.
    fn compare(&self, record: &Record) -> std::cmp::Ordering {
        match self {
            Bound::Sequence(bound) => {
                SequenceNumber(sequence_number(record)).cmp(&SequenceNumber(bound))
            }
            Bound::Time(bound) => {
                created(record).map_or(std::cmp::Ordering::Equal, |at| at.cmp(bound))
            }
        }
    }
}

/// The span to read.
#[derive(Debug, Clone, Default)]
pub struct Span {
    pub from: Option<Bound>,
    pub to: Option<Bound>,
    /// Only this shard.
    pub shard: Option<String>,
}

/// One shard's part of the span.
pub struct ShardSpan {
    pub shard_id: String,
    pub records: Vec<Record>,
}

/// What a span read found.
pub struct SpanRead {
    pub shards: Vec<ShardSpan>,
    /// Part of the span is no longer in the stream: why, in a sentence.
    pub gone: Option<String>,
}

/// How long DynamoDB Streams keeps a record.
const RETENTION_HOURS: i64 = 24;

/// The span of every shard of the stream at `arn` (`table` names it in errors), parents
/// first. A `--shard` the stream does not have is an error that lists those it has.
pub async fn read_span(
    reader: &StreamReader,
    arn: &str,
    table: &str,
    span: &Span,
) -> Result<SpanRead, SpanError> {
    let shards = reader.shards(arn, table).await.map_err(StreamError::from)?;
    if let Some(wanted) = &span.shard {
        if !shards.iter().any(|s| s.shard_id.as_deref() == Some(wanted)) {
            let known: Vec<&str> = shards
                .iter()
                .filter_map(|s| s.shard_id.as_deref())
                .collect();
            return Err(SpanError::UnknownShard {
                shard: wanted.clone(),
                known: known.join(", "),
            });
        }
    }
    let mut read = Vec::new();
    let mut oldest: Option<Record> = None;
    for shard in &shards {
        let Some(shard_id) = shard.shard_id.as_deref() else {
            continue;
        };
        if span
            .shard
            .as_deref()
            .is_some_and(|wanted| wanted != shard_id)
        {
            continue;
        }
        let past_end = |record: &Record| {
            span.to
                .as_ref()
                .is_some_and(|to| to.compare(record) == std::cmp::Ordering::Greater)
        };
        let held = reader
            .read_span(arn, shard_id, Position::TrimHorizon, past_end)
            .await
            .map_err(|e| StreamError::Shard {
                shard_id: shard_id.to_string(),
                source: Box::new(StreamError::Service(e.into())),
            })?;
        if let Some(first) = held.first() {
            if oldest.as_ref().is_none_or(|o| created(first) < created(o)) {
                oldest = Some(first.clone());
            }
        }
        let records = held
            .into_iter()
            .filter(|record| {
                span.from
                    .as_ref()
                    .is_none_or(|from| from.compare(record) != std::cmp::Ordering::Less)
            })
            .collect();
        read.push(ShardSpan {
            shard_id: shard_id.to_string(),
            records,
        });
    }
    let gone = gone(&shards, oldest.as_ref(), span, Utc::now());
    Ok(SpanRead { shards: read, gone })
}

/// Whether part of the span is gone: it starts more than 24 hours ago, or the stream's oldest
/// shard has a parent the stream no longer lists (trimmed, and with it its records) and the
/// span starts before the oldest record still held (`oldest`).
fn gone(
    shards: &[Shard],
    oldest: Option<&Record>,
    span: &Span,
    now: DateTime<Utc>,
) -> Option<String> {
    let horizon = now - chrono::Duration::hours(RETENTION_HOURS);
    if let Some(Bound::Time(from)) = &span.from {
        if *from < horizon {
            return Some(format!(
                "what the stream took in from {} to {} is older than the {RETENTION_HOURS} hours                  DynamoDB Streams keeps: the table holds those items' current state",
                from.to_rfc3339(),
                horizon.to_rfc3339()
            ));
        }
    }
    let listed = |id: &str| shards.iter().any(|s| s.shard_id.as_deref() == Some(id));
    let lineage_trimmed = shards
        .first()
        .and_then(|s| s.parent_shard_id.as_deref())
        .is_some_and(|parent| !listed(parent));
    let before_oldest = match (oldest, &span.from) {
        (_, None) | (None, Some(_)) => true,
        (Some(oldest), Some(from)) => from.compare(oldest) == std::cmp::Ordering::Less,
    };
    (lineage_trimmed && before_oldest).then(|| {
        let held = oldest.map_or("none of its records".to_string(), |o| {
            let at = created(o).map_or(String::new(), |at| format!(", taken in {}", at.to_rfc3339()));
            format!("records from {}{at} on", sequence_number(o))
        });
        format!(
            "the stream holds {held}; what came before (its older shards, past the              {RETENTION_HOURS} hours DynamoDB Streams keeps) is gone: the table holds those items'              current state"
        )
    })
}

/// When the stream took the record in.
fn created(record: &Record) -> Option<DateTime<Utc>> {
    let at = record.dynamodb.as_ref()?.approximate_creation_date_time?;
    DateTime::from_timestamp_millis(at.to_millis().ok()?)
}

/// Why a span could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SpanError {
    #[error("the stream has no shard {shard}; it has: {known}")]
    UnknownShard { shard: String, known: String },
    #[error(transparent)]
    Stream(#[from] StreamError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_is_a_time_or_a_sequence_number_and_nothing_else() {
        assert_eq!(
            "000000000000000000123".parse::<Bound>(),
            Ok(Bound::Sequence("000000000000000000123".into()))
        );
        assert!(matches!(
            "2026-12-01T09:00:00+01:00".parse::<Bound>(),
            Ok(Bound::Time(at)) if at.to_rfc3339() == "2026-12-01T08:00:00+00:00"
        ));
        let short = "123".parse::<Bound>().unwrap_err();
        assert!(short.contains("21 to 40"), "{short}");
        let neither = "yesterday".parse::<Bound>().unwrap_err();
        assert!(neither.contains("RFC 3339"), "{neither}");
    }
}

//! `capture`: a span of a table's stream (every shard, parents first, every page; or one
//! shard), or exactly the ranges Lambda's on-failure messages name, written as the Lambda
//! event file `replay` takes as it is (`eventSourceARN` and every field as delivered). It
//! says how many records it wrote and what of the span the stream no longer holds.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::error::{CliError, Exit};
use super::redrive::json_entries;
use crate::adapters::atomic_file::write_atomic;
use crate::decode::table_from_arn;
use crate::stream::get_records::lambda_record;
use crate::stream::on_failure::{self, FetchError};
use crate::stream::reader::StreamReader;
use crate::stream::span::{read_span, Span, SpanError};
use crate::wiring;
use crate::wiring::target::Target;

/// Which stream: a table's current one, or one by its ARN.
pub(super) enum Source {
    Table(String),
    StreamArn(String),
    /// The ranges the on-failure messages in this file name.
    Messages(PathBuf),
}

pub(super) struct CaptureCommand {
    pub source: Source,
    pub span: Span,
    pub target: Target,
    pub output: PathBuf,
}

/// The records read, in Lambda's shape, and a sentence for each part that is gone.
struct Captured {
    records: Vec<Value>,
    gone: Vec<String>,
    what: String,
}

pub(super) async fn run(command: CaptureCommand) -> Result<Exit, CliError> {
    let Some(sdk) = command.target.sdk_config().await else {
        return Err(CliError::Settings(
            "capture reads a stream: it runs on an endpoint or AWS".into(),
        ));
    };
    let reader = StreamReader::new(wiring::dynamodb_client(&sdk), wiring::streams_client(&sdk));
    let captured = match &command.source {
        Source::Messages(path) => from_messages(&reader, path).await?,
        Source::Table(table) => {
            let arn = reader
                .stream_arn(table)
                .await
                .map_err(crate::stream::StreamError::from)?;
            from_stream(&reader, &arn, table, &command.span).await?
        }
        Source::StreamArn(arn) => {
            let table = table_from_arn(arn).ok_or_else(|| {
                CliError::Settings(format!(
                    "{arn:?} is not a stream ARN (arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL)"
                ))
            })?;
            from_stream(&reader, arn, &table, &command.span).await?
        }
    };
    let event = json!({ "Records": captured.records });
    let text = serde_json::to_vec_pretty(&event).map_err(|e| CliError::Output(e.into()))?;
    write_atomic(&command.output, &text).map_err(CliError::Output)?;
    write_schemas(&reader, &captured.records, &command.output).await?;
    println!(
        "wrote {} record(s) of {} to {}: replay it with `ddb-stream-worker replay {}`",
        captured.records.len(),
        captured.what,
        command.output.display(),
        command.output.display()
    );
    for gone in &captured.gone {
        println!("gone: {gone}");
    }
    Ok(match captured.gone.is_empty() {
        true => Exit::Clean,
        // Written, but not all that was asked for: say so in the status too.
        false => Exit::BatchFailed,
    })
}

/// The key schemas of the captured records' tables, as DescribeTable gives them, beside the
/// events (`FILE.schema.json`), where `replay` finds them: a replay then needs no definition
/// of the application's tables. A table that cannot be described is said, not a failure.
async fn write_schemas(
    reader: &StreamReader,
    records: &[Value],
    output: &std::path::Path,
) -> Result<(), CliError> {
    let tables: std::collections::BTreeSet<String> = records
        .iter()
        .filter_map(|r| r["eventSourceARN"].as_str().and_then(table_from_arn))
        .collect();
    let mut schemas = Vec::new();
    for table in &tables {
        match reader.table_schema(table).await {
            Ok(schema) => schemas.push(schema),
            Err(e) => println!("no schema of {table} written beside the events: {e}"),
        }
    }
    if schemas.is_empty() {
        return Ok(());
    }
    let mut path = output.as_os_str().to_owned();
    path.push(".schema.json");
    let text = serde_json::to_vec_pretty(&schemas).map_err(|e| CliError::Output(e.into()))?;
    write_atomic(std::path::Path::new(&path), &text).map_err(CliError::Output)?;
    Ok(())
}

async fn from_stream(
    reader: &StreamReader,
    arn: &str,
    table: &str,
    span: &Span,
) -> Result<Captured, CliError> {
    let read = read_span(reader, arn, table, span)
        .await
        .map_err(|e| match e {
            SpanError::UnknownShard { .. } => CliError::Settings(e.to_string()),
            SpanError::Stream(e) => CliError::Stream(e),
        })?;
    let records = read
        .shards
        .iter()
        .flat_map(|shard| shard.records.iter().map(|r| lambda_record(r, arn)))
        .collect();
    Ok(Captured {
        records,
        gone: read.gone.into_iter().collect(),
        what: format!("{} shard(s) of {table}'s stream", read.shards.len()),
    })
}

async fn from_messages(
    reader: &StreamReader,
    path: &std::path::Path,
) -> Result<Captured, CliError> {
    let mut records = Vec::new();
    let mut gone = Vec::new();
    let entries = json_entries(path)?;
    for (source, entry) in &entries {
        let info = match on_failure::batch_info(entry) {
            Some(Ok(info)) => info,
            Some(Err(e)) => {
                return Err(CliError::Settings(format!(
                    "{source}: its DDBStreamBatchInfo is not Lambda's: {e}"
                )))
            }
            None => {
                return Err(CliError::Settings(format!(
                    "{source} is not a Lambda on-failure message (it has no DDBStreamBatchInfo); \
                     a parked record is replayed with `redrive --file` instead"
                )))
            }
        };
        match on_failure::fetch(reader, &info).await {
            Ok(event) => {
                if let Some(Value::Array(got)) = event.get("Records") {
                    records.extend(got.iter().cloned());
                }
            }
            Err(e @ (FetchError::Trimmed { .. } | FetchError::Gone { .. })) => {
                gone.push(format!("{source}: {e}"))
            }
            Err(FetchError::Service(e)) => return Err(CliError::Service(e)),
        }
    }
    Ok(Captured {
        records,
        gone,
        what: format!(
            "the range(s) of {} message(s) in {}",
            entries.len(),
            path.display()
        ),
    })
}

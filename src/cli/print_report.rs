//! What a run prints: a readable line per record and reaction, or (`--json`) one JSON object
//! per record followed by the batch response. `docs/commands.md` documents the JSON schema.

use std::io::{self, Write};

use handlers::item::describe_keys;

use crate::batch::effects::Effect;
use crate::wiring::output::print_line;

/// `writeln!` for a line a person reads: values from records in it are escaped
/// (`wiring::output::printable`), so no value can start a line of its own or repaint the
/// terminal.
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {
        print_line($out, &format!($($arg)*))
    };
}
use crate::batch::{BatchOutcome, Outcome, RecordReport};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// A line per record and per reaction that applied to it.
    Human,
    /// As [`Format::Human`], with the reactions that did not apply too (`-v`).
    HumanVerbose,
    Json,
}

/// Write one record's report.
///
/// Generic over the writer so that the JSON serializer's many small writes are inlined into a
/// concrete one (the report writer renders into a `Vec`), not each a call through a `dyn`.
pub(super) fn record<W: Write>(
    out: &mut W,
    format: Format,
    report: &RecordReport,
) -> io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer(&mut *out, report)?;
            writeln!(out)
        }
        Format::Human => human_record(out, report, false),
        Format::HumanVerbose => human_record(out, report, true),
    }
}

fn human_record(out: &mut dyn Write, r: &RecordReport, verbose: bool) -> io::Result<()> {
    say!(
        out,
        "#{} {} {} {} (event {}, seq {})",
        r.index,
        r.event_name,
        r.table,
        describe_keys(&r.keys),
        r.event_id,
        r.sequence_number
    )?;
    if r.applied {
        say!(
            out,
            "    applied the record's own change to the embedded table"
        )?;
    }
    if r.already_applied {
        let when = match r.applied_earlier_in_this_run {
            true => "earlier in this run (the input repeats it)",
            false => "by an earlier replay",
        };
        say!(
            out,
            "    already applied {when}: not written again (a re-delivery)"
        )?;
    }
    if let Some(error) = &r.error {
        say!(out, "    FAILED: {error}")?;
    }
    let shown = |outcome: &Outcome| verbose || !matches!(outcome, Outcome::NotApplicable);
    if !r.reactions.iter().any(|reaction| shown(&reaction.outcome)) && r.error.is_none() {
        say!(out, "    no reaction applies (-v lists them)")?;
    }
    for reaction in r
        .reactions
        .iter()
        .filter(|reaction| shown(&reaction.outcome))
    {
        let outcome = match &reaction.outcome {
            Outcome::Done { result } => match result {
                serde_json::Value::Object(map) if !map.keys().all(|k| k == "PK" || k == "SK") => {
                    format!("done {result}")
                }
                _ => "done".to_string(),
            },
            Outcome::Skipped { result } => {
                format!("done, but LEFT OUT what it could not use (named below, at WARN): {result}")
            }
            Outcome::NotSent { result } => format!(
                "NOT SENT: {}",
                handlers::mail::not_sent(result).unwrap_or_default()
            ),
            Outcome::DuplicateSkipped { .. } => {
                "duplicate, skipped (completed by an earlier delivery)".to_string()
            }
            Outcome::NotApplicable => "not applicable".to_string(),
            Outcome::Coalesced { into_record } => {
                format!("coalesced into record #{into_record} (a later record of this batch changes the same thing)")
            }
            Outcome::Parked {
                reason, location, ..
            } => {
                format!("PARKED (no retry can fix it; kept at {location}): {reason}")
            }
            Outcome::Failed {
                reason, retryable, ..
            } => {
                format!(
                    "FAILED ({}): {reason}",
                    if *retryable {
                        "retryable"
                    } else {
                        "not retryable"
                    }
                )
            }
        };
        say!(out, "    {}: {outcome}", reaction.reaction)?;
        for effect in &reaction.effects {
            say!(out, "      {}", describe_effect(effect))?;
        }
    }
    Ok(())
}

pub(super) fn describe_effect(effect: &Effect) -> String {
    match effect {
        Effect::ItemPut { table, keys } => format!("put {table} {}", describe_keys(keys)),
        Effect::ItemUpdated { table, keys } => format!("updated {table} {}", describe_keys(keys)),
        Effect::ItemDeleted { table, keys } => format!("deleted {table} {}", describe_keys(keys)),
        Effect::ObjectStored { bucket, key, bytes } => {
            format!("stored s3://{bucket}/{key} ({bytes} bytes)")
        }
        Effect::ObjectDeleted { bucket, key } => format!("deleted s3://{bucket}/{key}"),
        Effect::MailSent {
            to,
            subject,
            message_id,
        } => {
            format!(
                "mailed {} {subject:?} (message {message_id})",
                to.join(", ")
            )
        }
    }
}

/// The end of a batch: the DynamoDB requests it made, then its response exactly as the
/// Lambda function returns it (the last line of `--json`).
pub(super) fn batch_end(
    out: &mut dyn Write,
    format: Format,
    records: usize,
    outcome: &BatchOutcome,
) -> io::Result<()> {
    match format {
        Format::Json => {
            let summary = serde_json::json!({
                "batch": { "records": records, "settled": outcome.settled, "requests": outcome.requests }
            });
            writeln!(out, "{summary}")?;
        }
        Format::Human | Format::HumanVerbose => {
            let total: u64 = outcome.requests.values().sum();
            let each: Vec<String> = outcome
                .requests
                .iter()
                .map(|(op, n)| format!("{op} {n}"))
                .collect();
            say!(
                out,
                "dynamodb requests: {total}{}",
                if each.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", each.join(", "))
                }
            )?;
            write!(out, "batch response: ")?;
        }
    }
    serde_json::to_writer(&mut *out, &outcome.response)?;
    writeln!(out)
}

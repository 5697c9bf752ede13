//! The body of the fuzz target (`fuzz/fuzz_targets/decode.rs`) and of the stable smoke run in
//! `tests/fuzz_decode.rs`: whatever bytes arrive, decoding them as an event file and as an
//! already-parsed Lambda event must end in records or a clear error, never a panic; and the
//! records then go through every reaction, on a scratch embedded state of their own (tables in
//! memory, files in a temporary directory), where none may fail (each is done, skipped or
//! parked), panic, write outside the state directory or mail more than one plain recipient.

use std::sync::LazyLock;

use handlers::Reaction;

use crate::decode::{decode_value, for_each_record, DecodeError};
use crate::wiring;
use crate::wiring::config::Config;

/// Built once: the fuzzer calls [`decode_and_extract`] hundreds of times a second.
static REACTIONS: LazyLock<Result<Vec<Box<dyn Reaction>>, String>> = LazyLock::new(|| {
    let config = Config::from_lookup(|_| None).map_err(|e| e.to_string())?;
    Ok(wiring::reactions(&config))
});

/// The most records of one input run through the reactions (the rest are only decoded).
const REACTED_RECORDS: usize = 50;

/// Decode `data` both ways, offer every decoded change to every reaction, and run the records
/// through the worker on an embedded state. Returns how many records decoded to a change, or
/// which property the outcome broke.
pub fn decode_and_extract(data: &[u8]) -> Result<usize, String> {
    let reactions = REACTIONS.as_ref().map_err(Clone::clone)?;
    let mut changes = 0;
    let mut decoded = Vec::new();
    let mut offer = |record: crate::decode::StreamRecord| {
        if let Ok(change) = &record.change {
            changes += 1;
            for reaction in reactions {
                if reaction.applies(change) {
                    let _ = reaction.coalesce_key(change);
                }
            }
        }
    };
    let mut keep = |record: crate::decode::StreamRecord| {
        if decoded.len() < REACTED_RECORDS {
            decoded.push(record.clone());
        }
        offer(record);
    };
    if let Err(error) = for_each_record(data, "fuzz", None, &mut keep) {
        check_error(&error, data).map_err(|broken| format!("reading the bytes: {broken}"))?;
    }
    react(&decoded).map_err(|broken| format!("reacting: {broken}"))?;
    if let Ok(value) = serde_json::from_slice(data) {
        match decode_value(value, "fuzz", None) {
            Ok(records) => records.into_iter().for_each(&mut offer),
            Err(error) => check_error(&error, data)
                .map_err(|broken| format!("decoding the parsed event: {broken}"))?,
        }
    }
    Ok(changes)
}

static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Run `records` as one batch on a fresh embedded state (its tables in memory, its files
/// deleted afterwards) and check what no record may do.
fn react(records: &[crate::decode::StreamRecord]) -> Result<(), String> {
    if records.is_empty() {
        return Ok(());
    }
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let parent = std::env::temp_dir().join(format!("dsw-fuzz-{}-{run}", std::process::id()));
    let result = react_in(records, &parent);
    let _ = std::fs::remove_dir_all(&parent);
    result
}

fn react_in(
    records: &[crate::decode::StreamRecord],
    parent: &std::path::Path,
) -> Result<(), String> {
    use crate::batch::{BatchOptions, Outcome};
    let state_dir = parent.join("state");
    let catalog = crate::catalog::Catalog::with_seed_definitions();
    let state = std::sync::Arc::new(
        crate::adapters::embedded::EmbeddedState::open_scratch(&state_dir, catalog.clone())
            .map_err(|e| e.to_string())?,
    );
    let mut config = Config::from_lookup(|_| None).map_err(|e| e.to_string())?;
    config.idempotency.completion_notes = false;
    let worker = wiring::worker(&config, wiring::embedded_adapters(state.clone(), catalog));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let options = BatchOptions {
        apply_own_change: true,
        ..BatchOptions::default()
    };
    let mut unsettled = None;
    let outcome = runtime.block_on(worker.process_batch(records, options, &mut |report| {
        for reaction in &report.reactions {
            let bad = match &reaction.outcome {
                Outcome::Failed { .. } => true,
                Outcome::Parked { panicked, .. } => *panicked,
                _ => false,
            };
            if bad && unsettled.is_none() {
                unsettled = Some(format!(
                    "{} on record {}: {:?}",
                    reaction.reaction, report.index, reaction.outcome
                ));
            }
        }
    }));
    if let Some(failure) = outcome.failure {
        return Err(format!("a record failed: {failure}"));
    }
    if let Some(unsettled) = unsettled {
        return Err(unsettled);
    }
    state
        .compact()
        .map_err(|e| format!("the state is no longer writable: {e}"))?;
    let outside: Vec<_> = std::fs::read_dir(parent)
        .map_err(|e| e.to_string())?
        .flatten()
        .filter(|entry| entry.path() != state_dir)
        .map(|entry| entry.path())
        .collect();
    if !outside.is_empty() {
        return Err(format!("written outside the state directory: {outside:?}"));
    }
    for entry in std::fs::read_dir(state_dir.join("outbox"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let eml = std::fs::read_to_string(entry.path()).map_err(|e| e.to_string())?;
        for to in eml.lines().filter_map(|l| l.strip_prefix("To: ")) {
            if to.contains(',') || handlers::ports::mailbox(to.trim()).is_err() {
                return Err(format!("mail to {to:?}"));
            }
        }
    }
    Ok(())
}

/// An error must say something, and a JSON error must point inside the input: a line it has,
/// and a column of that line (one past its end for an input cut short).
fn check_error(error: &DecodeError, data: &[u8]) -> Result<(), String> {
    if error.to_string().is_empty() {
        return Err("an empty error message".into());
    }
    if let DecodeError::Json { line, column, .. } = error {
        let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
        let Some(text) = line.checked_sub(1).and_then(|i| lines.get(i)) else {
            return Err(format!(
                "{error}: line {line} of a {}-line input",
                lines.len()
            ));
        };
        if *column > text.len() + 1 {
            return Err(format!(
                "{error}: column {column} of a line of {} bytes",
                text.len()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_error(line: usize, column: usize) -> DecodeError {
        DecodeError::Json {
            source_name: "fuzz".into(),
            line,
            column,
            message: "expected value".into(),
        }
    }

    #[test]
    fn a_position_outside_the_input_is_caught() {
        let data = b"{\n  \"Records\": [x]\n}";
        assert!(check_error(&json_error(2, 16), data).is_ok());
        assert!(check_error(&json_error(3, 2), data).is_ok());
        assert!(check_error(&json_error(4, 1), data).is_err(), "no line 4");
        assert!(
            check_error(&json_error(0, 1), data).is_err(),
            "lines count from 1"
        );
        assert!(
            check_error(&json_error(3, 9), data).is_err(),
            "line 3 has 1 byte"
        );
    }
}

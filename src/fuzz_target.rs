//! The body of the fuzz target (`fuzz/fuzz_targets/decode.rs`) and of the stable smoke run in
//! `tests/fuzz_decode.rs`: whatever bytes arrive, decoding them as an event file and as an
//! already-parsed Lambda event, and asking every reaction whether each change concerns it,
//! must end in records or a clear error, never a panic.

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

/// Decode `data` both ways and offer every decoded change to every reaction. Returns how
/// many records decoded to a change, or which property the outcome broke.
pub fn decode_and_extract(data: &[u8]) -> Result<usize, String> {
    let reactions = REACTIONS.as_ref().map_err(Clone::clone)?;
    let mut changes = 0;
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
    if let Err(error) = for_each_record(data, "fuzz", None, &mut offer) {
        check_error(&error, data)?;
    }
    if let Ok(value) = serde_json::from_slice(data) {
        if let Ok(records) = decode_value(value, "fuzz", None) {
            records.into_iter().for_each(&mut offer);
        }
    }
    Ok(changes)
}

/// An error must say something, and a JSON error must point inside the input.
fn check_error(error: &DecodeError, data: &[u8]) -> Result<(), String> {
    if error.to_string().is_empty() {
        return Err("an empty error message".into());
    }
    if let DecodeError::Json { line, .. } = error {
        let lines = data.iter().filter(|b| **b == b'\n').count() + 1;
        if *line > lines {
            return Err(format!("error at line {line} of a {lines}-line input"));
        }
    }
    Ok(())
}

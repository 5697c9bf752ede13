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
        check_error(&error, data).map_err(|broken| format!("reading the bytes: {broken}"))?;
    }
    if let Ok(value) = serde_json::from_slice(data) {
        match decode_value(value, "fuzz", None) {
            Ok(records) => records.into_iter().for_each(&mut offer),
            Err(error) => check_error(&error, data)
                .map_err(|broken| format!("decoding the parsed event: {broken}"))?,
        }
    }
    Ok(changes)
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
